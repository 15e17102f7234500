#include "culstm/spec.h"

#include <cmath>
#include <cstdint>

#include "detail.h"

namespace culstm {
namespace {

using detail::error;

// Weights of one matrix are addressed with 32-bit extents by cuBLAS and cuDNN; keep every matrix below that.
constexpr std::int64_t kMaxMatrixElements = (std::int64_t{1} << 31) - 1;
constexpr std::int64_t kMaxFeatureSize = std::int64_t{1} << 20;

bool valid_activation_kind(ActivationKind k) {
  const int v = static_cast<int>(k);
  return v >= static_cast<int>(ActivationKind::kSigmoid) && v <= static_cast<int>(ActivationKind::kSoftplus);
}

Status check_activation(const char* field, const Activation& act) {
  if (!valid_activation_kind(act.kind)) {
    return error(StatusCode::kInvalidSpec, field, ": expected an ActivationKind in [0, 10], got ",
                 static_cast<int>(act.kind));
  }
  if (!std::isfinite(act.alpha) || !std::isfinite(act.beta)) {
    return error(StatusCode::kInvalidSpec, field, " (", activation_kind_name(act.kind),
                 "): expected finite alpha and beta, got alpha=", act.alpha, " beta=", act.beta);
  }
  return Status::Ok();
}

Status check_clip(const char* field, const std::optional<float>& clip) {
  if (clip && !(std::isfinite(*clip) && *clip > 0.0f)) {
    return error(StatusCode::kInvalidSpec, field, ": expected a finite value > 0 (or no clip), got ", *clip);
  }
  return Status::Ok();
}

Status check_size(const char* field, std::int64_t value, std::int64_t min_value) {
  if (value < min_value || value > kMaxFeatureSize) {
    return error(StatusCode::kInvalidSpec, field, ": expected a value in [", min_value, ", ", kMaxFeatureSize,
                 "], got ", value);
  }
  return Status::Ok();
}

}  // namespace

Status LstmSpec::validate() const {
  CULSTM_RETURN_IF_ERROR(check_size("input_size", input_size, 1));
  CULSTM_RETURN_IF_ERROR(check_size("hidden_size", hidden_size, 1));
  if (proj_size < 0 || (proj_size > 0 && proj_size >= hidden_size)) {
    return error(StatusCode::kInvalidSpec,
                 "proj_size: expected 0 (no projection) or a value in [1, hidden_size - 1 = ", hidden_size - 1,
                 "], got ", proj_size);
  }
  if (num_layers < 1 || num_layers > 1024) {
    return error(StatusCode::kInvalidSpec, "num_layers: expected a value in [1, 1024], got ", num_layers);
  }
  const int dir = static_cast<int>(direction);
  if (dir < 0 || dir > 2) {
    return error(StatusCode::kInvalidSpec, "direction: expected forward(0), reverse(1) or bidirectional(2), got ", dir);
  }
  const int lay = static_cast<int>(layout);
  if (lay < 0 || lay > 1) {
    return error(StatusCode::kInvalidSpec, "layout: expected seq_major(0) or batch_major(1), got ", lay);
  }
  CULSTM_RETURN_IF_ERROR(check_activation("gate_activation", gate_activation));
  CULSTM_RETURN_IF_ERROR(check_activation("cell_activation", cell_activation));
  CULSTM_RETURN_IF_ERROR(check_activation("hidden_activation", hidden_activation));
  CULSTM_RETURN_IF_ERROR(check_clip("gate_clip", gate_clip));
  CULSTM_RETURN_IF_ERROR(check_clip("cell_clip", cell_clip));
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) {
    return error(StatusCode::kInvalidSpec, "dtype: expected f32, f16 or bf16, got ", dtype_name(dtype));
  }
  const int mm = static_cast<int>(math);
  if (mm < 0 || mm > 1) {
    return error(StatusCode::kInvalidSpec, "math: expected strict_f32(0) or allow_tf32(1), got ", mm);
  }
  if (math == MathMode::kAllowTF32 && dtype != DType::kF32) {
    return error(StatusCode::kUnsupportedCombination, "math=allow_tf32 applies to dtype f32 only, got dtype ",
                 dtype_name(dtype));
  }
  const std::int64_t widest_input = std::max(input_size, output_size());
  if (4 * hidden_size * widest_input > kMaxMatrixElements) {
    return error(StatusCode::kInvalidSpec, "hidden_size/input_size: W_ih of [4*", hidden_size, ", ", widest_input,
                 "] exceeds ", kMaxMatrixElements, " elements");
  }
  return Status::Ok();
}

std::string LstmSpec::describe() const {
  auto act = [](const Activation& a) {
    switch (a.kind) {
      case ActivationKind::kAffine:
      case ActivationKind::kScaledTanh:
      case ActivationKind::kHardSigmoid:
        return detail::str(activation_kind_name(a.kind), "(", a.alpha, ",", a.beta, ")");
      case ActivationKind::kLeakyRelu:
      case ActivationKind::kThresholdedRelu:
      case ActivationKind::kElu: return detail::str(activation_kind_name(a.kind), "(", a.alpha, ")");
      default: return std::string(activation_kind_name(a.kind));
    }
  };
  std::string s = detail::str("I=", input_size, " H=", hidden_size, " P=", proj_size, " L=", num_layers, " ",
                              direction_name(direction), bias ? " bias" : " no_bias", " ", layout_name(layout), " ",
                              dtype_name(dtype), " ", math_mode_name(math), " act=", act(gate_activation), "/",
                              act(cell_activation), "/", act(hidden_activation));
  if (gate_clip) s += detail::str(" gate_clip=", *gate_clip);
  if (cell_clip) s += detail::str(" cell_clip=", *cell_clip);
  if (peepholes) s += " peepholes";
  if (input_forget) s += " input_forget";
  return s;
}

}  // namespace culstm
