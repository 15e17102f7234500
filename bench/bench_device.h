// Device helpers of culstm_bench: random fills, output statistics for its checks, and the two measured ceilings of
// docs/design.md §6 (dense GEMM rate through cuBLAS, device-to-device copy bandwidth). Every function returns an empty
// string on success and a one-line reason otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace culstm_bench {

// The result of one step of a benchmark runner (set up, run). `unsupported`: the library's own status code says it
// cannot serve this configuration, which is recorded as such and not as a failure; it is decided on the code
// (culstm::StatusCode, cudnnStatus_t), never by searching the message.
struct Outcome {
  std::string error;  // empty: success
  bool unsupported = false;

  Outcome() = default;
  Outcome(std::string e, bool unsupported_code = false) : error(std::move(e)), unsupported(unsupported_code) {}
  Outcome(const char* e) : error(e) {}
  bool ok() const { return error.empty(); }
};

enum class ElemType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

std::size_t elem_size(ElemType t);

// n elements of type t, uniform in [-scale, scale], from a counter hash of (seed, index): reproducible, never all
// zeros, and fast enough for gigabytes.
std::string fill_uniform(void* data, std::size_t n, ElemType t, float scale, std::uint64_t seed, cudaStream_t stream);

// Statistics of n elements of type t at `data` and, when `ref` is not null, of their difference to the n at `ref`
// (same type). Computed on the device in one pass (outputs can be gigabytes), sums in double.
struct OutputStats {
  std::uint64_t nonfinite = 0;  // NaN or infinite elements of data
  std::uint64_t zeros = 0;      // exactly-zero elements of data
  double diff_sq = 0;           // sum of (data - ref)^2
  double ref_sq = 0;            // sum of ref^2
};
// Enqueued on `stream`, then synchronizes it.
std::string output_stats(const void* data, const void* ref, std::size_t n, ElemType t, cudaStream_t stream,
                         OutputStats* out);

// Dense GEMM rate in TFLOP/s measured with cuBLAS on random m=n=k matrices (median of `runs` after warm-up).
// kind: "f32" (no tf32), "tf32", "bf16", "f16" (16-bit inputs and outputs, fp32 accumulation).
std::string measure_gemm_tflops(const std::string& kind, int n, int runs, double* tflops);

// Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written (median of `runs`).
std::string measure_copy_gbps(std::size_t bytes, int runs, double* gbps);

}  // namespace culstm_bench
