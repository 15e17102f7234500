// The CPU reference backend: docs/design.md §2 executed literally, one sequence at a time, float64 accumulation.
// It is the definition of "correct" for every other backend, so it favours obviousness over speed.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "../backend.h"
#include "detail.h"
#include "../float16.h"
#include "../nvtx.h"
#include "cell_math.h"

namespace culstm {
namespace {

// Reads element `index` of a host tensor of a floating dtype as double.
double load(const void* data, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(data)[index];
    case DType::kF16: return detail::half_to_float(static_cast<const std::uint16_t*>(data)[index]);
    case DType::kBF16: return detail::bf16_to_float(static_cast<const std::uint16_t*>(data)[index]);
    case DType::kF64: return static_cast<const double*>(data)[index];
    default: return 0.0;
  }
}

// Writes `value` rounded to `dtype` (through f32 for the 16-bit types, as a GPU kernel would).
void store(void* data, DType dtype, std::int64_t index, double value) {
  switch (dtype) {
    case DType::kF32: static_cast<float*>(data)[index] = static_cast<float>(value); break;
    case DType::kF16:
      static_cast<std::uint16_t*>(data)[index] = detail::float_to_half(static_cast<float>(value));
      break;
    case DType::kBF16:
      static_cast<std::uint16_t*>(data)[index] = detail::float_to_bf16(static_cast<float>(value));
      break;
    case DType::kF64: static_cast<double*>(data)[index] = value; break;
    default: break;
  }
}

// Workspace carving (all float64): two layer buffers [T, B, W] with W = max(I, D*R), and per-sequence state.
struct WorkspaceLayout {
  std::size_t layer_buffer_elems;  // T * B * W
  std::size_t state_elems;         // h (R) + c (H) + gate pre-activations (4H) + unprojected h (H)
  std::size_t bytes() const { return (2 * layer_buffer_elems + state_elems) * sizeof(double); }
};

class ReferenceContext final : public ContextImpl {
 public:
  ReferenceContext() : ContextImpl(Backend::kReference, -1) {}
};

class ReferenceBackend final : public BackendImpl {
 public:
  ReferenceBackend(const LstmSpec& spec, Weights weights, Plan plan)
      : spec_(spec), weights_(std::move(weights)), plan_(std::move(plan)) {}

  Backend kind() const noexcept override { return Backend::kReference; }
  MemoryKind data_memory() const noexcept override { return MemoryKind::kHost; }
  const Plan& plan() const noexcept override { return plan_; }

  std::size_t workspace_size(std::int64_t batch, std::int64_t seq_len) const noexcept override {
    return layout(batch, seq_len).bytes();
  }

  Status create_context(int /*device*/, std::unique_ptr<ContextImpl>* out) const override {
    *out = std::make_unique<ReferenceContext>();
    return Status::Ok();
  }

  Status forward(ContextImpl& /*ctx*/, const ForwardArgs& args, const ForwardShape& shape,
                 Stream /*stream*/) const override;

 private:
  WorkspaceLayout layout(std::int64_t batch, std::int64_t seq_len) const {
    const std::int64_t width = std::max(spec_.input_size, spec_.output_size());
    const std::int64_t H = spec_.hidden_size, R = spec_.recurrent_size();
    return WorkspaceLayout{static_cast<std::size_t>(seq_len * batch * width),
                           static_cast<std::size_t>(R + H + 4 * H + H)};
  }

  // Runs one (layer, direction) over sequence b. `in` is [T, B, in_width], `out` is [T, B, D*R]; the direction
  // writes its R columns at offset dir*R.
  void run_sequence(int layer, int dir, std::int64_t b, std::int64_t T, std::int64_t B, std::int64_t len,
                    const double* in, std::int64_t in_width, double* out, double* state, const ForwardArgs& args) const;

  LstmSpec spec_;
  Weights weights_;  // rounded to spec_.dtype
  Plan plan_;
};

void ReferenceBackend::run_sequence(int layer, int dir, std::int64_t b, std::int64_t T, std::int64_t B,
                                    std::int64_t len, const double* in, std::int64_t in_width, double* out,
                                    double* state, const ForwardArgs& args) const {
  const std::int64_t H = spec_.hidden_size, R = spec_.recurrent_size(), P = spec_.proj_size;
  const std::int64_t D = spec_.num_directions(), Y = spec_.output_size();
  const std::int64_t state_row = (static_cast<std::int64_t>(layer) * D + dir) * B + b;  // index into [L*D, B, .]
  const LayerWeights& w = weights_.at(layer, dir);
  double* h = state;             // [R]
  double* c = h + R;             // [H]
  double* pre = c + H;           // [4H]
  double* h_cell = pre + 4 * H;  // [H]  o * ha(c) before projection

  for (std::int64_t k = 0; k < R; ++k) h[k] = args.h0.data ? load(args.h0.data, spec_.dtype, state_row * R + k) : 0.0;
  for (std::int64_t k = 0; k < H; ++k) c[k] = args.c0.data ? load(args.c0.data, spec_.dtype, state_row * H + k) : 0.0;

  const cell::CellParams params = cell::cell_params(spec_);
  const bool reversed = spec_.runs_reversed(dir);
  for (std::int64_t step = 0; step < len; ++step) {
    const std::int64_t t = reversed ? len - 1 - step : step;
    const double* x_t = in + (t * B + b) * in_width;
    for (std::int64_t row = 0; row < 4 * H; ++row) {
      double acc = spec_.bias ? static_cast<double>(w.b_ih[row]) + static_cast<double>(w.b_hh[row]) : 0.0;
      const float* w_ih_row = &w.w_ih[static_cast<std::size_t>(row * in_width)];
      for (std::int64_t k = 0; k < in_width; ++k) acc += static_cast<double>(w_ih_row[k]) * x_t[k];
      const float* w_hh_row = &w.w_hh[static_cast<std::size_t>(row * R)];
      for (std::int64_t k = 0; k < R; ++k) acc += static_cast<double>(w_hh_row[k]) * h[k];
      pre[row] = acc;
    }
    for (std::int64_t j = 0; j < H; ++j) {
      const double p_i = spec_.peepholes ? w.peephole[static_cast<std::size_t>(j)] : 0.0;
      const double p_f = spec_.peepholes ? w.peephole[static_cast<std::size_t>(H + j)] : 0.0;
      const double p_o = spec_.peepholes ? w.peephole[static_cast<std::size_t>(2 * H + j)] : 0.0;
      const cell::CellOutput<double> r =
          cell::lstm_cell<double>(params, pre[j], pre[H + j], pre[2 * H + j], pre[3 * H + j], c[j], p_i, p_f, p_o);
      c[j] = r.c;
      h_cell[j] = r.h;
    }
    if (P > 0) {
      for (std::int64_t p = 0; p < P; ++p) {
        double acc = 0.0;
        const float* w_hr_row = &w.w_hr[static_cast<std::size_t>(p * H)];
        for (std::int64_t j = 0; j < H; ++j) acc += static_cast<double>(w_hr_row[j]) * h_cell[j];
        h[p] = acc;
      }
    } else {
      std::copy(h_cell, h_cell + H, h);
    }
    std::copy(h, h + R, out + (t * B + b) * Y + dir * R);
  }
  for (std::int64_t t = len; t < T; ++t) {
    std::fill(out + (t * B + b) * Y + dir * R, out + (t * B + b) * Y + (dir + 1) * R,
              static_cast<double>(args.padding_value));
  }
  if (args.h_n.data) {
    for (std::int64_t k = 0; k < R; ++k) store(args.h_n.data, spec_.dtype, state_row * R + k, h[k]);
  }
  if (args.c_n.data) {
    for (std::int64_t k = 0; k < H; ++k) store(args.c_n.data, spec_.dtype, state_row * H + k, c[k]);
  }
}

Status ReferenceBackend::forward(ContextImpl& /*ctx*/, const ForwardArgs& args, const ForwardShape& shape,
                                 Stream /*stream*/) const {
  const bool batch_major = spec_.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = shape.seq_len, B = shape.batch;
  const std::int64_t I = spec_.input_size, Y = spec_.output_size();
  const WorkspaceLayout ws = layout(B, T);
  double* buffer_a = static_cast<double*>(args.workspace);
  double* buffer_b = buffer_a + ws.layer_buffer_elems;
  double* state = buffer_b + ws.layer_buffer_elems;

  // Layer 0's input, seq-major in float64.
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t src = (batch_major ? b * T + t : t * B + b) * I;
      for (std::int64_t k = 0; k < I; ++k) buffer_a[(t * B + b) * I + k] = load(args.x.data, spec_.dtype, src + k);
    }
  }
  const auto* lengths = static_cast<const std::int32_t*>(args.lengths.data);
  double* in = buffer_a;
  double* out = buffer_b;
  for (int layer = 0; layer < spec_.num_layers; ++layer) {
    for (int dir = 0; dir < spec_.num_directions(); ++dir) {
      const nvtx::LayerRange range(layer, spec_.runs_reversed(dir));
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t len = lengths ? lengths[b] : T;
        run_sequence(layer, dir, b, T, B, len, in, spec_.layer_input_size(layer), out, state, args);
      }
    }
    std::swap(in, out);
  }
  if (args.y.data) {
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t dst = (batch_major ? b * T + t : t * B + b) * Y;
        for (std::int64_t k = 0; k < Y; ++k) store(args.y.data, spec_.dtype, dst + k, in[(t * B + b) * Y + k]);
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status make_reference_backend(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                              std::unique_ptr<BackendImpl>* out) {
  Weights rounded = weights;
  for (int l = 0; l < rounded.num_layers(); ++l) {
    for (int d = 0; d < rounded.num_directions(); ++d) {
      LayerWeights& lw = rounded.at(l, d);
      for (std::vector<float>* t : {&lw.w_ih, &lw.w_hh, &lw.b_ih, &lw.b_hh, &lw.w_hr, &lw.peephole}) {
        for (float& v : *t) v = detail::round_to_dtype(v, spec.dtype);
      }
    }
  }
  std::vector<PlanStep> steps;
  for (int l = 0; l < spec.num_layers; ++l) {
    for (int d = 0; d < spec.num_directions(); ++d) {
      PlanStep s;
      s.layer = l;
      s.direction = d;
      s.reversed = spec.runs_reversed(d);
      s.engine = "reference";
      s.reason = "CPU float64 reference: one sequence at a time, no shared workspace slice";
      steps.push_back(std::move(s));
    }
  }
  const std::int64_t width = std::max(spec.input_size, spec.output_size());
  std::string summary = detail::str("spec: ", spec.describe(), "\nworkspace: host float64, 2 x [T, B, ", width,
                                    "] layer buffers + ", spec.recurrent_size() + 6 * spec.hidden_size,
                                    " state values; limits B <= ", options.max_batch, ", T <= ", options.max_seq_len);
  out->reset(new ReferenceBackend(spec, std::move(rounded), Plan(Backend::kReference, summary, std::move(steps))));
  return Status::Ok();
}

}  // namespace culstm
