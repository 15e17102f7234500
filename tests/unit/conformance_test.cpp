// Conformance with the real frameworks: every fixture under tests/conformance/fixtures/<framework>/ (made by
// tests/conformance/gen_<framework>.py from PyTorch, ONNX Runtime, Keras and MindSpore; see its README.md) is one
// test case. Each holds weights in the framework's own names and layout, the call's inputs and the framework's
// outputs. The test imports the weights through the importer API (io/import.h), checks the imported spec against
// the options the generator used, runs the reference backend and compares y, h_n and c_n.
//
// Where a framework's semantics differ from docs/design.md §2, the fixture lists the difference in
// "conformance.adjustments" and the test applies it here, explicitly:
//   layout_from_call           the batch layout is how the framework was called (PyTorch batch_first, Keras is
//                              always batch-major), not something the weights record: taken from the fixture.
//   y_time_reversed            Keras go_backwards returns y in processing order: y[k] belongs to input step T-1-k.
//   y_valid_steps_only         Keras masking repeats the previous output at masked steps (h0 before the first valid
//                              step) where culstm writes padding: y is compared at t < len[b] only.
//   y_last_is_h_n              Keras's output with return_sequences=False (conformance.y_last, [B, D*R]) is the
//                              last layer's h_n with the directions side by side: compared to culstm's h_n.
//   zero_length_state_is_zero  ONNX Runtime returns Y_h = Y_c = 0 for a sequence of length 0; culstm leaves the
//                              state unchanged (h_n = h0, c_n = c0). The test checks ONNX Runtime's zeros and then
//                              expects culstm's h0/c0 for those rows.
// A fixture with conformance.expect_error (a status code name) and conformance.expect_message holds a model culstm
// cannot express: the test checks that the import refuses it with that code and a message naming the option.
// It also converts layouts: ONNX Y [T,D,B,H] (layout 0) or [B,T,D,H] (layout 1) into culstm's [T,B,D*H] / [B,T,D*H],
// ONNX layout-1 states [B,D,H] into [D,B,H].
//
// Error bounds (f32 fixtures; ‖out − ref‖ / ‖ref‖ over each of y, h_n, c_n) and what was measured when the
// fixtures were made (max over that framework's fixtures; tests/conformance/README.md keeps the table):
//   PyTorch      2.15.0   bound 1e-5   measured 1.9e-7
//   ONNX Runtime 1.32.0   bound 1e-5   measured 2.7e-7
//   Keras 3.15.1 (JAX)    bound 1e-5   measured 1.7e-7
//   MindSpore    2.10.0   bound 1e-5   measured 5.9e-7 (its step-by-step seq_length path; 1.1e-7 on the fused op)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <ostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "io/array.h"
#include "io/import.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/weights_io.h"
#include "test_util.h"

namespace culstm {
namespace {

namespace fs = std::filesystem;
using io::Array;
using io::SafetensorsFile;

const char* const kFrameworks[] = {"pytorch", "onnxruntime", "keras", "mindspore"};

// Norm-wise relative error bound per framework (f32 fixtures). The reference accumulates in float64 from the same
// f32 weights and inputs; the frameworks compute in f32, so the measured errors are a few f32 ulps (~1e-7).
double relative_bound(const std::string& framework) {
  static const std::map<std::string, double> bounds = {
      {"pytorch", 1e-5}, {"onnxruntime", 1e-5}, {"keras", 1e-5}, {"mindspore", 1e-5}};
  const auto it = bounds.find(framework);
  return it == bounds.end() ? 0.0 : it->second;
}

std::string conformance_dir() {
  return std::string(CULSTM_SOURCE_DIR) + "/tests/conformance/fixtures";
}

struct FixtureId {
  std::string framework;
  std::string name;
  std::string path;
};

// gtest prints parameters of failed tests with this ("pytorch/l1_fwd"), not as raw bytes.
void PrintTo(const FixtureId& id, std::ostream* os) {
  *os << id.framework << "/" << id.name;
}

std::vector<FixtureId> discover_fixtures() {
  std::vector<FixtureId> out;
  for (const char* framework : kFrameworks) {
    const fs::path dir = fs::path(conformance_dir()) / framework;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<FixtureId> found;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".safetensors") continue;
      found.push_back({framework, entry.path().stem().string(), entry.path().string()});
    }
    std::sort(found.begin(), found.end(), [](const FixtureId& a, const FixtureId& b) { return a.name < b.name; });
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

std::string test_name(const ::testing::TestParamInfo<FixtureId>& info) {
  std::string s = info.param.framework + "_" + info.param.name;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

// ---- small helpers over the fixture file ------------------------------------------------------------------------

std::string meta(const SafetensorsFile& file, const std::string& key, const std::string& fallback = "") {
  const auto it = file.metadata.find("conformance." + key);
  return it == file.metadata.end() ? fallback : it->second;
}

std::set<std::string> split_commas(const std::string& text) {
  std::set<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.insert(item);
  }
  return out;
}

const Array* tensor(const SafetensorsFile& file, const std::string& name) {
  const auto it = file.tensors.find("conformance." + name);
  return it == file.tensors.end() ? nullptr : &it->second;
}

// The spec the generator used: sizes from the JSON's top level, the rest from its "spec" member (culstm.spec form).
Status expected_spec(const std::string& text, LstmSpec* spec) {
  io::json::Value root;
  Status st = io::json::parse(text, &root);
  if (!st.ok()) return st;
  auto integer = [&](const char* key) -> std::int64_t {
    const io::json::Value* v = root.find(key);
    return v != nullptr && v->is_number() ? static_cast<std::int64_t>(v->number) : -1;
  };
  auto boolean = [&](const char* key) {
    const io::json::Value* v = root.find(key);
    return v != nullptr && v->is_bool() && v->boolean;
  };
  LstmSpec s;
  s.input_size = integer("input_size");
  s.hidden_size = integer("hidden_size");
  s.proj_size = integer("proj_size");
  s.num_layers = static_cast<int>(integer("num_layers"));
  s.bias = boolean("bias");
  s.peepholes = boolean("peepholes");
  const io::json::Value* rest = root.find("spec");
  if (rest == nullptr) return Status(StatusCode::kFormatError, "conformance.expected_spec has no \"spec\"");
  st = io::spec_from_json(io::json::serialize(*rest), &s);
  if (!st.ok()) return st;
  *spec = s;
  return Status::Ok();
}

std::string describe_activation(const Activation& a) {
  std::ostringstream os;
  os << activation_kind_name(a.kind) << "(" << a.alpha << ", " << a.beta << ")";
  return os.str();
}

// Every field of the spec that the weights, their names and their metadata determine.
void expect_same_spec(const LstmSpec& expected, const LstmSpec& actual, const std::string& what) {
  SCOPED_TRACE(what + ": expected " + expected.describe() + "\n  actual " + actual.describe());
  EXPECT_EQ(expected.input_size, actual.input_size);
  EXPECT_EQ(expected.hidden_size, actual.hidden_size);
  EXPECT_EQ(expected.proj_size, actual.proj_size);
  EXPECT_EQ(expected.num_layers, actual.num_layers);
  EXPECT_EQ(direction_name(expected.direction), std::string(direction_name(actual.direction)));
  EXPECT_EQ(expected.bias, actual.bias);
  EXPECT_EQ(layout_name(expected.layout), std::string(layout_name(actual.layout)));
  EXPECT_EQ(describe_activation(expected.gate_activation), describe_activation(actual.gate_activation));
  EXPECT_EQ(describe_activation(expected.cell_activation), describe_activation(actual.cell_activation));
  EXPECT_EQ(describe_activation(expected.hidden_activation), describe_activation(actual.hidden_activation));
  EXPECT_EQ(expected.gate_clip.has_value(), actual.gate_clip.has_value());
  if (expected.gate_clip && actual.gate_clip) {
    EXPECT_EQ(*expected.gate_clip, *actual.gate_clip);
  }
  EXPECT_EQ(expected.cell_clip.has_value(), actual.cell_clip.has_value());
  EXPECT_EQ(expected.peepholes, actual.peepholes);
  EXPECT_EQ(expected.input_forget, actual.input_forget);
  EXPECT_EQ(dtype_name(expected.dtype), std::string(dtype_name(actual.dtype)));
}

void expect_same_weights(const Weights& a, const Weights& b, const std::string& what) {
  ASSERT_EQ(a.num_layers(), b.num_layers()) << what;
  ASSERT_EQ(a.num_directions(), b.num_directions()) << what;
  for (int l = 0; l < a.num_layers(); ++l) {
    for (int d = 0; d < a.num_directions(); ++d) {
      const LayerWeights& x = a.at(l, d);
      const LayerWeights& y = b.at(l, d);
      EXPECT_EQ(x.w_ih, y.w_ih) << what << " layer " << l << " dir " << d << " w_ih";
      EXPECT_EQ(x.w_hh, y.w_hh) << what << " layer " << l << " dir " << d << " w_hh";
      EXPECT_EQ(x.b_ih, y.b_ih) << what << " layer " << l << " dir " << d << " b_ih";
      EXPECT_EQ(x.b_hh, y.b_hh) << what << " layer " << l << " dir " << d << " b_hh";
      EXPECT_EQ(x.w_hr, y.w_hr) << what << " layer " << l << " dir " << d << " w_hr";
      EXPECT_EQ(x.peephole, y.peephole) << what << " layer " << l << " dir " << d << " peephole";
    }
  }
}

// [a, b, c] -> [b, a, c] (row-major).
std::vector<float> swap01(const std::vector<float>& v, std::int64_t a, std::int64_t b, std::int64_t c) {
  std::vector<float> out(v.size());
  for (std::int64_t i = 0; i < a; ++i) {
    for (std::int64_t j = 0; j < b; ++j) {
      for (std::int64_t k = 0; k < c; ++k) out[(j * a + i) * c + k] = v[(i * b + j) * c + k];
    }
  }
  return out;
}

struct ErrorStats {
  double relative = 0.0;  // ‖out − ref‖ / ‖ref‖ (absolute norm when ‖ref‖ = 0)
  double max_abs = 0.0;
  std::size_t compared = 0;
};

// Compares where mask (same size, or empty = everywhere) is true. Any NaN in `out` makes the error infinite.
ErrorStats compare(const std::vector<float>& out, const std::vector<float>& ref, const std::vector<bool>& mask = {}) {
  ErrorStats s;
  double diff2 = 0.0, ref2 = 0.0;
  for (std::size_t k = 0; k < ref.size(); ++k) {
    if (!mask.empty() && !mask[k]) continue;
    const double d = static_cast<double>(out[k]) - static_cast<double>(ref[k]);
    if (std::isnan(d)) {
      s.max_abs = s.relative = INFINITY;
      return s;
    }
    diff2 += d * d;
    ref2 += static_cast<double>(ref[k]) * ref[k];
    s.max_abs = std::max(s.max_abs, std::fabs(d));
    ++s.compared;
  }
  s.relative = ref2 > 0.0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return s;
}

// Largest relative error seen per framework in this process; printed at exit (run the binary with
// --gtest_filter='Fixtures/Conformance.*' to see every framework's maximum).
std::map<std::string, double>& measured_max() {
  static std::map<std::string, double> m;
  return m;
}

class MeasuredErrorPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [framework, err] : measured_max()) {
      std::printf("[conformance] %-12s max relative error %.3g (bound %.0e)\n", framework.c_str(), err,
                  relative_bound(framework));
    }
  }
};
[[maybe_unused]] const auto* const kPrinter = ::testing::AddGlobalTestEnvironment(new MeasuredErrorPrinter);

// ---- the test ---------------------------------------------------------------------------------------------------

class Conformance : public ::testing::TestWithParam<FixtureId> {};

TEST_P(Conformance, MatchesFramework) {
  const FixtureId& id = GetParam();
  SafetensorsFile file;
  const Status read = io::read_safetensors(id.path, &file);
  ASSERT_TRUE(read.ok()) << read.to_string();
  const std::string description = meta(file, "description");
  SCOPED_TRACE(id.framework + "/" + id.name + " (" + meta(file, "framework_version") + "): " + description);
  const std::set<std::string> adjustments = split_commas(meta(file, "adjustments"));
  const std::set<std::string> known = {"layout_from_call", "y_time_reversed", "y_valid_steps_only",
                                       "zero_length_state_is_zero", "y_last_is_h_n"};
  for (const std::string& a : adjustments) ASSERT_TRUE(known.count(a)) << "unknown adjustment " << a;

  LstmSpec expected;
  const Status es = expected_spec(meta(file, "expected_spec"), &expected);
  ASSERT_TRUE(es.ok()) << es.to_string();

  // Import through the framework's naming, as a user would.
  io::ImportOptions options;
  const Status ns = io::parse_naming(meta(file, "naming"), &options.naming);
  ASSERT_TRUE(ns.ok()) << ns.to_string();
  options.prefix = meta(file, "prefix");
  LstmSpec spec;
  Weights weights;
  const Status imported = io::import_weights(file, options, &spec, &weights);
  // A model culstm cannot express: the import must refuse it, with the code and the option named, whatever naming.
  const std::string expect_error = meta(file, "expect_error");
  if (!expect_error.empty()) {
    const std::string expect_message = meta(file, "expect_message");
    ASSERT_FALSE(expect_message.empty()) << "conformance.expect_error without conformance.expect_message";
    for (io::Naming naming : {options.naming, io::Naming::kAuto}) {
      io::ImportOptions o = options;
      o.naming = naming;
      const Status st = io::import_weights(file, o, &spec, &weights);
      EXPECT_EQ(status_code_name(st.code()), expect_error) << st.to_string();
      EXPECT_NE(st.message().find(expect_message), std::string::npos)
          << "expected the message to name " << expect_message << ", got: " << st.to_string();
    }
    return;
  }
  ASSERT_TRUE(imported.ok()) << "import_weights(naming=" << io::naming_name(options.naming) << ", prefix=\""
                             << options.prefix << "\"): " << imported.to_string();
  if (adjustments.count("layout_from_call")) spec.layout = expected.layout;
  expect_same_spec(expected, spec, "import_weights");

  // Naming::kAuto must recognise the same convention.
  {
    io::ImportOptions auto_options = options;
    auto_options.naming = io::Naming::kAuto;
    LstmSpec auto_spec;
    Weights auto_weights;
    const Status st = io::import_weights(file, auto_options, &auto_spec, &auto_weights);
    EXPECT_TRUE(st.ok()) << "import_weights(naming=auto): " << st.to_string();
    if (st.ok()) {
      if (adjustments.count("layout_from_call")) auto_spec.layout = expected.layout;
      expect_same_spec(spec, auto_spec, "naming=auto");
      expect_same_weights(weights, auto_weights, "naming=auto");
    }
  }

  // The .onnx model itself, where the fixture keeps one: import_onnx_file must give the same spec and weights.
  const std::string onnx_file = meta(file, "onnx_file");
  if (!onnx_file.empty()) {
    const std::string onnx_path = (fs::path(id.path).parent_path() / onnx_file).string();
    LstmSpec onnx_spec;
    Weights onnx_weights;
    const Status st = io::import_onnx_file(onnx_path, "", &onnx_spec, &onnx_weights);
    EXPECT_TRUE(st.ok()) << "import_onnx_file(" << onnx_path << "): " << st.to_string();
    if (st.ok()) {
      expect_same_spec(expected, onnx_spec, "import_onnx_file");
      expect_same_weights(weights, onnx_weights, "import_onnx_file");
    }
  }

  // Inputs, in culstm's layouts.
  const Array* x = tensor(file, "x");
  ASSERT_NE(x, nullptr);
  ASSERT_EQ(x->shape.size(), 3u);
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = batch_major ? x->shape[1] : x->shape[0];
  const std::int64_t B = batch_major ? x->shape[0] : x->shape[1];
  const std::int64_t D = spec.num_directions(), H = spec.hidden_size, R = spec.recurrent_size();
  const std::int64_t LD = testing_util::state_rows(spec);
  const std::string state_layout = meta(file, "state_layout");
  ASSERT_TRUE(state_layout == "ldbr" || state_layout == "onnx_dbh" || state_layout == "onnx_bdh") << state_layout;
  // [L*D, B, *] from the fixture's state layout (ONNX layout 1 keeps states as [B, D, H]).
  auto state = [&](const Array& a, std::int64_t width) {
    std::vector<float> v = a.to_f32();
    EXPECT_EQ(static_cast<std::int64_t>(v.size()), LD * B * width);
    return state_layout == "onnx_bdh" ? swap01(v, B, LD, width) : v;
  };
  testing_util::HostRun run;
  run.T = T;
  run.B = B;
  run.x = x->to_f32();
  if (const Array* lengths = tensor(file, "lengths")) {
    ASSERT_EQ(lengths->dtype, DType::kI32);
    run.with_lengths = true;
    for (float v : lengths->to_f32()) run.lengths.push_back(static_cast<std::int32_t>(v));
    ASSERT_EQ(static_cast<std::int64_t>(run.lengths.size()), B);
  }
  if (const Array* h0 = tensor(file, "h0")) {
    run.with_h0 = true;
    run.h0 = state(*h0, R);
  }
  if (const Array* c0 = tensor(file, "c0")) {
    run.with_c0 = true;
    run.c0 = state(*c0, H);
  }

  auto model = testing_util::make_reference_model(spec, weights, B, T);
  ASSERT_NE(model, nullptr);
  const Status fw = testing_util::run_host_forward(*model, run);
  ASSERT_TRUE(fw.ok()) << fw.to_string();

  // The framework's outputs, converted to culstm's layouts and semantics.
  const Array* y_a = tensor(file, "y");
  const Array* hn_a = tensor(file, "h_n");
  const Array* cn_a = tensor(file, "c_n");
  ASSERT_TRUE(y_a != nullptr && hn_a != nullptr && cn_a != nullptr);
  std::vector<float> y_ref = y_a->to_f32();
  ASSERT_EQ(static_cast<std::int64_t>(y_ref.size()), T * B * D * R);
  const std::string y_layout = meta(file, "y_layout");
  if (y_layout == "onnx_tdbh") {
    // [T, D, B, H] -> [T, B, D*H]
    std::vector<float> out(y_ref.size());
    const std::vector<float> in = y_a->to_f32();
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t d = 0; d < D; ++d) {
        for (std::int64_t b = 0; b < B; ++b) {
          for (std::int64_t k = 0; k < R; ++k) out[((t * B + b) * D + d) * R + k] = in[((t * D + d) * B + b) * R + k];
        }
      }
    }
    y_ref = out;
  } else {
    // seq_major [T,B,D*R], batch_major [B,T,D*R] and ONNX layout 1 [B,T,D,H] are already culstm's memory order.
    ASSERT_TRUE(y_layout == "seq_major" || y_layout == "batch_major" || y_layout == "onnx_btdh") << y_layout;
  }
  // Index of y[t, b, :] in the culstm layout.
  auto y_row = [&](std::int64_t t, std::int64_t b) { return ((batch_major ? b * T + t : t * B + b) * D * R); };
  if (adjustments.count("y_time_reversed")) {
    std::vector<float> flipped(y_ref.size());
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t b = 0; b < B; ++b) {
        std::copy_n(&y_ref[y_row(T - 1 - t, b)], D * R, &flipped[y_row(t, b)]);
      }
    }
    y_ref = flipped;
  }
  std::vector<float> hn_ref = state(*hn_a, R);
  std::vector<float> cn_ref = state(*cn_a, H);
  if (adjustments.count("zero_length_state_is_zero")) {
    ASSERT_TRUE(run.with_lengths);
    for (std::int64_t b = 0; b < B; ++b) {
      if (run.lengths[b] != 0) continue;
      for (std::int64_t r = 0; r < LD; ++r) {
        for (std::int64_t k = 0; k < R; ++k) {
          float& v = hn_ref[(r * B + b) * R + k];
          EXPECT_EQ(v, 0.0f) << "the framework's h_n of zero-length row " << b << " is no longer 0";
          v = run.with_h0 ? run.h0[(r * B + b) * R + k] : 0.0f;
        }
        for (std::int64_t k = 0; k < H; ++k) {
          float& v = cn_ref[(r * B + b) * H + k];
          EXPECT_EQ(v, 0.0f) << "the framework's c_n of zero-length row " << b << " is no longer 0";
          v = run.with_c0 ? run.c0[(r * B + b) * H + k] : 0.0f;
        }
      }
    }
  }
  std::vector<bool> y_mask;
  if (adjustments.count("y_valid_steps_only")) {
    ASSERT_TRUE(run.with_lengths);
    y_mask.assign(y_ref.size(), false);
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t b = 0; b < B; ++b) {
        if (t < run.lengths[b]) std::fill_n(y_mask.begin() + y_row(t, b), D * R, true);
      }
    }
  }

  // Keras's return_sequences=False output [B, D*R]: the last layer's h_n, directions side by side (go_backwards
  // and the backward half of a Bidirectional end at t = 0, masked rows at their last valid step).
  std::vector<float> y_last, y_last_ref;
  if (adjustments.count("y_last_is_h_n")) {
    const Array* y_last_a = tensor(file, "y_last");
    ASSERT_NE(y_last_a, nullptr);
    y_last_ref = y_last_a->to_f32();
    ASSERT_EQ(static_cast<std::int64_t>(y_last_ref.size()), B * D * R);
    const std::int64_t top = LD - D;  // the last layer's first state row
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t d = 0; d < D; ++d) {
        const float* h = &run.h_n[((top + d) * B + b) * R];
        y_last.insert(y_last.end(), h, h + R);
      }
    }
  }

  const double bound = relative_bound(id.framework);
  ASSERT_GT(bound, 0.0) << "no error bound for framework " << id.framework;
  const ErrorStats ey = compare(run.y, y_ref, y_mask);
  const ErrorStats eh = compare(run.h_n, hn_ref);
  const ErrorStats ec = compare(run.c_n, cn_ref);
  EXPECT_LE(ey.relative, bound) << "y (max abs " << ey.max_abs << ", " << ey.compared << " values compared)";
  EXPECT_LE(eh.relative, bound) << "h_n (max abs " << eh.max_abs << ")";
  EXPECT_LE(ec.relative, bound) << "c_n (max abs " << ec.max_abs << ")";
  const ErrorStats el = compare(y_last, y_last_ref);
  EXPECT_LE(el.relative, bound) << "y_last (max abs " << el.max_abs << ")";
  const double worst = std::max({ey.relative, eh.relative, ec.relative, el.relative});
  double& max_seen = measured_max()[id.framework];
  max_seen = std::max(max_seen, worst);
  RecordProperty("relative_error", std::to_string(worst));
  std::printf("[conformance] %s/%s: relative y %.3g  h_n %.3g  c_n %.3g  (max abs %.3g)\n", id.framework.c_str(),
              id.name.c_str(), ey.relative, eh.relative, ec.relative, std::max({ey.max_abs, eh.max_abs, ec.max_abs}));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Conformance, ::testing::ValuesIn(discover_fixtures()), test_name);

// The fixtures are committed: their absence is a broken checkout, not a reason to pass.
TEST(ConformanceFixtures, EveryFrameworkHasFixtures) {
  std::map<std::string, int> count;
  for (const FixtureId& id : discover_fixtures()) ++count[id.framework];
  for (const char* framework : kFrameworks) {
    EXPECT_GE(count[framework], 8) << "fixtures for " << framework << " under " << conformance_dir();
  }
}

}  // namespace
}  // namespace culstm
