// Internal: the cuda backend's weights in the layout its GEMMs and kernels read (call_plan.h, LayerWeightPointers),
// as one byte image uploaded with one copy. Pure host code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "call_plan.h"
#include "culstm/culstm.hpp"

namespace culstm {
namespace cuda_backend {

// Every weight of a model in one byte image; tensors start on 256-byte boundaries. Values are rounded to the model
// dtype exactly as the reference rounds its weights; the two biases are added in double (as the reference does)
// and stored in f32.
struct PackedWeights {
  struct Offsets {
    std::size_t w_ih = 0, w_hh = 0, w_hr = 0, bias = 0, peephole = 0;
  };
  std::vector<std::uint8_t> bytes;
  std::vector<Offsets> layers;
};
PackedWeights pack_weights(const LstmSpec& spec, const Weights& weights);

// The per-layer pointers into a copy of `packed.bytes` that starts at `base`.
std::vector<LayerWeightPointers> weight_pointers(const LstmSpec& spec, const PackedWeights& packed, const void* base);

}  // namespace cuda_backend
}  // namespace culstm
