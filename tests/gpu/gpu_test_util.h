// GPU test helpers: skip without a device, and checked CUDA calls.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "culstm/culstm.hpp"

// CULSTM_REQUIRE_GPU=1 (tools/gpu-session.sh sets it): a test that would skip for want of a usable GPU fails
// instead, so that a machine whose driver cannot run this build never looks like a green run.
inline bool culstm_gpu_required() {
  const char* v = std::getenv("CULSTM_REQUIRE_GPU");
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

// Skips the current test, with the runtime's reason, when no CUDA device is usable.
#define CULSTM_SKIP_WITHOUT_GPU()                                                                 \
  do {                                                                                            \
    std::string culstm_why_;                                                                      \
    if (!::culstm::backend_available(::culstm::Backend::kCuda, &culstm_why_)) {                   \
      if (culstm_gpu_required()) GTEST_FAIL() << "CULSTM_REQUIRE_GPU is set, but: " << culstm_why_; \
      GTEST_SKIP() << "needs a CUDA GPU: " << culstm_why_;                                        \
    }                                                                                             \
  } while (0)

// A failed CUDA call fails the test, and its error is consumed here: left pending, the library's next forward()
// would report it (as it must report errors it did not cause) and blame the wrong test.
#define CULSTM_ASSERT_CUDA(expr)                                                                          \
  do {                                                                                                    \
    const cudaError_t culstm_err_ = (expr);                                                               \
    if (culstm_err_ != cudaSuccess) {                                                                     \
      cudaGetLastError();                                                                                 \
      FAIL() << #expr << ": " << cudaGetErrorName(culstm_err_) << " (" << cudaGetErrorString(culstm_err_) \
             << ")";                                                                                      \
    }                                                                                                     \
  } while (0)
