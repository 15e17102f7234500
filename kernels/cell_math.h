// kernels/cell_math.h: the LSTM cell, once (docs/design.md §2). Host-and-device code: the CPU reference instantiates it
// with double, the CUDA kernels with float. Nothing else in culstm computes gates.
#pragma once

#include <math.h>

#include "culstm/activation.h"
#include "culstm/spec.h"
#include "host_device.h"

namespace culstm {
namespace cell {

// Precision-matched elementary functions (float stays float on the device).
CULSTM_HD float math_exp(float x) { return expf(x); }
CULSTM_HD double math_exp(double x) { return exp(x); }
CULSTM_HD float math_tanh(float x) { return tanhf(x); }
CULSTM_HD double math_tanh(double x) { return tanh(x); }
CULSTM_HD float math_log1p(float x) { return log1pf(x); }
CULSTM_HD double math_log1p(double x) { return log1p(x); }
CULSTM_HD float math_abs(float x) { return fabsf(x); }
CULSTM_HD double math_abs(double x) { return fabs(x); }

template <typename T>
CULSTM_HD T clamp(T x, T lo, T hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

template <typename T>
CULSTM_HD T activate(Activation act, T x) {
  const T alpha = static_cast<T>(act.alpha);
  const T beta = static_cast<T>(act.beta);
  switch (act.kind) {
    case ActivationKind::kSigmoid:
      return T(1) / (T(1) + math_exp(-x));
    case ActivationKind::kTanh:
      return math_tanh(x);
    case ActivationKind::kRelu:
      return x > T(0) ? x : T(0);
    case ActivationKind::kAffine:
      return alpha * x + beta;
    case ActivationKind::kLeakyRelu:
      return x >= T(0) ? x : alpha * x;
    case ActivationKind::kThresholdedRelu:
      return x > alpha ? x : T(0);
    case ActivationKind::kScaledTanh:
      return alpha * math_tanh(beta * x);
    case ActivationKind::kHardSigmoid:
      return clamp(alpha * x + beta, T(0), T(1));
    case ActivationKind::kElu:
      return x >= T(0) ? x : alpha * (math_exp(x) - T(1));
    case ActivationKind::kSoftsign:
      return x / (T(1) + math_abs(x));
    case ActivationKind::kSoftplus:
      // log(1 + e^x) without overflow for large x.
      return x > T(0) ? x + math_log1p(math_exp(-x)) : math_log1p(math_exp(x));
  }
  return x;  // unreachable for valid kinds (LstmSpec::validate rejects others)
}

// Everything about the cell that is fixed for a layer. Clips are disabled when <= 0.
struct CellParams {
  Activation gate_act;    // fa
  Activation cell_act;    // ga
  Activation hidden_act;  // ha
  float gate_clip;
  float cell_clip;
  bool peepholes;
  bool input_forget;
};

// The cell parameters of a spec (clips disabled as 0): the one construction, for the reference and the cuda
// backend. Host only.
inline CellParams cell_params(const LstmSpec& spec) {
  return CellParams{spec.gate_activation,          spec.cell_activation, spec.hidden_activation,
                    spec.gate_clip.value_or(0.0f), spec.cell_clip.value_or(0.0f), spec.peepholes,
                    spec.input_forget};
}

template <typename T>
struct CellOutput {
  T c;  // new cell state
  T h;  // o * ha(c): the hidden value before any projection
};

// One hidden unit of one step. pre_* are W x + b + R h + b_r for gates i, f, g, o (order of the weights).
// p_i, p_f, p_o are the peephole weights (ignored unless params.peepholes).
template <typename T>
CULSTM_HD CellOutput<T> lstm_cell(const CellParams& params, T pre_i, T pre_f, T pre_g, T pre_o, T c_prev, T p_i,
                                  T p_f, T p_o) {
  if (params.peepholes) {
    pre_i += p_i * c_prev;
    pre_f += p_f * c_prev;
  }
  if (params.gate_clip > 0.0f) {
    const T clip = static_cast<T>(params.gate_clip);
    pre_i = clamp(pre_i, -clip, clip);
    pre_f = clamp(pre_f, -clip, clip);
    pre_g = clamp(pre_g, -clip, clip);
  }
  const T i = activate(params.gate_act, pre_i);
  const T f = params.input_forget ? T(1) - i : activate(params.gate_act, pre_f);
  const T g = activate(params.cell_act, pre_g);
  T c = f * c_prev + i * g;
  if (params.cell_clip > 0.0f) {
    const T clip = static_cast<T>(params.cell_clip);
    c = clamp(c, -clip, clip);
  }
  if (params.peepholes) pre_o += p_o * c;
  if (params.gate_clip > 0.0f) {
    const T clip = static_cast<T>(params.gate_clip);
    pre_o = clamp(pre_o, -clip, clip);
  }
  const T o = activate(params.gate_act, pre_o);
  return CellOutput<T>{c, o * activate(params.hidden_act, c)};
}

}  // namespace cell
}  // namespace culstm
