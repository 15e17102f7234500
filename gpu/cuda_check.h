// gpu/cuda_check.h: the one check macro of culstm's CUDA runtime calls (gpu_status.h), for both GPU backends and
// the kernels' launchers. Kept apart from gpu_status.h so that a header can use the Status helpers without
// defining a macro in every file that includes it.
#pragma once

#include "gpu_status.h"

// Returns the call's failure, as a Status naming the call, from the enclosing function (which returns Status).
#define CULSTM_CUDA_CHECK(expr)                                                  \
  do {                                                                           \
    ::culstm::Status culstm_cuda_status_ = ::culstm::cuda_status((expr), #expr); \
    if (!culstm_cuda_status_.ok()) return culstm_cuda_status_;                   \
  } while (0)
