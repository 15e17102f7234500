// The C API against the C++ API: the same spec, weights and inputs give the same output bits, for several specs
// and dtypes; and the last-error message is per thread. (tests/unit/c_api_test.c exercises the C API from C.)
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "culstm/culstm.h"
#include "culstm/culstm.hpp"
#include "io/array.h"
#include "test_util.h"

namespace culstm {
namespace {

using testing_util::random_values;
using testing_util::random_weights;
using testing_util::state_rows;

// f32 values as a `dtype` tensor in memory (and back): io::Array rounds as the .npy writer and the reference do.
std::vector<std::uint8_t> encode(const std::vector<float>& values, DType dtype) {
  return io::Array::from_f32(values, {static_cast<std::int64_t>(values.size())}, dtype).bytes;
}

culstm_spec_t* c_spec_from(const LstmSpec& s) {
  culstm_spec_t* spec = nullptr;
  EXPECT_EQ(culstm_spec_create(&spec), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_input_size(spec, s.input_size), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_hidden_size(spec, s.hidden_size), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_proj_size(spec, s.proj_size), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_num_layers(spec, s.num_layers), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_direction(spec, static_cast<culstm_direction_t>(s.direction)), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_bias(spec, s.bias), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_layout(spec, static_cast<culstm_layout_t>(s.layout)), CULSTM_STATUS_OK);
  const auto act = [](const Activation& a) { return static_cast<culstm_activation_t>(a.kind); };
  EXPECT_EQ(culstm_spec_set_gate_activation(spec, act(s.gate_activation), s.gate_activation.alpha,
                                            s.gate_activation.beta),
            CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_cell_activation(spec, act(s.cell_activation), s.cell_activation.alpha,
                                            s.cell_activation.beta),
            CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_hidden_activation(spec, act(s.hidden_activation), s.hidden_activation.alpha,
                                              s.hidden_activation.beta),
            CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_gate_clip(spec, s.gate_clip.value_or(0.0f)), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_cell_clip(spec, s.cell_clip.value_or(0.0f)), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_peepholes(spec, s.peepholes), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_input_forget(spec, s.input_forget), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_dtype(spec, static_cast<culstm_dtype_t>(s.dtype)), CULSTM_STATUS_OK);
  EXPECT_EQ(culstm_spec_set_math_mode(spec, static_cast<culstm_math_mode_t>(s.math)), CULSTM_STATUS_OK);
  return spec;
}

culstm_weights_t* c_weights_from(const culstm_spec_t* spec, const Weights& w) {
  culstm_weights_t* out = nullptr;
  EXPECT_EQ(culstm_weights_create(spec, &out), CULSTM_STATUS_OK) << culstm_last_error();
  for (int l = 0; l < w.num_layers(); ++l) {
    for (int d = 0; d < w.num_directions(); ++d) {
      const LayerWeights& lw = w.at(l, d);
      const std::pair<culstm_weight_t, const std::vector<float>*> tensors[] = {
          {CULSTM_WEIGHT_W_IH, &lw.w_ih}, {CULSTM_WEIGHT_W_HH, &lw.w_hh}, {CULSTM_WEIGHT_B_IH, &lw.b_ih},
          {CULSTM_WEIGHT_B_HH, &lw.b_hh}, {CULSTM_WEIGHT_W_HR, &lw.w_hr}, {CULSTM_WEIGHT_PEEPHOLE, &lw.peephole}};
      for (const auto& t : tensors) {
        EXPECT_EQ(culstm_weights_set(out, l, d, t.first, t.second->data(), t.second->size()), CULSTM_STATUS_OK)
            << culstm_last_error();
      }
    }
  }
  return out;
}

struct Outputs {
  std::vector<std::uint8_t> y, h_n, c_n;
};

void crosscheck(const LstmSpec& spec, std::int64_t T, std::int64_t B, std::uint32_t seed) {
  SCOPED_TRACE(spec.describe());
  std::mt19937 rng(seed);
  const Weights weights = random_weights(spec, rng);
  const std::int64_t LD = state_rows(spec), R = spec.recurrent_size(), H = spec.hidden_size, Y = spec.output_size();
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  const std::vector<std::uint8_t> x = encode(random_values(static_cast<std::size_t>(T * B * spec.input_size), rng),
                                             spec.dtype);
  const std::vector<std::uint8_t> h0 = encode(random_values(static_cast<std::size_t>(LD * B * R), rng), spec.dtype);
  const std::vector<std::uint8_t> c0 = encode(random_values(static_cast<std::size_t>(LD * B * H), rng), spec.dtype);
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) lengths[b] = static_cast<std::int32_t>((b * 3 + 1) % (T + 1));
  const std::size_t es = dtype_size(spec.dtype);

  // C++.
  ModelOptions options;
  options.backend = Backend::kReference;
  std::shared_ptr<const Model> model;
  ASSERT_TRUE(Model::create(spec, weights, options, &model).ok());
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  std::size_t bytes = 0;
  ASSERT_TRUE(model->workspace_size(B, T, &bytes).ok());
  std::vector<std::uint8_t> workspace(bytes);
  Outputs cpp{std::vector<std::uint8_t>(static_cast<std::size_t>(T * B * Y) * es, 0xAB),
              std::vector<std::uint8_t>(static_cast<std::size_t>(LD * B * R) * es, 0xAB),
              std::vector<std::uint8_t>(static_cast<std::size_t>(LD * B * H) * es, 0xAB)};
  ForwardArgs args;
  args.x = batch_major ? TensorView::host(x.data(), spec.dtype, {B, T, spec.input_size})
                       : TensorView::host(x.data(), spec.dtype, {T, B, spec.input_size});
  args.lengths = TensorView::host(lengths.data(), DType::kI32, {B});
  args.h0 = TensorView::host(h0.data(), spec.dtype, {LD, B, R});
  args.c0 = TensorView::host(c0.data(), spec.dtype, {LD, B, H});
  args.y = batch_major ? TensorView::host(cpp.y.data(), spec.dtype, {B, T, Y})
                       : TensorView::host(cpp.y.data(), spec.dtype, {T, B, Y});
  args.h_n = TensorView::host(cpp.h_n.data(), spec.dtype, {LD, B, R});
  args.c_n = TensorView::host(cpp.c_n.data(), spec.dtype, {LD, B, H});
  args.workspace = workspace.data();
  args.workspace_bytes = bytes;
  args.padding_value = -2.5f;
  const Status st = forward(*ctx, *model, args);
  ASSERT_TRUE(st.ok()) << st.to_string();

  // C.
  culstm_spec_t* c_spec = c_spec_from(spec);
  culstm_weights_t* c_weights = c_weights_from(c_spec, weights);
  culstm_model_options_t c_options = culstm_model_options_default();
  c_options.backend = CULSTM_BACKEND_REFERENCE;
  culstm_model_t* c_model = nullptr;
  ASSERT_EQ(culstm_model_create(c_spec, c_weights, &c_options, &c_model), CULSTM_STATUS_OK) << culstm_last_error();
  culstm_context_t* c_ctx = nullptr;
  ASSERT_EQ(culstm_context_create(c_model, &c_ctx), CULSTM_STATUS_OK);
  std::size_t c_bytes = 0;
  ASSERT_EQ(culstm_model_workspace_size(c_model, B, T, &c_bytes), CULSTM_STATUS_OK);
  EXPECT_EQ(c_bytes, bytes);
  Outputs c{std::vector<std::uint8_t>(cpp.y.size(), 0xCD), std::vector<std::uint8_t>(cpp.h_n.size(), 0xCD),
            std::vector<std::uint8_t>(cpp.c_n.size(), 0xCD)};
  const auto dt = static_cast<culstm_dtype_t>(spec.dtype);
  culstm_forward_args_t c_args;
  std::memset(&c_args, 0, sizeof c_args);
  c_args.x = batch_major ? culstm_tensor_3d(x.data(), dt, CULSTM_MEMORY_HOST, B, T, spec.input_size)
                         : culstm_tensor_3d(x.data(), dt, CULSTM_MEMORY_HOST, T, B, spec.input_size);
  c_args.lengths = culstm_tensor_1d(lengths.data(), CULSTM_DTYPE_I32, CULSTM_MEMORY_HOST, B);
  c_args.h0 = culstm_tensor_3d(h0.data(), dt, CULSTM_MEMORY_HOST, LD, B, R);
  c_args.c0 = culstm_tensor_3d(c0.data(), dt, CULSTM_MEMORY_HOST, LD, B, H);
  c_args.y = batch_major ? culstm_tensor_3d(c.y.data(), dt, CULSTM_MEMORY_HOST, B, T, Y)
                         : culstm_tensor_3d(c.y.data(), dt, CULSTM_MEMORY_HOST, T, B, Y);
  c_args.h_n = culstm_tensor_3d(c.h_n.data(), dt, CULSTM_MEMORY_HOST, LD, B, R);
  c_args.c_n = culstm_tensor_3d(c.c_n.data(), dt, CULSTM_MEMORY_HOST, LD, B, H);
  std::vector<std::uint8_t> c_workspace(c_bytes);
  c_args.workspace = c_workspace.data();
  c_args.workspace_bytes = c_bytes;
  c_args.padding_value = -2.5f;
  ASSERT_EQ(culstm_forward(c_ctx, c_model, &c_args, nullptr), CULSTM_STATUS_OK) << culstm_last_error();

  EXPECT_TRUE(c.y == cpp.y) << "y differs";
  EXPECT_TRUE(c.h_n == cpp.h_n) << "h_n differs";
  EXPECT_TRUE(c.c_n == cpp.c_n) << "c_n differs";
  EXPECT_EQ(std::string(culstm_model_explain(c_model)), model->plan().explain());
  char describe[512];
  culstm_spec_describe(culstm_model_spec(c_model), describe, sizeof describe);
  EXPECT_EQ(std::string(describe), spec.describe());

  culstm_context_destroy(c_ctx);
  culstm_model_destroy(c_model);
  culstm_weights_destroy(c_weights);
  culstm_spec_destroy(c_spec);
}

TEST(CApiCrossCheckTest, BidirectionalProjectionPeepholes) {
  LstmSpec s;
  s.input_size = 6;
  s.hidden_size = 8;
  s.proj_size = 5;
  s.num_layers = 2;
  s.direction = Direction::kBidirectional;
  s.peepholes = true;
  crosscheck(s, 7, 4, 1);
}

TEST(CApiCrossCheckTest, ReverseBatchMajorClipsActivations) {
  LstmSpec s;
  s.input_size = 3;
  s.hidden_size = 5;
  s.direction = Direction::kReverse;
  s.layout = BatchLayout::kBatchMajor;
  s.bias = false;
  s.input_forget = true;
  s.gate_clip = 1.5f;
  s.cell_clip = 0.8f;
  s.gate_activation = Activation::hard_sigmoid(1.0f / 6.0f, 0.5f);
  s.cell_activation = Activation::scaled_tanh(1.2f, 0.9f);
  s.hidden_activation = Activation::softsign();
  crosscheck(s, 5, 3, 2);
}

TEST(CApiCrossCheckTest, Bf16AndF16) {
  LstmSpec s;
  s.input_size = 4;
  s.hidden_size = 6;
  s.num_layers = 2;
  s.dtype = DType::kBF16;
  crosscheck(s, 6, 3, 3);
  s.dtype = DType::kF16;
  s.direction = Direction::kBidirectional;
  crosscheck(s, 6, 3, 4);
}

TEST(CApiCrossCheckTest, LastErrorIsPerThread) {
  culstm_spec_t* spec = nullptr;
  ASSERT_EQ(culstm_spec_create(&spec), CULSTM_STATUS_OK);
  ASSERT_EQ(culstm_spec_validate(spec), CULSTM_STATUS_INVALID_SPEC);  // sizes are 0
  const std::string main_message = culstm_last_error();
  EXPECT_EQ(main_message.rfind("InvalidSpec: ", 0), 0u) << main_message;
  std::string other_before, other_after;
  std::thread other([&] {
    other_before = culstm_last_error();  // a new thread starts with no message
    culstm_weights_t* none = nullptr;
    EXPECT_EQ(culstm_weights_create(nullptr, &none), CULSTM_STATUS_NULL_POINTER);
    other_after = culstm_last_error();
  });
  other.join();
  EXPECT_EQ(other_before, "");
  EXPECT_EQ(other_after.rfind("NullPointer: spec", 0), 0u) << other_after;
  EXPECT_EQ(std::string(culstm_last_error()), main_message);  // untouched by the other thread
  EXPECT_EQ(culstm_spec_set_input_size(spec, 4), CULSTM_STATUS_OK);
  EXPECT_STREQ(culstm_last_error(), "");  // a success clears it
  culstm_spec_destroy(spec);
}

TEST(CApiCrossCheckTest, VersionMatchesCpp) {
  EXPECT_STREQ(culstm_version(), version());
  EXPECT_STREQ(culstm_version(), CULSTM_VERSION_STRING);
  for (int code = 0; code <= static_cast<int>(StatusCode::kInternal); ++code) {
    EXPECT_STREQ(culstm_status_name(static_cast<culstm_status_t>(code)),
                 status_code_name(static_cast<StatusCode>(code)));
  }
}

}  // namespace
}  // namespace culstm
