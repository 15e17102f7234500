// Helpers shared by the unit and GPU tests: random specs' weights and inputs, and a one-call host forward.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"

namespace culstm {
namespace testing_util {

// Uniform values in [-scale, scale] from a seeded generator (tests are reproducible, inputs never all zero).
inline std::vector<float> random_values(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Weights for `spec` with every tensor random (peepholes, biases and projections included when the spec has them).
inline Weights random_weights(const LstmSpec& spec, std::mt19937& rng, float scale = 0.5f) {
  Weights w = Weights::zeros_for(spec);
  for (int l = 0; l < w.num_layers(); ++l) {
    for (int d = 0; d < w.num_directions(); ++d) {
      LayerWeights& lw = w.at(l, d);
      for (std::vector<float>* t : {&lw.w_ih, &lw.w_hh, &lw.b_ih, &lw.b_hh, &lw.w_hr, &lw.peephole}) {
        *t = random_values(t->size(), rng, scale);
      }
    }
  }
  return w;
}

// Host f32 tensors of one forward call, plus the views that point at them.
struct HostRun {
  std::vector<float> x, h0, c0, y, h_n, c_n;
  std::vector<std::int32_t> lengths;
  bool with_lengths = false, with_h0 = false, with_c0 = false;
  std::int64_t T = 0, B = 0;
};

// Shapes of the state tensors for `spec`.
inline std::int64_t state_rows(const LstmSpec& spec) {
  return static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
}

// Runs `model` (reference backend, f32 spec) on `run`'s inputs, writing y / h_n / c_n (resized and poisoned with
// NaN first so an unwritten element shows). Returns the forward status.
inline Status run_host_forward(const Model& model, HostRun& run, float padding_value = 0.0f) {
  const LstmSpec& spec = model.spec();
  const std::int64_t T = run.T, B = run.B;
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  const float poison = std::nanf("");
  run.y.assign(static_cast<std::size_t>(T * B * spec.output_size()), poison);
  run.h_n.assign(static_cast<std::size_t>(state_rows(spec) * B * spec.recurrent_size()), poison);
  run.c_n.assign(static_cast<std::size_t>(state_rows(spec) * B * spec.hidden_size), poison);
  ForwardArgs args;
  args.x = batch_major ? TensorView::host(run.x.data(), DType::kF32, {B, T, spec.input_size})
                       : TensorView::host(run.x.data(), DType::kF32, {T, B, spec.input_size});
  if (run.with_lengths) args.lengths = TensorView::host(run.lengths.data(), DType::kI32, {B});
  if (run.with_h0) args.h0 = TensorView::host(run.h0.data(), DType::kF32, {state_rows(spec), B, spec.recurrent_size()});
  if (run.with_c0) args.c0 = TensorView::host(run.c0.data(), DType::kF32, {state_rows(spec), B, spec.hidden_size});
  args.y = batch_major ? TensorView::host(run.y.data(), DType::kF32, {B, T, spec.output_size()})
                       : TensorView::host(run.y.data(), DType::kF32, {T, B, spec.output_size()});
  args.h_n = TensorView::host(run.h_n.data(), DType::kF32, {state_rows(spec), B, spec.recurrent_size()});
  args.c_n = TensorView::host(run.c_n.data(), DType::kF32, {state_rows(spec), B, spec.hidden_size});
  args.padding_value = padding_value;
  std::size_t bytes = 0;
  Status st = model.workspace_size(B, T, &bytes);
  if (!st.ok()) return st;
  std::vector<std::uint8_t> workspace(bytes);
  args.workspace = workspace.data();
  args.workspace_bytes = bytes;
  std::unique_ptr<Context> ctx;
  st = Context::create(model, &ctx);
  if (!st.ok()) return st;
  return forward(*ctx, model, args);
}

// Fills `run` with random x (and h0/c0/lengths when asked) for `spec`.
inline HostRun random_run(const LstmSpec& spec, std::int64_t T, std::int64_t B, std::mt19937& rng, bool h0 = true,
                          bool c0 = true) {
  HostRun run;
  run.T = T;
  run.B = B;
  run.x = random_values(static_cast<std::size_t>(T * B * spec.input_size), rng);
  run.with_h0 = h0;
  run.with_c0 = c0;
  if (h0) run.h0 = random_values(static_cast<std::size_t>(state_rows(spec) * B * spec.recurrent_size()), rng);
  if (c0) run.c0 = random_values(static_cast<std::size_t>(state_rows(spec) * B * spec.hidden_size), rng);
  return run;
}

// A reference-backend model, failing the test when creation fails.
inline std::shared_ptr<const Model> make_reference_model(const LstmSpec& spec, const Weights& weights,
                                                         std::int64_t max_batch = 64, std::int64_t max_seq = 4096) {
  ModelOptions options;
  options.backend = Backend::kReference;
  options.max_batch = max_batch;
  options.max_seq_len = max_seq;
  std::shared_ptr<const Model> model;
  Status st = Model::create(spec, weights, options, &model);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return model;
}

}  // namespace testing_util
}  // namespace culstm
