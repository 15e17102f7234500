// Executes a CallPlan (see layer_runner.h). Pure host code: every pointer and parameter was filled by plan_call.
#include "layer_runner.h"

#include <algorithm>
#include <climits>
#include <optional>

#include "detail.h"
#include "../nvtx.h"

namespace culstm {
namespace cuda_backend {

Status DistinctGemmsOnly::gemm(const BlasGemm& g, const char* what) {
  for (const BlasGemm& s : seen_) {
    if (s.trans_a == g.trans_a && s.trans_b == g.trans_b && s.m == g.m && s.n == g.n && s.k == g.k && s.lda == g.lda &&
        s.ldb == g.ldb && s.ldc == g.ldc && s.batch == g.batch) {
      return Status::Ok();
    }
  }
  seen_.push_back(g);
  return exec_.gemm(g, what);
}

namespace {

Status run_gemm(Executor& exec, const Gemm& g, const char* what) {
  BlasGemm b;
  Status st = to_blas(g, &b);
  if (!st.ok()) return detail::error(st.code(), what, ": ", st.message());
  return exec.gemm(b, what);
}

// The input GEMM, split into pieces of at most INT_MAX rows (cuBLAS sizes are int: absurdly tall inputs).
Status run_input_gemm(Executor& exec, const Gemm& g) {
  const std::int64_t chunk = INT_MAX;
  for (std::int64_t first = 0; first < g.m; first += chunk) {
    Gemm piece = g;
    piece.m = std::min(chunk, g.m - first);
    piece.a = static_cast<const std::uint8_t*>(g.a) + static_cast<std::size_t>(first * g.lda) * g.value_bytes;
    piece.c = g.c + first * g.ldc;
    CULSTM_RETURN_IF_ERROR(run_gemm(exec, piece, "input projection GEMM"));
  }
  return Status::Ok();
}

Status run_layer(const LayerPlan& lp, std::int64_t steps, Executor& exec) {
  // Both directions of a layer run in the same launches; each direction gets its NVTX range around them.
  const kernels::LayerDims& dims = lp.initial.dims;
  const nvtx::LayerRange range_first(lp.layer, dims.reversed[0]);
  std::optional<nvtx::LayerRange> range_second;  // no heap allocation in forward
  if (dims.directions == 2) range_second.emplace(lp.layer, dims.reversed[1]);

  if (lp.fill_padding) CULSTM_RETURN_IF_ERROR(exec.fill_padding(lp.padding));
  if (!lp.persistent) CULSTM_RETURN_IF_ERROR(exec.initial_state(lp.initial));
  if (steps > 0) CULSTM_RETURN_IF_ERROR(run_input_gemm(exec, lp.input));
  if (lp.persistent) return exec.persistent_layer(lp.persistent_layer);

  kernels::PointwiseStepParams pointwise = lp.pointwise;
  kernels::ProjectionCommitParams commit = lp.commit;
  for (std::int64_t step = 0; step < steps; ++step) {
    CULSTM_RETURN_IF_ERROR(run_gemm(exec, lp.recurrent, "recurrent GEMM"));
    pointwise.step = step;
    CULSTM_RETURN_IF_ERROR(exec.pointwise_step(pointwise));
    if (lp.projecting) {
      CULSTM_RETURN_IF_ERROR(run_gemm(exec, lp.projection, "projection GEMM"));
      commit.step = step;
      CULSTM_RETURN_IF_ERROR(exec.projection_commit(commit));
    }
  }
  if (lp.final_state) CULSTM_RETURN_IF_ERROR(exec.final_state(lp.final));
  return Status::Ok();
}

}  // namespace

Status run_call(const CallPlan& plan, Executor& exec) {
  if (plan.host_lengths != nullptr) {
    // By value through kernel parameters: no copy from (pageable) host memory, which could synchronize, and a
    // captured graph holds the values themselves.
    for (std::int64_t first = 0; first < plan.batch; first += gpu::kLengthsPerLaunch) {
      CULSTM_RETURN_IF_ERROR(
          exec.upload_lengths(gpu::lengths_chunk(plan.host_lengths, plan.batch, first, plan.device_lengths)));
    }
  }
  for (const LayerPlan& lp : plan.layers) CULSTM_RETURN_IF_ERROR(run_layer(lp, plan.steps, exec));
  return Status::Ok();
}

}  // namespace cuda_backend
}  // namespace culstm
