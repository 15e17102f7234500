// The host side of the cuda backend that needs no GPU: the stepwise engine's workspace layout, GEMM shapes and
// Plan (src/cuda/call_plan.h), and the time/row index math its kernels use (kernels/sequence_index.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cuda/call_plan.h"
#include "sequence_index.h"

namespace culstm {
namespace {

using cuda_backend::kWorkspaceAlignment;
using cuda_backend::Region;
using cuda_backend::WorkspaceLayout;

LstmSpec make_spec(std::int64_t I, std::int64_t H, std::int64_t P, int layers, Direction dir, DType dtype) {
  LstmSpec s;
  s.input_size = I;
  s.hidden_size = H;
  s.proj_size = P;
  s.num_layers = layers;
  s.direction = dir;
  s.dtype = dtype;
  return s;
}

std::size_t aligned(std::size_t n) {
  return (n + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

// Every used region is aligned, inside `total`, and no two overlap.
void expect_disjoint_and_aligned(const WorkspaceLayout& w) {
  std::vector<std::pair<std::string, Region>> regions = {{"cublas", w.cublas},           {"lengths", w.lengths},
                                                         {"gates_x", w.gates_x},         {"layer_out0", w.layer_out[0]},
                                                         {"layer_out1", w.layer_out[1]}, {"state", w.state}};
  regions.erase(std::remove_if(regions.begin(), regions.end(), [](const auto& r) { return r.second.bytes == 0; }),
                regions.end());
  for (const auto& r : regions) {
    EXPECT_EQ(r.second.offset % kWorkspaceAlignment, 0u) << r.first;
    EXPECT_LE(r.second.end(), w.total) << r.first;
  }
  for (std::size_t a = 0; a < regions.size(); ++a) {
    for (std::size_t b = a + 1; b < regions.size(); ++b) {
      const Region& x = regions[a].second;
      const Region& y = regions[b].second;
      EXPECT_TRUE(x.end() <= y.offset || y.end() <= x.offset) << regions[a].first << " overlaps " << regions[b].first;
    }
  }
  EXPECT_EQ(w.total % kWorkspaceAlignment, 0u);
  EXPECT_EQ(w.direction_block % kWorkspaceAlignment, 0u);
}

TEST(WorkspaceLayout, SizesOfEveryRegion) {
  // 2 layers, bidirectional, f16, no projection: B = 3, T = 5, I = 7, H = 9.
  const LstmSpec s = make_spec(7, 9, 0, 2, Direction::kBidirectional, DType::kF16);
  const WorkspaceLayout w = cuda_backend::workspace_layout(s, 3, 5, 1000);
  expect_disjoint_and_aligned(w);
  EXPECT_EQ(w.cublas.offset, 0u);
  EXPECT_EQ(w.cublas.bytes, aligned(1000));
  EXPECT_EQ(w.lengths.bytes, 3u * 4u);
  EXPECT_EQ(w.gates_x.bytes, 5u * 3u * 2u * 36u * 4u);      // [T*B, D*4H] f32
  EXPECT_EQ(w.layer_out[0].bytes, 5u * 3u * 2u * 9u * 2u);  // [T*B, D*R] f16: one buffer for 2 layers
  EXPECT_EQ(w.layer_out[1].bytes, 0u);
  // Direction block: gates_h [B, 4H] f32, h [B, R] f16, c [B, H] f32, h_next [B, R] f16, each region aligned.
  EXPECT_EQ(w.gates_h, 0u);
  EXPECT_EQ(w.h, aligned(3u * 36u * 4u));
  EXPECT_EQ(w.c, w.h + aligned(3u * 9u * 2u));
  EXPECT_EQ(w.h_next, w.c + aligned(3u * 9u * 4u));
  EXPECT_EQ(w.direction_block, w.h_next + aligned(3u * 9u * 2u));
  EXPECT_EQ(w.state.bytes, 2u * w.direction_block);
  EXPECT_EQ(w.total, w.state.end());
}

TEST(WorkspaceLayout, LayerBuffersPingPong) {
  for (int layers : {1, 2, 3, 5}) {
    const LstmSpec s = make_spec(4, 8, 0, layers, Direction::kForward, DType::kF32);
    const WorkspaceLayout w = cuda_backend::workspace_layout(s, 2, 3, 64);
    expect_disjoint_and_aligned(w);
    const int used = (w.layer_out[0].bytes > 0) + (w.layer_out[1].bytes > 0);
    EXPECT_EQ(used, std::min(layers - 1, 2)) << layers << " layers";
  }
}

TEST(WorkspaceLayout, ProjectionAddsCellAndProjectedBuffers) {
  const LstmSpec s = make_spec(5, 12, 4, 3, Direction::kReverse, DType::kBF16);
  const WorkspaceLayout w = cuda_backend::workspace_layout(s, 6, 2, 4096);
  expect_disjoint_and_aligned(w);
  EXPECT_EQ(w.layer_out[0].bytes, 2u * 6u * 4u * 2u);  // [T*B, D*P] bf16
  EXPECT_EQ(w.h, aligned(6u * 48u * 4u));
  EXPECT_EQ(w.c, w.h + aligned(6u * 4u * 2u));  // h is [B, P]
  EXPECT_EQ(w.h_cell, w.c + aligned(6u * 12u * 4u));
  EXPECT_EQ(w.h_proj, w.h_cell + aligned(6u * 12u * 2u));
  EXPECT_EQ(w.h_next, w.h_proj + aligned(6u * 4u * 4u));
  EXPECT_EQ(w.direction_block, w.h_next + aligned(6u * 4u * 2u));  // the persistent engine's second h, [B, P]
  // The per-direction strides the strided-batched GEMMs use are whole elements of every type.
  EXPECT_EQ(w.direction_block % sizeof(float), 0u);
  EXPECT_EQ(w.direction_block % 2u, 0u);
}

TEST(WorkspaceLayout, WorkspaceGrowsWithBatchAndSteps) {
  const LstmSpec s = make_spec(16, 32, 0, 2, Direction::kBidirectional, DType::kF32);
  const std::size_t small = cuda_backend::workspace_layout(s, 1, 1, 0).total;
  EXPECT_LT(small, cuda_backend::workspace_layout(s, 2, 1, 0).total);
  EXPECT_LT(small, cuda_backend::workspace_layout(s, 1, 2, 0).total);
  EXPECT_EQ(cuda_backend::workspace_layout(s, 1, 1, 1 << 20).total, small + (1u << 20));
}

TEST(WorkspaceLayout, AbsurdLimitsSaturateInsteadOfWrapping) {
  const LstmSpec s = make_spec(16, 4096, 0, 2, Direction::kBidirectional, DType::kF32);  // gates_x: 2^65 bytes
  const std::int64_t huge = std::int64_t{1} << 24;
  EXPECT_EQ(cuda_backend::workspace_layout(s, huge, huge, 0).total, SIZE_MAX);
}

TEST(WorkspaceLayout, CublasWorkspaceFollowsCublasRecommendation) {
  EXPECT_EQ(cuda_backend::cublas_workspace_bytes(8), std::size_t{4} << 20);
  EXPECT_EQ(cuda_backend::cublas_workspace_bytes(9), std::size_t{32} << 20);
  EXPECT_EQ(cuda_backend::cublas_workspace_bytes(10), std::size_t{32} << 20);
}

// The CallPlan of a call of B x T with every length T and no buffers (every pointer null).
cuda_backend::CallPlan plan_of(const LstmSpec& s, std::int64_t B, std::int64_t T) {
  cuda_backend::ModelPlan model;
  model.spec = s;
  ForwardShape shape;
  shape.batch = B;
  shape.seq_len = T;
  shape.steps = T;
  cuda_backend::CallPlan plan;
  EXPECT_TRUE(cuda_backend::plan_call(model, ForwardArgs{}, shape, &plan).ok());
  return plan;
}

TEST(StepwiseGemms, ShapesPerLayer) {
  const LstmSpec s = make_spec(10, 16, 6, 2, Direction::kBidirectional, DType::kF32);
  const cuda_backend::CallPlan plan = plan_of(s, 3, 7);
  ASSERT_EQ(plan.layers.size(), 2u);
  const cuda_backend::LayerPlan& l0 = plan.layers[0];
  EXPECT_EQ(l0.input.m, 21);   // T*B rows
  EXPECT_EQ(l0.input.n, 128);  // D*4H
  EXPECT_EQ(l0.input.k, 10);   // I
  EXPECT_EQ(l0.input.batch, 1);
  EXPECT_EQ(l0.recurrent.m, 3);
  EXPECT_EQ(l0.recurrent.n, 64);
  EXPECT_EQ(l0.recurrent.k, 6);  // R = P
  EXPECT_EQ(l0.recurrent.batch, 2);
  EXPECT_TRUE(l0.projecting);
  EXPECT_EQ(l0.projection.m, 3);
  EXPECT_EQ(l0.projection.n, 6);
  EXPECT_EQ(l0.projection.k, 16);
  EXPECT_EQ(l0.projection.batch, 2);
  EXPECT_EQ(plan.layers[1].input.k, 12);  // D*P from layer 0

  const LstmSpec f = make_spec(10, 16, 0, 1, Direction::kForward, DType::kF16);
  const cuda_backend::LayerPlan g = plan_of(f, 3, 7).layers[0];
  EXPECT_EQ(g.recurrent.k, 16);
  EXPECT_EQ(g.recurrent.batch, 1);
  EXPECT_FALSE(g.projecting);
  EXPECT_EQ(g.projection.m, 0);  // no projection
}

TEST(StepwisePlan, OneStepwiseEntryPerLayerAndDirection) {
  const LstmSpec s = make_spec(10, 16, 6, 3, Direction::kBidirectional, DType::kBF16);
  ModelOptions options;
  options.max_batch = 8;
  options.max_seq_len = 20;
  cuda_backend::ModelPlan model;
  model.spec = s;
  model.cublas_bytes = 1 << 20;
  const Plan plan = cuda_backend::explain_model(model, options);
  EXPECT_EQ(plan.backend(), Backend::kCuda);
  ASSERT_EQ(plan.steps().size(), 6u);
  const WorkspaceLayout w = cuda_backend::workspace_layout(s, 8, 20, 1 << 20);
  for (std::size_t k = 0; k < plan.steps().size(); ++k) {
    const PlanStep& step = plan.steps()[k];
    EXPECT_EQ(step.layer, static_cast<int>(k / 2));
    EXPECT_EQ(step.direction, static_cast<int>(k % 2));
    EXPECT_EQ(step.reversed, k % 2 == 1);
    EXPECT_EQ(step.engine, "stepwise");
    EXPECT_NE(step.reason.find("stepwise: options.cuda_engine = stepwise"), std::string::npos) << step.reason;
    EXPECT_NE(step.reason.find("projection GEMM [8, 16] x [16, 6]"), std::string::npos) << step.reason;
    EXPECT_EQ(step.workspace_offset, w.state.offset + (k % 2) * w.direction_block);
    EXPECT_EQ(step.workspace_bytes, w.direction_block);
  }
  EXPECT_NE(plan.steps()[0].reason.find("input GEMM [160, 10] x [10, 128]"), std::string::npos)
      << plan.steps()[0].reason;
  EXPECT_NE(plan.steps()[2].reason.find("input GEMM [160, 12] x [12, 128]"), std::string::npos);
  const std::string text = plan.explain();
  EXPECT_NE(text.find("backend: cuda"), std::string::npos) << text;
  EXPECT_NE(text.find("engine=stepwise"), std::string::npos) << text;
  EXPECT_NE(text.find(std::to_string(w.total) + " bytes"), std::string::npos) << text;
}

// explain() is the CallPlan of a call at the model's limits, rendered: every GEMM it names is that plan's.
TEST(StepwisePlan, ExplainRendersTheCallPlanAtTheModelsLimits) {
  const LstmSpec s = make_spec(10, 16, 6, 2, Direction::kBidirectional, DType::kF16);
  ModelOptions options;
  options.max_batch = 5;
  options.max_seq_len = 9;
  cuda_backend::ModelPlan model;
  model.spec = s;
  const Plan plan = cuda_backend::explain_model(model, options);
  const cuda_backend::CallPlan call = plan_of(s, 5, 9);
  ASSERT_EQ(plan.steps().size(), 2 * call.layers.size());
  const auto shape = [](const char* name, const cuda_backend::Gemm& g) {
    return std::string(name) + " [" + std::to_string(g.m) + ", " + std::to_string(g.k) + "] x [" +
           std::to_string(g.k) + ", " + std::to_string(g.n) + "]";
  };
  for (const PlanStep& step : plan.steps()) {
    const cuda_backend::LayerPlan& lp = call.layers[static_cast<std::size_t>(step.layer)];
    EXPECT_NE(step.reason.find(shape("input GEMM", lp.input)), std::string::npos) << step.reason;
    EXPECT_NE(step.reason.find(shape("recurrent GEMM", lp.recurrent)), std::string::npos) << step.reason;
    EXPECT_NE(step.reason.find(shape("projection GEMM", lp.projection)), std::string::npos) << step.reason;
    EXPECT_EQ(step.workspace_offset,
              call.workspace.state.offset + static_cast<std::size_t>(step.direction) * call.workspace.direction_block);
  }
  EXPECT_NE(plan.explain().find(std::to_string(call.workspace.total) + " bytes"), std::string::npos);
}

// --- kernels/sequence_index.h -----------------------------------------------------------------------------------

TEST(SequenceIndex, ForwardAndReverseVisitEveryStepOfTheSequenceOnce) {
  for (long long len = 0; len <= 6; ++len) {
    for (bool reversed : {false, true}) {
      std::vector<int> visits(static_cast<std::size_t>(len), 0);
      long long previous = reversed ? len : -1;
      for (long long step = 0; step < 6; ++step) {  // the batch runs max(len) = 6 steps
        if (!seq::step_active(step, len)) continue;
        const long long t = seq::step_time(step, len, reversed);
        ASSERT_GE(t, 0);
        ASSERT_LT(t, len);
        ++visits[static_cast<std::size_t>(t)];
        EXPECT_EQ(t, reversed ? previous - 1 : previous + 1);  // consecutive, in the direction's order
        previous = t;
      }
      for (int v : visits) EXPECT_EQ(v, 1);
    }
  }
}

TEST(SequenceIndex, ReverseStartsAtTheSequencesOwnLastElement) {
  EXPECT_EQ(seq::step_time(0, 3, true), 2);  // not T - 1
  EXPECT_EQ(seq::step_time(2, 3, true), 0);
  EXPECT_FALSE(seq::step_active(3, 3));
  EXPECT_FALSE(seq::step_active(0, 0));  // empty sequence: no step touches it
}

TEST(SequenceIndex, RowsOfBothLayoutsRoundTrip) {
  const long long T = 4, B = 3;
  for (bool batch_major : {false, true}) {
    std::vector<int> seen(static_cast<std::size_t>(T * B), 0);
    for (long long t = 0; t < T; ++t) {
      for (long long b = 0; b < B; ++b) {
        const long long row = seq::row_of(t, b, T, B, batch_major);
        ASSERT_GE(row, 0);
        ASSERT_LT(row, T * B);
        ++seen[static_cast<std::size_t>(row)];
        EXPECT_EQ(seq::time_of_row(row, T, B, batch_major), t);
        EXPECT_EQ(seq::batch_of_row(row, T, B, batch_major), b);
      }
    }
    for (int s : seen) EXPECT_EQ(s, 1);
  }
  EXPECT_EQ(seq::row_of(2, 1, T, B, false), 2 * B + 1);  // [T, B, F]
  EXPECT_EQ(seq::row_of(2, 1, T, B, true), 1 * T + 2);   // [B, T, F]
}

}  // namespace
}  // namespace culstm
