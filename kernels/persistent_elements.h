// kernels/persistent_elements.h: the program one thread block of the persistent engine runs (lstm_persistent.h,
// docs/persistent.md). Host-and-device code, written once against a `Team` that supplies the thread's place in its
// block and the barriers:
//   thread(), threads()        this thread among the block's threads
//   warp(), warps()            this thread's warp among the block's warps
//   lane(), lanes()            this thread among the threads that share one dot product (a warp on the GPU)
//   lane_sum(v)                the sum of v over those lanes, valid in lane 0
//   sync_block()               __syncthreads()
//   sync_grid()                every block of the launch has arrived (cooperative groups' grid sync on the GPU)
// The GPU runs it with one block per resident slot (lstm_persistent.cu); tests/unit/cuda_persistent_test.cpp runs
// the very same program on the CPU with one host thread per block, one "lane" per block and a real barrier, so the
// step loop, the buffer parity, the tiling and every index are checked against the reference without a GPU.
#pragma once

#include "cell_math.h"
#include "lstm_persistent.h"
#include "sequence_index.h"
#include "stepwise_elements.h"

namespace culstm {
namespace kernels {

// Loads data that other blocks write during the launch: through L2 only (ld.global.cg), never from a possibly
// stale L1 line. Read-only data (weights, gates_x, lengths) use plain loads. 16-bit values go through the
// unsigned short overload: CUDA's __half / __nv_bfloat16 __ldcg are non-volatile asm without a memory clobber,
// which the compiler may move across a barrier; the integer and float overloads are volatile.
template <typename T>
CULSTM_HD T load_shared_global(const T* ptr) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 2) {
    const unsigned short bits = __ldcg(reinterpret_cast<const unsigned short*>(ptr));
    T value;
    memcpy(&value, &bits, sizeof value);
    return value;
  } else {
    return __ldcg(ptr);
  }
#else
  return *ptr;
#endif
}

// The block's place in the layer: direction, its hidden units [j0, j0 + units), its projection outputs
// [p0, p0 + proj_units) (none without a projection, and possibly none for the last blocks).
struct BlockSlice {
  int d = 0;
  long long j0 = 0, units = 0;
  long long p0 = 0, proj_units = 0;
};

CULSTM_HD BlockSlice block_slice(const PersistentLayerParams& p, int block) {
  const PersistentTiling& t = p.tiling;
  const long long H = p.dims.hidden, P = p.w_hr != nullptr ? p.dims.recurrent : 0;
  BlockSlice s;
  s.d = block / t.blocks_per_direction;
  const long long k = block % t.blocks_per_direction;
  s.j0 = k * t.units_per_block;
  s.units = H - s.j0 < t.units_per_block ? H - s.j0 : t.units_per_block;
  s.p0 = k * t.proj_per_block;
  const long long left = P - s.p0;
  s.proj_units = left <= 0 ? 0 : (left < t.proj_per_block ? left : t.proj_per_block);
  return s;
}

// Typed views of the block's shared memory (layout in lstm_persistent.h).
template <typename T>
struct BlockSmem {
  T* w_hh;
  T* w_hr;
  float* h_stage;
  float* pre;
  float* c;
};

template <typename T>
CULSTM_HD BlockSmem<T> block_smem(unsigned char* base, const PersistentSmemLayout& l) {
  return BlockSmem<T>{reinterpret_cast<T*>(base + l.w_hh), reinterpret_cast<T*>(base + l.w_hr),
                      reinterpret_cast<float*>(base + l.h_stage), reinterpret_cast<float*>(base + l.pre),
                      reinterpret_cast<float*>(base + l.c)};
}

// Copies the block's rows of W_hh (and W_hr) into shared memory; rows past the block's units (or outputs) and the
// padding rows are zero.
template <typename T, typename Team>
CULSTM_HD void persistent_load_weights(const PersistentLayerParams& p, const BlockSlice& s, const BlockSmem<T>& sm,
                                       const Team& team) {
  const long long H = p.dims.hidden, R = p.dims.recurrent, G = 4 * H, u = p.tiling.units_per_block;
  const long long rows_hh = persistent_padded_rows(4 * u);
  const T* w_hh = static_cast<const T*>(p.w_hh) + s.d * G * R;
  for (long long idx = team.thread(); idx < rows_hh * R; idx += team.threads()) {
    const long long r = idx / R, k = idx % R, g = r / u, unit = r % u;
    sm.w_hh[idx] = r < 4 * u && unit < s.units ? w_hh[(g * H + s.j0 + unit) * R + k] : Storage<T>::store(0.0f);
  }
  if (p.w_hr == nullptr) return;
  const long long rows_hr = persistent_padded_rows(p.tiling.proj_per_block);
  const T* w_hr = static_cast<const T*>(p.w_hr) + s.d * R * H;  // [P, H] per direction
  for (long long idx = team.thread(); idx < rows_hr * H; idx += team.threads()) {
    const long long r = idx / H, k = idx % H;
    sm.w_hr[idx] = r < s.proj_units ? w_hr[(s.p0 + r) * H + k] : Storage<T>::store(0.0f);
  }
}

// The columns of h this block writes: its projection outputs with a projection, its hidden units without.
struct OwnedColumns {
  long long first, count;
};
CULSTM_HD OwnedColumns owned_h_columns(const PersistentLayerParams& p, const BlockSlice& s) {
  return p.w_hr != nullptr ? OwnedColumns{s.p0, s.proj_units} : OwnedColumns{s.j0, s.units};
}

// c of the block's units from c0 (or zeros) into shared memory; the block's columns of h[0] from h0 (or zeros).
template <typename T, typename Team>
CULSTM_HD void persistent_load_state(const PersistentLayerParams& p, const BlockSlice& s, const BlockSmem<T>& sm,
                                     const Team& team) {
  const long long B = p.dims.batch, H = p.dims.hidden, R = p.dims.recurrent, u = p.tiling.units_per_block;
  const long long state_row = static_cast<long long>(p.layer) * p.dims.directions + s.d;  // row of [L*D, B, .]
  const T* c0 = static_cast<const T*>(p.c0);
  for (long long idx = team.thread(); idx < s.units * B; idx += team.threads()) {
    const long long unit = idx % s.units, b = idx / s.units;
    sm.c[b * u + unit] = c0 ? Storage<T>::load(c0[(state_row * B + b) * H + s.j0 + unit]) : 0.0f;
  }
  const OwnedColumns cols = owned_h_columns(p, s);
  const T* h0 = static_cast<const T*>(p.h0);
  T* h = static_cast<T*>(p.h[0]) + s.d * p.h_stride;
  for (long long idx = team.thread(); idx < cols.count * B; idx += team.threads()) {
    const long long k = cols.first + idx % cols.count, b = idx / cols.count;
    h[b * R + k] = h0 ? h0[(state_row * B + b) * R + k] : Storage<T>::store(0.0f);
  }
}

// Stages rows b0 .. b0 + Chunk - 1 of src ([B, width] dtype, written by other blocks) into h_stage as f32. Rows
// past B and rows of sequences that do not run this step are zeros: their results are never used.
template <int Chunk, typename T, typename Team>
CULSTM_HD void persistent_stage(const PersistentLayerParams& p, const T* src, long long width, long long b0,
                                long long step, float* stage, const Team& team) {
  const long long B = p.dims.batch;
  for (int bb = 0; bb < Chunk; ++bb) {
    const long long b = b0 + bb;
    const bool live = b < B && seq::step_active(step, length_of(p.lengths, b, p.dims.seq_len));
    for (long long k = team.thread(); k < width; k += team.threads()) {
      stage[bb * width + k] = live ? Storage<T>::load(load_shared_global(src + b * width + k)) : 0.0f;
    }
  }
}

// This lane's share of the dot products of kRowsPerWarp consecutive weight rows with Chunk staged sequences:
// k = lane, lane + lanes, ... One read of a weight feeds Chunk FMAs, one read of a staged value kRowsPerWarp.
template <int Chunk, typename T>
CULSTM_HD void lane_dots(const T* rows, long long width, const float* stage, int lane, int lanes,
                         float (&acc)[kRowsPerWarp][Chunk]) {
  for (long long k = lane; k < width; k += lanes) {
    float h[Chunk];
    for (int bb = 0; bb < Chunk; ++bb) h[bb] = stage[bb * width + k];
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float w = Storage<T>::load(rows[r * width + k]);
      for (int bb = 0; bb < Chunk; ++bb) acc[r][bb] += w * h[bb];
    }
  }
}

// The sums over the lanes (valid in lane 0), every lane taking part.
template <int Chunk, typename Team>
CULSTM_HD void sum_over_lanes(const Team& team, float (&acc)[kRowsPerWarp][Chunk]) {
  for (int r = 0; r < kRowsPerWarp; ++r) {
    for (int bb = 0; bb < Chunk; ++bb) acc[r][bb] = team.lane_sum(acc[r][bb]);
  }
}

// The block's matrix-vector products of one phase: for every chunk of sequences, stage the chunk of `src`
// ([B, width] dtype), then warps take groups of kRowsPerWarp rows of `weights` ([groups * kRowsPerWarp, width] in
// shared memory; a group is the same for every lane of a warp: uniform control flow for the lane sums) and lane 0
// hands each (row, sequence) result to store(row, b, value), for rows < rows and b < B.
template <int Chunk, typename T, typename Team, typename Store>
CULSTM_HD void persistent_matvec(const PersistentLayerParams& p, const T* weights, long long rows, const T* src,
                                 long long width, long long step, float* stage, Team& team, Store&& store) {
  const long long B = p.dims.batch;
  const long long groups = persistent_padded_rows(rows) / kRowsPerWarp;
  for (long long b0 = 0; b0 < B; b0 += Chunk) {
    team.sync_block();  // the previous chunk's (or phase's) readers are done with h_stage
    persistent_stage<Chunk>(p, src, width, b0, step, stage, team);
    team.sync_block();
    for (long long group = team.warp(); group < groups; group += team.warps()) {
      const long long r0 = group * kRowsPerWarp;
      float acc[kRowsPerWarp][Chunk] = {};
      lane_dots<Chunk>(weights + r0 * width, width, stage, team.lane(), team.lanes(), acc);
      sum_over_lanes<Chunk>(team, acc);
      if (team.lane() != 0) continue;
      for (int i = 0; i < kRowsPerWarp && r0 + i < rows; ++i) {
        for (int bb = 0; bb < Chunk && b0 + bb < B; ++bb) store(r0 + i, b0 + bb, acc[i][bb]);
      }
    }
  }
}

// Recurrent pre-activations of the block's rows for every sequence: pre[b, r] = W_hh[row r] . h_cur[b].
template <int Chunk, typename T, typename Team>
CULSTM_HD void persistent_recurrent(const PersistentLayerParams& p, const BlockSlice& s, const BlockSmem<T>& sm,
                                    long long step, const T* h_cur, Team& team) {
  const long long u = p.tiling.units_per_block;
  persistent_matvec<Chunk>(p, sm.w_hh, 4 * u, h_cur, p.dims.recurrent, step, sm.h_stage, team,
                           [&](long long r, long long b, float value) {
                             if (r % u < s.units) sm.pre[b * 4 * u + r] = value;  // else a unit past H
                           });
  team.sync_block();  // pre complete for the cell update
}

// The cell update of the block's units for every running sequence (kernels/cell_math.h), c kept in shared memory.
// Without a projection it writes h_next and y; with one, h_cell (the projection phase writes h_next and y).
// Sequences that do not run this step keep their state: without a projection their h is carried to h_next here.
template <typename T, typename Team>
CULSTM_HD void persistent_cell(const PersistentLayerParams& p, const BlockSlice& s, const BlockSmem<T>& sm,
                               long long step, const T* h_cur, T* h_next, const Team& team) {
  const LayerDims& dims = p.dims;
  const long long B = dims.batch, H = dims.hidden, R = dims.recurrent, D = dims.directions, G = 4 * H;
  const long long u = p.tiling.units_per_block;
  const bool projecting = p.w_hr != nullptr;
  const bool reversed = direction_reversed(dims, s.d);
  for (long long idx = team.thread(); idx < s.units * B; idx += team.threads()) {
    const long long unit = idx % s.units, b = idx / s.units, j = s.j0 + unit;
    const long long len = length_of(p.lengths, b, dims.seq_len);
    if (!seq::step_active(step, len)) {
      if (!projecting) h_next[b * R + j] = load_shared_global(h_cur + b * R + j);
      continue;
    }
    const long long t = seq::step_time(step, len, reversed);
    const long long row = seq::row_of(t, b, dims.seq_len, B, dims.batch_major);
    float& c = sm.c[b * u + unit];
    const cell::CellOutput<float> out =
        unit_update(p.cell, p.gates_x + row * (D * G) + s.d * G + j, sm.pre + b * 4 * u + unit, u,
                    p.bias ? p.bias + s.d * G + j : nullptr, p.peephole ? p.peephole + s.d * 3 * H + j : nullptr, H, c);
    c = out.c;
    const T value = Storage<T>::store(out.h);
    if (projecting) {
      static_cast<T*>(p.h_cell)[s.d * p.h_cell_stride + b * H + j] = value;
    } else {
      h_next[b * R + j] = value;
      if (p.y) static_cast<T*>(p.y)[row * (D * R) + s.d * R + j] = value;
    }
  }
}

// The projection of the block's outputs: h_next[b, k] = W_hr[k] . h_cell[b] for running sequences (and y), the
// carried h_cur[b, k] for the others.
template <int Chunk, typename T, typename Team>
CULSTM_HD void persistent_projection(const PersistentLayerParams& p, const BlockSlice& s, const BlockSmem<T>& sm,
                                     long long step, const T* h_cur, T* h_next, Team& team) {
  const LayerDims& dims = p.dims;
  const long long B = dims.batch, H = dims.hidden, R = dims.recurrent, D = dims.directions;
  const T* h_cell = static_cast<const T*>(p.h_cell) + s.d * p.h_cell_stride;
  const bool reversed = direction_reversed(dims, s.d);
  persistent_matvec<Chunk>(p, sm.w_hr, s.proj_units, h_cell, H, step, sm.h_stage, team,
                           [&](long long r, long long b, float projected) {
                             const long long k = s.p0 + r;
                             const long long len = length_of(p.lengths, b, dims.seq_len);
                             if (!seq::step_active(step, len)) {
                               h_next[b * R + k] = load_shared_global(h_cur + b * R + k);
                               return;
                             }
                             const T value = Storage<T>::store(projected);
                             h_next[b * R + k] = value;
                             if (p.y) {
                               const long long t = seq::step_time(step, len, reversed);
                               const long long row = seq::row_of(t, b, dims.seq_len, B, dims.batch_major);
                               static_cast<T*>(p.y)[row * (D * R) + s.d * R + k] = value;
                             }
                           });
}

// h_n from the block's columns of the last h buffer, c_n from its units' c.
template <typename T, typename Team>
CULSTM_HD void persistent_store_final(const PersistentLayerParams& p, const BlockSlice& s, const BlockSmem<T>& sm,
                                      const T* h_last, const Team& team) {
  const long long B = p.dims.batch, H = p.dims.hidden, R = p.dims.recurrent, u = p.tiling.units_per_block;
  const long long state_row = static_cast<long long>(p.layer) * p.dims.directions + s.d;
  if (p.c_n) {
    T* c_n = static_cast<T*>(p.c_n);
    for (long long idx = team.thread(); idx < s.units * B; idx += team.threads()) {
      const long long unit = idx % s.units, b = idx / s.units;
      c_n[(state_row * B + b) * H + s.j0 + unit] = Storage<T>::store(sm.c[b * u + unit]);
    }
  }
  if (p.h_n) {
    const OwnedColumns cols = owned_h_columns(p, s);
    T* h_n = static_cast<T*>(p.h_n);
    for (long long idx = team.thread(); idx < cols.count * B; idx += team.threads()) {
      const long long k = cols.first + idx % cols.count, b = idx / cols.count;
      h_n[(state_row * B + b) * R + k] = load_shared_global(h_last + b * R + k);
    }
  }
}

// The whole launch, as block `block` runs it. Barriers: one grid sync after the initial state, one per step after
// the cell update (h_next / h_cell complete everywhere), and with a projection one more per step after it.
// Step s reads h[s % 2] and writes h[(s + 1) % 2]; the grid sync between two steps makes every read of a buffer
// finish before it is written again.
// Chunk = persistent_batch_chunk(p.dims.batch) (any value from 1 to kBatchChunk is correct).
template <typename T, int Chunk, typename Team>
CULSTM_HD void persistent_layer_program(const PersistentLayerParams& p, int block, unsigned char* smem_base,
                                        Team& team) {
  static_assert(Chunk >= 1 && Chunk <= kBatchChunk, "h_stage holds kBatchChunk sequences");
  const BlockSmem<T> sm = block_smem<T>(smem_base, p.smem);
  const BlockSlice s = block_slice(p, block);
  // Two named pointers chosen by a select (not an array indexed by step % 2, which puts the array on the stack).
  T* const h_even = static_cast<T*>(p.h[0]) + s.d * p.h_stride;
  T* const h_odd = static_cast<T*>(p.h[1]) + s.d * p.h_stride;

  persistent_load_weights<T>(p, s, sm, team);
  persistent_load_state<T>(p, s, sm, team);
  team.sync_grid();
  for (long long step = 0; step < p.steps; ++step) {
    const T* h_cur = (step & 1) ? h_odd : h_even;
    T* h_next = (step & 1) ? h_even : h_odd;
    persistent_recurrent<Chunk>(p, s, sm, step, h_cur, team);
    persistent_cell<T>(p, s, sm, step, h_cur, h_next, team);
    team.sync_grid();
    if (p.w_hr != nullptr) {
      persistent_projection<Chunk>(p, s, sm, step, h_cur, h_next, team);
      team.sync_grid();
    }
  }
  persistent_store_final<T>(p, s, sm, (p.steps & 1) ? h_odd : h_even, team);
}

}  // namespace kernels
}  // namespace culstm
