// The `cudnn` backend: cuDNN 9's RNN API (cudnnRNNForward, CUDNN_FWD_MODE_INFERENCE) behind culstm's interface, as
// a second opinion on every result and the baseline culstm measures against. docs/cudnn_backend.md explains what
// maps to what, what is NotSupported and why, and how the algorithm is chosen.
//
//   Model (CudnnBackend): its own cuDNN handle and RNN descriptors (one per legal algorithm) for the weight layout
//     and workspace-size queries; the weights packed once into cuDNN's weight space (device memory it owns);
//     caches of workspace sizes per (B, T) and of auto-tuned algorithm choices (mutex-guarded: the Model is shared
//     between threads).
//   Context (CudnnContext): the cudnnHandle_t forward runs on, two timing events, and per Model the RNN
//     descriptors it runs with (cudnnBuildRNNDynamic writes into a descriptor, so none is shared between threads)
//     plus data/state descriptors cached per call shape, so steady-state forward creates nothing.
//   forward: checks what cuDNN cannot take (lengths 0), uploads the lengths into the workspace (the shared upload,
//     gpu/lengths_upload.h: kernel parameters, no pageable copy), reverses the sequences for direction = reverse,
//     then one cudnnRNNForward on the caller's stream (cudnnSetStream, restored after). No allocation and no host
//     synchronization, except the documented first call of a new shape: creating its descriptors allocates host
//     memory, and under cudnn_algo = auto the algorithms are timed (cudaEventSynchronize).
// Profiling (docs/profiling.md): culstm::forward's `culstm/forward` NVTX range only; one cudnnRNNForward runs every
// layer, so there is no per-layer host code to mark.
#include <string>

#include "../backend.h"
#include "detail.h"
#include "cudnn_backend.h"
#include "cudnn_host.h"

#if CULSTM_WITH_CUDNN
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "cudnn/cudnn_status.h"
#include "../float16.h"
#include "cudnn_kernels.h"
#include "lengths_upload.h"
#endif

namespace culstm {

#if !CULSTM_WITH_CUDNN

Status make_cudnn_backend(const LstmSpec& /*spec*/, const Weights& /*weights*/, const ModelOptions& /*options*/,
                          std::unique_ptr<BackendImpl>* /*out*/) {
  return detail::error(StatusCode::kBackendUnavailable,
                       "backend cudnn: culstm was built without cuDNN (CULSTM_WITH_CUDNN=OFF)");
}

Status cudnn_tuning_report(const Model& /*model*/, std::string* /*out*/) {
  return detail::error(StatusCode::kBackendUnavailable,
                       "backend cudnn: culstm was built without cuDNN (CULSTM_WITH_CUDNN=OFF)");
}

#else  // CULSTM_WITH_CUDNN

namespace {

using detail::error;
using detail::str;

constexpr std::size_t kAlign = 256;                 // cuDNN and our kernels get 256-byte aligned slices
constexpr int kNumAlgos = 4;                        // standard, persist_static, persist_static_small_h, dynamic
constexpr std::size_t kMaxCachedShapeSizes = 4096;  // per Model: (B, T) -> workspace sizes
constexpr std::size_t kMaxShapesPerModel = 16;      // per Context and Model: cached data/state descriptors
constexpr std::size_t kMaxModelsPerContext = 8;
constexpr std::size_t kMaxDynamicBatches = 8;  // per Context and Model: descriptors built for a batch size
constexpr int kTuneRuns = 3;                   // timed runs per algorithm (after one warm-up)

constexpr CudnnAlgo kAlgos[kNumAlgos] = {CudnnAlgo::kStandard, CudnnAlgo::kPersistStatic,
                                         CudnnAlgo::kPersistStaticSmallH, CudnnAlgo::kPersistDynamic};

int algo_index(CudnnAlgo a) { return static_cast<int>(a) - 1; }

cudnnRNNAlgo_t to_cudnn(CudnnAlgo a) {
  switch (a) {
    case CudnnAlgo::kPersistStatic: return CUDNN_RNN_ALGO_PERSIST_STATIC;
    case CudnnAlgo::kPersistStaticSmallH: return CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H;
    case CudnnAlgo::kPersistDynamic: return CUDNN_RNN_ALGO_PERSIST_DYNAMIC;
    default: return CUDNN_RNN_ALGO_STANDARD;
  }
}

std::size_t align_up(std::size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// ---------------------------------------------------------------------------------------------------------------
// Errors

using cudnn_status::environment_failure;
using cudnn_status::refused;

Status cudnn_error(cudnnStatus_t st, const char* call) {
  return error(StatusCode::kCudnnError, "backend cudnn: ", call, ": ", cudnn_status::message(st));
}

#define CULSTM_CUDNN_CHECK(call)                                     \
  do {                                                               \
    const cudnnStatus_t culstm_st_ = (call);                         \
    if (culstm_st_ != CUDNN_STATUS_SUCCESS) {                        \
      return cudnn_error(culstm_st_, #call);                         \
    }                                                                \
  } while (0)

// A cuDNN call's result, kept so a caller can tell "cuDNN refuses this configuration" (cudnn_status::refused, which
// depends on the algorithm the call was made for) from a failure. `what` is a fixed-size copy: keeping it allocates
// nothing.
struct Outcome {
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  std::array<char, 240> what{};  // "cudnnRNNForward: CUDNN_STATUS_NOT_SUPPORTED (...)"

  bool ok() const { return status == CUDNN_STATUS_SUCCESS; }
  // cuDNN refuses (NotSupported), not fails: a not-supported code for this algorithm, or a failed
  // cudnnBuildRNNDynamic whatever its status (e.g. no NVRTC at run time, or its compile failed), which means the
  // algorithm cannot be used here (docs/cudnn_backend.md). Only persist_dynamic builds, on every path that sizes
  // or runs it.
  bool is_refusal(CudnnAlgo algo) const {
    return refused(status, to_cudnn(algo)) || std::strncmp(what.data(), "cudnnBuildRNNDynamic", 20) == 0;
  }
  std::string text() const { return std::string(what.data()); }
  static Outcome of(cudnnStatus_t st, const char* call) {
    Outcome o;
    o.status = st;
    if (st != CUDNN_STATUS_SUCCESS) std::snprintf(o.what.data(), o.what.size(), "%s: %s", call, cudnn_status::message(st).c_str());
    return o;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Owners of cuDNN and CUDA objects

template <typename T, cudnnStatus_t (*Destroy)(T)>
class Owned {
 public:
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~Owned() { reset(); }
  void reset() {
    if (h_ != nullptr) Destroy(h_);  // a failing destroy leaves nothing to do
    h_ = nullptr;
  }
  T get() const { return h_; }
  T* out() {
    reset();
    return &h_;
  }

 private:
  T h_ = nullptr;
};

using HandleOwner = Owned<cudnnHandle_t, cudnnDestroy>;
using RnnDesc = Owned<cudnnRNNDescriptor_t, cudnnDestroyRNNDescriptor>;
using DataDesc = Owned<cudnnRNNDataDescriptor_t, cudnnDestroyRNNDataDescriptor>;
using TensorDesc = Owned<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor>;
using DropoutDesc = Owned<cudnnDropoutDescriptor_t, cudnnDestroyDropoutDescriptor>;

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFree(p_);
  }
  Status allocate(std::size_t bytes) {
    CULSTM_RETURN_IF_ERROR(cuda_status(cudaMalloc(&p_, std::max<std::size_t>(bytes, 1)), "cudaMalloc (weight space)"));
    bytes_ = bytes;
    return Status::Ok();
  }
  void* get() const { return p_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { reset(); }
  Status create() {
    CULSTM_CUDA_CHECK(cudaEventCreate(&e_));
    return Status::Ok();
  }
  cudaEvent_t get() const { return e_; }
  void reset() {
    if (e_ != nullptr) cudaEventDestroy(e_);
    e_ = nullptr;
  }

 private:
  cudaEvent_t e_ = nullptr;
};


// Sets a handle's stream for a scope and restores the one it had.
class StreamGuard {
 public:
  StreamGuard() = default;
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;
  ~StreamGuard() {
    if (handle_ != nullptr) cudnnSetStream(handle_, previous_);
  }
  Status enter(cudnnHandle_t handle, cudaStream_t stream) {
    CULSTM_CUDNN_CHECK(cudnnGetStream(handle, &previous_));
    CULSTM_CUDNN_CHECK(cudnnSetStream(handle, stream));
    handle_ = handle;
    return Status::Ok();
  }

 private:
  cudnnHandle_t handle_ = nullptr;
  cudaStream_t previous_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------
// The RNN configuration of a spec

struct RnnConfig {
  cudnnDataType_t data_type = CUDNN_DATA_FLOAT;
  cudnnDataType_t math_prec = CUDNN_DATA_FLOAT;
  cudnnMathType_t math_type = CUDNN_FMA_MATH;
  cudnnRNNBiasMode_t bias_mode = CUDNN_RNN_DOUBLE_BIAS;
  cudnnDirectionMode_t dir_mode = CUDNN_UNIDIRECTIONAL;
  cudnnRNNDataLayout_t layout = CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED;
  std::int32_t input_size = 0, hidden_size = 0, proj_size = 0, num_layers = 0;
  bool clip = false;
  double clip_value = 0.0;
  bool reversed = false;  // direction = reverse: a forward LSTM over time-reversed sequences
};

RnnConfig config_for(const LstmSpec& spec) {
  RnnConfig c;
  switch (spec.dtype) {
    case DType::kF16: c.data_type = CUDNN_DATA_HALF; break;
    case DType::kBF16: c.data_type = CUDNN_DATA_BFLOAT16; break;
    default: c.data_type = CUDNN_DATA_FLOAT; break;
  }
  c.math_prec = CUDNN_DATA_FLOAT;  // fp32 accumulation and cell state for every storage type (docs/design.md §2)
  if (spec.dtype == DType::kF32) {
    // CUDNN_DEFAULT_MATH lets cuDNN use TF32 tensor cores on Ampere and later; CUDNN_FMA_MATH never does.
    c.math_type = spec.math == MathMode::kAllowTF32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  } else {
    c.math_type = CUDNN_TENSOR_OP_MATH;
  }
  c.bias_mode = spec.bias ? CUDNN_RNN_DOUBLE_BIAS : CUDNN_RNN_NO_BIAS;
  c.dir_mode = spec.direction == Direction::kBidirectional ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL;
  c.layout = spec.layout == BatchLayout::kBatchMajor ? CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED
                                                     : CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED;
  c.input_size = static_cast<std::int32_t>(spec.input_size);
  c.hidden_size = static_cast<std::int32_t>(spec.hidden_size);
  c.proj_size = static_cast<std::int32_t>(spec.recurrent_size());  // == hidden_size: no projection
  c.num_layers = spec.num_layers;
  c.clip = spec.cell_clip.has_value();
  c.clip_value = spec.cell_clip.value_or(0.0f);
  c.reversed = spec.direction == Direction::kReverse;
  return c;
}

const char* data_type_name(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT: return "CUDNN_DATA_FLOAT";
    case CUDNN_DATA_HALF: return "CUDNN_DATA_HALF";
    case CUDNN_DATA_BFLOAT16: return "CUDNN_DATA_BFLOAT16";
    default: return "other";
  }
}

const char* math_type_name(cudnnMathType_t t, cudnnDataType_t data) {
  switch (t) {
    case CUDNN_DEFAULT_MATH:
      return data == CUDNN_DATA_FLOAT ? "CUDNN_DEFAULT_MATH (tf32 allowed)"
                                      : "CUDNN_DEFAULT_MATH (CUDNN_TENSOR_OP_MATH was refused for this data type)";
    case CUDNN_TENSOR_OP_MATH: return "CUDNN_TENSOR_OP_MATH";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "CUDNN_FMA_MATH (no tensor cores, no tf32)";
  }
  return "other";
}

DType dtype_of(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT: return DType::kF32;
    case CUDNN_DATA_HALF: return DType::kF16;
    case CUDNN_DATA_BFLOAT16: return DType::kBF16;
    case CUDNN_DATA_DOUBLE: return DType::kF64;
    default: return DType::kI64;  // nothing culstm stores weights in: the packer reports the mismatch
  }
}

Outcome make_dropout(cudnnHandle_t handle, DropoutDesc* out) {
  cudnnStatus_t st = cudnnCreateDropoutDescriptor(out->out());
  if (st != CUDNN_STATUS_SUCCESS) return Outcome::of(st, "cudnnCreateDropoutDescriptor");
  // Dropout is never applied in inference; a descriptor with p = 0 and no state, as PyTorch passes.
  st = cudnnSetDropoutDescriptor(out->get(), handle, 0.0f, nullptr, 0, 0);
  return Outcome::of(st, "cudnnSetDropoutDescriptor");
}

Outcome make_rnn_desc(const RnnConfig& c, CudnnAlgo algo, cudnnDropoutDescriptor_t dropout, RnnDesc* out) {
  RnnDesc d;
  cudnnStatus_t st = cudnnCreateRNNDescriptor(d.out());
  if (st != CUDNN_STATUS_SUCCESS) return Outcome::of(st, "cudnnCreateRNNDescriptor");
  st = cudnnSetRNNDescriptor_v8(d.get(), to_cudnn(algo), CUDNN_LSTM, c.bias_mode, c.dir_mode, CUDNN_LINEAR_INPUT,
                                c.data_type, c.math_prec, c.math_type, c.input_size, c.hidden_size, c.proj_size,
                                c.num_layers, dropout, CUDNN_RNN_PADDED_IO_ENABLED);
  if (st != CUDNN_STATUS_SUCCESS) return Outcome::of(st, "cudnnSetRNNDescriptor_v8");
  if (c.clip) {
    // MINMAX clamps c to [-clip, clip]; cuDNN 9's clip has no NaN-propagation option (it does not propagate).
    st = cudnnRNNSetClip_v9(d.get(), CUDNN_RNN_CLIP_MINMAX, -c.clip_value, c.clip_value);
    if (st != CUDNN_STATUS_SUCCESS) return Outcome::of(st, "cudnnRNNSetClip_v9");
  }
  *out = std::move(d);
  return Outcome{};
}

// cudnnGetRNNWeightParams as the packer's WeightSpaceLayout.
class CudnnWeightLayout final : public cudnn_host::WeightSpaceLayout {
 public:
  CudnnWeightLayout(cudnnHandle_t handle, cudnnRNNDescriptor_t desc, std::size_t bytes, const void* base,
                    cudnnTensorDescriptor_t m_desc, cudnnTensorDescriptor_t b_desc)
      : handle_(handle), desc_(desc), bytes_(bytes), base_(base), m_desc_(m_desc), b_desc_(b_desc) {}

  std::size_t size_bytes() const override { return bytes_; }

  Status locate(int pseudo_layer, int lin_layer_id, cudnn_host::ParamKind kind,
                cudnn_host::ParamLocation* out) const override {
    void* m_addr = nullptr;
    void* b_addr = nullptr;
    const cudnnStatus_t st = cudnnGetRNNWeightParams(handle_, desc_, pseudo_layer, bytes_, base_, lin_layer_id,
                                                     m_desc_, &m_addr, b_desc_, &b_addr);
    if (st != CUDNN_STATUS_SUCCESS) {
      return error(StatusCode::kCudnnError, "backend cudnn: cudnnGetRNNWeightParams(pseudoLayer ", pseudo_layer,
                   ", linLayerID ", lin_layer_id, "): ", cudnn_status::message(st));
    }
    *out = cudnn_host::ParamLocation{};
    const bool matrix = kind == cudnn_host::ParamKind::kMatrix;
    const void* addr = matrix ? m_addr : b_addr;
    if (addr == nullptr) return Status::Ok();  // cuDNN has no such parameter
    const auto* p = static_cast<const char*>(addr);
    const auto* base = static_cast<const char*>(base_);
    if (p < base) {
      return error(StatusCode::kInternal, "backend cudnn: cudnnGetRNNWeightParams(pseudoLayer ", pseudo_layer,
                   ", linLayerID ", lin_layer_id, ") returned an address before the weight space");
    }
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    int rank = 0;
    int dims[cudnn_host::ParamLocation::kMaxRank] = {};
    int strides[cudnn_host::ParamLocation::kMaxRank] = {};
    CULSTM_CUDNN_CHECK(cudnnGetTensorNdDescriptor(matrix ? m_desc_ : b_desc_, cudnn_host::ParamLocation::kMaxRank,
                                                  &dt, &rank, dims, strides));
    out->present = true;
    out->offset_bytes = static_cast<std::size_t>(p - base);
    out->dtype = dtype_of(dt);
    out->rank = std::min(rank, cudnn_host::ParamLocation::kMaxRank);
    for (int k = 0; k < out->rank; ++k) {
      out->dims[k] = dims[k];
      out->strides[k] = strides[k];
    }
    return Status::Ok();
  }

 private:
  cudnnHandle_t handle_;
  cudnnRNNDescriptor_t desc_;
  std::size_t bytes_;
  const void* base_;
  cudnnTensorDescriptor_t m_desc_, b_desc_;
};

// ---------------------------------------------------------------------------------------------------------------
// Workspace: [lengths i32 x B][x reversed (direction reverse)][y scratch [T, B, Y]][h, c scratch (auto)]
// [cuDNN workspace][reserve],
// each slice 256-byte aligned, plus 256 bytes so that an unaligned caller pointer can be aligned up.

struct ShapeSizes {
  std::array<bool, kNumAlgos> legal{};
  std::array<std::size_t, kNumAlgos> work{}, reserve{};
  std::array<Outcome, kNumAlgos> outcome{};  // why an algorithm is not legal for the shape
};

struct WorkspaceLayout {
  // Offsets from the aligned base. h_tune / c_tune: where auto's timed runs write h_n / c_n (auto only, else 0
  // bytes), so that the caller's outputs only ever receive the chosen algorithm's final run.
  std::size_t lengths = 0, x_rev = 0, y = 0, h_tune = 0, c_tune = 0, work = 0, reserve = 0;
  std::size_t work_bytes = 0, reserve_bytes = 0;
  std::size_t total = 0;
};

struct TuneKey {
  std::int64_t batch, steps;
  bool full;  // every length == T (persist_static_small_h, for one, takes no variable lengths)
  bool operator<(const TuneKey& o) const {
    return std::tie(batch, steps, full) < std::tie(o.batch, o.steps, o.full);
  }
};

struct TuneResult {
  CudnnAlgo chosen = CudnnAlgo::kStandard;
  std::array<float, kNumAlgos> ms{};             // mean of kTuneRuns; < 0: not run
  std::array<std::string, kNumAlgos> skipped{};  // why a candidate did not run
};

class CudnnBackend;

// ---------------------------------------------------------------------------------------------------------------
// Context

struct ShapeEntry {
  std::int64_t batch = 0, steps = 0;
  DataDesc x, y;
  TensorDesc h, c;
  std::vector<int> lengths;  // the seqLengthArray handed to cudnnSetRNNDataDescriptor (host, B values)
  alignas(4) std::uint8_t padding[4] = {};
};

struct ModelEntry {
  std::uint64_t uid = 0;
  DropoutDesc dropout;
  std::array<RnnDesc, kNumAlgos> descs;  // null where the algorithm is not usable (CudnnBackend::usable)
  std::vector<std::unique_ptr<ShapeEntry>> shapes;
  std::size_t next_shape_slot = 0;
  std::vector<std::pair<std::int64_t, RnnDesc>> dynamic;  // persist_dynamic descriptors built for a batch size
  std::size_t next_dynamic_slot = 0;
};

class CudnnContext final : public ContextImpl {
 public:
  explicit CudnnContext(int device) : ContextImpl(Backend::kCudnn, device) {}

  Status init() {
    CULSTM_CUDNN_CHECK(cudnnCreate(handle.out()));
    CULSTM_RETURN_IF_ERROR(start.create());
    CULSTM_RETURN_IF_ERROR(stop.create());
    return Status::Ok();
  }

  HandleOwner handle;
  Event start, stop;
  std::vector<std::unique_ptr<ModelEntry>> models;
  std::size_t next_model_slot = 0;

  ~CudnnContext() override {
    // Destroy descriptors before the handle, with the Context's device current.
    DeviceGuard guard;
    (void)guard.enter(device());
    models.clear();
    handle.reset();
    start.reset();
    stop.reset();
  }
};

// ---------------------------------------------------------------------------------------------------------------
// The backend (one per Model)

struct AlgoState {
  bool legal = false;
  std::string why_not;  // cuDNN's refusal of the spec
  RnnDesc desc;         // the Model's own: weight layout and workspace-size queries
  int weight_space = -1;
};

std::atomic<std::uint64_t> g_next_uid{1};

class CudnnBackend final : public BackendImpl {
 public:
  CudnnBackend(const LstmSpec& spec, const ModelOptions& options)
      : spec_(spec), options_(options), config_(config_for(spec)), uid_(g_next_uid.fetch_add(1)) {}

  ~CudnnBackend() override {
    DeviceGuard guard;
    (void)guard.enter(options_.device);
    for (AlgoState& a : algos_) a.desc.reset();
    dropout_.reset();
    handle_.reset();
    weight_spaces_.clear();
  }

  Status init(const Weights& weights);

  Backend kind() const noexcept override { return Backend::kCudnn; }
  MemoryKind data_memory() const noexcept override { return MemoryKind::kDevice; }
  const Plan& plan() const noexcept override { return plan_; }

  std::size_t workspace_size(std::int64_t batch, std::int64_t seq_len) const noexcept override {
    try {
      ShapeSizes sizes;
      sizes_for(batch, seq_len, &sizes);
      return layout_for(batch, seq_len, sizes).total;
    } catch (...) {  // out of host memory: report a size no caller has, forward then fails on its own check
      return static_cast<std::size_t>(-1);
    }
  }

  Status create_context(int device, std::unique_ptr<ContextImpl>* out) const override {
    DeviceGuard guard;
    CULSTM_RETURN_IF_ERROR(guard.enter(device));
    auto ctx = std::make_unique<CudnnContext>(device);
    CULSTM_RETURN_IF_ERROR(ctx->init());
    ModelEntry* entry = nullptr;
    CULSTM_RETURN_IF_ERROR(model_entry(*ctx, &entry));  // ready for this Model: its first forward creates less
    *out = std::move(ctx);
    return Status::Ok();
  }

  Status forward(ContextImpl& ctx, const ForwardArgs& args, const ForwardShape& shape, Stream stream) const override;

  std::string tuning_report() const;

 private:
  // The workspace sizes of every algorithm for (B, T), computed once per shape (all lengths T).
  void sizes_for(std::int64_t batch, std::int64_t steps, ShapeSizes* out) const;
  ShapeSizes query_sizes(std::int64_t batch, std::int64_t steps) const;  // query_mu_ held
  WorkspaceLayout layout_for(std::int64_t batch, std::int64_t steps, const ShapeSizes& sizes) const;

  // Whether forward may run algorithm `a`: every one under auto, else only options.cudnn_algo.
  bool candidate(int a) const {
    return options_.cudnn_algo == CudnnAlgo::kAuto || algo_index(options_.cudnn_algo) == a;
  }
  // Whether forward can run algorithm `a` for this spec: cuDNN took it and its weights are packed.
  bool usable(int a) const { return algos_[a].weight_space >= 0; }
  struct Packed {
    std::size_t bytes;
    int algo;  // whose layout it was packed with
  };
  // Sets an RNN descriptor up for algorithm `a` and asks for its weight-space size: cuDNN's answer on the spec.
  Outcome probe(int a, RnnDesc* desc, std::size_t* weight_bytes) const;
  // Packs the weights for algorithm `a` into a weight space of `bytes` (or shares one already packed with an
  // identical layout).
  Status pack(int a, std::size_t bytes, const Weights& weights, cudnnTensorDescriptor_t m_desc,
              cudnnTensorDescriptor_t b_desc, std::vector<Packed>* packed);

  Status model_entry(CudnnContext& ctx, ModelEntry** out) const;
  Status shape_entry(ModelEntry& me, std::int64_t batch, std::int64_t steps, ShapeEntry** out) const;
  Outcome dynamic_desc(CudnnContext& ctx, ModelEntry& me, std::int64_t batch, cudnnRNNDescriptor_t* out) const;
  // The persist_dynamic descriptor `me` (one Context's entry of this Model) has built for `batch`, or null.
  static cudnnRNNDescriptor_t built_dynamic(const ModelEntry& me, std::int64_t batch) {
    for (const auto& d : me.dynamic) {
      if (d.first == batch) return d.second.get();
    }
    return nullptr;
  }

  struct Call {  // one forward's pointers and descriptors
    ShapeEntry* shape;
    const std::int32_t* dev_lengths;
    const void *x, *h0, *c0;
    void *y, *h_n, *c_n;
    void *work, *reserve;
    std::size_t work_bytes, reserve_bytes;
  };
  // One cudnnRNNForward with algorithm `algo`; a refusal comes back in `outcome`, other failures as the Status.
  Status run(CudnnContext& ctx, ModelEntry& me, CudnnAlgo algo, const Call& call, Outcome* outcome) const;
  // The algorithms auto times for a shape: usable for the spec, and cuDNN sized the shape for them.
  std::vector<int> tuning_candidates(const ShapeSizes& sizes) const {
    std::vector<int> out;
    for (int a = 0; a < kNumAlgos; ++a) {
      if (usable(a) && sizes.legal[a]) out.push_back(a);
    }
    return out;
  }
  // Times the candidates with `call` (whose outputs point at workspace scratch) and caches the fastest.
  Status tune(CudnnContext& ctx, ModelEntry& me, const TuneKey& key, const ShapeSizes& sizes, const Call& call,
              cudaStream_t stream, CudnnAlgo* chosen) const;

  LstmSpec spec_;
  ModelOptions options_;
  RnnConfig config_;
  std::uint64_t uid_;
  Plan plan_;
  HandleOwner handle_;  // queries only; guarded by query_mu_ (a handle serves one thread at a time)
  DropoutDesc dropout_;
  std::array<AlgoState, kNumAlgos> algos_;
  std::vector<DeviceBuffer> weight_spaces_;

  // Two locks, so that a slow query (cudnnBuildRNNDynamic compiles kernels) never stalls the other threads'
  // forwards of shapes already known: query_mu_ serializes the queries on handle_; mu_ guards the caches and is
  // only held for lookups and inserts. Order: query_mu_, then mu_.
  mutable std::mutex query_mu_;
  mutable std::int64_t dynamic_built_for_ = -1;  // the batch the Model's persist_dynamic descriptor is built for
  mutable std::mutex mu_;
  mutable std::map<std::pair<std::int64_t, std::int64_t>, ShapeSizes> sizes_;
  mutable std::map<TuneKey, TuneResult> tuned_;
};

Outcome CudnnBackend::probe(int a, RnnDesc* desc, std::size_t* weight_bytes) const {
  Outcome o = make_rnn_desc(config_, kAlgos[a], dropout_.get(), desc);
  if (o.ok()) {
    o = Outcome::of(cudnnGetRNNWeightSpaceSize(handle_.get(), desc->get(), weight_bytes), "cudnnGetRNNWeightSpaceSize");
  }
  return o;
}

Status CudnnBackend::pack(int a, std::size_t bytes, const Weights& weights, cudnnTensorDescriptor_t m_desc,
                          cudnnTensorDescriptor_t b_desc, std::vector<Packed>* packed) {
  AlgoState& st = algos_[a];
  // Share a weight space with an algorithm whose layout is identical (checked parameter by parameter).
  for (const Packed& p : *packed) {
    if (p.bytes != bytes) continue;
    const DeviceBuffer& buf = weight_spaces_[static_cast<std::size_t>(algos_[p.algo].weight_space)];
    const CudnnWeightLayout mine(handle_.get(), st.desc.get(), bytes, buf.get(), m_desc, b_desc);
    const CudnnWeightLayout theirs(handle_.get(), algos_[p.algo].desc.get(), bytes, buf.get(), m_desc, b_desc);
    bool same = false;
    CULSTM_RETURN_IF_ERROR(cudnn_host::same_layout(spec_, mine, theirs, &same));
    if (same) {
      st.weight_space = algos_[p.algo].weight_space;
      return Status::Ok();
    }
  }
  DeviceBuffer buf;
  CULSTM_RETURN_IF_ERROR(buf.allocate(bytes));
  const CudnnWeightLayout layout(handle_.get(), st.desc.get(), bytes, buf.get(), m_desc, b_desc);
  std::vector<std::uint8_t> image;
  CULSTM_RETURN_IF_ERROR(cudnn_host::pack_weight_space(spec_, weights, layout, &image));
  CULSTM_RETURN_IF_ERROR(cuda_status(cudaMemcpy(buf.get(), image.data(), image.size(), cudaMemcpyHostToDevice),
                                     "cudaMemcpy (weight space upload)"));
  st.weight_space = static_cast<int>(weight_spaces_.size());
  weight_spaces_.push_back(std::move(buf));
  packed->push_back({bytes, a});
  return Status::Ok();
}

Status CudnnBackend::init(const Weights& weights) {
  CULSTM_CUDNN_CHECK(cudnnCreate(handle_.out()));
  Outcome o = make_dropout(handle_.get(), &dropout_);
  if (!o.ok()) return error(StatusCode::kCudnnError, "backend cudnn: ", o.text());

  TensorDesc m_desc, b_desc;
  CULSTM_CUDNN_CHECK(cudnnCreateTensorDescriptor(m_desc.out()));
  CULSTM_CUDNN_CHECK(cudnnCreateTensorDescriptor(b_desc.out()));

  std::vector<Packed> packed;
  for (int a = 0; a < kNumAlgos; ++a) {
    AlgoState& st = algos_[a];
    std::size_t weight_bytes = 0;
    o = probe(a, &st.desc, &weight_bytes);
    if (!o.ok() && a == 0 && !environment_failure(o.status) && config_.math_type == CUDNN_TENSOR_OP_MATH) {
      // 16-bit data: cuDNN documents TENSOR_OP_MATH and DEFAULT_MATH for it; PyTorch passes DEFAULT for bf16. Ask
      // again with DEFAULT_MATH, whatever cuDNN answered, before reporting that answer (every algorithm then uses
      // DEFAULT_MATH); when DEFAULT_MATH fails too, the first answer is the one classified and reported.
      const Outcome tensor_op = o;
      config_.math_type = CUDNN_DEFAULT_MATH;
      o = probe(a, &st.desc, &weight_bytes);
      if (!o.ok()) {
        config_.math_type = CUDNN_TENSOR_OP_MATH;
        o = tensor_op;
      }
    }
    if (!o.ok()) {
      st.desc.reset();
      if (a == 0) {  // standard serves every spec cuDNN can express: a refusal there is about the spec itself
        if (environment_failure(o.status)) {
          return error(StatusCode::kBackendUnavailable, "backend cudnn: cuDNN cannot run here: ", o.text());
        }
        if (o.is_refusal(CudnnAlgo::kStandard)) {
          const std::string option =
              spec_.dtype != DType::kF32 ? str("dtype ", dtype_name(spec_.dtype)) : std::string("this spec");
          return error(StatusCode::kNotSupported, "backend cudnn: ", option, ": cuDNN ", cudnnGetVersion(),
                       " refuses it for CUDNN_LSTM: ", o.text());
        }
        return error(StatusCode::kCudnnError, "backend cudnn: ", o.text());
      }
      // A persistent algorithm: whatever cuDNN answers, the spec still runs on the others. Recorded in the Plan.
      st.why_not = o.text();
      continue;
    }
    st.legal = true;
    if (!candidate(a)) {  // an explicit options.cudnn_algo: the others are asked (for the Plan), never packed
      st.desc.reset();
      continue;
    }
    const Status packed_here = pack(a, weight_bytes, weights, m_desc.get(), b_desc.get(), &packed);
    if (!packed_here.ok()) {
      // The algorithm asked for, or a CUDA failure (e.g. out of memory): the caller gets that error as it is.
      if (a == 0 || options_.cudnn_algo != CudnnAlgo::kAuto || packed_here.code() == StatusCode::kCudaError) {
        return packed_here;
      }
      // Unexpected for a layout cuDNN itself reported, and not worth failing the Model for: standard runs the spec.
      st.legal = false;
      st.why_not = str("its weight layout: ", packed_here.message());
      st.desc.reset();
      st.weight_space = -1;
    }
  }
  if (options_.cudnn_algo != CudnnAlgo::kAuto && !algos_[algo_index(options_.cudnn_algo)].legal) {
    return error(StatusCode::kNotSupported, "backend cudnn: options.cudnn_algo = ", cudnn_algo_name(options_.cudnn_algo),
                 ": cuDNN refuses it for this spec: ", algos_[algo_index(options_.cudnn_algo)].why_not);
  }

  // The Plan.
  std::string legal, refused_list;
  for (int a = 0; a < kNumAlgos; ++a) {
    if (algos_[a].legal) {
      legal += str(legal.empty() ? "" : ", ", cudnn_algo_name(kAlgos[a]));
    } else {
      refused_list += str("\n  not available for this spec: ", cudnn_algo_name(kAlgos[a]), ": ", algos_[a].why_not);
    }
  }
  std::size_t weight_bytes = 0;
  for (const DeviceBuffer& b : weight_spaces_) weight_bytes += b.bytes();
  const std::size_t v = cudnnGetVersion();
  const std::string algo_line =
      options_.cudnn_algo == CudnnAlgo::kAuto
          ? str("algorithm: auto: the first forward of each new (B, T, lengths all T or not) times the legal "
                "ones [",
                legal,
                "] on the caller's stream and keeps the fastest (that call synchronizes; later calls of the "
                "shape do not); persist_static_small_h and others that refuse a shape or its lengths are skipped")
          : str("algorithm: ", cudnn_algo_name(options_.cudnn_algo), " (options.cudnn_algo; only its weights are "
                "packed); cuDNN takes this spec with: ", legal);
  std::string summary = str(
      "spec: ", spec_.describe(), "\ncuDNN ", v / 10000, ".", (v % 10000) / 100, ".", v % 100,
      ": cudnnRNNForward(CUDNN_FWD_MODE_INFERENCE), CUDNN_LSTM, ",
      config_.bias_mode == CUDNN_RNN_DOUBLE_BIAS ? "CUDNN_RNN_DOUBLE_BIAS" : "CUDNN_RNN_NO_BIAS", ", ",
      config_.dir_mode == CUDNN_BIDIRECTIONAL ? "CUDNN_BIDIRECTIONAL" : "CUDNN_UNIDIRECTIONAL", ", data ",
      data_type_name(config_.data_type), ", math precision CUDNN_DATA_FLOAT, ", math_type_name(config_.math_type, config_.data_type),
      ", padded IO ",
      config_.layout == CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED ? "BATCH_MAJOR_UNPACKED" : "SEQ_MAJOR_UNPACKED",
      config_.clip ? str(", cell clip MINMAX [-", config_.clip_value, ", ", config_.clip_value, "]") : std::string(),
      "\n", algo_line, refused_list,
      config_.reversed ? "\ndirection reverse: a forward cuDNN LSTM over each sequence reversed in time (x and y "
                         "reversed per sequence in the workspace)"
                       : "",
      "\nweights: ", weight_bytes, " bytes on device in ", weight_spaces_.size(),
      " weight space(s), packed once via cudnnGetRNNWeightParams",
      "\nworkspace: lengths [B] i32", config_.reversed ? " + x reversed [T, B, I]" : "",
      " + y scratch [T, B, D*R]",
      options_.cudnn_algo == CudnnAlgo::kAuto ? " + h, c scratch for auto's timed runs [L*D, B, R], [L*D, B, H]" : "",
      " + cuDNN's workspace for the shape (+ 256 bytes alignment); limits B <= ",
      options_.max_batch, ", T <= ", options_.max_seq_len);
  std::vector<PlanStep> steps;
  for (int l = 0; l < spec_.num_layers; ++l) {
    for (int d = 0; d < spec_.num_directions(); ++d) {
      PlanStep s;
      s.layer = l;
      s.direction = d;
      s.reversed = spec_.runs_reversed(d);
      s.engine = "cudnn";
      s.reason = str("one cudnnRNNForward runs every layer and direction (pseudo-layer ",
                     cudnn_host::pseudo_layer(l, d, spec_.num_directions()), ")");
      steps.push_back(std::move(s));
    }
  }
  plan_ = Plan(Backend::kCudnn, std::move(summary), std::move(steps));
  return Status::Ok();
}

ShapeSizes CudnnBackend::query_sizes(std::int64_t batch, std::int64_t steps) const {
  ShapeSizes s;
  // Asked with every length T and with one mixed, unsorted pattern: cuDNN's sizes may depend on the lengths, and
  // workspace_size() must cover any lengths of the shape. The larger answer is kept; an algorithm that takes only
  // full lengths (refusing the mixed pattern) is sized by the full one and refuses mixed lengths in forward.
  std::vector<int> full(static_cast<std::size_t>(batch), static_cast<int>(steps)), mixed(full);
  for (std::int64_t b = 0; b < batch; ++b) mixed[static_cast<std::size_t>(b)] = static_cast<int>((b * 7) % steps + 1);
  DataDesc x_full, x_mixed;
  Outcome setup = Outcome::of(cudnnCreateRNNDataDescriptor(x_full.out()), "cudnnCreateRNNDataDescriptor");
  if (setup.ok()) setup = Outcome::of(cudnnCreateRNNDataDescriptor(x_mixed.out()), "cudnnCreateRNNDataDescriptor");
  if (setup.ok()) {
    setup = Outcome::of(cudnnSetRNNDataDescriptor(x_full.get(), config_.data_type, config_.layout,
                                                  static_cast<int>(steps), static_cast<int>(batch),
                                                  config_.input_size, full.data(), nullptr),
                        "cudnnSetRNNDataDescriptor (x)");
  }
  const bool mixed_ok =
      setup.ok() && cudnnSetRNNDataDescriptor(x_mixed.get(), config_.data_type, config_.layout,
                                              static_cast<int>(steps), static_cast<int>(batch), config_.input_size,
                                              mixed.data(), nullptr) == CUDNN_STATUS_SUCCESS;
  for (int a = 0; a < kNumAlgos; ++a) {
    if (!usable(a)) continue;
    if (!setup.ok()) {
      s.outcome[a] = setup;
      continue;
    }
    std::size_t work = 0, reserve = 0;
    Outcome o;
    if (kAlgos[a] == CudnnAlgo::kPersistDynamic && dynamic_built_for_ != batch) {
      // The dynamic algorithm sizes its workspace for the mini-batch its kernels were built for: build first (the
      // Model's own descriptor, once per batch size in a row; each Context builds its own for forward).
      dynamic_built_for_ = -1;
      o = Outcome::of(cudnnBuildRNNDynamic(handle_.get(), algos_[a].desc.get(), static_cast<int>(batch)),
                      "cudnnBuildRNNDynamic");
      if (o.ok()) dynamic_built_for_ = batch;
    }
    if (o.ok()) {
      o = Outcome::of(cudnnGetRNNTempSpaceSizes(handle_.get(), algos_[a].desc.get(), CUDNN_FWD_MODE_INFERENCE,
                                                x_full.get(), &work, &reserve),
                      "cudnnGetRNNTempSpaceSizes");
    }
    s.outcome[a] = o;
    if (!o.ok()) continue;
    std::size_t mixed_work = 0, mixed_reserve = 0;
    if (mixed_ok && cudnnGetRNNTempSpaceSizes(handle_.get(), algos_[a].desc.get(), CUDNN_FWD_MODE_INFERENCE,
                                              x_mixed.get(), &mixed_work, &mixed_reserve) == CUDNN_STATUS_SUCCESS) {
      work = std::max(work, mixed_work);
      reserve = std::max(reserve, mixed_reserve);
    }
    s.legal[a] = true;
    s.work[a] = work;
    s.reserve[a] = reserve;
  }
  return s;
}

void CudnnBackend::sizes_for(std::int64_t batch, std::int64_t steps, ShapeSizes* out) const {
  const auto key = std::make_pair(batch, steps);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(key);
    if (it != sizes_.end()) {
      *out = it->second;
      return;
    }
  }
  std::lock_guard<std::mutex> query_lock(query_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);  // another thread may have asked while this one waited
    auto it = sizes_.find(key);
    if (it != sizes_.end()) {
      *out = it->second;
      return;
    }
  }
  DeviceGuard guard;
  if (!guard.enter(options_.device).ok()) {
    *out = ShapeSizes{};  // forward reports the device error itself
    return;
  }
  ShapeSizes sizes = query_sizes(batch, steps);
  std::lock_guard<std::mutex> lock(mu_);
  if (sizes_.size() >= kMaxCachedShapeSizes) sizes_.clear();
  *out = sizes_.emplace(key, std::move(sizes)).first->second;
}

WorkspaceLayout CudnnBackend::layout_for(std::int64_t batch, std::int64_t steps, const ShapeSizes& sizes) const {
  WorkspaceLayout w;
  for (int a = 0; a < kNumAlgos; ++a) {
    if (candidate(a) && sizes.legal[a]) {
      w.work_bytes = std::max(w.work_bytes, sizes.work[a]);
      w.reserve_bytes = std::max(w.reserve_bytes, sizes.reserve[a]);
    }
  }
  const std::size_t elem = dtype_size(spec_.dtype);
  const auto rows = static_cast<std::size_t>(batch * steps);
  w.lengths = 0;
  w.x_rev = align_up(w.lengths + static_cast<std::size_t>(batch) * sizeof(std::int32_t));
  w.y = align_up(w.x_rev + (config_.reversed ? rows * static_cast<std::size_t>(spec_.input_size) * elem : 0));
  w.h_tune = align_up(w.y + rows * static_cast<std::size_t>(spec_.output_size()) * elem);
  const bool tuning = options_.cudnn_algo == CudnnAlgo::kAuto;
  const auto states = static_cast<std::size_t>(spec_.num_layers * spec_.num_directions() * batch);
  w.c_tune = align_up(w.h_tune + (tuning ? states * static_cast<std::size_t>(spec_.recurrent_size()) * elem : 0));
  w.work = align_up(w.c_tune + (tuning ? states * static_cast<std::size_t>(spec_.hidden_size) * elem : 0));
  w.reserve = align_up(w.work + w.work_bytes);
  w.total = w.reserve + w.reserve_bytes + kAlign;
  return w;
}

Status CudnnBackend::model_entry(CudnnContext& ctx, ModelEntry** out) const {
  for (auto& m : ctx.models) {
    if (m->uid == uid_) {
      *out = m.get();
      return Status::Ok();
    }
  }
  auto me = std::make_unique<ModelEntry>();
  me->uid = uid_;
  Outcome o = make_dropout(ctx.handle.get(), &me->dropout);
  if (!o.ok()) return error(StatusCode::kCudnnError, "backend cudnn: ", o.text());
  for (int a = 0; a < kNumAlgos; ++a) {
    if (!usable(a)) continue;
    o = make_rnn_desc(config_, kAlgos[a], me->dropout.get(), &me->descs[a]);
    if (!o.ok()) return error(StatusCode::kCudnnError, "backend cudnn: ", o.text());
  }
  if (ctx.models.size() < kMaxModelsPerContext) {
    ctx.models.push_back(std::move(me));
    *out = ctx.models.back().get();
  } else {
    std::unique_ptr<ModelEntry>& slot = ctx.models[ctx.next_model_slot++ % kMaxModelsPerContext];
    slot = std::move(me);
    *out = slot.get();
  }
  return Status::Ok();
}

Status CudnnBackend::shape_entry(ModelEntry& me, std::int64_t batch, std::int64_t steps, ShapeEntry** out) const {
  for (auto& s : me.shapes) {
    if (s->batch == batch && s->steps == steps) {
      *out = s.get();
      return Status::Ok();
    }
  }
  auto s = std::make_unique<ShapeEntry>();
  s->batch = batch;
  s->steps = steps;
  s->lengths.assign(static_cast<std::size_t>(batch), static_cast<int>(steps));
  CULSTM_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(s->x.out()));
  CULSTM_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(s->y.out()));
  CULSTM_CUDNN_CHECK(cudnnCreateTensorDescriptor(s->h.out()));
  CULSTM_CUDNN_CHECK(cudnnCreateTensorDescriptor(s->c.out()));
  const std::int64_t widest = std::max(spec_.recurrent_size(), spec_.hidden_size);
  if (static_cast<std::int64_t>(spec_.num_layers) * spec_.num_directions() * batch * widest > INT32_MAX) {
    return error(StatusCode::kNotSupported, "backend cudnn: batch ", batch,
                 ": the state tensors [L*D, B, H] exceed cuDNN's 32-bit tensor strides");
  }
  const int LD = spec_.num_layers * spec_.num_directions();
  const int B = static_cast<int>(batch);
  const int R = static_cast<int>(spec_.recurrent_size()), H = static_cast<int>(spec_.hidden_size);
  const int h_dims[3] = {LD, B, R}, h_strides[3] = {B * R, R, 1};
  const int c_dims[3] = {LD, B, H}, c_strides[3] = {B * H, H, 1};
  CULSTM_CUDNN_CHECK(cudnnSetTensorNdDescriptor(s->h.get(), config_.data_type, 3, h_dims, h_strides));
  CULSTM_CUDNN_CHECK(cudnnSetTensorNdDescriptor(s->c.get(), config_.data_type, 3, c_dims, c_strides));
  if (me.shapes.size() < kMaxShapesPerModel) {
    me.shapes.push_back(std::move(s));
    *out = me.shapes.back().get();
  } else {
    std::unique_ptr<ShapeEntry>& slot = me.shapes[me.next_shape_slot++ % kMaxShapesPerModel];
    slot = std::move(s);
    *out = slot.get();
  }
  return Status::Ok();
}

Outcome CudnnBackend::dynamic_desc(CudnnContext& ctx, ModelEntry& me, std::int64_t batch,
                                   cudnnRNNDescriptor_t* out) const {
  if (cudnnRNNDescriptor_t built = built_dynamic(me, batch)) {
    *out = built;
    return Outcome{};
  }
  // A descriptor of its own per batch size: cudnnBuildRNNDynamic compiles kernels for one mini-batch into it.
  RnnDesc desc;
  Outcome o = make_rnn_desc(config_, CudnnAlgo::kPersistDynamic, me.dropout.get(), &desc);
  if (!o.ok()) return o;
  o = Outcome::of(cudnnBuildRNNDynamic(ctx.handle.get(), desc.get(), static_cast<int>(batch)), "cudnnBuildRNNDynamic");
  if (!o.ok()) return o;
  *out = desc.get();
  if (me.dynamic.size() < kMaxDynamicBatches) {
    me.dynamic.emplace_back(batch, std::move(desc));
  } else {
    me.dynamic[me.next_dynamic_slot++ % kMaxDynamicBatches] = std::make_pair(batch, std::move(desc));
  }
  return Outcome{};
}

Status CudnnBackend::run(CudnnContext& ctx, ModelEntry& me, CudnnAlgo algo, const Call& call,
                         Outcome* outcome) const {
  const int a = algo_index(algo);
  *outcome = Outcome{};
  cudnnRNNDescriptor_t desc = me.descs[a].get();
  if (algo == CudnnAlgo::kPersistDynamic) {
    *outcome = dynamic_desc(ctx, me, call.shape->batch, &desc);
    if (!outcome->ok()) return Status::Ok();
  }
  // What this call's descriptor (its actual lengths) needs must fit what workspace_size promised.
  std::size_t work = 0, reserve = 0;
  *outcome = Outcome::of(
      cudnnGetRNNTempSpaceSizes(ctx.handle.get(), desc, CUDNN_FWD_MODE_INFERENCE, call.shape->x.get(), &work, &reserve),
      "cudnnGetRNNTempSpaceSizes");
  if (!outcome->ok()) return Status::Ok();
  if (work > call.work_bytes || reserve > call.reserve_bytes) {
    return error(StatusCode::kInternal, "backend cudnn: ", cudnn_algo_name(algo), " needs ", work, " + ", reserve,
                 " bytes of workspace + reserve for B=", call.shape->batch, " T=", call.shape->steps,
                 " with these lengths, more than the ", call.work_bytes, " + ", call.reserve_bytes,
                 " workspace_size() planned for");
  }
  const DeviceBuffer& weights = weight_spaces_[static_cast<std::size_t>(algos_[a].weight_space)];
  *outcome = Outcome::of(cudnnRNNForward(ctx.handle.get(), desc, CUDNN_FWD_MODE_INFERENCE, call.dev_lengths,
                                         call.shape->x.get(), call.x, call.shape->y.get(), call.y,
                                         call.shape->h.get(), call.h0, call.h_n, call.shape->c.get(), call.c0,
                                         call.c_n, weights.bytes(), weights.get(), call.work_bytes, call.work,
                                         call.reserve_bytes, call.reserve),
                         "cudnnRNNForward");
  return Status::Ok();
}

Status CudnnBackend::tune(CudnnContext& ctx, ModelEntry& me, const TuneKey& key, const ShapeSizes& sizes,
                          const Call& call, cudaStream_t stream, CudnnAlgo* chosen) const {
  TuneResult result;
  result.ms.fill(-1.0f);
  std::vector<int> candidates = tuning_candidates(sizes);
  for (int a = 0; a < kNumAlgos; ++a) {
    if (!algos_[a].legal) {
      result.skipped[a] = "refused for the spec";
    } else if (!usable(a)) {
      result.skipped[a] = "not packed";
    } else if (!sizes.legal[a]) {
      result.skipped[a] = sizes.outcome[a].text();
    }
  }
  if (candidates.empty()) {
    // Standard is always packed under auto, so cuDNN's answer to it for this shape decides: a refusal, or an error.
    return error(sizes.outcome[0].is_refusal(CudnnAlgo::kStandard) ? StatusCode::kNotSupported
                                                                   : StatusCode::kCudnnError,
                 "backend cudnn: no cuDNN algorithm accepts B=", key.batch, " T=", key.steps,
                 ": standard: ", sizes.outcome[0].text());
  }
  int best = candidates.front();
  if (candidates.size() > 1) {  // forward checked that the stream is not being captured
    float best_ms = -1.0f;
    for (int a : candidates) {
      Outcome o;
      CULSTM_RETURN_IF_ERROR(run(ctx, me, kAlgos[a], call, &o));  // warm-up (and the dynamic build)
      if (!o.ok()) {
        // Standard takes whatever cuDNN can express, so its failure is a real one. A persistent algorithm failing
        // (refusing these lengths, its dynamic build, or any other answer) only leaves it out of the choice.
        if (kAlgos[a] == CudnnAlgo::kStandard) {
          return error(StatusCode::kCudnnError, "backend cudnn: ", cudnn_algo_name(kAlgos[a]), ": ", o.text());
        }
        result.skipped[a] = o.text();
        continue;
      }
      CULSTM_CUDA_CHECK(cudaEventRecord(ctx.start.get(), stream));
      for (int k = 0; k < kTuneRuns && o.ok(); ++k) CULSTM_RETURN_IF_ERROR(run(ctx, me, kAlgos[a], call, &o));
      if (!o.ok()) return error(StatusCode::kCudnnError, "backend cudnn: ", cudnn_algo_name(kAlgos[a]), ": ", o.text());
      CULSTM_CUDA_CHECK(cudaEventRecord(ctx.stop.get(), stream));
      CULSTM_RETURN_IF_ERROR(
          cuda_status(cudaEventSynchronize(ctx.stop.get()), "cudaEventSynchronize (cudnn_algo = auto timing)"));
      float ms = 0.0f;
      CULSTM_CUDA_CHECK(cudaEventElapsedTime(&ms, ctx.start.get(), ctx.stop.get()));
      result.ms[a] = ms / kTuneRuns;
      if (best_ms < 0.0f || result.ms[a] < best_ms) {
        best_ms = result.ms[a];
        best = a;
      }
    }
    if (best_ms < 0.0f) {
      return error(StatusCode::kNotSupported, "backend cudnn: every cuDNN algorithm refused B=", key.batch, " T=",
                   key.steps, " with these lengths: standard: ", result.skipped[0]);
    }
  }
  result.chosen = kAlgos[best];
  *chosen = result.chosen;
  const char* log = std::getenv("CULSTM_CUDNN_TUNE_LOG");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tuned_.insert_or_assign(key, std::move(result)).first;
  if (log != nullptr && log[0] != '\0' && log[0] != '0') {
    std::string line = str("culstm cudnn auto: B=", key.batch, " T=", key.steps, key.full ? " lengths=full" : " lengths=mixed",
                           ": ", cudnn_algo_name(it->second.chosen));
    for (int a = 0; a < kNumAlgos; ++a) {
      if (it->second.ms[a] >= 0.0f) line += str("; ", cudnn_algo_name(kAlgos[a]), " ", it->second.ms[a], " ms");
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  return Status::Ok();
}

Status CudnnBackend::forward(ContextImpl& ctx_base, const ForwardArgs& args, const ForwardShape& call_shape,
                             Stream stream) const {
  auto& ctx = static_cast<CudnnContext&>(ctx_base);
  const bool batch_major = spec_.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = call_shape.seq_len;
  const std::int64_t B = call_shape.batch;
  // Validation keeps the host lengths only when some sequence is shorter than T (T >= 1): null means all are T.
  const std::int32_t* lengths = call_shape.lengths;
  CULSTM_RETURN_IF_ERROR(cudnn_host::check_lengths(lengths, B));
  const bool full = lengths == nullptr;

  DeviceGuard device;
  CULSTM_RETURN_IF_ERROR(device.enter(options_.device));
  CULSTM_RETURN_IF_ERROR(check_no_pending_error("cudnn"));
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CULSTM_RETURN_IF_ERROR(query_capture(cuda_stream, options_.device, &capture));
  ShapeSizes sizes;
  sizes_for(B, T, &sizes);
  const WorkspaceLayout ws = layout_for(B, T, sizes);
  if (args.workspace_bytes < ws.total) {  // validate_forward_args checked this already; sizes are cached per shape
    return error(StatusCode::kWorkspaceTooSmall, "workspace_bytes: expected >= ", ws.total, ", got ",
                 args.workspace_bytes);
  }

  // Which algorithm: explicit, or auto's choice for this shape (tuned below on its first call).
  const TuneKey key{B, T, full};
  CudnnAlgo algo = options_.cudnn_algo;
  bool need_tuning = false;
  if (algo != CudnnAlgo::kAuto) {
    const int a = algo_index(algo);
    if (!sizes.legal[a]) {
      const bool refusal = sizes.outcome[a].is_refusal(algo);
      return error(refusal ? StatusCode::kNotSupported : StatusCode::kCudnnError,
                   "backend cudnn: options.cudnn_algo = ", cudnn_algo_name(algo),
                   refusal ? ": cuDNN refuses B=" : ": cuDNN failed to size B=", B, " T=", T, ": ",
                   sizes.outcome[a].text());
    }
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tuned_.find(key);
    if (it != tuned_.end()) {
      algo = it->second.chosen;
    } else {
      need_tuning = true;
    }
  }

  ModelEntry* me = nullptr;
  CULSTM_RETURN_IF_ERROR(model_entry(ctx, &me));
  // What this call would do for the first time, which a capture cannot hold: checked before anything is enqueued,
  // so that a refused call leaves nothing in the caller's graph. auto's tuning times several algorithms; whichever
  // algorithm runs without tuning (explicit, auto's earlier choice, or auto's only candidate) may be persist_dynamic
  // still unbuilt for B in this Context (each Context builds its own descriptor per batch size).
  cudnn_host::FirstUse first;
  CudnnAlgo runs = algo;
  if (need_tuning) {
    const std::vector<int> candidates = tuning_candidates(sizes);
    first.tuning = candidates.size() > 1;
    runs = candidates.size() == 1 ? kAlgos[candidates.front()] : CudnnAlgo::kAuto;
  }
  first.dynamic_build = runs == CudnnAlgo::kPersistDynamic && built_dynamic(*me, B) == nullptr;
  CULSTM_RETURN_IF_ERROR(
      cudnn_host::check_capture(capture != cudaStreamCaptureStatusNone, first, options_.cudnn_algo, B, T));
  ShapeEntry* shape = nullptr;
  CULSTM_RETURN_IF_ERROR(shape_entry(*me, B, T, &shape));
  if (lengths != nullptr) {
    std::copy(lengths, lengths + B, shape->lengths.begin());
  } else {
    std::fill(shape->lengths.begin(), shape->lengths.end(), static_cast<int>(T));
  }
  std::uint32_t padding_bits = 0;
  if (spec_.dtype == DType::kF32) {
    std::memcpy(shape->padding, &args.padding_value, 4);
    std::memcpy(&padding_bits, &args.padding_value, 4);
  } else {
    const std::uint16_t bits = spec_.dtype == DType::kF16 ? detail::float_to_half(args.padding_value)
                                                          : detail::float_to_bf16(args.padding_value);
    std::memcpy(shape->padding, &bits, 2);
    padding_bits = bits;
  }
  const int Ti = static_cast<int>(T), Bi = static_cast<int>(B);
  CULSTM_CUDNN_CHECK(cudnnSetRNNDataDescriptor(shape->x.get(), config_.data_type, config_.layout, Ti, Bi,
                                               config_.input_size, shape->lengths.data(), nullptr));
  CULSTM_CUDNN_CHECK(cudnnSetRNNDataDescriptor(shape->y.get(), config_.data_type, config_.layout, Ti, Bi,
                                               static_cast<int>(spec_.output_size()), shape->lengths.data(),
                                               shape->padding));

  // Carve the caller's workspace.
  const auto raw = reinterpret_cast<std::uintptr_t>(args.workspace);
  char* base = reinterpret_cast<char*>((raw + kAlign - 1) / kAlign * kAlign);
  auto* dev_lengths = reinterpret_cast<std::int32_t*>(base + ws.lengths);
  void* x_rev = base + ws.x_rev;
  void* y_scratch = base + ws.y;

  for (std::int64_t first = 0; first < B; first += gpu::kLengthsPerLaunch) {
    CULSTM_RETURN_IF_ERROR(
        gpu::launch_upload_lengths(gpu::lengths_chunk(shape->lengths.data(), B, first, dev_lengths), stream));
  }
  Call call{};
  call.shape = shape;
  call.dev_lengths = dev_lengths;
  call.x = args.x.data;
  call.h0 = args.h0.data;
  call.c0 = args.c0.data;
  call.y = args.y.data != nullptr && !config_.reversed ? args.y.data : y_scratch;
  call.h_n = args.h_n.data;
  call.c_n = args.c_n.data;
  call.work = ws.work_bytes ? base + ws.work : nullptr;
  call.reserve = ws.reserve_bytes ? base + ws.reserve : nullptr;
  call.work_bytes = ws.work_bytes;
  call.reserve_bytes = ws.reserve_bytes;
  const std::size_t elem = dtype_size(spec_.dtype);
  if (config_.reversed) {
    CULSTM_RETURN_IF_ERROR(cudnn_kernels::reverse_sequences(args.x.data, x_rev, dev_lengths, B, T, spec_.input_size,
                                                            elem, batch_major, false, 0, cuda_stream));
    call.x = x_rev;
  }

  StreamGuard stream_guard;
  CULSTM_RETURN_IF_ERROR(stream_guard.enter(ctx.handle.get(), cuda_stream));
  if (need_tuning) {
    Call timed = call;  // the candidates' runs write scratch: only the chosen algorithm's run below writes outputs
    timed.y = y_scratch;
    timed.h_n = call.h_n != nullptr ? base + ws.h_tune : nullptr;
    timed.c_n = call.c_n != nullptr ? base + ws.c_tune : nullptr;
    CULSTM_RETURN_IF_ERROR(tune(ctx, *me, key, sizes, timed, cuda_stream, &algo));
  }
  Outcome o;
  CULSTM_RETURN_IF_ERROR(run(ctx, *me, algo, call, &o));
  if (!o.ok() && options_.cudnn_algo == CudnnAlgo::kAuto && algo != CudnnAlgo::kStandard && sizes.legal[0]) {
    // auto's choice for this shape fails these particular lengths (tuned on other ones): standard takes every
    // length pattern, and sees the same pointers (so a misuse still surfaces there). The choice of algorithm is
    // auto's own, so this changes no result the caller asked for.
    algo = CudnnAlgo::kStandard;
    CULSTM_RETURN_IF_ERROR(run(ctx, *me, algo, call, &o));
  }
  if (!o.ok()) {
    if (o.is_refusal(algo)) {
      return error(StatusCode::kNotSupported, "backend cudnn: ", cudnn_algo_name(algo),
                   options_.cudnn_algo == CudnnAlgo::kAuto ? " (auto's choice)" : " (options.cudnn_algo)",
                   " refuses B=", B, " T=", T, " with these lengths: ", o.text());
    }
    if (o.status == CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER) {
      return error(StatusCode::kInvalidArgument, "backend cudnn: cuDNN wants its tensors more aligned than their ",
                   dtype_size(spec_.dtype), "-byte elements (pass 256-byte aligned x, h0, c0, y, h_n, c_n): ",
                   o.text());
    }
    return error(StatusCode::kCudnnError, "backend cudnn: ", o.text());
  }
  if (config_.reversed && args.y.data != nullptr) {
    CULSTM_RETURN_IF_ERROR(cudnn_kernels::reverse_sequences(y_scratch, args.y.data, dev_lengths, B, T,
                                                            spec_.output_size(), elem, batch_major, true,
                                                            padding_bits, cuda_stream));
  }
  return Status::Ok();
}

std::string CudnnBackend::tuning_report() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  if (tuned_.empty()) {
    out = options_.cudnn_algo == CudnnAlgo::kAuto
              ? "no shape tuned yet\n"
              : str("options.cudnn_algo = ", cudnn_algo_name(options_.cudnn_algo), ": no tuning\n");
  }
  for (const auto& [key, r] : tuned_) {
    out += str("B=", key.batch, " T=", key.steps, key.full ? " lengths=full: " : " lengths=mixed: ",
               cudnn_algo_name(r.chosen));
    for (int a = 0; a < kNumAlgos; ++a) {
      if (r.ms[a] >= 0.0f) {
        out += str("; ", cudnn_algo_name(kAlgos[a]), " ", r.ms[a], " ms");
      } else if (!r.skipped[a].empty()) {
        out += str("; ", cudnn_algo_name(kAlgos[a]), " skipped (", r.skipped[a], ")");
      }
    }
    out += "\n";
  }
  for (int a = 0; a < kNumAlgos; ++a) {
    if (!algos_[a].legal) out += str("refused for the spec: ", cudnn_algo_name(kAlgos[a]), ": ", algos_[a].why_not, "\n");
  }
  return out;
}

}  // namespace

Status make_cudnn_backend(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                          std::unique_ptr<BackendImpl>* out) {
  // What cuDNN cannot express is known without a GPU.
  CULSTM_RETURN_IF_ERROR(cudnn_host::check_spec_support(spec));
  std::string why;
  const int devices = cuda_device_count(&why);
  if (devices == 0) return error(StatusCode::kBackendUnavailable, "backend cudnn: ", why);
  if (options.device >= devices) {
    return error(StatusCode::kInvalidArgument, "options.device: expected a device ordinal in [0, ", devices - 1,
                 "], got ", options.device);
  }
  DeviceGuard guard;
  CULSTM_RETURN_IF_ERROR(guard.enter(options.device));
  // Our kernels are loaded now, so that none is first loaded inside a capture of the caller's (cudnn_kernels.h).
  const Status image = cudnn_kernels::load_kernels();
  if (!image.ok()) {
    return error(StatusCode::kNotSupported, "backend cudnn: no kernel image of culstm's for this GPU (built for ",
                 CULSTM_CUDA_ARCHITECTURES, "): ", image.message());
  }
  auto backend = std::make_unique<CudnnBackend>(spec, options);
  CULSTM_RETURN_IF_ERROR(backend->init(weights));
  *out = std::move(backend);
  return Status::Ok();
}

Status cudnn_tuning_report(const Model& model, std::string* out) {
  if (out == nullptr) return error(StatusCode::kNullPointer, "out: the report output pointer is null");
  const auto* backend = dynamic_cast<const CudnnBackend*>(&model.impl());
  if (backend == nullptr) {
    return error(StatusCode::kInvalidArgument, "model: expected a model on the cudnn backend, got ",
                 backend_name(model.backend()));
  }
  *out = backend->tuning_report();
  return Status::Ok();
}

#endif  // CULSTM_WITH_CUDNN

}  // namespace culstm
