// Internal: the two small device helpers the cuDNN backend enqueues around cudnnRNNForward (cudnn_kernels.cu).
// Both only launch on the caller's stream: no allocation, no synchronization. They return the launch error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace culstm {
namespace cudnn_kernels {

// Writes dst[b] = lengths[b] (or `steps` for every b when `lengths` is null) for b < batch. The host values travel
// as kernel parameters (chunks of kLengthsPerLaunch), so the caller's host array may be reused as soon as this
// returns and no pageable-memory copy can stall the host.
constexpr int kLengthsPerLaunch = 1000;  // 4000 bytes of parameters: under the 4 KiB limit of every architecture
cudaError_t store_lengths(const std::int32_t* lengths, std::int64_t batch, std::int32_t steps, std::int32_t* dst,
                          cudaStream_t stream);

// For every sequence b of length len = lengths[b] (device array): dst[b, t] = src[b, len - 1 - t] for t < len,
// and for t >= len either src[b, t] (fill == false) or `fill_bits` (the padding value's bits in the element
// type). Rows are `features` elements of `element_size` bytes (2 or 4); `batch_major` picks [B, T, F] over
// [T, B, F]. src and dst must not overlap.
cudaError_t reverse_sequences(const void* src, void* dst, const std::int32_t* lengths, std::int64_t batch,
                              std::int64_t steps, std::int64_t features, std::size_t element_size, bool batch_major,
                              bool fill, std::uint32_t fill_bits, cudaStream_t stream);

}  // namespace cudnn_kernels
}  // namespace culstm
