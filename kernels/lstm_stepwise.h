// kernels/lstm_stepwise.h: the kernels of the stepwise engine, as seen from the host: one plain parameter struct
// per kernel and a launcher that enqueues it on a stream and checks the launch. Host-safe (no CUDA header); the
// per-element work is in stepwise_elements.h (host-and-device), the kernels in lstm_stepwise.cuh, the launchers in
// lstm_stepwise.cu, the plan and its runner in src/cuda/call_plan.cpp and layer_runner.cpp. docs/cuda_backend.md
// describes the engine.
//
// Shapes, with D directions, B batch, T steps, H hidden, R = P (projection) or H, G = 4H, "dtype" the model's
// storage type. Per-direction state tensors are given as the pointer of direction 0 plus a stride in elements
// (direction d at ptr + d * stride), as the strided-batched GEMMs see them.
#pragma once

#include <cstddef>

#include "cell_math.h"
#include "culstm/status.h"
#include "culstm/types.h"

namespace culstm {
namespace kernels {

// What every kernel of one layer needs to know about the sizes.
struct LayerDims {
  int directions = 1;                 // D
  long long batch = 0;                // B
  long long seq_len = 0;              // T
  long long hidden = 0;               // H
  long long recurrent = 0;            // R: P when projecting, else H
  bool batch_major = false;           // rows of x / y / gates_x are (b, t) instead of (t, b)
  bool reversed[2] = {false, false};  // per direction: runs t = len-1 .. 0
};

// Loads layer `layer`'s initial state: h[d][b, :] = h0[layer*D + d, b, :], c = f32(c0[...]), zeros when absent.
// Also zeroes h_cell (when given) so that the projection GEMM never reads uninitialized memory.
struct InitialStateParams {
  LayerDims dims;
  int layer = 0;
  const void* h0 = nullptr;  // [L*D, B, R] dtype, or null (zeros)
  const void* c0 = nullptr;  // [L*D, B, H] dtype, or null (zeros)
  void* h = nullptr;         // [B, R] dtype per direction
  long long h_stride = 0;
  float* c = nullptr;  // [B, H] f32 per direction
  long long c_stride = 0;
  void* h_cell = nullptr;  // [B, H] dtype per direction, or null (no projection)
  long long h_cell_stride = 0;
};

// Writes padding_value at every (t, b) with t >= len[b] of a layer output [T*B, D*R] (all D*R columns).
struct FillPaddingParams {
  LayerDims dims;
  const int* lengths = nullptr;  // [B]; the launcher is only called when some len[b] < T
  void* y = nullptr;             // [T*B, D*R] dtype
  float value = 0.0f;
};

// One step of the recurrence for every direction, sequence and hidden unit (one thread per (d, b, j)):
// pre = gates_x[row(t, b), d*G + g*H + j] + gates_h[d][b, g*H + j] + bias[d, g*H + j] for the gates g = i, f, g, o,
// then kernels/cell_math.h's lstm_cell<float>. Rows with step >= len[b] are left untouched. Without a projection
// it writes h[d][b, j] and y[row(t, b), d*R + j]; with one it writes h_cell[d][b, j] and the projection follows.
struct PointwiseStepParams {
  LayerDims dims;
  long long step = 0;
  cell::CellParams cell{};
  const int* lengths = nullptr;    // [B], or null: every sequence has T steps
  const float* gates_x = nullptr;  // [T*B, D*G] f32 (input projections, no bias)
  const float* gates_h = nullptr;  // [B, G] f32 per direction (recurrent projections of this step)
  long long gates_h_stride = 0;
  const float* bias = nullptr;      // [D, G] f32 (b_ih + b_hh), or null
  const float* peephole = nullptr;  // [D, 3H] f32 (p_i, p_f, p_o), or null
  float* c = nullptr;               // [B, H] f32 per direction, updated in place
  long long c_stride = 0;
  void* h = nullptr;  // [B, H] dtype per direction (written when there is no projection)
  long long h_stride = 0;
  void* h_cell = nullptr;  // [B, H] dtype per direction, or null; non-null means "projecting"
  long long h_cell_stride = 0;
  void* y = nullptr;  // [T*B, D*R] dtype layer output, or null (not wanted)
};

// With a projection: for rows with step < len[b], h[d][b, p] = dtype(h_proj[d][b, p]) and y[row(t, b), d*R + p]
// = the same value. Rows that finished keep their h.
struct ProjectionCommitParams {
  LayerDims dims;
  long long step = 0;
  const int* lengths = nullptr;   // [B], or null
  const float* h_proj = nullptr;  // [B, P] f32 per direction
  long long h_proj_stride = 0;
  void* h = nullptr;  // [B, P] dtype per direction
  long long h_stride = 0;
  void* y = nullptr;  // [T*B, D*R] dtype, or null
};

// After the last step: h_n[layer*D + d, b, :] = h[d][b, :], c_n[...] = dtype(c[d][b, :]); null outputs skipped.
struct FinalStateParams {
  LayerDims dims;
  int layer = 0;
  void* h_n = nullptr;  // [L*D, B, R] dtype, or null
  void* c_n = nullptr;  // [L*D, B, H] dtype, or null
  const void* h = nullptr;
  long long h_stride = 0;
  const float* c = nullptr;
  long long c_stride = 0;
};

// Elements each kernel covers (one thread-iteration per element; see stepwise_elements.h).
CULSTM_HD long long state_elements(const LayerDims& d) {  // initial state, pointwise step, final state: (d, b, j)
  return d.directions * d.batch * d.hidden;
}
CULSTM_HD long long projection_elements(const LayerDims& d) {  // projection commit: (d, b, k < P)
  return d.directions * d.batch * d.recurrent;
}
CULSTM_HD long long output_elements(const LayerDims& d) {  // fill padding: the whole [T*B, D*R] layer output
  return d.seq_len * d.batch * d.directions * d.recurrent;
}

// Loads every kernel of the stepwise engine (each storage type) on the current device: under lazy module loading
// (CUDA's default) a kernel is otherwise loaded at its first launch, which may then fall inside a stream capture.
// Also the check that this build has device code the GPU can run: kCudaError with the runtime's reason (e.g.
// cudaErrorNoKernelImageForDevice) otherwise.
Status load_stepwise_kernels();

// Launchers: enqueue on `stream`, then check the launch (cudaGetLastError). `dtype` is the model's storage type.
Status launch_initial_state(DType dtype, const InitialStateParams& params, Stream stream);
Status launch_fill_padding(DType dtype, const FillPaddingParams& params, Stream stream);
Status launch_pointwise_step(DType dtype, const PointwiseStepParams& params, Stream stream);
Status launch_projection_commit(DType dtype, const ProjectionCommitParams& params, Stream stream);
Status launch_final_state(DType dtype, const FinalStateParams& params, Stream stream);

}  // namespace kernels
}  // namespace culstm
