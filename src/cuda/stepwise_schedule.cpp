// The stepwise engine's schedule, weight packing and GEMM translation (see stepwise_schedule.h). Pure host code.
#include "stepwise_schedule.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>

#include "../detail.h"
#include "../float16.h"
#include "../nvtx.h"
#include "stepwise_layout.h"

namespace culstm {
namespace stepwise {
namespace {

bool fits_int(std::int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

// The value a weight has once stored in `dtype` (the reference rounds its weights the same way).
float round_to_dtype(float value, DType dtype) {
  switch (dtype) {
    case DType::kF16: return detail::half_to_float(detail::float_to_half(value));
    case DType::kBF16: return detail::bf16_to_float(detail::float_to_bf16(value));
    default: return value;
  }
}

class ImageWriter {
 public:
  explicit ImageWriter(DType dtype) : dtype_(dtype) {}

  // Appends the tensors in `parts` back to back in the model dtype; returns the byte offset of the first.
  std::size_t values(const std::vector<const std::vector<float>*>& parts) {
    const std::size_t offset = begin_tensor();
    const std::size_t size = dtype_size(dtype_);
    for (const std::vector<float>* part : parts) {
      const std::size_t at = bytes_.size();
      bytes_.resize(at + part->size() * size);
      for (std::size_t k = 0; k < part->size(); ++k) {
        const float v = (*part)[k];
        if (dtype_ == DType::kF32) {
          std::memcpy(&bytes_[at + 4 * k], &v, 4);
        } else {
          const std::uint16_t bits = dtype_ == DType::kF16 ? detail::float_to_half(v) : detail::float_to_bf16(v);
          std::memcpy(&bytes_[at + 2 * k], &bits, 2);
        }
      }
    }
    return offset;
  }

  // Appends f32 values; returns their byte offset.
  std::size_t f32(const std::vector<float>& v) {
    const std::size_t offset = begin_tensor();
    bytes_.resize(offset + v.size() * sizeof(float));
    if (!v.empty()) std::memcpy(&bytes_[offset], v.data(), v.size() * sizeof(float));
    return offset;
  }

  std::vector<std::uint8_t> take() { return std::move(bytes_); }

 private:
  std::size_t begin_tensor() {
    const std::size_t a = kWorkspaceAlignment;
    bytes_.resize((bytes_.size() + a - 1) / a * a);
    return bytes_.size();
  }
  DType dtype_;
  std::vector<std::uint8_t> bytes_;
};

}  // namespace

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

Status DistinctGemmsOnly::gemm(const BlasGemm& g, const char* what) {
  for (const BlasGemm& s : seen_) {
    if (s.trans_a == g.trans_a && s.trans_b == g.trans_b && s.m == g.m && s.n == g.n && s.k == g.k &&
        s.lda == g.lda && s.ldb == g.ldb && s.ldc == g.ldc && s.batch == g.batch) {
      return Status::Ok();
    }
  }
  seen_.push_back(g);
  return exec_.gemm(g, what);
}

PackedWeights pack_weights(const LstmSpec& spec, const Weights& weights) {
  const int D = spec.num_directions();
  ImageWriter image(spec.dtype);
  PackedWeights packed;
  for (int l = 0; l < spec.num_layers; ++l) {
    std::vector<const std::vector<float>*> w_ih, w_hh, w_hr;
    std::vector<float> bias, peephole;
    for (int d = 0; d < D; ++d) {
      const LayerWeights& lw = weights.at(l, d);
      w_ih.push_back(&lw.w_ih);
      w_hh.push_back(&lw.w_hh);
      w_hr.push_back(&lw.w_hr);
      for (std::size_t r = 0; r < lw.b_ih.size(); ++r) {
        const double sum = static_cast<double>(round_to_dtype(lw.b_ih[r], spec.dtype)) +
                           static_cast<double>(round_to_dtype(lw.b_hh[r], spec.dtype));
        bias.push_back(static_cast<float>(sum));
      }
      for (float p : lw.peephole) peephole.push_back(round_to_dtype(p, spec.dtype));
    }
    PackedWeights::Offsets o;
    o.w_ih = image.values(w_ih);
    o.w_hh = image.values(w_hh);
    if (spec.proj_size > 0) o.w_hr = image.values(w_hr);
    if (spec.bias) o.bias = image.f32(bias);
    if (spec.peepholes) o.peephole = image.f32(peephole);
    packed.layers.push_back(o);
  }
  packed.bytes = image.take();
  return packed;
}

std::vector<LayerWeightPointers> weight_pointers(const LstmSpec& spec, const PackedWeights& packed, const void* base) {
  const auto* bytes = static_cast<const std::uint8_t*>(base);
  std::vector<LayerWeightPointers> out;
  for (const PackedWeights::Offsets& o : packed.layers) {
    LayerWeightPointers w;
    w.w_ih = bytes + o.w_ih;
    w.w_hh = bytes + o.w_hh;
    w.w_hr = spec.proj_size > 0 ? bytes + o.w_hr : nullptr;
    w.bias = spec.bias ? reinterpret_cast<const float*>(bytes + o.bias) : nullptr;
    w.peephole = spec.peepholes ? reinterpret_cast<const float*>(bytes + o.peephole) : nullptr;
    out.push_back(w);
  }
  return out;
}

RunShape run_shape(const LstmSpec& spec, const ForwardArgs& args) {
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  RunShape s;
  s.seq_len = batch_major ? args.x.shape[1] : args.x.shape[0];
  s.batch = batch_major ? args.x.shape[0] : args.x.shape[1];
  s.steps = s.seq_len;
  const auto* len = static_cast<const std::int32_t*>(args.lengths.data);
  if (len != nullptr) {
    std::int64_t longest = 0;
    for (std::int64_t b = 0; b < s.batch; ++b) {
      longest = std::max<std::int64_t>(longest, len[b]);
      if (len[b] < s.seq_len) s.any_short = true;
    }
    s.steps = longest;
    if (s.any_short) s.lengths = len;
  }
  return s;
}

cell::CellParams cell_params(const LstmSpec& spec) {
  return cell::CellParams{
      spec.gate_activation,          spec.cell_activation, spec.hidden_activation, spec.gate_clip.value_or(0.0f),
      spec.cell_clip.value_or(0.0f), spec.peepholes,       spec.input_forget};
}

namespace {

Status run_gemm(Executor& exec, const Gemm& g, const char* what) {
  BlasGemm b;
  Status st = to_blas(g, &b);
  if (!st.ok()) return detail::error(st.code(), what, ": ", st.message());
  return exec.gemm(b, what);
}

Status run_layer(const LstmSpec& spec, int layer, const LayerWeightPointers& w, const cell::CellParams& cell,
                 const ForwardArgs& args, const RunShape& shape, const StepwiseLayout& ws, const int* lengths,
                 const LayerEngine* engine, Executor& exec) {
  // Both directions of a layer run in the same launches; each direction gets its NVTX range around them.
  const nvtx::LayerRange range_first(layer, spec.runs_reversed(0));
  std::optional<nvtx::LayerRange> range_second;  // no heap allocation in forward
  if (spec.num_directions() == 2) range_second.emplace(layer, spec.runs_reversed(1));

  const std::int64_t T = shape.seq_len, B = shape.batch, D = spec.num_directions(), H = spec.hidden_size,
                     R = spec.recurrent_size(), P = spec.proj_size, G = 4 * H, I = spec.layer_input_size(layer);
  const std::size_t value = dtype_size(spec.dtype);
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  auto* base = static_cast<std::uint8_t*>(args.workspace);

  // The layer's input (x or the previous layer's output) and output (y, possibly null, or a workspace buffer).
  const void* in = layer == 0 ? args.x.data : base + ws.layer_out[(layer - 1) % 2].offset;
  void* out = layer == spec.num_layers - 1 ? args.y.data : base + ws.layer_out[layer % 2].offset;

  // The recurrent state: direction d's tensors at the direction-0 pointer plus d * stride elements.
  std::uint8_t* state = base + ws.state.offset;
  const auto f32_stride = static_cast<long long>(ws.direction_block / sizeof(float));
  const auto value_stride = static_cast<long long>(ws.direction_block / value);
  float* gates_h = reinterpret_cast<float*>(state + ws.gates_h);
  void* h = state + ws.h;
  float* c = reinterpret_cast<float*>(state + ws.c);
  void* h_cell = P > 0 ? state + ws.h_cell : nullptr;
  float* h_proj = P > 0 ? reinterpret_cast<float*>(state + ws.h_proj) : nullptr;
  float* gates_x = reinterpret_cast<float*>(base + ws.gates_x.offset);

  kernels::LayerDims dims;
  dims.directions = static_cast<int>(D);
  dims.batch = B;
  dims.seq_len = T;
  dims.hidden = H;
  dims.recurrent = R;
  dims.batch_major = batch_major;
  dims.reversed[0] = spec.runs_reversed(0);
  dims.reversed[1] = D == 2 && spec.runs_reversed(1);

  if (out != nullptr && shape.any_short) {
    kernels::FillPaddingParams p;
    p.dims = dims;
    p.lengths = lengths;
    p.y = out;
    p.value = args.padding_value;
    CULSTM_RETURN_IF_ERROR(exec.fill_padding(p));
  }
  const bool persistent = engine != nullptr && engine->persistent;
  if (!persistent) {
    kernels::InitialStateParams p;
    p.dims = dims;
    p.layer = layer;
    p.h0 = args.h0.data;
    p.c0 = args.c0.data;
    p.h = h;
    p.h_stride = value_stride;
    p.c = c;
    p.c_stride = f32_stride;
    p.h_cell = h_cell;
    p.h_cell_stride = value_stride;
    CULSTM_RETURN_IF_ERROR(exec.initial_state(p));
  }

  if (shape.steps > 0) {
    // ONE GEMM for the input projections of every step and direction. Seq-major rows of steps >= max(len) are
    // never read, so only steps*B rows are projected; batch-major rows interleave the steps, so all T*B are.
    const std::int64_t rows = batch_major ? T * B : shape.steps * B;
    const std::int64_t chunk = INT_MAX;  // cuBLAS sizes are int: split absurdly tall inputs
    for (std::int64_t first = 0; first < rows; first += chunk) {
      Gemm g;
      g.m = std::min(chunk, rows - first);
      g.n = D * G;
      g.k = I;
      g.a = static_cast<const std::uint8_t*>(in) + static_cast<std::size_t>(first * I) * value;
      g.lda = I;
      g.w = w.w_ih;
      g.ldw = I;
      g.c = gates_x + first * D * G;
      g.ldc = D * G;
      CULSTM_RETURN_IF_ERROR(run_gemm(exec, g, "input projection GEMM"));
    }
  }

  if (persistent) {
    kernels::PersistentLayerParams p;
    p.dims = dims;
    p.tiling = engine->tiling;
    p.layer = layer;
    p.steps = shape.steps;
    p.cell = cell;
    p.lengths = lengths;
    p.gates_x = gates_x;
    p.w_hh = w.w_hh;
    p.w_hr = P > 0 ? w.w_hr : nullptr;
    p.bias = w.bias;
    p.peephole = w.peephole;
    p.h0 = args.h0.data;
    p.c0 = args.c0.data;
    p.h[0] = h;
    p.h[1] = state + ws.h_next;
    p.h_stride = value_stride;
    p.h_cell = h_cell;
    p.h_cell_stride = value_stride;
    p.y = out;
    p.h_n = args.h_n.data;
    p.c_n = args.c_n.data;
    return exec.persistent_layer(p);
  }

  for (std::int64_t step = 0; step < shape.steps; ++step) {
    Gemm rec;  // gates_h[d] = h[d] W_hh[d]^T, every direction in one (strided-batched) call
    rec.m = B;
    rec.n = G;
    rec.k = R;
    rec.batch = D;
    rec.a = h;
    rec.lda = R;
    rec.stride_a = value_stride;
    rec.w = w.w_hh;
    rec.ldw = R;
    rec.stride_w = G * R;
    rec.c = gates_h;
    rec.ldc = G;
    rec.stride_c = f32_stride;
    CULSTM_RETURN_IF_ERROR(run_gemm(exec, rec, "recurrent GEMM"));

    kernels::PointwiseStepParams p;
    p.dims = dims;
    p.step = step;
    p.cell = cell;
    p.lengths = lengths;
    p.gates_x = gates_x;
    p.gates_h = gates_h;
    p.gates_h_stride = f32_stride;
    p.bias = w.bias;
    p.peephole = w.peephole;
    p.c = c;
    p.c_stride = f32_stride;
    p.h = h;
    p.h_stride = value_stride;
    p.h_cell = h_cell;
    p.h_cell_stride = value_stride;
    p.y = out;
    CULSTM_RETURN_IF_ERROR(exec.pointwise_step(p));

    if (P > 0) {
      Gemm proj;  // h_proj[d] = h_cell[d] W_hr[d]^T
      proj.m = B;
      proj.n = P;
      proj.k = H;
      proj.batch = D;
      proj.a = h_cell;
      proj.lda = H;
      proj.stride_a = value_stride;
      proj.w = w.w_hr;
      proj.ldw = H;
      proj.stride_w = P * H;
      proj.c = h_proj;
      proj.ldc = P;
      proj.stride_c = f32_stride;
      CULSTM_RETURN_IF_ERROR(run_gemm(exec, proj, "projection GEMM"));

      kernels::ProjectionCommitParams commit;
      commit.dims = dims;
      commit.step = step;
      commit.lengths = lengths;
      commit.h_proj = h_proj;
      commit.h_proj_stride = f32_stride;
      commit.h = h;
      commit.h_stride = value_stride;
      commit.y = out;
      CULSTM_RETURN_IF_ERROR(exec.projection_commit(commit));
    }
  }

  if (args.h_n.data != nullptr || args.c_n.data != nullptr) {
    kernels::FinalStateParams p;
    p.dims = dims;
    p.layer = layer;
    p.h_n = args.h_n.data;
    p.c_n = args.c_n.data;
    p.h = h;
    p.h_stride = value_stride;
    p.c = c;
    p.c_stride = f32_stride;
    CULSTM_RETURN_IF_ERROR(exec.final_state(p));
  }
  return Status::Ok();
}

}  // namespace

Status run_stepwise(const LstmSpec& spec, const std::vector<LayerWeightPointers>& weights, const ForwardArgs& args,
                    const RunShape& shape, std::size_t cublas_bytes, Executor& exec,
                    const std::vector<LayerEngine>& engines) {
  const StepwiseLayout ws = stepwise_layout(spec, shape.batch, shape.seq_len, cublas_bytes);
  auto* base = static_cast<std::uint8_t*>(args.workspace);
  int* lengths = nullptr;
  if (shape.lengths != nullptr) {
    // By value through kernel parameters: no copy from (pageable) host memory, which could synchronize, and a
    // captured graph holds the values themselves.
    lengths = reinterpret_cast<int*>(base + ws.lengths.offset);
    for (std::int64_t first = 0; first < shape.batch; first += kernels::kLengthsPerLaunch) {
      kernels::UploadLengthsParams p;
      p.dst = lengths;
      p.offset = static_cast<int>(first);
      p.count = static_cast<int>(std::min<std::int64_t>(kernels::kLengthsPerLaunch, shape.batch - first));
      std::copy(shape.lengths + first, shape.lengths + first + p.count, p.values);
      CULSTM_RETURN_IF_ERROR(exec.upload_lengths(p));
    }
  }
  const cell::CellParams cell = cell_params(spec);
  for (int layer = 0; layer < spec.num_layers; ++layer) {
    CULSTM_RETURN_IF_ERROR(run_layer(spec, layer, weights[static_cast<std::size_t>(layer)], cell, args, shape, ws,
                                     lengths, engines.empty() ? nullptr : &engines[static_cast<std::size_t>(layer)],
                                     exec));
  }
  return Status::Ok();
}

}  // namespace stepwise
}  // namespace culstm
