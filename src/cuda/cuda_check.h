// Internal: CUDA runtime and cuBLAS return codes as culstm::Status (cuda_status.h), and the macros that return them.
#pragma once

#include "cuda_status.h"

// Returns from the enclosing function (which returns Status) when the call fails.
#define CULSTM_CUDA_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cuda_status((expr), #expr))
#define CULSTM_CUBLAS_CHECK(expr) CULSTM_RETURN_IF_ERROR(::culstm::cublas_status((expr), #expr))
