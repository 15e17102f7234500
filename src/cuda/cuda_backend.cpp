// The `cuda` backend (docs/design.md, docs/cuda_backend.md): weights uploaded and repacked once per Model, a
// per-thread Context holding the cuBLAS handle, the call plan and a CUDA-graph cache, and forward() planning the
// call once (call_plan.h) and enqueuing it (layer_runner.h) on the caller's stream. The stepwise engine:
//   per layer   fill padding (y at t >= len), load h0/c0, ONE input GEMM for every step and direction,
//   per step    the recurrent GEMM (strided-batched over directions), ONE fused pointwise kernel for all
//               directions, and with a projection the projection GEMM plus a masked commit,
//   after       h_n / c_n.
// forward() allocates nothing on the device, never synchronizes the host, and uses no stream but the caller's
// (graph capture happens on a Context-owned stream that runs nothing; the graph is launched on the caller's).
#include "cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <library_types.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../backend.h"
#include "detail.h"
#include "call_plan.h"
#include "cublas_status.h"
#include "cuda_check.h"
#include "engine_choice.h"
#include "layer_runner.h"
#include "lstm_persistent.h"
#include "lstm_stepwise.h"
#include "packed_weights.h"

namespace culstm {
namespace {

using detail::error;

// ---------------------------------------------------------------------------------------------------------------
// Small RAII helpers.

// A non-blocking stream of the current device for the weight upload, destroyed with the scope.
struct UploadStream {
  cudaStream_t stream = nullptr;
  UploadStream() = default;
  UploadStream(const UploadStream&) = delete;
  UploadStream& operator=(const UploadStream&) = delete;
  ~UploadStream() {
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
  Status create() { return cuda_status(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"); }
};

// Points the Context's cuBLAS handle at our stream, the caller's workspace slice, host pointer mode and the default
// math mode (tf32 is asked for through the compute type only), and puts back the stream, pointer mode and math
// mode it found. cublasSetStream resets the handle's workspace to cuBLAS's own pool, so the workspace is set after
// the stream; with an explicit workspace cuBLAS never allocates, also not while a stream is being captured.
class CublasScope {
 public:
  explicit CublasScope(cublasHandle_t handle) : handle_(handle) {}
  CublasScope(const CublasScope&) = delete;
  CublasScope& operator=(const CublasScope&) = delete;
  ~CublasScope() {
    if (!saved_) return;
    cublasSetMathMode(handle_, math_);
    cublasSetPointerMode(handle_, pointer_mode_);
    // Always: besides the stream, this drops the caller's workspace slice from the handle (cuBLAS's own pool again),
    // so the handle never keeps a pointer into memory the caller may free.
    cublasSetStream(handle_, stream_);
  }
  Status enter(cudaStream_t stream, void* workspace, std::size_t workspace_bytes) {
    CULSTM_CUBLAS_CHECK(cublasGetStream(handle_, &stream_));
    CULSTM_CUBLAS_CHECK(cublasGetPointerMode(handle_, &pointer_mode_));
    CULSTM_CUBLAS_CHECK(cublasGetMathMode(handle_, &math_));
    saved_ = true;
    CULSTM_CUBLAS_CHECK(cublasSetStream(handle_, stream));
    CULSTM_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace, workspace_bytes));
    CULSTM_CUBLAS_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
    CULSTM_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
    return Status::Ok();
  }

 private:
  cublasHandle_t handle_;
  bool saved_ = false;
  cudaStream_t stream_ = nullptr;
  cublasPointerMode_t pointer_mode_ = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math_ = CUBLAS_DEFAULT_MATH;
};

// ---------------------------------------------------------------------------------------------------------------
// The executor: the schedule's GEMMs through cuBLAS and its kernels through the launchers, on one stream.

struct GemmTypes {
  cudaDataType_t input;         // A and W: the model dtype
  cublasComputeType_t compute;  // f32 accumulation; tf32 only when the spec allows it
};

GemmTypes gemm_types(const LstmSpec& spec) {
  switch (spec.dtype) {
    case DType::kF16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F};
    case DType::kBF16: return {CUDA_R_16BF, CUBLAS_COMPUTE_32F};
    default: return {CUDA_R_32F, spec.math == MathMode::kAllowTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F};
  }
}

class CudaExecutor final : public cuda_backend::Executor {
 public:
  CudaExecutor(cublasHandle_t cublas, GemmTypes types, DType dtype, cudaStream_t stream)
      : cublas_(cublas), types_(types), dtype_(dtype), stream_(stream) {}

  Status gemm(const cuda_backend::BlasGemm& g, const char* what) override {
    const float alpha = 1.0f, beta = 0.0f;  // host pointer mode (CublasScope)
    const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (g.batch == 1) {
      return cublas_status(
          cublasGemmEx(cublas_, op_a, op_b, g.m, g.n, g.k, &alpha, g.A, types_.input, g.lda, g.B, types_.input, g.ldb,
                       &beta, g.C, CUDA_R_32F, g.ldc, types_.compute, CUBLAS_GEMM_DEFAULT),
          what);
    }
    return cublas_status(
        cublasGemmStridedBatchedEx(cublas_, op_a, op_b, g.m, g.n, g.k, &alpha, g.A, types_.input, g.lda, g.stride_a,
                                   g.B, types_.input, g.ldb, g.stride_b, &beta, g.C, CUDA_R_32F, g.ldc, g.stride_c,
                                   g.batch, types_.compute, CUBLAS_GEMM_DEFAULT),
        what);
  }
  Status upload_lengths(const gpu::UploadLengthsParams& p) override {
    return gpu::launch_upload_lengths(p, stream_);
  }
  Status initial_state(const kernels::InitialStateParams& p) override {
    return kernels::launch_initial_state(dtype_, p, stream_);
  }
  Status fill_padding(const kernels::FillPaddingParams& p) override {
    return kernels::launch_fill_padding(dtype_, p, stream_);
  }
  Status pointwise_step(const kernels::PointwiseStepParams& p) override {
    return kernels::launch_pointwise_step(dtype_, p, stream_);
  }
  Status projection_commit(const kernels::ProjectionCommitParams& p) override {
    return kernels::launch_projection_commit(dtype_, p, stream_);
  }
  Status final_state(const kernels::FinalStateParams& p) override {
    return kernels::launch_final_state(dtype_, p, stream_);
  }
  Status persistent_layer(const kernels::PersistentLayerParams& p) override {
    return kernels::launch_persistent_layer(dtype_, p, stream_);
  }

 private:
  cublasHandle_t cublas_;
  GemmTypes types_;
  DType dtype_;
  cudaStream_t stream_;
};

// ---------------------------------------------------------------------------------------------------------------
// The Context: cuBLAS handle, capture stream and the graph cache.

// What a captured graph depends on: replaying it is right only when all of these are equal.
struct GraphKey {
  bool valid = false;
  std::uint64_t model_id = 0;
  const void* pointers[7] = {};  // x, h0, c0, y, h_n, c_n, workspace
  std::int64_t batch = 0, seq_len = 0;
  std::uint32_t padding_bits = 0;
  bool has_lengths = false;
  std::vector<std::int32_t> lengths;  // capacity reused between calls

  void set(std::uint64_t model, const ForwardArgs& args, std::int64_t B, std::int64_t T) {
    valid = true;
    model_id = model;
    const void* p[7] = {args.x.data,   args.h0.data,  args.c0.data,  args.y.data,
                        args.h_n.data, args.c_n.data, args.workspace};
    std::copy(p, p + 7, pointers);
    batch = B;
    seq_len = T;
    std::memcpy(&padding_bits, &args.padding_value, sizeof padding_bits);
    has_lengths = args.lengths.data != nullptr;
    const auto* len = static_cast<const std::int32_t*>(args.lengths.data);
    if (has_lengths) {
      lengths.assign(len, len + B);
    } else {
      lengths.clear();
    }
  }
  bool operator==(const GraphKey& o) const {
    return valid && o.valid && model_id == o.model_id && std::equal(pointers, pointers + 7, o.pointers) &&
           batch == o.batch && seq_len == o.seq_len && padding_bits == o.padding_bits && has_lengths == o.has_lengths &&
           lengths == o.lengths;
  }
};

CudaGraphMode graph_mode_from_env() {
  const char* v = std::getenv("CULSTM_CUDA_GRAPHS");
  if (v == nullptr) return CudaGraphMode::kAuto;
  const std::string s(v);
  if (s == "0" || s == "off" || s == "OFF") return CudaGraphMode::kOff;
  if (s == "1" || s == "on" || s == "ON") return CudaGraphMode::kOn;
  return CudaGraphMode::kAuto;  // "auto" and anything unrecognized
}

class CudaContext final : public ContextImpl {
 public:
  explicit CudaContext(int device) : ContextImpl(Backend::kCuda, device) {}
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  ~CudaContext() override {
    DeviceGuard guard;
    (void)guard.enter(device());
    if (exec) cudaGraphExecDestroy(exec);
    if (capture_stream) cudaStreamDestroy(capture_stream);
    if (cublas) cublasDestroy(cublas);
  }

  Status init() {
    DeviceGuard guard;
    CULSTM_RETURN_IF_ERROR(guard.enter(device()));
    CULSTM_CUBLAS_CHECK(cublasCreate(&cublas));
    // Only ever captured, never executed: all work runs on the caller's stream.
    CULSTM_CUDA_CHECK(cudaStreamCreateWithFlags(&capture_stream, cudaStreamNonBlocking));
    mode = graph_mode_from_env();
    return Status::Ok();
  }

  cublasHandle_t cublas = nullptr;
  cudaStream_t capture_stream = nullptr;
  CudaGraphMode mode = CudaGraphMode::kAuto;
  CudaGraphStats stats;
  GraphKey current;   // the call being made
  GraphKey previous;  // the last call that ran directly (auto mode captures when a call repeats it)
  GraphKey cached;    // what `exec` was captured for
  cuda_backend::CallPlan plan;  // the call being made; its capacity is reused from call to call
  cudaGraphExec_t exec = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------
// The backend.

std::atomic<std::uint64_t> g_next_model_id{1};

// A tensor the kernels dereference must be aligned to its element size and be device-accessible memory of the
// model's device (device, managed, or pinned host memory): TensorView says "device"; this checks that it is.
// device < 0: alignment only.
Status check_device_pointer(const char* name, const void* ptr, int device, std::size_t alignment) {
  if (ptr == nullptr) return Status::Ok();
  if (reinterpret_cast<std::uintptr_t>(ptr) % alignment != 0) {
    return error(StatusCode::kInvalidArgument, name, ": expected an address aligned to ", alignment, " bytes, got ",
                 ptr);
  }
  if (device < 0) return Status::Ok();
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err == cudaErrorInvalidValue) {
    cudaGetLastError();  // not sticky; keep it out of the next launch check
    return error(StatusCode::kDeviceMismatch, name, ": expected device memory, and CUDA does not know the address (",
                 cudaGetErrorName(err), ")");
  }
  if (err != cudaSuccess) return cuda_status(err, "cudaPointerGetAttributes");  // e.g. a broken context
  if (attr.type == cudaMemoryTypeUnregistered) {
    return error(StatusCode::kDeviceMismatch, name,
                 ": expected device memory, got host memory that is not registered with CUDA");
  }
  if (attr.type == cudaMemoryTypeDevice && attr.device != device) {
    return error(StatusCode::kDeviceMismatch, name, ": expected memory of device ", device,
                 " (the model's), got memory of device ", attr.device);
  }
  // Pinned host and managed memory: the kernels and cuBLAS use the caller's address itself, which is right only
  // where the device maps the memory at that same address (not so for registered memory on every platform).
  if ((attr.type == cudaMemoryTypeHost || attr.type == cudaMemoryTypeManaged) && attr.devicePointer != ptr) {
    return error(StatusCode::kDeviceMismatch, name, ": pinned or managed host memory that device ", device,
                 " does not map at the same address (pass its device pointer, cudaHostGetDevicePointer)");
  }
  return Status::Ok();
}

class CudaBackend final : public BackendImpl {
 public:
  CudaBackend(const LstmSpec& spec, const ModelOptions& options, std::size_t cublas_bytes,
              std::vector<cuda_backend::LayerEngine> engines)
      : options_(options), id_(g_next_model_id.fetch_add(1)), types_(gemm_types(spec)) {
    model_.spec = spec;
    model_.cublas_bytes = cublas_bytes;
    model_.engines = std::move(engines);
    plan_ = cuda_backend::explain_model(model_, options);
  }

  ~CudaBackend() override {
    if (arena_ == nullptr) return;
    DeviceGuard guard;
    (void)guard.enter(options_.device);
    cudaFree(arena_);
  }

  // Repacks the weights (packed_weights.h), uploads them with one allocation and one copy.
  Status upload(const Weights& weights) {
    const cuda_backend::PackedWeights packed = cuda_backend::pack_weights(model_.spec, weights);
    DeviceGuard guard;
    CULSTM_RETURN_IF_ERROR(guard.enter(options_.device));
    CULSTM_CUDA_CHECK(cudaMalloc(&arena_, packed.bytes.size()));
    // The copy goes through a private non-blocking stream, and only that stream is waited for: the legacy default
    // stream (cudaMemcpy, cudaStreamSynchronize(0)) waits on every blocking stream of the device and fails while
    // another thread captures one. The wait itself is needed once, at creation (never in forward): a copy from
    // pageable memory may return before its DMA has landed, and the Model is then used from other streams.
    UploadStream upload;
    CULSTM_RETURN_IF_ERROR(upload.create());
    CULSTM_CUDA_CHECK(cudaMemcpyAsync(arena_, packed.bytes.data(), packed.bytes.size(), cudaMemcpyHostToDevice,
                                      upload.stream));
    CULSTM_CUDA_CHECK(cudaStreamSynchronize(upload.stream));
    model_.weights = cuda_backend::weight_pointers(model_.spec, packed, arena_);
    return Status::Ok();
  }

  Backend kind() const noexcept override { return Backend::kCuda; }
  MemoryKind data_memory() const noexcept override { return MemoryKind::kDevice; }
  const Plan& plan() const noexcept override { return plan_; }
  std::size_t workspace_size(std::int64_t batch, std::int64_t seq_len) const noexcept override {
    return cuda_backend::workspace_layout(model_.spec, batch, seq_len, model_.cublas_bytes).total;
  }

  Status create_context(int device, std::unique_ptr<ContextImpl>* out) const override {
    auto ctx = std::make_unique<CudaContext>(device);
    CULSTM_RETURN_IF_ERROR(ctx->init());
    *out = std::move(ctx);
    return Status::Ok();
  }

  Status forward(ContextImpl& ctx, const ForwardArgs& args, const ForwardShape& shape, Stream stream) const override;

 private:
  // Alignment of every tensor, and (when `query_pointers`) that each is memory of the model's device.
  Status check_memory(const ForwardArgs& args, bool query_pointers) const;
  // That a stream the caller created belongs to the model's device (the special handles always do).
  Status check_stream_device(cudaStream_t stream, bool query) const;
  // Sets the Context's cuBLAS handle up for `stream` and the plan's slice of the workspace (CublasScope, which the
  // caller holds, puts it back).
  Status configure_cublas(CublasScope& scope, const cuda_backend::CallPlan& plan, void* workspace,
                          cudaStream_t stream) const;
  // Enqueues `plan` on `stream` through cuBLAS (configured for it) and the launchers; with `gemms_only`, only each
  // distinct GEMM once (the warm-up before a capture).
  Status enqueue(CudaContext& ctx, const cuda_backend::CallPlan& plan, cudaStream_t stream,
                 bool gemms_only = false) const;
  Status run_graph(CudaContext& ctx, const ForwardArgs& args, cudaStream_t stream) const;

  cuda_backend::ModelPlan model_;  // spec, engines, cuBLAS workspace size, weight pointers
  ModelOptions options_;
  std::uint64_t id_;  // never reused, unlike an address: keys the Contexts' graph caches
  Plan plan_;         // model_ at (max_batch, max_seq_len), rendered once
  GemmTypes types_;
  void* arena_ = nullptr;  // every weight, one cudaMalloc
};

Status CudaBackend::check_memory(const ForwardArgs& args, bool query_pointers) const {
  const int dev = query_pointers ? options_.device : -1;
  const std::size_t value = dtype_size(model_.spec.dtype);
  CULSTM_RETURN_IF_ERROR(check_device_pointer("x", args.x.data, dev, value));
  CULSTM_RETURN_IF_ERROR(check_device_pointer("h0", args.h0.data, dev, value));
  CULSTM_RETURN_IF_ERROR(check_device_pointer("c0", args.c0.data, dev, value));
  CULSTM_RETURN_IF_ERROR(check_device_pointer("y", args.y.data, dev, value));
  CULSTM_RETURN_IF_ERROR(check_device_pointer("h_n", args.h_n.data, dev, value));
  CULSTM_RETURN_IF_ERROR(check_device_pointer("c_n", args.c_n.data, dev, value));
  // The workspace is carved into 256-byte-aligned regions, and cuBLAS wants its slice aligned too.
  return check_device_pointer("workspace", args.workspace, dev, cuda_backend::kWorkspaceAlignment);
}

Status CudaBackend::check_stream_device(cudaStream_t stream, bool query) const {
  if (!query || stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return Status::Ok();
  int device = -1;
  CULSTM_CUDA_CHECK(cudaStreamGetDevice(stream, &device));
  if (device != options_.device) {
    return error(StatusCode::kDeviceMismatch, "stream: expected a stream of device ", options_.device,
                 " (the model's), got one of device ", device);
  }
  return Status::Ok();
}

Status CudaBackend::configure_cublas(CublasScope& scope, const cuda_backend::CallPlan& plan, void* workspace,
                                     cudaStream_t stream) const {
  const cuda_backend::Region& slice = plan.workspace.cublas;
  return scope.enter(stream, static_cast<std::uint8_t*>(workspace) + slice.offset, slice.bytes);
}

Status CudaBackend::enqueue(CudaContext& ctx, const cuda_backend::CallPlan& plan, cudaStream_t stream,
                            bool gemms_only) const {
  CudaExecutor exec(ctx.cublas, types_, model_.spec.dtype, stream);
  if (!gemms_only) return cuda_backend::run_call(plan, exec);
  cuda_backend::DistinctGemmsOnly warm_up(exec);
  return cuda_backend::run_call(plan, warm_up);
}

Status CudaBackend::forward(ContextImpl& ctx_impl, const ForwardArgs& args, const ForwardShape& shape,
                            Stream stream) const {
  auto& ctx = static_cast<CudaContext&>(ctx_impl);  // forward() in model.cpp checked ctx.backend() == kCuda
  DeviceGuard guard;
  CULSTM_RETURN_IF_ERROR(guard.enter(options_.device));
  CULSTM_RETURN_IF_ERROR(check_no_pending_error("cuda"));
  const cudaStream_t s = stream;
  // Is the caller capturing this stream into a graph of its own? Then our launches simply go into that graph:
  // no graph of ours, and no query that a capture might not allow.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CULSTM_RETURN_IF_ERROR(query_capture(s, options_.device, &capturing));
  const bool caller_captures = capturing != cudaStreamCaptureStatusNone;
  CULSTM_RETURN_IF_ERROR(check_memory(args, /*query_pointers=*/!caller_captures));
  CULSTM_RETURN_IF_ERROR(check_stream_device(s, /*query=*/!caller_captures));
  CULSTM_RETURN_IF_ERROR(cuda_backend::plan_call(model_, args, shape, &ctx.plan));

  bool use_graph = false;
  if (ctx.mode != CudaGraphMode::kOff && !caller_captures) {
    ctx.current.set(id_, args, shape.batch, shape.seq_len);
    if (ctx.mode == CudaGraphMode::kOn) {
      use_graph = true;
    } else {
      use_graph = ctx.cached == ctx.current || ctx.previous == ctx.current;
      if (!use_graph) std::swap(ctx.previous, ctx.current);  // remembered for the next call
    }
  }
  if (use_graph) return run_graph(ctx, args, s);
  CublasScope scope(ctx.cublas);
  CULSTM_RETURN_IF_ERROR(configure_cublas(scope, ctx.plan, args.workspace, s));
  ++ctx.stats.direct_runs;
  return enqueue(ctx, ctx.plan, s);
}

// The graph path: replay the cached executable graph when this call's key matches it; otherwise capture the
// launches on the Context's capture stream, update the executable graph in place when the topology allows
// (cudaGraphExecUpdate) or instantiate a new one, and launch it on the caller's stream.
Status CudaBackend::run_graph(CudaContext& ctx, const ForwardArgs& args, cudaStream_t stream) const {
  if (ctx.exec != nullptr && ctx.cached == ctx.current) {
    CULSTM_CUDA_CHECK(cudaGraphLaunch(ctx.exec, stream));
    ++ctx.stats.replays;
    return Status::Ok();
  }
  ctx.cached.valid = false;  // until a graph for `current` is in place

  // In mode `on` a capture can be the first time these GEMM shapes run (auto captures only a call that already
  // ran directly), and cuBLAS picks and loads its kernel for a shape at the first call: run each shape once,
  // directly, before the capture. Those GEMMs write only the workspace's scratch, which the graph overwrites
  // before reading it; culstm's own kernels were loaded at Model creation.
  if (ctx.mode == CudaGraphMode::kOn) {
    CublasScope scope(ctx.cublas);
    CULSTM_RETURN_IF_ERROR(configure_cublas(scope, ctx.plan, args.workspace, stream));
    CULSTM_RETURN_IF_ERROR(enqueue(ctx, ctx.plan, stream, /*gemms_only=*/true));
  }

  cudaGraph_t graph = nullptr;
  {
    // The handle is set up before the capture begins and restored after it ends, so that nothing but the
    // launches happens inside the capture (cublasSetStream resets cuBLAS's workspace choice).
    CublasScope scope(ctx.cublas);
    CULSTM_RETURN_IF_ERROR(configure_cublas(scope, ctx.plan, args.workspace, ctx.capture_stream));
    CULSTM_CUDA_CHECK(cudaStreamBeginCapture(ctx.capture_stream, cudaStreamCaptureModeThreadLocal));
    const Status enqueued = enqueue(ctx, ctx.plan, ctx.capture_stream);
    const cudaError_t ended = cudaStreamEndCapture(ctx.capture_stream, &graph);  // always end what was begun
    if (!enqueued.ok() || ended != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();
      return enqueued.ok() ? cuda_status(ended, "cudaStreamEndCapture") : enqueued;
    }
  }
  ++ctx.stats.captures;
  struct GraphDeleter {
    cudaGraph_t g;
    ~GraphDeleter() { cudaGraphDestroy(g); }
  } graph_deleter{graph};

  bool updated = false;
  if (ctx.exec != nullptr) {
    cudaGraphExecUpdateResultInfo info{};
    const cudaError_t update = cudaGraphExecUpdate(ctx.exec, graph, &info);
    if (update == cudaSuccess) {
      updated = true;
      ++ctx.stats.updates;
    } else if (update == cudaErrorGraphExecUpdateFailure) {
      cudaGetLastError();  // another topology (other shape, steps, optional tensors): instantiate anew
      cudaGraphExecDestroy(ctx.exec);
      ctx.exec = nullptr;
    } else {
      return cuda_status(update, "cudaGraphExecUpdate");
    }
  }
  if (!updated) {
    cudaGraphExec_t exec = nullptr;
    CULSTM_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    ctx.exec = exec;
    ++ctx.stats.instantiations;
  }
  CULSTM_CUDA_CHECK(cudaGraphLaunch(ctx.exec, stream));
  std::swap(ctx.cached, ctx.current);
  ctx.cached.valid = true;
  return Status::Ok();
}

}  // namespace

Status make_cuda_backend(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                         std::unique_ptr<BackendImpl>* out) {
  std::string why;
  const int devices = cuda_device_count(&why);
  if (devices == 0) return error(StatusCode::kBackendUnavailable, "backend cuda: ", why);
  if (options.device >= devices) {
    return error(StatusCode::kInvalidArgument, "options.device: expected a device ordinal in [0, ", devices - 1,
                 "], got ", options.device);
  }
  DeviceGuard guard;
  CULSTM_RETURN_IF_ERROR(guard.enter(options.device));
  int major = 0, minor = 0;
  CULSTM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, options.device));
  CULSTM_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, options.device));
  // Every kernel is loaded now, at creation, so that none is first loaded inside a stream capture (graph mode
  // `on` captures a Context's first call). A GPU whose architecture this build has no code for cannot run our
  // kernels: say so (auto then falls back).
  Status image = kernels::load_stepwise_kernels();
  if (image.ok()) image = kernels::load_persistent_kernels();
  if (!image.ok()) {
    return error(StatusCode::kNotSupported, "backend cuda: no kernel image for this GPU (sm_", major, minor,
                 "; built for ", CULSTM_CUDA_ARCHITECTURES, "): ", image.message());
  }
  // Which layers run the persistent engine: the device's limits and the kernel's occupancy decide what fits.
  cuda_backend::PersistentDevice persistent;
  persistent.cc_major = major;
  persistent.cc_minor = minor;
  CULSTM_RETURN_IF_ERROR(kernels::persistent_device_limits(options.device, &persistent.limits));
  persistent.blocks_per_sm = [&spec](std::size_t smem_bytes, int* blocks) {
    return kernels::persistent_blocks_per_sm(spec.dtype, smem_bytes, blocks);
  };
  std::vector<cuda_backend::LayerEngine> engines;
  CULSTM_RETURN_IF_ERROR(cuda_backend::choose_engines(spec, options, persistent, &engines));
  auto backend =
      std::make_unique<CudaBackend>(spec, options, cuda_backend::cublas_workspace_bytes(major), std::move(engines));
  CULSTM_RETURN_IF_ERROR(backend->upload(weights));
  *out = std::move(backend);
  return Status::Ok();
}

Status cuda_set_graph_mode(Context& ctx, CudaGraphMode mode) {
  if (ctx.backend() != Backend::kCuda) {
    return error(StatusCode::kInvalidArgument, "ctx: expected a Context of backend cuda, got ",
                 backend_name(ctx.backend()));
  }
  static_cast<CudaContext&>(ctx.impl()).mode = mode;
  return Status::Ok();
}

Status cuda_graph_stats(Context& ctx, CudaGraphStats* stats) {
  if (stats == nullptr) return error(StatusCode::kNullPointer, "stats: the output pointer is null");
  if (ctx.backend() != Backend::kCuda) {
    return error(StatusCode::kInvalidArgument, "ctx: expected a Context of backend cuda, got ",
                 backend_name(ctx.backend()));
  }
  *stats = static_cast<CudaContext&>(ctx.impl()).stats;
  return Status::Ok();
}

}  // namespace culstm
