// kernels/dtype_traits.cuh: Storage<T> for the device's 16-bit storage types (Storage<float> is in
// stepwise_elements.h). Rounding is round-to-nearest-even, the same as src/float16.h on the host, so the reference
// and the device round a value identically.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "stepwise_elements.h"

namespace culstm {
namespace kernels {

template <>
struct Storage<__half> {
  static __host__ __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __host__ __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};

template <>
struct Storage<__nv_bfloat16> {
  static __host__ __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __host__ __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

}  // namespace kernels
}  // namespace culstm
