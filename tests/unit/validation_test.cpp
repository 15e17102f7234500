// The bad-input table (docs/design.md §4): every bad argument gets its own status code, a message naming the argument,
// and leaves the outputs untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "test_util.h"

namespace culstm {
namespace {

using testing_util::make_reference_model;
using testing_util::random_weights;

// A valid 2-layer bidirectional projection model and valid arguments; each case breaks one thing.
struct Fixture {
  static constexpr std::int64_t T = 5, B = 3;
  LstmSpec spec;
  std::shared_ptr<const Model> model;
  std::vector<float> x, h0, c0, y, h_n, c_n;
  std::vector<std::int32_t> lengths{5, 0, 2};
  std::vector<std::uint8_t> workspace;
  ForwardArgs args;

  Fixture() {
    spec.input_size = 4;
    spec.hidden_size = 6;
    spec.proj_size = 3;
    spec.num_layers = 2;
    spec.direction = Direction::kBidirectional;
    std::mt19937 rng(7);
    model = make_reference_model(spec, random_weights(spec, rng), /*max_batch=*/8, /*max_seq=*/16);
    x = testing_util::random_values(T * B * 4, rng);
    h0 = testing_util::random_values(4 * B * 3, rng);
    c0 = testing_util::random_values(4 * B * 6, rng);
    y.assign(T * B * 6, 42.0f);
    h_n.assign(4 * B * 3, 42.0f);
    c_n.assign(4 * B * 6, 42.0f);
    std::size_t bytes = 0;
    EXPECT_TRUE(model->workspace_size(B, T, &bytes).ok());
    workspace.resize(bytes);
    EXPECT_GE(bytes, y.size() * sizeof(float));  // the cases that move a tensor into the workspace need the room
    args.x = TensorView::host(x.data(), DType::kF32, {T, B, 4});
    args.lengths = TensorView::host(lengths.data(), DType::kI32, {B});
    args.h0 = TensorView::host(h0.data(), DType::kF32, {4, B, 3});
    args.c0 = TensorView::host(c0.data(), DType::kF32, {4, B, 6});
    args.y = TensorView::host(y.data(), DType::kF32, {T, B, 6});
    args.h_n = TensorView::host(h_n.data(), DType::kF32, {4, B, 3});
    args.c_n = TensorView::host(c_n.data(), DType::kF32, {4, B, 6});
    args.workspace = workspace.data();
    args.workspace_bytes = workspace.size();
  }

  Status run() {
    std::unique_ptr<Context> ctx;
    Status st = Context::create(*model, &ctx);
    if (!st.ok()) return st;
    return forward(*ctx, *model, args);
  }

  bool outputs_untouched() const {
    auto all42 = [](const std::vector<float>& v) {
      for (float f : v) {
        if (f != 42.0f) return false;
      }
      return true;
    };
    return all42(y) && all42(h_n) && all42(c_n);
  }
};

struct BadForwardCase {
  const char* name;
  std::function<void(Fixture&)> corrupt;
  StatusCode expected;
  const char* message_mentions;
};

class BadForwardArgs : public ::testing::TestWithParam<BadForwardCase> {};

TEST_P(BadForwardArgs, GetsSpecificStatusAndLeavesOutputsUntouched) {
  const BadForwardCase& c = GetParam();
  Fixture f;
  c.corrupt(f);
  const Status st = f.run();
  EXPECT_EQ(st.code(), c.expected) << st.to_string();
  EXPECT_NE(st.message().find(c.message_mentions), std::string::npos) << st.message();
  EXPECT_TRUE(f.outputs_untouched());
}

std::vector<BadForwardCase> bad_forward_cases() {
  using F = Fixture;
  std::vector<BadForwardCase> v = {
      {"x_null", [](F& f) { f.args.x.data = nullptr; }, StatusCode::kNullPointer, "x"},
      {"x_absent", [](F& f) { f.args.x = TensorView(); }, StatusCode::kNullPointer, "x"},
      {"x_rank2",
       [](F& f) {
         f.args.x = TensorView::host(f.x.data(), DType::kF32, {F::T * F::B, 4});
       },
       StatusCode::kShapeMismatch, "x"},
      {"x_wrong_features", [](F& f) { f.args.x.shape[2] = 5; }, StatusCode::kShapeMismatch, "x"},
      {"x_wrong_dtype", [](F& f) { f.args.x.dtype = DType::kF16; }, StatusCode::kDtypeMismatch, "x"},
      {"x_on_device", [](F& f) { f.args.x.memory = MemoryKind::kDevice; }, StatusCode::kDeviceMismatch, "x"},
      {"x_zero_steps", [](F& f) { f.args.x.shape[0] = 0; }, StatusCode::kShapeMismatch, "seq_len"},
      {"x_empty_batch_without_data",
       [](F& f) {
         f.args.x.shape[1] = 0;
         f.args.x.data = nullptr;
       },
       StatusCode::kShapeMismatch, "batch: expected >= 1, got 0"},
      {"x_empty_steps_without_data",
       [](F& f) {
         f.args.x.shape[0] = 0;
         f.args.x.data = nullptr;
       },
       StatusCode::kShapeMismatch, "seq_len: expected >= 1, got 0"},
      {"batch_above_max", [](F& f) { f.args.x.shape[1] = 9; }, StatusCode::kExceedsModelLimit, "max_batch"},
      {"seq_above_max", [](F& f) { f.args.x.shape[0] = 17; }, StatusCode::kExceedsModelLimit, "max_seq_len"},
      {"length_negative", [](F& f) { f.lengths[1] = -1; }, StatusCode::kLengthOutOfRange, "lengths[1]"},
      {"length_above_T", [](F& f) { f.lengths[2] = 6; }, StatusCode::kLengthOutOfRange, "lengths[2]"},
      {"lengths_wrong_count", [](F& f) { f.args.lengths.shape[0] = 2; }, StatusCode::kShapeMismatch, "lengths"},
      {"lengths_i64", [](F& f) { f.args.lengths.dtype = DType::kI64; }, StatusCode::kDtypeMismatch, "lengths"},
      {"lengths_null_with_shape", [](F& f) { f.args.lengths.data = nullptr; }, StatusCode::kNullPointer, "lengths"},
      {"lengths_on_device", [](F& f) { f.args.lengths.memory = MemoryKind::kDevice; }, StatusCode::kDeviceMismatch,
       "lengths"},
      {"h0_wrong_rows", [](F& f) { f.args.h0.shape[0] = 2; }, StatusCode::kShapeMismatch, "h0"},
      {"h0_hidden_instead_of_proj", [](F& f) { f.args.h0.shape[2] = 6; }, StatusCode::kShapeMismatch, "h0"},
      {"h0_null_with_shape", [](F& f) { f.args.h0.data = nullptr; }, StatusCode::kNullPointer, "h0"},
      {"c0_wrong_batch", [](F& f) { f.args.c0.shape[1] = 2; }, StatusCode::kShapeMismatch, "c0"},
      {"c0_wrong_dtype", [](F& f) { f.args.c0.dtype = DType::kBF16; }, StatusCode::kDtypeMismatch, "c0"},
      {"y_wrong_features", [](F& f) { f.args.y.shape[2] = 3; }, StatusCode::kShapeMismatch, "y"},
      {"y_batch_major_shape_for_seq_major",
       [](F& f) {
         f.args.y = TensorView::host(f.y.data(), DType::kF32, {F::B, F::T, 6});
       },
       StatusCode::kShapeMismatch, "y"},
      {"y_on_device", [](F& f) { f.args.y.memory = MemoryKind::kDevice; }, StatusCode::kDeviceMismatch, "y"},
      {"h_n_wrong_rank", [](F& f) { f.args.h_n = TensorView::host(f.h_n.data(), DType::kF32, {4 * F::B * 3}); },
       StatusCode::kShapeMismatch, "h_n"},
      {"c_n_wrong_dtype", [](F& f) { f.args.c_n.dtype = DType::kF64; }, StatusCode::kDtypeMismatch, "c_n"},
      {"workspace_too_small", [](F& f) { f.args.workspace_bytes -= 1; }, StatusCode::kWorkspaceTooSmall,
       "workspace_bytes"},
      {"workspace_null", [](F& f) { f.args.workspace = nullptr; }, StatusCode::kNullPointer, "workspace"},
      {"y_aliases_x", [](F& f) { f.args.x.data = f.y.data(); }, StatusCode::kInvalidArgument, "overlaps input x"},
      {"h_n_aliases_h0", [](F& f) { f.args.h0.data = f.h_n.data(); }, StatusCode::kInvalidArgument,
       "overlaps input h0"},
      {"c_n_overlaps_y", [](F& f) { f.args.c_n.data = f.y.data() + 1; }, StatusCode::kInvalidArgument,
       "overlaps output"},
      // The tensor is moved into the workspace (which is larger), so a missed check writes no memory it does not own.
      {"y_inside_workspace", [](F& f) { f.args.y.data = f.workspace.data() + f.workspace.size() - f.y.size() * 4; },
       StatusCode::kInvalidArgument, "workspace: its first"},
      {"x_inside_workspace", [](F& f) { f.args.x.data = f.workspace.data() + 8; }, StatusCode::kInvalidArgument,
       "overlap x"},
      {"c0_in_workspace",
       [](F& f) {
         std::memcpy(f.workspace.data(), f.c0.data(), f.c0.size() * 4);
         f.args.c0.data = f.workspace.data();
       },
       StatusCode::kInvalidArgument, "overlap c0"},
      {"x_rank5",
       [](F& f) {
         f.args.x = TensorView::host(f.x.data(), DType::kF32, {1, F::T, F::B, 4, 1});
       },
       StatusCode::kShapeMismatch, "x"},
  };
  return v;
}

INSTANTIATE_TEST_SUITE_P(Table, BadForwardArgs, ::testing::ValuesIn(bad_forward_cases()),
                         [](const ::testing::TestParamInfo<BadForwardCase>& info) { return info.param.name; });

TEST(BadForwardArgs, ValidFixtureRuns) {
  Fixture f;
  const Status st = f.run();
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_FALSE(f.outputs_untouched());
}

TEST(BadForwardArgs, ContextServesAnotherModelOfTheSameBackend) {
  // A Context belongs to a backend and device, not to one Model.
  Fixture a, b;
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*a.model, &ctx).ok());
  EXPECT_TRUE(forward(*ctx, *b.model, b.args).ok());
}

// --- Model::create, workspace_size and LstmSpec::validate -------------------------------------------------------

struct BadSpecCase {
  const char* name;
  std::function<void(LstmSpec&)> corrupt;
  StatusCode expected;
  const char* message_mentions;
};

class BadSpec : public ::testing::TestWithParam<BadSpecCase> {};

LstmSpec valid_spec() {
  LstmSpec s;
  s.input_size = 4;
  s.hidden_size = 6;
  return s;
}

TEST_P(BadSpec, ValidateNamesTheField) {
  const BadSpecCase& c = GetParam();
  LstmSpec spec = valid_spec();
  c.corrupt(spec);
  const Status st = spec.validate();
  EXPECT_EQ(st.code(), c.expected) << st.to_string();
  EXPECT_NE(st.message().find(c.message_mentions), std::string::npos) << st.message();
  // Model::create reports the same problem.
  std::shared_ptr<const Model> model;
  const Status created = Model::create(spec, Weights(), ModelOptions{}, &model);
  EXPECT_EQ(created.code(), c.expected);
  EXPECT_EQ(model, nullptr);
}

std::vector<BadSpecCase> bad_spec_cases() {
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"input_size_zero", [](LstmSpec& s) { s.input_size = 0; }, StatusCode::kInvalidSpec, "input_size"},
      {"hidden_size_negative", [](LstmSpec& s) { s.hidden_size = -3; }, StatusCode::kInvalidSpec, "hidden_size"},
      {"proj_equal_hidden", [](LstmSpec& s) { s.proj_size = 6; }, StatusCode::kInvalidSpec, "proj_size"},
      {"proj_negative", [](LstmSpec& s) { s.proj_size = -1; }, StatusCode::kInvalidSpec, "proj_size"},
      {"layers_zero", [](LstmSpec& s) { s.num_layers = 0; }, StatusCode::kInvalidSpec, "num_layers"},
      {"direction_out_of_enum", [](LstmSpec& s) { s.direction = static_cast<Direction>(7); }, StatusCode::kInvalidSpec,
       "direction"},
      {"layout_out_of_enum", [](LstmSpec& s) { s.layout = static_cast<BatchLayout>(2); }, StatusCode::kInvalidSpec,
       "layout"},
      {"gate_activation_unknown", [](LstmSpec& s) { s.gate_activation.kind = static_cast<ActivationKind>(42); },
       StatusCode::kInvalidSpec, "gate_activation"},
      {"cell_activation_nan_alpha",
       [](LstmSpec& s) { s.cell_activation = Activation::scaled_tanh(std::nanf(""), 1.0f); }, StatusCode::kInvalidSpec,
       "cell_activation"},
      {"gate_clip_zero", [](LstmSpec& s) { s.gate_clip = 0.0f; }, StatusCode::kInvalidSpec, "gate_clip"},
      {"cell_clip_infinite", [inf](LstmSpec& s) { s.cell_clip = inf; }, StatusCode::kInvalidSpec, "cell_clip"},
      {"dtype_integer", [](LstmSpec& s) { s.dtype = DType::kI32; }, StatusCode::kInvalidSpec, "dtype"},
      {"tf32_with_f16",
       [](LstmSpec& s) {
         s.dtype = DType::kF16;
         s.math = MathMode::kAllowTF32;
       },
       StatusCode::kUnsupportedCombination, "allow_tf32"},
      {"weights_too_large",
       [](LstmSpec& s) {
         s.hidden_size = 1 << 20;
         s.input_size = 1 << 20;
       },
       StatusCode::kInvalidSpec, "exceeds"},
  };
}

INSTANTIATE_TEST_SUITE_P(Table, BadSpec, ::testing::ValuesIn(bad_spec_cases()),
                         [](const ::testing::TestParamInfo<BadSpecCase>& info) { return info.param.name; });

TEST(ModelCreate, RejectsWeightsOfTheWrongShape) {
  LstmSpec spec = valid_spec();
  Weights w = Weights::zeros_for(spec);
  w.at(0, 0).w_hh.pop_back();
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, w, ModelOptions{}, &model);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(st.message().find("w_hh"), std::string::npos) << st.message();
}

TEST(ModelCreate, RejectsWeightsForAnotherLayerCount) {
  LstmSpec spec = valid_spec();
  LstmSpec two = spec;
  two.num_layers = 2;
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, Weights::zeros_for(two), ModelOptions{}, &model);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(st.message().find("layers"), std::string::npos) << st.message();
}

TEST(ModelCreate, RejectsNonFiniteWeights) {
  LstmSpec spec = valid_spec();
  Weights w = Weights::zeros_for(spec);
  w.at(0, 0).b_ih[3] = std::nanf("");
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, w, ModelOptions{}, &model);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("b_ih[3]"), std::string::npos) << st.message();
}

TEST(ModelCreate, RejectsPeepholesMissingFromWeights) {
  LstmSpec spec = valid_spec();
  Weights w = Weights::zeros_for(spec);
  spec.peepholes = true;
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, w, ModelOptions{}, &model);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(st.message().find("peephole"), std::string::npos) << st.message();
}

TEST(ModelCreate, RejectsBadOptions) {
  LstmSpec spec = valid_spec();
  const Weights w = Weights::zeros_for(spec);
  std::shared_ptr<const Model> model;
  ModelOptions o;
  o.max_batch = 0;
  EXPECT_EQ(Model::create(spec, w, o, &model).code(), StatusCode::kInvalidArgument);
  o = ModelOptions{};
  o.max_seq_len = -5;
  EXPECT_EQ(Model::create(spec, w, o, &model).code(), StatusCode::kInvalidArgument);
  o = ModelOptions{};
  o.backend = static_cast<Backend>(9);
  EXPECT_EQ(Model::create(spec, w, o, &model).code(), StatusCode::kInvalidArgument);
  o = ModelOptions{};
  o.device = -1;
  EXPECT_EQ(Model::create(spec, w, o, &model).code(), StatusCode::kInvalidArgument);
  o = ModelOptions{};
  o.cuda_engine = static_cast<CudaEngine>(3);
  const Status engine = Model::create(spec, w, o, &model);
  EXPECT_EQ(engine.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(engine.message().find("options.cuda_engine"), std::string::npos) << engine.message();
  o.cuda_engine = static_cast<CudaEngine>(-1);
  EXPECT_EQ(Model::create(spec, w, o, &model).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model, nullptr);
  EXPECT_EQ(Model::create(spec, w, ModelOptions{}, nullptr).code(), StatusCode::kNullPointer);
}

// system_info() (what `culstm info` prints and Python's culstm.info() returns) is build_info(), then the GPU count
// and every backend's availability as cuda_device_count and backend_available answer them, one line each.
TEST(SystemInfo, BuildInfoThenGpusThenEveryBackend) {
  const std::string info = system_info();
  const std::string build = build_info();
  ASSERT_EQ(info.compare(0, build.size(), build), 0) << info;
  const std::string rest = info.substr(build.size());
  std::string why;
  const int devices = cuda_device_count(&why);
  std::string expected = devices == 0 ? "gpus: none (" + why + ")\n" : "gpus: " + std::to_string(devices) + "\n";
  expected += "backend reference available\n";
  why.clear();
  expected += backend_available(Backend::kCuda, &why) ? "backend cuda      available\n"
                                                      : "backend cuda      unavailable: " + why + "\n";
  why.clear();
  expected += backend_available(Backend::kCudnn, &why) ? "backend cudnn     available\n"
                                                       : "backend cudnn     unavailable: " + why + "\n";
  EXPECT_EQ(rest, expected);
}

TEST(ModelCreate, GpuBackendsSayWhyTheyCannotRunHere) {
  std::string why;
  if (backend_available(Backend::kCuda, &why)) GTEST_SKIP() << "a CUDA device is present; covered by the GPU tests";
  LstmSpec spec = valid_spec();
  std::shared_ptr<const Model> model;
  ModelOptions o;
  o.backend = Backend::kCuda;
  const Status st = Model::create(spec, Weights::zeros_for(spec), o, &model);
  EXPECT_EQ(st.code(), StatusCode::kBackendUnavailable) << st.to_string();
  EXPECT_NE(st.message().find("cuda"), std::string::npos);
  o.backend = Backend::kCudnn;
  EXPECT_EQ(Model::create(spec, Weights::zeros_for(spec), o, &model).code(), StatusCode::kBackendUnavailable);
  // auto falls back to the reference and says so.
  o.backend = Backend::kAuto;
  ASSERT_TRUE(Model::create(spec, Weights::zeros_for(spec), o, &model).ok());
  EXPECT_EQ(model->backend(), Backend::kReference);
}

TEST(WorkspaceSize, ChecksLimitsAndPointer) {
  LstmSpec spec = valid_spec();
  std::mt19937 rng(1);
  auto model = make_reference_model(spec, random_weights(spec, rng), 4, 10);
  std::size_t bytes = 0;
  EXPECT_EQ(model->workspace_size(5, 3, &bytes).code(), StatusCode::kExceedsModelLimit);
  EXPECT_EQ(model->workspace_size(2, 11, &bytes).code(), StatusCode::kExceedsModelLimit);
  EXPECT_EQ(model->workspace_size(0, 3, &bytes).code(), StatusCode::kShapeMismatch);
  EXPECT_EQ(model->workspace_size(2, 3, nullptr).code(), StatusCode::kNullPointer);
  ASSERT_TRUE(model->workspace_size(2, 3, &bytes).ok());
  std::size_t bigger = 0;
  ASSERT_TRUE(model->workspace_size(4, 10, &bigger).ok());
  EXPECT_GT(bigger, bytes);
}

TEST(Status, NamesAndFormatting) {
  const Status st(StatusCode::kShapeMismatch, "x: expected [1], got [2]");
  EXPECT_EQ(st.to_string(), "ShapeMismatch: x: expected [1], got [2]");
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_STREQ(status_code_name(StatusCode::kLengthOutOfRange), "LengthOutOfRange");
  EXPECT_EQ(Status().to_string(), "Ok");
}

}  // namespace
}  // namespace culstm
