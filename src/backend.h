// Internal: the interface every backend implements, and the argument validation they share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "culstm/culstm.hpp"

namespace culstm {

// Sizes of one forward call, derived once by validation from x, the layout and the host lengths.
struct ForwardShape {
  std::int64_t seq_len = 0;               // T
  std::int64_t batch = 0;                 // B
  std::int64_t steps = 0;                 // max(len), T without lengths: the steps a GPU engine runs (0: none)
  const std::int32_t* lengths = nullptr;  // host; null when absent or all equal to T (nothing to mask)
};

// T and B from x (rank 3, already checked); steps = T, no lengths.
ForwardShape forward_shape(const LstmSpec& spec, const TensorView& x);
// steps and lengths from the host lengths (already checked: B values in [0, T]).
void apply_lengths(const std::int32_t* lengths, ForwardShape* shape);

class ContextImpl {
 public:
  ContextImpl(Backend backend, int device) : backend_(backend), device_(device) {}
  virtual ~ContextImpl() = default;
  Backend backend() const noexcept { return backend_; }
  int device() const noexcept { return device_; }

 private:
  Backend backend_;
  int device_;
};

class BackendImpl {
 public:
  virtual ~BackendImpl() = default;
  virtual Backend kind() const noexcept = 0;
  // Where x, y, states and workspace must live.
  virtual MemoryKind data_memory() const noexcept = 0;
  virtual const Plan& plan() const noexcept = 0;
  // batch and seq_len are already checked against the model's limits.
  virtual std::size_t workspace_size(std::int64_t batch, std::int64_t seq_len) const noexcept = 0;
  virtual Status create_context(int device, std::unique_ptr<ContextImpl>* out) const = 0;
  // Called only with arguments that passed validate_forward_args; `shape` is what it derived.
  virtual Status forward(ContextImpl& ctx, const ForwardArgs& args, const ForwardShape& shape,
                         Stream stream) const = 0;
};

// Each factory validates what only it knows (e.g. cuDNN's unsupported options) and returns
// kBackendUnavailable / kNotSupported / kNotImplemented with a reason when it cannot serve the spec.
Status make_reference_backend(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                              std::unique_ptr<BackendImpl>* out);
Status make_cuda_backend(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                         std::unique_ptr<BackendImpl>* out);
Status make_cudnn_backend(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                          std::unique_ptr<BackendImpl>* out);

// Checks every argument of forward() against the spec, the model's limits and the backend's workspace need
// (docs/design.md §4). On success `shape` holds T and B.
Status validate_forward_args(const LstmSpec& spec, const ModelOptions& options, MemoryKind data_memory,
                             const BackendImpl& backend, const ForwardArgs& args, ForwardShape* shape);

// Checks batch and seq_len against the model's limits (used by workspace_size and forward).
Status check_model_limits(const ModelOptions& options, std::int64_t batch, std::int64_t seq_len);

}  // namespace culstm
