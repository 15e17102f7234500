// The persistent engine's host arithmetic, without a GPU: how a layer is cut into blocks, the shared-memory layout
// of a block, and the planner's per-layer choice (src/cuda/engine_choice.cpp) for an H100's numbers. The block
// program itself runs on the CPU in tests/unit/cuda_schedule_test.cpp (HostPersistent).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/engine_choice.h"
#include "cuda/call_plan.h"
#include "lstm_persistent.h"
#include "persistent_traits.h"

namespace culstm {
namespace {

using kernels::PersistentTiling;
using cuda_backend::LayerEngine;
using cuda_backend::PersistentDevice;

TEST(PersistentTiling, CoversEveryUnitWithNonEmptyBlocks) {
  for (long long H : {1, 2, 3, 7, 33, 129, 512, 1000, 1024, 2048}) {
    for (long long P : {0LL, 1LL, H / 2, H - 1}) {
      if (P < 0 || (P > 0 && P >= H)) continue;
      for (int max_blocks : {1, 2, 3, 4, 66, 132, 1 << 20}) {
        const PersistentTiling t = cuda_backend::persistent_tiling(H, P, max_blocks);
        SCOPED_TRACE("H=" + std::to_string(H) + " P=" + std::to_string(P) + " max=" + std::to_string(max_blocks));
        ASSERT_GE(t.blocks_per_direction, 1);
        EXPECT_LE(t.blocks_per_direction, std::max(1, max_blocks));
        EXPECT_GE(static_cast<long long>(t.units_per_block) * t.blocks_per_direction, H);
        // The last block owns at least one unit: no block is idle in the cell phase.
        EXPECT_LT(static_cast<long long>(t.units_per_block) * (t.blocks_per_direction - 1), H);
        if (P > 0) {
          EXPECT_GE(static_cast<long long>(t.proj_per_block) * t.blocks_per_direction, P);
        } else {
          EXPECT_EQ(t.proj_per_block, 0);
        }
      }
    }
  }
  // The fewest units per block for the blocks allowed: 1024 units over 132 blocks is 8 per block on 128 blocks.
  const PersistentTiling h100 = cuda_backend::persistent_tiling(1024, 0, 132);
  EXPECT_EQ(h100.units_per_block, 8);
  EXPECT_EQ(h100.blocks_per_direction, 128);
}

TEST(PersistentTiling, BatchChunkAndRowPadding) {
  EXPECT_EQ(kernels::persistent_batch_chunk(1), 1);
  EXPECT_EQ(kernels::persistent_batch_chunk(3), 2);
  EXPECT_EQ(kernels::persistent_batch_chunk(4), 4);
  EXPECT_EQ(kernels::persistent_batch_chunk(7), 4);
  EXPECT_EQ(kernels::persistent_batch_chunk(8), 8);
  EXPECT_EQ(kernels::persistent_batch_chunk(1000), kernels::kBatchChunk);
  EXPECT_EQ(kernels::persistent_padded_rows(0), 0);
  EXPECT_EQ(kernels::persistent_padded_rows(1), kernels::kRowsPerWarp);
  EXPECT_EQ(kernels::persistent_padded_rows(32), 32);
  EXPECT_EQ(kernels::persistent_padded_rows(33), 32 + kernels::kRowsPerWarp);
}

TEST(PersistentSmemLayout, RegionsAreAlignedDisjointAndSized) {
  kernels::LayerDims dims;
  dims.directions = 2;
  dims.batch = 13;
  dims.hidden = 37;
  dims.recurrent = 11;                                               // projecting
  const PersistentTiling t = cuda_backend::persistent_tiling(37, 11, 4);  // 10 units, 3 projection outputs per block
  const kernels::PersistentSmemLayout l = cuda_backend::persistent_smem_layout(dims, t, 2);
  EXPECT_EQ(l.stage_width, 37);  // max(R, H) with a projection
  const std::size_t u = static_cast<std::size_t>(t.units_per_block), up = static_cast<std::size_t>(t.proj_per_block);
  const std::size_t rows_hh = (4 * u + 3) / 4 * 4, rows_hr = (up + 3) / 4 * 4;  // whole groups of kRowsPerWarp
  static_assert(kernels::kRowsPerWarp == 4, "the expected padding below");
  EXPECT_EQ(up, 3u);
  const std::size_t expect[][2] = {{l.w_hh, rows_hh * 11 * 2},
                                   {l.w_hr, rows_hr * 37 * 2},
                                   {l.h_stage, static_cast<std::size_t>(kernels::kBatchChunk) * 37 * 4},
                                   {l.pre, 4 * u * 13 * 4},
                                   {l.c, u * 13 * 4}};
  std::size_t end = 0;
  for (const auto& region : expect) {
    EXPECT_EQ(region[0] % 16, 0u);
    EXPECT_GE(region[0], end);  // in order, no overlap
    end = region[0] + region[1];
  }
  EXPECT_GE(l.total, end);
  EXPECT_LT(l.total, end + 16);

  dims.recurrent = dims.hidden;  // no projection: no W_hr, the stage is R wide
  const PersistentTiling plain = cuda_backend::persistent_tiling(37, 0, 4);
  const kernels::PersistentSmemLayout m = cuda_backend::persistent_smem_layout(dims, plain, 4);
  EXPECT_EQ(m.w_hr, m.h_stage);
  EXPECT_EQ(m.stage_width, 37);
}

// An H100 SXM: 132 SMs, 227 KiB of opt-in shared memory per block, 228 KiB per SM (1 KiB reserved per block);
// 128 registers x 256 threads allow 2 blocks per SM.
PersistentDevice h100(std::vector<std::size_t>* queried = nullptr) {
  PersistentDevice d;
  d.cc_major = 9;
  d.cc_minor = 0;
  d.limits.sm_count = 132;
  d.limits.max_smem_per_block = 227 * 1024;
  d.limits.cooperative_launch = true;
  d.blocks_per_sm = [queried](std::size_t smem, int* blocks) {
    if (queried) queried->push_back(smem);
    *blocks = std::min<int>(2, static_cast<int>(228 * 1024 / (smem + 1024)));
    return Status::Ok();
  };
  return d;
}

LstmSpec spec_of(std::int64_t H, std::int64_t P, Direction dir, DType dtype, int layers = 2) {
  LstmSpec s;
  s.input_size = 64;
  s.hidden_size = H;
  s.proj_size = P;
  s.num_layers = layers;
  s.direction = dir;
  s.dtype = dtype;
  return s;
}

std::vector<LayerEngine> choose(const LstmSpec& s, CudaEngine engine, std::int64_t max_batch,
                                const PersistentDevice& device = h100()) {
  ModelOptions o;
  o.cuda_engine = engine;
  o.max_batch = max_batch;
  std::vector<LayerEngine> out;
  const Status st = cuda_backend::choose_engines(s, o, device, &out);
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(out.size(), static_cast<std::size_t>(s.num_layers));
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(PersistentPlan, ForcedPersistentRunsWhereTheLayerFits) {
  const LstmSpec s = spec_of(1024, 0, Direction::kForward, DType::kF32);
  std::vector<std::size_t> queried;
  const std::vector<LayerEngine> e = choose(s, CudaEngine::kPersistent, 64, h100(&queried));
  for (const LayerEngine& layer : e) {
    EXPECT_TRUE(layer.persistent) << layer.why;
    EXPECT_EQ(layer.tiling.units_per_block, 8);
    EXPECT_EQ(layer.tiling.blocks_per_direction, 128);
    EXPECT_LE(layer.smem_bytes, 227u * 1024u);
    EXPECT_GE(layer.blocks_per_sm, 1);
    EXPECT_TRUE(contains(layer.why, "options.cuda_engine = persistent")) << layer.why;
    EXPECT_TRUE(contains(layer.why, "no timing for this architecture yet")) << layer.why;
  }
  ASSERT_FALSE(queried.empty());
  EXPECT_EQ(queried.front(), e[0].smem_bytes);  // co-residency checked at the size the launch will use
}

TEST(PersistentPlan, AutoStaysStepwiseWhileNoTimingExists) {
  const LstmSpec s = spec_of(512, 0, Direction::kForward, DType::kBF16);
  for (const LayerEngine& layer : choose(s, CudaEngine::kAuto, 8)) {
    EXPECT_FALSE(layer.persistent);
    EXPECT_TRUE(contains(layer.why, "fits")) << layer.why;
    EXPECT_TRUE(contains(layer.why, "no timing on sm_90 yet")) << layer.why;
  }
  // The traits table has an (unmeasured) entry for Hopper, matching the compiled tile.
  const kernels::PersistentTraits* t = kernels::persistent_traits(9, 0);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->faster_up_to_batch, 0);
  EXPECT_EQ(t->threads, kernels::kPersistentThreads);
}

TEST(PersistentPlan, StepwiseOptionIsObeyed) {
  const LstmSpec s = spec_of(256, 0, Direction::kForward, DType::kF16);
  std::vector<std::size_t> queried;
  for (const LayerEngine& layer : choose(s, CudaEngine::kStepwise, 8, h100(&queried))) {
    EXPECT_FALSE(layer.persistent);
    EXPECT_TRUE(contains(layer.why, "options.cuda_engine = stepwise")) << layer.why;
  }
  EXPECT_TRUE(queried.empty());  // no occupancy query when the engine is not wanted
}

TEST(PersistentPlan, LayersThatDoNotFitFallBackWithTheReason) {
  // f32 W_hh of H=2048 is 64 MiB: 16 units per block need 512 KiB of shared memory.
  for (const LayerEngine& layer :
       choose(spec_of(2048, 0, Direction::kForward, DType::kF32), CudaEngine::kPersistent, 8)) {
    EXPECT_FALSE(layer.persistent);
    EXPECT_TRUE(contains(layer.why, "does not fit")) << layer.why;
    EXPECT_TRUE(contains(layer.why, "shared memory")) << layer.why;
  }
  // Bidirectional H=1024 halves the blocks per direction: bf16 fits, f32 does not.
  EXPECT_TRUE(
      choose(spec_of(1024, 0, Direction::kBidirectional, DType::kBF16), CudaEngine::kPersistent, 64)[0].persistent);
  EXPECT_FALSE(
      choose(spec_of(1024, 0, Direction::kBidirectional, DType::kF32), CudaEngine::kPersistent, 64)[0].persistent);
  // The per-sequence state grows with max_batch: a huge batch does not fit.
  EXPECT_FALSE(choose(spec_of(512, 0, Direction::kForward, DType::kBF16), CudaEngine::kPersistent, 8192)[0].persistent);
  // Projection: W_hr's slice joins W_hh's.
  const LayerEngine proj =
      choose(spec_of(1024, 256, Direction::kForward, DType::kBF16), CudaEngine::kPersistent, 32)[0];
  EXPECT_TRUE(proj.persistent) << proj.why;
  EXPECT_EQ(proj.tiling.proj_per_block, 2);
  EXPECT_TRUE(contains(proj.why, "2 grid sync(s) per step")) << proj.why;
}

TEST(PersistentPlan, CoResidencyAndCooperativeLaunchAreRequired) {
  const LstmSpec s = spec_of(256, 0, Direction::kBidirectional, DType::kF32);
  PersistentDevice none = h100();
  none.blocks_per_sm = [](std::size_t, int* blocks) {
    *blocks = 0;
    return Status::Ok();
  };
  const LayerEngine a = choose(s, CudaEngine::kPersistent, 8, none)[0];
  EXPECT_FALSE(a.persistent);
  EXPECT_TRUE(contains(a.why, "cannot all be resident")) << a.why;

  PersistentDevice no_coop = h100();
  no_coop.limits.cooperative_launch = false;
  const LayerEngine b = choose(s, CudaEngine::kPersistent, 8, no_coop)[0];
  EXPECT_FALSE(b.persistent);
  EXPECT_TRUE(contains(b.why, "cooperative")) << b.why;

  PersistentDevice failing = h100();
  failing.blocks_per_sm = [](std::size_t, int*) { return Status(StatusCode::kCudaError, "occupancy query failed"); };
  ModelOptions o;
  o.cuda_engine = CudaEngine::kPersistent;
  std::vector<LayerEngine> out;
  EXPECT_EQ(cuda_backend::choose_engines(s, o, failing, &out).code(), StatusCode::kCudaError);
  // Not asked for: a failing probe must not fail Model creation; the stepwise engine serves and explain() says why.
  const LayerEngine c = choose(s, CudaEngine::kAuto, 8, failing)[0];
  EXPECT_FALSE(c.persistent);
  EXPECT_TRUE(contains(c.why, "occupancy query failed")) << c.why;
}

TEST(PersistentPlan, ExplainNamesTheEnginePerLayer) {
  const LstmSpec s = spec_of(256, 0, Direction::kBidirectional, DType::kF16, 2);
  ModelOptions o;
  o.cuda_engine = CudaEngine::kPersistent;
  o.max_batch = 16;
  o.max_seq_len = 50;
  std::vector<LayerEngine> engines;
  ASSERT_TRUE(cuda_backend::choose_engines(s, o, h100(), &engines).ok());
  engines[1].persistent = false;  // a mixed plan: layer 1 stepwise
  engines[1].why = "stepwise: for this test";
  cuda_backend::ModelPlan model;
  model.spec = s;
  model.cublas_bytes = 1 << 20;
  model.engines = engines;
  const Plan plan = cuda_backend::explain_model(model, o);
  ASSERT_EQ(plan.steps().size(), 4u);
  EXPECT_EQ(plan.steps()[0].engine, "persistent");
  EXPECT_EQ(plan.steps()[1].engine, "persistent");
  EXPECT_EQ(plan.steps()[2].engine, "stepwise");
  EXPECT_TRUE(contains(plan.steps()[0].reason, "culstm_lstm_persistent_layer")) << plan.steps()[0].reason;
  EXPECT_TRUE(contains(plan.steps()[0].reason, "input GEMM [800, 64] x [64, 2048]")) << plan.steps()[0].reason;
  EXPECT_TRUE(contains(plan.steps()[2].reason, "stepwise: for this test")) << plan.steps()[2].reason;
  const std::string text = plan.explain();
  EXPECT_TRUE(contains(text, "engine=persistent")) << text;
  EXPECT_TRUE(contains(text, "options.cuda_engine = persistent")) << text;
  EXPECT_STREQ(cuda_engine_name(CudaEngine::kPersistent), "persistent");
  EXPECT_STREQ(cuda_engine_name(CudaEngine::kAuto), "auto");
  EXPECT_STREQ(cuda_engine_name(CudaEngine::kStepwise), "stepwise");
}

}  // namespace
}  // namespace culstm
