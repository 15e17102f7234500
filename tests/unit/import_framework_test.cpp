// Files made by the real frameworks (tests/unit/data/import/make_import_fixtures.py: the `onnx` package + ONNX
// Runtime, Keras 3 + tools/export_keras.py, tools/export_onnx.py), imported and run on the reference backend against
// the framework's own outputs. This checks the importers' gate orders, transposes, single Keras bias, peephole order
// and attribute mapping against the frameworks rather than against our reading of their documentation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "io/import.h"
#include "io/npy.h"
#include "test_util.h"

namespace culstm {
namespace io {
namespace {

std::string fixture(const std::string& name) {
  return std::string(CULSTM_SOURCE_DIR) + "/tests/unit/data/import/" + name;
}

std::vector<float> load(const std::string& name, std::vector<std::int64_t>* shape = nullptr) {
  Array a;
  Status st = read_npy(fixture(name), &a);
  EXPECT_TRUE(st.ok()) << st.to_string();
  if (shape) *shape = a.shape;
  return a.to_f32();
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k) m = std::max(m, std::fabs(double(a[k]) - b[k]));
  return m;
}

// Imports `weights_file`, runs the reference backend on <name>_x.npy and compares with <name>_y.npy (and the
// states when the fixture has them). `tolerance`: the frameworks compute in f32 (ONNX Runtime with approximate
// sigmoid/tanh), the reference in f64.
void RunFixture(const std::string& name, const std::string& weights_file, double tolerance) {
  SCOPED_TRACE(weights_file);
  LstmSpec spec;
  Weights weights;
  Status st = import_model_file(fixture(weights_file), ImportOptions(), &spec, &weights);
  ASSERT_TRUE(st.ok()) << st.to_string();
  std::vector<std::int64_t> x_shape;
  testing_util::HostRun run;
  run.x = load(name + "_x.npy", &x_shape);
  ASSERT_EQ(x_shape.size(), 3u);
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  run.T = batch_major ? x_shape[1] : x_shape[0];
  run.B = batch_major ? x_shape[0] : x_shape[1];
  auto model = testing_util::make_reference_model(spec, weights);
  ASSERT_TRUE(model);
  st = testing_util::run_host_forward(*model, run);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_LE(max_abs_diff(run.y, load(name + "_y.npy")), tolerance) << spec.describe();
  if (name.rfind("onnx", 0) == 0) {
    EXPECT_LE(max_abs_diff(run.h_n, load(name + "_hn.npy")), tolerance);
    EXPECT_LE(max_abs_diff(run.c_n, load(name + "_cn.npy")), tolerance);
  }
}

TEST(ImportFrameworkTest, OnnxBidirectionalPeepholesClip) {
  RunFixture("onnx_bidi_peephole", "onnx_bidi_peephole.onnx", 1e-5);
  RunFixture("onnx_bidi_peephole", "onnx_bidi_peephole_exported.safetensors", 1e-5);
}

TEST(ImportFrameworkTest, OnnxReverseActivationsInputForget) {
  RunFixture("onnx_reverse_activations", "onnx_reverse_activations.onnx", 1e-5);
  RunFixture("onnx_reverse_activations", "onnx_reverse_activations_exported.safetensors", 1e-5);
}

TEST(ImportFrameworkTest, Keras3StackedHardSigmoid) {
  RunFixture("keras_stacked_hard_sigmoid", "keras_stacked_hard_sigmoid.safetensors", 1e-5);
}

TEST(ImportFrameworkTest, Keras3Bidirectional) {
  RunFixture("keras_bidirectional", "keras_bidirectional.safetensors", 1e-5);
}

}  // namespace
}  // namespace io
}  // namespace culstm
