// Internal: the pure host arithmetic of the `cuda` backend's stepwise engine (docs/cuda_backend.md): where each
// buffer lives in the caller's workspace, the shapes of the GEMMs, and the Plan. No CUDA header; unit-tested on
// the CPU (tests/unit/cuda_layout_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "culstm/culstm.hpp"
#include "persistent_plan.h"

namespace culstm {
namespace stepwise {

// Every region starts on this boundary: cublasSetWorkspace wants 256-byte alignment, and it keeps every buffer
// aligned for any vector width a kernel may use.
constexpr std::size_t kWorkspaceAlignment = 256;

// cuBLAS's recommended user workspace (cuBLAS docs, cublasSetWorkspace): 32 MiB on Hopper and newer, 4 MiB on
// older GPUs. Set explicitly so that stream capture never makes cuBLAS allocate.
std::size_t cublas_workspace_bytes(int compute_capability_major);

// A slice of the caller's workspace, in bytes from its start. bytes == 0: the region is not used.
struct Region {
  std::size_t offset = 0;
  std::size_t bytes = 0;
  std::size_t end() const noexcept { return offset + bytes; }
};

// Where one forward(B, T) keeps its buffers. With D directions, H hidden, R = P or H, G = 4H, "dtype" the model's
// storage type (f32/f16/bf16):
//   cublas        cuBLAS workspace
//   lengths       [B] int32, the per-sequence lengths on the device
//   gates_x       [T*B, D*G] f32: one layer's input projections for every step and direction (rows in the
//                 caller's layout: (t, b) seq-major, (b, t) batch-major), biases not included
//   layer_out[k]  [T*B, D*R] dtype: outputs of intermediate layers, ping-pong (layer l < L-1 writes l % 2)
//   state         D blocks of direction_block bytes, direction d at state.offset + d * direction_block; inside a
//                 block, at the offsets below:
//     gates_h     [B, G] f32    the current step's recurrent projections W_hh h
//     h           [B, R] dtype  hidden state (what the recurrent GEMM reads)
//     c           [B, H] f32    cell state (always f32)
//     h_cell      [B, H] dtype  o * ha(c) before the projection (P > 0 only)
//     h_proj      [B, P] f32    W_hr h_cell, committed to h for the rows still running (P > 0 only)
//     h_next      [B, R] dtype  the persistent engine's second h buffer (it reads one and writes the other)
// Because every direction's block has the same size, each buffer has a constant per-direction stride, which is
// what the strided-batched recurrent and projection GEMMs need.
struct StepwiseLayout {
  Region cublas;
  Region lengths;
  Region gates_x;
  Region layer_out[2];
  Region state;
  std::size_t direction_block = 0;
  std::size_t gates_h = 0, h = 0, c = 0, h_cell = 0, h_proj = 0, h_next = 0;  // offsets in a direction block
  std::size_t total = 0;  // bytes; saturates at SIZE_MAX when the sizes do not fit in size_t
};

StepwiseLayout stepwise_layout(const LstmSpec& spec, std::int64_t batch, std::int64_t seq_len,
                               std::size_t cublas_bytes);

// A row-major GEMM C[m, n] (f32) = A[m, k] * W[n, k]^T, `batch` times (strided over directions).
struct GemmShape {
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t batch = 1;
};

struct LayerGemms {
  GemmShape input;       // [T*B, I_l] x [I_l, D*4H]: once per layer, every step and both directions
  GemmShape recurrent;   // [B, R] x [R, 4H], batched over D: once per step
  GemmShape projection;  // [B, H] x [H, P], batched over D: once per step; m == 0 without a projection
};

LayerGemms layer_gemms(const LstmSpec& spec, int layer, std::int64_t batch, std::int64_t seq_len);

// The Plan of the cuda backend for the model's limits (max_batch, max_seq_len): per layer and direction the engine
// ("stepwise" or "persistent", as `engines` says; all stepwise when it is empty), its shapes, its state block in
// the workspace, and why.
Plan stepwise_plan(const LstmSpec& spec, const ModelOptions& options, std::size_t cublas_bytes,
                   const std::vector<LayerEngine>& engines = {});

}  // namespace stepwise
}  // namespace culstm
