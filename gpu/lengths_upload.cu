// gpu/lengths_upload.cu: the lengths upload kernel and its launcher (lengths_upload.h).
#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "lengths_upload.h"

namespace culstm {
namespace gpu {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) culstm_upload_lengths(UploadLengthsParams p) {
  for (long long k = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; k < p.count;
       k += static_cast<long long>(gridDim.x) * blockDim.x) {
    upload_lengths_element(p, k);
  }
}

}  // namespace

Status launch_upload_lengths(const UploadLengthsParams& params, Stream stream) {
  const int blocks = params.count > kThreads ? (params.count + kThreads - 1) / kThreads : 1;
  culstm_upload_lengths<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(params);
  return check_launch("culstm_upload_lengths");
}

Status load_upload_lengths_kernel() {
  cudaFuncAttributes attributes{};
  return cuda_status(cudaFuncGetAttributes(&attributes, culstm_upload_lengths),
                     "cudaFuncGetAttributes(culstm_upload_lengths)");
}

}  // namespace gpu
}  // namespace culstm
