#include "culstm/types.h"

#include <algorithm>

#include "culstm/spec.h"

namespace culstm {

const char* dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kF64: return "f64";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kF64:
    case DType::kI64: return 8;
  }
  return 0;
}

const char* memory_kind_name(MemoryKind kind) noexcept {
  return kind == MemoryKind::kDevice ? "device" : "host";
}

TensorView::TensorView(const void* ptr, DType type, MemoryKind where, std::initializer_list<std::int64_t> dims)
    : data(const_cast<void*>(ptr)), dtype(type), memory(where) {
  // Inputs are never written through `data`; the const_cast only lets one view type serve inputs and outputs.
  rank = static_cast<int>(std::min<std::size_t>(dims.size(), kMaxRank));
  int axis = 0;
  for (std::int64_t d : dims) {
    if (axis >= kMaxRank) break;
    shape[axis++] = d;
  }
  if (dims.size() > kMaxRank) rank = kMaxRank + 1;  // flagged as a rank error by validation
}

std::int64_t TensorView::numel() const noexcept {
  std::int64_t n = 1;
  for (int axis = 0; axis < std::min(rank, kMaxRank); ++axis) n *= shape[axis];
  return n;
}

const char* direction_name(Direction d) noexcept {
  switch (d) {
    case Direction::kForward: return "forward";
    case Direction::kReverse: return "reverse";
    case Direction::kBidirectional: return "bidirectional";
  }
  return "unknown";
}

const char* layout_name(BatchLayout l) noexcept {
  return l == BatchLayout::kBatchMajor ? "batch_major" : "seq_major";
}

const char* math_mode_name(MathMode m) noexcept {
  return m == MathMode::kAllowTF32 ? "allow_tf32" : "strict_f32";
}

const char* activation_kind_name(ActivationKind kind) noexcept {
  switch (kind) {
    case ActivationKind::kSigmoid: return "sigmoid";
    case ActivationKind::kTanh: return "tanh";
    case ActivationKind::kRelu: return "relu";
    case ActivationKind::kAffine: return "affine";
    case ActivationKind::kLeakyRelu: return "leaky_relu";
    case ActivationKind::kThresholdedRelu: return "thresholded_relu";
    case ActivationKind::kScaledTanh: return "scaled_tanh";
    case ActivationKind::kHardSigmoid: return "hard_sigmoid";
    case ActivationKind::kElu: return "elu";
    case ActivationKind::kSoftsign: return "softsign";
    case ActivationKind::kSoftplus: return "softplus";
  }
  return "unknown";
}

bool activation_kind_from_name(const char* name, ActivationKind* kind) noexcept {
  if (name == nullptr || kind == nullptr) return false;
  // Compare ignoring case and underscores, so "hard_sigmoid" and ONNX's "HardSigmoid" both match.
  auto normalized_equal = [](const char* a, const char* b) {
    for (;;) {
      while (*a == '_') ++a;
      while (*b == '_') ++b;
      const char ca = (*a >= 'A' && *a <= 'Z') ? static_cast<char>(*a - 'A' + 'a') : *a;
      const char cb = (*b >= 'A' && *b <= 'Z') ? static_cast<char>(*b - 'A' + 'a') : *b;
      if (ca != cb) return false;
      if (ca == '\0') return true;
      ++a;
      ++b;
    }
  };
  for (int k = static_cast<int>(ActivationKind::kSigmoid); k <= static_cast<int>(ActivationKind::kSoftplus); ++k) {
    const auto candidate = static_cast<ActivationKind>(k);
    if (normalized_equal(name, activation_kind_name(candidate))) {
      *kind = candidate;
      return true;
    }
  }
  return false;
}

}  // namespace culstm
