#include "model_runner.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <memory>

#include "detail.h"
#include "io/array.h"

namespace culstm {
namespace cli {
namespace {

using detail::error;

// f32 values as a `dtype` tensor in memory (and back): io::Array rounds as the .npy writer and the reference do.
std::vector<std::uint8_t> encode(const std::vector<float>& values, DType dtype) {
  return io::Array::from_f32(values, {static_cast<std::int64_t>(values.size())}, dtype).bytes;
}

std::vector<float> decode(const std::vector<std::uint8_t>& bytes, DType dtype) {
  io::Array array;
  array.dtype = dtype;
  array.bytes = bytes;
  return array.to_f32();
}

Status cuda_check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return error(StatusCode::kCudaError, what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

// One tensor's storage: host bytes, plus a device copy when the backend computes on the GPU.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (device_) cudaFree(device_);
  }

  Status init(std::vector<std::uint8_t> bytes, bool on_device) {
    host_ = std::move(bytes);
    if (!on_device || host_.empty()) return Status::Ok();
    CULSTM_RETURN_IF_ERROR(cuda_check(cudaMalloc(&device_, host_.size()), "cudaMalloc"));
    return cuda_check(cudaMemcpy(device_, host_.data(), host_.size(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  Status download() {
    if (!device_) return Status::Ok();
    return cuda_check(cudaMemcpy(host_.data(), device_, host_.size(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }
  void* data() { return device_ ? device_ : static_cast<void*>(host_.data()); }
  std::vector<std::uint8_t>& host() { return host_; }

 private:
  std::vector<std::uint8_t> host_;
  void* device_ = nullptr;
};

}  // namespace

Status run_model(const Model& model, const HostInputs& in, HostOutputs* out, float padding_value) {
  const LstmSpec& spec = model.spec();
  const bool on_device = model.backend() != Backend::kReference;
  const MemoryKind memory = on_device ? MemoryKind::kDevice : MemoryKind::kHost;
  const DType dt = spec.dtype;
  const std::int64_t T = in.steps, B = in.batch;
  const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
  const std::int64_t R = spec.recurrent_size(), H = spec.hidden_size, Y = spec.output_size();
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;

  Buffer x, h0, c0, y, h_n, c_n, workspace;
  CULSTM_RETURN_IF_ERROR(x.init(encode(in.x, dt), on_device));
  CULSTM_RETURN_IF_ERROR(h0.init(encode(in.h0, dt), on_device));
  CULSTM_RETURN_IF_ERROR(c0.init(encode(in.c0, dt), on_device));
  // Outputs start as NaN (0xff bytes) so that an element a backend forgot to write shows.
  CULSTM_RETURN_IF_ERROR(y.init(std::vector<std::uint8_t>(T * B * Y * dtype_size(dt), 0xff), on_device));
  CULSTM_RETURN_IF_ERROR(h_n.init(std::vector<std::uint8_t>(LD * B * R * dtype_size(dt), 0xff), on_device));
  CULSTM_RETURN_IF_ERROR(c_n.init(std::vector<std::uint8_t>(LD * B * H * dtype_size(dt), 0xff), on_device));
  std::size_t ws_bytes = 0;
  CULSTM_RETURN_IF_ERROR(model.workspace_size(B, T, &ws_bytes));
  CULSTM_RETURN_IF_ERROR(workspace.init(std::vector<std::uint8_t>(ws_bytes), on_device));

  ForwardArgs args;
  args.x = batch_major ? TensorView(x.data(), dt, memory, {B, T, spec.input_size})
                       : TensorView(x.data(), dt, memory, {T, B, spec.input_size});
  std::vector<std::int32_t> lengths = in.lengths;
  if (!lengths.empty())
    args.lengths = TensorView::host(lengths.data(), DType::kI32, {static_cast<std::int64_t>(lengths.size())});
  if (!in.h0.empty()) args.h0 = TensorView(h0.data(), dt, memory, {LD, B, R});
  if (!in.c0.empty()) args.c0 = TensorView(c0.data(), dt, memory, {LD, B, H});
  args.y = batch_major ? TensorView(y.data(), dt, memory, {B, T, Y}) : TensorView(y.data(), dt, memory, {T, B, Y});
  args.h_n = TensorView(h_n.data(), dt, memory, {LD, B, R});
  args.c_n = TensorView(c_n.data(), dt, memory, {LD, B, H});
  args.workspace = ws_bytes ? workspace.data() : nullptr;
  args.workspace_bytes = ws_bytes;
  args.padding_value = padding_value;

  std::unique_ptr<Context> ctx;
  CULSTM_RETURN_IF_ERROR(Context::create(model, &ctx));
  CULSTM_RETURN_IF_ERROR(forward(*ctx, model, args, nullptr));
  if (on_device) {
    CULSTM_RETURN_IF_ERROR(cuda_check(cudaStreamSynchronize(nullptr), "cudaStreamSynchronize"));
    CULSTM_RETURN_IF_ERROR(y.download());
    CULSTM_RETURN_IF_ERROR(h_n.download());
    CULSTM_RETURN_IF_ERROR(c_n.download());
  }
  out->y = decode(y.host(), dt);
  out->h_n = decode(h_n.host(), dt);
  out->c_n = decode(c_n.host(), dt);
  return Status::Ok();
}

}  // namespace cli
}  // namespace culstm
