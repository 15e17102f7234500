// Importers (internal/io/import.h): each naming convention read back exactly into the canonical weights, convention
// detection, the .onnx reader, and one test per kind of bad input (corrupt, truncated, wrong dtype, wrong shape,
// missing tensor, unsupported option), each checking the StatusCode and that the message names the culprit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "io/array.h"
#include "io/import.h"
#include "io/import_internal.h"
#include "io/onnx.h"
#include "io/safetensors.h"
#include "io/weights_io.h"
#include "onnx_builder.h"
#include "test_util.h"

namespace culstm {
namespace io {
namespace {

namespace ob = testing_util::onnx_builder;
using Bytes = std::vector<std::uint8_t>;

::testing::AssertionResult HasError(const Status& st, StatusCode code, const std::string& needle) {
  if (st.ok()) return ::testing::AssertionFailure() << "expected " << status_code_name(code) << ", got ok";
  if (st.code() != code) return ::testing::AssertionFailure() << "wrong code: " << st.to_string();
  if (st.message().find(needle) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << needle << "': " << st.to_string();
  }
  return ::testing::AssertionSuccess();
}

void ExpectSameWeights(const LstmSpec& spec, const Weights& want, const Weights& got) {
  ASSERT_TRUE(got.check_against(spec).ok());
  for (int l = 0; l < spec.num_layers; ++l) {
    for (int d = 0; d < spec.num_directions(); ++d) {
      const LayerWeights& a = want.at(l, d);
      const LayerWeights& b = got.at(l, d);
      EXPECT_EQ(a.w_ih, b.w_ih) << "layer " << l << " dir " << d;
      EXPECT_EQ(a.w_hh, b.w_hh) << "layer " << l << " dir " << d;
      EXPECT_EQ(a.b_ih, b.b_ih) << "layer " << l << " dir " << d;
      EXPECT_EQ(a.b_hh, b.b_hh) << "layer " << l << " dir " << d;
      EXPECT_EQ(a.w_hr, b.w_hr) << "layer " << l << " dir " << d;
      EXPECT_EQ(a.peephole, b.peephole) << "layer " << l << " dir " << d;
    }
  }
}

LstmSpec make_spec(std::int64_t I, std::int64_t H, int L, Direction dir, bool bias = true) {
  LstmSpec s;
  s.input_size = I;
  s.hidden_size = H;
  s.num_layers = L;
  s.direction = dir;
  s.bias = bias;
  return s;
}

Array f32(const std::vector<float>& v, std::vector<std::int64_t> shape, DType dtype = DType::kF32) {
  return Array::from_f32(v, std::move(shape), dtype);
}

// ---- naming names ------------------------------------------------------------------------------------------------

TEST(ImportNamingTest, ParsesEveryName) {
  for (Naming n : {Naming::kAuto, Naming::kPyTorch, Naming::kKeras, Naming::kOnnx, Naming::kMindSpore}) {
    Naming back = Naming::kAuto;
    ASSERT_TRUE(parse_naming(naming_name(n), &back).ok());
    EXPECT_EQ(back, n);
  }
  Naming n;
  EXPECT_TRUE(HasError(parse_naming("tensorflow", &n), StatusCode::kInvalidArgument, "tensorflow"));
}

// ---- PyTorch and MindSpore ---------------------------------------------------------------------------------------

TEST(ImportPyTorchTest, ReadsStateDictUnderAnyPrefix) {
  std::mt19937 rng(1);
  LstmSpec spec = make_spec(5, 4, 2, Direction::kBidirectional);
  spec.proj_size = 3;
  const Weights w = testing_util::random_weights(spec, rng);
  SafetensorsFile canonical;
  ASSERT_TRUE(weights_to_safetensors(spec, w, &canonical).ok());
  SafetensorsFile file;
  for (auto& kv : canonical.tensors) file.tensors["encoder.rnn." + kv.first] = kv.second;
  file.tensors["encoder.embedding.weight"] = f32({1, 2}, {2});

  ImportOptions options;
  options.prefix = "encoder.rnn.";
  for (Naming naming : {Naming::kAuto, Naming::kPyTorch}) {
    options.naming = naming;
    LstmSpec got_spec;
    Weights got;
    Status st = import_weights(file, options, &got_spec, &got);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(got_spec.describe(), spec.describe());
    ExpectSameWeights(spec, w, got);
  }
  // MindSpore has no projection: its naming refuses weight_hr.
  options.naming = Naming::kMindSpore;
  LstmSpec s;
  Weights got;
  EXPECT_TRUE(HasError(import_weights(file, options, &s, &got), StatusCode::kFormatError, "weight_hr_l0"));
}

TEST(ImportMindSporeTest, ReadsMindSporeParameterNames) {
  // MindSpore 2.x nn.LSTM parameters: weight_ih_l{k}[_reverse], ... under the cell's path ("net.lstm.").
  std::mt19937 rng(2);
  const LstmSpec spec = make_spec(3, 5, 2, Direction::kBidirectional);
  const Weights w = testing_util::random_weights(spec, rng);
  SafetensorsFile canonical;
  ASSERT_TRUE(weights_to_safetensors(spec, w, &canonical).ok());
  SafetensorsFile file;
  for (auto& kv : canonical.tensors) {
    file.tensors["net.lstm." + kv.first] = kv.second;
    file.tensors["moment1.net.lstm." + kv.first] = kv.second;  // optimizer state: another prefix, ignored
  }
  ImportOptions options;
  options.naming = Naming::kMindSpore;
  options.prefix = "net.lstm.";
  LstmSpec got_spec;
  Weights got;
  Status st = import_weights(file, options, &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ExpectSameWeights(spec, w, got);

  // The packed single weight of older MindSpore versions is named as unsupported.
  SafetensorsFile old;
  old.tensors["net.lstm.weight"] = f32(std::vector<float>(24, 0.1f), {24, 1, 1});
  EXPECT_TRUE(HasError(import_weights(old, options, &got_spec, &got), StatusCode::kNotSupported, "net.lstm.weight"));
}

// ---- Keras -------------------------------------------------------------------------------------------------------

// Keras tensors of a culstm model with b_hh = 0: kernel = w_ih^T [I, 4H], recurrent_kernel = w_hh^T [H, 4H].
void add_keras_cell(SafetensorsFile* file, const std::string& path, const LstmSpec& spec, const LayerWeights& lw,
                    int layer, DType dtype = DType::kF32, const std::string& suffix = "") {
  const std::size_t rows = static_cast<std::size_t>(4 * spec.hidden_size);
  const std::size_t I = static_cast<std::size_t>(spec.layer_input_size(layer)), H = spec.hidden_size;
  std::vector<float> kernel(I * rows), recurrent(H * rows);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < I; ++k) kernel[k * rows + r] = lw.w_ih[r * I + k];
    for (std::size_t k = 0; k < H; ++k) recurrent[k * rows + r] = lw.w_hh[r * H + k];
  }
  file->tensors[path + "/kernel" + suffix] = f32(kernel, {static_cast<std::int64_t>(I), static_cast<std::int64_t>(rows)}, dtype);
  file->tensors[path + "/recurrent_kernel" + suffix] =
      f32(recurrent, {static_cast<std::int64_t>(H), static_cast<std::int64_t>(rows)}, dtype);
  if (spec.bias) file->tensors[path + "/bias" + suffix] = f32(lw.b_ih, {static_cast<std::int64_t>(rows)}, dtype);
}

Weights keras_weights(const LstmSpec& spec, std::mt19937& rng) {
  Weights w = testing_util::random_weights(spec, rng);
  for (int l = 0; l < w.num_layers(); ++l) {
    for (int d = 0; d < w.num_directions(); ++d) std::fill(w.at(l, d).b_hh.begin(), w.at(l, d).b_hh.end(), 0.0f);
  }
  return w;
}

TEST(ImportKerasTest, ReadsStackedKeras3Layers) {
  std::mt19937 rng(3);
  LstmSpec spec = make_spec(6, 4, 3, Direction::kForward);
  spec.layout = BatchLayout::kBatchMajor;  // Keras's [batch, time, features]
  const Weights w = keras_weights(spec, rng);
  SafetensorsFile file;
  // Keras's automatic names; natural order puts lstm_2 before lstm_10.
  const char* names[3] = {"lstm", "lstm_2", "lstm_10"};
  for (int l = 0; l < 3; ++l) add_keras_cell(&file, std::string(names[l]) + "/lstm_cell", spec, w.at(l, 0), l);
  file.tensors["dense/kernel"] = f32({1, 2, 3, 4}, {4, 1});
  file.tensors["dense/bias"] = f32({1}, {1});
  LstmSpec got_spec;
  Weights got;
  Status st = import_weights(file, ImportOptions(), &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.describe(), spec.describe());
  ExpectSameWeights(spec, w, got);
}

TEST(ImportKerasTest, ReadsBidirectionalWithLayerListAndKeras2Suffixes) {
  std::mt19937 rng(4);
  LstmSpec spec = make_spec(3, 5, 2, Direction::kBidirectional);
  spec.layout = BatchLayout::kBatchMajor;
  spec.gate_activation = Activation::hard_sigmoid(0.2f, 0.5f);
  const Weights w = keras_weights(spec, rng);
  SafetensorsFile file;
  // tf.keras 2 names end in ":0"; "culstm.layers" gives an order natural sort would not (b_enc before a_enc).
  const char* names[2] = {"model/b_enc", "model/a_enc"};
  for (int l = 0; l < 2; ++l) {
    add_keras_cell(&file, std::string(names[l]) + "/forward_lstm/lstm_cell", spec, w.at(l, 0), l, DType::kF32, ":0");
    add_keras_cell(&file, std::string(names[l]) + "/backward_lstm/lstm_cell", spec, w.at(l, 1), l, DType::kF32, ":0");
  }
  file.metadata[kMetaLayers] = R"(["b_enc", "a_enc"])";
  file.metadata[kMetaKeras] =
      R"({"keras_version": "2.15.0", "activation": "tanh", "recurrent_activation": "hard_sigmoid",
          "go_backwards": false, "merge_mode": "concat", "time_major": false})";
  ImportOptions options;
  options.prefix = "model/";
  LstmSpec got_spec;
  Weights got;
  Status st = import_weights(file, options, &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.describe(), spec.describe());
  EXPECT_EQ(got_spec.gate_activation.alpha, 0.2f);
  ExpectSameWeights(spec, w, got);

  // The same file from Keras 3: hard_sigmoid is x/6 + 0.5.
  file.metadata[kMetaKeras] = R"({"keras_version": "3.4.1", "recurrent_activation": "hard_sigmoid"})";
  ASSERT_TRUE(import_weights(file, options, &got_spec, &got).ok());
  EXPECT_EQ(got_spec.gate_activation.kind, ActivationKind::kHardSigmoid);
  EXPECT_EQ(got_spec.gate_activation.alpha, 1.0f / 6.0f);
  EXPECT_EQ(got_spec.gate_activation.beta, 0.5f);
  // Without the version it is ambiguous.
  file.metadata[kMetaKeras] = R"({"recurrent_activation": "hard_sigmoid"})";
  EXPECT_TRUE(HasError(import_weights(file, options, &got_spec, &got), StatusCode::kFormatError, "keras_version"));
}

TEST(ImportKerasTest, GoBackwardsSingleLayerIsReverseAndF16IsConverted) {
  std::mt19937 rng(5);
  LstmSpec spec = make_spec(2, 3, 1, Direction::kReverse, /*bias=*/false);
  spec.layout = BatchLayout::kSeqMajor;
  Weights w = keras_weights(spec, rng);
  for (std::vector<float>* t : {&w.at(0, 0).w_ih, &w.at(0, 0).w_hh}) {
    for (float& v : *t) v = std::round(v * 64.0f) / 64.0f;  // exact in f16
  }
  SafetensorsFile file;
  add_keras_cell(&file, "lstm/lstm_cell", spec, w.at(0, 0), 0, DType::kF16);
  file.metadata[kMetaKeras] = R"({"go_backwards": true, "time_major": true})";
  LstmSpec got_spec;
  Weights got;
  ImportOptions options;
  options.naming = Naming::kKeras;
  Status st = import_weights(file, options, &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.describe(), spec.describe());
  ExpectSameWeights(spec, w, got);
}

TEST(ImportKerasTest, RefusesWhatCulstmCannotExpress) {
  std::mt19937 rng(6);
  const LstmSpec uni = make_spec(3, 2, 2, Direction::kForward);
  const LstmSpec bi = make_spec(3, 2, 2, Direction::kBidirectional);
  const Weights wu = keras_weights(uni, rng), wb = keras_weights(bi, rng);
  LstmSpec s;
  Weights got;
  {  // go_backwards with stacked layers
    SafetensorsFile file;
    for (int l = 0; l < 2; ++l) add_keras_cell(&file, l ? "lstm_1/lstm_cell" : "lstm/lstm_cell", uni, wu.at(l, 0), l);
    file.metadata[kMetaKeras] = R"({"go_backwards": true})";
    EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kNotSupported, "go_backwards"));
    file.metadata[kMetaKeras] = R"({"activation": "selu"})";
    EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kNotSupported, "selu"));
    file.metadata[kMetaKeras] = R"({"unroll": true})";
    EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kFormatError, "unroll"));
    // culstm.spec contradicting the Keras layers.
    file.metadata.erase(kMetaKeras);
    file.metadata[kMetaSpec] = R"({"direction": "bidirectional"})";
    EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kFormatError, "direction"));
    file.metadata[kMetaSpec] = R"({"dtype": "bf16", "layout": "batch_major"})";  // agrees / not Keras's business
    Status st = import_weights(file, ImportOptions(), &s, &got);
    EXPECT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(s.dtype, DType::kBF16);
  }
  {  // mixing a Bidirectional layer with a unidirectional one; merge_mode other than concat
    SafetensorsFile file;
    add_keras_cell(&file, "bidirectional/forward_lstm/lstm_cell", bi, wb.at(0, 0), 0);
    add_keras_cell(&file, "bidirectional/backward_lstm/lstm_cell", bi, wb.at(0, 1), 0);
    file.metadata[kMetaKeras] = R"({"merge_mode": "sum"})";
    EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kNotSupported, "merge_mode"));
    file.metadata.erase(kMetaKeras);
    LstmSpec second = bi;
    second.direction = Direction::kForward;
    add_keras_cell(&file, "lstm/lstm_cell", second, wb.at(1, 0), 1);
    EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kNotSupported, "mixing"));
  }
}

TEST(ImportKerasTest, RejectsMalformedLayers) {
  std::mt19937 rng(7);
  const LstmSpec spec = make_spec(3, 2, 2, Direction::kForward);
  const Weights w = keras_weights(spec, rng);
  SafetensorsFile good;
  add_keras_cell(&good, "lstm/lstm_cell", spec, w.at(0, 0), 0);
  add_keras_cell(&good, "lstm_1/lstm_cell", spec, w.at(1, 0), 1);
  LstmSpec s;
  Weights got;
  ASSERT_TRUE(import_weights(good, ImportOptions(), &s, &got).ok());

  SafetensorsFile f = good;
  f.tensors.erase("lstm_1/lstm_cell/kernel");
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kFormatError, "lstm_1/lstm_cell/kernel"));
  f = good;
  f.tensors.erase("lstm_1/lstm_cell/bias");  // what use_bias=False on the second layer leaves
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kNotSupported,
                       "layer 2 ('lstm_1') has use_bias=False, layer 1 ('lstm') use_bias=True"));
  f = good;
  f.tensors["lstm_1/lstm_cell/kernel"] = f32(std::vector<float>(24, 0.0f), {3, 8});  // input 3, expected 2
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kShapeMismatch, "lstm_1/lstm_cell/kernel"));
  f = good;
  Array ints = f.tensors["lstm_1/lstm_cell/bias"];
  ints.dtype = DType::kI32;
  f.tensors["lstm_1/lstm_cell/bias"] = ints;
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kDtypeMismatch, "lstm_1/lstm_cell/bias"));
  f = good;
  f.tensors["lstm_1/lstm_cell/bias"] = f32({1, 2, 3, 4, 5, 6, 7, std::nanf("")}, {8});
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kFormatError, "finite"));
  f = good;
  f.metadata[kMetaLayers] = R"(["lstm", "lstm_7"])";
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kFormatError, "lstm_7"));
  f.metadata[kMetaLayers] = R"({"lstm": 0})";
  EXPECT_TRUE(HasError(import_weights(f, ImportOptions(), &s, &got), StatusCode::kFormatError, kMetaLayers));
  f.metadata[kMetaLayers] = R"(["lstm_1"])";  // selects one layer: then its input size is 2
  Status st = import_weights(f, ImportOptions(), &s, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(s.num_layers, 1);
  EXPECT_EQ(s.input_size, 2);
  // A GRU's recurrent kernel [u, 3u] is not an LSTM's.
  SafetensorsFile gru;
  gru.tensors["gru/gru_cell/kernel"] = f32(std::vector<float>(18, 0.0f), {3, 6});
  gru.tensors["gru/gru_cell/recurrent_kernel"] = f32(std::vector<float>(12, 0.0f), {2, 6});
  ImportOptions keras;
  keras.naming = Naming::kKeras;
  EXPECT_TRUE(HasError(import_weights(gru, keras, &s, &got), StatusCode::kFormatError, "GRU"));
}

// Bidirectional(LSTM(...), backward_layer=LSTM(..., go_backwards=True)): Keras names the backward weights after the
// user's layer ("bidirectional/lstm_1/..."), not "backward_lstm". The wrapper's structure decides, not the name.
TEST(ImportKerasTest, ExplicitBackwardLayerIsTheBackwardDirection) {
  std::mt19937 rng(8);
  LstmSpec spec = make_spec(3, 3, 1, Direction::kBidirectional);  // input size = units: a misread would not fail
  spec.layout = BatchLayout::kBatchMajor;
  const Weights w = keras_weights(spec, rng);
  LstmSpec got_spec;
  Weights got;
  for (const char* wrapper : {"bidirectional/", ""}) {  // as built, and as Keras 3 names them after load_model
    SCOPED_TRACE(wrapper);
    SafetensorsFile file;
    add_keras_cell(&file, std::string(wrapper) + "forward_lstm/lstm_cell", spec, w.at(0, 0), 0);
    add_keras_cell(&file, std::string(wrapper) + "lstm_1/lstm_cell", spec, w.at(0, 1), 0);
    Status st = import_weights(file, ImportOptions(), &got_spec, &got);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(got_spec.describe(), spec.describe());
    ExpectSameWeights(spec, w, got);
  }
  // The structure as tools/export_keras.py writes it, with every option of both LSTMs.
  SafetensorsFile file;
  add_keras_cell(&file, "bidirectional/forward_lstm/lstm_cell", spec, w.at(0, 0), 0);
  add_keras_cell(&file, "bidirectional/lstm_1/lstm_cell", spec, w.at(0, 1), 0);
  file.metadata[kMetaKeras] = R"({"keras_version": "3.15.1"})";
  const std::string fwd = R"({"path": "bidirectional/forward_lstm", "activation": "tanh", "recurrent_activation": "sigmoid", "go_backwards": false})";
  auto layers = [&](const std::string& backward_options) {
    return R"([{"path": "bidirectional", "merge_mode": "concat", "forward": )" + fwd +
           R"(, "backward": {"path": "bidirectional/lstm_1", )" + backward_options + "}}]";
  };
  file.metadata[kMetaLayers] = layers(R"("activation": "tanh", "recurrent_activation": "sigmoid", "go_backwards": true)");
  Status st = import_weights(file, ImportOptions(), &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.describe(), spec.describe());
  ExpectSameWeights(spec, w, got);
  // A backward LSTM with other options than the forward one cannot be one culstm layer: refused, named.
  const LstmSpec before = got_spec;
  file.metadata[kMetaLayers] = layers(R"("activation": "relu", "go_backwards": true)");
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kNotSupported,
                       "layer 1's backward LSTM ('bidirectional/lstm_1') has activation='relu', layer 1's forward "
                       "LSTM ('bidirectional/forward_lstm') activation='tanh'"));
  file.metadata[kMetaLayers] = layers(R"("recurrent_activation": "hard_sigmoid")");
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kNotSupported,
                       "recurrent_activation='hard_sigmoid'"));
  // The forward LSTM going backwards and the backward one forwards: Keras returns both halves time-reversed.
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional", "forward": {"path": "bidirectional/forward_lstm",
      "go_backwards": true}, "backward": {"path": "bidirectional/lstm_1"}}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kNotSupported,
                       "forward LSTM has go_backwards=True and its backward LSTM go_backwards=False"));
  EXPECT_EQ(got_spec.describe(), before.describe());  // untouched by the refusals
  // Malformed structure.
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional", "forward": {"path": "bidirectional/forward_lstm"}}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kFormatError, "backward"));
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional", "forward": {"path": "bidirectional/forward_lstm"},
      "backward": {"path": "bidirectional/backward_lstm"}}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kFormatError,
                       "no Keras LSTM weights for 'bidirectional/backward_lstm'"));
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional", "forward": {"path": "bidirectional/forward_lstm"},
      "backward": {"path": "bidirectional/forward_lstm"}}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kFormatError, "twice"));
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional", "units": 3, "forward": {"path": "bidirectional/forward_lstm"},
      "backward": {"path": "bidirectional/lstm_1"}}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kFormatError, "units"));
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional/lstm_1", "unroll": true}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kFormatError, "unroll"));
  // One LSTM of the pair, described alone, is a unidirectional layer of its own.
  file.metadata[kMetaLayers] = R"([{"path": "bidirectional/lstm_1", "go_backwards": true}])";
  st = import_weights(file, ImportOptions(), &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.direction, Direction::kReverse);
  EXPECT_EQ(got.at(0, 0).w_ih, w.at(0, 1).w_ih);
}

// A wrapper whose LSTMs do not show which is forward and which backward is refused, not guessed.
TEST(ImportKerasTest, RefusesAWrapperWhoseDirectionsTheNamesCannotTell) {
  std::mt19937 rng(9);
  LstmSpec spec = make_spec(3, 3, 1, Direction::kBidirectional);
  const Weights w = keras_weights(spec, rng);
  LstmSpec s;
  Weights got;
  SafetensorsFile file;
  add_keras_cell(&file, "bidirectional/forward_lstm/lstm_cell", spec, w.at(0, 0), 0);
  add_keras_cell(&file, "bidirectional/lstm_1/lstm_cell", spec, w.at(0, 1), 0);
  add_keras_cell(&file, "bidirectional/lstm_2/lstm_cell", spec, w.at(0, 1), 0);
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kFormatError,
                       "'bidirectional' holds the LSTMs 'bidirectional/forward_lstm', 'bidirectional/lstm_1', "
                       "'bidirectional/lstm_2'"));
  // Two Bidirectional layers after load_model (Keras 3 drops the wrapper from the paths): four LSTMs in one place.
  SafetensorsFile flat;
  for (const char* name : {"forward_lstm", "backward_lstm", "forward_lstm_1", "backward_lstm_1"}) {
    add_keras_cell(&flat, std::string(name) + "/lstm_cell", spec, w.at(0, 0), 0);
  }
  EXPECT_TRUE(HasError(import_weights(flat, ImportOptions(), &s, &got), StatusCode::kFormatError, "culstm.layers"));
  // A backward LSTM without a forward one.
  SafetensorsFile lone;
  add_keras_cell(&lone, "bidirectional/backward_lstm/lstm_cell", spec, w.at(0, 1), 0);
  EXPECT_TRUE(HasError(import_weights(lone, ImportOptions(), &s, &got), StatusCode::kFormatError, "forward_"));
}

// culstm's LstmSpec has one hidden size: a stack of layers with different units is NotSupported, said as such.
TEST(ImportKerasTest, StackWithDifferentUnitsIsNotSupported) {
  std::mt19937 rng(10);
  const LstmSpec first = make_spec(4, 5, 1, Direction::kForward);
  LstmSpec second = make_spec(5, 7, 1, Direction::kForward);
  const Weights w1 = keras_weights(first, rng), w2 = keras_weights(second, rng);
  SafetensorsFile file;
  add_keras_cell(&file, "lstm/lstm_cell", first, w1.at(0, 0), 0);
  add_keras_cell(&file, "lstm_1/lstm_cell", second, w2.at(0, 0), 0);
  LstmSpec s;
  Weights got;
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kNotSupported,
                       "culstm's LstmSpec has one hidden size for all layers and directions; Keras layer 2 "
                       "('lstm_1') has units=7, layer 1 ('lstm') units=5"));
  // Each layer alone imports.
  file.metadata[kMetaLayers] = R"(["lstm_1"])";
  Status st = import_weights(file, ImportOptions(), &s, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(s.hidden_size, 7);
  EXPECT_EQ(s.input_size, 5);
  // A unidirectional stack whose layers go different ways.
  file.metadata[kMetaLayers] = R"([{"path": "lstm"}, {"path": "lstm_1", "go_backwards": true}])";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &s, &got), StatusCode::kNotSupported,
                       "layer 2 ('lstm_1') has go_backwards=True"));
}

TEST(ImportKerasTest, NaturalOrder) {
  using internal::natural_less;
  EXPECT_TRUE(natural_less("lstm", "lstm_1"));
  EXPECT_TRUE(natural_less("lstm_2", "lstm_10"));
  EXPECT_FALSE(natural_less("lstm_10", "lstm_2"));
  EXPECT_TRUE(natural_less("a9b", "a10a"));
  EXPECT_FALSE(natural_less("x", "x"));
  EXPECT_TRUE(natural_less("l1", "l01"));
}

// ---- ONNX in safetensors -----------------------------------------------------------------------------------------

SafetensorsFile onnx_safetensors(const LstmSpec& spec, const Weights& w, const std::string& prefix = "") {
  const ob::OnnxWeights o = ob::to_onnx(spec, w);
  const std::int64_t D = spec.num_directions(), H = spec.hidden_size, I = spec.input_size;
  SafetensorsFile file;
  file.tensors[prefix + "W"] = f32(o.W, {D, 4 * H, I});
  file.tensors[prefix + "R"] = f32(o.R, {D, 4 * H, H});
  if (spec.bias) file.tensors[prefix + "B"] = f32(o.B, {D, 8 * H});
  if (spec.peepholes) file.tensors[prefix + "P"] = f32(o.P, {D, 3 * H});
  return file;
}

TEST(ImportOnnxTest, ReadsWRBPAndAttributesFromSafetensors) {
  std::mt19937 rng(8);
  LstmSpec spec = make_spec(5, 3, 1, Direction::kBidirectional);
  spec.peepholes = true;
  spec.gate_clip = 2.5f;
  spec.input_forget = true;
  spec.layout = BatchLayout::kBatchMajor;
  spec.gate_activation = Activation::hard_sigmoid(0.3f, 0.4f);
  spec.cell_activation = Activation::scaled_tanh(1.5f, 0.5f);
  spec.hidden_activation = Activation::leaky_relu(0.1f);
  const Weights w = testing_util::random_weights(spec, rng);
  SafetensorsFile file = onnx_safetensors(spec, w, "lstm_1.");
  // alpha/beta are consumed in order by the activations that take them: HardSigmoid (a, b), ScaledTanh (a, b),
  // LeakyRelu (a) -> alpha [0.3, 1.5, 0.1, ...], beta [0.4, 0.5, ...], once per direction.
  file.metadata[kMetaOnnxAttributes] =
      R"({"direction": "bidirectional", "hidden_size": 3, "clip": 2.5, "input_forget": 1, "layout": 1,
          "activations": ["HardSigmoid", "ScaledTanh", "LeakyRelu", "HardSigmoid", "ScaledTanh", "LeakyRelu"],
          "activation_alpha": [0.3, 1.5, 0.1, 0.3, 1.5, 0.1], "activation_beta": [0.4, 0.5, 0.4, 0.5]})";
  ImportOptions options;
  options.prefix = "lstm_1.";
  LstmSpec got_spec;
  Weights got;
  Status st = import_weights(file, options, &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.describe(), spec.describe());
  ExpectSameWeights(spec, w, got);
}

TEST(ImportOnnxTest, DefaultsAndOptionalTensors) {
  std::mt19937 rng(9);
  const LstmSpec spec = make_spec(4, 2, 1, Direction::kForward, /*bias=*/false);
  const Weights w = testing_util::random_weights(spec, rng);
  SafetensorsFile file = onnx_safetensors(spec, w);
  LstmSpec got_spec;
  Weights got;
  Status st = import_weights(file, ImportOptions(), &got_spec, &got);  // no attributes: ONNX defaults
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.describe(), spec.describe());
  ExpectSameWeights(spec, w, got);
  file.metadata[kMetaOnnxAttributes] = R"({"direction": "reverse"})";
  ASSERT_TRUE(import_weights(file, ImportOptions(), &got_spec, &got).ok());
  EXPECT_EQ(got_spec.direction, Direction::kReverse);
  // culstm.spec can add what ONNX does not carry (dtype, math), not contradict what it does.
  file.metadata[kMetaSpec] = R"({"dtype": "f16", "direction": "reverse"})";
  st = import_weights(file, ImportOptions(), &got_spec, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got_spec.dtype, DType::kF16);
  file.metadata[kMetaSpec] = R"({"direction": "forward"})";
  EXPECT_TRUE(HasError(import_weights(file, ImportOptions(), &got_spec, &got), StatusCode::kFormatError, "direction"));
}

TEST(ImportOnnxTest, RejectsBadTensorsAndAttributes) {
  std::mt19937 rng(10);
  const LstmSpec spec = make_spec(4, 2, 1, Direction::kBidirectional);
  const Weights w = testing_util::random_weights(spec, rng);
  const SafetensorsFile good = onnx_safetensors(spec, w);
  ImportOptions onnx;
  onnx.naming = Naming::kOnnx;
  LstmSpec s;
  Weights got;
  auto attrs = [&](const std::string& json) {
    SafetensorsFile f = good;
    f.metadata[kMetaOnnxAttributes] = json;
    return import_weights(f, onnx, &s, &got);
  };
  EXPECT_TRUE(attrs(R"({"direction": "bidirectional"})").ok());
  EXPECT_TRUE(HasError(attrs(R"({})"), StatusCode::kShapeMismatch, "'W'"));  // forward: D=1 but W has D=2
  EXPECT_TRUE(HasError(attrs(R"({"direction": "sideways"})"), StatusCode::kFormatError, "sideways"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional", "hidden_size": 7})"), StatusCode::kShapeMismatch,
                       "hidden_size"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional", "activations": ["Sigmoid", "Tanh", "Tanh"]})"),
                       StatusCode::kFormatError, "activations"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional",
                                 "activations": ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Tanh", "Relu"]})"),
                       StatusCode::kNotSupported, "differs between the directions"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional", "activations": ["Gelu", "Tanh", "Tanh",
                                 "Gelu", "Tanh", "Tanh"]})"),
                       StatusCode::kNotSupported, "Gelu"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional", "clip": -1})"), StatusCode::kFormatError, "clip"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional", "layout": 2})"), StatusCode::kFormatError, "layout"));
  EXPECT_TRUE(HasError(attrs(R"({"direction": "bidirectional", "sequence_lens": 2})"), StatusCode::kFormatError,
                       "sequence_lens"));
  EXPECT_TRUE(HasError(attrs(R"([1, 2])"), StatusCode::kFormatError, kMetaOnnxAttributes));
  EXPECT_TRUE(HasError(attrs("{"), StatusCode::kFormatError, kMetaOnnxAttributes));

  SafetensorsFile f = good;
  f.metadata[kMetaOnnxAttributes] = R"({"direction": "bidirectional"})";
  SafetensorsFile g = f;
  g.tensors.erase("R");
  EXPECT_TRUE(HasError(import_weights(g, onnx, &s, &got), StatusCode::kFormatError, "'R'"));
  g = f;
  g.tensors["B"] = f32(std::vector<float>(2 * 15, 0.0f), {2, 15});
  EXPECT_TRUE(HasError(import_weights(g, onnx, &s, &got), StatusCode::kShapeMismatch, "'B'"));
  g = f;
  g.tensors["P"].dtype = DType::kI64;  // wrong dtype (and size): named either way
  g.tensors["P"] = Array();
  g.tensors["P"].dtype = DType::kI64;
  g.tensors["P"].shape = {2, 6};
  g.tensors["P"].bytes.assign(2 * 6 * 8, 0);
  EXPECT_TRUE(HasError(import_weights(g, onnx, &s, &got), StatusCode::kDtypeMismatch, "'P'"));
}

// ---- .onnx files -------------------------------------------------------------------------------------------------

struct OnnxCase {
  LstmSpec spec;
  Weights weights;
};

OnnxCase onnx_case(bool bidirectional, bool peepholes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  OnnxCase c;
  c.spec = make_spec(3, 2, 1, bidirectional ? Direction::kBidirectional : Direction::kForward);
  c.spec.peepholes = peepholes;
  c.weights = testing_util::random_weights(c.spec, rng);
  for (int d = 0; d < c.spec.num_directions(); ++d) {  // values exact in f16 so every storage gives them back
    LayerWeights& lw = c.weights.at(0, d);
    for (std::vector<float>* t : {&lw.w_ih, &lw.w_hh, &lw.b_ih, &lw.b_hh, &lw.peephole}) {
      for (float& v : *t) v = std::round(v * 256.0f) / 256.0f;
    }
  }
  return c;
}

Bytes onnx_model(const OnnxCase& c, ob::Storage storage, std::vector<Bytes> extra_attributes = {},
                 bool as_constants = false, const std::string& name = "lstm") {
  const ob::OnnxWeights o = ob::to_onnx(c.spec, c.weights);
  const std::int64_t D = c.spec.num_directions(), H = c.spec.hidden_size, I = c.spec.input_size;
  std::vector<Bytes> inits = {ob::tensor("W", {D, 4 * H, I}, o.W, storage), ob::tensor("R", {D, 4 * H, H}, o.R, storage),
                              ob::tensor("B", {D, 8 * H}, o.B, storage)};
  std::vector<std::string> inputs = {"X", "W", "R", "B", "", "", ""};
  if (c.spec.peepholes) {
    inits.push_back(ob::tensor("P", {D, 3 * H}, o.P, storage));
    inputs.push_back("P");
  }
  std::vector<Bytes> attributes = {ob::attr_int("hidden_size", H),
                                   ob::attr_string("direction", D == 2 ? "bidirectional" : "forward")};
  for (Bytes& a : extra_attributes) attributes.push_back(a);
  std::vector<Bytes> nodes;
  if (as_constants) {
    // Constant nodes whose outputs carry the tensors' names.
    const std::vector<std::string> names = {"W", "R", "B", "P"};
    for (std::size_t k = 0; k < inits.size(); ++k) {
      nodes.push_back(ob::node("Constant", "const_" + names[k], {}, {names[k]}, {ob::attr_tensor("value", inits[k])}));
    }
    inits.clear();
  }
  nodes.push_back(ob::node("Transpose", "pre", {"input"}, {"X"}, {}));
  nodes.push_back(ob::node("LSTM", name, inputs, {"Y", "Y_h", "Y_c"}, attributes));
  return ob::model(nodes, inits);
}

TEST(ImportOnnxFileTest, ReadsEveryTensorStorage) {
  for (bool bidirectional : {false, true}) {
    for (bool peepholes : {false, true}) {
      const OnnxCase c = onnx_case(bidirectional, peepholes, 11);
      for (ob::Storage storage : {ob::Storage::kRaw, ob::Storage::kFloatData, ob::Storage::kFloatDataUnpacked,
                                  ob::Storage::kHalfInt32Data, ob::Storage::kDoubleData, ob::Storage::kDoubleRaw}) {
        for (bool constants : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "bidirectional " << bidirectional << " peepholes " << peepholes
                                            << " storage " << static_cast<int>(storage) << " constants " << constants);
          const Bytes m = onnx_model(c, storage, {}, constants);
          LstmSpec spec;
          Weights got;
          Status st = import_onnx_bytes(m.data(), m.size(), "", &spec, &got);
          ASSERT_TRUE(st.ok()) << st.to_string();
          EXPECT_EQ(spec.describe(), c.spec.describe());
          ExpectSameWeights(c.spec, c.weights, got);
        }
      }
    }
  }
}

TEST(ImportOnnxFileTest, ReadsAttributesAndSelectsNodes) {
  const OnnxCase c = onnx_case(true, false, 12);
  const Bytes m = onnx_model(c, ob::Storage::kRaw,
                             {ob::attr_float("clip", 3.0f), ob::attr_int("layout", 1), ob::attr_int("input_forget", 1),
                              ob::attr_strings("activations", {"Sigmoid", "Affine", "Tanh", "Sigmoid", "Affine", "Tanh"}),
                              ob::attr_floats("activation_alpha", {0.5f, 0.5f}),
                              ob::attr_floats("activation_beta", {0.25f, 0.25f})});
  LstmSpec spec;
  Weights w;
  Status st = import_onnx_bytes(m.data(), m.size(), "lstm", &spec, &w);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ASSERT_TRUE(spec.gate_clip.has_value());
  EXPECT_EQ(*spec.gate_clip, 3.0f);
  EXPECT_EQ(spec.layout, BatchLayout::kBatchMajor);
  EXPECT_TRUE(spec.input_forget);
  EXPECT_EQ(spec.cell_activation.kind, ActivationKind::kAffine);
  EXPECT_EQ(spec.cell_activation.alpha, 0.5f);
  EXPECT_EQ(spec.cell_activation.beta, 0.25f);
  EXPECT_TRUE(HasError(import_onnx_bytes(m.data(), m.size(), "other", &spec, &w), StatusCode::kInvalidArgument,
                       "'lstm'"));

  // Two LSTM nodes: the name is required.
  const ob::OnnxWeights o = ob::to_onnx(c.spec, c.weights);
  std::vector<Bytes> inits = {ob::tensor("W", {2, 8, 3}, o.W), ob::tensor("R", {2, 8, 2}, o.R),
                              ob::tensor("B", {2, 16}, o.B)};
  std::vector<Bytes> attrs = {ob::attr_string("direction", "bidirectional")};
  const Bytes two = ob::model({ob::node("LSTM", "enc0", {"X", "W", "R", "B"}, {"Y"}, attrs),
                               ob::node("LSTM", "enc1", {"Y2", "W", "R"}, {"Y3"}, attrs)},
                              inits);
  EXPECT_TRUE(HasError(import_onnx_bytes(two.data(), two.size(), "", &spec, &w), StatusCode::kInvalidArgument,
                       "'enc0', 'enc1'"));
  st = import_onnx_bytes(two.data(), two.size(), "enc1", &spec, &w);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_FALSE(spec.bias);  // enc1 has no B input
}

TEST(ImportOnnxFileTest, RefusesWhatCulstmCannotExpress) {
  const OnnxCase c = onnx_case(false, false, 13);
  const ob::OnnxWeights o = ob::to_onnx(c.spec, c.weights);
  LstmSpec spec;
  Weights w;
  auto import = [&](const Bytes& m) { return import_onnx_bytes(m.data(), m.size(), "", &spec, &w); };
  std::vector<Bytes> inits = {ob::tensor("W", {1, 8, 3}, o.W), ob::tensor("R", {1, 8, 2}, o.R),
                              ob::tensor("h0", {1, 1, 2}, {0.5f, 0.0f}), ob::tensor("zero", {1, 1, 2}, {0.0f, 0.0f})};
  // A non-zero constant initial state; zeros are fine.
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R", "", "", "h0"}, {"Y"}, {})}, inits)),
                       StatusCode::kNotSupported, "initial_h"));
  EXPECT_TRUE(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R", "", "", "zero", "zero"}, {"Y"}, {})}, inits)).ok());
  // Weights computed by another node.
  EXPECT_TRUE(HasError(import(ob::model({ob::node("Identity", "id", {"W"}, {"W2"}, {}),
                                         ob::node("LSTM", "l", {"X", "W2", "R"}, {"Y"}, {})},
                                        inits)),
                       StatusCode::kNotSupported, "W2"));
  // Unknown attribute; attribute of the wrong type.
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {ob::attr_int("zoneout", 1)})},
                                        inits)),
                       StatusCode::kNotSupported, "zoneout"));
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {ob::attr_int("direction", 1)})},
                                        inits)),
                       StatusCode::kFormatError, "direction"));
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"},
                                                  {ob::attr_float("activation_alpha", 0.5f)})},
                                        inits)),
                       StatusCode::kFormatError, "activation_alpha"));
  // External data.
  Bytes external = ob::tensor("W", {1, 8, 3}, o.W);
  ob::int_field(&external, 14, 1);
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {})},
                                        {external, ob::tensor("R", {1, 8, 2}, o.R)})),
                       StatusCode::kNotSupported, "external"));
  // No LSTM node.
  EXPECT_TRUE(HasError(import(ob::model({ob::node("GRU", "g", {"X", "W", "R"}, {"Y"}, {})}, inits)),
                       StatusCode::kFormatError, "no LSTM node"));
  // Wrong data type, wrong shape, wrong element count.
  Bytes ints;
  ob::int_field(&ints, 1, 1), ob::int_field(&ints, 1, 8), ob::int_field(&ints, 1, 3), ob::int_field(&ints, 2, 7);
  ob::string_field(&ints, 8, "W");
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {})},
                                        {ints, ob::tensor("R", {1, 8, 2}, o.R)})),
                       StatusCode::kDtypeMismatch, "INT64"));
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {})},
                                        {ob::tensor("W", {1, 8, 3}, o.W), ob::tensor("R", {1, 2, 2}, {1, 2, 3, 4})})),
                       StatusCode::kShapeMismatch, "'R'"));
  EXPECT_TRUE(HasError(import(ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {})},
                                        {ob::tensor("W", {1, 8, 4}, o.W), ob::tensor("R", {1, 8, 2}, o.R)})),
                       StatusCode::kFormatError, "raw_data holds 96 bytes"));
}

TEST(ImportOnnxFileTest, SurvivesTruncationAndCorruption) {
  const OnnxCase c = onnx_case(true, true, 14);
  const Bytes m = onnx_model(c, ob::Storage::kFloatData, {ob::attr_float("clip", 1.0f)});
  LstmSpec spec;
  Weights w;
  ASSERT_TRUE(import_onnx_bytes(m.data(), m.size(), "", &spec, &w).ok());
  // Every prefix that cuts the graph (one length-delimited field, followed by a 6-byte opset_import) is an error,
  // never a crash.
  for (std::size_t n = 0; n + 6 < m.size(); ++n) {
    Status st = import_onnx_bytes(m.data(), n, "", &spec, &w);
    EXPECT_FALSE(st.ok()) << "prefix of " << n << " bytes";
    EXPECT_EQ(st.code(), StatusCode::kFormatError) << st.to_string();
  }
  // Single-byte corruptions anywhere: any outcome but a crash (ASan/UBSan builds and the fuzzer check more).
  std::mt19937 rng(15);
  for (std::size_t k = 0; k < m.size(); ++k) {
    Bytes bad = m;
    bad[k] = static_cast<std::uint8_t>(rng());
    Status st = import_onnx_bytes(bad.data(), bad.size(), "", &spec, &w);
    if (st.ok()) {
      EXPECT_TRUE(w.check_against(spec).ok());
    }
  }
  // Hand-made hostile inputs.
  const Bytes huge_length = {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f};  // graph of 4 GiB
  EXPECT_TRUE(HasError(import_onnx_bytes(huge_length.data(), huge_length.size(), "", &spec, &w),
                       StatusCode::kFormatError, "runs past the end"));
  const Bytes long_varint = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  EXPECT_TRUE(HasError(import_onnx_bytes(long_varint.data(), long_varint.size(), "", &spec, &w),
                       StatusCode::kFormatError, "varint"));
  const Bytes group = {0x0b, 0x0c};  // wire type 3 (start group)
  EXPECT_TRUE(HasError(import_onnx_bytes(group.data(), group.size(), "", &spec, &w), StatusCode::kFormatError,
                       "wire type 3"));
  const Bytes field_zero = {0x00, 0x01};
  EXPECT_TRUE(HasError(import_onnx_bytes(field_zero.data(), field_zero.size(), "", &spec, &w),
                       StatusCode::kFormatError, "field number 0"));
  EXPECT_TRUE(HasError(import_onnx_bytes(nullptr, 0, "", &spec, &w), StatusCode::kFormatError, "no graph"));
  // Dims whose product overflows, with no data.
  Bytes dims;
  for (int k = 0; k < 4; ++k) ob::int_field(&dims, 1, std::int64_t{1} << 40);
  ob::int_field(&dims, 2, 1);
  ob::string_field(&dims, 8, "W");
  const Bytes overflow = ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {})}, {dims});
  EXPECT_TRUE(HasError(import_onnx_bytes(overflow.data(), overflow.size(), "", &spec, &w), StatusCode::kFormatError,
                       "overflow"));
  // Dims that fit but claim terabytes, with one typed value (found by fuzz_onnx: the reader allocated before
  // counting; tests/fuzz/regressions/onnx/huge-dims-typed-data-alloc).
  for (int storage = 0; storage < 3; ++storage) {
    Bytes t;
    ob::int_field(&t, 1, std::int64_t{1} << 20);
    ob::int_field(&t, 1, std::int64_t{1} << 20);
    ob::int_field(&t, 2, storage == 0 ? 1 : storage == 1 ? 10 : 11);
    if (storage == 0) ob::float_field(&t, 4, 1.0f);
    if (storage == 1) ob::int_field(&t, 5, 0x3c00);
    if (storage == 2) {
      ob::key(&t, 10, 1);
      t.insert(t.end(), 8, 0);
    }
    ob::string_field(&t, 8, "W");
    io::onnx::Graph graph;
    const Bytes m = ob::model({ob::node("LSTM", "l", {"X", "W", "R"}, {"Y"}, {})}, {t});
    ASSERT_TRUE(io::onnx::parse_model(m.data(), m.size(), &graph).ok());
    Array array;
    EXPECT_TRUE(HasError(io::onnx::tensor_to_array(graph.initializers.at(0), &array), StatusCode::kFormatError,
                         "holds 1 values")) << "storage " << storage;
    EXPECT_TRUE(HasError(import_onnx_bytes(m.data(), m.size(), "", &spec, &w), StatusCode::kFormatError, "'W'"));
  }
}

TEST(ImportOnnxFileTest, ReadsFilesAndRefusesMismatchedOptions) {
  const OnnxCase c = onnx_case(false, false, 16);
  const Bytes m = onnx_model(c, ob::Storage::kRaw);
  const std::string path = ::testing::TempDir() + "culstm_import_test.onnx";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(m.data()), static_cast<std::streamsize>(m.size()));
  }
  LstmSpec spec;
  Weights w;
  ImportOptions options;
  Status st = import_model_file(path, options, &spec, &w);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ExpectSameWeights(c.spec, c.weights, w);
  options.naming = Naming::kKeras;
  EXPECT_TRUE(HasError(import_model_file(path, options, &spec, &w), StatusCode::kInvalidArgument, "keras"));
  options.naming = Naming::kAuto;
  options.prefix = "x.";
  EXPECT_TRUE(HasError(import_model_file(path, options, &spec, &w), StatusCode::kInvalidArgument, "--prefix"));
  // An ONNX model under another extension gets a hint.
  const std::string renamed = ::testing::TempDir() + "culstm_import_test_onnx.safetensors";
  {
    std::ofstream out(renamed, std::ios::binary);
    out.write(reinterpret_cast<const char*>(m.data()), static_cast<std::streamsize>(m.size()));
  }
  EXPECT_TRUE(HasError(import_model_file(renamed, ImportOptions(), &spec, &w), StatusCode::kFormatError, "ONNX"));
  options = ImportOptions();
  options.onnx_node = "lstm";
  EXPECT_TRUE(HasError(import_model_file(renamed, options, &spec, &w), StatusCode::kInvalidArgument, "--onnx-node"));
  EXPECT_TRUE(HasError(import_model_file(path + ".missing.onnx", ImportOptions(), &spec, &w), StatusCode::kIoError,
                       "missing"));
}

// ---- detection ---------------------------------------------------------------------------------------------------

TEST(ImportDetectTest, DetectsEachConventionAndExplainsFailures) {
  std::mt19937 rng(17);
  const LstmSpec spec = make_spec(2, 2, 1, Direction::kForward);
  const Weights w = testing_util::random_weights(spec, rng);
  Naming n = Naming::kAuto;
  SafetensorsFile pt;
  ASSERT_TRUE(weights_to_safetensors(spec, w, &pt).ok());
  ASSERT_TRUE(detect_naming(pt, "", &n).ok());
  EXPECT_EQ(n, Naming::kPyTorch);
  SafetensorsFile keras;
  add_keras_cell(&keras, "lstm/lstm_cell", spec, w.at(0, 0), 0);
  ASSERT_TRUE(detect_naming(keras, "", &n).ok());
  EXPECT_EQ(n, Naming::kKeras);
  ASSERT_TRUE(detect_naming(onnx_safetensors(spec, w), "", &n).ok());
  EXPECT_EQ(n, Naming::kOnnx);

  SafetensorsFile both = pt;
  for (auto& kv : keras.tensors) both.tensors[kv.first] = kv.second;
  EXPECT_TRUE(HasError(detect_naming(both, "", &n), StatusCode::kFormatError, "more than one"));
  SafetensorsFile none;
  none.tensors["encoder.weight"] = f32({1}, {1});
  EXPECT_TRUE(HasError(detect_naming(none, "", &n), StatusCode::kFormatError, "'encoder.weight'"));
  LstmSpec s;
  Weights got;
  EXPECT_TRUE(HasError(import_weights(none, ImportOptions(), &s, &got), StatusCode::kFormatError, "naming"));
}

TEST(ImportDetectTest, FailedImportLeavesOutputsUntouched) {
  SafetensorsFile bad;
  bad.tensors["W"] = f32({1, 2, 3}, {3});
  bad.tensors["R"] = f32({1, 2, 3}, {3});
  LstmSpec spec = make_spec(7, 7, 1, Direction::kForward);
  Weights w = Weights::zeros_for(spec);
  ASSERT_FALSE(import_weights(bad, ImportOptions(), &spec, &w).ok());
  EXPECT_EQ(spec.input_size, 7);
  EXPECT_EQ(w.num_layers(), 1);
  EXPECT_EQ(w.at(0, 0).w_ih.size(), 4u * 7 * 7);
}

}  // namespace
}  // namespace io
}  // namespace culstm
