// Concurrency on the GPU backends: 8 threads share one Model, each with its own Context, CUDA stream, device
// buffers and workspace, running interleaved forwards of different shapes (batch, steps, lengths, with and without
// initial states). Every result must equal the single-threaded result of the same backend bit for bit. The cuda
// backend runs once per engine (stepwise, persistent); cudnn gets lengths >= 1 (it refuses empty sequences).
// Skipped without a GPU, or while a backend reports NotImplemented / NotSupported for the spec.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

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

constexpr int kThreads = 8;
constexpr int kRounds = 4;

struct HostJob {
  std::int64_t T, B;
  std::vector<float> x, h0, c0;
  std::vector<std::int32_t> lengths;
  std::vector<std::uint8_t> expected;  // y, h_n, c_n bytes from the single-threaded run
};

LstmSpec gpu_stress_spec() {
  LstmSpec s;  // no peepholes, so that cuDNN can serve it too
  s.input_size = 64;
  s.hidden_size = 96;
  s.proj_size = 48;
  s.num_layers = 2;
  s.direction = Direction::kBidirectional;
  return s;
}

// `min_length`: 0 where the backend takes empty sequences (then the first sequence of each job with lengths is
// empty), 1 for cudnn.
std::vector<HostJob> make_jobs(const LstmSpec& spec, std::int32_t min_length, std::mt19937& rng) {
  struct Shape {
    std::int64_t T, B;
    bool lengths, states;
  };
  const Shape shapes[] = {{1, 1, false, false}, {37, 3, true, true}, {64, 16, true, false}, {5, 32, false, true},
                          {90, 7, true, true},  {12, 1, false, false}};
  const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
  std::vector<HostJob> jobs;
  for (const Shape& s : shapes) {
    HostJob j;
    j.T = s.T;
    j.B = s.B;
    j.x = random_values(static_cast<std::size_t>(s.T * s.B * spec.input_size), rng);
    if (s.states) {
      j.h0 = random_values(static_cast<std::size_t>(LD * s.B * spec.recurrent_size()), rng);
      j.c0 = random_values(static_cast<std::size_t>(LD * s.B * spec.hidden_size), rng);
    }
    if (s.lengths) {
      std::uniform_int_distribution<int> len(min_length, static_cast<int>(s.T));
      for (std::int64_t b = 0; b < s.B; ++b) j.lengths.push_back(b == 0 ? min_length : len(rng));
    }
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// A thread's device copies of every job, and one workspace large enough for all of them.
struct ThreadBuffers {
  std::vector<DeviceCall> calls;
  DeviceBuffer workspace;
  std::size_t workspace_bytes = 0;
};

std::string prepare(const Model& model, const std::vector<HostJob>& jobs, ThreadBuffers* buf) {
  buf->calls.resize(jobs.size());
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    const HostJob& j = jobs[k];
    if (!buf->calls[k].init(model.spec(), j.T, j.B, j.x, j.h0, j.c0, j.lengths)) return "device buffers";
    std::size_t bytes = 0;
    const Status st = model.workspace_size(j.B, j.T, &bytes);
    if (!st.ok()) return st.to_string();
    buf->workspace_bytes = std::max(buf->workspace_bytes, bytes);
  }
  buf->workspace = DeviceBuffer(buf->workspace_bytes);
  return buf->workspace.ok() ? "" : "workspace cudaMalloc";
}

// Runs call `k` on `stream` with `ctx`; the outputs' bytes in `out`. Returns an error text, empty on success.
std::string run_job(const Model& model, Context& ctx, ThreadBuffers& buf, std::size_t k, cudaStream_t stream,
                    std::vector<std::uint8_t>* out) {
  const DeviceCall& call = buf.calls[k];
  if (!call.poison(stream)) return "cudaMemsetAsync";
  const Status st = forward(ctx, model, call.args(model.spec(), buf.workspace.get(), buf.workspace_bytes), stream);
  if (!st.ok()) return st.to_string();
  if (!call.download(stream, out)) return std::string("download: ") + cudaGetErrorString(cudaGetLastError());
  return "";
}

class ConcurrencyGpuTest : public ::testing::TestWithParam<GpuCase> {};

TEST_P(ConcurrencyGpuTest, EightThreadsEightStreamsShareOneModel) {
  CULSTM_SKIP_WITHOUT_GPU();
  const LstmSpec spec = gpu_stress_spec();
  std::mt19937 rng(99);
  const Weights weights = random_weights(spec, rng, 0.1f);
  std::string why;
  bool failed = false;
  const GpuCase gpu = GetParam();
  std::shared_ptr<const Model> model =
      gpu_test::gpu_model(gpu.backend, spec, weights, 32, 128, &why, &failed, gpu.engine);
  ASSERT_FALSE(failed) << why;
  if (!model) GTEST_SKIP() << gpu.name() << ": " << why;
  const int device = model->options().device;

  // Single-threaded results, on one stream.
  std::vector<HostJob> jobs = make_jobs(spec, gpu.min_length(), rng);
  {
    std::unique_ptr<Context> ctx;
    ASSERT_TRUE(Context::create(*model, &ctx).ok());
    cudaStream_t stream = nullptr;
    CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    ThreadBuffers buf;
    ASSERT_EQ(prepare(*model, jobs, &buf), "");
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      const std::string err = run_job(*model, *ctx, buf, k, stream, &jobs[k].expected);
      ASSERT_EQ(err, "") << "T=" << jobs[k].T << " B=" << jobs[k].B;
      // Outputs start as 0xFF bytes (NaN in f32, the spec's dtype), a value no computation here produces: the
      // reference for the threads must have every element written, or unwritten elements would compare equal.
      const std::vector<std::uint8_t>& e = jobs[k].expected;
      bool poison_left = false;
      for (std::size_t i = 0; i + 4 <= e.size() && !poison_left; i += 4) {
        poison_left = e[i] == 0xFF && e[i + 1] == 0xFF && e[i + 2] == 0xFF && e[i + 3] == 0xFF;
      }
      ASSERT_FALSE(poison_left) << "job " << k << ": the single-threaded run left outputs unwritten";
    }
    CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
  }

  struct Report {
    int runs = 0, mismatches = 0;
    std::string first_problem;
  };
  std::vector<Report> reports(kThreads);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Report& r = reports[t];
      cudaSetDevice(device);
      std::unique_ptr<Context> ctx;
      const Status st = Context::create(*model, &ctx);
      cudaStream_t stream = nullptr;
      const bool stream_ok = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess;
      ThreadBuffers buf;
      const std::string prepared = prepare(*model, jobs, &buf);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      if (!st.ok() || !stream_ok || !prepared.empty()) {
        r.mismatches = 1;
        r.first_problem = !st.ok() ? st.to_string() : !stream_ok ? "cudaStreamCreate failed" : prepared;
        if (stream_ok) cudaStreamDestroy(stream);
        return;
      }
      std::vector<std::size_t> order(jobs.size());
      for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
      std::mt19937 thread_rng(static_cast<unsigned>(t));
      std::vector<std::uint8_t> got;
      for (int round = 0; round < kRounds; ++round) {
        std::shuffle(order.begin(), order.end(), thread_rng);
        for (std::size_t k : order) {
          const std::string err = run_job(*model, *ctx, buf, k, stream, &got);
          ++r.runs;
          if (!err.empty() || got != jobs[k].expected) {
            ++r.mismatches;
            if (r.first_problem.empty()) {
              r.first_problem = "job " + std::to_string(k) + ": " + (err.empty() ? "differs from single-threaded" : err);
            }
          }
        }
      }
      cudaStreamDestroy(stream);
    });
  }
  while (ready.load() < kThreads) std::this_thread::yield();
  go.store(true);
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(reports[t].mismatches, 0) << "thread " << t << ": " << reports[t].first_problem;
    EXPECT_EQ(reports[t].runs, kRounds * static_cast<int>(jobs.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(GpuBackends, ConcurrencyGpuTest, ::testing::ValuesIn(gpu_test::gpu_cases()),
                         [](const ::testing::TestParamInfo<GpuCase>& info) { return info.param.name(); });

}  // namespace
}  // namespace culstm
