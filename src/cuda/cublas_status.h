// Internal: cuBLAS return codes as culstm::Status, and the check macro that returns them (the cuda backend is the one
// cuBLAS user). CUDA runtime codes: gpu/gpu_status.h, gpu/cuda_check.h.
#pragma once

#include <cublas_api.h>

#include "detail.h"

namespace culstm {

inline Status cublas_status(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return detail::error(StatusCode::kCublasError, what, ": ", cublasGetStatusName(st), " (", cublasGetStatusString(st),
                       ")");
}

}  // namespace culstm

// Returns from the enclosing function (which returns Status) when the call fails.
#define CULSTM_CUBLAS_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cublas_status((expr), #expr))
