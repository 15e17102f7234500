// GPU test helpers for whole forward calls: device buffers, a GPU model of a given backend (or the reason it cannot
// be made here, for GTEST_SKIP), and one call's device tensors built from host f32 inputs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"

namespace culstm {
namespace gpu_test {

// Owns cudaMalloc'ed memory.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes > 0 && cudaMalloc(&ptr_, bytes) != cudaSuccess) {
      ptr_ = nullptr;
      cudaGetLastError();  // reported through ok(); not left pending for the library's next forward()
    }
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  // False when cudaMalloc failed.
  bool ok() const { return bytes_ == 0 || ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// A GPU backend under test: the cuda backend with one explicit engine, or cudnn (engine unused).
struct GpuCase {
  Backend backend = Backend::kCuda;
  CudaEngine engine = CudaEngine::kAuto;

  // The shortest sequence the backend takes: cuDNN refuses lengths[b] = 0 (NotSupported at forward;
  // docs/cudnn_backend.md), so cudnn runs get lengths >= 1; the others must handle empty sequences.
  std::int32_t min_length() const { return backend == Backend::kCudnn ? 1 : 0; }
  // A test-name suffix: "cuda_stepwise", "cuda_persistent", "cudnn".
  std::string name() const {
    if (backend != Backend::kCuda) return backend_name(backend);
    switch (engine) {
      case CudaEngine::kAuto: return "cuda_auto";
      case CudaEngine::kStepwise: return "cuda_stepwise";
      case CudaEngine::kPersistent: return "cuda_persistent";
    }
    return "cuda_unknown";
  }
};
inline void PrintTo(const GpuCase& c, std::ostream* os) { *os << c.name(); }

// Every GPU backend, the cuda backend once per explicit engine.
inline std::vector<GpuCase> gpu_cases() {
  return {{Backend::kCuda, CudaEngine::kStepwise}, {Backend::kCuda, CudaEngine::kPersistent}, {Backend::kCudnn}};
}

// A model of `backend` (the cuda backend with `engine`), or null with the reason (no GPU, backend not built, cuDNN
// not supporting the spec) in `why`. Any other failure is a real error: reported in `why` with `failed` set; so
// is a cuda model whose plan does not run the engine asked for (the planner falls back to stepwise silently).
inline std::shared_ptr<const Model> gpu_model(Backend backend, const LstmSpec& spec, const Weights& weights,
                                              std::int64_t max_batch, std::int64_t max_seq, std::string* why,
                                              bool* failed, CudaEngine engine = CudaEngine::kAuto) {
  *failed = false;
  if (!backend_available(backend, why)) return nullptr;
  ModelOptions options;
  options.backend = backend;
  options.cuda_engine = engine;
  options.max_batch = max_batch;
  options.max_seq_len = max_seq;
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, weights, options, &model);
  if (!st.ok()) {
    *why = st.to_string();
    // Only cuDNN may decline a spec; the cuda backend serves every spec these tests use.
    const bool declined = st.code() == StatusCode::kBackendUnavailable ||
                          (backend == Backend::kCudnn && (st.code() == StatusCode::kNotSupported ||
                                                          st.code() == StatusCode::kNotImplemented));
    *failed = !declined;
    return nullptr;
  }
  if (backend == Backend::kCuda && engine != CudaEngine::kAuto) {
    const char* want = engine == CudaEngine::kPersistent ? "persistent" : "stepwise";
    for (const PlanStep& step : model->plan().steps()) {
      if (step.engine != want) {
        *why = "layer " + std::to_string(step.layer) + " runs " + step.engine + ", not " + want + ": " + step.reason;
        *failed = true;
        return nullptr;
      }
    }
  }
  return model;
}

// One forward call's device tensors (f32 spec), uploaded from host inputs; lengths stay on the host.
struct DeviceCall {
  std::int64_t T = 0, B = 0;
  std::vector<std::int32_t> lengths;  // empty = all T
  DeviceBuffer x, h0, c0, y, h_n, c_n;
  bool with_h0 = false, with_c0 = false;

  // Allocates and uploads; false on a CUDA failure.
  bool init(const LstmSpec& spec, std::int64_t steps, std::int64_t batch, const std::vector<float>& x_host,
            const std::vector<float>& h0_host, const std::vector<float>& c0_host,
            std::vector<std::int32_t> lengths_host) {
    T = steps;
    B = batch;
    lengths = std::move(lengths_host);
    with_h0 = !h0_host.empty();
    with_c0 = !c0_host.empty();
    const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
    x = DeviceBuffer(x_host.size() * sizeof(float));
    h0 = DeviceBuffer(h0_host.size() * sizeof(float));
    c0 = DeviceBuffer(c0_host.size() * sizeof(float));
    y = DeviceBuffer(static_cast<std::size_t>(T * B * spec.output_size()) * sizeof(float));
    h_n = DeviceBuffer(static_cast<std::size_t>(LD * B * spec.recurrent_size()) * sizeof(float));
    c_n = DeviceBuffer(static_cast<std::size_t>(LD * B * spec.hidden_size) * sizeof(float));
    for (const DeviceBuffer* b : {&x, &h0, &c0, &y, &h_n, &c_n}) {
      if (!b->ok()) return false;
    }
    return cudaMemcpy(x.get(), x_host.data(), x.bytes(), cudaMemcpyHostToDevice) == cudaSuccess &&
           (!with_h0 || cudaMemcpy(h0.get(), h0_host.data(), h0.bytes(), cudaMemcpyHostToDevice) == cudaSuccess) &&
           (!with_c0 || cudaMemcpy(c0.get(), c0_host.data(), c0.bytes(), cudaMemcpyHostToDevice) == cudaSuccess);
  }

  ForwardArgs args(const LstmSpec& spec, void* workspace, std::size_t workspace_bytes) const {
    const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
    const bool bm = spec.layout == BatchLayout::kBatchMajor;
    ForwardArgs a;
    a.x = bm ? TensorView::device(x.get(), DType::kF32, {B, T, spec.input_size})
             : TensorView::device(x.get(), DType::kF32, {T, B, spec.input_size});
    if (!lengths.empty()) a.lengths = TensorView::host(lengths.data(), DType::kI32, {B});
    if (with_h0) a.h0 = TensorView::device(h0.get(), DType::kF32, {LD, B, spec.recurrent_size()});
    if (with_c0) a.c0 = TensorView::device(c0.get(), DType::kF32, {LD, B, spec.hidden_size});
    a.y = bm ? TensorView::device(y.get(), DType::kF32, {B, T, spec.output_size()})
             : TensorView::device(y.get(), DType::kF32, {T, B, spec.output_size()});
    a.h_n = TensorView::device(h_n.get(), DType::kF32, {LD, B, spec.recurrent_size()});
    a.c_n = TensorView::device(c_n.get(), DType::kF32, {LD, B, spec.hidden_size});
    a.workspace = workspace;
    a.workspace_bytes = workspace_bytes;
    return a;
  }

  // Poisons the outputs with NaN (0xFF bytes) on `stream`.
  bool poison(cudaStream_t stream) const {
    return cudaMemsetAsync(y.get(), 0xFF, y.bytes(), stream) == cudaSuccess &&
           cudaMemsetAsync(h_n.get(), 0xFF, h_n.bytes(), stream) == cudaSuccess &&
           cudaMemsetAsync(c_n.get(), 0xFF, c_n.bytes(), stream) == cudaSuccess;
  }

  // Copies the outputs back (y, h_n, c_n concatenated) after the work on `stream`; false on a CUDA failure.
  bool download(cudaStream_t stream, std::vector<std::uint8_t>* out) const {
    out->resize(y.bytes() + h_n.bytes() + c_n.bytes());
    return cudaMemcpyAsync(out->data(), y.get(), y.bytes(), cudaMemcpyDeviceToHost, stream) == cudaSuccess &&
           cudaMemcpyAsync(out->data() + y.bytes(), h_n.get(), h_n.bytes(), cudaMemcpyDeviceToHost, stream) ==
               cudaSuccess &&
           cudaMemcpyAsync(out->data() + y.bytes() + h_n.bytes(), c_n.get(), c_n.bytes(), cudaMemcpyDeviceToHost,
                           stream) == cudaSuccess &&
           cudaStreamSynchronize(stream) == cudaSuccess;
  }
};

}  // namespace gpu_test
}  // namespace culstm
