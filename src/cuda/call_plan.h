// Internal: the per-call plan of the `cuda` backend (docs/design.md, docs/cuda_backend.md). plan_call() is a pure
// host function that turns (model, batch, steps, lengths, the caller's buffers) into everything one forward()
// executes: where each buffer lives in the caller's workspace, and per layer the engine, the GEMM descriptors and
// the filled kernel parameters. layer_runner.h executes a CallPlan; explain_model() renders the same structure at
// the model's limits (max_batch, max_seq_len) for Plan::explain(). No CUDA header; unit-tested on the CPU
// (tests/unit/cuda_layout_test.cpp, cuda_schedule_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../backend.h"
#include "culstm/culstm.hpp"
#include "engine_choice.h"
#include "lstm_persistent.h"
#include "lstm_stepwise.h"

namespace culstm {
namespace cuda_backend {

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
struct WorkspaceLayout {
  Region cublas;
  Region lengths;
  Region gates_x;
  Region layer_out[2];
  Region state;
  std::size_t direction_block = 0;
  std::size_t gates_h = 0, h = 0, c = 0, h_cell = 0, h_proj = 0, h_next = 0;  // offsets in a direction block
  std::size_t total = 0;  // bytes; saturates at SIZE_MAX when the sizes do not fit in size_t
};

WorkspaceLayout workspace_layout(const LstmSpec& spec, std::int64_t batch, std::int64_t seq_len,
                                 std::size_t cublas_bytes);

// A row-major GEMM C[m, n] (f32) = A[m, k] * W[n, k]^T, `batch` times; strides in elements between batches.
// A and W hold the model dtype, of `value_bytes` bytes per element.
struct Gemm {
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
  std::size_t value_bytes = 4;
  const void* a = nullptr;
  std::int64_t lda = 0, stride_a = 0;
  const void* w = nullptr;
  std::int64_t ldw = 0, stride_w = 0;
  float* c = nullptr;
  std::int64_t ldc = 0, stride_c = 0;
};

// The same GEMM as cublasGemmStridedBatchedEx / cublasGemmEx take it (column-major, BLAS names):
// C (m x n, ldc) = op(A) (m x k) * op(B) (k x n), with op(A) = A^T and op(B) = B here.
struct BlasGemm {
  bool trans_a = true, trans_b = false;
  int m = 0, n = 0, k = 0;
  const void* A = nullptr;
  int lda = 0;
  long long stride_a = 0;
  const void* B = nullptr;
  int ldb = 0;
  long long stride_b = 0;
  float* C = nullptr;
  int ldc = 0;
  long long stride_c = 0;
  int batch = 1;
};

// Row-major C = A W^T is, in column-major memory, C^T = W A^T: cuBLAS's A is W (a k x n column-major matrix,
// transposed), its B is our A (k x m), and its m, n are our n, m. kInternal when a size exceeds cuBLAS's int.
Status to_blas(const Gemm& g, BlasGemm* out);

// One layer's weights as the GEMMs and kernels read them (packed_weights.h lays them out).
struct LayerWeightPointers {
  const void* w_ih = nullptr;       // [D*4H, I_l] dtype: both directions stacked, so ONE input GEMM serves both
  const void* w_hh = nullptr;       // [D, 4H, R] dtype
  const void* w_hr = nullptr;       // [D, P, H] dtype, or null without a projection
  const float* bias = nullptr;      // [D, 4H] f32: b_ih + b_hh, or null without biases
  const float* peephole = nullptr;  // [D, 3H] f32: p_i, p_f, p_o, or null without peepholes
};

// What a Model fixes for every call.
struct ModelPlan {
  LstmSpec spec;
  std::size_t cublas_bytes = 0;
  std::vector<LayerEngine> engines;          // per layer (engine_choice.h)
  std::vector<LayerWeightPointers> weights;  // per layer, into the device copy (empty: no weights, explain only)
};

// One layer of one call, both directions. The stepwise engine runs
//   [padding]  initial  input GEMM  per step: recurrent GEMM, pointwise [, projection GEMM, commit]  [final]
// the persistent engine
//   [padding]  input GEMM  persistent
// `pointwise` and `commit` hold step 0; the runner sets `step` for the others.
struct LayerPlan {
  int layer = 0;
  bool persistent = false;
  bool fill_padding = false;  // some sequence is shorter than T and the layer output is wanted
  bool projecting = false;    // P > 0: projection GEMM and commit each step (stepwise)
  bool final_state = false;   // h_n or c_n is wanted (stepwise)
  Gemm input;                 // every row of the layer input x W_ih^T, both directions; rows beyond cuBLAS's int are
                              // split by the runner
  Gemm recurrent;             // gates_h[d] = h[d] W_hh[d]^T, batched over directions
  Gemm projection;            // h_proj[d] = h_cell[d] W_hr[d]^T, batched over directions (projecting only)
  kernels::FillPaddingParams padding;
  kernels::InitialStateParams initial;
  kernels::PointwiseStepParams pointwise;
  kernels::ProjectionCommitParams commit;
  kernels::FinalStateParams final;
  kernels::PersistentLayerParams persistent_layer;
};

// Everything one forward() executes. Buffers are the caller's; with no buffers (explain_model) every pointer is null.
struct CallPlan {
  std::int64_t batch = 0, seq_len = 0;
  std::int64_t steps = 0;  // max(len): the steps that run (0 when every length is 0)
  WorkspaceLayout workspace;
  const std::int32_t* host_lengths = nullptr;  // to upload when some sequence is shorter than T, else null
  int* device_lengths = nullptr;               // where they go (the workspace's lengths region)
  std::vector<LayerPlan> layers;               // capacity reused: planning a call like an earlier one allocates nothing
};

// The plan of one call: `shape` as validation derived it, `args` the caller's (validated) buffers. kInternal when a
// GEMM exceeds cuBLAS's int sizes.
Status plan_call(const ModelPlan& model, const ForwardArgs& args, const ForwardShape& shape, CallPlan* out);

// The Plan of the cuda backend at the model's limits (max_batch, max_seq_len): the CallPlan of a call of that size,
// per layer and direction the engine, its GEMMs, its state block in the workspace, and why.
Plan explain_model(const ModelPlan& model, const ModelOptions& options);

}  // namespace cuda_backend
}  // namespace culstm
