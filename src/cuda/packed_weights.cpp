// The cuda backend's weight image (see packed_weights.h). Pure host code.
#include "packed_weights.h"

#include <cstring>

#include "detail.h"
#include "../float16.h"

namespace culstm {
namespace cuda_backend {
namespace {

class ImageWriter {
 public:
  explicit ImageWriter(DType dtype) : dtype_(dtype) {}

  // Appends the tensors in `parts` back to back in the model dtype; returns the byte offset of the first.
  std::size_t values(const std::vector<const std::vector<float>*>& parts) {
    const std::size_t offset = begin_tensor();
    const std::size_t size = dtype_size(dtype_);
    for (const std::vector<float>* part : parts) {
      const std::size_t at = bytes_.size();
      bytes_.resize(at + part->size() * size);
      for (std::size_t k = 0; k < part->size(); ++k) {
        const float v = (*part)[k];
        if (dtype_ == DType::kF32) {
          std::memcpy(&bytes_[at + 4 * k], &v, 4);
        } else {
          const std::uint16_t bits = dtype_ == DType::kF16 ? detail::float_to_half(v) : detail::float_to_bf16(v);
          std::memcpy(&bytes_[at + 2 * k], &bits, 2);
        }
      }
    }
    return offset;
  }

  // Appends f32 values; returns their byte offset.
  std::size_t f32(const std::vector<float>& v) {
    const std::size_t offset = begin_tensor();
    bytes_.resize(offset + v.size() * sizeof(float));
    if (!v.empty()) std::memcpy(&bytes_[offset], v.data(), v.size() * sizeof(float));
    return offset;
  }

  std::vector<std::uint8_t> take() { return std::move(bytes_); }

 private:
  std::size_t begin_tensor() {
    const std::size_t a = kWorkspaceAlignment;
    bytes_.resize((bytes_.size() + a - 1) / a * a);
    return bytes_.size();
  }
  DType dtype_;
  std::vector<std::uint8_t> bytes_;
};

}  // namespace

PackedWeights pack_weights(const LstmSpec& spec, const Weights& weights) {
  const int D = spec.num_directions();
  ImageWriter image(spec.dtype);
  PackedWeights packed;
  for (int l = 0; l < spec.num_layers; ++l) {
    std::vector<const std::vector<float>*> w_ih, w_hh, w_hr;
    std::vector<float> bias, peephole;
    for (int d = 0; d < D; ++d) {
      const LayerWeights& lw = weights.at(l, d);
      w_ih.push_back(&lw.w_ih);
      w_hh.push_back(&lw.w_hh);
      w_hr.push_back(&lw.w_hr);
      for (std::size_t r = 0; r < lw.b_ih.size(); ++r) {
        const double sum = static_cast<double>(detail::round_to_dtype(lw.b_ih[r], spec.dtype)) +
                           static_cast<double>(detail::round_to_dtype(lw.b_hh[r], spec.dtype));
        bias.push_back(static_cast<float>(sum));
      }
      for (float p : lw.peephole) peephole.push_back(detail::round_to_dtype(p, spec.dtype));
    }
    PackedWeights::Offsets o;
    o.w_ih = image.values(w_ih);
    o.w_hh = image.values(w_hh);
    if (spec.proj_size > 0) o.w_hr = image.values(w_hr);
    if (spec.bias) o.bias = image.f32(bias);
    if (spec.peepholes) o.peephole = image.f32(peephole);
    packed.layers.push_back(o);
  }
  packed.bytes = image.take();
  return packed;
}

std::vector<LayerWeightPointers> weight_pointers(const LstmSpec& spec, const PackedWeights& packed, const void* base) {
  const auto* bytes = static_cast<const std::uint8_t*>(base);
  std::vector<LayerWeightPointers> out;
  for (const PackedWeights::Offsets& o : packed.layers) {
    LayerWeightPointers w;
    w.w_ih = bytes + o.w_ih;
    w.w_hh = bytes + o.w_hh;
    w.w_hr = spec.proj_size > 0 ? bytes + o.w_hr : nullptr;
    w.bias = spec.bias ? reinterpret_cast<const float*>(bytes + o.bias) : nullptr;
    w.peephole = spec.peepholes ? reinterpret_cast<const float*>(bytes + o.peephole) : nullptr;
    out.push_back(w);
  }
  return out;
}

}  // namespace cuda_backend
}  // namespace culstm
