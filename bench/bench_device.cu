#include "bench_device.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>
#include <vector>

namespace culstm_bench {
namespace {

std::string cuda_error(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return "";
  return std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}

__device__ __forceinline__ std::uint64_t mix64(std::uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__global__ void fill_kernel(void* data, std::size_t n, int type, float scale, std::uint64_t seed) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    const std::uint64_t r = mix64(seed * 0x100000001b3ull + k);
    // 24 random bits -> [-1, 1)
    const float u = static_cast<float>(r >> 40) * (2.0f / 16777216.0f) - 1.0f;
    const float v = u * scale;
    if (type == 0) {
      static_cast<float*>(data)[k] = v;
    } else if (type == 1) {
      static_cast<__half*>(data)[k] = __float2half_rn(v);
    } else {
      static_cast<__nv_bfloat16*>(data)[k] = __float2bfloat16_rn(v);
    }
  }
}

__device__ __forceinline__ float load_as_float(const void* data, std::size_t k, int type) {
  if (type == 0) return static_cast<const float*>(data)[k];
  if (type == 1) return __half2float(static_cast<const __half*>(data)[k]);
  return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[k]);
}

// One grid-stride pass over data (and ref); each block reduces its threads' partial results through warp shuffles
// and shared memory and adds them with one atomic per quantity (a per-thread atomic on doubles would serialize).
// Launched with blockDim.x a multiple of 32, at most 1024.
__global__ void stats_kernel(const void* data, const void* ref, std::size_t n, int type, unsigned long long* counts,
                             double* sums) {
  unsigned long long nonfinite = 0, zeros = 0;
  double diff_sq = 0, ref_sq = 0;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    const float v = load_as_float(data, k, type);
    nonfinite += isfinite(v) ? 0 : 1;
    zeros += v == 0.0f ? 1 : 0;
    if (ref != nullptr) {
      const double r = load_as_float(ref, k, type);
      const double d = static_cast<double>(v) - r;
      diff_sq += d * d;
      ref_sq += r * r;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    nonfinite += __shfl_down_sync(0xffffffffu, nonfinite, offset);
    zeros += __shfl_down_sync(0xffffffffu, zeros, offset);
    diff_sq += __shfl_down_sync(0xffffffffu, diff_sq, offset);
    ref_sq += __shfl_down_sync(0xffffffffu, ref_sq, offset);
  }
  __shared__ unsigned long long warp_counts[32][2];
  __shared__ double warp_sums[32][2];
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_counts[warp][0] = nonfinite;
    warp_counts[warp][1] = zeros;
    warp_sums[warp][0] = diff_sq;
    warp_sums[warp][1] = ref_sq;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (unsigned w = 1; w < blockDim.x / 32; ++w) {
      nonfinite += warp_counts[w][0];
      zeros += warp_counts[w][1];
      diff_sq += warp_sums[w][0];
      ref_sq += warp_sums[w][1];
    }
    if (nonfinite) atomicAdd(&counts[0], nonfinite);
    if (zeros) atomicAdd(&counts[1], zeros);
    if (ref != nullptr) {
      atomicAdd(&sums[0], diff_sq);
      atomicAdd(&sums[1], ref_sq);
    }
  }
}

unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(blocks, 8192)));
}

const char* cublas_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_other";
  }
}

double median_of(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Times `runs` launches of `op` with one event pair each, after 3 warm-up launches; median in ms.
template <typename Op>
std::string time_median_ms(cudaStream_t stream, int runs, Op op, double* ms) {
  for (int k = 0; k < 3; ++k) {
    std::string e = op();
    if (!e.empty()) return e;
  }
  std::vector<cudaEvent_t> ev(2 * static_cast<std::size_t>(runs));
  for (auto& e : ev) {
    std::string err = cuda_error(cudaEventCreate(&e), "cudaEventCreate");
    if (!err.empty()) return err;
  }
  std::string err;
  for (int k = 0; k < runs && err.empty(); ++k) {
    cudaEventRecord(ev[2 * k], stream);
    err = op();
    cudaEventRecord(ev[2 * k + 1], stream);
  }
  if (err.empty()) err = cuda_error(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  std::vector<float> times;
  for (int k = 0; k < runs && err.empty(); ++k) {
    float t = 0;
    err = cuda_error(cudaEventElapsedTime(&t, ev[2 * k], ev[2 * k + 1]), "cudaEventElapsedTime");
    times.push_back(t);
  }
  for (auto& e : ev) cudaEventDestroy(e);
  if (err.empty()) *ms = median_of(times);
  return err;
}

struct DeviceBuffer {
  void* p = nullptr;
  ~DeviceBuffer() {
    if (p) cudaFree(p);
  }
};

}  // namespace

std::size_t elem_size(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }

std::string fill_uniform(void* data, std::size_t n, ElemType t, float scale, std::uint64_t seed, cudaStream_t stream) {
  if (n == 0) return "";
  fill_kernel<<<grid_for(n), 256, 0, stream>>>(data, n, static_cast<int>(t), scale, seed);
  return cuda_error(cudaGetLastError(), "fill_kernel launch");
}

std::string output_stats(const void* data, const void* ref, std::size_t n, ElemType t, cudaStream_t stream,
                         OutputStats* out) {
  struct Totals {  // the device buffer's layout: two counts, then two sums
    unsigned long long counts[2];
    double sums[2];
  };
  DeviceBuffer totals;
  std::string err = cuda_error(cudaMalloc(&totals.p, sizeof(Totals)), "cudaMalloc");
  if (err.empty()) err = cuda_error(cudaMemsetAsync(totals.p, 0, sizeof(Totals), stream), "cudaMemsetAsync");
  if (!err.empty()) return err;
  Totals* dev = static_cast<Totals*>(totals.p);
  if (n) stats_kernel<<<grid_for(n), 256, 0, stream>>>(data, ref, n, static_cast<int>(t), dev->counts, dev->sums);
  err = cuda_error(cudaGetLastError(), "stats_kernel launch");
  Totals host{};
  if (err.empty()) {
    err = cuda_error(cudaMemcpyAsync(&host, dev, sizeof host, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync D2H");
  }
  if (err.empty()) err = cuda_error(cudaStreamSynchronize(stream), "cudaStreamSynchronize (output statistics)");
  if (!err.empty()) return err;
  out->nonfinite = host.counts[0];
  out->zeros = host.counts[1];
  out->diff_sq = host.sums[0];
  out->ref_sq = host.sums[1];
  return "";
}

std::string measure_gemm_tflops(const std::string& kind, int n, int runs, double* tflops) {
  cudaDataType_t type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  ElemType et = ElemType::kF32;
  if (kind == "f32") {
  } else if (kind == "tf32") {
    compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  } else if (kind == "bf16") {
    type = CUDA_R_16BF;
    et = ElemType::kBF16;
  } else if (kind == "f16") {
    type = CUDA_R_16F;
    et = ElemType::kF16;
  } else {
    return "measure_gemm_tflops: unknown kind '" + kind + "'";
  }
  const std::size_t elems = static_cast<std::size_t>(n) * n;
  DeviceBuffer a, b, c;
  std::string err = cuda_error(cudaMalloc(&a.p, elems * elem_size(et)), "cudaMalloc A");
  if (err.empty()) err = cuda_error(cudaMalloc(&b.p, elems * elem_size(et)), "cudaMalloc B");
  if (err.empty()) err = cuda_error(cudaMalloc(&c.p, elems * elem_size(et)), "cudaMalloc C");
  if (err.empty()) err = fill_uniform(a.p, elems, et, 1.0f, 11, nullptr);  // random data, never zeros (METHOD.md)
  if (err.empty()) err = fill_uniform(b.p, elems, et, 1.0f, 12, nullptr);
  if (!err.empty()) return err;
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  cublasStatus_t st = cublasCreate(&handle);
  if (st != CUBLAS_STATUS_SUCCESS) return std::string("cublasCreate: ") + cublas_name(st);
  cublasSetStream(handle, stream);
  const float alpha = 1.0f, beta = 0.0f;
  double ms = 0;
  err = time_median_ms(stream, runs, [&]() -> std::string {
    const cublasStatus_t s = cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.p, type, n, b.p, type,
                                          n, &beta, c.p, type, n, compute, CUBLAS_GEMM_DEFAULT);
    return s == CUBLAS_STATUS_SUCCESS ? std::string() : std::string("cublasGemmEx: ") + cublas_name(s);
  }, &ms);
  cublasDestroy(handle);
  if (!err.empty()) return err;
  *tflops = 2.0 * n * static_cast<double>(n) * n / (ms * 1e-3) / 1e12;
  return "";
}

std::string measure_copy_gbps(std::size_t bytes, int runs, double* gbps) {
  DeviceBuffer src, dst;
  std::string err = cuda_error(cudaMalloc(&src.p, bytes), "cudaMalloc src");
  if (err.empty()) err = cuda_error(cudaMalloc(&dst.p, bytes), "cudaMalloc dst");
  if (err.empty()) err = fill_uniform(src.p, bytes / 4, ElemType::kF32, 1.0f, 13, nullptr);
  if (!err.empty()) return err;
  double ms = 0;
  err = time_median_ms(nullptr, runs, [&]() {
    return cuda_error(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, nullptr), "cudaMemcpyAsync");
  }, &ms);
  if (!err.empty()) return err;
  *gbps = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
  return "";
}

}  // namespace culstm_bench
