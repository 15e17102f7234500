// Concurrency (reference backend): 8 threads share one Model, each with its own Context and workspace, and run
// interleaved forwards of different shapes (batch, steps, lengths, with and without initial states). Every result
// must equal the single-threaded result bit for bit. This file is also compiled, with the library's sources, into
// the ThreadSanitizer executable (tests/CMakeLists.txt, CULSTM_TSAN), which fails on any data race.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "culstm/culstm.hpp"
#include "test_util.h"

namespace culstm {
namespace {

using testing_util::HostRun;
using testing_util::random_run;
using testing_util::random_weights;
using testing_util::run_host_forward;
using testing_util::state_rows;

constexpr int kThreads = 8;
constexpr int kRoundsPerThread = 6;

// One request shape and its inputs.
struct Job {
  HostRun run;      // inputs (and, once computed single-threaded, the expected outputs)
  std::string what;
};

LstmSpec stress_spec(BatchLayout layout) {
  LstmSpec s;
  s.input_size = 6;
  s.hidden_size = 9;
  s.proj_size = 5;
  s.num_layers = 2;
  s.direction = Direction::kBidirectional;
  s.peepholes = true;
  s.layout = layout;
  return s;
}

std::vector<Job> make_jobs(const LstmSpec& spec, std::mt19937& rng) {
  struct Shape {
    std::int64_t T, B;
    bool lengths, states;
  };
  const Shape shapes[] = {{1, 1, false, false}, {7, 3, true, true},  {12, 5, true, false}, {4, 8, false, true},
                          {9, 2, true, true},   {3, 6, false, false}, {11, 4, true, true},  {5, 1, true, false}};
  std::vector<Job> jobs;
  for (const Shape& s : shapes) {
    Job job;
    job.run = random_run(spec, s.T, s.B, rng, s.states, s.states);
    if (s.lengths) {
      job.run.with_lengths = true;
      std::uniform_int_distribution<int> len(0, static_cast<int>(s.T));
      for (std::int64_t b = 0; b < s.B; ++b) job.run.lengths.push_back(b == 0 ? 0 : len(rng));  // includes a 0
    }
    job.what = "T=" + std::to_string(s.T) + " B=" + std::to_string(s.B) + (s.lengths ? " lengths" : "") +
               (s.states ? " h0/c0" : "");
    jobs.push_back(std::move(job));
  }
  return jobs;
}

// What one thread saw: how many runs, and the first mismatch or failure (gtest assertions stay on the main thread).
struct ThreadReport {
  int runs = 0;
  int mismatches = 0;
  std::string first_problem;
};

// Runs `job` with this thread's context into `out` (fresh buffers, NaN-poisoned) and compares with the expected
// outputs bit for bit.
void run_and_compare(const Model& model, Context& ctx, const Job& job, std::vector<std::uint8_t>& workspace,
                     ThreadReport* report) {
  const LstmSpec& spec = model.spec();
  const HostRun& in = job.run;
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = in.T, B = in.B, LD = state_rows(spec);
  std::vector<float> y(in.y.size(), std::nanf("")), h_n(in.h_n.size(), std::nanf("")),
      c_n(in.c_n.size(), std::nanf(""));
  ForwardArgs args;
  args.x = batch_major ? TensorView::host(in.x.data(), DType::kF32, {B, T, spec.input_size})
                       : TensorView::host(in.x.data(), DType::kF32, {T, B, spec.input_size});
  if (in.with_lengths) args.lengths = TensorView::host(in.lengths.data(), DType::kI32, {B});
  if (in.with_h0) args.h0 = TensorView::host(in.h0.data(), DType::kF32, {LD, B, spec.recurrent_size()});
  if (in.with_c0) args.c0 = TensorView::host(in.c0.data(), DType::kF32, {LD, B, spec.hidden_size});
  args.y = batch_major ? TensorView::host(y.data(), DType::kF32, {B, T, spec.output_size()})
                       : TensorView::host(y.data(), DType::kF32, {T, B, spec.output_size()});
  args.h_n = TensorView::host(h_n.data(), DType::kF32, {LD, B, spec.recurrent_size()});
  args.c_n = TensorView::host(c_n.data(), DType::kF32, {LD, B, spec.hidden_size});
  std::size_t bytes = 0;
  Status st = model.workspace_size(B, T, &bytes);
  if (st.ok()) {
    if (workspace.size() < bytes) workspace.resize(bytes);
    args.workspace = workspace.data();
    args.workspace_bytes = workspace.size();
    st = forward(ctx, model, args);
  }
  ++report->runs;
  const bool same = st.ok() && std::memcmp(y.data(), in.y.data(), y.size() * sizeof(float)) == 0 &&
                    std::memcmp(h_n.data(), in.h_n.data(), h_n.size() * sizeof(float)) == 0 &&
                    std::memcmp(c_n.data(), in.c_n.data(), c_n.size() * sizeof(float)) == 0;
  if (!same) {
    ++report->mismatches;
    if (report->first_problem.empty()) {
      report->first_problem = job.what + ": " + (st.ok() ? "result differs from the single-threaded one" : st.to_string());
    }
  }
}

void stress(BatchLayout layout) {
  const LstmSpec spec = stress_spec(layout);
  std::mt19937 rng(2024);
  const Weights weights = random_weights(spec, rng);
  std::shared_ptr<const Model> model = testing_util::make_reference_model(spec, weights, 8, 16);
  ASSERT_TRUE(model);

  // Expected outputs, single-threaded.
  std::vector<Job> jobs = make_jobs(spec, rng);
  for (Job& job : jobs) {
    const Status st = run_host_forward(*model, job.run);
    ASSERT_TRUE(st.ok()) << job.what << ": " << st.to_string();
  }

  // Each thread: its own Context and workspace; its own order of the jobs; all start together.
  std::vector<ThreadReport> reports(kThreads);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Context> ctx;
      const Status st = Context::create(*model, &ctx);
      std::vector<std::uint8_t> workspace;
      std::vector<std::size_t> order(jobs.size());
      for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
      std::mt19937 thread_rng(static_cast<unsigned>(100 + t));
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      if (!st.ok()) {
        reports[t].first_problem = st.to_string();
        reports[t].mismatches = 1;
        return;
      }
      for (int round = 0; round < kRoundsPerThread; ++round) {
        std::shuffle(order.begin(), order.end(), thread_rng);
        for (std::size_t k : order) run_and_compare(*model, *ctx, jobs[k], workspace, &reports[t]);
      }
    });
  }
  while (ready.load() < kThreads) std::this_thread::yield();
  go.store(true);
  for (std::thread& th : threads) th.join();

  int total = 0;
  for (int t = 0; t < kThreads; ++t) {
    total += reports[t].runs;
    EXPECT_EQ(reports[t].mismatches, 0) << "thread " << t << ": " << reports[t].first_problem;
  }
  EXPECT_EQ(total, kThreads * kRoundsPerThread * static_cast<int>(jobs.size()));
}

TEST(ConcurrencyTest, EightThreadsShareOneModelSeqMajor) { stress(BatchLayout::kSeqMajor); }

TEST(ConcurrencyTest, EightThreadsShareOneModelBatchMajor) { stress(BatchLayout::kBatchMajor); }

// Models and contexts created and destroyed concurrently, while other threads run forwards on a shared model.
TEST(ConcurrencyTest, CreateAndDestroyWhileOthersRun) {
  const LstmSpec spec = stress_spec(BatchLayout::kSeqMajor);
  std::mt19937 rng(7);
  const Weights weights = random_weights(spec, rng);
  std::shared_ptr<const Model> shared = testing_util::make_reference_model(spec, weights, 8, 16);
  ASSERT_TRUE(shared);
  std::vector<Job> jobs = make_jobs(spec, rng);
  for (Job& job : jobs) ASSERT_TRUE(run_host_forward(*shared, job.run).ok());

  std::vector<ThreadReport> reports(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::uint8_t> workspace;
      for (int round = 0; round < 3; ++round) {
        // Even threads: a private model each round; odd threads: the shared one with a fresh context.
        std::shared_ptr<const Model> model = shared;
        if (t % 2 == 0) {
          ModelOptions options;
          options.backend = Backend::kReference;
          options.max_batch = 8;
          options.max_seq_len = 16;
          const Status st = Model::create(spec, weights, options, &model);
          if (!st.ok()) {
            reports[t].mismatches++;
            reports[t].first_problem = st.to_string();
            return;
          }
        }
        std::unique_ptr<Context> ctx;
        if (!Context::create(*model, &ctx).ok()) {
          reports[t].mismatches++;
          reports[t].first_problem = "Context::create failed";
          return;
        }
        for (std::size_t k = 0; k < jobs.size(); ++k) {
          run_and_compare(*model, *ctx, jobs[(k + static_cast<std::size_t>(t)) % jobs.size()], workspace,
                          &reports[t]);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(reports[t].mismatches, 0) << "thread " << t << ": " << reports[t].first_problem;
    EXPECT_EQ(reports[t].runs, 3 * static_cast<int>(jobs.size()));
  }
}

}  // namespace
}  // namespace culstm
