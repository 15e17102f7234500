// forward() never allocates device memory: after a warm-up call, the device's free memory (cudaMemGetInfo) is the
// same before and after many forwards of different shapes, on every GPU backend (the cuda backend once per engine).
// Skipped without a GPU, or while a backend reports NotImplemented / NotSupported. (The host side is checked by
// tests/alloc/forward_alloc_test.cpp.)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda/cuda_backend.h"
#include "device_run.h"
#include "gpu_test_util.h"
#include "test_util.h"

namespace culstm {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::DeviceCall;
using gpu_test::GpuCase;
using testing_util::random_values;
using testing_util::random_weights;

class ForwardMemoryGpuTest : public ::testing::TestWithParam<GpuCase> {};

TEST_P(ForwardMemoryGpuTest, DeviceFreeMemoryUnchangedAcrossForwards) {
  CULSTM_SKIP_WITHOUT_GPU();
  LstmSpec spec;
  spec.input_size = 80;
  spec.hidden_size = 128;
  spec.num_layers = 2;
  spec.direction = Direction::kBidirectional;
  std::mt19937 rng(5);
  const Weights weights = random_weights(spec, rng, 0.1f);
  std::string why;
  bool failed = false;
  const GpuCase gpu = GetParam();
  std::shared_ptr<const Model> model =
      gpu_test::gpu_model(gpu.backend, spec, weights, 64, 256, &why, &failed, gpu.engine);
  ASSERT_FALSE(failed) << why;
  if (!model) GTEST_SKIP() << gpu.name() << ": " << why;

  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  // Direct launches whatever CULSTM_CUDA_GRAPHS says: instantiating a CUDA graph may allocate (documented), and
  // graph replay's own no-allocation is a separate matter. (Inside a global-mode capture, where any cudaMalloc
  // fails, CudaBackendEngine.CallerCanCaptureForwardIntoItsOwnGraph also shows that nothing is allocated even
  // transiently, which this before/after comparison cannot see.)
  if (gpu.backend == Backend::kCuda) {
    ASSERT_TRUE(cuda_set_graph_mode(*ctx, CudaGraphMode::kOff).ok());
  }
  cudaStream_t stream = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  // Shapes up to the model's limits, with and without lengths and states. Lengths include 0 (b = 0) except on
  // cudnn, which refuses empty sequences: there they are in [1, T].
  struct Shape {
    std::int64_t T, B;
    bool lengths, states;
  };
  const Shape shapes[] = {{256, 64, true, true}, {1, 1, false, false}, {100, 8, true, false}, {33, 64, false, true}};
  const std::int64_t LD = 4;
  std::vector<DeviceCall> calls(sizeof shapes / sizeof shapes[0]);
  std::size_t max_bytes = 0;
  for (std::size_t k = 0; k < calls.size(); ++k) {
    const Shape& s = shapes[k];
    std::vector<std::int32_t> lengths;
    if (s.lengths) {
      for (std::int64_t b = 0; b < s.B; ++b) {
        lengths.push_back(gpu.min_length() == 0 ? static_cast<std::int32_t>((b * 7) % (s.T + 1))
                                                : static_cast<std::int32_t>(1 + (b * 7) % s.T));
      }
    }
    ASSERT_TRUE(calls[k].init(
        spec, s.T, s.B, random_values(static_cast<std::size_t>(s.T * s.B * spec.input_size), rng),
        s.states ? random_values(static_cast<std::size_t>(LD * s.B * spec.hidden_size), rng) : std::vector<float>(),
        s.states ? random_values(static_cast<std::size_t>(LD * s.B * spec.hidden_size), rng) : std::vector<float>(),
        lengths));
    std::size_t bytes = 0;
    ASSERT_TRUE(model->workspace_size(s.B, s.T, &bytes).ok());
    max_bytes = std::max(max_bytes, bytes);
  }
  DeviceBuffer workspace(max_bytes);
  ASSERT_TRUE(workspace.ok());

  // Warm-up: every shape once (a backend may set up per-context state on its first call).
  for (const DeviceCall& call : calls) {
    const Status st = forward(*ctx, *model, call.args(spec, workspace.get(), max_bytes), stream);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
  std::size_t free_before = 0, free_after = 0, total = 0;
  CULSTM_ASSERT_CUDA(cudaMemGetInfo(&free_before, &total));
  for (int round = 0; round < 10; ++round) {
    for (const DeviceCall& call : calls) {
      const Status st = forward(*ctx, *model, call.args(spec, workspace.get(), max_bytes), stream);
      ASSERT_TRUE(st.ok()) << st.to_string();
    }
  }
  CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
  CULSTM_ASSERT_CUDA(cudaMemGetInfo(&free_after, &total));
  EXPECT_EQ(free_before, free_after) << "device memory changed by " << static_cast<long long>(free_before) -
                                            static_cast<long long>(free_after)
                                     << " bytes across 40 forwards";
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
}

INSTANTIATE_TEST_SUITE_P(GpuBackends, ForwardMemoryGpuTest, ::testing::ValuesIn(gpu_test::gpu_cases()),
                         [](const ::testing::TestParamInfo<GpuCase>& info) { return info.param.name(); });

}  // namespace
}  // namespace culstm
