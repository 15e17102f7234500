// Internal: the stepwise engine's schedule as pure host code (docs/cuda_backend.md). run_stepwise() walks the
// layers and steps and asks an Executor for each GEMM and kernel; the cuda backend's executor calls cuBLAS and
// launches the kernels on a stream, and tests/unit/cuda_schedule_test.cpp's executor runs the same GEMM calls
// (with cuBLAS's column-major semantics) and the same per-element kernel code on the CPU. Also here: the repacking
// of the weights into the layout the GEMMs and kernels read. No CUDA header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cell_math.h"
#include "culstm/culstm.hpp"
#include "lstm_persistent.h"
#include "lstm_stepwise.h"
#include "persistent_plan.h"

namespace culstm {
namespace stepwise {

// A row-major GEMM C[m, n] (f32) = A[m, k] * W[n, k]^T, `batch` times; strides in elements between batches.
// A and W hold the model dtype.
struct Gemm {
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
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

// What the schedule asks of the device. Every call enqueues (or, on the CPU, performs) one operation; calls are
// ordered. `dtype` is the model's storage type.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual Status gemm(const BlasGemm& g, const char* what) = 0;
  virtual Status upload_lengths(const kernels::UploadLengthsParams& p) = 0;
  virtual Status initial_state(const kernels::InitialStateParams& p) = 0;
  virtual Status fill_padding(const kernels::FillPaddingParams& p) = 0;
  virtual Status pointwise_step(const kernels::PointwiseStepParams& p) = 0;
  virtual Status projection_commit(const kernels::ProjectionCommitParams& p) = 0;
  virtual Status final_state(const kernels::FinalStateParams& p) = 0;
  virtual Status persistent_layer(const kernels::PersistentLayerParams& p) = 0;  // kernels/lstm_persistent.h
};

// Passes each GEMM of a distinct shape (sizes, transposes, leading dimensions, batch) on to `exec` once and drops
// everything else: run through the schedule, it calls every GEMM kernel a forward needs exactly once (the cuda
// backend's warm-up before capturing a CUDA graph).
class DistinctGemmsOnly final : public Executor {
 public:
  explicit DistinctGemmsOnly(Executor& exec) : exec_(exec) {}
  Status gemm(const BlasGemm& g, const char* what) override;
  Status upload_lengths(const kernels::UploadLengthsParams&) override { return Status::Ok(); }
  Status initial_state(const kernels::InitialStateParams&) override { return Status::Ok(); }
  Status fill_padding(const kernels::FillPaddingParams&) override { return Status::Ok(); }
  Status pointwise_step(const kernels::PointwiseStepParams&) override { return Status::Ok(); }
  Status projection_commit(const kernels::ProjectionCommitParams&) override { return Status::Ok(); }
  Status final_state(const kernels::FinalStateParams&) override { return Status::Ok(); }
  Status persistent_layer(const kernels::PersistentLayerParams&) override { return Status::Ok(); }

 private:
  Executor& exec_;
  std::vector<BlasGemm> seen_;  // a handful: at most three shapes per layer
};

// One layer's weights as the GEMMs and kernels read them.
struct LayerWeightPointers {
  const void* w_ih = nullptr;       // [D*4H, I_l] dtype: both directions stacked, so ONE input GEMM serves both
  const void* w_hh = nullptr;       // [D, 4H, R] dtype
  const void* w_hr = nullptr;       // [D, P, H] dtype, or null without a projection
  const float* bias = nullptr;      // [D, 4H] f32: b_ih + b_hh, or null without biases
  const float* peephole = nullptr;  // [D, 3H] f32: p_i, p_f, p_o, or null without peepholes
};

// Every weight of a model in one byte image (uploaded with one copy); tensors start on 256-byte boundaries.
// Values are rounded to the model dtype exactly as the reference rounds its weights; the two biases are added in
// double (as the reference does) and stored in f32.
struct PackedWeights {
  struct Offsets {
    std::size_t w_ih = 0, w_hh = 0, w_hr = 0, bias = 0, peephole = 0;
  };
  std::vector<std::uint8_t> bytes;
  std::vector<Offsets> layers;
};
PackedWeights pack_weights(const LstmSpec& spec, const Weights& weights);
// The per-layer pointers into a copy of `packed.bytes` that starts at `base`.
std::vector<LayerWeightPointers> weight_pointers(const LstmSpec& spec, const PackedWeights& packed, const void* base);

// Sizes of one forward call, from x's shape and the host lengths.
struct RunShape {
  std::int64_t seq_len = 0;               // T
  std::int64_t batch = 0;                 // B
  std::int64_t steps = 0;                 // max(len): the steps actually run (0 when every length is 0)
  bool any_short = false;                 // some len[b] < T: lengths go to the device and y gets padding
  const std::int32_t* lengths = nullptr;  // host; null when absent or all equal to T (the kernels then read none)
};
RunShape run_shape(const LstmSpec& spec, const ForwardArgs& args);

// The cell parameters of a spec (clips disabled as 0).
cell::CellParams cell_params(const LstmSpec& spec);

// Runs the whole forward through `exec`: per layer, padding and the input GEMM, then
//   stepwise:   initial state, per step the recurrent GEMM, the pointwise kernel and (with a projection) the
//               projection GEMM and commit, then the final state;
//   persistent: one persistent_layer launch that does all of that on chip.
// `engines` says which per layer (empty: stepwise everywhere). `args` holds pointers the executor can dereference
// (device memory for the cuda backend) and a workspace laid out as stepwise_layout(spec, B, T, cublas_bytes) says.
Status run_stepwise(const LstmSpec& spec, const std::vector<LayerWeightPointers>& weights, const ForwardArgs& args,
                    const RunShape& shape, std::size_t cublas_bytes, Executor& exec,
                    const std::vector<LayerEngine>& engines = {});

}  // namespace stepwise
}  // namespace culstm
