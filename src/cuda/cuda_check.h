// Internal: CUDA runtime and cuBLAS return codes as culstm::Status (DESIGN.md §4: every code is checked).
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include "../detail.h"

namespace culstm {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return detail::error(StatusCode::kCudaError, what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

inline Status cublas_status(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return detail::error(StatusCode::kCublasError, what, ": ", cublasGetStatusName(st), " (", cublasGetStatusString(st),
                       ")");
}

// The last launch's error (cudaGetLastError), naming the kernel.
inline Status check_launch(const char* kernel) {
  return cuda_status(cudaGetLastError(), kernel);
}

}  // namespace culstm

// Returns from the enclosing function (which returns Status) when the call fails.
#define CULSTM_CUDA_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cuda_status((expr), #expr))
#define CULSTM_CUBLAS_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cublas_status((expr), #expr))
