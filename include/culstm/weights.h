// culstm/weights.h: the canonical host-side weights every importer converts into (docs/design.md §1).
#pragma once

#include <cstdint>
#include <vector>

#include "culstm/export.h"
#include "culstm/spec.h"
#include "culstm/status.h"

namespace culstm {

// Weights of one (layer, direction), row-major, gate order i, f, g, o (PyTorch's). Sizes, with I_l the layer's
// input size and R = proj_size or H:
//   w_ih     [4H, I_l]     w_hh [4H, R]     b_ih [4H] and b_hh [4H] (empty when spec.bias is false)
//   w_hr     [P, H]        (empty when proj_size == 0)
//   peephole [3H]          p_i, p_f, p_o (empty unless spec.peepholes)
// Values are stored in f32; a model of dtype f16/bf16 rounds them to that type when it is created.
struct LayerWeights {
  std::vector<float> w_ih, w_hh, b_ih, b_hh, w_hr, peephole;
};

class CULSTM_API Weights {
 public:
  Weights() = default;
  // Weights with every tensor sized for `spec` and filled with zeros.
  static Weights zeros_for(const LstmSpec& spec);

  int num_layers() const noexcept { return num_layers_; }
  int num_directions() const noexcept { return num_directions_; }
  LayerWeights& at(int layer, int dir) { return layers_[static_cast<std::size_t>(layer * num_directions_ + dir)]; }
  const LayerWeights& at(int layer, int dir) const {
    return layers_[static_cast<std::size_t>(layer * num_directions_ + dir)];
  }

  // Ok when layer/direction counts and every tensor's size match `spec`; else kShapeMismatch naming the tensor
  // ("layer 1 reverse w_hh: expected 1024 values ([256, 4]... ), got 512") or kInvalidArgument for non-finite values.
  Status check_against(const LstmSpec& spec) const;

 private:
  int num_layers_ = 0;
  int num_directions_ = 0;
  std::vector<LayerWeights> layers_;
};

}  // namespace culstm
