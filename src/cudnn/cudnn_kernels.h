// Internal: the device helper the cuDNN backend enqueues around cudnnRNNForward for direction = reverse
// (cudnn_kernels.cu). It only launches on the caller's stream: no allocation, no synchronization. The lengths are
// uploaded by the one upload both GPU backends share (gpu/lengths_upload.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "culstm/status.h"

namespace culstm {
namespace cudnn_kernels {

// For every sequence b of length len = lengths[b] (device array): dst[b, t] = src[b, len - 1 - t] for t < len,
// and for t >= len either src[b, t] (fill == false) or `fill_bits` (the padding value's bits in the element
// type). Rows are `features` elements of `element_size` bytes (2 or 4); `batch_major` picks [B, T, F] over
// [T, B, F]. src and dst must not overlap. Returns the launch's status (gpu/gpu_status.h).
Status reverse_sequences(const void* src, void* dst, const std::int32_t* lengths, std::int64_t batch,
                         std::int64_t steps, std::int64_t features, std::size_t element_size, bool batch_major,
                         bool fill, std::uint32_t fill_bits, cudaStream_t stream);

// Loads every kernel the backend's forward launches (reverse_sequences' for both element sizes, and the shared
// lengths upload) on the current device, as the cuda backend does at model creation: under lazy module loading
// (CUDA's default) a kernel is otherwise loaded at its first launch, which may then fall inside the caller's stream
// capture. Also the check that this build has device code the GPU can run: kCudaError with the runtime's reason
// (e.g. cudaErrorNoKernelImageForDevice) otherwise.
Status load_kernels();

}  // namespace cudnn_kernels
}  // namespace culstm
