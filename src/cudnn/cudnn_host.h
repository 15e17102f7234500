// Internal: the pure host half of the cuDNN backend (no cuDNN or CUDA header; always compiled, unit-tested on the
// CPU in tests/unit/cudnn_host_test.cpp):
//   - which LstmSpec options cuDNN's LSTM can express (check_spec_support) and which lengths (check_lengths);
//   - packing culstm's canonical weights into the byte image of cuDNN's weight space (pack_weight_space), given an
//     interface that answers "where does (pseudo-layer, linLayerID, matrix|bias) live and with what shape". On the
//     GPU that interface is cudnnGetRNNWeightParams (src/cudnn/cudnn_backend.cpp); in tests it is a mock that
//     mimics cuDNN's documented layout. The packer never assumes an offset.
// docs/cudnn_backend.md describes the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "culstm/culstm.hpp"

namespace culstm {
namespace cudnn_host {

// kNotSupported naming the first option of `spec` that cuDNN's LSTM (cudnnRNNForward, CUDNN_LSTM) cannot express:
// peepholes, input_forget, gate_clip, any activation other than sigmoid / tanh / tanh. Ok otherwise (f32, f16 and
// bf16 pass here; whether this cuDNN accepts bf16 is asked of cuDNN itself at model creation).
Status check_spec_support(const LstmSpec& spec);

// kNotSupported naming the first b with lengths[b] == 0: cuDNN requires every sequence length >= 1. `lengths` may
// be null (every sequence has T steps).
Status check_lengths(const std::int32_t* lengths, std::int64_t batch);

// Work a forward would do for the first time, which cannot happen inside the caller's stream capture (it would
// run during the capture instead of being recorded, or break it).
struct FirstUse {
  bool tuning = false;         // cudnn_algo = auto times several algorithms for a new shape (synchronizes)
  bool dynamic_build = false;  // persist_dynamic is not yet built for this batch size in this Context:
                               // cudnnBuildRNNDynamic compiles its kernels at run time (NVRTC) and loads them
};

// Ok unless `capturing` and `first` names some first-use work; then kInvalidArgument saying which work, for which
// (B, T), and how to avoid it (run the shape once on this Context before capturing, or choose another
// options.cudnn_algo). `requested` is options.cudnn_algo (auto or the explicit one). forward checks this before it
// enqueues anything, so that a refused call leaves the caller's graph as it was.
Status check_capture(bool capturing, const FirstUse& first, CudnnAlgo requested, std::int64_t batch,
                     std::int64_t steps);

// cuDNN's numbering of (layer, direction): pseudo-layer = layer * D + dir (dir 1 = the reverse half of a
// bidirectional layer).
inline int pseudo_layer(int layer, int dir, int num_directions) { return layer * num_directions + dir; }

// cuDNN's linLayerID for LSTM: 0..3 the input-side matrices / biases of gates i, f, g (cuDNN's "c'"), o;
// 4..7 the recurrent-side ones in the same gate order; 8 the projection matrix (only when projSize < hiddenSize).
constexpr int kLinLayerInput = 0;
constexpr int kLinLayerRecurrent = 4;
constexpr int kLinLayerProjection = 8;

enum class ParamKind : int { kMatrix = 0, kBias = 1 };
const char* param_kind_name(ParamKind kind) noexcept;  // "matrix", "bias"

// Where cuDNN keeps one parameter: what cudnnGetRNNWeightParams returns (address and tensor descriptor),
// converted. Matrices are [rows, cols] in the last two dims (leading dims 1); a bias is a vector of H values in
// whichever single dim is not 1. Strides are in elements and are honoured, not assumed dense.
struct ParamLocation {
  static constexpr int kMaxRank = 8;
  bool present = false;          // false: cuDNN has no such parameter (it returned a null address)
  std::size_t offset_bytes = 0;  // from the start of the weight space
  DType dtype = DType::kF32;
  int rank = 0;
  std::int64_t dims[kMaxRank] = {};
  std::int64_t strides[kMaxRank] = {};
};

// Answers where each parameter of the weight space lives.
class WeightSpaceLayout {
 public:
  virtual ~WeightSpaceLayout() = default;
  // Bytes of the whole weight space (cudnnGetRNNWeightSpaceSize).
  virtual std::size_t size_bytes() const = 0;
  // The location of (pseudo_layer, lin_layer_id, kind); `out->present` false when cuDNN has none.
  virtual Status locate(int pseudo_layer, int lin_layer_id, ParamKind kind, ParamLocation* out) const = 0;
};

// Writes the byte image (layout.size_bytes() bytes) of cuDNN's weight space for `weights` (checked against `spec`
// by the caller) in spec.dtype, f16/bf16 rounded to nearest even as the reference does:
//   W_ih rows [g*H, (g+1)*H)  -> linLayerID g     matrix [H, I_l]      (g = 0..3: i, f, g, o)
//   W_hh rows [g*H, (g+1)*H)  -> linLayerID 4 + g matrix [H, R]
//   b_ih[g*H, (g+1)*H)        -> linLayerID g     bias   [H]          (spec.bias; CUDNN_RNN_DOUBLE_BIAS)
//   b_hh[g*H, (g+1)*H)        -> linLayerID 4 + g bias   [H]
//   W_hr                      -> linLayerID 8     matrix [P, H]       (spec.proj_size > 0)
// Bytes no parameter covers are zero (also a bias cuDNN reports for a spec without bias). kInternal naming the
// (layer, direction, linLayerID, kind) when the layout disagrees with the spec: a missing parameter, another
// shape or dtype, a parameter outside the weight space, or two parameters that overlap.
Status pack_weight_space(const LstmSpec& spec, const Weights& weights, const WeightSpaceLayout& layout,
                         std::vector<std::uint8_t>* image);

// Whether two layouts put every parameter `spec` uses at the same place with the same shape (then the cuDNN
// algorithms they come from can share one packed weight space). Errors from either layout are returned.
Status same_layout(const LstmSpec& spec, const WeightSpaceLayout& a, const WeightSpaceLayout& b, bool* same);

}  // namespace cudnn_host
}  // namespace culstm
