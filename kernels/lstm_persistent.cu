// kernels/lstm_persistent.cu: the persistent engine's kernel and launcher (lstm_persistent.h, docs/persistent.md).
// The kernel is persistent_layer_program (persistent_elements.h) run by every block of a cooperative launch with
// the GPU's team: 256 threads, warps sharing each dot product, cooperative groups' grid sync between phases.
#include <cooperative_groups.h>
#include <cuda_runtime_api.h>

#include <string>

#include "cuda_check.h"
#include "dtype_traits.cuh"
#include "persistent_elements.h"

namespace culstm {
namespace kernels {
namespace {

namespace cg = cooperative_groups;

// The GPU's Team for persistent_layer_program. Host-and-device only so that the shared program template compiles
// for both sides; it is only ever used on the device.
struct DeviceTeam {
  __host__ __device__ int thread() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(threadIdx.x);
#else
    return 0;
#endif
  }
  __host__ __device__ int threads() const {
    return kPersistentThreads;
  }
  __host__ __device__ int warp() const {
    return thread() / kWarpSize;
  }
  __host__ __device__ int warps() const {
    return kPersistentThreads / kWarpSize;
  }
  __host__ __device__ int lane() const {
    return thread() % kWarpSize;
  }
  __host__ __device__ int lanes() const {
    return kWarpSize;
  }
  __host__ __device__ float lane_sum(float v) const {
#if defined(__CUDA_ARCH__)
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
#endif
    return v;
  }
  __host__ __device__ void sync_block() const {
#if defined(__CUDA_ARCH__)
    __syncthreads();
#endif
  }
  __host__ __device__ void sync_grid() const {
#if defined(__CUDA_ARCH__)
    cg::this_grid().sync();  // also a memory fence: the blocks' global writes before it are visible after it
#endif
  }
};

// Chunk: sequences per staged chunk (persistent_batch_chunk of the launch's batch).
template <typename T, int Chunk>
__global__ void __launch_bounds__(kPersistentThreads, 1) culstm_lstm_persistent_layer(PersistentLayerParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  DeviceTeam team;
  persistent_layer_program<T, Chunk>(p, static_cast<int>(blockIdx.x), smem, team);
}

template <typename T>
const void* kernel_of(int chunk) {
  switch (chunk) {
    case 1: return reinterpret_cast<const void*>(&culstm_lstm_persistent_layer<T, 1>);
    case 2: return reinterpret_cast<const void*>(&culstm_lstm_persistent_layer<T, 2>);
    case 4: return reinterpret_cast<const void*>(&culstm_lstm_persistent_layer<T, 4>);
    case 8: return reinterpret_cast<const void*>(&culstm_lstm_persistent_layer<T, 8>);
    default: return nullptr;
  }
}

const void* kernel_for(DType dtype, int chunk) {
  switch (dtype) {
    case DType::kF32: return kernel_of<float>(chunk);
    case DType::kF16: return kernel_of<__half>(chunk);
    case DType::kBF16: return kernel_of<__nv_bfloat16>(chunk);
    default: return nullptr;
  }
}

constexpr int kChunks[] = {1, 2, 4, 8};
static_assert(kBatchChunk == 8, "kChunks lists every instantiated chunk up to kBatchChunk");

}  // namespace

Status persistent_device_limits(int device, PersistentDeviceLimits* out) {
  int sm = 0, smem = 0, coop = 0;
  CULSTM_CUDA_CHECK(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, device));
  CULSTM_CUDA_CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  CULSTM_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device));
  out->sm_count = sm;
  out->max_smem_per_block = static_cast<std::size_t>(smem);
  out->cooperative_launch = coop != 0;
  return Status::Ok();
}

Status persistent_blocks_per_sm(DType dtype, std::size_t smem_bytes, int* out) {
  *out = 0;
  if (kernel_for(dtype, 1) == nullptr) return Status::Ok();
  // Above 48 KiB a kernel must opt in to its dynamic shared memory. The attribute belongs to the kernel, not to a
  // Model: always raise it to the device's maximum, so that a Model created later with a smaller need never
  // lowers it under an earlier Model's launches.
  int device = 0, device_max = 0;
  CULSTM_CUDA_CHECK(cudaGetDevice(&device));
  CULSTM_CUDA_CHECK(cudaDeviceGetAttribute(&device_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (smem_bytes > static_cast<std::size_t>(device_max)) return Status::Ok();  // cannot run: 0 blocks
  // Every chunk instantiation may run (a smaller batch picks a smaller chunk): the fewest co-resident blocks count.
  int fewest = -1;
  for (const int chunk : kChunks) {
    const void* kernel = kernel_for(dtype, chunk);
    CULSTM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, device_max));
    int blocks = 0;
    CULSTM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kPersistentThreads, smem_bytes));
    fewest = fewest < 0 ? blocks : (blocks < fewest ? blocks : fewest);
  }
  *out = fewest < 0 ? 0 : fewest;
  return Status::Ok();
}

Status load_persistent_kernels() {
  for (const DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const int chunk : kChunks) {
      cudaFuncAttributes attributes{};
      CULSTM_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel_for(dtype, chunk)));
    }
  }
  return Status::Ok();
}

Status launch_persistent_layer(DType dtype, const PersistentLayerParams& params, Stream stream) {
  const void* kernel = kernel_for(dtype, persistent_batch_chunk(params.dims.batch));
  if (kernel == nullptr) {
    return Status(StatusCode::kInternal,
                  std::string("culstm_lstm_persistent_layer: storage type ") + dtype_name(dtype) + " has no kernel");
  }
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned int>(params.dims.directions * params.tiling.blocks_per_direction));
  config.blockDim = dim3(kPersistentThreads);
  config.dynamicSmemBytes = params.smem.total;
  config.stream = static_cast<cudaStream_t>(stream);
  cudaLaunchAttribute cooperative{};
  cooperative.id = cudaLaunchAttributeCooperative;  // all blocks co-resident, or the launch fails: no deadlock
  cooperative.val.cooperative = 1;
  config.attrs = &cooperative;
  config.numAttrs = 1;
  void* args[] = {const_cast<PersistentLayerParams*>(&params)};
  // A refusal (e.g. cudaErrorCooperativeLaunchTooLarge) is not sticky; cuda_status consumes it.
  const Status launched =
      cuda_status(cudaLaunchKernelExC(&config, kernel, args), "culstm_lstm_persistent_layer (cooperative launch)");
  if (!launched.ok()) return launched;
  return check_launch("culstm_lstm_persistent_layer");
}

}  // namespace kernels
}  // namespace culstm
