// The pure host half of the cuDNN backend: what cuDNN's LSTM can express, and packing the weight space image.
// See cudnn_host.h and docs/cudnn_backend.md.
#include "cudnn_host.h"

#include <cstring>
#include <string>

#include "detail.h"
#include "../float16.h"

namespace culstm {

const char* cudnn_algo_name(CudnnAlgo algo) noexcept {
  switch (algo) {
    case CudnnAlgo::kAuto: return "auto";
    case CudnnAlgo::kStandard: return "standard";
    case CudnnAlgo::kPersistStatic: return "persist_static";
    case CudnnAlgo::kPersistStaticSmallH: return "persist_static_small_h";
    case CudnnAlgo::kPersistDynamic: return "persist_dynamic";
  }
  return "unknown";
}

namespace cudnn_host {
namespace {

using detail::error;
using detail::str;

const char* gate_name(int g) {
  static const char* const names[] = {"i", "f", "g", "o"};
  return names[g & 3];
}

Status check_activation(const char* field, const Activation& act, ActivationKind want) {
  if (act.kind != want) {
    return error(StatusCode::kNotSupported, "backend cudnn: ", field, " = ", activation_kind_name(act.kind),
                 ": cuDNN's LSTM has fixed activations (gates sigmoid, cell and hidden tanh); expected ",
                 activation_kind_name(want));
  }
  return Status::Ok();
}

// One parameter the spec needs: where its values come from in the canonical weights.
struct Needed {
  int lin_layer_id;
  ParamKind kind;
  const float* values;  // row-major [rows, cols] (cols == 1 for a bias)
  std::int64_t rows, cols;
};

// Every parameter of (layer, dir) that `spec` needs, in linLayerID order.
std::vector<Needed> needed_params(const LstmSpec& spec, const LayerWeights& w, int layer) {
  const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
  const std::int64_t I = spec.layer_input_size(layer);
  std::vector<Needed> out;
  for (int g = 0; g < 4; ++g) {
    out.push_back({kLinLayerInput + g, ParamKind::kMatrix, w.w_ih.data() + g * H * I, H, I});
  }
  for (int g = 0; g < 4; ++g) {
    out.push_back({kLinLayerRecurrent + g, ParamKind::kMatrix, w.w_hh.data() + g * H * R, H, R});
  }
  if (spec.bias) {
    for (int g = 0; g < 4; ++g) out.push_back({kLinLayerInput + g, ParamKind::kBias, w.b_ih.data() + g * H, H, 1});
    for (int g = 0; g < 4; ++g) {
      out.push_back({kLinLayerRecurrent + g, ParamKind::kBias, w.b_hh.data() + g * H, H, 1});
    }
  }
  if (P > 0) out.push_back({kLinLayerProjection, ParamKind::kMatrix, w.w_hr.data(), P, H});
  return out;
}

std::string what(const LstmSpec& spec, int layer, int dir, int id, ParamKind kind) {
  std::string tensor;
  if (id == kLinLayerProjection) {
    tensor = "w_hr";
  } else if (kind == ParamKind::kMatrix) {
    tensor = str(id < kLinLayerRecurrent ? "w_ih" : "w_hh", " gate ", gate_name(id));
  } else {
    tensor = str(id < kLinLayerRecurrent ? "b_ih" : "b_hh", " gate ", gate_name(id));
  }
  return str("cuDNN weight space: layer ", layer, spec.runs_reversed(dir) ? " reverse" : " forward",
             " (pseudo-layer ", pseudo_layer(layer, dir, spec.num_directions()), ") linLayerID ", id, " ",
             param_kind_name(kind), " (", tensor, ")");
}

std::string dims_string(const ParamLocation& loc) {
  std::string s = "[";
  for (int k = 0; k < loc.rank; ++k) s += str(k ? ", " : "", loc.dims[k]);
  return s + "]";
}

// The element addressing of a located parameter as a [rows, cols] view: element (r, c) is at
// offset_bytes + (r * row_stride + c * col_stride) * element size.
struct View {
  std::int64_t row_stride = 0, col_stride = 0;
};

Status view_of(const std::string& name, const ParamLocation& loc, ParamKind kind, DType dtype, std::int64_t rows,
               std::int64_t cols, std::size_t space_bytes, View* view) {
  if (loc.rank < 1 || loc.rank > ParamLocation::kMaxRank) {
    return error(StatusCode::kInternal, name, ": cuDNN reports rank ", loc.rank, ", expected 1..",
                 ParamLocation::kMaxRank);
  }
  if (loc.dtype != dtype) {
    return error(StatusCode::kInternal, name, ": cuDNN reports dtype ", dtype_name(loc.dtype), ", expected ",
                 dtype_name(dtype));
  }
  for (int k = 0; k < loc.rank; ++k) {
    if (loc.dims[k] < 1 || loc.strides[k] < 0) {
      return error(StatusCode::kInternal, name, ": cuDNN reports dims ", dims_string(loc), " with a stride of ",
                   loc.strides[k], " in dim ", k);
    }
  }
  // Match the dims that are not 1, in order, to the expected [rows, cols] (a bias: [H]) without its extents of 1:
  // [1, H, I], [H, I] and [H, I, 1] all describe an [H, I] matrix, [1, H, 1] and [H] a bias; strides say where each
  // element is, so a transposed or padded layout is followed rather than assumed away.
  std::int64_t want[2] = {rows, kind == ParamKind::kMatrix ? cols : 1};
  std::int64_t* stride_of[2] = {&view->row_stride, &view->col_stride};
  view->row_stride = view->col_stride = 0;
  int next = 0;
  bool ok = true;
  for (int k = 0; ok && k < loc.rank; ++k) {
    if (loc.dims[k] == 1) continue;
    while (next < 2 && want[next] == 1) ++next;
    ok = next < 2 && loc.dims[k] == want[next];
    if (ok) *stride_of[next++] = loc.strides[k];
  }
  while (ok && next < 2 && want[next] == 1) ++next;
  if (!ok || next != 2) {
    return error(StatusCode::kInternal, name, ": cuDNN reports shape ", dims_string(loc), ", culstm expects ",
                 kind == ParamKind::kMatrix ? str("[", rows, ", ", cols, "]") : str("a vector of ", rows, " values"),
                 " (extents of 1 aside)");
  }
  // The last element must lie inside the weight space.
  const std::size_t elem = dtype_size(dtype);
  const std::int64_t last = (rows - 1) * view->row_stride + (cols - 1) * view->col_stride;
  const std::size_t end = loc.offset_bytes + (static_cast<std::size_t>(last) + 1) * elem;
  if (loc.offset_bytes % elem != 0 || end > space_bytes) {
    return error(StatusCode::kInternal, name, ": cuDNN reports bytes [", loc.offset_bytes, ", ", end,
                 ") (element size ", elem, "), outside the weight space of ", space_bytes,
                 " bytes or misaligned");
  }
  return Status::Ok();
}

void store(std::uint8_t* dst, DType dtype, float value) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, &value, 4);
  } else {
    const std::uint16_t bits = dtype == DType::kF16 ? detail::float_to_half(value) : detail::float_to_bf16(value);
    std::memcpy(dst, &bits, 2);
  }
}

bool same_location(const ParamLocation& a, const ParamLocation& b) {
  if (a.present != b.present) return false;
  if (!a.present) return true;
  if (a.offset_bytes != b.offset_bytes || a.dtype != b.dtype || a.rank != b.rank) return false;
  for (int k = 0; k < a.rank; ++k) {
    if (a.dims[k] != b.dims[k] || a.strides[k] != b.strides[k]) return false;
  }
  return true;
}

}  // namespace

const char* param_kind_name(ParamKind kind) noexcept {
  return kind == ParamKind::kMatrix ? "matrix" : "bias";
}

Status check_spec_support(const LstmSpec& spec) {
  if (spec.peepholes) {
    return error(StatusCode::kNotSupported,
                 "backend cudnn: peepholes = true: cuDNN's LSTM has no peephole connections");
  }
  if (spec.input_forget) {
    return error(StatusCode::kNotSupported,
                 "backend cudnn: input_forget = true: cuDNN's LSTM has no coupled input-forget gate");
  }
  if (spec.gate_clip) {
    return error(StatusCode::kNotSupported, "backend cudnn: gate_clip = ", *spec.gate_clip,
                 ": cuDNN clips only the cell state (cell_clip), not the gate pre-activations");
  }
  CULSTM_RETURN_IF_ERROR(check_activation("gate_activation", spec.gate_activation, ActivationKind::kSigmoid));
  CULSTM_RETURN_IF_ERROR(check_activation("cell_activation", spec.cell_activation, ActivationKind::kTanh));
  CULSTM_RETURN_IF_ERROR(check_activation("hidden_activation", spec.hidden_activation, ActivationKind::kTanh));
  return Status::Ok();
}

Status check_capture(bool capturing, const FirstUse& first, CudnnAlgo requested, std::int64_t batch,
                     std::int64_t steps) {
  if (!capturing) return Status::Ok();
  if (first.tuning) {
    return error(StatusCode::kInvalidArgument, "backend cudnn: options.cudnn_algo = auto times the algorithms on the "
                 "first forward of B=", batch, " T=", steps,
                 ", which synchronizes and cannot run while the stream is being captured: run this shape once "
                 "before capturing, or choose an explicit options.cudnn_algo");
  }
  if (first.dynamic_build) {
    return error(StatusCode::kInvalidArgument, "backend cudnn: persist_dynamic (",
                 requested == CudnnAlgo::kAuto ? "auto's choice for this shape" : "options.cudnn_algo",
                 ") builds its kernels for each batch size on a Context's first forward of it (cudnnBuildRNNDynamic: "
                 "a run-time compile), which cannot run while the stream is being captured: run B=", batch,
                 " once on this Context before capturing, or choose another options.cudnn_algo");
  }
  return Status::Ok();
}

Status check_lengths(const std::int32_t* lengths, std::int64_t batch) {
  if (lengths == nullptr) return Status::Ok();
  for (std::int64_t b = 0; b < batch; ++b) {
    if (lengths[b] == 0) {
      return error(StatusCode::kNotSupported, "backend cudnn: lengths[", b,
                   "] = 0: cuDNN requires every sequence length >= 1 (an empty sequence, which leaves its state "
                   "unchanged, runs on the reference and cuda backends)");
    }
  }
  return Status::Ok();
}

Status pack_weight_space(const LstmSpec& spec, const Weights& weights, const WeightSpaceLayout& layout,
                         std::vector<std::uint8_t>* image) {
  if (image == nullptr) return error(StatusCode::kNullPointer, "pack_weight_space: image is null");
  const DType dtype = spec.dtype;
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) {
    return error(StatusCode::kInternal, "pack_weight_space: dtype ", dtype_name(dtype), " has no cuDNN weights");
  }
  const std::size_t space = layout.size_bytes();
  const std::size_t elem = dtype_size(dtype);
  std::vector<std::uint8_t> bytes(space, 0);
  std::vector<std::uint8_t> owner(space / elem + 1, 0);  // per element slot: written already?
  for (int layer = 0; layer < spec.num_layers; ++layer) {
    for (int dir = 0; dir < spec.num_directions(); ++dir) {
      const int pseudo = pseudo_layer(layer, dir, spec.num_directions());
      for (const Needed& p : needed_params(spec, weights.at(layer, dir), layer)) {
        const std::string name = what(spec, layer, dir, p.lin_layer_id, p.kind);
        ParamLocation loc;
        CULSTM_RETURN_IF_ERROR(layout.locate(pseudo, p.lin_layer_id, p.kind, &loc));
        if (!loc.present) {
          return error(StatusCode::kInternal, name, ": cuDNN reports no such parameter, but the spec needs [",
                       p.rows, p.kind == ParamKind::kMatrix ? str(", ", p.cols) : std::string(), "]");
        }
        View view;
        CULSTM_RETURN_IF_ERROR(view_of(name, loc, p.kind, dtype, p.rows, p.cols, space, &view));
        for (std::int64_t r = 0; r < p.rows; ++r) {
          for (std::int64_t c = 0; c < p.cols; ++c) {
            const std::size_t at =
                loc.offset_bytes + static_cast<std::size_t>(r * view.row_stride + c * view.col_stride) * elem;
            std::uint8_t& taken = owner[at / elem];
            if (taken) {
              return error(StatusCode::kInternal, name, ": element [", r, ", ", c, "] at byte ", at,
                           " overlaps another parameter (or itself: strides of a shape ", dims_string(loc), ")");
            }
            taken = 1;
            store(&bytes[at], dtype, p.values[r * p.cols + c]);
          }
        }
      }
    }
  }
  *image = std::move(bytes);
  return Status::Ok();
}

Status same_layout(const LstmSpec& spec, const WeightSpaceLayout& a, const WeightSpaceLayout& b, bool* same) {
  if (same == nullptr) return error(StatusCode::kNullPointer, "same_layout: same is null");
  *same = a.size_bytes() == b.size_bytes();
  for (int layer = 0; *same && layer < spec.num_layers; ++layer) {
    for (int dir = 0; *same && dir < spec.num_directions(); ++dir) {
      const int pseudo = pseudo_layer(layer, dir, spec.num_directions());
      for (int id = 0; *same && id <= kLinLayerProjection; ++id) {
        if (id == kLinLayerProjection && spec.proj_size == 0) break;
        for (ParamKind kind : {ParamKind::kMatrix, ParamKind::kBias}) {
          if (kind == ParamKind::kBias && (!spec.bias || id == kLinLayerProjection)) continue;
          ParamLocation la, lb;
          CULSTM_RETURN_IF_ERROR(a.locate(pseudo, id, kind, &la));
          CULSTM_RETURN_IF_ERROR(b.locate(pseudo, id, kind, &lb));
          if (!same_location(la, lb)) *same = false;
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace cudnn_host
}  // namespace culstm
