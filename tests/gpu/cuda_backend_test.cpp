// The cuda backend against the reference (docs/design.md §5): a covering grid over dtype x layers x direction x
// projection x lengths x layout x initial states x cell options x sizes, on fresh random inputs, outputs poisoned
// with 0xFF bytes (NaN in f32/f16/bf16) so that every element must be written; plus determinism, CUDA-graph replay
// equal to direct launches bit for bit, capture by the caller, no synchronization of the caller's stream, and
// bad input. Every test skips with the reason when there is no GPU.
//
// Tolerances are PROVISIONAL (set before any GPU run): on the first GPU run, read the "[culstm measured]" table
// printed at the end of the suite (max relative and absolute error per dtype over the grid) and set them from that
// evidence, with a margin, in docs/cuda_backend.md and here.
#include "cuda/cuda_backend.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "device_run.h"
#include "gpu_test_util.h"
#include "io/array.h"
#include "persistent_traits.h"
#include "test_util.h"

namespace culstm {
namespace {

using testing_util::random_values;
using testing_util::random_weights;

// ---------------------------------------------------------------------------------------------------------------
// Tolerances (provisional, see the top of the file) and the measured-error record.

struct Tolerance {
  double rel;      // ||out - ref|| / ||ref||
  double max_abs;  // max |out - ref|
};

std::string precision_name(DType dtype, MathMode math) {
  if (dtype == DType::kF32) return math == MathMode::kAllowTF32 ? "f32-tf32" : "f32-strict";
  return dtype_name(dtype);
}

Tolerance tolerance_for(DType dtype, MathMode math) {
  // PROVISIONAL until measured on a GPU. f32 strict: f32 GEMMs against float64 (a few ulp per step and layer);
  // tf32: 10-bit mantissa inputs; f16/bf16: 16-bit h and layer outputs rounded every step (docs/decisions.md).
  if (dtype == DType::kF32) return math == MathMode::kAllowTF32 ? Tolerance{5e-3, 3e-2} : Tolerance{1e-5, 1e-4};
  if (dtype == DType::kF16) return Tolerance{5e-3, 3e-2};
  return Tolerance{3e-2, 2e-1};  // bf16
}

struct Measured {
  double rel = 0.0, max_abs = 0.0;
  int cases = 0;
};
std::mutex g_measured_mutex;
std::map<std::string, Measured> g_measured;

void record_measured(const std::string& precision, double rel, double max_abs) {
  std::lock_guard<std::mutex> lock(g_measured_mutex);
  Measured& m = g_measured[precision];
  m.rel = std::max(m.rel, rel);
  m.max_abs = std::max(m.max_abs, max_abs);
  ++m.cases;
}

// Prints the worst measured errors per precision after all tests: the evidence for the tolerances.
class MeasuredErrorReport : public ::testing::Environment {
 public:
  void TearDown() override {
    std::lock_guard<std::mutex> lock(g_measured_mutex);
    if (g_measured.empty()) return;
    std::cout << "[culstm measured] cuda backend vs reference, worst over the compared tensors (y, h_n, c_n):\n";
    for (const auto& [precision, m] : g_measured) {
      std::cout << "[culstm measured]   " << precision << ": max rel " << m.rel << ", max abs " << m.max_abs << " over "
                << m.cases << " tensors\n";
    }
  }
};
[[maybe_unused]] const auto* const g_report = ::testing::AddGlobalTestEnvironment(new MeasuredErrorReport);

// ---------------------------------------------------------------------------------------------------------------
// Host encoding and device buffers.

// f32 values as a `dtype` tensor in memory (and back): io::Array rounds as the .npy writer and the reference do.
std::vector<std::uint8_t> encode(const std::vector<float>& values, DType dtype) {
  return io::Array::from_f32(values, {static_cast<std::int64_t>(values.size())}, dtype).bytes;
}

std::vector<float> decode(const std::vector<std::uint8_t>& bytes, DType dtype) {
  io::Array array;
  array.dtype = dtype;
  array.bytes = bytes;
  return array.to_f32();
}

// The value `v` has once stored in `dtype`.
float rounded(float v, DType dtype) {
  return decode(encode({v}, dtype), dtype)[0];
}

using DeviceMemory = gpu_test::DeviceBuffer;  // owns cudaMalloc'ed memory; ok() is false when it failed

// ---------------------------------------------------------------------------------------------------------------
// One problem (inputs in f32, rounded to the model dtype when encoded) and its outputs.

struct Inputs {
  std::int64_t T = 0, B = 0;
  std::vector<float> x, h0, c0;       // h0 / c0 empty = absent
  std::vector<std::int32_t> lengths;  // empty = absent
  float padding = 0.0f;
};

struct Outputs {
  std::vector<std::uint8_t> y_raw, h_n_raw, c_n_raw;  // exactly what the backend wrote
  std::vector<float> y, h_n, c_n;                     // decoded
};

std::int64_t state_rows(const LstmSpec& spec) {
  return static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
}

ForwardArgs make_args(const LstmSpec& spec, MemoryKind mem, const Inputs& in, const void* x, const void* h0,
                      const void* c0, void* y, void* h_n, void* c_n, void* workspace, std::size_t workspace_bytes) {
  const bool bm = spec.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = in.T, B = in.B, LD = state_rows(spec);
  const DType dt = spec.dtype;
  ForwardArgs a;
  a.x = bm ? TensorView(x, dt, mem, {B, T, spec.input_size}) : TensorView(x, dt, mem, {T, B, spec.input_size});
  if (!in.lengths.empty()) a.lengths = TensorView::host(in.lengths.data(), DType::kI32, {B});
  if (h0) a.h0 = TensorView(h0, dt, mem, {LD, B, spec.recurrent_size()});
  if (c0) a.c0 = TensorView(c0, dt, mem, {LD, B, spec.hidden_size});
  if (y) {
    a.y = bm ? TensorView(y, dt, mem, {B, T, spec.output_size()}) : TensorView(y, dt, mem, {T, B, spec.output_size()});
  }
  if (h_n) a.h_n = TensorView(h_n, dt, mem, {LD, B, spec.recurrent_size()});
  if (c_n) a.c_n = TensorView(c_n, dt, mem, {LD, B, spec.hidden_size});
  a.workspace = workspace;
  a.workspace_bytes = workspace_bytes;
  a.padding_value = in.padding;
  return a;
}

std::size_t y_elems(const LstmSpec& spec, const Inputs& in) {
  return static_cast<std::size_t>(in.T * in.B * spec.output_size());
}
std::size_t h_elems(const LstmSpec& spec, const Inputs& in) {
  return static_cast<std::size_t>(state_rows(spec) * in.B * spec.recurrent_size());
}
std::size_t c_elems(const LstmSpec& spec, const Inputs& in) {
  return static_cast<std::size_t>(state_rows(spec) * in.B * spec.hidden_size);
}

// The reference backend on host copies of the inputs (encoded in the model dtype), outputs poisoned first.
::testing::AssertionResult run_reference(const Model& model, const Inputs& in, Outputs* out) {
  const LstmSpec& spec = model.spec();
  const DType dt = spec.dtype;
  std::vector<std::uint8_t> x = encode(in.x, dt), h0 = encode(in.h0, dt), c0 = encode(in.c0, dt);
  out->y_raw.assign(y_elems(spec, in) * dtype_size(dt), 0xFF);
  out->h_n_raw.assign(h_elems(spec, in) * dtype_size(dt), 0xFF);
  out->c_n_raw.assign(c_elems(spec, in) * dtype_size(dt), 0xFF);
  std::size_t bytes = 0;
  Status st = model.workspace_size(in.B, in.T, &bytes);
  if (!st.ok()) return ::testing::AssertionFailure() << st.to_string();
  std::vector<std::uint8_t> workspace(bytes);
  const ForwardArgs args = make_args(spec, MemoryKind::kHost, in, x.data(), in.h0.empty() ? nullptr : h0.data(),
                                     in.c0.empty() ? nullptr : c0.data(), out->y_raw.data(), out->h_n_raw.data(),
                                     out->c_n_raw.data(), workspace.data(), bytes);
  std::unique_ptr<Context> ctx;
  st = Context::create(model, &ctx);
  if (st.ok()) st = forward(*ctx, model, args);
  if (!st.ok()) return ::testing::AssertionFailure() << "reference forward: " << st.to_string();
  out->y = decode(out->y_raw, dt);
  out->h_n = decode(out->h_n_raw, dt);
  out->c_n = decode(out->c_n_raw, dt);
  return ::testing::AssertionSuccess();
}

// One call's device tensors for a cuda model; reused across calls so that graph keys can repeat.
class GpuCall {
 public:
  ::testing::AssertionResult init(const Model& model, const Inputs& in) {
    const LstmSpec& spec = model.spec();
    spec_ = spec;
    in_ = in;
    const std::size_t v = dtype_size(spec.dtype);
    x_ = DeviceMemory(in.x.size() * v);
    h0_ = DeviceMemory(in.h0.size() * v);
    c0_ = DeviceMemory(in.c0.size() * v);
    y_ = DeviceMemory(y_elems(spec, in) * v);
    h_n_ = DeviceMemory(h_elems(spec, in) * v);
    c_n_ = DeviceMemory(c_elems(spec, in) * v);
    std::size_t bytes = 0;
    const Status st = model.workspace_size(in.B, in.T, &bytes);
    if (!st.ok()) return ::testing::AssertionFailure() << st.to_string();
    workspace_ = DeviceMemory(bytes);
    for (const DeviceMemory* m : {&x_, &h0_, &c0_, &y_, &h_n_, &c_n_, &workspace_}) {
      if (!m->ok()) return ::testing::AssertionFailure() << "cudaMalloc failed";
    }
    return upload();
  }

  // Re-uploads the inputs (e.g. after changing lengths or padding in `inputs()`).
  ::testing::AssertionResult upload() {
    const DType dt = spec_.dtype;
    const std::pair<DeviceMemory*, const std::vector<float>*> parts[] = {
        {&x_, &in_.x}, {&h0_, &in_.h0}, {&c0_, &in_.c0}};
    for (const auto& p : parts) {
      if (p.second->empty()) continue;
      const std::vector<std::uint8_t> bytes = encode(*p.second, dt);
      const cudaError_t err = cudaMemcpy(p.first->get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice);
      if (err != cudaSuccess) return ::testing::AssertionFailure() << "upload: " << cudaGetErrorString(err);
    }
    return ::testing::AssertionSuccess();
  }

  Inputs& inputs() { return in_; }

  // A fresh y buffer (a different pointer: graph keys change).
  bool reallocate_y() {
    y_ = DeviceMemory(y_elems(spec_, in_) * dtype_size(spec_.dtype));
    return y_.ok();
  }

  ForwardArgs args() const {
    return make_args(spec_, MemoryKind::kDevice, in_, x_.get(), in_.h0.empty() ? nullptr : h0_.get(),
                     in_.c0.empty() ? nullptr : c0_.get(), y_.get(), h_n_.get(), c_n_.get(), workspace_.get(),
                     workspace_.bytes());
  }

  // Poisons the outputs on `stream`, then runs forward on it.
  Status run(Context& ctx, const Model& model, cudaStream_t stream) const {
    for (const DeviceMemory* m : {&y_, &h_n_, &c_n_}) {
      const cudaError_t err = cudaMemsetAsync(m->get(), 0xFF, m->bytes(), stream);
      if (err != cudaSuccess) return Status(StatusCode::kCudaError, cudaGetErrorString(err));
    }
    return forward(ctx, model, args(), stream);
  }

  // Waits for `stream` and copies the outputs back.
  ::testing::AssertionResult download(cudaStream_t stream, Outputs* out) const {
    cudaError_t err = cudaStreamSynchronize(stream);
    if (err != cudaSuccess) return ::testing::AssertionFailure() << "sync: " << cudaGetErrorString(err);
    const std::pair<const DeviceMemory*, std::vector<std::uint8_t>*> parts[] = {
        {&y_, &out->y_raw}, {&h_n_, &out->h_n_raw}, {&c_n_, &out->c_n_raw}};
    for (const auto& p : parts) {
      p.second->resize(p.first->bytes());
      err = cudaMemcpy(p.second->data(), p.first->get(), p.first->bytes(), cudaMemcpyDeviceToHost);
      if (err != cudaSuccess) return ::testing::AssertionFailure() << "download: " << cudaGetErrorString(err);
    }
    out->y = decode(out->y_raw, spec_.dtype);
    out->h_n = decode(out->h_n_raw, spec_.dtype);
    out->c_n = decode(out->c_n_raw, spec_.dtype);
    return ::testing::AssertionSuccess();
  }

 private:
  LstmSpec spec_;
  Inputs in_;
  DeviceMemory x_, h0_, c0_, y_, h_n_, c_n_, workspace_;
};

std::shared_ptr<const Model> make_model(Backend backend, const LstmSpec& spec, const Weights& weights,
                                        std::int64_t max_batch = 64, std::int64_t max_seq = 256,
                                        CudaEngine engine = CudaEngine::kAuto) {
  ModelOptions options;
  options.backend = backend;
  options.cuda_engine = engine;
  options.max_batch = max_batch;
  options.max_seq_len = max_seq;
  std::shared_ptr<const Model> model;
  const Status st = Model::create(spec, weights, options, &model);
  EXPECT_TRUE(st.ok()) << backend_name(backend) << ": " << st.to_string();
  return model;
}

// A cuda model whose every layer runs `engine` (the sizes in these tests fit the persistent engine on any GPU
// from sm_80 on); fails the test when the plan says otherwise.
std::shared_ptr<const Model> make_cuda_model(const LstmSpec& spec, const Weights& weights, CudaEngine engine) {
  std::shared_ptr<const Model> model = make_model(Backend::kCuda, spec, weights, 64, 256, engine);
  if (!model) return nullptr;
  const char* want = engine == CudaEngine::kPersistent ? "persistent" : "stepwise";
  for (const PlanStep& step : model->plan().steps()) {
    EXPECT_EQ(step.engine, want) << "layer " << step.layer << ": " << step.reason;
  }
  return model;
}

constexpr CudaEngine kEngines[] = {CudaEngine::kStepwise, CudaEngine::kPersistent};

std::unique_ptr<Context> make_context(const Model& model, CudaGraphMode mode) {
  std::unique_ptr<Context> ctx;
  Status st = Context::create(model, &ctx);
  EXPECT_TRUE(st.ok()) << st.to_string();
  if (!ctx) return nullptr;
  st = cuda_set_graph_mode(*ctx, mode);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return ctx;
}

// Runs a cuda model once on fresh buffers (direct launches unless `mode` says otherwise) on `stream`.
::testing::AssertionResult run_gpu(const Model& model, const Inputs& in, Outputs* out, cudaStream_t stream = nullptr,
                                   CudaGraphMode mode = CudaGraphMode::kOff) {
  GpuCall call;
  ::testing::AssertionResult ok = call.init(model, in);
  if (!ok) return ok;
  std::unique_ptr<Context> ctx = make_context(model, mode);
  if (!ctx) return ::testing::AssertionFailure() << "Context::create failed";
  const Status st = call.run(*ctx, model, stream);
  if (!st.ok()) return ::testing::AssertionFailure() << "cuda forward: " << st.to_string();
  return call.download(stream, out);
}

// ---------------------------------------------------------------------------------------------------------------
// Comparison.

struct ErrorStats {
  double rel = 0.0, max_abs = 0.0;
};

ErrorStats error_stats(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff2 = 0.0, ref2 = 0.0, max_abs = 0.0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double d = static_cast<double>(got[k]) - static_cast<double>(ref[k]);
    diff2 += d * d;
    ref2 += static_cast<double>(ref[k]) * static_cast<double>(ref[k]);
    max_abs = std::max(max_abs, std::fabs(d));
  }
  ErrorStats s;
  s.rel = ref2 > 0.0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  s.max_abs = max_abs;
  return s;
}

// Every element written (no NaN poison left), the reference finite, and the error within tolerance.
// `engine` labels the measured-error record ("stepwise", "persistent").
::testing::AssertionResult close_to_reference(const char* what, const std::vector<float>& got,
                                              const std::vector<float>& ref, DType dtype, MathMode math,
                                              const char* engine = "stepwise") {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << what << ": " << got.size() << " values, reference has " << ref.size();
  }
  for (std::size_t k = 0; k < got.size(); ++k) {
    if (!std::isfinite(ref[k])) return ::testing::AssertionFailure() << what << "[" << k << "]: reference not finite";
    if (!std::isfinite(got[k])) {
      return ::testing::AssertionFailure()
             << what << "[" << k << "] = " << got[k] << ": not written (poison left) or not finite";
    }
  }
  const ErrorStats e = error_stats(got, ref);
  record_measured(std::string(engine) + " " + precision_name(dtype, math), e.rel, e.max_abs);
  if (std::getenv("CULSTM_PRINT_ERRORS") != nullptr) {
    std::cout << "[culstm measured] " << engine << " " << precision_name(dtype, math) << " " << what << ": rel "
              << e.rel << " max abs " << e.max_abs << "\n";
  }
  const Tolerance tol = tolerance_for(dtype, math);
  if (e.rel > tol.rel || e.max_abs > tol.max_abs) {
    return ::testing::AssertionFailure() << what << ": rel error " << e.rel << " (tolerance " << tol.rel
                                         << "), max abs error " << e.max_abs << " (tolerance " << tol.max_abs << ") ["
                                         << precision_name(dtype, math) << "]";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult bitwise_equal(const char* what, const Outputs& a, const Outputs& b) {
  if (a.y_raw != b.y_raw) return ::testing::AssertionFailure() << what << ": y differs";
  if (a.h_n_raw != b.h_n_raw) return ::testing::AssertionFailure() << what << ": h_n differs";
  if (a.c_n_raw != b.c_n_raw) return ::testing::AssertionFailure() << what << ": c_n differs";
  return ::testing::AssertionSuccess();
}

// Semantics that must hold exactly: y at t >= len[b] is the padding value; a sequence of length 0 leaves every
// layer's state as given (h_n = h0, c_n = c0, or zeros).
::testing::AssertionResult exact_semantics(const LstmSpec& spec, const Inputs& in, const Outputs& got) {
  if (in.lengths.empty()) return ::testing::AssertionSuccess();
  const bool bm = spec.layout == BatchLayout::kBatchMajor;
  const std::int64_t Y = spec.output_size(), R = spec.recurrent_size(), H = spec.hidden_size;
  const float pad = rounded(in.padding, spec.dtype);
  for (std::int64_t b = 0; b < in.B; ++b) {
    for (std::int64_t t = in.lengths[static_cast<std::size_t>(b)]; t < in.T; ++t) {
      const std::int64_t row = bm ? b * in.T + t : t * in.B + b;
      for (std::int64_t k = 0; k < Y; ++k) {
        const float v = got.y[static_cast<std::size_t>(row * Y + k)];
        if (v != pad) {
          return ::testing::AssertionFailure()
                 << "y[t=" << t << ", b=" << b << ", " << k << "] = " << v << ", expected the padding value " << pad;
        }
      }
    }
    if (in.lengths[static_cast<std::size_t>(b)] != 0) continue;
    for (std::int64_t row = 0; row < state_rows(spec); ++row) {
      for (std::int64_t k = 0; k < R; ++k) {
        const std::size_t i = static_cast<std::size_t>((row * in.B + b) * R + k);
        const float want = in.h0.empty() ? 0.0f : rounded(in.h0[i], spec.dtype);
        if (got.h_n[i] != want) {
          return ::testing::AssertionFailure() << "h_n[" << row << ", b=" << b << ", " << k << "] = " << got.h_n[i]
                                               << ", expected h0 unchanged (" << want << ") for a length-0 sequence";
        }
      }
      for (std::int64_t k = 0; k < H; ++k) {
        const std::size_t i = static_cast<std::size_t>((row * in.B + b) * H + k);
        const float want = in.c0.empty() ? 0.0f : rounded(in.c0[i], spec.dtype);
        if (got.c_n[i] != want) {
          return ::testing::AssertionFailure() << "c_n[" << row << ", b=" << b << ", " << k << "] = " << got.c_n[i]
                                               << ", expected c0 unchanged (" << want << ") for a length-0 sequence";
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------------------------
// The covering grid.

enum class Precision { kF32Strict, kF32Tf32, kF16, kBF16 };
enum class Lengths { kAbsent, kFull, kMixed, kWithZeros, kAllZero };
enum class Options { kPlain, kPeepholes, kGateClip, kCellClip, kHardSigmoid, kInputForget, kEverything };

struct Size {
  std::int64_t I, H, P, T, B;  // P used when the case projects (0: this size cannot project, H = 1)
};
// T = 1, B = 1, H = 1, 3, 129 and other odd sizes, all small so each case is quick.
const Size kSizes[] = {{5, 3, 2, 7, 4},  {1, 1, 0, 1, 1},     {16, 129, 64, 5, 3}, {8, 32, 8, 1, 5},
                       {3, 17, 5, 9, 1}, {32, 64, 16, 12, 8}, {24, 48, 12, 6, 2}};

// The dimensions and their number of values, in the order of GridCase's fields.
constexpr int kDims = 10;
constexpr int kValues[kDims] = {4, 3, 3, 2, 5, 2, 2, 2, 7, 7};

struct GridCase {
  int index = 0;
  int v[kDims] = {};  // precision, layers-1, direction, proj, lengths, layout, h0, c0, options, size

  Precision precision() const { return static_cast<Precision>(v[0]); }
  int layers() const { return v[1] + 1; }
  Direction direction() const { return static_cast<Direction>(v[2]); }
  const Size& size() const { return kSizes[v[9]]; }
  bool proj() const { return v[3] == 1 && size().P > 0; }
  Lengths lengths() const { return static_cast<Lengths>(v[4]); }
  BatchLayout layout() const { return static_cast<BatchLayout>(v[5]); }
  bool h0() const { return v[6] == 1; }
  bool c0() const { return v[7] == 1; }
  Options options() const { return static_cast<Options>(v[8]); }

  LstmSpec spec() const {
    LstmSpec s;
    s.input_size = size().I;
    s.hidden_size = size().H;
    s.proj_size = proj() ? size().P : 0;
    s.num_layers = layers();
    s.direction = direction();
    s.layout = layout();
    switch (precision()) {
      case Precision::kF32Strict: s.dtype = DType::kF32; break;
      case Precision::kF32Tf32:
        s.dtype = DType::kF32;
        s.math = MathMode::kAllowTF32;
        break;
      case Precision::kF16: s.dtype = DType::kF16; break;
      case Precision::kBF16: s.dtype = DType::kBF16; break;
    }
    switch (options()) {
      case Options::kPlain: break;
      case Options::kPeepholes: s.peepholes = true; break;
      case Options::kGateClip: s.gate_clip = 0.8f; break;
      case Options::kCellClip: s.cell_clip = 0.5f; break;
      case Options::kHardSigmoid: s.gate_activation = Activation::hard_sigmoid(0.2f, 0.5f); break;
      case Options::kInputForget: s.input_forget = true; break;
      case Options::kEverything:
        s.peepholes = true;
        s.gate_clip = 1.5f;
        s.cell_clip = 1.0f;
        s.gate_activation = Activation::hard_sigmoid(1.0f / 6.0f, 0.5f);
        s.cell_activation = Activation::scaled_tanh(1.2f, 0.8f);
        s.hidden_activation = Activation::softsign();
        s.input_forget = true;
        break;
    }
    return s;
  }

  std::string name() const {
    static const char* const precisions[] = {"f32", "tf32", "f16", "bf16"};
    static const char* const dirs[] = {"fwd", "rev", "bi"};
    static const char* const lens[] = {"nolen", "full", "mixed", "zeros", "allzero"};
    static const char* const opts[] = {"plain", "peep", "gclip", "cclip", "hsig", "ifg", "all"};
    const Size& s = size();
    return "c" + std::to_string(index) + "_" + precisions[v[0]] + "_L" + std::to_string(layers()) + "_" + dirs[v[2]] +
           (proj() ? "_proj" : "") + "_" + lens[v[4]] + (v[5] ? "_bm" : "_sm") + (h0() ? "_h0" : "") +
           (c0() ? "_c0" : "") + "_" + opts[v[8]] + "_I" + std::to_string(s.I) + "H" + std::to_string(s.H) + "T" +
           std::to_string(s.T) + "B" + std::to_string(s.B);
  }
};

// gtest prints parameters with this (instead of a byte dump).
void PrintTo(const GridCase& c, std::ostream* os) {
  *os << c.name();
}
void PrintTo(Precision p, std::ostream* os) {
  static const char* const names[] = {"f32", "tf32", "f16", "bf16"};
  *os << names[static_cast<int>(p)];
}

// A covering selection: every pair of values of every two dimensions appears in some case (greedy, AETG-style,
// from a fixed seed), then random cases up to `total` for higher-order interactions. A few hundred small cases
// instead of the full product (4*3*3*2*5*2*2*2*7*7 = 141120).
std::vector<GridCase> covering_grid(std::size_t total) {
  std::mt19937 rng(20240604);
  auto pair_id = [](int i, int a, int j, int b) { return ((i * 8 + a) * kDims + j) * 8 + b; };
  std::set<int> uncovered;
  for (int i = 0; i < kDims; ++i) {
    for (int j = i + 1; j < kDims; ++j) {
      for (int a = 0; a < kValues[i]; ++a) {
        for (int b = 0; b < kValues[j]; ++b) uncovered.insert(pair_id(i, a, j, b));
      }
    }
  }
  auto covers = [&](const GridCase& c) {
    int n = 0;
    for (int i = 0; i < kDims; ++i) {
      for (int j = i + 1; j < kDims; ++j) n += static_cast<int>(uncovered.count(pair_id(i, c.v[i], j, c.v[j])));
    }
    return n;
  };
  auto random_case = [&]() {
    GridCase c;
    for (int i = 0; i < kDims; ++i) c.v[i] = std::uniform_int_distribution<int>(0, kValues[i] - 1)(rng);
    return c;
  };
  std::vector<GridCase> cases;
  while (!uncovered.empty()) {
    // Decode the first uncovered pair and build candidates that contain it; keep the one covering most pairs.
    const int id = *uncovered.begin();
    const int b = id % 8, j = (id / 8) % kDims, a = (id / 8 / kDims) % 8, i = id / 8 / kDims / 8;
    GridCase best;
    int best_score = -1;
    for (int attempt = 0; attempt < 32; ++attempt) {
      GridCase c = random_case();
      c.v[i] = a;
      c.v[j] = b;
      const int score = covers(c);
      if (score > best_score) {
        best = c;
        best_score = score;
      }
    }
    for (int p = 0; p < kDims; ++p) {
      for (int q = p + 1; q < kDims; ++q) uncovered.erase(pair_id(p, best.v[p], q, best.v[q]));
    }
    cases.push_back(best);
  }
  while (cases.size() < total) cases.push_back(random_case());
  for (std::size_t k = 0; k < cases.size(); ++k) cases[k].index = static_cast<int>(k);
  return cases;
}

Inputs make_inputs(const LstmSpec& spec, std::int64_t T, std::int64_t B, Lengths lengths, bool h0, bool c0,
                   std::mt19937& rng) {
  Inputs in;
  in.T = T;
  in.B = B;
  in.x = random_values(static_cast<std::size_t>(T * B * spec.input_size), rng);
  if (h0) in.h0 = random_values(static_cast<std::size_t>(state_rows(spec) * B * spec.recurrent_size()), rng);
  if (c0) in.c0 = random_values(static_cast<std::size_t>(state_rows(spec) * B * spec.hidden_size), rng);
  std::uniform_int_distribution<int> any_len(0, static_cast<int>(T)), positive_len(1, static_cast<int>(T));
  for (std::int64_t b = 0; lengths != Lengths::kAbsent && b < B; ++b) {
    switch (lengths) {
      case Lengths::kFull: in.lengths.push_back(static_cast<std::int32_t>(T)); break;
      case Lengths::kMixed: in.lengths.push_back(positive_len(rng)); break;
      case Lengths::kWithZeros: in.lengths.push_back(b % 3 == 0 ? 0 : any_len(rng)); break;
      case Lengths::kAllZero: in.lengths.push_back(0); break;
      case Lengths::kAbsent: break;
    }
  }
  // A mixed batch of more than one sequence has at least one full-length one and one shorter one.
  if (lengths == Lengths::kMixed && B > 1) {
    in.lengths[0] = static_cast<std::int32_t>(T);
    in.lengths[static_cast<std::size_t>(B - 1)] = static_cast<std::int32_t>(std::max<std::int64_t>(1, T / 2));
  }
  in.padding = lengths == Lengths::kAbsent ? 0.0f : -2.5f;  // exact in every dtype; 0 would hide unwritten zeros
  return in;
}

class CudaBackendGrid : public ::testing::TestWithParam<GridCase> {};

TEST_P(CudaBackendGrid, MatchesReference) {
  CULSTM_SKIP_WITHOUT_GPU();
  const GridCase& c = GetParam();
  const LstmSpec spec = c.spec();
  ASSERT_TRUE(spec.validate().ok()) << spec.validate().to_string();
  std::mt19937 rng(1000 + static_cast<unsigned>(c.index));
  const Weights weights = random_weights(spec, rng, 0.4f);
  const Inputs in = make_inputs(spec, c.size().T, c.size().B, c.lengths(), c.h0(), c.c0(), rng);

  const std::shared_ptr<const Model> ref_model = make_model(Backend::kReference, spec, weights);
  ASSERT_TRUE(ref_model);
  Outputs ref;
  ASSERT_TRUE(run_reference(*ref_model, in, &ref));
  for (const CudaEngine engine : kEngines) {
    const char* name = cuda_engine_name(engine);
    SCOPED_TRACE(name);
    const std::shared_ptr<const Model> gpu_model = make_cuda_model(spec, weights, engine);
    ASSERT_TRUE(gpu_model);
    ASSERT_EQ(gpu_model->backend(), Backend::kCuda);
    Outputs got;
    ASSERT_TRUE(run_gpu(*gpu_model, in, &got));
    EXPECT_TRUE(close_to_reference("y", got.y, ref.y, spec.dtype, spec.math, name)) << spec.describe();
    EXPECT_TRUE(close_to_reference("h_n", got.h_n, ref.h_n, spec.dtype, spec.math, name)) << spec.describe();
    EXPECT_TRUE(close_to_reference("c_n", got.c_n, ref.c_n, spec.dtype, spec.math, name)) << spec.describe();
    EXPECT_TRUE(exact_semantics(spec, in, got)) << spec.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Covering, CudaBackendGrid, ::testing::ValuesIn(covering_grid(240)),
                         [](const ::testing::TestParamInfo<GridCase>& info) { return info.param.name(); });

TEST(CudaBackendGridSelection, CoversEveryPairOfValues) {
  // Runs without a GPU: the selection itself.
  const std::vector<GridCase> cases = covering_grid(240);
  EXPECT_GE(cases.size(), 240u);
  EXPECT_LE(cases.size(), 400u);
  for (int i = 0; i < kDims; ++i) {
    for (int j = i + 1; j < kDims; ++j) {
      for (int a = 0; a < kValues[i]; ++a) {
        for (int b = 0; b < kValues[j]; ++b) {
          const bool found =
              std::any_of(cases.begin(), cases.end(), [&](const GridCase& c) { return c.v[i] == a && c.v[j] == b; });
          EXPECT_TRUE(found) << "dimension " << i << " = " << a << " with dimension " << j << " = " << b;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Larger shapes (several blocks per kernel, tensor-core GEMM paths) against the reference.

class CudaBackendMedium : public ::testing::TestWithParam<Precision> {};

std::string precision_param_name(const ::testing::TestParamInfo<Precision>& info) {
  static const char* const names[] = {"f32", "tf32", "f16", "bf16"};
  return names[static_cast<int>(info.param)];
}

TEST_P(CudaBackendMedium, BidirectionalTwoLayersMatchesReference) {
  CULSTM_SKIP_WITHOUT_GPU();
  GridCase c;
  c.v[0] = static_cast<int>(GetParam());
  LstmSpec spec = c.spec();
  spec.input_size = 96;
  spec.hidden_size = 256;
  spec.num_layers = 2;
  spec.direction = Direction::kBidirectional;
  std::mt19937 rng(77);
  const Weights weights = random_weights(spec, rng, 0.1f);
  const Inputs in = make_inputs(spec, 32, 16, Lengths::kWithZeros, true, true, rng);
  const auto ref_model = make_model(Backend::kReference, spec, weights);
  ASSERT_TRUE(ref_model);
  Outputs ref;
  ASSERT_TRUE(run_reference(*ref_model, in, &ref));
  for (const CudaEngine engine : kEngines) {
    const char* name = cuda_engine_name(engine);
    SCOPED_TRACE(name);
    const auto gpu_model = make_cuda_model(spec, weights, engine);
    ASSERT_TRUE(gpu_model);
    Outputs got;
    ASSERT_TRUE(run_gpu(*gpu_model, in, &got));
    EXPECT_TRUE(close_to_reference("y", got.y, ref.y, spec.dtype, spec.math, name));
    EXPECT_TRUE(close_to_reference("h_n", got.h_n, ref.h_n, spec.dtype, spec.math, name));
    EXPECT_TRUE(close_to_reference("c_n", got.c_n, ref.c_n, spec.dtype, spec.math, name));
    EXPECT_TRUE(exact_semantics(spec, in, got));
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaBackendMedium,
                         ::testing::Values(Precision::kF32Strict, Precision::kF32Tf32, Precision::kF16,
                                           Precision::kBF16),
                         precision_param_name);

// The persistent engine at serving sizes: the tiling the planner picks for this GPU (a block per SM, several units
// per block, every SM busy), one and two directions, with and without a projection, against the reference.
TEST(CudaBackendPersistent, ServingSizesMatchReference) {
  CULSTM_SKIP_WITHOUT_GPU();
  struct Case {
    DType dtype;
    Direction dir;
    std::int64_t H, P, B;
  };
  const Case cases[] = {{DType::kF32, Direction::kForward, 512, 0, 8},
                        {DType::kBF16, Direction::kBidirectional, 512, 0, 32},
                        {DType::kF16, Direction::kReverse, 768, 256, 1},
                        {DType::kBF16, Direction::kForward, 1024, 0, 64}};
  for (const Case& c : cases) {
    LstmSpec spec;
    spec.input_size = 128;
    spec.hidden_size = c.H;
    spec.proj_size = c.P;
    spec.direction = c.dir;
    spec.dtype = c.dtype;
    SCOPED_TRACE(spec.describe());
    std::mt19937 rng(static_cast<unsigned>(c.H + c.B));
    const Weights weights = random_weights(spec, rng, 0.05f);
    const Inputs in = make_inputs(spec, 12, c.B, Lengths::kMixed, true, true, rng);
    const auto ref_model = make_model(Backend::kReference, spec, weights);
    const auto gpu_model = make_cuda_model(spec, weights, CudaEngine::kPersistent);
    ASSERT_TRUE(ref_model && gpu_model);
    Outputs ref, got;
    ASSERT_TRUE(run_reference(*ref_model, in, &ref));
    ASSERT_TRUE(run_gpu(*gpu_model, in, &got));
    EXPECT_TRUE(close_to_reference("y", got.y, ref.y, spec.dtype, spec.math, "persistent"));
    EXPECT_TRUE(close_to_reference("h_n", got.h_n, ref.h_n, spec.dtype, spec.math, "persistent"));
    EXPECT_TRUE(close_to_reference("c_n", got.c_n, ref.c_n, spec.dtype, spec.math, "persistent"));
    EXPECT_TRUE(exact_semantics(spec, in, got));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Determinism, graphs, streams.

// A model and inputs that exercise every per-step launch: bidirectional, projection, mixed lengths, states.
struct Fixture {
  LstmSpec spec;
  Weights weights;
  Inputs in;
};

Fixture rich_fixture(DType dtype, unsigned seed) {
  Fixture f;
  f.spec.input_size = 12;
  f.spec.hidden_size = 40;
  f.spec.proj_size = 16;
  f.spec.num_layers = 2;
  f.spec.direction = Direction::kBidirectional;
  f.spec.peepholes = true;
  f.spec.dtype = dtype;
  std::mt19937 rng(seed);
  f.weights = random_weights(f.spec, rng, 0.3f);
  f.in = make_inputs(f.spec, 9, 5, Lengths::kWithZeros, true, true, rng);
  return f;
}

TEST(CudaBackend, AutoBackendPicksCudaWithAStepwisePlan) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 1);
  const auto model = make_model(Backend::kAuto, f.spec, f.weights);
  ASSERT_TRUE(model);
  EXPECT_EQ(model->backend(), Backend::kCuda);
  const std::string plan = model->plan().explain();
  ASSERT_EQ(model->plan().steps().size(), 4u);
  // Without a recorded timing for this GPU (kernels/persistent_traits.h), auto runs stepwise and says why; with
  // one, the plan cites it (persistent up to the measured batch, stepwise beyond: max_batch here is 64).
  int major = 0, minor = 0;
  CULSTM_ASSERT_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  CULSTM_ASSERT_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  const kernels::PersistentTraits* traits = kernels::persistent_traits(major, minor);
  if (traits == nullptr || traits->faster_up_to_batch == 0) {
    EXPECT_NE(plan.find("engine=stepwise"), std::string::npos) << plan;
    EXPECT_NE(plan.find("no timing on sm_"), std::string::npos) << plan;
  } else {
    EXPECT_NE(plan.find("measured faster"), std::string::npos) << plan;
  }
}

TEST(CudaBackend, RepeatedRunsAreBitwiseIdentical) {
  CULSTM_SKIP_WITHOUT_GPU();
  for (const CudaEngine engine : kEngines) {
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      SCOPED_TRACE(std::string(cuda_engine_name(engine)) + " " + dtype_name(dtype));
      const Fixture f = rich_fixture(dtype, 2);
      const auto model = make_cuda_model(f.spec, f.weights, engine);
      ASSERT_TRUE(model);
      GpuCall call;
      ASSERT_TRUE(call.init(*model, f.in));
      auto ctx = make_context(*model, CudaGraphMode::kOff);
      ASSERT_TRUE(ctx);
      Outputs first, second, other_context;
      ASSERT_TRUE(call.run(*ctx, *model, nullptr).ok());
      ASSERT_TRUE(call.download(nullptr, &first));
      ASSERT_TRUE(call.run(*ctx, *model, nullptr).ok());
      ASSERT_TRUE(call.download(nullptr, &second));
      EXPECT_TRUE(bitwise_equal(dtype_name(dtype), first, second));
      auto ctx2 = make_context(*model, CudaGraphMode::kOff);
      ASSERT_TRUE(ctx2);
      ASSERT_TRUE(call.run(*ctx2, *model, nullptr).ok());
      ASSERT_TRUE(call.download(nullptr, &other_context));
      EXPECT_TRUE(bitwise_equal("another Context", first, other_context));
    }
  }
}

TEST(CudaBackend, GraphReplayEqualsDirectLaunchBitForBit) {
  CULSTM_SKIP_WITHOUT_GPU();
  for (const CudaEngine engine : kEngines) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(std::string(cuda_engine_name(engine)) + " " + dtype_name(dtype));
      const Fixture f = rich_fixture(dtype, 3);
      const auto model = make_cuda_model(f.spec, f.weights, engine);
      ASSERT_TRUE(model);
      cudaStream_t stream = nullptr;
      CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      auto direct_ctx = make_context(*model, CudaGraphMode::kOff);
      auto graph_ctx = make_context(*model, CudaGraphMode::kOn);
      ASSERT_TRUE(direct_ctx && graph_ctx);
      GpuCall call;
      ASSERT_TRUE(call.init(*model, f.in));

      auto compare = [&](const char* what) {
        Outputs direct, graph;
        ASSERT_TRUE(call.run(*direct_ctx, *model, stream).ok());
        ASSERT_TRUE(call.download(stream, &direct));
        const Status st = call.run(*graph_ctx, *model, stream);
        ASSERT_TRUE(st.ok()) << st.to_string();
        ASSERT_TRUE(call.download(stream, &graph));
        EXPECT_TRUE(bitwise_equal(what, direct, graph));
      };
      CudaGraphStats stats;
      compare("first call: capture and instantiate");
      ASSERT_TRUE(cuda_graph_stats(*graph_ctx, &stats).ok());
      EXPECT_EQ(stats.captures, 1);
      EXPECT_EQ(stats.instantiations, 1);
      EXPECT_EQ(stats.direct_runs, 0);

      compare("same arguments: replay");
      compare("same arguments: replay again");
      ASSERT_TRUE(cuda_graph_stats(*graph_ctx, &stats).ok());
      EXPECT_EQ(stats.captures, 1);
      EXPECT_EQ(stats.replays, 2);

      ASSERT_TRUE(call.reallocate_y());
      compare("new y pointer: update or re-instantiate");
      ASSERT_TRUE(cuda_graph_stats(*graph_ctx, &stats).ok());
      EXPECT_EQ(stats.captures, 2);
      EXPECT_EQ(stats.updates + stats.instantiations, 2);

      call.inputs().lengths[1] = call.inputs().lengths[1] == 0 ? 3 : 0;  // new lengths: new graph values
      compare("new lengths");
      call.inputs().padding = 4.0f;
      compare("new padding value");
      call.inputs().lengths.clear();  // no lengths: a different topology (no padding kernel)
      compare("no lengths");
      ASSERT_TRUE(cuda_graph_stats(*graph_ctx, &stats).ok());
      EXPECT_EQ(stats.captures, 5);
      EXPECT_EQ(stats.direct_runs, 0);
      CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
    }
  }
}

TEST(CudaBackend, AutoGraphModeCapturesOnARepeatAndReplaysAfter) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF16, 4);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  auto reference_ctx = make_context(*model, CudaGraphMode::kOff);
  auto ctx = make_context(*model, CudaGraphMode::kAuto);
  ASSERT_TRUE(reference_ctx && ctx);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  Outputs want;
  ASSERT_TRUE(call.run(*reference_ctx, *model, nullptr).ok());
  ASSERT_TRUE(call.download(nullptr, &want));
  const std::int64_t expected[][3] = {{1, 0, 0}, {1, 1, 0}, {1, 1, 1}, {1, 1, 2}};  // direct, captures, replays
  for (const auto& e : expected) {
    Outputs got;
    ASSERT_TRUE(call.run(*ctx, *model, nullptr).ok());
    ASSERT_TRUE(call.download(nullptr, &got));
    EXPECT_TRUE(bitwise_equal("auto mode", want, got));
    CudaGraphStats stats;
    ASSERT_TRUE(cuda_graph_stats(*ctx, &stats).ok());
    EXPECT_EQ(stats.direct_runs, e[0]);
    EXPECT_EQ(stats.captures, e[1]);
    EXPECT_EQ(stats.replays, e[2]);
  }
  // Other arguments: direct again, until they repeat.
  call.inputs().padding = 1.0f;
  ASSERT_TRUE(call.run(*ctx, *model, nullptr).ok());
  CudaGraphStats stats;
  ASSERT_TRUE(cuda_graph_stats(*ctx, &stats).ok());
  EXPECT_EQ(stats.direct_runs, 2);
  CULSTM_ASSERT_CUDA(cudaDeviceSynchronize());
}

TEST(CudaBackend, GraphModeFromEnvironment) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 5);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  // Puts back the caller's value (or its absence) however the test ends: a leaked "on" would change later tests.
  struct EnvRestore {
    bool had = false;
    std::string old;
    EnvRestore() {
      if (const char* v = std::getenv("CULSTM_CUDA_GRAPHS")) {
        had = true;
        old = v;
      }
    }
    ~EnvRestore() {
      if (had) {
        setenv("CULSTM_CUDA_GRAPHS", old.c_str(), 1);
      } else {
        unsetenv("CULSTM_CUDA_GRAPHS");
      }
    }
  } restore;
  ASSERT_EQ(setenv("CULSTM_CUDA_GRAPHS", "off", 1), 0);
  std::unique_ptr<Context> off;
  ASSERT_TRUE(Context::create(*model, &off).ok());
  ASSERT_EQ(setenv("CULSTM_CUDA_GRAPHS", "on", 1), 0);
  std::unique_ptr<Context> on;
  ASSERT_TRUE(Context::create(*model, &on).ok());
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(call.run(*off, *model, nullptr).ok());
    ASSERT_TRUE(call.run(*on, *model, nullptr).ok());
  }
  CULSTM_ASSERT_CUDA(cudaDeviceSynchronize());
  CudaGraphStats s_off, s_on;
  ASSERT_TRUE(cuda_graph_stats(*off, &s_off).ok());
  ASSERT_TRUE(cuda_graph_stats(*on, &s_on).ok());
  EXPECT_EQ(s_off.direct_runs, 3);
  EXPECT_EQ(s_off.captures, 0);
  EXPECT_EQ(s_on.direct_runs, 0);
  EXPECT_EQ(s_on.captures, 1);
  EXPECT_EQ(s_on.replays, 2);
}

TEST(CudaBackend, OneContextTwoModelsNeverReplaysTheOtherModelsGraph) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture a = rich_fixture(DType::kF32, 6);
  Fixture b = rich_fixture(DType::kF32, 7);  // same spec and shapes, other weights
  const auto model_a = make_model(Backend::kCuda, a.spec, a.weights);
  const auto model_b = make_model(Backend::kCuda, b.spec, b.weights);
  ASSERT_TRUE(model_a && model_b);
  auto ctx = make_context(*model_a, CudaGraphMode::kOn);
  auto direct = make_context(*model_a, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx && direct);
  GpuCall call;  // the same buffers for both models
  ASSERT_TRUE(call.init(*model_a, a.in));
  Outputs want_b, got_b;
  ASSERT_TRUE(call.run(*direct, *model_b, nullptr).ok());
  ASSERT_TRUE(call.download(nullptr, &want_b));
  ASSERT_TRUE(call.run(*ctx, *model_a, nullptr).ok());
  ASSERT_TRUE(call.run(*ctx, *model_b, nullptr).ok());
  ASSERT_TRUE(call.download(nullptr, &got_b));
  EXPECT_TRUE(bitwise_equal("model b after model a", want_b, got_b));
}

class CudaBackendEngine : public ::testing::TestWithParam<CudaEngine> {};

std::string engine_param_name(const ::testing::TestParamInfo<CudaEngine>& info) {
  return cuda_engine_name(info.param);
}

// Both engines, so that the persistent engine's cooperative launch is captured into a caller's graph too.
TEST_P(CudaBackendEngine, CallerCanCaptureForwardIntoItsOwnGraph) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kBF16, 8);
  const auto model = make_cuda_model(f.spec, f.weights, GetParam());
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto direct = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(direct);
  Outputs want;
  ASSERT_TRUE(call.run(*direct, *model, nullptr).ok());
  ASSERT_TRUE(call.download(nullptr, &want));
  for (cudaStreamCaptureMode mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
    for (CudaGraphMode ours : {CudaGraphMode::kOff, CudaGraphMode::kOn}) {  // kOn must fall back to direct launches
      auto ctx = make_context(*model, ours);
      ASSERT_TRUE(ctx);
      cudaStream_t stream = nullptr;
      CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      // Warm up outside the capture (the first use of cuBLAS kernels may load modules).
      ASSERT_TRUE(call.run(*ctx, *model, stream).ok());
      CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
      cudaGraph_t graph = nullptr;
      CULSTM_ASSERT_CUDA(cudaStreamBeginCapture(stream, mode));
      const Status st = call.run(*ctx, *model, stream);  // poison + forward, all captured
      CULSTM_ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
      ASSERT_TRUE(st.ok()) << st.to_string();
      cudaGraphExec_t exec = nullptr;
      CULSTM_ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
      for (int k = 0; k < 2; ++k) {
        CULSTM_ASSERT_CUDA(cudaGraphLaunch(exec, stream));
        Outputs got;
        ASSERT_TRUE(call.download(stream, &got));
        EXPECT_TRUE(bitwise_equal("caller's graph", want, got));
      }
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
    }
  }
}

// Holds the stream it is enqueued on (cudaLaunchHostFunc) until `open` is set, or 10 s pass so that a broken test
// cannot hang. Host functions must not call CUDA; this one only spins on an atomic.
struct StreamGate {
  std::atomic<int> open{0};
};
void CUDART_CB wait_for_gate(void* data) {
  auto* gate = static_cast<StreamGate*>(data);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (gate->open.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
}

TEST_P(CudaBackendEngine, ForwardDoesNotSynchronizeTheCallersStream) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 9);
  const auto model = make_cuda_model(f.spec, f.weights, GetParam());
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto direct = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(direct);
  Outputs want;
  ASSERT_TRUE(call.run(*direct, *model, nullptr).ok());
  ASSERT_TRUE(call.download(nullptr, &want));

  cudaStream_t stream = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (CudaGraphMode mode : {CudaGraphMode::kOff, CudaGraphMode::kOn}) {
    auto ctx = make_context(*model, mode);
    ASSERT_TRUE(ctx);
    StreamGate gate;
    CULSTM_ASSERT_CUDA(cudaLaunchHostFunc(stream, wait_for_gate, &gate));
    const auto start = std::chrono::steady_clock::now();
    const Status st = call.run(*ctx, *model, stream);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const cudaError_t busy = cudaStreamQuery(stream);
    cudaGetLastError();  // cudaErrorNotReady is expected; keep it out of later checks
    gate.open.store(1);
    // Drained before anything can end the test: the host function reads `gate`, a local of this loop body.
    const cudaError_t drained = cudaStreamSynchronize(stream);
    ASSERT_TRUE(st.ok()) << st.to_string();
    CULSTM_ASSERT_CUDA(drained);
    EXPECT_EQ(busy, cudaErrorNotReady) << "forward returned only after the stream drained";
    EXPECT_LT(seconds, 2.0) << "forward blocked the host";
    Outputs got;
    ASSERT_TRUE(call.download(stream, &got));  // waits for the gate's host function too
    EXPECT_TRUE(bitwise_equal("after the gate", want, got));
  }
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
}

INSTANTIATE_TEST_SUITE_P(Engines, CudaBackendEngine, ::testing::ValuesIn(kEngines), engine_param_name);

TEST(CudaBackend, AllLengthsZeroPassStatesThroughExactly) {
  CULSTM_SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    Fixture f = rich_fixture(dtype, 10);
    std::fill(f.in.lengths.begin(), f.in.lengths.end(), 0);
    const auto model = make_model(Backend::kCuda, f.spec, f.weights);
    ASSERT_TRUE(model);
    Outputs got;
    ASSERT_TRUE(run_gpu(*model, f.in, &got));
    EXPECT_TRUE(exact_semantics(f.spec, f.in, got)) << dtype_name(dtype);
  }
}

TEST(CudaBackend, OptionalOutputsMayBeOmitted) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 11);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto ctx = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx);
  Outputs all;
  ASSERT_TRUE(call.run(*ctx, *model, nullptr).ok());
  ASSERT_TRUE(call.download(nullptr, &all));
  // Only h_n: y and c_n absent must not change h_n.
  ForwardArgs args = call.args();
  args.y = TensorView();
  args.c_n = TensorView();
  CULSTM_ASSERT_CUDA(cudaMemset(args.h_n.data, 0xFF, args.h_n.bytes()));
  ASSERT_TRUE(forward(*ctx, *model, args, nullptr).ok());
  std::vector<std::uint8_t> h_n(all.h_n_raw.size());
  CULSTM_ASSERT_CUDA(cudaMemcpy(h_n.data(), args.h_n.data, h_n.size(), cudaMemcpyDeviceToHost));
  EXPECT_EQ(h_n, all.h_n_raw);
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input: nothing is written when a call is refused.

// Whether every byte of the call's y still holds `byte`: what a refused call must leave there.
::testing::AssertionResult y_holds_only(const GpuCall& call, std::uint8_t byte) {
  std::vector<std::uint8_t> y(call.args().y.bytes());
  const cudaError_t err = cudaMemcpy(y.data(), call.args().y.data, y.size(), cudaMemcpyDeviceToHost);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return ::testing::AssertionFailure() << "download: " << cudaGetErrorName(err);
  }
  if (std::all_of(y.begin(), y.end(), [byte](std::uint8_t v) { return v == byte; })) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "y written by a refused call";
}

TEST(CudaBackend, RefusesHostMemory) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 12);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto ctx = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx);
  CULSTM_ASSERT_CUDA(cudaMemset(call.args().y.data, 0x5A, call.args().y.bytes()));
  std::vector<std::uint8_t> host_x = encode(f.in.x, DType::kF32);

  ForwardArgs args = call.args();
  args.x.memory = MemoryKind::kHost;  // said to be host: refused by validation
  Status st = forward(*ctx, *model, args, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kDeviceMismatch) << st.to_string();

  args = call.args();
  args.x.data = host_x.data();  // said to be device but is pageable host memory: refused by the backend
  st = forward(*ctx, *model, args, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kDeviceMismatch) << st.to_string();
  EXPECT_NE(st.message().find("x:"), std::string::npos) << st.to_string();

  std::vector<std::uint8_t> host_ws(call.args().workspace_bytes + 256);
  const auto misalignment = reinterpret_cast<std::uintptr_t>(host_ws.data()) % 256;
  args = call.args();
  args.workspace = host_ws.data() + (256 - misalignment) % 256;  // aligned, so that the memory kind is what fails
  st = forward(*ctx, *model, args, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kDeviceMismatch) << st.to_string();

  args = call.args();
  args.workspace = static_cast<std::uint8_t*>(args.workspace) + 16;  // not 256-byte aligned
  args.workspace_bytes -= 16;
  st = forward(*ctx, *model, args, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kWorkspaceTooSmall) << st.to_string();  // 16 bytes short of the need
  DeviceMemory big(call.args().workspace_bytes + 256);
  ASSERT_TRUE(big.ok());
  args.workspace = static_cast<std::uint8_t*>(big.get()) + 16;
  args.workspace_bytes = call.args().workspace_bytes;
  st = forward(*ctx, *model, args, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();

  args = call.args();
  args.c0.data = static_cast<std::uint8_t*>(args.c0.data) + 2;  // f32 tensor not 4-byte aligned
  st = forward(*ctx, *model, args, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();

  EXPECT_TRUE(y_holds_only(call, 0x5A));
}

// An error that earlier CUDA work of the caller's thread left pending is reported as such before anything is
// enqueued (not as a failure of one of our kernels after part of the work ran), and cleared: the next call works.
TEST(CudaBackend, PendingErrorOfTheCallerIsReportedBeforeEnqueuing) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 14);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto ctx = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx);
  CULSTM_ASSERT_CUDA(cudaMemset(call.args().y.data, 0x5A, call.args().y.bytes()));
  void* impossible = nullptr;
  ASSERT_NE(cudaMalloc(&impossible, std::size_t{1} << 62), cudaSuccess);  // leaves cudaErrorMemoryAllocation pending
  Status st = forward(*ctx, *model, call.args(), nullptr);
  EXPECT_EQ(st.code(), StatusCode::kCudaError) << st.to_string();
  EXPECT_NE(st.message().find("pending"), std::string::npos) << st.to_string();
  CULSTM_ASSERT_CUDA(cudaDeviceSynchronize());
  EXPECT_TRUE(y_holds_only(call, 0x5A));
  st = forward(*ctx, *model, call.args(), nullptr);
  EXPECT_TRUE(st.ok()) << st.to_string();
  CULSTM_ASSERT_CUDA(cudaDeviceSynchronize());
}

// The legacy default stream while another (blocking) stream of the device is being captured: CUDA makes the legacy
// stream wait on that capture, so the call is refused before anything is enqueued.
TEST(CudaBackend, LegacyStreamDuringAnotherCaptureIsRefused) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 15);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto ctx = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx);
  cudaStream_t blocking = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreate(&blocking));
  CULSTM_ASSERT_CUDA(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeRelaxed));
  const Status st = forward(*ctx, *model, call.args(), nullptr);
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(blocking, &graph);
  if (graph != nullptr) cudaGraphDestroy(graph);
  cudaGetLastError();
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(blocking));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("legacy default stream"), std::string::npos) << st.to_string();
  EXPECT_EQ(ended, cudaSuccess) << "the refused call invalidated the other capture: " << cudaGetErrorString(ended);
}

// Model creation while another thread captures a blocking stream: the weight upload must neither wait on the legacy
// default stream (which waits on that capture and fails) nor invalidate the capture, and the weights must have
// landed (the model computes what the reference does).
TEST(CudaBackend, ModelCreationDuringAnotherThreadsCaptureOfABlockingStream) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 17);
  const auto reference = make_model(Backend::kReference, f.spec, f.weights);
  ASSERT_TRUE(reference);
  Outputs want;
  ASSERT_TRUE(run_reference(*reference, f.in, &want));
  cudaStream_t blocking = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreate(&blocking));
  for (cudaStreamCaptureMode mode : {cudaStreamCaptureModeThreadLocal, cudaStreamCaptureModeRelaxed}) {
    SCOPED_TRACE(mode == cudaStreamCaptureModeThreadLocal ? "thread-local capture" : "relaxed capture");
    CULSTM_ASSERT_CUDA(cudaStreamBeginCapture(blocking, mode));
    std::shared_ptr<const Model> model;
    std::thread creator([&] { model = make_model(Backend::kCuda, f.spec, f.weights); });  // fails the test if refused
    creator.join();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(blocking, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    EXPECT_EQ(ended, cudaSuccess) << "Model creation invalidated the other capture: " << cudaGetErrorString(ended);
    ASSERT_TRUE(model);
    Outputs got;
    ASSERT_TRUE(run_gpu(*model, f.in, &got));
    EXPECT_TRUE(close_to_reference("y", got.y, want.y, f.spec.dtype, f.spec.math));
    EXPECT_TRUE(close_to_reference("h_n", got.h_n, want.h_n, f.spec.dtype, f.spec.math));
    EXPECT_TRUE(close_to_reference("c_n", got.c_n, want.c_n, f.spec.dtype, f.spec.math));
  }
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(blocking));
}

// Graph mode `on` captures a fresh Context's first call. Nothing that call needs may be loaded inside that capture:
// culstm's kernels are loaded at Model creation, cuBLAS's for the call's GEMM shapes by a warm-up before the capture.
// Checked in a new process state as far as a test can: a model and shape this process has not run before (odd
// sizes no other test uses), first call in mode `on`, both engines; the capture succeeds and equals direct launches.
TEST(CudaBackend, GraphModeOnFirstCallOfANewShapeLoadsNothingInsideTheCapture) {
  CULSTM_SKIP_WITHOUT_GPU();
  for (const CudaEngine engine : kEngines) {
    SCOPED_TRACE(cuda_engine_name(engine));
    Fixture f;
    f.spec.input_size = 23;
    f.spec.hidden_size = 29;
    f.spec.proj_size = 0;
    f.spec.num_layers = 2;
    f.spec.direction = Direction::kBidirectional;
    f.spec.dtype = DType::kF16;
    std::mt19937 rng(engine == CudaEngine::kPersistent ? 19u : 18u);
    f.weights = random_weights(f.spec, rng, 0.3f);
    f.in = make_inputs(f.spec, 13, engine == CudaEngine::kPersistent ? 3 : 7, Lengths::kMixed, true, false, rng);
    const auto model = make_cuda_model(f.spec, f.weights, engine);
    ASSERT_TRUE(model);
    cudaStream_t stream = nullptr;
    CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    GpuCall call;
    ASSERT_TRUE(call.init(*model, f.in));
    auto graph_ctx = make_context(*model, CudaGraphMode::kOn);
    ASSERT_TRUE(graph_ctx);
    Outputs graph, direct;
    const Status st = call.run(*graph_ctx, *model, stream);  // the first launch of these shapes in this process
    ASSERT_TRUE(st.ok()) << st.to_string();
    ASSERT_TRUE(call.download(stream, &graph));
    CudaGraphStats stats;
    ASSERT_TRUE(cuda_graph_stats(*graph_ctx, &stats).ok());
    EXPECT_EQ(stats.captures, 1);
    EXPECT_EQ(stats.direct_runs, 0);
    auto direct_ctx = make_context(*model, CudaGraphMode::kOff);
    ASSERT_TRUE(direct_ctx);
    ASSERT_TRUE(call.run(*direct_ctx, *model, stream).ok());
    ASSERT_TRUE(call.download(stream, &direct));
    EXPECT_TRUE(bitwise_equal("graph mode on, first call", direct, graph));
    CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
  }
}

// Managed memory and pinned host memory (cudaMallocManaged, cudaHostAlloc) are used by kernels at the caller's own
// address: accepted, with results bit for bit those of device memory. Memory registered with cudaHostRegister is
// accepted exactly where the device maps it at the same address, and refused with DeviceMismatch elsewhere.
TEST(CudaBackend, ManagedPinnedAndRegisteredMemory) {
  CULSTM_SKIP_WITHOUT_GPU();
  const Fixture f = rich_fixture(DType::kF32, 16);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto ctx = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(call.run(*ctx, *model, nullptr).ok());
  Outputs want;
  ASSERT_TRUE(call.download(nullptr, &want));

  const ForwardArgs device_args = call.args();
  const TensorView* inputs[] = {&device_args.x, &device_args.h0, &device_args.c0};
  const TensorView* outputs[] = {&device_args.y, &device_args.h_n, &device_args.c_n};
  enum class Kind { kManaged, kPinned, kRegistered };
  for (Kind kind : {Kind::kManaged, Kind::kPinned, Kind::kRegistered}) {
    const char* name = kind == Kind::kManaged ? "managed" : kind == Kind::kPinned ? "pinned" : "registered";
    SCOPED_TRACE(name);
    // Every buffer is released however the test ends; registered memory is whole pages of its own (two
    // registrations never share a page).
    struct Buffer {
      Kind kind;
      void* p = nullptr;
      ~Buffer() {
        if (p == nullptr) return;
        if (kind == Kind::kManaged) cudaFree(p);
        if (kind == Kind::kPinned) cudaFreeHost(p);
        if (kind == Kind::kRegistered) {
          cudaHostUnregister(p);
          std::free(p);
        }
      }
    };
    std::vector<std::unique_ptr<Buffer>> owned;
    std::vector<void*> buffers;
    auto allocate = [&](std::size_t bytes) -> void* {
      auto b = std::make_unique<Buffer>();
      b->kind = kind;
      cudaError_t err = cudaSuccess;
      if (kind == Kind::kManaged) {
        err = cudaMallocManaged(&b->p, bytes);
      } else if (kind == Kind::kPinned) {
        err = cudaHostAlloc(&b->p, bytes, cudaHostAllocDefault);
      } else {
        const std::size_t page = 4096;
        const std::size_t rounded = (bytes + page - 1) / page * page;
        void* raw = std::aligned_alloc(page, rounded);
        if (raw == nullptr) return nullptr;
        err = cudaHostRegister(raw, rounded, cudaHostRegisterDefault);
        if (err != cudaSuccess) {
          std::free(raw);
        } else {
          b->p = raw;
        }
      }
      if (err != cudaSuccess) {
        cudaGetLastError();
        ADD_FAILURE() << "allocation: " << cudaGetErrorName(err);
        return nullptr;
      }
      buffers.push_back(b->p);
      owned.push_back(std::move(b));
      return buffers.back();
    };
    ForwardArgs args = device_args;
    bool ok = true;
    for (int k = 0; k < 3 && ok; ++k) {  // inputs: copied from the device buffers
      if (inputs[k]->data == nullptr) continue;
      void* p = allocate(inputs[k]->bytes());
      ok = p != nullptr && cudaMemcpy(p, inputs[k]->data, inputs[k]->bytes(), cudaMemcpyDefault) == cudaSuccess;
      TensorView* target = k == 0 ? &args.x : k == 1 ? &args.h0 : &args.c0;
      target->data = p;
    }
    for (int k = 0; k < 3 && ok; ++k) {  // outputs: poisoned (host memory by the host, managed by the device)
      void* p = allocate(outputs[k]->bytes());
      ok = p != nullptr;
      if (ok && kind == Kind::kManaged) {
        ok = cudaMemset(p, 0xFF, outputs[k]->bytes()) == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
      } else if (ok) {
        std::memset(p, 0xFF, outputs[k]->bytes());
      }
      TensorView* target = k == 0 ? &args.y : k == 1 ? &args.h_n : &args.c_n;
      target->data = p;
    }
    EXPECT_TRUE(ok) << "allocation or copy failed";
    if (ok) {
      bool same_address = true;
      for (void* p : buffers) {
        cudaPointerAttributes attr{};
        same_address = same_address && cudaPointerGetAttributes(&attr, p) == cudaSuccess && attr.devicePointer == p;
      }
      const Status st = forward(*ctx, *model, args, nullptr);
      CULSTM_ASSERT_CUDA(cudaDeviceSynchronize());
      if (kind != Kind::kRegistered || same_address) {
        EXPECT_TRUE(st.ok()) << st.to_string();
        const std::pair<const TensorView*, const std::vector<std::uint8_t>*> results[] = {
            {&args.y, &want.y_raw}, {&args.h_n, &want.h_n_raw}, {&args.c_n, &want.c_n_raw}};
        for (const auto& [view, expected] : results) {
          std::vector<std::uint8_t> got(view->bytes());
          CULSTM_ASSERT_CUDA(cudaMemcpy(got.data(), view->data, got.size(), cudaMemcpyDefault));
          EXPECT_TRUE(got == *expected) << "differs from the run on device memory";
        }
      } else {
        EXPECT_EQ(st.code(), StatusCode::kDeviceMismatch) << st.to_string();
      }
    }
  }
}

// forward() runs on the model's device and leaves the caller's current device as it found it. Needs two GPUs: with
// one, the model's device is the current one and nothing would need restoring.
TEST(CudaBackend, RestoresTheCallersDevice) {
  CULSTM_SKIP_WITHOUT_GPU();
  int count = 0;
  CULSTM_ASSERT_CUDA(cudaGetDeviceCount(&count));
  if (count < 2) GTEST_SKIP() << "needs 2 GPUs (the model on device 0, the caller's current device 1)";
  CULSTM_ASSERT_CUDA(cudaSetDevice(0));
  const Fixture f = rich_fixture(DType::kF32, 13);
  const auto model = make_model(Backend::kCuda, f.spec, f.weights);  // options.device = 0
  ASSERT_TRUE(model);
  GpuCall call;
  ASSERT_TRUE(call.init(*model, f.in));
  auto ctx = make_context(*model, CudaGraphMode::kOff);
  ASSERT_TRUE(ctx);
  cudaStream_t stream = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));  // a stream of device 0
  CULSTM_ASSERT_CUDA(cudaSetDevice(1));
  const Status st = forward(*ctx, *model, call.args(), stream);
  int after = -1;
  const cudaError_t got_device = cudaGetDevice(&after);
  CULSTM_ASSERT_CUDA(cudaSetDevice(0));
  const cudaError_t drained = cudaStreamSynchronize(stream);
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
  ASSERT_TRUE(st.ok()) << st.to_string();
  CULSTM_ASSERT_CUDA(got_device);
  CULSTM_ASSERT_CUDA(drained);
  EXPECT_EQ(after, 1) << "forward left another device current";
}

}  // namespace
}  // namespace culstm
