// kernels/stepwise_elements.h: what one thread of each stepwise-engine kernel does to one element. Host-and-device
// code (like cell_math.h): the kernels in lstm_stepwise.cuh are grid-stride loops over these functions, and
// tests/unit/cuda_schedule_test.cpp runs the very same functions on the CPU. No CUDA header: the storage types
// reach these templates through Storage<T> (float here; __half / __nv_bfloat16 in dtype_traits.cuh; host
// stand-ins in the test).
#pragma once

#include "cell_math.h"
#include "lstm_stepwise.h"
#include "sequence_index.h"

namespace culstm {
namespace kernels {

// Storage<T>::load(v) -> float and Storage<T>::store(float) -> T (round to nearest even) for each storage type.
template <typename T>
struct Storage;

template <>
struct Storage<float> {
  static CULSTM_HD float load(float v) { return v; }
  static CULSTM_HD float store(float v) { return v; }
};

CULSTM_HD long long length_of(const int* lengths, long long b, long long seq_len) {
  return lengths ? static_cast<long long>(lengths[b]) : seq_len;
}

CULSTM_HD bool direction_reversed(const LayerDims& dims, long long d) {
  return d == 0 ? dims.reversed[0] : dims.reversed[1];  // no dynamic indexing into kernel parameters
}

// One hidden unit's cell update for one (t, b) and direction, both engines: the pre-activations of the gates
// g = i, f, g, o are gx[g*H] + gh[g*gh_stride] (+ bias[g*H]), with gx at unit j of the direction's input
// projections, gh at the unit's recurrent ones, bias and peephole at unit j of the direction's (or null); then
// kernels/cell_math.h's cell from c_prev.
CULSTM_HD cell::CellOutput<float> unit_update(const cell::CellParams& cell, const float* gx, const float* gh,
                                              long long gh_stride, const float* bias, const float* peephole,
                                              long long H, float c_prev) {
  float pre[4];
  for (int g = 0; g < 4; ++g) {
    pre[g] = gx[g * H] + gh[g * gh_stride];
    if (bias) pre[g] += bias[g * H];
  }
  float p_i = 0.0f, p_f = 0.0f, p_o = 0.0f;
  if (peephole) {
    p_i = peephole[0];
    p_f = peephole[H];
    p_o = peephole[2 * H];
  }
  return cell::lstm_cell<float>(cell, pre[0], pre[1], pre[2], pre[3], c_prev, p_i, p_f, p_o);
}

// culstm_load_initial_state, element idx in [0, D*B*H): (d, b, j). Writes c (and h_cell) at j, h at j when j < R.
template <typename T>
CULSTM_HD void initial_state_element(const InitialStateParams& p, long long idx) {
  const LayerDims& dims = p.dims;
  const long long B = dims.batch, H = dims.hidden, R = dims.recurrent;
  const long long j = idx % H, db = idx / H, b = db % B, d = db / B;
  const long long row = static_cast<long long>(p.layer) * dims.directions + d;  // row of [L*D, B, .]
  const T* h0 = static_cast<const T*>(p.h0);
  const T* c0 = static_cast<const T*>(p.c0);
  p.c[d * p.c_stride + b * H + j] = c0 ? Storage<T>::load(c0[(row * B + b) * H + j]) : 0.0f;
  if (p.h_cell) static_cast<T*>(p.h_cell)[d * p.h_cell_stride + b * H + j] = Storage<T>::store(0.0f);
  if (j < R) {
    static_cast<T*>(p.h)[d * p.h_stride + b * R + j] = h0 ? h0[(row * B + b) * R + j] : Storage<T>::store(0.0f);
  }
}

// culstm_fill_padding, element idx in [0, T*B*D*R) of the layer output.
template <typename T>
CULSTM_HD void fill_padding_element(const FillPaddingParams& p, long long idx) {
  const LayerDims& dims = p.dims;
  const long long Y = dims.directions * dims.recurrent;
  const long long row = idx / Y;
  const long long t = seq::time_of_row(row, dims.seq_len, dims.batch, dims.batch_major);
  const long long b = seq::batch_of_row(row, dims.seq_len, dims.batch, dims.batch_major);
  if (t >= p.lengths[b]) static_cast<T*>(p.y)[idx] = Storage<T>::store(p.value);
}

// culstm_lstm_pointwise_step, element idx in [0, D*B*H): (d, b, j), j fastest so that gate rows are coalesced.
template <typename T>
CULSTM_HD void pointwise_step_element(const PointwiseStepParams& p, long long idx) {
  const LayerDims& dims = p.dims;
  const long long B = dims.batch, H = dims.hidden, R = dims.recurrent, D = dims.directions, G = 4 * H;
  const long long j = idx % H, db = idx / H, b = db % B, d = db / B;
  const long long len = length_of(p.lengths, b, dims.seq_len);
  if (!seq::step_active(p.step, len)) return;  // finished (or empty) sequence: its state stays as it is
  const long long t = seq::step_time(p.step, len, direction_reversed(dims, d));
  const long long row = seq::row_of(t, b, dims.seq_len, B, dims.batch_major);

  const float* gx = p.gates_x + row * (D * G) + d * G + j;  // unit j of this direction's input projections of (t, b)
  const float* gh = p.gates_h + d * p.gates_h_stride + b * G + j;
  float* c = p.c + d * p.c_stride + b * H + j;
  const cell::CellOutput<float> out = unit_update(p.cell, gx, gh, H, p.bias ? p.bias + d * G + j : nullptr,
                                                  p.peephole ? p.peephole + d * 3 * H + j : nullptr, H, *c);
  *c = out.c;
  const T value = Storage<T>::store(out.h);
  if (p.h_cell) {
    static_cast<T*>(p.h_cell)[d * p.h_cell_stride + b * H + j] = value;  // projection GEMM and commit follow
  } else {
    static_cast<T*>(p.h)[d * p.h_stride + b * R + j] = value;  // R == H without a projection
    if (p.y) static_cast<T*>(p.y)[row * (D * R) + d * R + j] = value;
  }
}

// culstm_lstm_projection_commit, element idx in [0, D*B*P): (d, b, k).
template <typename T>
CULSTM_HD void projection_commit_element(const ProjectionCommitParams& p, long long idx) {
  const LayerDims& dims = p.dims;
  const long long B = dims.batch, R = dims.recurrent, D = dims.directions;
  const long long k = idx % R, db = idx / R, b = db % B, d = db / B;
  const long long len = length_of(p.lengths, b, dims.seq_len);
  if (!seq::step_active(p.step, len)) return;  // finished rows keep their h
  const T value = Storage<T>::store(p.h_proj[d * p.h_proj_stride + b * R + k]);
  static_cast<T*>(p.h)[d * p.h_stride + b * R + k] = value;
  if (p.y) {
    const long long t = seq::step_time(p.step, len, direction_reversed(dims, d));
    const long long row = seq::row_of(t, b, dims.seq_len, B, dims.batch_major);
    static_cast<T*>(p.y)[row * (D * R) + d * R + k] = value;
  }
}

// culstm_store_final_state, element idx in [0, D*B*H): c_n at j, h_n at j when j < R.
template <typename T>
CULSTM_HD void final_state_element(const FinalStateParams& p, long long idx) {
  const LayerDims& dims = p.dims;
  const long long B = dims.batch, H = dims.hidden, R = dims.recurrent;
  const long long j = idx % H, db = idx / H, b = db % B, d = db / B;
  const long long row = static_cast<long long>(p.layer) * dims.directions + d;
  if (p.c_n) static_cast<T*>(p.c_n)[(row * B + b) * H + j] = Storage<T>::store(p.c[d * p.c_stride + b * H + j]);
  if (p.h_n && j < R) {
    static_cast<T*>(p.h_n)[(row * B + b) * R + j] = static_cast<const T*>(p.h)[d * p.h_stride + b * R + j];
  }
}

}  // namespace kernels
}  // namespace culstm
