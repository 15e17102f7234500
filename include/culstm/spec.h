// culstm/spec.h: what an LSTM network is (docs/design.md §1-2). Pure data plus validation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "culstm/activation.h"
#include "culstm/export.h"
#include "culstm/status.h"
#include "culstm/types.h"

namespace culstm {

enum class Direction : int { kForward = 0, kReverse = 1, kBidirectional = 2 };
enum class BatchLayout : int {
  kSeqMajor = 0,    // x [T, B, I], y [T, B, D*R]  (PyTorch batch_first=False, ONNX layout=0)
  kBatchMajor = 1,  // x [B, T, I], y [B, T, D*R]  (PyTorch batch_first=True, ONNX layout=1)
};
enum class MathMode : int {
  kStrictF32 = 0,  // f32 GEMMs never use tf32
  kAllowTF32 = 1,  // f32 GEMMs may use tf32 tensor cores
};

CULSTM_API const char* direction_name(Direction d) noexcept;  // "forward", "reverse", "bidirectional"
CULSTM_API const char* layout_name(BatchLayout l) noexcept;   // "seq_major", "batch_major"
CULSTM_API const char* math_mode_name(MathMode m) noexcept;   // "strict_f32", "allow_tf32"

struct CULSTM_API LstmSpec {
  std::int64_t input_size = 0;   // I: features of x
  std::int64_t hidden_size = 0;  // H: cell size
  std::int64_t proj_size = 0;    // P: 0 = no projection; else h = W_hr (o * ha(c)), 0 < P < H (PyTorch rule)
  int num_layers = 1;            // L
  Direction direction = Direction::kForward;
  bool bias = true;  // b_ih and b_hh present
  BatchLayout layout = BatchLayout::kSeqMajor;

  Activation gate_activation = Activation::sigmoid();  // fa: i, f, o
  Activation cell_activation = Activation::tanh();     // ga: g (candidate)
  Activation hidden_activation = Activation::tanh();   // ha: applied to c for h

  std::optional<float> gate_clip;  // ONNX `clip`: pre-activations clamped to [-clip, clip]; > 0
  std::optional<float> cell_clip;  // cuDNN cell clip: c clamped to [-clip, clip]; > 0
  bool peepholes = false;          // i, f use p * c_prev; o uses p * c (ONNX P)
  bool input_forget = false;       // coupled gates: f = 1 - i (ONNX input_forget)

  DType dtype = DType::kF32;  // storage type of x, y, states and weights on device: f32 | f16 | bf16
  MathMode math = MathMode::kStrictF32;

  int num_directions() const noexcept { return direction == Direction::kBidirectional ? 2 : 1; }
  // R: size of h (what is fed back and output per direction).
  std::int64_t recurrent_size() const noexcept { return proj_size > 0 ? proj_size : hidden_size; }
  // Features of the input of layer `layer`: I for layer 0, D*R above.
  std::int64_t layer_input_size(int layer) const noexcept {
    return layer == 0 ? input_size : num_directions() * recurrent_size();
  }
  // Features of y: D*R.
  std::int64_t output_size() const noexcept { return num_directions() * recurrent_size(); }
  // Directions that layer-direction index `dir` (0..D-1) runs: reverse for dir 1 of a bidirectional layer.
  bool runs_reversed(int dir) const noexcept {
    return direction == Direction::kReverse || (direction == Direction::kBidirectional && dir == 1);
  }

  // Ok, or kInvalidSpec / kUnsupportedCombination naming the field, the expected and the actual value.
  Status validate() const;
  // One line: "I=32 H=64 P=0 L=2 bidirectional bias seq_major f32 strict_f32 ..."
  std::string describe() const;
};

}  // namespace culstm
