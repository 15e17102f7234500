// gpu/lengths_upload.h: the per-sequence lengths from the caller's host array into device memory, as kernel
// parameters: no copy from pageable host memory (which may synchronize), and a captured graph holds the values
// themselves. Host-safe (no CUDA header); the kernel and launcher are in lengths_upload.cu.
#pragma once

#include <algorithm>
#include <cstdint>

#include "culstm/status.h"
#include "culstm/types.h"
#include "host_device.h"

namespace culstm {
namespace gpu {

// Lengths per launch: 1000 int32 plus the header keep the parameters under the classic 4 KiB kernel-parameter
// limit.
constexpr int kLengthsPerLaunch = 1000;
struct UploadLengthsParams {
  int* dst = nullptr;  // [B] int32 on the device; this launch writes dst[offset .. offset + count)
  int offset = 0;
  int count = 0;
  int values[kLengthsPerLaunch] = {};
};
static_assert(sizeof(UploadLengthsParams) <= 4096, "kernel parameters beyond 4 KiB need CUDA 12.1+ and Volta+");

// The launch for lengths [first, first + kLengthsPerLaunch) of `host` ([batch] values) into `dst`.
inline UploadLengthsParams lengths_chunk(const std::int32_t* host, std::int64_t batch, std::int64_t first, int* dst) {
  UploadLengthsParams p;
  p.dst = dst;
  p.offset = static_cast<int>(first);
  p.count = static_cast<int>(std::min<std::int64_t>(kLengthsPerLaunch, batch - first));
  std::copy(host + first, host + first + p.count, p.values);
  return p;
}

// What the kernel's thread does for element k in [0, count) (run on the CPU by tests/unit/cuda_schedule_test.cpp).
CULSTM_HD void upload_lengths_element(const UploadLengthsParams& p, long long k) {
  p.dst[p.offset + k] = p.values[k];
}

// Enqueues culstm_upload_lengths on `stream` and checks the launch.
Status launch_upload_lengths(const UploadLengthsParams& params, Stream stream);
// Loads the kernel on the current device (see kernels::load_stepwise_kernels); kCudaError without a kernel image.
Status load_upload_lengths_kernel();

}  // namespace gpu
}  // namespace culstm
