// culstm/activation.h: the gate / cell / hidden activation functions (ONNX's set). A plain struct so that device
// code (kernels/cell_math.h) can take it by value.
#pragma once

#include "culstm/export.h"

namespace culstm {

enum class ActivationKind : int {
  kSigmoid = 0,          // 1 / (1 + e^-x)
  kTanh = 1,             // tanh(x)
  kRelu = 2,             // max(0, x)
  kAffine = 3,           // alpha * x + beta
  kLeakyRelu = 4,        // x >= 0 ? x : alpha * x
  kThresholdedRelu = 5,  // x > alpha ? x : 0
  kScaledTanh = 6,       // alpha * tanh(beta * x)
  kHardSigmoid = 7,      // clamp(alpha * x + beta, 0, 1)
  kElu = 8,              // x >= 0 ? x : alpha * (e^x - 1)
  kSoftsign = 9,         // x / (1 + |x|)
  kSoftplus = 10,        // log(1 + e^x)
};

struct Activation {
  ActivationKind kind = ActivationKind::kSigmoid;
  float alpha = 0.0f;
  float beta = 0.0f;

  // Factories carry ONNX's default alpha/beta where ONNX defines them.
  static constexpr Activation sigmoid() { return {ActivationKind::kSigmoid, 0.0f, 0.0f}; }
  static constexpr Activation tanh() { return {ActivationKind::kTanh, 0.0f, 0.0f}; }
  static constexpr Activation relu() { return {ActivationKind::kRelu, 0.0f, 0.0f}; }
  static constexpr Activation affine(float a, float b) { return {ActivationKind::kAffine, a, b}; }
  static constexpr Activation leaky_relu(float a = 0.01f) { return {ActivationKind::kLeakyRelu, a, 0.0f}; }
  static constexpr Activation thresholded_relu(float a = 1.0f) { return {ActivationKind::kThresholdedRelu, a, 0.0f}; }
  static constexpr Activation scaled_tanh(float a = 1.0f, float b = 1.0f) {
    return {ActivationKind::kScaledTanh, a, b};
  }
  // Keras 2 and ONNX: alpha 0.2, beta 0.5. Keras 3: alpha 1/6, beta 0.5.
  static constexpr Activation hard_sigmoid(float a = 0.2f, float b = 0.5f) {
    return {ActivationKind::kHardSigmoid, a, b};
  }
  static constexpr Activation elu(float a = 1.0f) { return {ActivationKind::kElu, a, 0.0f}; }
  static constexpr Activation softsign() { return {ActivationKind::kSoftsign, 0.0f, 0.0f}; }
  static constexpr Activation softplus() { return {ActivationKind::kSoftplus, 0.0f, 0.0f}; }
};

// "sigmoid", "hard_sigmoid", "leaky_relu", ... (snake_case of the kind).
CULSTM_API const char* activation_kind_name(ActivationKind kind) noexcept;
// The reverse of activation_kind_name; also accepts ONNX's spelling ("HardSigmoid", "LeakyRelu"). False if unknown.
CULSTM_API bool activation_kind_from_name(const char* name, ActivationKind* kind) noexcept;

}  // namespace culstm
