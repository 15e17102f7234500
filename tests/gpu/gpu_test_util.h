// GPU test helpers: skip without a device, and checked CUDA calls.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>

#include "culstm/culstm.hpp"

// Skips the current test, with the runtime's reason, when no CUDA device is usable.
#define CULSTM_SKIP_WITHOUT_GPU()                                               \
  do {                                                                          \
    std::string culstm_why_;                                                    \
    if (!::culstm::backend_available(::culstm::Backend::kCuda, &culstm_why_)) { \
      GTEST_SKIP() << "needs a CUDA GPU: " << culstm_why_;                      \
    }                                                                           \
  } while (0)

#define CULSTM_ASSERT_CUDA(expr)                                                             \
  do {                                                                                       \
    const cudaError_t culstm_err_ = (expr);                                                  \
    ASSERT_EQ(culstm_err_, cudaSuccess) << #expr << ": " << cudaGetErrorString(culstm_err_); \
  } while (0)
