// The cuda backend's per-call plan: workspace layout, GEMM descriptors, kernel parameters, and the Plan rendered
// from them (see call_plan.h). Pure host arithmetic.
#include "call_plan.h"

#include <algorithm>
#include <climits>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "detail.h"

namespace culstm {
namespace cuda_backend {
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

bool fits_int(std::int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

std::string mib(std::size_t bytes) {
  return detail::str(static_cast<double>(bytes) / (1024.0 * 1024.0), " MiB");
}

}  // namespace

std::size_t cublas_workspace_bytes(int compute_capability_major) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  return compute_capability_major >= 9 ? 32 * kMiB : 4 * kMiB;
}

WorkspaceLayout workspace_layout(const LstmSpec& spec, std::int64_t batch, std::int64_t seq_len,
                                 std::size_t cublas_bytes) {
  const std::int64_t D = spec.num_directions(), H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size,
                     G = 4 * H;
  const std::size_t value = dtype_size(spec.dtype);
  const std::size_t f32 = sizeof(float);
  const std::size_t rows = elems(seq_len, batch);

  WorkspaceLayout out;
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

Status to_blas(const Gemm& g, BlasGemm* out) {
  if (!fits_int(g.m) || !fits_int(g.n) || !fits_int(g.k) || !fits_int(g.lda) || !fits_int(g.ldw) || !fits_int(g.ldc) ||
      !fits_int(g.batch)) {
    return detail::error(StatusCode::kInternal, "GEMM [", g.m, ", ", g.k, "] x [", g.k, ", ", g.n,
                         "] exceeds cuBLAS's int sizes");
  }
  BlasGemm b;
  b.trans_a = true;
  b.trans_b = false;
  b.m = static_cast<int>(g.n);
  b.n = static_cast<int>(g.m);
  b.k = static_cast<int>(g.k);
  b.A = g.w;
  b.lda = static_cast<int>(g.ldw);
  b.stride_a = g.stride_w;
  b.B = g.a;
  b.ldb = static_cast<int>(g.lda);
  b.stride_b = g.stride_a;
  b.C = g.c;
  b.ldc = static_cast<int>(g.ldc);
  b.stride_c = g.stride_c;
  b.batch = static_cast<int>(g.batch);
  *out = b;
  return Status::Ok();
}

namespace {

// `base` + `offset`, or null without a buffer (explain_model plans a call that has none).
std::uint8_t* at(void* base, std::size_t offset) {
  return base == nullptr ? nullptr : static_cast<std::uint8_t*>(base) + offset;
}

// That cuBLAS can take the GEMM (the runner splits the input GEMM's rows, so only its first chunk must fit).
Status check_gemm(Gemm g, const char* what) {
  g.m = std::min<std::int64_t>(g.m, INT_MAX);
  BlasGemm unused;
  const Status st = to_blas(g, &unused);
  return st.ok() ? st : detail::error(st.code(), what, ": ", st.message());
}

// One GEMM per direction in one strided-batched call: C[d] ([B, n] f32) = A[d] ([B, k]) W[d]^T, with W[d] the
// direction's [n, k] weights packed back to back, and A[d], C[d] at `a_stride` / `c_stride` elements apart (the
// state block of direction d).
Gemm per_direction_gemm(std::int64_t B, std::int64_t n, std::int64_t k, std::int64_t D, std::size_t value_bytes,
                        const void* a, long long a_stride, const void* w, float* c, long long c_stride) {
  Gemm g;
  g.value_bytes = value_bytes;
  g.m = B;
  g.n = n;
  g.k = k;
  g.batch = D;
  g.a = a;
  g.lda = k;
  g.stride_a = a_stride;
  g.w = w;
  g.ldw = k;
  g.stride_w = n * k;
  g.c = c;
  g.ldc = n;
  g.stride_c = c_stride;
  return g;
}

// One layer: the GEMM descriptors and kernel parameters, both directions. `in` is the layer's input, `out` its
// output (y, possibly null, or a workspace buffer).
void plan_layer(const ModelPlan& model, int layer, const ForwardArgs& args, const CallPlan& call, const void* in,
                void* out, LayerPlan* lp) {
  const LstmSpec& spec = model.spec;
  const WorkspaceLayout& ws = call.workspace;
  const std::int64_t T = call.seq_len, B = call.batch, D = spec.num_directions(), H = spec.hidden_size,
                     R = spec.recurrent_size(), P = spec.proj_size, G = 4 * H, I = spec.layer_input_size(layer);
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  const LayerWeightPointers w =
      model.weights.empty() ? LayerWeightPointers{} : model.weights[static_cast<std::size_t>(layer)];

  // The recurrent state: direction d's tensors at the direction-0 pointer plus d * stride elements.
  std::uint8_t* state = at(args.workspace, ws.state.offset);
  const auto f32_stride = static_cast<long long>(ws.direction_block / sizeof(float));
  const auto value_stride = static_cast<long long>(ws.direction_block / dtype_size(spec.dtype));  // elements
  auto* gates_h = reinterpret_cast<float*>(at(state, ws.gates_h));
  void* h = at(state, ws.h);
  auto* c = reinterpret_cast<float*>(at(state, ws.c));
  void* h_cell = P > 0 ? at(state, ws.h_cell) : nullptr;
  auto* h_proj = P > 0 ? reinterpret_cast<float*>(at(state, ws.h_proj)) : nullptr;
  auto* gates_x = reinterpret_cast<float*>(at(args.workspace, ws.gates_x.offset));
  const int* lengths = call.device_lengths;

  kernels::LayerDims dims;
  dims.directions = static_cast<int>(D);
  dims.batch = B;
  dims.seq_len = T;
  dims.hidden = H;
  dims.recurrent = R;
  dims.batch_major = batch_major;
  dims.reversed[0] = spec.runs_reversed(0);
  dims.reversed[1] = D == 2 && spec.runs_reversed(1);
  const cell::CellParams cell = cell::cell_params(spec);

  *lp = LayerPlan{};
  lp->layer = layer;
  lp->persistent = !model.engines.empty() && model.engines[static_cast<std::size_t>(layer)].persistent;
  lp->fill_padding = out != nullptr && call.host_lengths != nullptr;
  lp->projecting = P > 0;
  lp->final_state = args.h_n.data != nullptr || args.c_n.data != nullptr;

  // ONE GEMM for the input projections of every step and direction. Seq-major rows of steps >= max(len) are never
  // read, so only steps*B rows are projected; batch-major rows interleave the steps, so all T*B are.
  const std::size_t value = dtype_size(spec.dtype);
  Gemm& g = lp->input;
  g.value_bytes = value;
  g.m = batch_major ? T * B : call.steps * B;
  g.n = D * G;
  g.k = I;
  g.a = in;
  g.lda = I;
  g.w = w.w_ih;
  g.ldw = I;
  g.c = gates_x;
  g.ldc = D * G;

  lp->recurrent = per_direction_gemm(B, G, R, D, value, h, value_stride, w.w_hh, gates_h, f32_stride);
  if (P > 0) lp->projection = per_direction_gemm(B, P, H, D, value, h_cell, value_stride, w.w_hr, h_proj, f32_stride);

  kernels::FillPaddingParams& pad = lp->padding;
  pad.dims = dims;
  pad.lengths = lengths;
  pad.y = out;
  pad.value = args.padding_value;

  kernels::InitialStateParams& init = lp->initial;
  init.dims = dims;
  init.layer = layer;
  init.h0 = args.h0.data;
  init.c0 = args.c0.data;
  init.h = h;
  init.h_stride = value_stride;
  init.c = c;
  init.c_stride = f32_stride;
  init.h_cell = h_cell;
  init.h_cell_stride = value_stride;

  kernels::PointwiseStepParams& pw = lp->pointwise;
  pw.dims = dims;
  pw.cell = cell;
  pw.lengths = lengths;
  pw.gates_x = gates_x;
  pw.gates_h = gates_h;
  pw.gates_h_stride = f32_stride;
  pw.bias = w.bias;
  pw.peephole = w.peephole;
  pw.c = c;
  pw.c_stride = f32_stride;
  pw.h = h;
  pw.h_stride = value_stride;
  pw.h_cell = h_cell;
  pw.h_cell_stride = value_stride;
  pw.y = out;

  kernels::ProjectionCommitParams& commit = lp->commit;
  commit.dims = dims;
  commit.lengths = lengths;
  commit.h_proj = h_proj;
  commit.h_proj_stride = f32_stride;
  commit.h = h;
  commit.h_stride = value_stride;
  commit.y = out;

  kernels::FinalStateParams& fin = lp->final;
  fin.dims = dims;
  fin.layer = layer;
  fin.h_n = args.h_n.data;
  fin.c_n = args.c_n.data;
  fin.h = h;
  fin.h_stride = value_stride;
  fin.c = c;
  fin.c_stride = f32_stride;

  kernels::PersistentLayerParams& pl = lp->persistent_layer;
  pl.dims = dims;
  if (lp->persistent) {
    pl.tiling = model.engines[static_cast<std::size_t>(layer)].tiling;
    pl.smem = persistent_smem_layout(dims, pl.tiling, value);  // for this call's batch
  }
  pl.layer = layer;
  pl.steps = call.steps;
  pl.cell = cell;
  pl.lengths = lengths;
  pl.gates_x = gates_x;
  pl.w_hh = w.w_hh;
  pl.w_hr = P > 0 ? w.w_hr : nullptr;
  pl.bias = w.bias;
  pl.peephole = w.peephole;
  pl.h0 = args.h0.data;
  pl.c0 = args.c0.data;
  pl.h[0] = h;
  pl.h[1] = at(state, ws.h_next);
  pl.h_stride = value_stride;
  pl.h_cell = h_cell;
  pl.h_cell_stride = value_stride;
  pl.y = out;
  pl.h_n = args.h_n.data;
  pl.c_n = args.c_n.data;
}

std::string gemm_text(const char* name, const Gemm& g) {
  return detail::str(name, " [", g.m, ", ", g.k, "] x [", g.k, ", ", g.n, "]");
}

}  // namespace

Status plan_call(const ModelPlan& model, const ForwardArgs& args, const ForwardShape& shape, CallPlan* out) {
  const LstmSpec& spec = model.spec;
  const int L = spec.num_layers;
  out->batch = shape.batch;
  out->seq_len = shape.seq_len;
  out->steps = shape.steps;
  out->workspace = workspace_layout(spec, shape.batch, shape.seq_len, model.cublas_bytes);
  const WorkspaceLayout& ws = out->workspace;
  out->host_lengths = shape.lengths;
  out->device_lengths =
      shape.lengths != nullptr ? reinterpret_cast<int*>(at(args.workspace, ws.lengths.offset)) : nullptr;
  out->layers.resize(static_cast<std::size_t>(L));
  for (int l = 0; l < L; ++l) {
    const void* in = l == 0 ? args.x.data : at(args.workspace, ws.layer_out[(l - 1) % 2].offset);
    void* layer_out = l == L - 1 ? args.y.data : at(args.workspace, ws.layer_out[l % 2].offset);
    plan_layer(model, l, args, *out, in, layer_out, &out->layers[static_cast<std::size_t>(l)]);
  }
  // Refused here, before anything is enqueued, rather than by the runner halfway through the launches.
  for (const LayerPlan& lp : out->layers) {
    CULSTM_RETURN_IF_ERROR(check_gemm(lp.input, "input projection GEMM"));
    CULSTM_RETURN_IF_ERROR(check_gemm(lp.recurrent, "recurrent GEMM"));
    if (lp.projecting) CULSTM_RETURN_IF_ERROR(check_gemm(lp.projection, "projection GEMM"));
  }
  return Status::Ok();
}

Plan explain_model(const ModelPlan& model, const ModelOptions& options) {
  const LstmSpec& spec = model.spec;
  ForwardShape shape;
  shape.batch = options.max_batch;
  shape.seq_len = options.max_seq_len;
  shape.steps = options.max_seq_len;
  CallPlan call;
  // No buffers: every pointer stays null. A size beyond cuBLAS's int is said in the summary (such calls are refused).
  const Status fits = plan_call(model, ForwardArgs{}, shape, &call);
  const WorkspaceLayout& ws = call.workspace;
  const int D = spec.num_directions();
  std::vector<PlanStep> steps;
  for (const LayerPlan& lp : call.layers) {
    const std::string why = model.engines.empty() ? std::string("stepwise: options.cuda_engine = stepwise")
                                                  : model.engines[static_cast<std::size_t>(lp.layer)].why;
    const std::string input = detail::str(gemm_text("input GEMM", lp.input), " once per layer (",
                                          D == 2 ? "both directions" : "one direction", ")");
    std::string how;
    if (lp.persistent) {
      how = detail::str(why, "; ", input, ", then culstm_lstm_persistent_layer");
    } else {
      how = detail::str(why, "; ", input, ", then per step: ", gemm_text("recurrent GEMM", lp.recurrent),
                        D == 2 ? " batched over 2 directions" : "", ", culstm_lstm_pointwise_step");
      if (lp.projecting) {
        how += detail::str(", ", gemm_text("projection GEMM", lp.projection), ", culstm_lstm_projection_commit");
      }
    }
    for (int d = 0; d < D; ++d) {
      PlanStep s;
      s.layer = lp.layer;
      s.direction = d;
      s.reversed = spec.runs_reversed(d);
      s.engine = lp.persistent ? "persistent" : "stepwise";
      s.workspace_offset = add(ws.state.offset, mul(static_cast<std::size_t>(d), ws.direction_block));
      s.workspace_bytes = ws.direction_block;
      s.reason = how;
      steps.push_back(std::move(s));
    }
  }
  const std::int64_t B = shape.batch, T = shape.seq_len;
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
  if (!fits.ok()) summary += detail::str("\ncalls this large are refused: ", fits.message());
  return Plan(Backend::kCuda, std::move(summary), std::move(steps));
}

}  // namespace cuda_backend
}  // namespace culstm
