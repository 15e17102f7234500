// The stepwise engine's workspace layout, GEMM shapes and Plan (see stepwise_layout.h). Pure host arithmetic.
#include "stepwise_layout.h"

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "../detail.h"

namespace culstm {
namespace stepwise {
namespace {

constexpr std::size_t kSizeMax = std::numeric_limits<std::size_t>::max();

// Saturating size arithmetic: absurd model limits (max_batch x max_seq_len near 2^48) give SIZE_MAX, which no
// workspace can match, instead of a wrapped-around small number.
std::size_t mul(std::size_t a, std::size_t b) {
  if (a != 0 && b > kSizeMax / a) return kSizeMax;
  return a * b;
}
std::size_t add(std::size_t a, std::size_t b) {
  return a > kSizeMax - b ? kSizeMax : a + b;
}
std::size_t align_up(std::size_t n) {
  const std::size_t padded = add(n, kWorkspaceAlignment - 1);
  return padded == kSizeMax ? kSizeMax : padded / kWorkspaceAlignment * kWorkspaceAlignment;
}
std::size_t elems(std::int64_t a, std::int64_t b) {
  return mul(static_cast<std::size_t>(a), static_cast<std::size_t>(b));
}

// Appends a region of `bytes` at the aligned end of the layout so far.
Region take(std::size_t* cursor, std::size_t bytes) {
  Region r;
  r.offset = *cursor;
  r.bytes = bytes;
  *cursor = align_up(add(*cursor, bytes));
  return r;
}

std::string mib(std::size_t bytes) {
  return detail::str(static_cast<double>(bytes) / (1024.0 * 1024.0), " MiB");
}

}  // namespace

std::size_t cublas_workspace_bytes(int compute_capability_major) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  return compute_capability_major >= 9 ? 32 * kMiB : 4 * kMiB;
}

StepwiseLayout stepwise_layout(const LstmSpec& spec, std::int64_t batch, std::int64_t seq_len,
                               std::size_t cublas_bytes) {
  const std::int64_t D = spec.num_directions(), H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size,
                     G = 4 * H;
  const std::size_t value = dtype_size(spec.dtype);
  const std::size_t f32 = sizeof(float);
  const std::size_t rows = elems(seq_len, batch);

  StepwiseLayout out;
  std::size_t cursor = 0;
  out.cublas = take(&cursor, align_up(cublas_bytes));
  out.lengths = take(&cursor, mul(static_cast<std::size_t>(batch), sizeof(std::int32_t)));
  out.gates_x = take(&cursor, mul(mul(rows, static_cast<std::size_t>(D * G)), f32));
  const int buffers = spec.num_layers - 1 < 2 ? spec.num_layers - 1 : 2;
  for (int k = 0; k < 2; ++k) {
    out.layer_out[k] =
        k < buffers ? take(&cursor, mul(mul(rows, static_cast<std::size_t>(D * R)), value)) : Region{cursor, 0};
  }

  std::size_t block = 0;
  out.gates_h = take(&block, mul(elems(batch, G), f32)).offset;
  out.h = take(&block, mul(elems(batch, R), value)).offset;
  out.c = take(&block, mul(elems(batch, H), f32)).offset;
  if (P > 0) {
    out.h_cell = take(&block, mul(elems(batch, H), value)).offset;
    out.h_proj = take(&block, mul(elems(batch, P), f32)).offset;
  }
  out.h_next = take(&block, mul(elems(batch, R), value)).offset;
  out.direction_block = block;
  out.state = take(&cursor, mul(block, static_cast<std::size_t>(D)));
  out.total = cursor;
  return out;
}

LayerGemms layer_gemms(const LstmSpec& spec, int layer, std::int64_t batch, std::int64_t seq_len) {
  const std::int64_t D = spec.num_directions(), H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
  LayerGemms g;
  g.input = GemmShape{seq_len * batch, D * 4 * H, spec.layer_input_size(layer), 1};
  g.recurrent = GemmShape{batch, 4 * H, R, D};
  if (P > 0) g.projection = GemmShape{batch, P, H, D};
  return g;
}

Plan stepwise_plan(const LstmSpec& spec, const ModelOptions& options, std::size_t cublas_bytes,
                   const std::vector<LayerEngine>& engines) {
  const std::int64_t B = options.max_batch, T = options.max_seq_len;
  const StepwiseLayout ws = stepwise_layout(spec, B, T, cublas_bytes);
  const int D = spec.num_directions();
  std::vector<PlanStep> steps;
  for (int l = 0; l < spec.num_layers; ++l) {
    const LayerGemms g = layer_gemms(spec, l, B, T);
    const LayerEngine* engine = engines.empty() ? nullptr : &engines[static_cast<std::size_t>(l)];
    for (int d = 0; d < D; ++d) {
      PlanStep s;
      s.layer = l;
      s.direction = d;
      s.reversed = spec.runs_reversed(d);
      s.engine = engine != nullptr && engine->persistent ? "persistent" : "stepwise";
      s.workspace_offset = add(ws.state.offset, mul(static_cast<std::size_t>(d), ws.direction_block));
      s.workspace_bytes = ws.direction_block;
      const std::string input_gemm =
          detail::str("input GEMM [", g.input.m, ", ", g.input.k, "] x [", g.input.k, ", ", g.input.n,
                      "] once per layer (", D == 2 ? "both directions" : "one direction", ")");
      if (engine != nullptr && engine->persistent) {
        s.reason = detail::str(engine->why, "; ", input_gemm, ", then culstm_lstm_persistent_layer");
        steps.push_back(std::move(s));
        continue;
      }
      std::string how = detail::str(
          engine != nullptr ? engine->why : std::string("stepwise: options.cuda_engine = stepwise"), "; ", input_gemm,
          ", then per step: recurrent GEMM [", g.recurrent.m, ", ", g.recurrent.k, "] x [", g.recurrent.k, ", ",
          g.recurrent.n, "]", D == 2 ? " batched over 2 directions" : "", ", culstm_lstm_pointwise_step");
      if (g.projection.m > 0) {
        how += detail::str(", projection GEMM [", g.projection.m, ", ", g.projection.k, "] x [", g.projection.k, ", ",
                           g.projection.n, "], culstm_lstm_projection_commit");
      }
      s.reason = std::move(how);
      steps.push_back(std::move(s));
    }
  }
  const std::size_t layer_buffers = ws.layer_out[0].bytes + ws.layer_out[1].bytes;
  std::string summary = detail::str(
      "spec: ", spec.describe(), "\nengines (options.cuda_engine = ", cuda_engine_name(options.cuda_engine),
      "): stepwise = cuBLAS GEMMs + one fused pointwise kernel per step, all directions at once; persistent = one ",
      "cooperative kernel per layer with the recurrent weights in shared memory (per layer below)\nGEMMs ",
      spec.dtype == DType::kF32 ? (spec.math == MathMode::kAllowTF32 ? "f32 with tf32 allowed" : "strict f32 (no tf32)")
                                : detail::str(dtype_name(spec.dtype), " inputs, f32 accumulation"),
      "; cell state f32\nworkspace for B=", B, ", T=", T, ": ", ws.total, " bytes = cuBLAS ", mib(ws.cublas.bytes),
      " + lengths ", ws.lengths.bytes, " + input projections [T*B, ", D * 4 * spec.hidden_size, "] f32 ",
      ws.gates_x.bytes, " + intermediate layer outputs ", layer_buffers, " + ", D, " x state block ",
      ws.direction_block, "; limits B <= ", B, ", T <= ", T);
  return Plan(Backend::kCuda, std::move(summary), std::move(steps));
}

}  // namespace stepwise
}  // namespace culstm
