// Hand-computed cases for the CPU reference backend. Every expected value here is computed in this file from the
// formulas of docs/design.md §2, written out with std::exp / std::tanh on tiny sizes (I, H, B <= 2; T = 1 and 2). The
// library's cell (kernels/cell_math.h, culstm::cell::lstm_cell) is never called: that would check it against
// itself.
//
// Conventions: gate order i, f, g, o (rows k*H .. k*H+H-1 of w_ih / w_hh / b_ih / b_hh for gate k);
// peephole = [p_i, p_f, p_o]; x is [T, B, I] (seq-major) unless a test says batch-major; state rows are
// [L*D, B, .]. f32 results are the reference's float64 values rounded once to f32, so they must match within 1e-6.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "culstm/culstm.hpp"
#include "float16.h"
#include "test_util.h"

namespace culstm {
namespace {

using testing_util::HostRun;
using testing_util::make_reference_model;
using testing_util::run_host_forward;

constexpr double kTol = 1e-6;  // f32 outputs vs float64 expectations of order 1
enum Gate { kGi = 0, kGf = 1, kGg = 2, kGo = 3 };

// ---------------------------------------------------------------------------------------------------------------
// The formulas, independently of culstm.

double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double clampd(double x, double lo, double hi) { return std::min(std::max(x, lo), hi); }

// ONNX's activation functions, from their definitions; alpha and beta are the floats the spec stores.
double act(const Activation& a, double x) {
  const double alpha = a.alpha, beta = a.beta;
  switch (a.kind) {
    case ActivationKind::kSigmoid: return 1.0 / (1.0 + std::exp(-x));
    case ActivationKind::kTanh: return std::tanh(x);
    case ActivationKind::kRelu: return x > 0.0 ? x : 0.0;
    case ActivationKind::kAffine: return alpha * x + beta;
    case ActivationKind::kLeakyRelu: return x >= 0.0 ? x : alpha * x;
    case ActivationKind::kThresholdedRelu: return x > alpha ? x : 0.0;
    case ActivationKind::kScaledTanh: return alpha * std::tanh(beta * x);
    case ActivationKind::kHardSigmoid: return clampd(alpha * x + beta, 0.0, 1.0);
    case ActivationKind::kElu: return x >= 0.0 ? x : alpha * (std::exp(x) - 1.0);
    case ActivationKind::kSoftsign: return x / (1.0 + std::fabs(x));
    case ActivationKind::kSoftplus: return std::log(1.0 + std::exp(x));
  }
  ADD_FAILURE() << "unknown activation kind " << static_cast<int>(a.kind);
  return 0.0;
}

struct HC {
  double h, c;
};

// W x + b + R h + b_r for gate `gate` of the single unit of an H = 1, R = 1 layer with I = 1.
double pre1(const LayerWeights& w, int gate, double x, double h) {
  double v = static_cast<double>(w.w_ih[gate]) * x + static_cast<double>(w.w_hh[gate]) * h;
  if (!w.b_ih.empty()) v += static_cast<double>(w.b_ih[gate]) + static_cast<double>(w.b_hh[gate]);
  return v;
}

// The plain cell (sigmoid / tanh / tanh, no options) for H = 1, R = 1 and any layer input width.
void plain_step_h1(const LayerWeights& w, const std::vector<double>& x, HC& s) {
  const std::size_t in = x.size();
  double a[4];
  for (int g = 0; g < 4; ++g) {
    double v = static_cast<double>(w.w_hh[g]) * s.h;
    for (std::size_t k = 0; k < in; ++k) v += static_cast<double>(w.w_ih[g * in + k]) * x[k];
    if (!w.b_ih.empty()) v += static_cast<double>(w.b_ih[g]) + static_cast<double>(w.b_hh[g]);
    a[g] = v;
  }
  const double i = sigm(a[kGi]), f = sigm(a[kGf]), g = std::tanh(a[kGg]), o = sigm(a[kGo]);
  s.c = f * s.c + i * g;
  s.h = o * std::tanh(s.c);
}

// One direction of an H = 1 plain layer over xs[0 .. len-1]; returns h after each step, indexed by time.
std::vector<double> plain_dir_h1(const LayerWeights& w, const std::vector<std::vector<double>>& xs, int len,
                                 bool reversed, HC& s) {
  std::vector<double> hs(xs.size(), std::nan(""));
  for (int step = 0; step < len; ++step) {
    const int t = reversed ? len - 1 - step : step;
    plain_step_h1(w, xs[static_cast<std::size_t>(t)], s);
    hs[static_cast<std::size_t>(t)] = s.h;
  }
  return hs;
}

// ---------------------------------------------------------------------------------------------------------------
// Fixed data: H = 1, I = 1 weights and inputs x[t][b] for T <= 2, B = 2.

const std::vector<float> kWih = {0.5f, -0.4f, 0.8f, 0.3f};
const std::vector<float> kWhh = {0.2f, 0.1f, -0.6f, 0.7f};
const std::vector<float> kBih = {0.1f, 0.2f, -0.1f, 0.05f};
const std::vector<float> kBhh = {-0.05f, 0.3f, 0.15f, -0.2f};
const std::vector<float> kPeep = {0.4f, -0.7f, 0.9f};

const float kX[2][2] = {{0.7f, -0.4f}, {-1.2f, 0.9f}};
const float kH0[2] = {0.25f, -0.6f};
const float kC0[2] = {-0.5f, 0.8f};

LstmSpec spec_h1() {
  LstmSpec s;
  s.input_size = 1;
  s.hidden_size = 1;
  return s;
}

void fill(LayerWeights& lw, const LstmSpec& spec, const std::vector<float>& wih, const std::vector<float>& whh,
          const std::vector<float>& bih, const std::vector<float>& bhh, const std::vector<float>& peep = {}) {
  lw.w_ih = wih;
  lw.w_hh = whh;
  if (spec.bias) {
    lw.b_ih = bih;
    lw.b_hh = bhh;
  }
  if (spec.peepholes) lw.peephole = peep;
}

Weights weights_h1(const LstmSpec& spec, const std::vector<float>& wih = kWih, const std::vector<float>& whh = kWhh,
                   const std::vector<float>& bih = kBih, const std::vector<float>& bhh = kBhh) {
  Weights w = Weights::zeros_for(spec);
  fill(w.at(0, 0), spec, wih, whh, bih, bhh, kPeep);
  EXPECT_TRUE(w.check_against(spec).ok()) << w.check_against(spec).to_string();
  return w;
}

std::shared_ptr<const Model> model_for(const LstmSpec& spec, const Weights& w) {
  return make_reference_model(spec, w);
}

using Step = std::function<void(double x, HC& s)>;

// Runs a forward, seq-major, I = 1, H = 1 model on B = 2 rows for T = 1 and T = 2 and compares y, h_n and c_n
// with `step` applied by hand. `with_state`: h0 / c0 given (kH0, kC0) or absent (zeros).
void check_forward_h1(const LstmSpec& spec, const Weights& w, const Step& step, bool with_state = true) {
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    HostRun run;
    run.T = T;
    run.B = 2;
    for (int t = 0; t < T; ++t) run.x.insert(run.x.end(), {kX[t][0], kX[t][1]});
    if (with_state) {
      run.with_h0 = run.with_c0 = true;
      run.h0 = {kH0[0], kH0[1]};
      run.c0 = {kC0[0], kC0[1]};
    }
    const Status st = run_host_forward(*model, run);
    ASSERT_TRUE(st.ok()) << st.to_string();
    for (int b = 0; b < 2; ++b) {
      SCOPED_TRACE("b=" + std::to_string(b));
      HC s{with_state ? kH0[b] : 0.0, with_state ? kC0[b] : 0.0};
      for (int t = 0; t < T; ++t) {
        step(kX[t][b], s);
        EXPECT_NEAR(run.y[static_cast<std::size_t>(t * 2 + b)], s.h, kTol) << "y at t=" << t;
      }
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(b)], s.h, kTol) << "h_n";
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(b)], s.c, kTol) << "c_n";
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Plain cell, bias, initial state.

// All weights and biases zero: i = f = o = sigmoid(0) = 1/2 and g = tanh(0) = 0, so c_t = c0 / 2^t and
// h_t = tanh(c_t) / 2, whatever x is.
TEST(ReferenceHand, ZeroWeightsClosedForm) {
  const LstmSpec spec = spec_h1();
  const Weights w = Weights::zeros_for(spec);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  HostRun run;
  run.T = 2;
  run.B = 1;
  run.x = {3.0f, -5.0f};
  run.with_h0 = run.with_c0 = true;
  run.h0 = {0.9f};
  run.c0 = {-0.5f};
  ASSERT_TRUE(run_host_forward(*model, run).ok());
  EXPECT_NEAR(run.y[0], 0.5 * std::tanh(-0.25), kTol);
  EXPECT_NEAR(run.y[1], 0.5 * std::tanh(-0.125), kTol);
  EXPECT_NEAR(run.h_n[0], 0.5 * std::tanh(-0.125), kTol);
  EXPECT_NEAR(run.c_n[0], -0.125, kTol);
}

// One step with numbers written out: x = 0.7, h0 = 0.25, c0 = -0.5.
TEST(ReferenceHand, PlainOneStepWrittenOut) {
  const LstmSpec spec = spec_h1();
  auto model = model_for(spec, weights_h1(spec));
  ASSERT_TRUE(model);
  HostRun run;
  run.T = 1;
  run.B = 1;
  run.x = {0.7f};
  run.with_h0 = run.with_c0 = true;
  run.h0 = {0.25f};
  run.c0 = {-0.5f};
  ASSERT_TRUE(run_host_forward(*model, run).ok());
  const double x = 0.7f, h0 = 0.25f, c0 = -0.5f;
  const double ai = 0.5f * x + 0.2f * h0 + 0.1f + -0.05f;   // i: Wi x + Ri h + bi + bri
  const double af = -0.4f * x + 0.1f * h0 + 0.2f + 0.3f;   // f
  const double ag = 0.8f * x + -0.6f * h0 + -0.1f + 0.15f;  // g
  const double ao = 0.3f * x + 0.7f * h0 + 0.05f + -0.2f;   // o
  const double i = 1 / (1 + std::exp(-ai)), f = 1 / (1 + std::exp(-af)), g = std::tanh(ag),
               o = 1 / (1 + std::exp(-ao));
  const double c = f * c0 + i * g;
  const double h = o * std::tanh(c);
  EXPECT_NEAR(run.y[0], h, kTol);
  EXPECT_NEAR(run.h_n[0], h, kTol);
  EXPECT_NEAR(run.c_n[0], c, kTol);
  // The numbers, for a reader with a calculator: pre-activations 0.45, 0.245, 0.46, 0.235; i = 0.610639,
  // f = 0.560945, g = 0.430084, o = 0.558481; c = 0.560945 * -0.5 + 0.610639 * 0.430084 = -0.0178464;
  // h = 0.558481 * tanh(c) = -0.00996584.
  EXPECT_NEAR(c, -0.0178464, 1e-7);
  EXPECT_NEAR(h, -0.00996584, 1e-8);
  EXPECT_NEAR(run.c_n[0], -0.0178464, 1e-7);
  EXPECT_NEAR(run.y[0], -0.00996584, 1e-8);
}

Step plain_step(const LayerWeights& lw) {
  return [&lw](double x, HC& s) {
    const double i = sigm(pre1(lw, kGi, x, s.h));
    const double f = sigm(pre1(lw, kGf, x, s.h));
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double o = sigm(pre1(lw, kGo, x, s.h));
    s.c = f * s.c + i * g;
    s.h = o * std::tanh(s.c);
  };
}

TEST(ReferenceHand, PlainWithBias) {
  const LstmSpec spec = spec_h1();
  const Weights w = weights_h1(spec);
  check_forward_h1(spec, w, plain_step(w.at(0, 0)));
}

TEST(ReferenceHand, NoBias) {
  LstmSpec spec = spec_h1();
  spec.bias = false;
  const Weights w = weights_h1(spec);
  ASSERT_TRUE(w.at(0, 0).b_ih.empty());
  const LayerWeights& lw = w.at(0, 0);
  check_forward_h1(spec, w, [&lw](double x, HC& s) {
    const double i = sigm(lw.w_ih[0] * x + lw.w_hh[0] * s.h);
    const double f = sigm(lw.w_ih[1] * x + lw.w_hh[1] * s.h);
    const double g = std::tanh(lw.w_ih[2] * x + lw.w_hh[2] * s.h);
    const double o = sigm(lw.w_ih[3] * x + lw.w_hh[3] * s.h);
    s.c = f * s.c + i * g;
    s.h = o * std::tanh(s.c);
  });
}

TEST(ReferenceHand, StateAbsentMeansZeros) {
  const LstmSpec spec = spec_h1();
  const Weights w = weights_h1(spec);
  check_forward_h1(spec, w, plain_step(w.at(0, 0)), /*with_state=*/false);
}

// ---------------------------------------------------------------------------------------------------------------
// Peepholes, input_forget, clips.

// i, f see c_prev; o sees the new c.
TEST(ReferenceHand, Peepholes) {
  LstmSpec spec = spec_h1();
  spec.peepholes = true;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  const double pi = lw.peephole[0], pf = lw.peephole[1], po = lw.peephole[2];
  double max_gap = 0.0;  // how far o(new c) is from o(c_prev): the test tells the two apart
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double i = sigm(pre1(lw, kGi, x, s.h) + pi * s.c);
    const double f = sigm(pre1(lw, kGf, x, s.h) + pf * s.c);
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double c = f * s.c + i * g;
    const double o = sigm(pre1(lw, kGo, x, s.h) + po * c);
    const double o_wrong = sigm(pre1(lw, kGo, x, s.h) + po * s.c);
    max_gap = std::max(max_gap, std::fabs((o - o_wrong) * std::tanh(c)));
    s.c = c;
    s.h = o * std::tanh(c);
  });
  EXPECT_GT(max_gap, 1e-3) << "the o peephole on c vs c_prev makes no visible difference; test data too weak";
}

TEST(ReferenceHand, InputForget) {
  LstmSpec spec = spec_h1();
  spec.input_forget = true;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  check_forward_h1(spec, w, [&lw](double x, HC& s) {
    const double i = sigm(pre1(lw, kGi, x, s.h));
    const double f = 1.0 - i;  // the f row of the weights is not used
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double o = sigm(pre1(lw, kGo, x, s.h));
    s.c = f * s.c + i * g;
    s.h = o * std::tanh(s.c);
  });
}

// With peepholes, i carries p_i * c_prev and f = 1 - i (p_f unused).
TEST(ReferenceHand, InputForgetWithPeepholes) {
  LstmSpec spec = spec_h1();
  spec.input_forget = true;
  spec.peepholes = true;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  check_forward_h1(spec, w, [&lw](double x, HC& s) {
    const double i = sigm(pre1(lw, kGi, x, s.h) + lw.peephole[0] * s.c);
    const double f = 1.0 - i;
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double c = f * s.c + i * g;
    const double o = sigm(pre1(lw, kGo, x, s.h) + lw.peephole[2] * c);
    s.c = c;
    s.h = o * std::tanh(c);
  });
}

// Gate clip clamps the pre-activations of i, f, g and o to [-clip, clip] before the activations.
TEST(ReferenceHand, GateClip) {
  LstmSpec spec = spec_h1();
  spec.gate_clip = 0.3f;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  const double clip = 0.3f;
  int clipped = 0, kept = 0;
  auto cl = [&](double v) {
    (std::fabs(v) > clip ? clipped : kept)++;
    return clampd(v, -clip, clip);
  };
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double i = sigm(cl(pre1(lw, kGi, x, s.h)));
    const double f = sigm(cl(pre1(lw, kGf, x, s.h)));
    const double g = std::tanh(cl(pre1(lw, kGg, x, s.h)));
    const double o = sigm(cl(pre1(lw, kGo, x, s.h)));
    s.c = f * s.c + i * g;
    s.h = o * std::tanh(s.c);
  });
  EXPECT_GT(clipped, 0);
  EXPECT_GT(kept, 0);
}

// With peepholes the peephole term is part of the pre-activation that is clipped (added before the clip).
TEST(ReferenceHand, GateClipWithPeepholes) {
  LstmSpec spec = spec_h1();
  spec.gate_clip = 0.3f;
  spec.peepholes = true;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  const double clip = 0.3f;
  const double pi = lw.peephole[0], pf = lw.peephole[1], po = lw.peephole[2];
  auto cl = [&](double v) { return clampd(v, -clip, clip); };
  double max_gap = 0.0;  // |i(peephole before clip) - i(peephole after clip)| seen
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double i = sigm(cl(pre1(lw, kGi, x, s.h) + pi * s.c));
    const double f = sigm(cl(pre1(lw, kGf, x, s.h) + pf * s.c));
    const double g = std::tanh(cl(pre1(lw, kGg, x, s.h)));
    const double c = f * s.c + i * g;
    const double o = sigm(cl(pre1(lw, kGo, x, s.h) + po * c));
    // the other order: clip first, then add the peephole
    max_gap = std::max(max_gap, std::fabs(i - sigm(cl(pre1(lw, kGi, x, s.h)) + pi * s.c)));
    max_gap = std::max(max_gap, std::fabs(f - sigm(cl(pre1(lw, kGf, x, s.h)) + pf * s.c)));
    s.c = c;
    s.h = o * std::tanh(c);
  });
  EXPECT_GT(max_gap, 1e-3) << "test data cannot tell 'peephole before clip' from 'after'";
}

// Cell clip clamps c; h and the next step use the clipped c.
TEST(ReferenceHand, CellClip) {
  LstmSpec spec = spec_h1();
  spec.cell_clip = 0.35f;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  const double clip = 0.35f;
  int clipped = 0, kept = 0;
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double i = sigm(pre1(lw, kGi, x, s.h));
    const double f = sigm(pre1(lw, kGf, x, s.h));
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double o = sigm(pre1(lw, kGo, x, s.h));
    const double c = f * s.c + i * g;
    (std::fabs(c) > clip ? clipped : kept)++;
    s.c = clampd(c, -clip, clip);
    s.h = o * std::tanh(s.c);
  });
  EXPECT_GT(clipped, 0);
  EXPECT_GT(kept, 0);
}

// With peepholes, o's peephole sees the clipped c.
TEST(ReferenceHand, CellClipWithPeepholes) {
  LstmSpec spec = spec_h1();
  spec.cell_clip = 0.35f;
  spec.peepholes = true;
  const Weights w = weights_h1(spec);
  const LayerWeights& lw = w.at(0, 0);
  const double clip = 0.35f;
  const double pi = lw.peephole[0], pf = lw.peephole[1], po = lw.peephole[2];
  int clipped = 0;
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double i = sigm(pre1(lw, kGi, x, s.h) + pi * s.c);
    const double f = sigm(pre1(lw, kGf, x, s.h) + pf * s.c);
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double c_raw = f * s.c + i * g;
    if (std::fabs(c_raw) > clip) ++clipped;
    const double c = clampd(c_raw, -clip, clip);
    const double o = sigm(pre1(lw, kGo, x, s.h) + po * c);
    s.c = c;
    s.h = o * std::tanh(c);
  });
  EXPECT_GT(clipped, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Activations.

// hard_sigmoid(alpha, beta) = clamp(alpha x + beta, 0, 1) as the gate activation, with weights large enough that
// some gates saturate at 0, some at 1 and some do not.
void check_hard_sigmoid_gates(float alpha, float beta) {
  LstmSpec spec = spec_h1();
  spec.gate_activation = Activation::hard_sigmoid(alpha, beta);
  const Weights w = weights_h1(spec, {3.5f, -3.0f, 0.8f, 2.8f}, {1.5f, 0.4f, -0.6f, -2.0f});
  const LayerWeights& lw = w.at(0, 0);
  const double a = alpha, b = beta;
  int at0 = 0, at1 = 0, inside = 0;
  auto hs = [&](double v) {
    const double r = a * v + b;
    (r <= 0.0 ? at0 : r >= 1.0 ? at1 : inside)++;
    return std::min(1.0, std::max(0.0, r));
  };
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double i = hs(pre1(lw, kGi, x, s.h));
    const double f = hs(pre1(lw, kGf, x, s.h));
    const double g = std::tanh(pre1(lw, kGg, x, s.h));
    const double o = hs(pre1(lw, kGo, x, s.h));
    s.c = f * s.c + i * g;
    s.h = o * std::tanh(s.c);
  });
  EXPECT_GT(at0, 0);
  EXPECT_GT(at1, 0);
  EXPECT_GT(inside, 0);
}

TEST(ReferenceHand, HardSigmoidGatesKeras2Onnx) { check_hard_sigmoid_gates(0.2f, 0.5f); }
TEST(ReferenceHand, HardSigmoidGatesKeras3) { check_hard_sigmoid_gates(1.0f / 6.0f, 0.5f); }

const Activation kAllActivations[] = {
    Activation::relu(),          Activation::tanh(),
    Activation::sigmoid(),       Activation::affine(0.7f, -0.2f),
    Activation::leaky_relu(0.1f), Activation::thresholded_relu(0.25f),
    Activation::scaled_tanh(1.3f, 0.8f), Activation::hard_sigmoid(0.3f, 0.45f),
    Activation::elu(0.9f),       Activation::softsign(),
    Activation::softplus(),
};
const char* const kActivationNames[] = {"relu",   "tanh", "sigmoid",  "affine",   "leaky_relu", "thresholded_relu",
                                        "scaled_tanh", "hard_sigmoid", "elu", "softsign", "softplus"};
const char* const kPositionNames[] = {"gate", "cell", "hidden"};

// (activation index, position: 0 = gate fa, 1 = cell ga, 2 = hidden ha)
class ReferenceHandActivation : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(ReferenceHandActivation, AsGateCellOrHidden) {
  const Activation a = kAllActivations[std::get<0>(GetParam())];
  const int position = std::get<1>(GetParam());
  LstmSpec spec = spec_h1();
  (position == 0 ? spec.gate_activation : position == 1 ? spec.cell_activation : spec.hidden_activation) = a;
  const Activation fa = spec.gate_activation, ga = spec.cell_activation, ha = spec.hidden_activation;
  // Gate pre-activations and g's change sign with x; c ranges over about [-0.75, 0.69].
  const Weights w = weights_h1(spec, {1.5f, -1.3f, -1.7f, 1.2f}, {0.6f, -0.5f, 0.9f, 0.4f});
  const LayerWeights& lw = w.at(0, 0);
  double lo = 1e300, hi = -1e300;  // range of the arguments the activation under test saw
  auto seen = [&](double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    return v;
  };
  check_forward_h1(spec, w, [&](double x, HC& s) {
    const double ai = pre1(lw, kGi, x, s.h), af = pre1(lw, kGf, x, s.h), ag = pre1(lw, kGg, x, s.h),
                 ao = pre1(lw, kGo, x, s.h);
    if (position == 0) seen(ai), seen(af), seen(ao);
    if (position == 1) seen(ag);
    const double i = act(fa, ai), f = act(fa, af), g = act(ga, ag), o = act(fa, ao);
    s.c = f * s.c + i * g;
    if (position == 2) seen(s.c);
    s.h = o * act(ha, s.c);
  });
  // Piecewise functions must have been evaluated on both sides of their break point.
  double knee = 0.0;
  switch (a.kind) {
    case ActivationKind::kThresholdedRelu: knee = a.alpha; break;
    case ActivationKind::kRelu:
    case ActivationKind::kLeakyRelu:
    case ActivationKind::kElu: knee = 0.0; break;
    default: return;
  }
  EXPECT_LT(lo, knee);
  EXPECT_GT(hi, knee);
}

INSTANTIATE_TEST_SUITE_P(AllOnnx, ReferenceHandActivation,
                         ::testing::Combine(::testing::Range(0, 11), ::testing::Range(0, 3)),
                         [](const ::testing::TestParamInfo<std::tuple<int, int>>& p) {
                           return std::string(kActivationNames[std::get<0>(p.param)]) + "_as_" +
                                  kPositionNames[std::get<1>(p.param)];
                         });

// ---------------------------------------------------------------------------------------------------------------
// Directions, projection, layout, lengths, layers.

// x[t][b] as the per-step input vectors of batch row b (I = 1).
std::vector<std::vector<double>> column(int T, int b) {
  std::vector<std::vector<double>> xs;
  for (int t = 0; t < T; ++t) xs.push_back({static_cast<double>(kX[t][b])});
  return xs;
}

// Reverse runs t = T-1 .. 0; y[t] is the state after consuming x[t]; h_n is the state after t = 0.
TEST(ReferenceHand, Reverse) {
  LstmSpec spec = spec_h1();
  spec.direction = Direction::kReverse;
  const Weights w = weights_h1(spec);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    HostRun run;
    run.T = T;
    run.B = 2;
    for (int t = 0; t < T; ++t) run.x.insert(run.x.end(), {kX[t][0], kX[t][1]});
    run.with_h0 = run.with_c0 = true;
    run.h0 = {kH0[0], kH0[1]};
    run.c0 = {kC0[0], kC0[1]};
    ASSERT_TRUE(run_host_forward(*model, run).ok());
    for (int b = 0; b < 2; ++b) {
      HC s{kH0[b], kC0[b]};
      const Step step = plain_step(w.at(0, 0));
      std::vector<double> hs(static_cast<std::size_t>(T));
      for (int t = T - 1; t >= 0; --t) {
        step(kX[t][b], s);
        hs[static_cast<std::size_t>(t)] = s.h;
      }
      for (int t = 0; t < T; ++t) EXPECT_NEAR(run.y[static_cast<std::size_t>(t * 2 + b)], hs[t], kTol);
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(b)], s.h, kTol);
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(b)], s.c, kTol);
      if (T == 2) {  // the order matters: the forward result differs
        HC f{kH0[b], kC0[b]};
        step(kX[0][b], f);
        step(kX[1][b], f);
        EXPECT_GT(std::fabs(f.c - s.c), 1e-3);
      }
    }
  }
}

const std::vector<float> kWih2 = {-0.3f, 0.6f, -0.9f, 0.45f};
const std::vector<float> kWhh2 = {0.35f, -0.25f, 0.5f, -0.4f};
const std::vector<float> kBih2 = {0.05f, -0.1f, 0.2f, 0.1f};
const std::vector<float> kBhh2 = {0.15f, 0.05f, -0.25f, 0.3f};
const float kH0b[2] = {0.4f, -0.15f};
const float kC0b[2] = {0.3f, -0.7f};

// y[t, b] = [h_fwd(t), h_rev(t)]; h_n / c_n rows: 0 forward, 1 reverse.
TEST(ReferenceHand, Bidirectional) {
  LstmSpec spec = spec_h1();
  spec.direction = Direction::kBidirectional;
  Weights w = Weights::zeros_for(spec);
  fill(w.at(0, 0), spec, kWih, kWhh, kBih, kBhh);
  fill(w.at(0, 1), spec, kWih2, kWhh2, kBih2, kBhh2);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    HostRun run;
    run.T = T;
    run.B = 2;
    for (int t = 0; t < T; ++t) run.x.insert(run.x.end(), {kX[t][0], kX[t][1]});
    run.with_h0 = run.with_c0 = true;
    run.h0 = {kH0[0], kH0[1], kH0b[0], kH0b[1]};
    run.c0 = {kC0[0], kC0[1], kC0b[0], kC0b[1]};
    ASSERT_TRUE(run_host_forward(*model, run).ok());
    for (int b = 0; b < 2; ++b) {
      HC sf{kH0[b], kC0[b]}, sr{kH0b[b], kC0b[b]};
      const auto hf = plain_dir_h1(w.at(0, 0), column(T, b), T, false, sf);
      const auto hr = plain_dir_h1(w.at(0, 1), column(T, b), T, true, sr);
      for (int t = 0; t < T; ++t) {
        EXPECT_NEAR(run.y[static_cast<std::size_t>((t * 2 + b) * 2 + 0)], hf[t], kTol);
        EXPECT_NEAR(run.y[static_cast<std::size_t>((t * 2 + b) * 2 + 1)], hr[t], kTol);
      }
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(0 * 2 + b)], sf.h, kTol);
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(1 * 2 + b)], sr.h, kTol);
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(0 * 2 + b)], sf.c, kTol);
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(1 * 2 + b)], sr.c, kTol);
    }
  }
}

// proj_size = 1, H = 2, I = 2: h = W_hr (o * tanh(c)) is what is fed back (R = 1) and output; c stays H = 2 wide.
TEST(ReferenceHand, Projection) {
  LstmSpec spec;
  spec.input_size = 2;
  spec.hidden_size = 2;
  spec.proj_size = 1;
  Weights w = Weights::zeros_for(spec);
  LayerWeights& lw = w.at(0, 0);
  // rows: i0 i1 f0 f1 g0 g1 o0 o1; w_ih [8, 2], w_hh [8, 1]
  lw.w_ih = {0.5f, -0.2f, 0.3f, 0.4f, -0.6f, 0.1f, 0.2f, 0.7f, 0.8f, -0.5f, -0.4f, 0.6f, 0.3f, 0.2f, -0.1f, -0.3f};
  lw.w_hh = {0.2f, -0.3f, 0.1f, 0.4f, -0.6f, 0.5f, 0.7f, -0.2f};
  lw.b_ih = {0.1f, -0.1f, 0.2f, 0.0f, -0.1f, 0.05f, 0.05f, 0.1f};
  lw.b_hh = {-0.05f, 0.1f, 0.3f, 0.2f, 0.15f, -0.1f, -0.2f, 0.0f};
  lw.w_hr = {0.9f, -0.6f};
  ASSERT_TRUE(w.check_against(spec).ok());
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  const float xs[2][2] = {{0.7f, -0.3f}, {-1.1f, 0.5f}};  // x[t][k], B = 1
  const float h0 = 0.35f, c0[2] = {-0.4f, 0.6f};
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    HostRun run;
    run.T = T;
    run.B = 1;
    for (int t = 0; t < T; ++t) run.x.insert(run.x.end(), {xs[t][0], xs[t][1]});
    run.with_h0 = run.with_c0 = true;
    run.h0 = {h0};
    run.c0 = {c0[0], c0[1]};
    ASSERT_TRUE(run_host_forward(*model, run).ok());
    ASSERT_EQ(run.y.size(), static_cast<std::size_t>(T));
    ASSERT_EQ(run.h_n.size(), 1u);
    ASSERT_EQ(run.c_n.size(), 2u);
    double h = h0, c[2] = {c0[0], c0[1]};
    for (int t = 0; t < T; ++t) {
      auto pre = [&](int row) {
        return lw.w_ih[row * 2 + 0] * static_cast<double>(xs[t][0]) + lw.w_ih[row * 2 + 1] * static_cast<double>(xs[t][1]) +
               lw.w_hh[row] * h + lw.b_ih[row] + lw.b_hh[row];
      };
      double m[2];
      for (int j = 0; j < 2; ++j) {
        const double i = sigm(pre(0 + j)), f = sigm(pre(2 + j)), g = std::tanh(pre(4 + j)), o = sigm(pre(6 + j));
        c[j] = f * c[j] + i * g;
        m[j] = o * std::tanh(c[j]);
      }
      h = static_cast<double>(lw.w_hr[0]) * m[0] + static_cast<double>(lw.w_hr[1]) * m[1];
      EXPECT_NEAR(run.y[static_cast<std::size_t>(t)], h, kTol);
    }
    EXPECT_NEAR(run.h_n[0], h, kTol);
    EXPECT_NEAR(run.c_n[0], c[0], kTol);
    EXPECT_NEAR(run.c_n[1], c[1], kTol);
  }
}

// Batch-major: x [B, T, I], y [B, T, R]; also with lengths {1, 2} (so padding lands in the batch-major slot).
TEST(ReferenceHand, BatchMajor) {
  LstmSpec spec = spec_h1();
  spec.layout = BatchLayout::kBatchMajor;
  const Weights w = weights_h1(spec);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  for (bool with_lengths : {false, true}) {
    SCOPED_TRACE(with_lengths ? "lengths {1, 2}" : "full lengths");
    HostRun run;
    run.T = 2;
    run.B = 2;
    run.x = {kX[0][0], kX[1][0], kX[0][1], kX[1][1]};  // [b][t]
    run.with_h0 = run.with_c0 = true;
    run.h0 = {kH0[0], kH0[1]};
    run.c0 = {kC0[0], kC0[1]};
    run.with_lengths = with_lengths;
    run.lengths = {1, 2};
    const float pad = 2.5f;
    ASSERT_TRUE(run_host_forward(*model, run, pad).ok());
    for (int b = 0; b < 2; ++b) {
      const int len = with_lengths ? run.lengths[static_cast<std::size_t>(b)] : 2;
      HC s{kH0[b], kC0[b]};
      const auto hs = plain_dir_h1(w.at(0, 0), column(2, b), len, false, s);
      for (int t = 0; t < 2; ++t) {
        const double want = t < len ? hs[static_cast<std::size_t>(t)] : pad;
        EXPECT_NEAR(run.y[static_cast<std::size_t>(b * 2 + t)], want, kTol) << "b=" << b << " t=" << t;
      }
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(b)], s.h, kTol);
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(b)], s.c, kTol);
    }
  }
}

const float kX3[2][3] = {{0.7f, -0.4f, 1.1f}, {-1.2f, 0.9f, -0.3f}};  // x[t][b], B = 3
const float kH03[3] = {0.25f, -0.6f, 0.45f};
const float kC03[3] = {-0.5f, 0.8f, -0.2f};

std::vector<std::vector<double>> column3(int b) {
  return {{static_cast<double>(kX3[0][b])}, {static_cast<double>(kX3[1][b])}};
}

// lengths {2, 0, 1}, padding -7.5: the 0-length row keeps h0/c0 and is all padding; the 1-length row stops after t=0.
TEST(ReferenceHand, LengthsZeroLengthAndPadding) {
  const LstmSpec spec = spec_h1();
  const Weights w = weights_h1(spec);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  HostRun run;
  run.T = 2;
  run.B = 3;
  for (int t = 0; t < 2; ++t) run.x.insert(run.x.end(), {kX3[t][0], kX3[t][1], kX3[t][2]});
  run.with_h0 = run.with_c0 = true;
  run.h0 = {kH03[0], kH03[1], kH03[2]};
  run.c0 = {kC03[0], kC03[1], kC03[2]};
  run.with_lengths = true;
  run.lengths = {2, 0, 1};
  const float pad = -7.5f;
  ASSERT_TRUE(run_host_forward(*model, run, pad).ok());
  for (int b = 0; b < 3; ++b) {
    SCOPED_TRACE("b=" + std::to_string(b));
    const int len = run.lengths[static_cast<std::size_t>(b)];
    HC s{kH03[b], kC03[b]};
    const auto hs = plain_dir_h1(w.at(0, 0), column3(b), len, false, s);
    for (int t = 0; t < 2; ++t) {
      EXPECT_NEAR(run.y[static_cast<std::size_t>(t * 3 + b)], t < len ? hs[static_cast<std::size_t>(t)] : pad, kTol);
    }
    EXPECT_NEAR(run.h_n[static_cast<std::size_t>(b)], s.h, kTol);
    EXPECT_NEAR(run.c_n[static_cast<std::size_t>(b)], s.c, kTol);
  }
  // The 0-length row: state passes through bit for bit.
  EXPECT_EQ(run.h_n[1], kH03[1]);
  EXPECT_EQ(run.c_n[1], kC03[1]);
}

// Bidirectional with lengths {2, 1, 0}: the reverse direction of a 1-step row starts (and ends) at t = 0.
TEST(ReferenceHand, BidirectionalWithLengths) {
  LstmSpec spec = spec_h1();
  spec.direction = Direction::kBidirectional;
  Weights w = Weights::zeros_for(spec);
  fill(w.at(0, 0), spec, kWih, kWhh, kBih, kBhh);
  fill(w.at(0, 1), spec, kWih2, kWhh2, kBih2, kBhh2);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  HostRun run;
  run.T = 2;
  run.B = 3;
  for (int t = 0; t < 2; ++t) run.x.insert(run.x.end(), {kX3[t][0], kX3[t][1], kX3[t][2]});
  run.with_h0 = run.with_c0 = true;
  run.h0 = {kH03[0], kH03[1], kH03[2], 0.4f, -0.15f, 0.05f};
  run.c0 = {kC03[0], kC03[1], kC03[2], 0.3f, -0.7f, 0.65f};
  run.with_lengths = true;
  run.lengths = {2, 1, 0};
  const float pad = 0.125f;
  ASSERT_TRUE(run_host_forward(*model, run, pad).ok());
  for (int b = 0; b < 3; ++b) {
    SCOPED_TRACE("b=" + std::to_string(b));
    const int len = run.lengths[static_cast<std::size_t>(b)];
    HC sf{run.h0[static_cast<std::size_t>(b)], run.c0[static_cast<std::size_t>(b)]};
    HC sr{run.h0[static_cast<std::size_t>(3 + b)], run.c0[static_cast<std::size_t>(3 + b)]};
    const auto hf = plain_dir_h1(w.at(0, 0), column3(b), len, false, sf);
    const auto hr = plain_dir_h1(w.at(0, 1), column3(b), len, true, sr);
    for (int t = 0; t < 2; ++t) {
      EXPECT_NEAR(run.y[static_cast<std::size_t>((t * 3 + b) * 2 + 0)], t < len ? hf[t] : pad, kTol) << "t=" << t;
      EXPECT_NEAR(run.y[static_cast<std::size_t>((t * 3 + b) * 2 + 1)], t < len ? hr[t] : pad, kTol) << "t=" << t;
    }
    EXPECT_NEAR(run.h_n[static_cast<std::size_t>(b)], sf.h, kTol);
    EXPECT_NEAR(run.h_n[static_cast<std::size_t>(3 + b)], sr.h, kTol);
    EXPECT_NEAR(run.c_n[static_cast<std::size_t>(b)], sf.c, kTol);
    EXPECT_NEAR(run.c_n[static_cast<std::size_t>(3 + b)], sr.c, kTol);
  }
  // The 1-step row: both directions consumed only x[0] from their own initial state.
  HC only_f{run.h0[1], run.c0[1]}, only_r{run.h0[4], run.c0[4]};
  plain_step_h1(w.at(0, 0), {kX3[0][1]}, only_f);
  plain_step_h1(w.at(0, 1), {kX3[0][1]}, only_r);
  EXPECT_NEAR(run.y[(0 * 3 + 1) * 2 + 1], only_r.h, kTol);
  EXPECT_NEAR(run.h_n[4], only_r.h, kTol);
}

// Two layers: layer 1's input is layer 0's h; h_n / c_n rows are [layer 0, layer 1].
TEST(ReferenceHand, TwoLayers) {
  LstmSpec spec = spec_h1();
  spec.num_layers = 2;
  Weights w = Weights::zeros_for(spec);
  fill(w.at(0, 0), spec, kWih, kWhh, kBih, kBhh);
  fill(w.at(1, 0), spec, kWih2, kWhh2, kBih2, kBhh2);
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    HostRun run;
    run.T = T;
    run.B = 2;
    for (int t = 0; t < T; ++t) run.x.insert(run.x.end(), {kX[t][0], kX[t][1]});
    run.with_h0 = run.with_c0 = true;
    run.h0 = {kH0[0], kH0[1], kH0b[0], kH0b[1]};
    run.c0 = {kC0[0], kC0[1], kC0b[0], kC0b[1]};
    ASSERT_TRUE(run_host_forward(*model, run).ok());
    for (int b = 0; b < 2; ++b) {
      HC s0{kH0[b], kC0[b]}, s1{kH0b[b], kC0b[b]};
      for (int t = 0; t < T; ++t) {
        plain_step_h1(w.at(0, 0), {kX[t][b]}, s0);
        plain_step_h1(w.at(1, 0), {s0.h}, s1);  // layer 1 input = layer 0 output at t
        EXPECT_NEAR(run.y[static_cast<std::size_t>(t * 2 + b)], s1.h, kTol);
      }
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(0 * 2 + b)], s0.h, kTol);
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(1 * 2 + b)], s1.h, kTol);
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(0 * 2 + b)], s0.c, kTol);
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(1 * 2 + b)], s1.c, kTol);
    }
  }
}

// Two bidirectional layers: layer 1's input at t is [h_fwd0(t), h_rev0(t)], so its w_ih is [4, 2].
TEST(ReferenceHand, TwoLayersBidirectional) {
  LstmSpec spec = spec_h1();
  spec.num_layers = 2;
  spec.direction = Direction::kBidirectional;
  Weights w = Weights::zeros_for(spec);
  fill(w.at(0, 0), spec, kWih, kWhh, kBih, kBhh);
  fill(w.at(0, 1), spec, kWih2, kWhh2, kBih2, kBhh2);
  fill(w.at(1, 0), spec, {0.4f, -0.3f, 0.2f, 0.6f, -0.7f, 0.5f, 0.3f, 0.1f}, kWhh2, kBih, kBhh2);
  fill(w.at(1, 1), spec, {-0.2f, 0.5f, 0.6f, -0.1f, 0.9f, 0.3f, -0.4f, 0.2f}, kWhh, kBih2, kBhh);
  ASSERT_TRUE(w.check_against(spec).ok());
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  const float h0[4] = {0.25f, 0.4f, -0.35f, 0.1f}, c0[4] = {-0.5f, 0.3f, 0.2f, -0.6f};  // rows l*2+d, B = 1
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    HostRun run;
    run.T = T;
    run.B = 1;
    for (int t = 0; t < T; ++t) run.x.push_back(kX[t][1]);
    run.with_h0 = run.with_c0 = true;
    run.h0.assign(h0, h0 + 4);
    run.c0.assign(c0, c0 + 4);
    ASSERT_TRUE(run_host_forward(*model, run).ok());
    HC s[4];
    for (int r = 0; r < 4; ++r) s[r] = {h0[r], c0[r]};
    const auto h00 = plain_dir_h1(w.at(0, 0), column(T, 1), T, false, s[0]);
    const auto h01 = plain_dir_h1(w.at(0, 1), column(T, 1), T, true, s[1]);
    std::vector<std::vector<double>> x1;
    for (int t = 0; t < T; ++t) x1.push_back({h00[t], h01[t]});
    const auto h10 = plain_dir_h1(w.at(1, 0), x1, T, false, s[2]);
    const auto h11 = plain_dir_h1(w.at(1, 1), x1, T, true, s[3]);
    for (int t = 0; t < T; ++t) {
      EXPECT_NEAR(run.y[static_cast<std::size_t>(t * 2 + 0)], h10[t], kTol);
      EXPECT_NEAR(run.y[static_cast<std::size_t>(t * 2 + 1)], h11[t], kTol);
    }
    for (int r = 0; r < 4; ++r) {
      EXPECT_NEAR(run.h_n[static_cast<std::size_t>(r)], s[r].h, kTol) << "row " << r;
      EXPECT_NEAR(run.c_n[static_cast<std::size_t>(r)], s[r].c, kTol) << "row " << r;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// f16 / bf16: tensors are 16-bit at the edges; weights are rounded to the dtype when the model is created.

std::uint16_t to16(DType dt, float v) {
  return dt == DType::kF16 ? detail::float_to_half(v) : detail::float_to_bf16(v);
}
float from16(DType dt, std::uint16_t v) { return dt == DType::kF16 ? detail::half_to_float(v) : detail::bf16_to_float(v); }
float round16(DType dt, double v) { return from16(dt, to16(dt, static_cast<float>(v))); }

struct Run16 {
  std::vector<std::uint16_t> y, h_n, c_n;
};

// Runs an I = 1, H = 1 model of dtype `dt` (seq-major) on 16-bit tensors.
Run16 forward16(const Model& model, DType dt, const std::vector<float>& x, std::int64_t T, std::int64_t B,
                const std::vector<float>& h0, const std::vector<float>& c0) {
  const LstmSpec& spec = model.spec();
  const std::int64_t LD = spec.num_layers * spec.num_directions();
  std::vector<std::uint16_t> xb, h0b, c0b;
  for (float v : x) xb.push_back(to16(dt, v));
  for (float v : h0) h0b.push_back(to16(dt, v));
  for (float v : c0) c0b.push_back(to16(dt, v));
  Run16 out;
  out.y.assign(static_cast<std::size_t>(T * B * spec.output_size()), 0x7fffu);  // NaN in both f16 and bf16
  out.h_n.assign(static_cast<std::size_t>(LD * B * spec.recurrent_size()), 0x7fffu);
  out.c_n.assign(static_cast<std::size_t>(LD * B * spec.hidden_size), 0x7fffu);
  ForwardArgs args;
  args.x = TensorView::host(xb.data(), dt, {T, B, spec.input_size});
  args.h0 = TensorView::host(h0b.data(), dt, {LD, B, spec.recurrent_size()});
  args.c0 = TensorView::host(c0b.data(), dt, {LD, B, spec.hidden_size});
  args.y = TensorView::host(out.y.data(), dt, {T, B, spec.output_size()});
  args.h_n = TensorView::host(out.h_n.data(), dt, {LD, B, spec.recurrent_size()});
  args.c_n = TensorView::host(out.c_n.data(), dt, {LD, B, spec.hidden_size});
  std::size_t bytes = 0;
  EXPECT_TRUE(model.workspace_size(B, T, &bytes).ok());
  std::vector<std::uint8_t> ws(bytes);
  args.workspace = ws.data();
  args.workspace_bytes = bytes;
  std::unique_ptr<Context> ctx;
  EXPECT_TRUE(Context::create(model, &ctx).ok());
  const Status st = forward(*ctx, model, args);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return out;
}

// Distance in units in the last place between two 16-bit values of the same sign.
int ulp16(std::uint16_t a, std::uint16_t b) { return std::abs(static_cast<int>(a) - static_cast<int>(b)); }

class ReferenceHand16 : public ::testing::TestWithParam<DType> {};

TEST_P(ReferenceHand16, PlainCellT2) {
  const DType dt = GetParam();
  const double rel = dt == DType::kF16 ? 1e-3 : 1e-2;
  LstmSpec spec = spec_h1();
  spec.dtype = dt;
  // Values that are not representable in 16 bits, so rounding shows.
  const Weights w = weights_h1(spec, {0.5123f, -0.4321f, 0.8765f, 0.3141f}, {0.2718f, 0.1414f, -0.6180f, 0.7071f},
                               {0.1234f, 0.2345f, -0.1357f, 0.0579f}, {-0.0513f, 0.3033f, 0.1511f, -0.2024f});
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  LayerWeights rw = w.at(0, 0);  // the weights as the model holds them
  for (std::vector<float>* t : {&rw.w_ih, &rw.w_hh, &rw.b_ih, &rw.b_hh}) {
    for (float& v : *t) v = round16(dt, v);
  }
  const std::vector<float> x = {0.7123f, -0.4567f, -1.2345f, 0.9087f}, h0 = {0.2513f, -0.6021f},
                           c0 = {-0.5077f, 0.8123f};
  for (int T : {1, 2}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const Run16 out = forward16(*model, dt, std::vector<float>(x.begin(), x.begin() + 2 * T), T, 2, h0, c0);
    for (int b = 0; b < 2; ++b) {
      HC s{round16(dt, h0[b]), round16(dt, c0[b])};  // inputs are 16-bit at the edge
      const Step step = plain_step(rw);
      for (int t = 0; t < T; ++t) {
        step(round16(dt, x[static_cast<std::size_t>(t * 2 + b)]), s);
        const std::uint16_t got = out.y[static_cast<std::size_t>(t * 2 + b)];
        const float want = round16(dt, s.h);
        EXPECT_NEAR(from16(dt, got), want, rel * std::fabs(want) + 1e-7) << "y t=" << t << " b=" << b;
        EXPECT_LE(ulp16(got, to16(dt, want)), 1) << "y t=" << t << " b=" << b;
      }
      EXPECT_NEAR(from16(dt, out.h_n[b]), round16(dt, s.h), rel * std::fabs(s.h) + 1e-7);
      EXPECT_NEAR(from16(dt, out.c_n[b]), round16(dt, s.c), rel * std::fabs(s.c) + 1e-7);
      EXPECT_LE(ulp16(out.h_n[b], to16(dt, static_cast<float>(s.h))), 1);
      EXPECT_LE(ulp16(out.c_n[b], to16(dt, static_cast<float>(s.c))), 1);
    }
  }
}

// Weights are rounded to the dtype at model creation. With linear activations (i = f = o = affine(0, 1) = 1,
// g = affine(1, 0), h = affine(1, 0)(c)) and c0 = 0: h = c = Wg x + Rg h0 = 0.1 * 3 + 0.3 * (-1), which is ~0 with
// f32 weights but Wg16 * 3 - Rg16 with rounded ones: -2^-13 in f16, -2^-11 in bf16.
TEST_P(ReferenceHand16, WeightsAreRoundedToDtype) {
  const DType dt = GetParam();
  LstmSpec spec = spec_h1();
  spec.dtype = dt;
  spec.bias = false;
  spec.gate_activation = Activation::affine(0.0f, 1.0f);
  spec.cell_activation = Activation::affine(1.0f, 0.0f);
  spec.hidden_activation = Activation::affine(1.0f, 0.0f);
  const Weights w = weights_h1(spec, {0.0f, 0.0f, 0.1f, 0.0f}, {0.0f, 0.0f, 0.3f, 0.0f});
  auto model = model_for(spec, w);
  ASSERT_TRUE(model);
  const double expected = static_cast<double>(round16(dt, 0.1f)) * 3.0 - static_cast<double>(round16(dt, 0.3f));
  EXPECT_EQ(expected, dt == DType::kF16 ? -std::ldexp(1.0, -13) : -std::ldexp(1.0, -11));
  const Run16 out = forward16(*model, dt, {3.0f}, 1, 1, {-1.0f}, {0.0f});
  EXPECT_EQ(from16(dt, out.y[0]), expected);
  EXPECT_EQ(from16(dt, out.h_n[0]), expected);
  EXPECT_EQ(from16(dt, out.c_n[0]), expected);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReferenceHand16, ::testing::Values(DType::kF16, DType::kBF16),
                         [](const ::testing::TestParamInfo<DType>& p) {
                           return std::string(dtype_name(p.param));
                         });

}  // namespace
}  // namespace culstm
