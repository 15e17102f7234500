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

// An error some earlier CUDA work of the caller's thread left pending (cudaPeekAtLastError): reported (and
// cleared) before a call enqueues anything, so that no launch check of ours later reports it as our kernel's failure
// after part of the work was enqueued. A sticky error (a broken context) cannot be cleared and fails again.
inline Status check_no_pending_error(const char* backend) {
  const cudaError_t pending = cudaPeekAtLastError();
  if (pending == cudaSuccess) return Status::Ok();
  cudaGetLastError();
  return detail::error(StatusCode::kCudaError, "backend ", backend,
                       ": an error from earlier CUDA work on this thread was pending (nothing was enqueued; the error "
                       "is now cleared): ", cudaGetErrorName(pending), " (", cudaGetErrorString(pending), ")");
}

// The last launch's error (cudaGetLastError), naming the kernel.
inline Status check_launch(const char* kernel) {
  return cuda_status(cudaGetLastError(), kernel);
}

}  // namespace culstm

// Returns from the enclosing function (which returns Status) when the call fails.
#define CULSTM_CUDA_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cuda_status((expr), #expr))
#define CULSTM_CUBLAS_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cublas_status((expr), #expr))
