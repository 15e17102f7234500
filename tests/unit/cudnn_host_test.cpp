// The cuDNN backend's pure host half (src/cudnn/cudnn_host.h), on the CPU: which options it refuses, and packing
// the canonical weights into a weight space described by a mock of cudnnGetRNNWeightParams. The mock follows
// cuDNN's documented LSTM layout (per pseudo-layer = layer * D + dir: matrices of linLayerIDs 0..7 as [1, rows,
// cols], the projection matrix 8, then the biases of 0..7 as [1, H, 1]); variants scramble the order, pad, transpose
// strides or lie about shapes, to show that the packer follows what the layout says and refuses what is wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cudnn/cudnn_host.h"
#if CULSTM_WITH_CUDNN
#include "cudnn/cudnn_status.h"
#endif
#include "culstm/culstm.hpp"
#include "float16.h"
#include "test_util.h"

namespace culstm {
namespace {

using cudnn_host::ParamKind;
using cudnn_host::ParamLocation;

// A mock weight space: every parameter cuDNN would have for the spec, with an explicit location.
class MockLayout final : public cudnn_host::WeightSpaceLayout {
 public:
  struct Options {
    bool scramble = false;      // reverse the order of the parameters and pad 64 bytes between them
    bool column_major = false;  // matrices stored transposed (strides {.., 1, rows}): the packer must follow
    bool biases_as_rank1 = false;
    DType dtype_reported = DType::kF32;  // usually the spec's dtype
    bool report_bias_without_spec_bias = false;
  };

  MockLayout(const LstmSpec& spec, Options o) : spec_(spec), o_(o) {
    const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
    const std::size_t elem = dtype_size(spec.dtype);
    struct Item {
      Key key;
      std::int64_t rows, cols;
    };
    std::vector<Item> items;
    for (int l = 0; l < spec.num_layers; ++l) {
      for (int d = 0; d < spec.num_directions(); ++d) {
        const int pseudo = l * spec.num_directions() + d;
        const std::int64_t I = spec.layer_input_size(l);
        for (int id = 0; id < 8; ++id) items.push_back({{pseudo, id, ParamKind::kMatrix}, H, id < 4 ? I : R});
        if (P > 0) items.push_back({{pseudo, 8, ParamKind::kMatrix}, P, H});
        if (spec.bias || o.report_bias_without_spec_bias) {
          for (int id = 0; id < 8; ++id) items.push_back({{pseudo, id, ParamKind::kBias}, H, 1});
        }
      }
    }
    if (o.scramble) std::reverse(items.begin(), items.end());
    std::size_t offset = o.scramble ? 64 : 0;
    for (const Item& it : items) {
      ParamLocation loc;
      loc.present = true;
      loc.offset_bytes = offset;
      loc.dtype = o.dtype_reported;
      const ParamKind kind = std::get<2>(it.key);
      if (kind == ParamKind::kBias && o.biases_as_rank1) {
        loc.rank = 1;
        loc.dims[0] = it.rows;
        loc.strides[0] = 1;
      } else {
        loc.rank = 3;
        loc.dims[0] = 1;
        loc.dims[1] = it.rows;
        loc.dims[2] = it.cols;
        loc.strides[0] = it.rows * it.cols;
        if (o.column_major && kind == ParamKind::kMatrix) {
          loc.strides[1] = 1;
          loc.strides[2] = it.rows;
        } else {
          loc.strides[1] = it.cols;
          loc.strides[2] = 1;
        }
      }
      locations_[it.key] = loc;
      offset += static_cast<std::size_t>(it.rows * it.cols) * elem + (o.scramble ? 64 : 0);
    }
    size_ = offset;
  }

  std::size_t size_bytes() const override { return size_; }
  Status locate(int pseudo, int id, ParamKind kind, ParamLocation* out) const override {
    ++calls_;
    auto it = locations_.find(Key{pseudo, id, kind});
    *out = it == locations_.end() ? ParamLocation{} : it->second;
    return Status::Ok();
  }

  // Tests tamper with single locations.
  ParamLocation& at(int pseudo, int id, ParamKind kind) { return locations_.at(Key{pseudo, id, kind}); }
  void remove(int pseudo, int id, ParamKind kind) { locations_.erase(Key{pseudo, id, kind}); }
  void set_size(std::size_t bytes) { size_ = bytes; }
  int calls() const { return calls_; }

 private:
  using Key = std::tuple<int, int, ParamKind>;
  LstmSpec spec_;
  Options o_;
  std::map<Key, ParamLocation> locations_;
  std::size_t size_ = 0;
  mutable int calls_ = 0;
};

MockLayout::Options opts_for(const LstmSpec& spec) {
  MockLayout::Options o;
  o.dtype_reported = spec.dtype;
  return o;
}

// The value of element (r, c) of a located parameter, read back from the image.
float read(const std::vector<std::uint8_t>& image, const ParamLocation& loc, DType dtype, std::int64_t r,
           std::int64_t c) {
  std::int64_t rs, cs;
  if (loc.rank == 1) {
    rs = loc.strides[0];
    cs = 0;
  } else if (loc.dims[loc.rank - 1] == 1 && loc.dims[loc.rank - 2] != 1) {  // a bias [1, H, 1]
    rs = loc.strides[loc.rank - 2];
    cs = 0;
  } else {
    rs = loc.strides[loc.rank - 2];
    cs = loc.strides[loc.rank - 1];
  }
  const std::size_t at = loc.offset_bytes + static_cast<std::size_t>(r * rs + c * cs) * dtype_size(dtype);
  if (dtype == DType::kF32) {
    float v;
    std::memcpy(&v, &image[at], 4);
    return v;
  }
  std::uint16_t bits;
  std::memcpy(&bits, &image[at], 2);
  return dtype == DType::kF16 ? detail::half_to_float(bits) : detail::bf16_to_float(bits);
}

float rounded(float v, DType dtype) {
  if (dtype == DType::kF16) return detail::half_to_float(detail::float_to_half(v));
  if (dtype == DType::kBF16) return detail::bf16_to_float(detail::float_to_bf16(v));
  return v;
}

// Weights whose every value is distinct (so a value landing in the wrong place cannot match by accident).
Weights distinct_weights(const LstmSpec& spec) {
  Weights w = Weights::zeros_for(spec);
  float next = 1.0f;
  for (int l = 0; l < w.num_layers(); ++l) {
    for (int d = 0; d < w.num_directions(); ++d) {
      LayerWeights& lw = w.at(l, d);
      for (std::vector<float>* t : {&lw.w_ih, &lw.w_hh, &lw.b_ih, &lw.b_hh, &lw.w_hr}) {
        for (float& v : *t) {
          v = next;
          next += 1.0f;  // exact in f32 up to 2^24; tests stay far below
        }
      }
    }
  }
  return w;
}

// Checks every canonical element against where the layout says it lives.
void expect_all_in_place(const LstmSpec& spec, const Weights& w, MockLayout& layout,
                         const std::vector<std::uint8_t>& image) {
  const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
  const DType dt = spec.dtype;
  for (int l = 0; l < spec.num_layers; ++l) {
    for (int d = 0; d < spec.num_directions(); ++d) {
      const int pseudo = cudnn_host::pseudo_layer(l, d, spec.num_directions());
      const LayerWeights& lw = w.at(l, d);
      const std::int64_t I = spec.layer_input_size(l);
      for (int g = 0; g < 4; ++g) {
        const ParamLocation& in = layout.at(pseudo, g, ParamKind::kMatrix);
        const ParamLocation& rec = layout.at(pseudo, 4 + g, ParamKind::kMatrix);
        for (std::int64_t r = 0; r < H; ++r) {
          for (std::int64_t c = 0; c < I; ++c) {
            ASSERT_EQ(read(image, in, dt, r, c), rounded(lw.w_ih[(g * H + r) * I + c], dt))
                << "layer " << l << " dir " << d << " W_ih gate " << g << " [" << r << ", " << c << "]";
          }
          for (std::int64_t c = 0; c < R; ++c) {
            ASSERT_EQ(read(image, rec, dt, r, c), rounded(lw.w_hh[(g * H + r) * R + c], dt))
                << "layer " << l << " dir " << d << " W_hh gate " << g << " [" << r << ", " << c << "]";
          }
        }
        if (spec.bias) {
          const ParamLocation& bi = layout.at(pseudo, g, ParamKind::kBias);
          const ParamLocation& bh = layout.at(pseudo, 4 + g, ParamKind::kBias);
          for (std::int64_t r = 0; r < H; ++r) {
            ASSERT_EQ(read(image, bi, dt, r, 0), rounded(lw.b_ih[g * H + r], dt)) << "b_ih gate " << g << " " << r;
            ASSERT_EQ(read(image, bh, dt, r, 0), rounded(lw.b_hh[g * H + r], dt)) << "b_hh gate " << g << " " << r;
          }
        }
      }
      if (P > 0) {
        const ParamLocation& pr = layout.at(pseudo, 8, ParamKind::kMatrix);
        for (std::int64_t r = 0; r < P; ++r) {
          for (std::int64_t c = 0; c < H; ++c) {
            ASSERT_EQ(read(image, pr, dt, r, c), rounded(lw.w_hr[r * H + c], dt)) << "W_hr [" << r << ", " << c << "]";
          }
        }
      }
    }
  }
}

LstmSpec small_spec() {
  LstmSpec s;
  s.input_size = 3;
  s.hidden_size = 5;
  return s;
}

// ---------------------------------------------------------------------------------------------------------------

TEST(CudnnPack, EveryCanonicalElementLandsWhereTheLayoutSays) {
  LstmSpec spec = small_spec();
  const Weights w = distinct_weights(spec);
  MockLayout layout(spec, opts_for(spec));
  std::vector<std::uint8_t> image;
  ASSERT_TRUE(cudnn_host::pack_weight_space(spec, w, layout, &image).ok());
  ASSERT_EQ(image.size(), layout.size_bytes());
  expect_all_in_place(spec, w, layout, image);
  // cuDNN's documented order for layer 0: W_ih gate i is the first [H, I] block, and it is row-major.
  float first;
  std::memcpy(&first, image.data(), 4);
  EXPECT_EQ(first, w.at(0, 0).w_ih[0]);
  float second_row;
  std::memcpy(&second_row, image.data() + 4 * spec.input_size, 4);
  EXPECT_EQ(second_row, w.at(0, 0).w_ih[static_cast<std::size_t>(spec.input_size)]);
}

TEST(CudnnPack, BothBiasesAreKeptApart) {
  LstmSpec spec = small_spec();
  Weights w = Weights::zeros_for(spec);
  std::fill(w.at(0, 0).b_ih.begin(), w.at(0, 0).b_ih.end(), 1.5f);
  std::fill(w.at(0, 0).b_hh.begin(), w.at(0, 0).b_hh.end(), -2.25f);
  MockLayout layout(spec, opts_for(spec));
  std::vector<std::uint8_t> image;
  ASSERT_TRUE(cudnn_host::pack_weight_space(spec, w, layout, &image).ok());
  for (int g = 0; g < 4; ++g) {
    for (std::int64_t r = 0; r < spec.hidden_size; ++r) {
      EXPECT_EQ(read(image, layout.at(0, g, ParamKind::kBias), DType::kF32, r, 0), 1.5f);
      EXPECT_EQ(read(image, layout.at(0, 4 + g, ParamKind::kBias), DType::kF32, r, 0), -2.25f);
    }
  }
}

TEST(CudnnPack, NoBiasSpecNeverAsksForBiasesAndZeroesAnyCudnnReports) {
  LstmSpec spec = small_spec();
  spec.bias = false;
  const Weights w = distinct_weights(spec);
  MockLayout::Options o = opts_for(spec);
  o.report_bias_without_spec_bias = true;  // as if cuDNN kept bias slots anyway: they must stay 0
  MockLayout layout(spec, o);
  std::vector<std::uint8_t> image;
  ASSERT_TRUE(cudnn_host::pack_weight_space(spec, w, layout, &image).ok());
  expect_all_in_place(spec, w, layout, image);
  for (int id = 0; id < 8; ++id) {
    for (std::int64_t r = 0; r < spec.hidden_size; ++r) {
      EXPECT_EQ(read(image, layout.at(0, id, ParamKind::kBias), DType::kF32, r, 0), 0.0f);
    }
  }
}

TEST(CudnnPack, ProjectionGoesToLinLayer8AndShrinksTheRecurrentMatrices) {
  LstmSpec spec = small_spec();
  spec.hidden_size = 6;
  spec.proj_size = 2;
  spec.num_layers = 2;
  const Weights w = distinct_weights(spec);
  MockLayout layout(spec, opts_for(spec));
  EXPECT_EQ(layout.at(0, 4, ParamKind::kMatrix).dims[2], 2);  // W_hh gate i is [H, P]
  EXPECT_EQ(layout.at(1, 0, ParamKind::kMatrix).dims[2], 2);  // layer 1 input is P wide
  std::vector<std::uint8_t> image;
  ASSERT_TRUE(cudnn_host::pack_weight_space(spec, w, layout, &image).ok());
  expect_all_in_place(spec, w, layout, image);
}

TEST(CudnnPack, BidirectionalUsesPseudoLayersLayerTimesTwoPlusDirection) {
  LstmSpec spec = small_spec();
  spec.direction = Direction::kBidirectional;
  spec.num_layers = 3;
  spec.proj_size = 3;
  const Weights w = distinct_weights(spec);
  MockLayout layout(spec, opts_for(spec));
  std::vector<std::uint8_t> image;
  ASSERT_TRUE(cudnn_host::pack_weight_space(spec, w, layout, &image).ok());
  expect_all_in_place(spec, w, layout, image);
  EXPECT_EQ(cudnn_host::pseudo_layer(1, 1, 2), 3);
  EXPECT_EQ(cudnn_host::pseudo_layer(2, 0, 2), 4);
  EXPECT_EQ(cudnn_host::pseudo_layer(2, 0, 1), 2);
  // Layer 1 reverse's W_ih gate o (pseudo-layer 3, linLayerID 3) holds layer 1 direction 1's rows [3H, 4H),
  // 2 * P = 6 columns wide.
  const ParamLocation& loc = layout.at(3, 3, ParamKind::kMatrix);
  ASSERT_EQ(loc.dims[2], 6);
  EXPECT_EQ(read(image, loc, DType::kF32, 0, 0), w.at(1, 1).w_ih[static_cast<std::size_t>(3 * 5 * 6)]);
}

TEST(CudnnPack, FollowsScrambledPaddedAndTransposedLayouts) {
  for (bool column_major : {false, true}) {
    LstmSpec spec = small_spec();
    spec.direction = Direction::kBidirectional;
    spec.num_layers = 2;
    spec.proj_size = 4;
    const Weights w = distinct_weights(spec);
    MockLayout::Options o = opts_for(spec);
    o.scramble = true;
    o.column_major = column_major;
    o.biases_as_rank1 = true;
    MockLayout layout(spec, o);
    std::vector<std::uint8_t> image;
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
    ASSERT_TRUE(st.ok()) << st.to_string();
    expect_all_in_place(spec, w, layout, image);
    // Padding between parameters stays zero.
    for (std::size_t k = 0; k < 64; ++k) ASSERT_EQ(image[k], 0) << k;
  }
}

TEST(CudnnPack, AcceptsExtentsOfOneAnywhere) {
  LstmSpec spec = small_spec();
  const Weights w = distinct_weights(spec);
  MockLayout layout(spec, opts_for(spec));
  const std::int64_t H = spec.hidden_size, I = spec.input_size;
  ParamLocation& trailing = layout.at(0, 0, ParamKind::kMatrix);  // [H, I, 1]
  trailing.dims[0] = H;
  trailing.dims[1] = I;
  trailing.dims[2] = 1;
  trailing.strides[0] = I;
  trailing.strides[1] = 1;
  trailing.strides[2] = 1;
  ParamLocation& rank2 = layout.at(0, 1, ParamKind::kMatrix);  // [H, I]
  rank2.rank = 2;
  rank2.dims[0] = H;
  rank2.dims[1] = I;
  rank2.strides[0] = I;
  rank2.strides[1] = 1;
  ParamLocation& bias = layout.at(0, 2, ParamKind::kBias);  // [1, 1, H]
  bias.dims[1] = 1;
  bias.dims[2] = H;
  bias.strides[1] = H;
  bias.strides[2] = 1;
  std::vector<std::uint8_t> image;
  const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
  ASSERT_TRUE(st.ok()) << st.to_string();
  for (std::int64_t r = 0; r < H; ++r) {
    for (std::int64_t c = 0; c < I; ++c) {
      float v;
      std::memcpy(&v, &image[trailing.offset_bytes + static_cast<std::size_t>(r * I + c) * 4], 4);
      ASSERT_EQ(v, w.at(0, 0).w_ih[static_cast<std::size_t>(r * I + c)]);
      std::memcpy(&v, &image[rank2.offset_bytes + static_cast<std::size_t>(r * I + c) * 4], 4);
      ASSERT_EQ(v, w.at(0, 0).w_ih[static_cast<std::size_t>((H + r) * I + c)]);
    }
    float b;
    std::memcpy(&b, &image[bias.offset_bytes + static_cast<std::size_t>(r) * 4], 4);
    ASSERT_EQ(b, w.at(0, 0).b_ih[static_cast<std::size_t>(2 * H + r)]);
  }
}

TEST(CudnnPack, RoundsToF16AndBf16AsTheReferenceDoes) {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    LstmSpec spec = small_spec();
    spec.dtype = dt;
    spec.proj_size = 2;
    std::mt19937 rng(7);
    const Weights w = testing_util::random_weights(spec, rng, 3.0f);
    MockLayout layout(spec, opts_for(spec));
    std::vector<std::uint8_t> image;
    ASSERT_TRUE(cudnn_host::pack_weight_space(spec, w, layout, &image).ok());
    EXPECT_EQ(image.size(), layout.size_bytes());
    expect_all_in_place(spec, w, layout, image);  // compares against float_to_half / float_to_bf16 of the value
    // One value by hand: 1/3 in bf16 is 0x3eab.
    Weights third = Weights::zeros_for(spec);
    third.at(0, 0).w_ih[0] = 1.0f / 3.0f;
    ASSERT_TRUE(cudnn_host::pack_weight_space(spec, third, layout, &image).ok());
    std::uint16_t bits;
    std::memcpy(&bits, &image[layout.at(0, 0, ParamKind::kMatrix).offset_bytes], 2);
    EXPECT_EQ(bits, dt == DType::kBF16 ? 0x3eab : 0x3555);
  }
}

TEST(CudnnPack, RefusesAShapeTheSpecDoesNotHave) {
  LstmSpec spec = small_spec();
  const Weights w = Weights::zeros_for(spec);
  MockLayout layout(spec, opts_for(spec));
  layout.at(0, 5, ParamKind::kMatrix).dims[1] = 4;  // W_hh gate f reported [4, 5] instead of [5, 5]
  std::vector<std::uint8_t> image{1, 2, 3};
  const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("linLayerID 5 matrix (w_hh gate f)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("[1, 4, 5]"), std::string::npos) << st.message();
  EXPECT_EQ(image.size(), 3u) << "the image is written only on success";
}

TEST(CudnnPack, RefusesAMisShapedBiasOrProjection) {
  LstmSpec spec = small_spec();
  spec.hidden_size = 6;
  spec.proj_size = 2;
  const Weights w = Weights::zeros_for(spec);
  {
    MockLayout layout(spec, opts_for(spec));
    layout.at(0, 6, ParamKind::kBias).dims[1] = 3;  // b_hh gate g: 3 values instead of 6
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, nullptr);
    EXPECT_EQ(st.code(), StatusCode::kNullPointer);
    std::vector<std::uint8_t> image;
    const Status st2 = cudnn_host::pack_weight_space(spec, w, layout, &image);
    EXPECT_EQ(st2.code(), StatusCode::kInternal);
    EXPECT_NE(st2.message().find("linLayerID 6 bias (b_hh gate g)"), std::string::npos) << st2.message();
  }
  {
    MockLayout layout(spec, opts_for(spec));
    ParamLocation& p = layout.at(0, 8, ParamKind::kMatrix);
    std::swap(p.dims[1], p.dims[2]);  // W_hr reported [H, P]
    std::vector<std::uint8_t> image;
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
    EXPECT_EQ(st.code(), StatusCode::kInternal);
    EXPECT_NE(st.message().find("linLayerID 8 matrix (w_hr)"), std::string::npos) << st.message();
  }
}

TEST(CudnnPack, RefusesMissingParametersOtherDtypesOverlapsAndOutOfBounds) {
  LstmSpec spec = small_spec();
  spec.proj_size = 2;
  const Weights w = Weights::zeros_for(spec);
  std::vector<std::uint8_t> image;
  {
    MockLayout layout(spec, opts_for(spec));
    layout.remove(0, 8, ParamKind::kMatrix);
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
    EXPECT_EQ(st.code(), StatusCode::kInternal);
    EXPECT_NE(st.message().find("no such parameter"), std::string::npos) << st.message();
  }
  {
    MockLayout layout(spec, opts_for(spec));
    layout.remove(0, 2, ParamKind::kBias);  // the spec has biases: cuDNN must have them
    EXPECT_EQ(cudnn_host::pack_weight_space(spec, w, layout, &image).code(), StatusCode::kInternal);
  }
  {
    MockLayout::Options o = opts_for(spec);
    o.dtype_reported = DType::kF16;  // weights in another type than the spec's
    MockLayout layout(spec, o);
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
    EXPECT_EQ(st.code(), StatusCode::kInternal);
    EXPECT_NE(st.message().find("dtype f16"), std::string::npos) << st.message();
  }
  {
    MockLayout layout(spec, opts_for(spec));
    layout.at(0, 1, ParamKind::kMatrix).offset_bytes = layout.at(0, 0, ParamKind::kMatrix).offset_bytes + 4;
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
    EXPECT_EQ(st.code(), StatusCode::kInternal);
    EXPECT_NE(st.message().find("overlaps"), std::string::npos) << st.message();
  }
  {
    MockLayout layout(spec, opts_for(spec));
    layout.set_size(layout.size_bytes() - 4);
    const Status st = cudnn_host::pack_weight_space(spec, w, layout, &image);
    EXPECT_EQ(st.code(), StatusCode::kInternal);
    EXPECT_NE(st.message().find("outside the weight space"), std::string::npos) << st.message();
  }
  {
    MockLayout layout(spec, opts_for(spec));
    layout.at(0, 0, ParamKind::kMatrix).offset_bytes += 2;  // not a multiple of the element size
    EXPECT_EQ(cudnn_host::pack_weight_space(spec, w, layout, &image).code(), StatusCode::kInternal);
  }
}

TEST(CudnnPack, SameLayoutComparesEveryParameter) {
  LstmSpec spec = small_spec();
  spec.direction = Direction::kBidirectional;
  MockLayout a(spec, opts_for(spec)), b(spec, opts_for(spec));
  bool same = false;
  ASSERT_TRUE(cudnn_host::same_layout(spec, a, b, &same).ok());
  EXPECT_TRUE(same);
  b.at(1, 7, ParamKind::kBias).strides[1] = 2;
  ASSERT_TRUE(cudnn_host::same_layout(spec, a, b, &same).ok());
  EXPECT_FALSE(same);
  MockLayout::Options o = opts_for(spec);
  o.scramble = true;
  MockLayout c(spec, o);
  ASSERT_TRUE(cudnn_host::same_layout(spec, a, c, &same).ok());
  EXPECT_FALSE(same);
}

// ---------------------------------------------------------------------------------------------------------------

TEST(CudnnSupport, NamesEveryOptionCudnnCannotExpress) {
  struct Case {
    const char* option;
    void (*edit)(LstmSpec*);
  };
  const Case cases[] = {
      {"peepholes", [](LstmSpec* s) { s->peepholes = true; }},
      {"input_forget", [](LstmSpec* s) { s->input_forget = true; }},
      {"gate_clip", [](LstmSpec* s) { s->gate_clip = 3.0f; }},
      {"gate_activation = hard_sigmoid", [](LstmSpec* s) { s->gate_activation = Activation::hard_sigmoid(); }},
      {"cell_activation = relu", [](LstmSpec* s) { s->cell_activation = Activation::relu(); }},
      {"hidden_activation = sigmoid", [](LstmSpec* s) { s->hidden_activation = Activation::sigmoid(); }},
  };
  for (const Case& c : cases) {
    LstmSpec spec = small_spec();
    c.edit(&spec);
    ASSERT_TRUE(spec.validate().ok()) << c.option;
    const Status st = cudnn_host::check_spec_support(spec);
    EXPECT_EQ(st.code(), StatusCode::kNotSupported) << c.option;
    EXPECT_NE(st.message().find(c.option), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("backend cudnn"), std::string::npos) << st.message();
  }
}

TEST(CudnnSupport, AcceptsWhatCudnnExpresses) {
  LstmSpec spec = small_spec();
  spec.hidden_size = 8;
  spec.proj_size = 4;
  spec.num_layers = 3;
  spec.cell_clip = 2.0f;
  spec.layout = BatchLayout::kBatchMajor;
  for (Direction d : {Direction::kForward, Direction::kReverse, Direction::kBidirectional}) {
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (bool bias : {true, false}) {
        spec.direction = d;
        spec.dtype = dt;
        spec.bias = bias;
        EXPECT_TRUE(cudnn_host::check_spec_support(spec).ok()) << spec.describe();
      }
    }
  }
}

TEST(CudnnSupport, ZeroLengthsAreNamed) {
  const std::int32_t ok[] = {3, 1, 2};
  EXPECT_TRUE(cudnn_host::check_lengths(ok, 3).ok());
  EXPECT_TRUE(cudnn_host::check_lengths(nullptr, 3).ok());
  const std::int32_t zero[] = {3, 1, 0, 0};
  const Status st = cudnn_host::check_lengths(zero, 4);
  EXPECT_EQ(st.code(), StatusCode::kNotSupported);
  EXPECT_NE(st.message().find("lengths[2] = 0"), std::string::npos) << st.message();
}

// Model::create refuses the options before it needs a GPU, so this runs on any machine built with cuDNN.
TEST(CudnnSupport, ModelCreateReportsNotSupportedOrUnavailable) {
  const bool built_with_cudnn = build_info().find("cudnn: not built") == std::string::npos;
  LstmSpec spec = small_spec();
  spec.peepholes = true;
  ModelOptions options;
  options.backend = Backend::kCudnn;
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, Weights::zeros_for(spec), options, &model);
  if (built_with_cudnn) {
    EXPECT_EQ(st.code(), StatusCode::kNotSupported) << st.to_string();
    EXPECT_NE(st.message().find("peepholes"), std::string::npos) << st.message();
  } else {
    EXPECT_EQ(st.code(), StatusCode::kBackendUnavailable) << st.to_string();
  }
  EXPECT_EQ(model, nullptr);
}

TEST(CudnnSupport, AlgoNamesAndOptionRange) {
  EXPECT_STREQ(cudnn_algo_name(CudnnAlgo::kAuto), "auto");
  EXPECT_STREQ(cudnn_algo_name(CudnnAlgo::kStandard), "standard");
  EXPECT_STREQ(cudnn_algo_name(CudnnAlgo::kPersistStatic), "persist_static");
  EXPECT_STREQ(cudnn_algo_name(CudnnAlgo::kPersistStaticSmallH), "persist_static_small_h");
  EXPECT_STREQ(cudnn_algo_name(CudnnAlgo::kPersistDynamic), "persist_dynamic");
  EXPECT_EQ(ModelOptions{}.cudnn_algo, CudnnAlgo::kAuto);
  LstmSpec spec = small_spec();
  ModelOptions options;
  options.backend = Backend::kReference;
  options.cudnn_algo = static_cast<CudnnAlgo>(9);
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, Weights::zeros_for(spec), options, &model);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("options.cudnn_algo"), std::string::npos) << st.message();
}

// ---------------------------------------------------------------------------------------------------------------
// Under the caller's stream capture, forward refuses work it would do for the first time (cudnn_backend.cpp
// decides what that is; the GPU half is CudnnBackendGpu.StreamCapture and .PersistDynamicUnderCapture).

TEST(CudnnCapture, NothingToDoFirstOrNoCaptureIsOk) {
  cudnn_host::FirstUse both;
  both.tuning = both.dynamic_build = true;
  EXPECT_TRUE(cudnn_host::check_capture(false, both, CudnnAlgo::kAuto, 8, 16).ok());
  for (CudnnAlgo algo : {CudnnAlgo::kAuto, CudnnAlgo::kStandard, CudnnAlgo::kPersistDynamic}) {
    EXPECT_TRUE(cudnn_host::check_capture(true, cudnn_host::FirstUse{}, algo, 8, 16).ok()) << cudnn_algo_name(algo);
  }
}

TEST(CudnnCapture, AutoTuningUnderCaptureIsRefusedNamingTheShape) {
  cudnn_host::FirstUse first;
  first.tuning = true;
  const Status st = cudnn_host::check_capture(true, first, CudnnAlgo::kAuto, 8, 16);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("auto times the algorithms"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("B=8 T=16"), std::string::npos) << st.message();
}

TEST(CudnnCapture, PersistDynamicBuildUnderCaptureIsRefusedNamingTheBatchAndWhoChoseIt) {
  cudnn_host::FirstUse first;
  first.dynamic_build = true;
  const Status explicit_algo = cudnn_host::check_capture(true, first, CudnnAlgo::kPersistDynamic, 5, 40);
  EXPECT_EQ(explicit_algo.code(), StatusCode::kInvalidArgument) << explicit_algo.to_string();
  EXPECT_NE(explicit_algo.message().find("persist_dynamic (options.cudnn_algo)"), std::string::npos)
      << explicit_algo.message();
  EXPECT_NE(explicit_algo.message().find("cudnnBuildRNNDynamic"), std::string::npos) << explicit_algo.message();
  EXPECT_NE(explicit_algo.message().find("run B=5 once on this Context before capturing"), std::string::npos)
      << explicit_algo.message();
  const Status auto_choice = cudnn_host::check_capture(true, first, CudnnAlgo::kAuto, 5, 40);
  EXPECT_EQ(auto_choice.code(), StatusCode::kInvalidArgument) << auto_choice.to_string();
  EXPECT_NE(auto_choice.message().find("persist_dynamic (auto's choice for this shape)"), std::string::npos)
      << auto_choice.message();
}

#if CULSTM_WITH_CUDNN
// How a cuDNN status reads (internal/cudnn/cudnn_status.h): a plain BAD_PARAM is a refusal from a persistent algorithm
// (its limits), but an error from STANDARD, which takes whatever the RNN API can express; misuse sub-codes and
// the environment's failures are never refusals.
TEST(CudnnStatus, BadParamFromStandardIsAnErrorNotARefusal) {
  const cudnnRNNAlgo_t standard = CUDNN_RNN_ALGO_STANDARD;
  const cudnnRNNAlgo_t persistent[] = {CUDNN_RNN_ALGO_PERSIST_STATIC, CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H,
                                       CUDNN_RNN_ALGO_PERSIST_DYNAMIC};
  for (cudnnStatus_t plain : {CUDNN_STATUS_BAD_PARAM, static_cast<cudnnStatus_t>(2001) /* INVALID_VALUE */,
                              CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND}) {
    EXPECT_FALSE(cudnn_status::refused(plain, standard)) << static_cast<int>(plain);
    for (cudnnRNNAlgo_t algo : persistent) {
      EXPECT_TRUE(cudnn_status::refused(plain, algo)) << static_cast<int>(plain) << " algo " << algo;
    }
  }
}

TEST(CudnnStatus, NotSupportedIsARefusalForEveryAlgorithm) {
  for (cudnnRNNAlgo_t algo : {CUDNN_RNN_ALGO_STANDARD, CUDNN_RNN_ALGO_PERSIST_STATIC,
                              CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H, CUDNN_RNN_ALGO_PERSIST_DYNAMIC}) {
    for (cudnnStatus_t st : {CUDNN_STATUS_NOT_SUPPORTED, CUDNN_STATUS_NOT_SUPPORTED_SHAPE,
                             CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE, CUDNN_STATUS_NOT_SUPPORTED_LAYOUT,
                             CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT}) {
      EXPECT_TRUE(cudnn_status::refused(st, algo)) << static_cast<int>(st) << " algo " << algo;
      EXPECT_FALSE(cudnn_status::environment_failure(st)) << static_cast<int>(st);
    }
  }
}

TEST(CudnnStatus, MisuseFailuresAndTheEnvironmentAreNeverRefusals) {
  const cudnnStatus_t never[] = {
      CUDNN_STATUS_SUCCESS,  // not a refusal either: nothing was refused
      CUDNN_STATUS_BAD_PARAM_NULL_POINTER, CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER,
      CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH, CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH,
      CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT, CUDNN_STATUS_INTERNAL_ERROR, CUDNN_STATUS_EXECUTION_FAILED,
      CUDNN_STATUS_NOT_INITIALIZED, CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED,
      CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER, CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART,
      CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH, CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE};
  for (cudnnRNNAlgo_t algo : {CUDNN_RNN_ALGO_STANDARD, CUDNN_RNN_ALGO_PERSIST_STATIC,
                              CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H, CUDNN_RNN_ALGO_PERSIST_DYNAMIC}) {
    for (cudnnStatus_t st : never) EXPECT_FALSE(cudnn_status::refused(st, algo)) << static_cast<int>(st);
  }
  for (cudnnStatus_t st : {CUDNN_STATUS_NOT_INITIALIZED, CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED,
                           CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER,
                           CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH}) {
    EXPECT_TRUE(cudnn_status::environment_failure(st)) << static_cast<int>(st);
  }
  EXPECT_FALSE(cudnn_status::environment_failure(CUDNN_STATUS_BAD_PARAM));
}
#endif  // CULSTM_WITH_CUDNN

}  // namespace
}  // namespace culstm
