// The `cudnn` backend on cuDNN 9's RNN API (DESIGN.md §1). Issue 5 implements it; until then it reports clearly
// why it cannot run.
// Profiling (docs/profiling.md): culstm::forward already wraps every call in the `culstm/forward` NVTX range; the
// backend's forward() wraps the host code of each (layer, direction) in nvtx::LayerRange (src/nvtx.h).
#include <string>

#include "../backend.h"
#include "../detail.h"
#include "cudnn_host.h"

namespace culstm {

Status make_cudnn_backend(const LstmSpec& spec, const Weights& /*weights*/, const ModelOptions& options,
                          std::unique_ptr<BackendImpl>* /*out*/) {
#if !CULSTM_WITH_CUDNN
  (void)spec;
  (void)options;
  return detail::error(StatusCode::kBackendUnavailable,
                       "backend cudnn: culstm was built without cuDNN (CULSTM_WITH_CUDNN=OFF)");
#else
  // What cuDNN's LSTM cannot express is known without a GPU (src/cudnn/cudnn_host.h).
  CULSTM_RETURN_IF_ERROR(cudnn_host::check_spec_support(spec));
  std::string why;
  if (!backend_available(Backend::kCudnn, &why)) {
    return detail::error(StatusCode::kBackendUnavailable, "backend cudnn: ", why);
  }
  const int devices = cuda_device_count(nullptr);
  if (options.device >= devices) {
    return detail::error(StatusCode::kInvalidArgument, "options.device: expected a device ordinal in [0, ", devices - 1,
                         "], got ", options.device);
  }
  return detail::error(StatusCode::kNotImplemented, "backend cudnn: not implemented yet");
#endif
}

}  // namespace culstm
