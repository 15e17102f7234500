// kernels/sequence_index.h: which time step a (direction, sequence, step) touches, and where (t, b) lives in a
// [T, B, F] / [B, T, F] tensor viewed as rows of F values. Host-and-device code, the one copy of this index math:
// the CUDA kernels use it, and tests/unit/cuda_layout_test.cpp checks it on the CPU (docs/design.md §2).
#pragma once

#include "host_device.h"

namespace culstm {
namespace seq {

// A direction runs max(len) steps for the whole batch; sequence b takes part in step `step` only while
// step < len[b]. Rows with step >= len[b] keep their state unchanged (len[b] == 0: the state passes through).
CULSTM_HD bool step_active(long long step, long long len) {
  return step < len;
}

// Time index processed at step `step` (valid only when step_active): forward t = step, reverse t = len - 1 - step,
// so a reversed sequence starts at its own last element, not at T - 1.
CULSTM_HD long long step_time(long long step, long long len, bool reversed) {
  return reversed ? len - 1 - step : step;
}

// Row of element (t, b) in a tensor of T x B rows: seq-major [T, B, F] has row t*B + b, batch-major [B, T, F] has
// row b*T + t. x, y, the input projections and the intermediate layer outputs all use the caller's layout.
CULSTM_HD long long row_of(long long t, long long b, long long T, long long B, bool batch_major) {
  return batch_major ? b * T + t : t * B + b;
}

// The inverse of row_of.
CULSTM_HD long long time_of_row(long long row, long long T, long long B, bool batch_major) {
  return batch_major ? row % T : row / B;
}
CULSTM_HD long long batch_of_row(long long row, long long T, long long B, bool batch_major) {
  return batch_major ? row / T : row % B;
}

}  // namespace seq
}  // namespace culstm
