// The NVTX ranges of docs/profiling.md, checked on the CPU: this executable links a static NVTX "tool" (NVTX3's
// static-injection hook, InitializeInjectionNvtx2_fnptr) that records every range push and pop, the way Nsight
// Systems would see them, then runs forward() on the reference backend.
//   culstm/forward               around every forward() call (also when it fails validation)
//   culstm/layer{l}/{fwd|rev}    inside it, one per layer and direction, in execution order
#include <cstdint>

// This file provides the static injection (defined at the bottom), so NVTX's header must not define its weak
// default here, but its loader code refers to the symbol: declare it first (NvtxInitializeInjectionNvtxFunc_t).
#define NVTX_STATIC_INJECTION_IMPL
extern "C" int (*InitializeInjectionNvtx2_fnptr)(const void* (*get_export_table)(std::uint32_t));
#include <nvtx3/nvToolsExt.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "culstm/culstm.h"
#include "culstm/culstm.hpp"
#include "test_util.h"

namespace {

std::mutex g_mu;
std::vector<std::pair<std::thread::id, std::string>> g_events;  // "push <name>" or "pop"

int NVTX_API record_push(const char* message) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_events.emplace_back(std::this_thread::get_id(), std::string("push ") + (message ? message : "(null)"));
  return 0;
}

int NVTX_API record_pop() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_events.emplace_back(std::this_thread::get_id(), "pop");
  return 0;
}

int NVTX_API initialize_recorder(NvtxGetExportTableFunc_t get_export_table) {
  const auto* callbacks = static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr) return 0;
  NvtxFunctionTable table = nullptr;
  unsigned int size = 0;
  if (!callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &table, &size) || size <= NVTX_CBID_CORE_RangePop) {
    return 0;
  }
  *table[NVTX_CBID_CORE_RangePushA] = reinterpret_cast<NvtxFunctionPointer>(&record_push);
  *table[NVTX_CBID_CORE_RangePop] = reinterpret_cast<NvtxFunctionPointer>(&record_pop);
  return 1;
}

}  // namespace

extern "C" {
// NVTX's loader binds its weak declaration of this symbol to this definition: a statically injected tool.
NvtxInitializeInjectionNvtxFunc_t InitializeInjectionNvtx2_fnptr = initialize_recorder;
}

namespace culstm {
namespace {

using testing_util::HostRun;
using testing_util::random_run;
using testing_util::random_weights;
using testing_util::run_host_forward;

std::vector<std::string> take_events(std::thread::id thread = std::this_thread::get_id()) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<std::string> out;
  std::vector<std::pair<std::thread::id, std::string>> rest;
  for (auto& e : g_events) {
    if (e.first == thread) {
      out.push_back(e.second);
    } else {
      rest.push_back(e);
    }
  }
  g_events = std::move(rest);
  return out;
}

std::shared_ptr<const Model> model_for(Direction dir, int layers) {
  LstmSpec s;
  s.input_size = 3;
  s.hidden_size = 4;
  s.num_layers = layers;
  s.direction = dir;
  std::mt19937 rng(1);
  return testing_util::make_reference_model(s, random_weights(s, rng), 4, 8);
}

TEST(NvtxRangesTest, ForwardAndEveryLayerDirection) {
  std::shared_ptr<const Model> model = model_for(Direction::kBidirectional, 2);
  ASSERT_TRUE(model);
  std::mt19937 rng(2);
  HostRun run = random_run(model->spec(), 5, 2, rng);
  take_events();
  ASSERT_TRUE(run_host_forward(*model, run).ok());
  const std::vector<std::string> want = {"push culstm/forward",    "push culstm/layer0/fwd", "pop",
                                         "push culstm/layer0/rev", "pop",                    "push culstm/layer1/fwd",
                                         "pop",                    "push culstm/layer1/rev", "pop",
                                         "pop"};
  EXPECT_EQ(take_events(), want);
}

TEST(NvtxRangesTest, ReverseModel) {
  std::shared_ptr<const Model> model = model_for(Direction::kReverse, 1);
  ASSERT_TRUE(model);
  std::mt19937 rng(3);
  HostRun run = random_run(model->spec(), 3, 1, rng, false, false);
  take_events();
  ASSERT_TRUE(run_host_forward(*model, run).ok());
  const std::vector<std::string> want = {"push culstm/forward", "push culstm/layer0/rev", "pop", "pop"};
  EXPECT_EQ(take_events(), want);
}

TEST(NvtxRangesTest, FailedForwardStillBalanced) {
  std::shared_ptr<const Model> model = model_for(Direction::kForward, 1);
  ASSERT_TRUE(model);
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  take_events();
  ForwardArgs args;  // x absent
  EXPECT_EQ(forward(*ctx, *model, args).code(), StatusCode::kNullPointer);
  const std::vector<std::string> want = {"push culstm/forward", "pop"};
  EXPECT_EQ(take_events(), want);
}

TEST(NvtxRangesTest, CApiForward) {
  culstm_spec_t* spec = nullptr;
  ASSERT_EQ(culstm_spec_create(&spec), CULSTM_STATUS_OK);
  ASSERT_EQ(culstm_spec_set_input_size(spec, 2), CULSTM_STATUS_OK);
  ASSERT_EQ(culstm_spec_set_hidden_size(spec, 3), CULSTM_STATUS_OK);
  culstm_weights_t* weights = nullptr;
  ASSERT_EQ(culstm_weights_create(spec, &weights), CULSTM_STATUS_OK);
  culstm_model_options_t options = culstm_model_options_default();
  options.backend = CULSTM_BACKEND_REFERENCE;
  culstm_model_t* model = nullptr;
  ASSERT_EQ(culstm_model_create(spec, weights, &options, &model), CULSTM_STATUS_OK);
  culstm_context_t* ctx = nullptr;
  ASSERT_EQ(culstm_context_create(model, &ctx), CULSTM_STATUS_OK);
  float x[2 * 1 * 2] = {0.1f, 0.2f, 0.3f, 0.4f}, y[2 * 1 * 3];
  std::size_t bytes = 0;
  ASSERT_EQ(culstm_model_workspace_size(model, 1, 2, &bytes), CULSTM_STATUS_OK);
  std::vector<std::uint8_t> workspace(bytes);
  culstm_forward_args_t args;
  std::memset(&args, 0, sizeof args);
  args.x = culstm_tensor_3d(x, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 2, 1, 2);
  args.y = culstm_tensor_3d(y, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 2, 1, 3);
  args.workspace = workspace.data();
  args.workspace_bytes = bytes;
  take_events();
  ASSERT_EQ(culstm_forward(ctx, model, &args, nullptr), CULSTM_STATUS_OK) << culstm_last_error();
  const std::vector<std::string> want = {"push culstm/forward", "push culstm/layer0/fwd", "pop", "pop"};
  EXPECT_EQ(take_events(), want);
  culstm_context_destroy(ctx);
  culstm_model_destroy(model);
  culstm_weights_destroy(weights);
  culstm_spec_destroy(spec);
}

TEST(NvtxRangesTest, RangesArePerThread) {
  std::shared_ptr<const Model> model = model_for(Direction::kForward, 2);
  ASSERT_TRUE(model);
  take_events();
  std::vector<std::thread> threads;
  std::vector<std::thread::id> ids(4);
  std::atomic<int> done{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ids[t] = std::this_thread::get_id();
      std::mt19937 rng(static_cast<unsigned>(t));
      HostRun run = random_run(model->spec(), 4, 2, rng);
      for (int k = 0; k < 5; ++k) EXPECT_TRUE(run_host_forward(*model, run).ok());
      done.fetch_add(1);
      while (done.load() < 4) std::this_thread::yield();  // all alive together: thread ids stay distinct
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<std::string> one = {"push culstm/forward", "push culstm/layer0/fwd", "pop", "push culstm/layer1/fwd",
                                  "pop", "pop"};
  std::vector<std::string> want;
  for (int k = 0; k < 5; ++k) want.insert(want.end(), one.begin(), one.end());
  for (int t = 0; t < 4; ++t) EXPECT_EQ(take_events(ids[t]), want) << "thread " << t;
}

}  // namespace
}  // namespace culstm
