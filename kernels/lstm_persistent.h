// kernels/lstm_persistent.h: the persistent recurrence engine as seen from the host (docs/persistent.md). One
// cooperative launch runs every step of one layer, both directions at once on disjoint groups of thread blocks.
// Each block owns a slice of hidden units with all four gates; its slice of W_hh (and of W_hr) is copied into
// shared memory once and stays there for the whole launch, the cell state c of its units lives in shared memory,
// and h_t is exchanged through global memory (L2) with one grid-wide barrier per step (two with a projection).
// Host-safe (no CUDA header): the per-block work is in persistent_elements.h (host-and-device, run on the CPU by
// tests/unit/cuda_persistent_test.cpp), the kernel in lstm_persistent.cu.
#pragma once

#include <cstddef>

#include "cell_math.h"
#include "culstm/status.h"
#include "culstm/types.h"
#include "lstm_stepwise.h"

namespace culstm {
namespace kernels {

// Threads per block of the persistent kernel; the most sequences one pass over the weights serves (each thread
// keeps that many accumulators per row, so one shared-memory read of a weight feeds that many FMAs); and how many
// weight rows a warp works on at once (one read of a staged h value feeds that many FMAs).
// Provisional: chosen by reasoning, not yet by timings (kernels/persistent_traits.h).
constexpr int kPersistentThreads = 256;
constexpr int kBatchChunk = 8;
constexpr int kRowsPerWarp = 4;
constexpr int kWarpSize = 32;

// The sequences per staged chunk for a batch: the largest of 8, 4, 2, 1 not above it, so that a small batch does not
// multiply zeros. The kernel is compiled for each.
CULSTM_HD int persistent_batch_chunk(long long batch) {
  return batch >= 8 ? 8 : batch >= 4 ? 4 : batch >= 2 ? 2 : 1;
}

// Weight rows in shared memory, padded to whole groups of kRowsPerWarp (the padding rows are zeros).
CULSTM_HD long long persistent_padded_rows(long long rows) {
  return (rows + kRowsPerWarp - 1) / kRowsPerWarp * kRowsPerWarp;
}

// How a layer is cut into blocks. Direction d runs on blocks [d * blocks_per_direction, (d+1) * blocks_per_direction);
// block s of a direction owns hidden units [s * units_per_block, min(H, (s+1) * units_per_block)) and, with a
// projection, projection outputs [s * proj_per_block, min(P, (s+1) * proj_per_block)) (possibly none).
struct PersistentTiling {
  int blocks_per_direction = 0;
  int units_per_block = 0;
  int proj_per_block = 0;  // 0 without a projection
};

// Where a block's data lives in its dynamic shared memory (byte offsets; every region 16-byte aligned), as the host
// planned it (src/cuda/engine_choice.h, persistent_smem_layout) and hands it to the kernel in its parameters:
//   w_hh     [pad(4u), R] dtype  rows g*u + k = W_hh[d][g*H + j0 + k, :], for the block's units j0 + k
//   w_hr     [pad(up), H] dtype  rows k = W_hr[d][p0 + k, :] (projection only)
//            (pad: persistent_padded_rows; rows past the block's units or outputs are zeros)
//   h_stage  [kBatchChunk, K] f32, K = max(R, H with a projection): up to kBatchChunk sequences of the operand
//   pre      [4u, B] f32     this step's recurrent pre-activations W_hh h of the block's rows
//   c        [u, B] f32      the cell state of the block's units
struct PersistentSmemLayout {
  std::size_t w_hh = 0, w_hr = 0, h_stage = 0, pre = 0, c = 0;
  std::size_t total = 0;
  long long stage_width = 0;  // K
};

// One layer, all steps. Shapes as in lstm_stepwise.h (D directions, B batch, T steps, H hidden, R = P or H, G = 4H).
struct PersistentLayerParams {
  LayerDims dims;
  PersistentTiling tiling;
  PersistentSmemLayout smem;  // each block's dynamic shared memory, for this call's batch
  int layer = 0;
  long long steps = 0;  // max(len): the steps to run (0: the state passes through)
  cell::CellParams cell{};
  const int* lengths = nullptr;     // [B], or null: every sequence has T steps
  const float* gates_x = nullptr;   // [T*B, D*G] f32 input projections, no bias
  const void* w_hh = nullptr;       // [D, G, R] dtype
  const void* w_hr = nullptr;       // [D, P, H] dtype, or null without a projection
  const float* bias = nullptr;      // [D, G] f32 (b_ih + b_hh), or null
  const float* peephole = nullptr;  // [D, 3H] f32 (p_i, p_f, p_o), or null
  const void* h0 = nullptr;         // [L*D, B, R] dtype, or null (zeros)
  const void* c0 = nullptr;         // [L*D, B, H] dtype, or null (zeros)
  void* h[2] = {nullptr, nullptr};  // [B, R] dtype per direction, twice: step s reads h[s % 2], writes h[(s+1) % 2]
  long long h_stride = 0;           // elements between directions (both buffers)
  void* h_cell = nullptr;           // [B, H] dtype per direction: o * ha(c) before the projection; null without one
  long long h_cell_stride = 0;
  void* y = nullptr;    // [T*B, D*R] dtype layer output, or null (not wanted)
  void* h_n = nullptr;  // [L*D, B, R] dtype, or null
  void* c_n = nullptr;  // [L*D, B, H] dtype, or null
};


// What the device offers the persistent kernel, read once per Model (cudaDeviceGetAttribute and the occupancy API).
struct PersistentDeviceLimits {
  int sm_count = 0;
  std::size_t max_smem_per_block = 0;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
  bool cooperative_launch = false;     // cudaDevAttrCooperativeLaunch
};

// The device's limits for `device` (the current device must be it), or kCudaError.
Status persistent_device_limits(int device, PersistentDeviceLimits* out);

// Blocks of the persistent kernel for `dtype` that can be resident on one SM at once with `smem_bytes` of dynamic
// shared memory (cudaOccupancyMaxActiveBlocksPerMultiprocessor, after raising the kernel's shared-memory limit).
// 0 when it cannot run at all.
Status persistent_blocks_per_sm(DType dtype, std::size_t smem_bytes, int* out);

// Loads every instantiation of the persistent kernel on the current device (see load_stepwise_kernels).
Status load_persistent_kernels();

// Enqueues the layer as ONE cooperative launch of D * blocks_per_direction blocks on `stream`. The caller has
// checked co-residency (persistent_blocks_per_sm x sm_count >= blocks) for this batch size; the launch fails with
// cudaErrorCooperativeLaunchTooLarge (never a hang) if that is not so.
Status launch_persistent_layer(DType dtype, const PersistentLayerParams& params, Stream stream);

}  // namespace kernels
}  // namespace culstm
