// Internal: executes a CallPlan (call_plan.h) through an Executor, the same for both engines (docs/design.md).
// The cuda backend's executor calls cuBLAS and launches the kernels on a stream; tests/unit/cuda_schedule_test.cpp's
// executor runs the same GEMM calls (with cuBLAS's column-major semantics) and the same per-element and per-block
// kernel code on the CPU. No CUDA header.
#pragma once

#include <vector>

#include "call_plan.h"
#include "culstm/status.h"
#include "lengths_upload.h"
#include "lstm_persistent.h"
#include "lstm_stepwise.h"

namespace culstm {
namespace cuda_backend {

// What the runner asks of the device. Every call enqueues (or, on the CPU, performs) one operation; calls are
// ordered.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual Status gemm(const BlasGemm& g, const char* what) = 0;
  virtual Status upload_lengths(const gpu::UploadLengthsParams& p) = 0;
  virtual Status initial_state(const kernels::InitialStateParams& p) = 0;
  virtual Status fill_padding(const kernels::FillPaddingParams& p) = 0;
  virtual Status pointwise_step(const kernels::PointwiseStepParams& p) = 0;
  virtual Status projection_commit(const kernels::ProjectionCommitParams& p) = 0;
  virtual Status final_state(const kernels::FinalStateParams& p) = 0;
  virtual Status persistent_layer(const kernels::PersistentLayerParams& p) = 0;  // kernels/lstm_persistent.h
};

// Passes each GEMM of a distinct shape (sizes, transposes, leading dimensions, batch) on to `exec` once and drops
// everything else: run over a CallPlan, it calls every GEMM kernel a forward needs exactly once (the cuda
// backend's warm-up before capturing a CUDA graph).
class DistinctGemmsOnly final : public Executor {
 public:
  explicit DistinctGemmsOnly(Executor& exec) : exec_(exec) {}
  Status gemm(const BlasGemm& g, const char* what) override;
  Status upload_lengths(const gpu::UploadLengthsParams&) override { return Status::Ok(); }
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

// Runs the whole call: the lengths upload, then per layer (both directions in the same launches)
//   stepwise:   [padding], initial state, the input GEMM, per step the recurrent GEMM, the pointwise kernel and
//               (with a projection) the projection GEMM and commit, then [the final state];
//   persistent: [padding], the input GEMM, one persistent_layer launch that does the rest on chip.
Status run_call(const CallPlan& plan, Executor& exec);

}  // namespace cuda_backend
}  // namespace culstm
