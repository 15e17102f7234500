// The cuDNN backend's device helper: reverse each sequence's valid prefix (the reverse-only direction runs as a
// forward cuDNN LSTM on time-reversed sequences; docs/cudnn_backend.md).
#include <algorithm>
#include <string>

#include "cudnn_kernels.h"
#include "gpu_status.h"
#include "lengths_upload.h"

namespace culstm {
namespace cudnn_kernels {
namespace {

template <typename E>
__global__ void reverse_kernel(const E* __restrict__ src, E* __restrict__ dst, const std::int32_t* __restrict__ lengths,
                               std::int64_t batch, std::int64_t steps, std::int64_t features, bool batch_major,
                               bool fill, E fill_value) {
  const std::int64_t rows = batch * steps;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const std::int64_t b = batch_major ? row / steps : row % batch;
    const std::int64_t t = batch_major ? row % steps : row / batch;
    const std::int64_t len = lengths[b];
    E* out = dst + row * features;
    if (t < len) {
      const std::int64_t s = len - 1 - t;
      const E* in = src + (batch_major ? b * steps + s : s * batch + b) * features;
      for (std::int64_t f = threadIdx.x; f < features; f += blockDim.x) out[f] = in[f];
    } else if (fill) {
      for (std::int64_t f = threadIdx.x; f < features; f += blockDim.x) out[f] = fill_value;
    } else {
      const E* in = src + row * features;
      for (std::int64_t f = threadIdx.x; f < features; f += blockDim.x) out[f] = in[f];
    }
  }
}

}  // namespace

Status reverse_sequences(const void* src, void* dst, const std::int32_t* lengths, std::int64_t batch,
                         std::int64_t steps, std::int64_t features, std::size_t element_size, bool batch_major,
                         bool fill, std::uint32_t fill_bits, cudaStream_t stream) {
  const std::int64_t rows = batch * steps;
  const unsigned grid = static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>(rows, 65535)));
  const int block = features >= 256 ? 256 : features >= 64 ? 128 : 32;
  if (element_size == 4) {
    reverse_kernel<std::uint32_t><<<grid, block, 0, stream>>>(static_cast<const std::uint32_t*>(src),
                                                              static_cast<std::uint32_t*>(dst), lengths, batch,
                                                              steps, features, batch_major, fill, fill_bits);
  } else if (element_size == 2) {
    reverse_kernel<std::uint16_t><<<grid, block, 0, stream>>>(
        static_cast<const std::uint16_t*>(src), static_cast<std::uint16_t*>(dst), lengths, batch, steps, features,
        batch_major, fill, static_cast<std::uint16_t>(fill_bits));
  } else {
    return Status(StatusCode::kInternal, "reverse_sequences: element_size " + std::to_string(element_size) +
                                             " (expected 2 or 4)");
  }
  return check_launch("reverse_sequences");
}

Status load_kernels() {
  const Status lengths = gpu::load_upload_lengths_kernel();
  if (!lengths.ok()) return lengths;
  cudaFuncAttributes attributes{};
  const Status four = cuda_status(cudaFuncGetAttributes(&attributes, reverse_kernel<std::uint32_t>),
                                  "cudaFuncGetAttributes(reverse_sequences, 4-byte elements)");
  if (!four.ok()) return four;
  return cuda_status(cudaFuncGetAttributes(&attributes, reverse_kernel<std::uint16_t>),
                     "cudaFuncGetAttributes(reverse_sequences, 2-byte elements)");
}

}  // namespace cudnn_kernels
}  // namespace culstm
