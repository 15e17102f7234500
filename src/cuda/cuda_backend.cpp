// The `cuda` backend (DESIGN.md §1). Issue 4 implements it; until then it reports clearly that it cannot run, so
// `auto` falls back to the reference and an explicit request gets kNotImplemented.
// Profiling (docs/profiling.md): culstm::forward already wraps every call in the `culstm/forward` NVTX range; the
// backend's forward() wraps the host code of each (layer, direction) in nvtx::LayerRange (src/nvtx.h).
#include <string>

#include "../backend.h"
#include "../detail.h"

namespace culstm {

Status make_cuda_backend(const LstmSpec& /*spec*/, const Weights& /*weights*/, const ModelOptions& options,
                         std::unique_ptr<BackendImpl>* /*out*/) {
  std::string why;
  const int devices = cuda_device_count(&why);
  if (devices == 0) return detail::error(StatusCode::kBackendUnavailable, "backend cuda: ", why);
  if (options.device >= devices) {
    return detail::error(StatusCode::kInvalidArgument, "options.device: expected a device ordinal in [0, ", devices - 1,
                         "], got ", options.device);
  }
  return detail::error(StatusCode::kNotImplemented, "backend cuda: the GPU recurrence is not implemented yet");
}

}  // namespace culstm
