// culstm/culstm.hpp: the C++ API. Flow (docs/design.md §1):
//   LstmSpec + Weights --Model::create--> Model (immutable, shareable) ; Context::create per thread ;
//   Model::workspace_size(B, T) ; forward(ctx, model, args, stream) enqueues on the caller's stream.
// Compiles as plain C++17; no CUDA header is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "culstm/activation.h"
#include "culstm/export.h"
#include "culstm/spec.h"
#include "culstm/status.h"
#include "culstm/types.h"
#include "culstm/version.h"
#include "culstm/weights.h"

namespace culstm {

enum class Backend : int {
  kAuto = 0,       // cuda when a GPU is present and the backend can serve the spec, else reference
  kReference = 1,  // CPU, float64 accumulation, host pointers; always built. Defines correctness.
  kCuda = 2,       // culstm's own GPU backend
  kCudnn = 3,      // cuDNN 9's RNN API (cross-check and baseline); only when built with cuDNN
};
CULSTM_API const char* backend_name(Backend b) noexcept;  // "auto", "reference", "cuda", "cudnn"

// Whether `backend` can run in this process: built in, and a GPU present where one is needed. `why` (optional)
// receives the reason when it cannot.
CULSTM_API bool backend_available(Backend backend, std::string* why = nullptr);

// Number of usable CUDA devices; 0 when there is no driver or no device, with the runtime's reason in `why`.
CULSTM_API int cuda_device_count(std::string* why = nullptr);

// The cuDNN RNN algorithm the `cudnn` backend runs (ignored by the other backends; docs/cudnn_backend.md).
// An explicit algorithm that cuDNN refuses for the spec or a call's shape gives kNotSupported naming it.
enum class CudnnAlgo : int {
  kAuto = 0,                 // first forward of each new (B, T, all-lengths-T?) times every legal algorithm on the
                             // caller's stream and keeps the fastest: that one call synchronizes; later calls do not
  kStandard = 1,             // CUDNN_RNN_ALGO_STANDARD
  kPersistStatic = 2,        // CUDNN_RNN_ALGO_PERSIST_STATIC
  kPersistStaticSmallH = 3,  // CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H
  kPersistDynamic = 4,       // CUDNN_RNN_ALGO_PERSIST_DYNAMIC (compiled at run time per batch size and Context)
};
CULSTM_API const char* cudnn_algo_name(CudnnAlgo a) noexcept;  // "auto", "standard", "persist_static", ...

// Which engine runs the recurrence of each layer in the cuda backend (docs/persistent.md). Plan::explain() says,
// per layer, which one runs and why.
enum class CudaEngine : int {
  kAuto = 0,        // persistent where a layer fits on chip AND the traits table holds a measured tile for this
                    // GPU's architecture (kernels/persistent_traits.h); stepwise elsewhere
  kStepwise = 1,    // cuBLAS recurrent GEMM + one fused pointwise kernel per step: serves every spec
  kPersistent = 2,  // persistent wherever a layer fits on chip (measured or not); stepwise for layers that do not
};
CULSTM_API const char* cuda_engine_name(CudaEngine e) noexcept;  // "auto", "stepwise", "persistent"

struct ModelOptions {
  Backend backend = Backend::kAuto;
  int device = 0;               // CUDA device ordinal (GPU backends)
  std::int64_t max_batch = 64;  // forward() refuses larger batches; workspace and plans are sized for these
  std::int64_t max_seq_len = 4096;
  CudnnAlgo cudnn_algo = CudnnAlgo::kAuto;     // backend cudnn only
  CudaEngine cuda_engine = CudaEngine::kAuto;  // backend cuda only
};

// The schedule: per layer and direction, which engine runs the recurrence, its workspace slice, and why.
struct PlanStep {
  int layer = 0;
  int direction = 0;                 // 0..D-1
  bool reversed = false;             // runs t = len-1 .. 0
  std::string engine;                // "reference", "stepwise", "persistent", "cudnn"
  std::string reason;                // why that engine
  std::size_t workspace_offset = 0;  // bytes, for the plan's (max_batch, max_seq_len)
  std::size_t workspace_bytes = 0;
};

class CULSTM_API Plan {
 public:
  Plan() = default;
  Plan(Backend backend, std::string summary, std::vector<PlanStep> steps)
      : backend_(backend), summary_(std::move(summary)), steps_(std::move(steps)) {}
  Backend backend() const noexcept { return backend_; }
  const std::vector<PlanStep>& steps() const noexcept { return steps_; }
  // Multi-line, human-readable: backend, spec, then one line per (layer, direction).
  std::string explain() const;

 private:
  Backend backend_ = Backend::kReference;
  std::string summary_;
  std::vector<PlanStep> steps_;
};

// Arguments of one forward call. Shapes (T = steps, B = batch, L = layers, D = directions, R = proj or hidden):
//   x        [T, B, I] (seq-major) or [B, T, I] (batch-major), spec.dtype          required
//   lengths  [B] int32, each in [0, T]; absent = every sequence has T steps          optional
//   h0       [L*D, B, R] spec.dtype; absent = zeros                                   optional
//   c0       [L*D, B, H] spec.dtype; absent = zeros                                   optional
//   y        [T, B, D*R] or [B, T, D*R] spec.dtype; steps t >= lengths[b] hold padding_value  optional
//   h_n      [L*D, B, R], c_n [L*D, B, H]: state after each sequence's own last step     optional
//   workspace: at least Model::workspace_size(B, T) bytes, host memory for the reference backend, device memory
//              for GPU backends; may be null when that size is 0. Its first workspace_size(B, T) bytes must not
//              overlap any tensor above (InvalidArgument).
// Data tensors live where the backend computes (host for reference, device for cuda/cudnn); `lengths` lives on
// the host for every backend.
struct ForwardArgs {
  TensorView x;
  TensorView lengths;
  TensorView h0, c0;
  TensorView y, h_n, c_n;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  float padding_value = 0.0f;
};

class BackendImpl;  // internal
class ContextImpl;  // internal

class CULSTM_API Model {
 public:
  // Validates spec, weights and options, picks the backend, uploads/repacks weights and builds the Plan.
  static Status create(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                       std::shared_ptr<const Model>* out);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const LstmSpec& spec() const noexcept;
  const ModelOptions& options() const noexcept;
  Backend backend() const noexcept;  // the backend actually chosen (never kAuto)
  const Plan& plan() const noexcept;
  // Bytes of workspace forward() needs for this batch and sequence length.
  Status workspace_size(std::int64_t batch, std::int64_t seq_len, std::size_t* bytes) const;

  const BackendImpl& impl() const noexcept { return *impl_; }  // internal

 private:
  Model() = default;
  static Status create_model(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                             std::shared_ptr<const Model>* out);
  LstmSpec spec_;
  ModelOptions options_;
  std::unique_ptr<BackendImpl> impl_;
};

// Per-thread handles (cuBLAS, cuDNN) and small scratch for one backend and device. Never share one between threads
// that run concurrently; create one per thread or stream.
class CULSTM_API Context {
 public:
  static Status create(const Model& model, std::unique_ptr<Context>* out);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Backend backend() const noexcept;
  int device() const noexcept;
  ContextImpl& impl() noexcept { return *impl_; }  // internal

 private:
  Context() = default;
  std::unique_ptr<ContextImpl> impl_;
};

// Runs the network. Validates every argument first (outputs untouched on failure), then only enqueues work on
// `stream`: no allocation, no host synchronization. The reference backend runs synchronously on the calling thread.
CULSTM_API Status forward(Context& ctx, const Model& model, const ForwardArgs& args, Stream stream = nullptr);

// Library version, "MAJOR.MINOR.PATCH".
CULSTM_API const char* version() noexcept;
// Build configuration, one "key: value" per line (CUDA architectures, cuBLAS/cuDNN versions, backends).
CULSTM_API std::string build_info();
// build_info(), then what this process can run: "gpus: N" (or "gpus: none (reason)") and one line per backend,
// "backend <name> available" or "backend <name> unavailable: <reason>" (names padded to one column; the same
// answers as cuda_device_count and backend_available). The text `culstm info` prints and Python's culstm.info()
// returns.
CULSTM_API std::string system_info();

}  // namespace culstm
