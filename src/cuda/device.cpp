// What this process can run: CUDA devices, library versions, backend availability, build information.
#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>

#include "../backend.h"
#include "detail.h"

#if CULSTM_WITH_CUDNN
#include <cudnn.h>
#endif

namespace culstm {

int cuda_device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = detail::str("no usable CUDA device (", cudaGetErrorName(err), ": ", cudaGetErrorString(err), ")");
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device found";
  return count;
}

bool backend_available(Backend backend, std::string* why) {
  switch (backend) {
    case Backend::kAuto:
    case Backend::kReference: return true;
    case Backend::kCuda: return cuda_device_count(why) > 0;
    case Backend::kCudnn:
#if CULSTM_WITH_CUDNN
      return cuda_device_count(why) > 0;
#else
      if (why) *why = "culstm was built without cuDNN (CULSTM_WITH_CUDNN=OFF)";
      return false;
#endif
  }
  return false;
}

std::string build_info() {
  std::string out;
  out += detail::str("culstm: ", version(), "\n");
  out += detail::str("cuda_toolkit: ", CUDART_VERSION / 1000, ".", (CUDART_VERSION % 1000) / 10, "\n");
  int runtime = 0, driver = 0;
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) {
    out += detail::str("cuda_runtime: ", runtime / 1000, ".", (runtime % 1000) / 10, "\n");
  }
  if (cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0) {
    out += detail::str("cuda_driver: ", driver / 1000, ".", (driver % 1000) / 10, "\n");
  } else {
    out += "cuda_driver: none\n";
  }
  out += detail::str("cuda_architectures: ", CULSTM_CUDA_ARCHITECTURES, "\n");
  int major = 0, minor = 0, patch = 0;
  cublasStatus_t cublas = cublasGetProperty(MAJOR_VERSION, &major);
  if (cublas == CUBLAS_STATUS_SUCCESS) cublas = cublasGetProperty(MINOR_VERSION, &minor);
  if (cublas == CUBLAS_STATUS_SUCCESS) cublas = cublasGetProperty(PATCH_LEVEL, &patch);
  if (cublas == CUBLAS_STATUS_SUCCESS) {
    out += detail::str("cublas: ", major, ".", minor, ".", patch, "\n");
  } else {
    out += detail::str("cublas: unavailable (", cublasGetStatusName(cublas), ")\n");
  }
#if CULSTM_WITH_CUDNN
  const std::size_t cudnn = cudnnGetVersion();
  out += detail::str("cudnn: ", cudnn / 10000, ".", (cudnn % 10000) / 100, ".", cudnn % 100, " (built against ",
                     CUDNN_MAJOR, ".", CUDNN_MINOR, ".", CUDNN_PATCHLEVEL, ")\n");
#else
  out += "cudnn: not built (CULSTM_WITH_CUDNN=OFF)\n";
#endif
  return out;
}

std::string system_info() {
  std::string out = build_info();
  std::string why;
  const int devices = cuda_device_count(&why);
  out += devices == 0 ? detail::str("gpus: none (", why, ")\n") : detail::str("gpus: ", devices, "\n");
  for (Backend b : {Backend::kReference, Backend::kCuda, Backend::kCudnn}) {
    why.clear();
    std::string name = backend_name(b);
    name.resize(std::max<std::size_t>(name.size(), 9), ' ');  // the longest name, "reference": one column
    out += backend_available(b, &why) ? detail::str("backend ", name, " available\n")
                                      : detail::str("backend ", name, " unavailable: ", why, "\n");
  }
  return out;
}

}  // namespace culstm
