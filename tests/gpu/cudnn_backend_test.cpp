// The cudnn backend against the reference (docs/design.md §5): over the configurations cuDNN supports (dtype x layers x
// direction x projection x lengths without zeros x layout x states x cell clip), fresh random inputs, outputs
// poisoned with NaN first (every element must be written), per-dtype tolerances; and kNotSupported for each option
// cuDNN cannot express. Skips with the reason without a GPU or without cuDNN.
//
// Tolerances are PROVISIONAL (not yet run on a GPU): to be confirmed on the first GPU run from the measured errors
// each case prints ("measured ..."), then recorded in docs/cudnn_backend.md.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cudnn/cudnn_backend.h"
#include "culstm/culstm.hpp"
#include "detail.h"
#include "io/array.h"
#include "gpu_test_util.h"
#include "test_util.h"

namespace culstm {
namespace {

// Skips unless the cudnn backend can run here (built with cuDNN, and a GPU).
#define CULSTM_SKIP_WITHOUT_CUDNN()                                                  \
  do {                                                                               \
    CULSTM_SKIP_WITHOUT_GPU();                                                       \
    std::string culstm_why_cudnn_;                                                   \
    if (!::culstm::backend_available(::culstm::Backend::kCudnn, &culstm_why_cudnn_)) { \
      GTEST_SKIP() << "needs the cudnn backend: " << culstm_why_cudnn_;              \
    }                                                                                \
  } while (0)

// Provisional bounds on ||out - ref|| / ||ref|| and max |out - ref| (see the file comment).
struct Tolerance {
  double rel_l2, max_abs;
};
Tolerance tolerance_for(const LstmSpec& spec) {
  switch (spec.dtype) {
    case DType::kF16: return {1e-2, 3e-2};   // f16 storage of x, weights, layer outputs and states
    case DType::kBF16: return {5e-2, 1.5e-1};
    default: return spec.math == MathMode::kAllowTF32 ? Tolerance{5e-3, 2e-2} : Tolerance{2e-5, 1e-4};
  }
}

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

struct Inputs {
  std::int64_t T = 0, B = 0;
  std::vector<float> x, h0, c0;
  std::vector<std::int32_t> lengths;  // empty: every sequence has T steps
  bool with_h0 = false, with_c0 = false;
  float padding = 0.0f;
};

struct Outputs {
  std::vector<float> y, h_n, c_n;  // decoded; NaN where a backend wrote nothing (outputs start poisoned)
};

struct Shapes {
  std::int64_t x, y, h, c;  // element counts
};
Shapes shapes_of(const LstmSpec& spec, std::int64_t T, std::int64_t B) {
  const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
  return {T * B * spec.input_size, T * B * spec.output_size(), LD * B * spec.recurrent_size(),
          LD * B * spec.hidden_size};
}

// The views of one call over `x`, `y`, ... (host or device pointers, per `memory`).
ForwardArgs make_args(const LstmSpec& spec, const Inputs& in, MemoryKind memory, void* x, void* h0, void* c0, void* y,
                      void* h_n, void* c_n) {
  const bool bm = spec.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = in.T, B = in.B;
  const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
  const DType dt = spec.dtype;
  ForwardArgs a;
  a.x = bm ? TensorView(x, dt, memory, {B, T, spec.input_size}) : TensorView(x, dt, memory, {T, B, spec.input_size});
  if (!in.lengths.empty()) a.lengths = TensorView::host(in.lengths.data(), DType::kI32, {B});
  if (in.with_h0) a.h0 = TensorView(h0, dt, memory, {LD, B, spec.recurrent_size()});
  if (in.with_c0) a.c0 = TensorView(c0, dt, memory, {LD, B, spec.hidden_size});
  if (y != nullptr) {
    a.y = bm ? TensorView(y, dt, memory, {B, T, spec.output_size()}) : TensorView(y, dt, memory, {T, B, spec.output_size()});
  }
  a.h_n = TensorView(h_n, dt, memory, {LD, B, spec.recurrent_size()});
  a.c_n = TensorView(c_n, dt, memory, {LD, B, spec.hidden_size});
  a.padding_value = in.padding;
  return a;
}

// The reference backend on the same (dtype-rounded) inputs.
Status run_reference(const LstmSpec& spec, const Weights& weights, const Inputs& in, Outputs* out) {
  ModelOptions options;
  options.backend = Backend::kReference;
  options.max_batch = in.B;
  options.max_seq_len = in.T;
  std::shared_ptr<const Model> model;
  CULSTM_RETURN_IF_ERROR(Model::create(spec, weights, options, &model));
  const Shapes s = shapes_of(spec, in.T, in.B);
  const std::size_t e = dtype_size(spec.dtype);
  std::vector<std::uint8_t> x = encode(in.x, spec.dtype), h0 = encode(in.h0, spec.dtype), c0 = encode(in.c0, spec.dtype);
  std::vector<std::uint8_t> y(static_cast<std::size_t>(s.y) * e, 0xff), h_n(static_cast<std::size_t>(s.h) * e, 0xff),
      c_n(static_cast<std::size_t>(s.c) * e, 0xff);
  ForwardArgs args = make_args(spec, in, MemoryKind::kHost, x.data(), h0.data(), c0.data(), y.data(), h_n.data(),
                               c_n.data());
  std::size_t bytes = 0;
  CULSTM_RETURN_IF_ERROR(model->workspace_size(in.B, in.T, &bytes));
  std::vector<std::uint8_t> ws(bytes);
  args.workspace = ws.data();
  args.workspace_bytes = bytes;
  std::unique_ptr<Context> ctx;
  CULSTM_RETURN_IF_ERROR(Context::create(*model, &ctx));
  CULSTM_RETURN_IF_ERROR(forward(*ctx, *model, args));
  out->y = decode(y, spec.dtype);
  out->h_n = decode(h_n, spec.dtype);
  out->c_n = decode(c_n, spec.dtype);
  return Status::Ok();
}

class DeviceBytes {
 public:
  DeviceBytes() = default;
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  ~DeviceBytes() {
    if (p_) cudaFree(p_);
  }
  cudaError_t init(std::size_t bytes, const void* host = nullptr, int fill = -1) {
    bytes_ = bytes;
    if (bytes == 0) return cudaSuccess;
    cudaError_t err = cudaMalloc(&p_, bytes);
    if (err == cudaSuccess && host) err = cudaMemcpy(p_, host, bytes, cudaMemcpyHostToDevice);
    if (err == cudaSuccess && fill >= 0) err = cudaMemset(p_, fill, bytes);
    return err;
  }
  void* get() const { return p_; }
  std::vector<std::uint8_t> download(cudaError_t* err) const {
    std::vector<std::uint8_t> v(bytes_);
    *err = bytes_ ? cudaMemcpy(v.data(), p_, bytes_, cudaMemcpyDeviceToHost) : cudaSuccess;
    return v;
  }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

// How a GPU call is made.
struct CallStyle {
  bool want_y = true;
  std::size_t workspace_misalign = 0;  // pass workspace + this many bytes (tests the backend's own alignment)
  cudaStream_t stream = nullptr;
  bool pending_error = false;  // leave a CUDA error pending (a failed cudaMalloc) right before forward
};

// One call's device tensors: the inputs uploaded from `in`, the outputs poisoned (0xff: NaN in every float type).
struct DeviceIo {
  DeviceBytes x, h0, c0, y, h_n, c_n;
};
void make_device_io(const LstmSpec& spec, const Inputs& in, DeviceIo* io) {
  const Shapes s = shapes_of(spec, in.T, in.B);
  const std::size_t e = dtype_size(spec.dtype);
  const std::vector<std::uint8_t> hx = encode(in.x, spec.dtype), hh0 = encode(in.h0, spec.dtype),
                                  hc0 = encode(in.c0, spec.dtype);
  CULSTM_ASSERT_CUDA(io->x.init(hx.size(), hx.data()));
  CULSTM_ASSERT_CUDA(io->h0.init(hh0.size(), hh0.data()));
  CULSTM_ASSERT_CUDA(io->c0.init(hc0.size(), hc0.data()));
  CULSTM_ASSERT_CUDA(io->y.init(static_cast<std::size_t>(s.y) * e, nullptr, 0xff));
  CULSTM_ASSERT_CUDA(io->h_n.init(static_cast<std::size_t>(s.h) * e, nullptr, 0xff));
  CULSTM_ASSERT_CUDA(io->c_n.init(static_cast<std::size_t>(s.c) * e, nullptr, 0xff));
}
// The outputs, decoded (after the work that writes them has finished).
void download_outputs(const LstmSpec& spec, const DeviceIo& io, Outputs* out) {
  cudaError_t err = cudaSuccess;
  out->y = decode(io.y.download(&err), spec.dtype);
  CULSTM_ASSERT_CUDA(err);
  out->h_n = decode(io.h_n.download(&err), spec.dtype);
  CULSTM_ASSERT_CUDA(err);
  out->c_n = decode(io.c_n.download(&err), spec.dtype);
  CULSTM_ASSERT_CUDA(err);
}

// Runs `model` (a GPU model) on `in` with outputs poisoned. `status` is forward's.
void run_gpu(const Model& model, Context& ctx, const Inputs& in, const CallStyle& style, Status* status,
             Outputs* out) {
  const LstmSpec& spec = model.spec();
  DeviceIo io;
  make_device_io(spec, in, &io);
  if (::testing::Test::HasFatalFailure()) return;
  DeviceBytes ws;
  std::size_t bytes = 0;
  *status = model.workspace_size(in.B, in.T, &bytes);
  if (!status->ok()) return;
  CULSTM_ASSERT_CUDA(ws.init(bytes + style.workspace_misalign, nullptr, 0xa5));
  ForwardArgs args = make_args(spec, in, MemoryKind::kDevice, io.x.get(), io.h0.get(), io.c0.get(),
                               style.want_y ? io.y.get() : nullptr, io.h_n.get(), io.c_n.get());
  args.workspace = static_cast<char*>(ws.get()) + style.workspace_misalign;
  args.workspace_bytes = bytes;
  if (style.pending_error) {
    void* impossible = nullptr;
    ASSERT_NE(cudaMalloc(&impossible, std::size_t{1} << 62), cudaSuccess);
  }
  *status = forward(ctx, model, args, style.stream);
  CULSTM_ASSERT_CUDA(cudaStreamSynchronize(style.stream));
  CULSTM_ASSERT_CUDA(cudaGetLastError());
  download_outputs(spec, io, out);
}

struct Errors {
  double rel_l2 = 0.0, max_abs = 0.0;
  std::size_t non_finite = 0;  // elements the backend did not write (still NaN) or wrote as inf/nan
};
Errors compare(const std::vector<float>& got, const std::vector<float>& want) {
  Errors e;
  if (got.size() != want.size()) {  // run_gpu stopped early (a failed CUDA call): everything counts as unwritten
    ADD_FAILURE() << "compared " << got.size() << " elements with " << want.size();
    e.non_finite = want.size();
    e.rel_l2 = e.max_abs = INFINITY;
    return e;
  }
  double d2 = 0.0, r2 = 0.0;
  for (std::size_t k = 0; k < want.size(); ++k) {
    if (!std::isfinite(got[k])) {
      ++e.non_finite;
      continue;
    }
    const double d = static_cast<double>(got[k]) - want[k];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
    d2 += d * d;
    r2 += static_cast<double>(want[k]) * want[k];
  }
  e.rel_l2 = r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
  return e;
}

// y, h_n and c_n all written and within `tol` of the reference.
void expect_close(const Outputs& got, const Outputs& want, const Tolerance& tol, const std::string& what) {
  for (const auto& [name, g, w] : {std::tuple<const char*, const std::vector<float>*, const std::vector<float>*>{
                                       "y", &got.y, &want.y},
                                   {"h_n", &got.h_n, &want.h_n},
                                   {"c_n", &got.c_n, &want.c_n}}) {
    const Errors e = compare(*g, *w);
    EXPECT_EQ(e.non_finite, 0u) << what << " " << name;
    EXPECT_LE(e.rel_l2, tol.rel_l2) << what << " " << name;
    EXPECT_LE(e.max_abs, tol.max_abs) << what << " " << name;
  }
}

// One configuration of the matrix.
struct Case {
  DType dtype = DType::kF32;
  MathMode math = MathMode::kStrictF32;
  int layers = 1;
  Direction dir = Direction::kForward;
  std::int64_t input = 5, hidden = 7, proj = 0;
  bool bias = true;
  BatchLayout layout = BatchLayout::kSeqMajor;
  bool varied_lengths = false;  // lengths in [1, T], not sorted, one equal to T
  bool states = true;           // random h0, c0
  float clip = 0.0f;            // cell clip (0 = none)
  std::int64_t T = 6, B = 3;
  CudnnAlgo algo = CudnnAlgo::kStandard;

  LstmSpec spec() const {
    LstmSpec s;
    s.input_size = input;
    s.hidden_size = hidden;
    s.proj_size = proj;
    s.num_layers = layers;
    s.direction = dir;
    s.bias = bias;
    s.layout = layout;
    s.dtype = dtype;
    s.math = math;
    if (clip > 0.0f) s.cell_clip = clip;
    return s;
  }
  std::string name() const {
    return detail::str(spec().describe(), " T=", T, " B=", B, varied_lengths ? " lengths=varied" : " lengths=full",
                       states ? " states" : " zero-states", " algo=", cudnn_algo_name(algo));
  }
};

// A cudnn model of `c`'s spec with `c`'s algorithm, for c.B sequences of at most c.T steps.
Status make_cudnn_model(const Case& c, const Weights& weights, std::shared_ptr<const Model>* model) {
  ModelOptions options;
  options.backend = Backend::kCudnn;
  options.max_batch = c.B;
  options.max_seq_len = c.T;
  options.cudnn_algo = c.algo;
  return Model::create(c.spec(), weights, options, model);
}

// A call that failed must leave every output as it was (poisoned: NaN).
void expect_untouched(const Outputs& got) {
  for (float v : got.y) ASSERT_TRUE(std::isnan(v)) << "y written although forward failed";
  for (float v : got.h_n) ASSERT_TRUE(std::isnan(v)) << "h_n written although forward failed";
  for (float v : got.c_n) ASSERT_TRUE(std::isnan(v)) << "c_n written although forward failed";
}

Inputs make_inputs(const Case& c, const LstmSpec& spec, std::mt19937& rng) {
  Inputs in;
  in.T = c.T;
  in.B = c.B;
  in.x = testing_util::random_values(static_cast<std::size_t>(c.T * c.B * spec.input_size), rng);
  const Shapes s = shapes_of(spec, c.T, c.B);
  in.with_h0 = in.with_c0 = c.states;
  if (c.states) {
    in.h0 = testing_util::random_values(static_cast<std::size_t>(s.h), rng);
    in.c0 = testing_util::random_values(static_cast<std::size_t>(s.c), rng);
  }
  if (c.varied_lengths) {
    std::uniform_int_distribution<int> len(1, static_cast<int>(c.T));
    for (std::int64_t b = 0; b < c.B; ++b) in.lengths.push_back(len(rng));
    in.lengths[static_cast<std::size_t>(c.B / 2)] = static_cast<std::int32_t>(c.T);
    in.lengths[0] = 1;
  }
  in.padding = 0.5f;  // exact in every dtype, and not what an unwritten or zeroed element holds
  return in;
}

// Checks one case: the cudnn backend against the reference. `ctx` may be null (a new Context is made) or a Context
// of another cudnn model (Contexts serve any model of their backend and device). Returns false when cuDNN refuses
// the case (the reason is printed, and kept in `refusal` if given), true when it ran (and was checked).
bool check_case(const Case& c, std::unique_ptr<Context>* shared_ctx, const CallStyle& style = CallStyle(),
                std::string* refusal = nullptr) {
  SCOPED_TRACE(c.name());
  const LstmSpec spec = c.spec();
  std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>()(c.name())));
  const Weights weights = testing_util::random_weights(spec, rng, 0.5f);
  const Inputs in = make_inputs(c, spec, rng);

  std::shared_ptr<const Model> model;
  const Status created = make_cudnn_model(c, weights, &model);
  if (created.code() == StatusCode::kNotSupported) {
    std::printf("  [cudnn refuses] %s: %s\n", c.name().c_str(), created.message().c_str());
    if (refusal != nullptr) *refusal = created.message();
    return false;
  }
  EXPECT_TRUE(created.ok()) << created.to_string();
  if (!created.ok()) return false;
  EXPECT_EQ(model->backend(), Backend::kCudnn);

  std::unique_ptr<Context> own;
  std::unique_ptr<Context>& ctx = shared_ctx ? *shared_ctx : own;
  if (!ctx) {
    const Status st = Context::create(*model, &ctx);
    EXPECT_TRUE(st.ok()) << st.to_string();
    if (!st.ok()) return false;
  }
  Outputs want, got;
  const Status ref = run_reference(spec, weights, in, &want);
  EXPECT_TRUE(ref.ok()) << ref.to_string();
  Status st;
  run_gpu(*model, *ctx, in, style, &st, &got);
  if (::testing::Test::HasFatalFailure()) return false;  // a CUDA call failed: reported, nothing to compare
  if (st.code() == StatusCode::kNotSupported && c.algo != CudnnAlgo::kStandard) {
    std::printf("  [cudnn refuses] %s: %s\n", c.name().c_str(), st.message().c_str());
    if (refusal != nullptr) *refusal = st.message();
    return false;
  }
  EXPECT_TRUE(st.ok()) << st.to_string();
  if (!st.ok()) return false;

  const Tolerance tol = tolerance_for(spec);
  const Errors ey = style.want_y ? compare(got.y, want.y) : Errors{};
  const Errors eh = compare(got.h_n, want.h_n), ec = compare(got.c_n, want.c_n);
  std::printf("  measured %-100s y rel %.2e max %.2e | h_n rel %.2e max %.2e | c_n rel %.2e max %.2e\n",
              c.name().c_str(), ey.rel_l2, ey.max_abs, eh.rel_l2, eh.max_abs, ec.rel_l2, ec.max_abs);
  EXPECT_EQ(ey.non_finite, 0u) << "y elements left unwritten (NaN)";
  EXPECT_EQ(eh.non_finite, 0u) << "h_n elements left unwritten (NaN)";
  EXPECT_EQ(ec.non_finite, 0u) << "c_n elements left unwritten (NaN)";
  EXPECT_LE(ey.rel_l2, tol.rel_l2) << "y";
  EXPECT_LE(ey.max_abs, tol.max_abs) << "y";
  EXPECT_LE(eh.rel_l2, tol.rel_l2) << "h_n";
  EXPECT_LE(eh.max_abs, tol.max_abs) << "h_n";
  EXPECT_LE(ec.rel_l2, tol.rel_l2) << "c_n";
  EXPECT_LE(ec.max_abs, tol.max_abs) << "c_n";
  // Padding: exactly the padding value at every t >= lengths[b], every direction's columns.
  if (style.want_y && !in.lengths.empty()) {
    const bool bm = spec.layout == BatchLayout::kBatchMajor;
    const std::int64_t Y = spec.output_size();
    std::size_t wrong = 0;
    for (std::int64_t b = 0; b < in.B; ++b) {
      for (std::int64_t t = in.lengths[static_cast<std::size_t>(b)]; t < in.T; ++t) {
        for (std::int64_t k = 0; k < Y; ++k) {
          const std::size_t at = static_cast<std::size_t>((bm ? b * in.T + t : t * in.B + b) * Y + k);
          if (got.y[at] != in.padding) ++wrong;
        }
      }
    }
    EXPECT_EQ(wrong, 0u) << "padded y elements that do not hold padding_value";
  }
  // The test's own sanity: with a clip, the reference's cell state reaches it somewhere (the clip was exercised).
  if (c.clip > 0.0f) {
    bool reached = false;
    for (float v : want.c_n) reached = reached || std::fabs(v) >= c.clip * 0.999f;
    EXPECT_TRUE(reached) << "the cell clip never engaged; make it smaller";
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------

// dtype x direction x layers x projection, with layout, lengths, states and cell clip varied across the matrix, on
// the STANDARD algorithm, which takes whatever cuDNN's RNN API can express: every f32 and f16 configuration must run.
// bf16 is the one thing a cuDNN build or GPU may refuse, and then as a whole (at Model creation, naming the dtype);
// a bf16 refusal of some configurations but not others is a bug of ours (a descriptor that only breaks with a
// projection, say), and so is any cuDNN error, which check_case fails on directly.
TEST(CudnnBackendGpu, MatchesReferenceAcrossSupportedConfigurations) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  std::unique_ptr<Context> ctx;  // one Context for every model (it keeps per-model descriptors)
  int ran = 0, refused = 0, k = 0;
  int ran_by_dtype[3] = {0, 0, 0}, cases_by_dtype[3] = {0, 0, 0};
  std::vector<std::string> bf16_refusals;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (Direction dir : {Direction::kForward, Direction::kReverse, Direction::kBidirectional}) {
      for (int layers : {1, 2}) {
        for (std::int64_t proj : {0, 3}) {
          Case c;
          c.dtype = dtype;
          c.dir = dir;
          c.layers = layers;
          c.proj = proj;
          c.layout = (k % 2) ? BatchLayout::kBatchMajor : BatchLayout::kSeqMajor;
          c.varied_lengths = (k % 3) != 0;
          c.states = (k % 4) != 1;
          c.clip = (k % 5 == 2) ? 0.3f : 0.0f;
          c.bias = (k % 7) != 3;
          ++k;
          const int d = dtype == DType::kF32 ? 0 : dtype == DType::kF16 ? 1 : 2;
          std::string refusal;
          const bool did_run = check_case(c, &ctx, CallStyle(), &refusal);
          if (HasFatalFailure()) return;
          (did_run ? ran : refused)++;
          ran_by_dtype[d] += did_run ? 1 : 0;
          ++cases_by_dtype[d];
          if (!did_run && dtype == DType::kBF16) bf16_refusals.push_back(c.name() + ": " + refusal);
        }
      }
    }
  }
  std::printf("  %d configurations ran, %d refused by cuDNN\n", ran, refused);
  EXPECT_EQ(ran_by_dtype[0], cases_by_dtype[0]) << "every f32 configuration must run on STANDARD";
  EXPECT_EQ(ran_by_dtype[1], cases_by_dtype[1]) << "every f16 configuration must run on STANDARD";
  if (ran_by_dtype[2] != cases_by_dtype[2]) {
    EXPECT_EQ(ran_by_dtype[2], 0) << "cuDNN took bf16 for some configurations and refused others:\n"
                                  << ::testing::PrintToString(bf16_refusals);
    for (const std::string& r : bf16_refusals) {
      EXPECT_NE(r.find("dtype bf16"), std::string::npos) << "a bf16 refusal that is not about the dtype: " << r;
    }
  }
}

TEST(CudnnBackendGpu, EdgeShapesAndMathModes) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  std::unique_ptr<Context> ctx;
  Case c;
  c.T = 1;  // one step
  EXPECT_TRUE(check_case(c, &ctx));
  c = Case();
  c.B = 1;  // one sequence, bidirectional, varied (i.e. shorter than T) length
  c.T = 9;
  c.dir = Direction::kBidirectional;
  c.varied_lengths = true;
  EXPECT_TRUE(check_case(c, &ctx));
  c = Case();  // a larger f32 model, strict and tf32
  c.input = 48;
  c.hidden = 96;
  c.proj = 40;
  c.layers = 3;
  c.dir = Direction::kBidirectional;
  c.B = 16;
  c.T = 24;
  c.varied_lengths = true;
  EXPECT_TRUE(check_case(c, &ctx));
  c.math = MathMode::kAllowTF32;
  EXPECT_TRUE(check_case(c, &ctx));
  c = Case();  // reverse, batch-major, varied lengths, no bias, cell clip
  c.dir = Direction::kReverse;
  c.layout = BatchLayout::kBatchMajor;
  c.varied_lengths = true;
  c.bias = false;
  c.clip = 0.3f;
  c.layers = 2;
  c.T = 11;
  c.B = 5;
  EXPECT_TRUE(check_case(c, &ctx));
}

TEST(CudnnBackendGpu, OmittedYUnalignedWorkspaceAndOwnStream) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  cudaStream_t stream = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (Direction dir : {Direction::kForward, Direction::kReverse, Direction::kBidirectional}) {
    Case c;
    c.dir = dir;
    c.varied_lengths = true;
    c.layers = 2;
    CallStyle style;
    style.want_y = false;  // y absent: cuDNN still needs one (the workspace's y scratch)
    style.workspace_misalign = 8;
    style.stream = stream;
    EXPECT_TRUE(check_case(c, nullptr, style));
    style.want_y = true;
    EXPECT_TRUE(check_case(c, nullptr, style));
  }
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
}

int compute_capability_major() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    return 0;
  }
  return major;
}

// Every explicit algorithm either matches the reference or is refused with kNotSupported naming it; full and
// varied lengths, with and without a cell clip. At least one persistent algorithm must run the small unidirectional
// f16 model on sm_80 and later (PyTorch picks persist_static_small_h for that very configuration), so that this
// test cannot pass with every persistent algorithm refused for a reason of ours.
TEST(CudnnBackendGpu, EveryAlgorithmMatchesOrIsRefusedByName) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  int persistent_ran_small_f16 = 0;
  for (DType dtype : {DType::kF32, DType::kF16}) {
    for (Direction dir : {Direction::kForward, Direction::kBidirectional}) {
      for (CudnnAlgo algo : {CudnnAlgo::kStandard, CudnnAlgo::kPersistStatic, CudnnAlgo::kPersistStaticSmallH,
                             CudnnAlgo::kPersistDynamic}) {
        for (int variant = 0; variant < 3; ++variant) {  // full lengths; varied lengths; full with a cell clip
          Case c;
          c.dtype = dtype;
          c.dir = dir;
          c.algo = algo;
          c.input = 32;
          c.hidden = 64;
          c.layers = 2;
          c.B = 8;
          c.T = 16;
          c.varied_lengths = variant == 1;
          c.clip = variant == 2 ? 0.3f : 0.0f;
          std::string refusal;
          const bool ran = check_case(c, nullptr, CallStyle(), &refusal);
          if (HasFatalFailure()) return;
          if (algo == CudnnAlgo::kStandard) {
            EXPECT_TRUE(ran) << c.name();
          } else if (!ran) {
            EXPECT_NE(refusal.find(cudnn_algo_name(algo)), std::string::npos)
                << c.name() << ": a refusal must name the algorithm: " << refusal;
          } else if (dtype == DType::kF16 && dir == Direction::kForward && variant == 0) {
            ++persistent_ran_small_f16;
          }
        }
      }
    }
  }
  if (compute_capability_major() >= 8) {
    EXPECT_GE(persistent_ran_small_f16, 1)
        << "no persistent cuDNN algorithm ran a unidirectional f16 LSTM with H = 64 and full lengths";
  }
}

TEST(CudnnBackendGpu, AutoTunesOncePerShapeAndReportsIt) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  LstmSpec spec;
  spec.input_size = 16;
  spec.hidden_size = 32;
  spec.num_layers = 2;
  std::mt19937 rng(11);
  const Weights weights = testing_util::random_weights(spec, rng);
  ModelOptions options;
  options.backend = Backend::kCudnn;
  options.max_batch = 8;
  options.max_seq_len = 20;
  std::shared_ptr<const Model> model;
  ASSERT_TRUE(Model::create(spec, weights, options, &model).ok());
  const std::string plan = model->plan().explain();
  std::printf("%s", plan.c_str());
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  Case c;
  c.input = 16;
  c.hidden = 32;
  c.layers = 2;
  Inputs in = make_inputs(c, spec, rng);
  in.T = 20;
  in.B = 8;
  in.x = testing_util::random_values(static_cast<std::size_t>(in.T * in.B * spec.input_size), rng);
  in.with_h0 = in.with_c0 = false;
  in.h0.clear();
  in.c0.clear();
  const Tolerance tol = tolerance_for(spec);
  Outputs want, got;
  ASSERT_TRUE(run_reference(spec, weights, in, &want).ok());
  std::string report, first_report;
  for (int call = 0; call < 3; ++call) {  // the first call tunes, the others reuse the choice
    Status st;
    run_gpu(*model, *ctx, in, CallStyle(), &st, &got);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(st.ok()) << st.to_string();
    expect_close(got, want, tol, call == 0 ? "tuning call" : "tuned call");
    ASSERT_TRUE(cudnn_tuning_report(*model, &report).ok());
    if (call == 0) first_report = report;
    EXPECT_EQ(report, first_report) << "the shape was tuned again on call " << call;
  }
  std::printf("  tuning report:\n%s", report.c_str());
  EXPECT_NE(report.find("B=8 T=20 lengths=full"), std::string::npos) << report;
  // Every algorithm legal for the spec is accounted for in the shape's line: timed ("<name> <t> ms") or skipped
  // with cuDNN's reason ("<name> skipped (...)"); the chosen one was timed unless it was the only candidate.
  const std::size_t listed = plan.find("times the legal ones [");
  ASSERT_NE(listed, std::string::npos) << plan;
  const std::string legal = plan.substr(listed, plan.find(']', listed) - listed);
  const std::string line = report.substr(0, report.find('\n'));
  int accounted = 0, timed = 0;
  for (CudnnAlgo algo : {CudnnAlgo::kStandard, CudnnAlgo::kPersistStatic, CudnnAlgo::kPersistStaticSmallH,
                         CudnnAlgo::kPersistDynamic}) {
    const std::string name = cudnn_algo_name(algo);
    // `legal` is "times the legal ones [a, b, c": match whole names (persist_static is a prefix of another).
    const std::string list = legal.substr(legal.find('[') + 1) + ",";
    if (list.find(name + ",") != 0 && list.find(" " + name + ",") == std::string::npos) continue;
    const bool was_timed = line.find("; " + name + " ") != std::string::npos &&
                           line.find("; " + name + " skipped") == std::string::npos;
    const bool was_skipped = line.find("; " + name + " skipped (") != std::string::npos;
    // The only candidate left for the shape: chosen without timing, so the line times nothing at all.
    const std::string chosen = line.substr(line.find(": ") + 2, line.find(';') == std::string::npos
                                                                    ? std::string::npos
                                                                    : line.find(';') - line.find(": ") - 2);
    const bool sole = chosen == name && line.find(" ms") == std::string::npos;
    EXPECT_TRUE(was_timed || was_skipped || sole) << name << " is legal for the spec but not in the report:\n"
                                                  << line;
    accounted += (was_timed || was_skipped || sole) ? 1 : 0;
    timed += was_timed ? 1 : 0;
  }
  EXPECT_GE(accounted, 1);
  if (legal.find(',') != std::string::npos && timed == 1) {
    std::printf("  note: only one algorithm could run this shape; auto had nothing to compare\n");
  }
  // Varied lengths are a new key (some persistent algorithms take no variable lengths).
  in.lengths = {20, 3, 7, 1, 20, 19, 2, 5};
  ASSERT_TRUE(run_reference(spec, weights, in, &want).ok());
  Status st;
  run_gpu(*model, *ctx, in, CallStyle(), &st, &got);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(st.ok()) << st.to_string();
  expect_close(got, want, tol, "mixed lengths");
  ASSERT_TRUE(cudnn_tuning_report(*model, &report).ok());
  EXPECT_NE(report.find("B=8 T=20 lengths=mixed"), std::string::npos) << report;
}

// Under stream capture: an explicit algorithm is captured and replays the reference's result. auto on a shape it
// has not tuned yet must time several algorithms, which cannot happen in a capture: refused with InvalidArgument
// before anything is enqueued (the caller's graph stays empty); when cuDNN leaves only one algorithm for the shape,
// nothing needs timing and the call is captured like an explicit one (the tuning report then shows no timing).
TEST(CudnnBackendGpu, StreamCapture) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  Case explicit_case;
  explicit_case.dir = Direction::kBidirectional;
  explicit_case.varied_lengths = true;
  explicit_case.layers = 2;
  explicit_case.algo = CudnnAlgo::kStandard;
  Case auto_case;  // the configuration for which PyTorch uses a persistent algorithm: more than one candidate
  auto_case.dtype = DType::kF16;
  auto_case.input = 32;
  auto_case.hidden = 64;
  auto_case.layers = 2;
  auto_case.B = 8;
  auto_case.T = 16;
  auto_case.algo = CudnnAlgo::kAuto;

  cudaStream_t stream = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (const Case& c : {explicit_case, auto_case}) {
    SCOPED_TRACE(c.name());
    const LstmSpec spec = c.spec();
    std::mt19937 rng(17);
    const Weights weights = testing_util::random_weights(spec, rng, 0.5f);
    const Inputs in = make_inputs(c, spec, rng);
    Outputs want;
    ASSERT_TRUE(run_reference(spec, weights, in, &want).ok());
    std::shared_ptr<const Model> model;
    const Status created = make_cudnn_model(c, weights, &model);
    ASSERT_TRUE(created.ok()) << created.to_string();
    std::unique_ptr<Context> ctx;
    ASSERT_TRUE(Context::create(*model, &ctx).ok());
    const Shapes s = shapes_of(spec, in.T, in.B);
    const std::size_t e = dtype_size(spec.dtype);
    DeviceIo io;
    make_device_io(spec, in, &io);
    ASSERT_FALSE(HasFatalFailure());
    DeviceBytes ws;
    std::size_t bytes = 0;
    ASSERT_TRUE(model->workspace_size(in.B, in.T, &bytes).ok());
    CULSTM_ASSERT_CUDA(ws.init(bytes));
    ForwardArgs args = make_args(spec, in, MemoryKind::kDevice, io.x.get(), io.h0.get(), io.c0.get(), io.y.get(),
                                 io.h_n.get(), io.c_n.get());
    args.workspace = ws.get();
    args.workspace_bytes = bytes;
    if (c.algo != CudnnAlgo::kAuto) {
      // Warm up outside the capture (first use of cuDNN's kernels may load modules), poison again, then capture.
      ASSERT_TRUE(forward(*ctx, *model, args, stream).ok());
      CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
      CULSTM_ASSERT_CUDA(cudaMemsetAsync(io.y.get(), 0xff, static_cast<std::size_t>(s.y) * e, stream));
      CULSTM_ASSERT_CUDA(cudaMemsetAsync(io.h_n.get(), 0xff, static_cast<std::size_t>(s.h) * e, stream));
      CULSTM_ASSERT_CUDA(cudaMemsetAsync(io.c_n.get(), 0xff, static_cast<std::size_t>(s.c) * e, stream));
    }
    CULSTM_ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const Status st = forward(*ctx, *model, args, stream);
    cudaGraph_t graph = nullptr;
    CULSTM_ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
    std::size_t nodes = 0;
    CULSTM_ASSERT_CUDA(cudaGraphGetNodes(graph, nullptr, &nodes));
    if (c.algo == CudnnAlgo::kAuto) {
      std::string report;
      ASSERT_TRUE(cudnn_tuning_report(*model, &report).ok());
      if (st.code() == StatusCode::kInvalidArgument) {
        std::printf("  auto under capture: refused (several candidates to time): %s\n", st.message().c_str());
        EXPECT_EQ(nodes, 0u) << "a refused call left work in the caller's graph";
        EXPECT_EQ(report.find(" ms"), std::string::npos) << "timed under capture:\n" << report;
        CULSTM_ASSERT_CUDA(cudaGraphDestroy(graph));
        continue;
      }
      ASSERT_TRUE(st.ok()) << st.to_string();
      std::printf("  auto under capture: one candidate, captured:\n%s", report.c_str());
      EXPECT_EQ(report.find(" ms"), std::string::npos) << "timed under capture:\n" << report;
    }
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_GT(nodes, 0u);
    cudaGraphExec_t exec = nullptr;
    CULSTM_ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    CULSTM_ASSERT_CUDA(cudaGraphLaunch(exec, stream));
    CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
    CULSTM_ASSERT_CUDA(cudaGraphExecDestroy(exec));
    CULSTM_ASSERT_CUDA(cudaGraphDestroy(graph));
    Outputs got;
    download_outputs(spec, io, &got);
    ASSERT_FALSE(HasFatalFailure());
    expect_close(got, want, tolerance_for(spec), "replayed graph");
  }
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
}

// options.cudnn_algo = persist_dynamic builds its kernels for each batch size on a Context's first forward of it
// (cudnnBuildRNNDynamic: a run-time compile). Under the caller's capture that first forward is refused with
// InvalidArgument before anything is enqueued (the graph stays empty, the outputs untouched); once the batch size
// ran on the Context outside a capture, the capture holds the call and its replay matches the reference; a new
// batch size is refused again. Model::workspace_size(B, T) is asked before each capture, as a caller sizing its
// workspace does (the Model sizes persist_dynamic's workspace with a build of its own: docs/cudnn_backend.md).
TEST(CudnnBackendGpu, PersistDynamicUnderCaptureNeedsItsBatchBuiltFirst) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  Case c;  // f16 with H = 64: where PyTorch itself uses a persistent algorithm
  c.dtype = DType::kF16;
  c.input = 32;
  c.hidden = 64;
  c.T = 16;
  c.B = 8;
  c.algo = CudnnAlgo::kPersistDynamic;
  const LstmSpec spec = c.spec();
  std::mt19937 rng(23);
  const Weights weights = testing_util::random_weights(spec, rng, 0.5f);
  std::shared_ptr<const Model> model;
  const Status created = make_cudnn_model(c, weights, &model);
  if (created.code() == StatusCode::kNotSupported) {
    GTEST_SKIP() << "cuDNN refuses persist_dynamic for this spec here: " << created.message();
  }
  ASSERT_TRUE(created.ok()) << created.to_string();
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  cudaStream_t stream = nullptr;
  CULSTM_ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // cuDNN refusing persist_dynamic for a batch size here (e.g. its run-time compile fails), per batch size.
  std::vector<std::string> refusals;
  for (std::int64_t batch : {8, 5}) {
    SCOPED_TRACE(detail::str("B=", batch));
    Case cb = c;
    cb.B = batch;
    const Inputs in = make_inputs(cb, spec, rng);
    Outputs want;
    ASSERT_TRUE(run_reference(spec, weights, in, &want).ok());
    DeviceIo io;
    make_device_io(spec, in, &io);
    ASSERT_FALSE(HasFatalFailure());
    DeviceBytes ws;
    std::size_t bytes = 0;
    const Status sized = model->workspace_size(in.B, in.T, &bytes);
    ASSERT_TRUE(sized.ok()) << sized.to_string();
    CULSTM_ASSERT_CUDA(ws.init(bytes));
    ForwardArgs args = make_args(spec, in, MemoryKind::kDevice, io.x.get(), io.h0.get(), io.c0.get(), io.y.get(),
                                 io.h_n.get(), io.c_n.get());
    args.workspace = ws.get();
    args.workspace_bytes = bytes;
    // Captures one forward; `*nodes`: what the caller's graph holds afterwards.
    auto capture = [&](Status* st, cudaGraph_t* graph, std::size_t* nodes) {
      CULSTM_ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      *st = forward(*ctx, *model, args, stream);
      CULSTM_ASSERT_CUDA(cudaStreamEndCapture(stream, graph));
      CULSTM_ASSERT_CUDA(cudaGraphGetNodes(*graph, nullptr, nodes));
    };

    // First forward of this batch size on the Context, under capture: refused, nothing recorded or written.
    Status st;
    cudaGraph_t graph = nullptr;
    std::size_t nodes = 0;
    capture(&st, &graph, &nodes);
    ASSERT_FALSE(HasFatalFailure());
    CULSTM_ASSERT_CUDA(cudaGraphDestroy(graph));
    if (st.code() == StatusCode::kNotSupported && st.message().find("persist_dynamic") != std::string::npos) {
      // workspace_size() above sized persist_dynamic with the Model's own build for B, and that build (or the
      // sizing) was refused: nothing to capture. Refused before the capture check, so nothing was recorded.
      std::printf("  [cudnn refuses] persist_dynamic B=%lld: %s\n", static_cast<long long>(batch),
                  st.message().c_str());
      EXPECT_EQ(nodes, 0u) << "a refused call left work in the caller's graph";
      refusals.push_back(st.message());
      continue;
    }
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
    EXPECT_NE(st.message().find("persist_dynamic (options.cudnn_algo)"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(detail::str("run B=", batch, " once")), std::string::npos) << st.message();
    EXPECT_EQ(nodes, 0u) << "a refused call left work in the caller's graph";
    CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
    Outputs got;
    download_outputs(spec, io, &got);
    ASSERT_FALSE(HasFatalFailure());
    expect_untouched(got);

    // The same call outside a capture builds the kernels for the batch size (or cuDNN refuses them by name).
    st = forward(*ctx, *model, args, stream);
    CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
    if (st.code() == StatusCode::kNotSupported) {
      std::printf("  [cudnn refuses] persist_dynamic B=%lld: %s\n", static_cast<long long>(batch),
                  st.message().c_str());
      EXPECT_NE(st.message().find("persist_dynamic"), std::string::npos) << st.message();
      refusals.push_back(st.message());
      continue;
    }
    ASSERT_TRUE(st.ok()) << st.to_string();
    download_outputs(spec, io, &got);
    ASSERT_FALSE(HasFatalFailure());
    expect_close(got, want, tolerance_for(spec), "direct call");

    // Now the capture holds the call, and its replay writes the same results into poisoned outputs.
    const Shapes s = shapes_of(spec, in.T, in.B);
    const std::size_t e = dtype_size(spec.dtype);
    CULSTM_ASSERT_CUDA(cudaMemsetAsync(io.y.get(), 0xff, static_cast<std::size_t>(s.y) * e, stream));
    CULSTM_ASSERT_CUDA(cudaMemsetAsync(io.h_n.get(), 0xff, static_cast<std::size_t>(s.h) * e, stream));
    CULSTM_ASSERT_CUDA(cudaMemsetAsync(io.c_n.get(), 0xff, static_cast<std::size_t>(s.c) * e, stream));
    capture(&st, &graph, &nodes);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_TRUE(st.ok()) << st.to_string();
    EXPECT_GT(nodes, 0u);
    if (st.ok()) {
      cudaGraphExec_t exec = nullptr;
      CULSTM_ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
      CULSTM_ASSERT_CUDA(cudaGraphLaunch(exec, stream));
      CULSTM_ASSERT_CUDA(cudaStreamSynchronize(stream));
      CULSTM_ASSERT_CUDA(cudaGraphExecDestroy(exec));
      download_outputs(spec, io, &got);
      ASSERT_FALSE(HasFatalFailure());
      expect_close(got, want, tolerance_for(spec), "replayed graph");
    }
    CULSTM_ASSERT_CUDA(cudaGraphDestroy(graph));
  }
  CULSTM_ASSERT_CUDA(cudaStreamDestroy(stream));
  if (refusals.size() == 2) {
    GTEST_SKIP() << "cuDNN refuses persist_dynamic here for every batch size tried: "
                 << ::testing::PrintToString(refusals);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What cuDNN cannot express: kNotSupported naming the option, never a silent fallback.

TEST(CudnnBackendGpu, UnsupportedOptionsAreNamedAtCreate) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  struct Unsupported {
    const char* option;
    void (*edit)(LstmSpec*);
  };
  const Unsupported cases[] = {
      {"peepholes", [](LstmSpec* s) { s->peepholes = true; }},
      {"input_forget", [](LstmSpec* s) { s->input_forget = true; }},
      {"gate_clip", [](LstmSpec* s) { s->gate_clip = 1.0f; }},
      {"gate_activation", [](LstmSpec* s) { s->gate_activation = Activation::hard_sigmoid(); }},
      {"cell_activation", [](LstmSpec* s) { s->cell_activation = Activation::relu(); }},
      {"hidden_activation", [](LstmSpec* s) { s->hidden_activation = Activation::softsign(); }},
  };
  for (const Unsupported& u : cases) {
    LstmSpec spec;
    spec.input_size = 4;
    spec.hidden_size = 6;
    u.edit(&spec);
    ModelOptions options;
    options.backend = Backend::kCudnn;
    std::shared_ptr<const Model> model;
    const Status st = Model::create(spec, Weights::zeros_for(spec), options, &model);
    EXPECT_EQ(st.code(), StatusCode::kNotSupported) << u.option << ": " << st.to_string();
    EXPECT_NE(st.message().find(u.option), std::string::npos) << st.message();
  }
}

TEST(CudnnBackendGpu, ZeroLengthIsNotSupportedAndWritesNothing) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  Case c;
  const LstmSpec spec = c.spec();
  std::mt19937 rng(5);
  const Weights weights = testing_util::random_weights(spec, rng);
  c.algo = CudnnAlgo::kAuto;
  std::shared_ptr<const Model> model;
  ASSERT_TRUE(make_cudnn_model(c, weights, &model).ok());
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  Inputs in = make_inputs(c, spec, rng);
  in.lengths = {3, 0, 6};
  Status st;
  Outputs got;
  run_gpu(*model, *ctx, in, CallStyle(), &st, &got);
  EXPECT_EQ(st.code(), StatusCode::kNotSupported) << st.to_string();
  EXPECT_NE(st.message().find("lengths[1] = 0"), std::string::npos) << st.message();
  expect_untouched(got);
}

// An error that earlier CUDA work left pending is reported as such before anything is enqueued, and cleared.
TEST(CudnnBackendGpu, PendingErrorOfTheCallerIsReportedBeforeEnqueuing) {
  CULSTM_SKIP_WITHOUT_CUDNN();
  Case c;
  const LstmSpec spec = c.spec();
  std::mt19937 rng(6);
  const Weights weights = testing_util::random_weights(spec, rng);
  std::shared_ptr<const Model> model;
  ASSERT_TRUE(make_cudnn_model(c, weights, &model).ok());  // c.algo: standard
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  const Inputs in = make_inputs(c, spec, rng);
  CallStyle style;
  style.pending_error = true;
  Status st;
  Outputs got;
  run_gpu(*model, *ctx, in, style, &st, &got);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(st.code(), StatusCode::kCudaError) << st.to_string();
  EXPECT_NE(st.message().find("pending"), std::string::npos) << st.to_string();
  expect_untouched(got);
  style.pending_error = false;
  run_gpu(*model, *ctx, in, style, &st, &got);
  EXPECT_TRUE(st.ok()) << st.to_string();
}

}  // namespace
}  // namespace culstm
