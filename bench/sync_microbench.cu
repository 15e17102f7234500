// sync_microbench: what one step of a persistent recurrence must at least pay to synchronize its blocks (issue 6,
// docs/design.md §6 "per-step latency floor"). Persistent kernels that do nothing but step, each step either
//   - "sync":     a barrier across the blocks, or
//   - "exchange": every block publishes its slice of an H-float hidden state (double-buffered), the blocks
//                 synchronize, and every block reads (and checks) the whole H-vector, as the next step's
//                 recurrent GEMM needs it,
// with these schemes:
//   coop     cooperative-groups grid.sync() (cudaLaunchCooperativeKernel; co-residency checked first)
//   flags    one step-tagged flag per block in global memory: release store of "step+1", every block polls all
//            flags with acquire loads (cuda::atomic_ref, device scope)
//   counter  one monotonically increasing arrival counter: release fetch_add, acquire poll for G·(step+1)
//   tagged   (exchange only) no barrier at all: every value is stored with its step tag in one 64-bit word next to
//            the data; readers poll the data itself until its tag is the step's
//   cluster  Hopper thread-block cluster: cluster.sync() (hardware barrier) across the cluster's 2..16 blocks; the
//            exchange writes each slice into every block's shared memory (DSMEM) before the barrier
//   hier     clusters of 8 + step-tagged flags between the clusters' leaders: grids beyond one cluster
// ns per step = (time(2N steps) - time(N steps)) / N: launch overhead cancels. Values exchanged are checked:
// "errors" counts stale or wrong values read (a scheme with errors > 0 is broken, not fast).
//
//   sync_microbench [--grids 8,16,32,64,132] [--clusters 2,4,8,16] [--hidden 256,512,1024,2048] [--steps 2000]
//                   [--reps 5] [--block 256] [--json sync_microbench.json] [--commit H] [--driver V] [--device N]
#include <cooperative_groups.h>
#include <cuda/atomic>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef CULSTM_BENCH_COMMIT
#define CULSTM_BENCH_COMMIT "unknown"
#endif

namespace cg = cooperative_groups;

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Device side.

struct Params {
  int steps = 0;
  int hidden = 0;                        // floats exchanged per step; 0 = sync only
  float* hbuf = nullptr;                 // [2][hidden]
  unsigned long long* tagged = nullptr;  // [2][hidden]: (step + 1) << 32 | float bits
  unsigned* flags = nullptr;             // [grid] (flags) or [clusters] (hier); zeroed before each launch
  unsigned* counter = nullptr;           // [1]; zeroed before each launch
  unsigned* errors = nullptr;            // wrong or stale values read
  unsigned* abort_flag = nullptr;        // set when a wait times out (blocks not co-resident, or a bug)
  unsigned long long timeout_ns = 0;
};

using DeviceU32 = cuda::atomic_ref<unsigned, cuda::thread_scope_device>;
using DeviceU64 = cuda::atomic_ref<unsigned long long, cuda::thread_scope_device>;

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// The value element j holds after step s: exact in f32, different from step to step.
__device__ __forceinline__ float expected(int s, int j) {
  return static_cast<float>((static_cast<unsigned>(s) * 2654435761u + static_cast<unsigned>(j)) & 0xffffu);
}

__device__ __forceinline__ void slice_of(int index, int parts, int hidden, int* lo, int* hi) {
  *lo = static_cast<int>(static_cast<long long>(index) * hidden / parts);
  *hi = static_cast<int>(static_cast<long long>(index + 1) * hidden / parts);
}

// Spins until flag >= target (acquire). False on timeout or when another block aborted.
__device__ bool wait_geq(DeviceU32 flag, unsigned target, unsigned long long t0, const Params& p) {
  unsigned spins = 0;
  while (flag.load(cuda::memory_order_acquire) < target) {
    if ((++spins & 255u) == 0) {
      if (global_ns() - t0 > p.timeout_ns || *reinterpret_cast<volatile unsigned*>(p.abort_flag)) {
        atomicExch(p.abort_flag, 1u);
        return false;
      }
    }
  }
  return true;
}

__device__ __forceinline__ void write_slice_global(const Params& p, int s, int part, int parts) {
  int lo, hi;
  slice_of(part, parts, p.hidden, &lo, &hi);
  float* buf = p.hbuf + (s & 1) * p.hidden;
  for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) __stcg(buf + j, expected(s, j));
}

__device__ __forceinline__ unsigned read_all_global(const Params& p, int s) {
  const float* buf = p.hbuf + (s & 1) * p.hidden;
  unsigned err = 0;
  for (int j = threadIdx.x; j < p.hidden; j += blockDim.x) err += __ldcg(buf + j) != expected(s, j);
  return err;
}

template <bool kExchange>
__global__ void coop_kernel(Params p) {
  cg::grid_group grid = cg::this_grid();
  unsigned err = 0;
  for (int s = 0; s < p.steps; ++s) {
    if (kExchange) write_slice_global(p, s, blockIdx.x, gridDim.x);
    grid.sync();
    if (kExchange) err += read_all_global(p, s);
  }
  if (err) atomicAdd(p.errors, err);
}

template <bool kExchange>
__global__ void flags_kernel(Params p) {
  __shared__ int aborted;
  if (threadIdx.x == 0) aborted = 0;
  __syncthreads();
  const unsigned long long t0 = global_ns();
  unsigned err = 0;
  for (int s = 0; s < p.steps; ++s) {
    if (kExchange) write_slice_global(p, s, blockIdx.x, gridDim.x);
    __syncthreads();  // the block's writes precede thread 0's release (cumulativity through the CTA barrier)
    if (threadIdx.x == 0) DeviceU32(p.flags[blockIdx.x]).store(static_cast<unsigned>(s + 1), cuda::memory_order_release);
    for (int j = threadIdx.x; j < static_cast<int>(gridDim.x); j += blockDim.x) {
      if (!wait_geq(DeviceU32(p.flags[j]), static_cast<unsigned>(s + 1), t0, p)) aborted = 1;
    }
    __syncthreads();
    if (aborted) break;
    if (kExchange) err += read_all_global(p, s);
  }
  if (err) atomicAdd(p.errors, err);
}

template <bool kExchange>
__global__ void counter_kernel(Params p) {
  __shared__ int aborted;
  if (threadIdx.x == 0) aborted = 0;
  __syncthreads();
  const unsigned long long t0 = global_ns();
  unsigned err = 0;
  for (int s = 0; s < p.steps; ++s) {
    if (kExchange) write_slice_global(p, s, blockIdx.x, gridDim.x);
    __syncthreads();
    if (threadIdx.x == 0) {
      DeviceU32 counter(*p.counter);
      counter.fetch_add(1u, cuda::memory_order_release);
      if (!wait_geq(counter, static_cast<unsigned>(s + 1) * gridDim.x, t0, p)) aborted = 1;
    }
    __syncthreads();
    if (aborted) break;
    if (kExchange) err += read_all_global(p, s);
  }
  if (err) atomicAdd(p.errors, err);
}

// No barrier: each value carries its step tag; readers wait on the data itself. Needs grid <= hidden (every block
// owns at least one value, so no block can run two steps ahead of a reader).
__global__ void tagged_kernel(Params p) {
  __shared__ int aborted;
  if (threadIdx.x == 0) aborted = 0;
  __syncthreads();
  const unsigned long long t0 = global_ns();
  unsigned err = 0;
  int lo, hi;
  slice_of(blockIdx.x, gridDim.x, p.hidden, &lo, &hi);
  for (int s = 0; s < p.steps; ++s) {
    unsigned long long* buf = p.tagged + (s & 1) * p.hidden;
    const unsigned long long tag = static_cast<unsigned long long>(s + 1) << 32;
    for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) {
      DeviceU64(buf[j]).store(tag | __float_as_uint(expected(s, j)), cuda::memory_order_relaxed);
    }
    for (int j = threadIdx.x; j < p.hidden && !aborted; j += blockDim.x) {
      DeviceU64 word(buf[j]);
      unsigned long long v;
      unsigned spins = 0;
      while (((v = word.load(cuda::memory_order_relaxed)) >> 32) != static_cast<unsigned long long>(s + 1)) {
        if ((++spins & 255u) == 0 &&
            (global_ns() - t0 > p.timeout_ns || *reinterpret_cast<volatile unsigned*>(p.abort_flag))) {
          atomicExch(p.abort_flag, 1u);
          aborted = 1;
          break;
        }
      }
      err += __uint_as_float(static_cast<unsigned>(v)) != expected(s, j);
    }
    __syncthreads();  // every read of step s is done before this block writes step s + 1
    if (aborted) break;
  }
  if (err) atomicAdd(p.errors, err);
}

// One cluster of 2..16 blocks; the exchange goes through distributed shared memory.
template <bool kExchange>
__global__ void cluster_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ float smem[];  // [2][hidden]
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int blocks = static_cast<int>(cluster.num_blocks());
  unsigned err = 0;
  int lo = 0, hi = 0;
  if (kExchange) slice_of(rank, blocks, p.hidden, &lo, &hi);
  for (int s = 0; s < p.steps; ++s) {
    if (kExchange) {
      for (int r = 0; r < blocks; ++r) {
        float* remote = cluster.map_shared_rank(smem, r) + (s & 1) * p.hidden;
        for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) remote[j] = expected(s, j);
      }
    }
    cluster.sync();
    if (kExchange) {
      const float* local = smem + (s & 1) * p.hidden;
      for (int j = threadIdx.x; j < p.hidden; j += blockDim.x) err += local[j] != expected(s, j);
    }
  }
  cluster.sync();  // no block leaves while another may still write into its shared memory
  if (err) atomicAdd(p.errors, err);
#else
  if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(p.abort_flag, 2u);  // built without sm_90
#endif
}

// Clusters of C blocks; cluster leaders synchronize through step-tagged flags; two cluster barriers per step.
template <bool kExchange>
__global__ void hier_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ int aborted;
  cg::cluster_group cluster = cg::this_cluster();
  const unsigned rank = cluster.block_rank();
  const unsigned clusters = gridDim.x / cluster.num_blocks();
  const unsigned cluster_id = blockIdx.x / cluster.num_blocks();
  if (threadIdx.x == 0) aborted = 0;
  cluster.sync();
  const unsigned long long t0 = global_ns();
  unsigned err = 0;
  for (int s = 0; s < p.steps; ++s) {
    if (kExchange) {
      write_slice_global(p, s, blockIdx.x, gridDim.x);
      __threadfence();  // this thread's stores reach device scope before the leader's release
    }
    cluster.sync();
    if (rank == 0) {
      if (threadIdx.x == 0) {
        DeviceU32(p.flags[cluster_id]).store(static_cast<unsigned>(s + 1), cuda::memory_order_release);
      }
      for (unsigned j = threadIdx.x; j < clusters; j += blockDim.x) {
        if (!wait_geq(DeviceU32(p.flags[j]), static_cast<unsigned>(s + 1), t0, p)) aborted = 1;
      }
      __syncthreads();
    }
    cluster.sync();
    // Every block of the cluster takes the leader's decision, so that all leave together (a cluster barrier has no
    // timeout: a block left behind would wait forever).
    if (*cluster.map_shared_rank(&aborted, 0)) break;
    if (kExchange) err += read_all_global(p, s);
  }
  cluster.sync();
  if (err) atomicAdd(p.errors, err);
#else
  if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(p.abort_flag, 2u);
#endif
}

// ---------------------------------------------------------------------------------------------------------------
// Host side.

std::string cuda_err(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return "";
  return std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}

struct Options {
  std::vector<int> grids;  // default: 8, 16, 32, 64, SM count
  std::vector<int> clusters{2, 4, 8, 16};
  std::vector<int> hier_grids{16, 32, 64, 128};
  std::vector<int> hidden{256, 512, 1024, 2048};
  std::vector<std::string> schemes{"coop", "flags", "counter", "tagged", "cluster", "hier"};
  int hier_cluster = 8;
  int steps = 2000;
  int reps = 5;
  int block = 256;
  int device = 0;
  double timeout_s = 5;
  std::string json_path = "sync_microbench.json";
  std::string commit = CULSTM_BENCH_COMMIT;
  std::string driver;
};

const char* kUsage =
    "usage: sync_microbench [--grids 8,16,32,64,132] [--clusters 2,4,8,16] [--hier-grids 16,32,64,128]\n"
    "                       [--hier-cluster 8] [--hidden 256,512,1024,2048] [--schemes coop,flags,counter,tagged,\n"
    "                       cluster,hier] [--steps 2000] [--reps 5] [--block 256] [--timeout-s 5]\n"
    "                       [--json sync_microbench.json] [--commit HASH] [--driver VERSION] [--device N]\n"
    "ns per step of persistent kernels that only synchronize, or also exchange an H-float hidden state;\n"
    "default grids: 8, 16, 32, 64 and the GPU's SM count.\n";

bool parse_ints(const std::string& s, std::vector<int>* out) {
  out->clear();
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0 || v > 1 << 20) return false;
    out->push_back(static_cast<int>(v));
  }
  return !out->empty();
}

struct Point {
  std::string scheme, variant;  // variant: sync | exchange
  int grid = 0, cluster = 0, hidden = 0;
  std::string status = "ok", note;
  double median = NAN, min = NAN, max = NAN;
  unsigned errors = 0;
};

std::string jnum(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string jstr(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (static_cast<unsigned char>(ch) < 0x20) out += ' ';
    else out += ch;
  }
  return out + "\"";
}

class Bench {
 public:
  explicit Bench(const Options& o) : o_(o) {}

  std::string init() {
    std::string e = cuda_err(cudaSetDevice(o_.device), "cudaSetDevice");
    if (e.empty()) e = cuda_err(cudaGetDeviceProperties(&prop_, o_.device), "cudaGetDeviceProperties");
    if (!e.empty()) return e;
    int max_hidden = 1;
    for (int h : o_.hidden) max_hidden = std::max(max_hidden, h);
    int max_grid = prop_.multiProcessorCount;
    for (int g : o_.grids) max_grid = std::max(max_grid, g);
    for (int g : o_.hier_grids) max_grid = std::max(max_grid, g);
    e = alloc(reinterpret_cast<void**>(&p_.hbuf), 2 * sizeof(float) * max_hidden);
    if (e.empty()) e = alloc(reinterpret_cast<void**>(&p_.tagged), 2 * sizeof(unsigned long long) * max_hidden);
    if (e.empty()) e = alloc(reinterpret_cast<void**>(&p_.flags), sizeof(unsigned) * max_grid);
    if (e.empty()) e = alloc(reinterpret_cast<void**>(&p_.counter), sizeof(unsigned));
    if (e.empty()) e = alloc(reinterpret_cast<void**>(&p_.errors), sizeof(unsigned));
    if (e.empty()) e = alloc(reinterpret_cast<void**>(&p_.abort_flag), sizeof(unsigned));
    if (e.empty()) e = cuda_err(cudaEventCreate(&start_), "cudaEventCreate");
    if (e.empty()) e = cuda_err(cudaEventCreate(&stop_), "cudaEventCreate");
    p_.timeout_ns = static_cast<unsigned long long>(o_.timeout_s * 1e9);
    max_hidden_ = max_hidden;
    max_grid_ = max_grid;
    return e;
  }

  const cudaDeviceProp& prop() const { return prop_; }

  // One point: checks that the launch can run (co-residency), then times N and 2N steps `reps` times.
  Point measure(const std::string& scheme, bool exchange, int grid, int cluster, int hidden) {
    Point pt;
    pt.scheme = scheme;
    pt.variant = exchange ? "exchange" : "sync";
    pt.grid = grid;
    pt.cluster = cluster;
    pt.hidden = exchange ? hidden : 0;
    Params p = p_;
    p.hidden = pt.hidden;
    const void* kernel = nullptr;
    std::size_t smem = 0;
    if (scheme == "coop") kernel = exchange ? (const void*)coop_kernel<true> : (const void*)coop_kernel<false>;
    else if (scheme == "flags") kernel = exchange ? (const void*)flags_kernel<true> : (const void*)flags_kernel<false>;
    else if (scheme == "counter") kernel = exchange ? (const void*)counter_kernel<true> : (const void*)counter_kernel<false>;
    else if (scheme == "tagged") kernel = (const void*)tagged_kernel;
    else if (scheme == "cluster") {
      kernel = exchange ? (const void*)cluster_kernel<true> : (const void*)cluster_kernel<false>;
      smem = exchange ? 2 * sizeof(float) * hidden : 0;
    } else kernel = exchange ? (const void*)hier_kernel<true> : (const void*)hier_kernel<false>;

    if (exchange && grid > hidden) return skip(pt, "grid > hidden: a block would own no value");
    if (scheme == "cluster" || scheme == "hier") {
      if (prop_.major < 9) return skip(pt, "thread-block clusters need sm_90");
      if (grid % cluster != 0) return skip(pt, "grid not a multiple of the cluster size");
      if (cluster > 8) {
        std::string e = cuda_err(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1),
                                 "cudaFuncSetAttribute(NonPortableClusterSizeAllowed)");
        if (!e.empty()) return skip(pt, e);
      }
      if (smem > 48 * 1024) {
        std::string e = cuda_err(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
            "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
        if (!e.empty()) return skip(pt, e);
      }
      cudaLaunchConfig_t cfg = launch_config(grid, cluster, smem);
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeClusterDimension;
      attr[0].val.clusterDim.x = cluster;
      attr[0].val.clusterDim.y = 1;
      attr[0].val.clusterDim.z = 1;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      int active = 0;
      std::string e = cuda_err(cudaOccupancyMaxActiveClusters(&active, kernel, &cfg), "cudaOccupancyMaxActiveClusters");
      if (!e.empty()) return skip(pt, e);
      if (active * cluster < grid) {
        return skip(pt, "not co-resident: at most " + std::to_string(active) + " clusters of " +
                            std::to_string(cluster) + " at once");
      }
    } else {
      int per_sm = 0;
      std::string e = cuda_err(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, o_.block, smem),
                               "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
      if (!e.empty()) return skip(pt, e);
      if (per_sm * prop_.multiProcessorCount < grid) {
        return skip(pt, "not co-resident: " + std::to_string(per_sm) + " blocks per SM x " +
                            std::to_string(prop_.multiProcessorCount) + " SMs");
      }
      if (scheme == "coop") {
        int coop = 0;
        cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, o_.device);
        if (!coop) return skip(pt, "device does not support cooperative launches");
      }
    }

    std::vector<double> per_step;
    std::string e = cuda_err(cudaMemset(p_.errors, 0, sizeof(unsigned)), "cudaMemset");
    if (e.empty()) e = cuda_err(cudaMemset(p_.abort_flag, 0, sizeof(unsigned)), "cudaMemset");
    // Warm-up, then reps of (N, 2N).
    double t1 = 0, t2 = 0;
    if (e.empty()) e = launch_timed(scheme, kernel, grid, cluster, smem, p, o_.steps, &t1);
    for (int r = 0; r < o_.reps && e.empty(); ++r) {
      e = launch_timed(scheme, kernel, grid, cluster, smem, p, o_.steps, &t1);
      if (e.empty()) e = launch_timed(scheme, kernel, grid, cluster, smem, p, 2 * o_.steps, &t2);
      if (e.empty()) per_step.push_back((t2 - t1) * 1e6 / o_.steps);  // ms -> ns
    }
    unsigned flags[2] = {0, 0};
    if (e.empty()) e = cuda_err(cudaMemcpy(&flags[0], p_.errors, sizeof(unsigned), cudaMemcpyDeviceToHost), "cudaMemcpy");
    if (e.empty()) e = cuda_err(cudaMemcpy(&flags[1], p_.abort_flag, sizeof(unsigned), cudaMemcpyDeviceToHost), "cudaMemcpy");
    if (!e.empty()) {
      pt.status = "error";
      pt.note = e;
      return pt;
    }
    if (flags[1] == 2) return skip(pt, "kernel built without sm_90 code");
    if (flags[1]) {
      pt.status = "timeout";
      pt.note = "a wait exceeded " + jnum(o_.timeout_s) + " s (blocks not co-resident?)";
      return pt;
    }
    pt.errors = flags[0];
    if (pt.errors) {
      pt.status = "wrong";
      pt.note = std::to_string(pt.errors) + " stale or wrong values read";
    }
    std::sort(per_step.begin(), per_step.end());
    pt.median = per_step[per_step.size() / 2];
    pt.min = per_step.front();
    pt.max = per_step.back();
    return pt;
  }

  ~Bench() {
    for (void* q : allocs_) cudaFree(q);
    if (start_) cudaEventDestroy(start_);
    if (stop_) cudaEventDestroy(stop_);
  }

 private:
  std::string alloc(void** p, std::size_t bytes) {
    std::string e = cuda_err(cudaMalloc(p, bytes), "cudaMalloc");
    if (e.empty()) {
      allocs_.push_back(*p);
      e = cuda_err(cudaMemset(*p, 0, bytes), "cudaMemset");
    }
    return e;
  }

  cudaLaunchConfig_t launch_config(int grid, int /*cluster*/, std::size_t smem) const {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(static_cast<unsigned>(grid));
    cfg.blockDim = dim3(static_cast<unsigned>(o_.block));
    cfg.dynamicSmemBytes = smem;
    cfg.stream = nullptr;
    return cfg;
  }

  Point skip(Point& pt, const std::string& why) {
    pt.status = "skipped";
    pt.note = why;
    return pt;
  }

  // Resets the flags and the tagged buffer (outside the timed region), then times one launch of `steps` steps.
  std::string launch_timed(const std::string& scheme, const void* kernel, int grid, int cluster, std::size_t smem,
                           Params p, int steps, double* ms) {
    p.steps = steps;
    std::string e = cuda_err(cudaMemsetAsync(p.flags, 0, sizeof(unsigned) * max_grid_, nullptr), "cudaMemsetAsync");
    if (e.empty()) e = cuda_err(cudaMemsetAsync(p.counter, 0, sizeof(unsigned), nullptr), "cudaMemsetAsync");
    if (e.empty() && scheme == "tagged") {
      e = cuda_err(cudaMemsetAsync(p.tagged, 0, 2 * sizeof(unsigned long long) * max_hidden_, nullptr),
                   "cudaMemsetAsync");
    }
    if (!e.empty()) return e;
    void* args[] = {&p};
    cudaEventRecord(start_, nullptr);
    if (scheme == "coop") {
      e = cuda_err(cudaLaunchCooperativeKernel(kernel, dim3(grid), dim3(o_.block), args, smem, nullptr),
                   "cudaLaunchCooperativeKernel");
    } else if (scheme == "cluster" || scheme == "hier") {
      cudaLaunchConfig_t cfg = launch_config(grid, cluster, smem);
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeClusterDimension;
      attr[0].val.clusterDim.x = cluster;
      attr[0].val.clusterDim.y = 1;
      attr[0].val.clusterDim.z = 1;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      e = cuda_err(cudaLaunchKernelExC(&cfg, kernel, args), "cudaLaunchKernelEx");
    } else {
      e = cuda_err(cudaLaunchKernel(kernel, dim3(grid), dim3(o_.block), args, smem, nullptr), "cudaLaunchKernel");
    }
    cudaEventRecord(stop_, nullptr);
    if (e.empty()) e = cuda_err(cudaEventSynchronize(stop_), "cudaEventSynchronize");
    float t = 0;
    if (e.empty()) e = cuda_err(cudaEventElapsedTime(&t, start_, stop_), "cudaEventElapsedTime");
    *ms = t;
    return e;
  }

  const Options& o_;
  cudaDeviceProp prop_{};
  Params p_;
  int max_hidden_ = 0, max_grid_ = 0;
  std::vector<void*> allocs_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

int sync_main(int argc, char** argv) {
  Options o;
  bool grids_given = false;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (k + 1 >= argc) {
      std::fprintf(stderr, "sync_microbench: error: %s: missing value\n%s", a.c_str(), kUsage);
      return 2;
    }
    const std::string v = argv[++k];
    std::vector<int> ints;
    bool ok = true;
    if (a == "--grids") {
      ok = parse_ints(v, &o.grids);
      grids_given = true;
    } else if (a == "--clusters") ok = parse_ints(v, &o.clusters);
    else if (a == "--hier-grids") ok = parse_ints(v, &o.hier_grids);
    else if (a == "--hidden") ok = parse_ints(v, &o.hidden);
    else if (a == "--hier-cluster" || a == "--steps" || a == "--reps" || a == "--block" || a == "--device") {
      ok = parse_ints(v, &ints) && ints.size() == 1;
      if (ok) {
        int& dst = a == "--hier-cluster" ? o.hier_cluster
                   : a == "--steps"      ? o.steps
                   : a == "--reps"       ? o.reps
                   : a == "--block"      ? o.block
                                         : o.device;
        dst = ints[0];
      }
    } else if (a == "--timeout-s") {
      o.timeout_s = std::atof(v.c_str());
      ok = o.timeout_s > 0;
    } else if (a == "--schemes") {
      o.schemes.clear();
      std::stringstream in(v);
      std::string s;
      while (std::getline(in, s, ',')) {
        if (s != "coop" && s != "flags" && s != "counter" && s != "tagged" && s != "cluster" && s != "hier") ok = false;
        o.schemes.push_back(s);
      }
    } else if (a == "--json") o.json_path = v;
    else if (a == "--commit") o.commit = v;
    else if (a == "--driver") o.driver = v;
    else {
      std::fprintf(stderr, "sync_microbench: error: unknown option '%s'\n%s", a.c_str(), kUsage);
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "sync_microbench: error: %s: bad value '%s'\n", a.c_str(), v.c_str());
      return 2;
    }
  }
  Bench bench(o);
  std::string e = bench.init();
  if (!e.empty()) {
    std::fprintf(stderr, "sync_microbench: error: %s\n", e.c_str());
    return 1;
  }
  const cudaDeviceProp& prop = bench.prop();
  if (!grids_given) o.grids = {8, 16, 32, 64, prop.multiProcessorCount};
  std::sort(o.grids.begin(), o.grids.end());
  o.grids.erase(std::unique(o.grids.begin(), o.grids.end()), o.grids.end());
  std::string driver = o.driver;
  if (driver.empty()) {
    driver = run_command("nvidia-smi --query-gpu=driver_version --format=csv,noheader -i " + std::to_string(o.device) +
                         " 2>/dev/null");
  }
  if (driver.empty() || driver.find(' ') != std::string::npos) {
    int drv = 0;
    cudaDriverGetVersion(&drv);
    driver = "cuda-driver-api " + std::to_string(drv / 1000) + "." + std::to_string((drv % 1000) / 10);
  }
  std::printf("sync_microbench: %s (sm_%d%d, %d SMs), driver %s, commit %s; %d and %d steps, %d reps, %d threads/block\n",
              prop.name, prop.major, prop.minor, prop.multiProcessorCount, driver.c_str(), o.commit.c_str(), o.steps,
              2 * o.steps, o.reps, o.block);

  std::vector<Point> points;
  auto want = [&](const char* s) { return std::find(o.schemes.begin(), o.schemes.end(), s) != o.schemes.end(); };
  std::printf("%-8s %-8s %6s %7s %6s %10s %10s %10s  %s\n", "scheme", "variant", "grid", "cluster", "H", "ns/step",
              "min", "max", "status");
  auto run = [&](const std::string& scheme, bool exchange, int grid, int cluster, int hidden) {
    Point pt = bench.measure(scheme, exchange, grid, cluster, hidden);
    std::printf("%-8s %-8s %6d %7d %6d %10.1f %10.1f %10.1f  %s%s%s\n", pt.scheme.c_str(), pt.variant.c_str(), pt.grid,
                pt.cluster, pt.hidden, pt.median, pt.min, pt.max, pt.status.c_str(), pt.note.empty() ? "" : ": ",
                pt.note.c_str());
    std::fflush(stdout);
    points.push_back(pt);
    std::string why;
    cudaGetLastError();
    if (cudaDeviceSynchronize() != cudaSuccess) {
      std::fprintf(stderr, "sync_microbench: error: the CUDA context is broken after %s; stopping\n", scheme.c_str());
      return false;
    }
    return true;
  };
  bool alive = true;
  for (const char* scheme : {"coop", "flags", "counter"}) {
    if (!want(scheme)) continue;
    for (int g : o.grids) {
      alive = alive && run(scheme, false, g, 0, 0);
      for (int h : o.hidden) alive = alive && run(scheme, true, g, 0, h);
    }
  }
  if (want("tagged")) {
    for (int g : o.grids)
      for (int h : o.hidden) alive = alive && run("tagged", true, g, 0, h);
  }
  if (want("cluster")) {
    for (int c : o.clusters) {
      alive = alive && run("cluster", false, c, c, 0);
      for (int h : o.hidden) alive = alive && run("cluster", true, c, c, h);
    }
  }
  if (want("hier")) {
    for (int g : o.hier_grids) {
      alive = alive && run("hier", false, g, o.hier_cluster, 0);
      for (int h : o.hidden) alive = alive && run("hier", true, g, o.hier_cluster, h);
    }
  }

  std::ofstream out(o.json_path, std::ios::trunc);
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  out << "[\n";
  for (std::size_t k = 0; k < points.size(); ++k) {
    const Point& pt = points[k];
    out << "  {\"device\": " << jstr(prop.name) << ", \"driver\": " << jstr(driver) << ", \"commit\": "
        << jstr(o.commit) << ", \"benchmark\": \"sync_microbench\", \"scheme\": " << jstr(pt.scheme)
        << ", \"variant\": " << jstr(pt.variant) << ", \"grid\": " << pt.grid << ", \"cluster\": " << pt.cluster
        << ", \"hidden\": " << pt.hidden << ", \"block_threads\": " << o.block << ", \"steps\": " << o.steps
        << ", \"reps\": " << o.reps << ", \"ns_per_step_median\": " << jnum(pt.median)
        << ", \"ns_per_step_min\": " << jnum(pt.min) << ", \"ns_per_step_max\": " << jnum(pt.max)
        << ", \"errors\": " << pt.errors << ", \"status\": " << jstr(pt.status) << ", \"note\": " << jstr(pt.note)
        << ", \"sm_count\": " << prop.multiProcessorCount << ", \"timestamp\": " << jstr(stamp) << "}"
        << (k + 1 < points.size() ? ",\n" : "\n");
  }
  out << "]\n";
  if (!out) {
    std::fprintf(stderr, "sync_microbench: error: cannot write %s\n", o.json_path.c_str());
    return 1;
  }
  std::printf("sync_microbench: %zu points in %s\n", points.size(), o.json_path.c_str());
  return alive ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return sync_main(argc, argv); }
