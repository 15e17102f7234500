// Device helpers of culstm_bench: random fills, an output sanity check, and the two measured ceilings of
// DESIGN.md §6 (dense GEMM rate through cuBLAS, device-to-device copy bandwidth). Every function returns an empty
// string on success and a one-line reason otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace culstm_bench {

enum class ElemType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

std::size_t elem_size(ElemType t);

// n elements of type t, uniform in [-scale, scale], from a counter hash of (seed, index): reproducible, never all
// zeros, and fast enough for gigabytes.
std::string fill_uniform(void* data, std::size_t n, ElemType t, float scale, std::uint64_t seed, cudaStream_t stream);

// Synchronous: counts non-finite and exactly-zero elements among the n at `data`.
std::string count_special(const void* data, std::size_t n, ElemType t, std::uint64_t* nonfinite, std::uint64_t* zeros);

// Dense GEMM rate in TFLOP/s measured with cuBLAS on random m=n=k matrices (median of `runs` after warm-up).
// kind: "f32" (no tf32), "tf32", "bf16", "f16" (16-bit inputs and outputs, fp32 accumulation).
std::string measure_gemm_tflops(const std::string& kind, int n, int runs, double* tflops);

// Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written (median of `runs`).
std::string measure_copy_gbps(std::size_t bytes, int runs, double* gbps);

}  // namespace culstm_bench
