// Validation of forward() arguments: every bad input gets its own code and a message naming the argument, the
// expected and the actual value (docs/design.md §4).
#include <algorithm>
#include <cstdint>
#include <string>

#include "backend.h"
#include "detail.h"

namespace culstm {
namespace {

using detail::error;
using detail::str;

std::string shape_string(const TensorView& t) {
  if (t.rank > TensorView::kMaxRank) return str("rank ", t.rank, " (more than ", TensorView::kMaxRank, " dims)");
  std::string s = "[";
  for (int axis = 0; axis < t.rank; ++axis) s += str(axis ? ", " : "", t.shape[axis]);
  return s + "]";
}

std::string shape_string(std::int64_t d0, std::int64_t d1, std::int64_t d2) {
  return str("[", d0, ", ", d1, ", ", d2, "]");
}

// A present tensor must have data, the right dtype, memory kind and rank-3 shape. An absent one
// (default-constructed view) is accepted only when `required` is false.
Status check_tensor(const char* name, const TensorView& t, bool required, DType dtype, MemoryKind memory,
                    std::int64_t d0, std::int64_t d1, std::int64_t d2) {
  if (!t.present()) {
    if (required) return error(StatusCode::kNullPointer, name, ": required tensor is absent (data is null)");
    return Status::Ok();
  }
  if (t.data == nullptr) {
    return error(StatusCode::kNullPointer, name, ": data is null but shape ", shape_string(t), " was given");
  }
  if (t.dtype != dtype) {
    return error(StatusCode::kDtypeMismatch, name, ": expected dtype ", dtype_name(dtype), ", got ",
                 dtype_name(t.dtype));
  }
  if (t.memory != memory) {
    return error(StatusCode::kDeviceMismatch, name, ": expected ", memory_kind_name(memory), " memory, got ",
                 memory_kind_name(t.memory));
  }
  if (t.rank != 3 || t.shape[0] != d0 || t.shape[1] != d1 || t.shape[2] != d2) {
    return error(StatusCode::kShapeMismatch, name, ": expected shape ", shape_string(d0, d1, d2), ", got ",
                 shape_string(t));
  }
  return Status::Ok();
}

bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  if (a == nullptr || b == nullptr) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a), b0 = reinterpret_cast<std::uintptr_t>(b);
  return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

bool overlaps(const TensorView& a, const TensorView& b) { return overlaps(a.data, a.bytes(), b.data, b.bytes()); }

}  // namespace

ForwardShape forward_shape(const LstmSpec& spec, const TensorView& x) {
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  ForwardShape s;
  s.seq_len = batch_major ? x.shape[1] : x.shape[0];
  s.batch = batch_major ? x.shape[0] : x.shape[1];
  s.steps = s.seq_len;
  return s;
}

void apply_lengths(const std::int32_t* lengths, ForwardShape* shape) {
  std::int64_t longest = 0;
  bool any_short = false;
  for (std::int64_t b = 0; b < shape->batch; ++b) {
    longest = std::max<std::int64_t>(longest, lengths[b]);
    any_short = any_short || lengths[b] < shape->seq_len;
  }
  shape->steps = longest;
  shape->lengths = any_short ? lengths : nullptr;
}

Status check_model_limits(const ModelOptions& options, std::int64_t batch, std::int64_t seq_len) {
  if (batch < 1) return error(StatusCode::kShapeMismatch, "batch: expected >= 1, got ", batch);
  if (seq_len < 1) return error(StatusCode::kShapeMismatch, "seq_len: expected >= 1, got ", seq_len);
  if (batch > options.max_batch) {
    return error(StatusCode::kExceedsModelLimit, "batch: expected <= the model's max_batch ", options.max_batch,
                 ", got ", batch);
  }
  if (seq_len > options.max_seq_len) {
    return error(StatusCode::kExceedsModelLimit, "seq_len: expected <= the model's max_seq_len ", options.max_seq_len,
                 ", got ", seq_len);
  }
  return Status::Ok();
}

Status validate_forward_args(const LstmSpec& spec, const ModelOptions& options, MemoryKind data_memory,
                             const BackendImpl& backend, const ForwardArgs& args, ForwardShape* shape) {
  const TensorView& x = args.x;
  // An empty x (a zero batch or step count) may come with no data at all, as frameworks give empty tensors: the
  // shape checks below say what is wrong with it, which is more use to the caller than "data is null".
  if (!x.present() || (x.data == nullptr && x.numel() != 0)) {
    return error(StatusCode::kNullPointer, "x: data is null");
  }
  if (x.dtype != spec.dtype) {
    return error(StatusCode::kDtypeMismatch, "x: expected dtype ", dtype_name(spec.dtype), ", got ",
                 dtype_name(x.dtype));
  }
  if (x.memory != data_memory) {
    return error(StatusCode::kDeviceMismatch, "x: expected ", memory_kind_name(data_memory), " memory, got ",
                 memory_kind_name(x.memory));
  }
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  if (x.rank != 3 || x.shape[2] != spec.input_size) {
    return error(StatusCode::kShapeMismatch, "x: expected shape ", batch_major ? "[B, T, " : "[T, B, ", spec.input_size,
                 "], got ", shape_string(x));
  }
  ForwardShape sizes = forward_shape(spec, x);
  const std::int64_t T = sizes.seq_len, B = sizes.batch;
  CULSTM_RETURN_IF_ERROR(check_model_limits(options, B, T));

  const TensorView& len = args.lengths;
  if (len.present()) {
    if (len.data == nullptr) return error(StatusCode::kNullPointer, "lengths: data is null but a shape was given");
    if (len.dtype != DType::kI32) {
      return error(StatusCode::kDtypeMismatch, "lengths: expected dtype i32, got ", dtype_name(len.dtype));
    }
    if (len.memory != MemoryKind::kHost) {
      return error(StatusCode::kDeviceMismatch, "lengths: expected host memory, got device");
    }
    if (len.rank != 1 || len.shape[0] != B) {
      return error(StatusCode::kShapeMismatch, "lengths: expected shape [", B, "], got ", shape_string(len));
    }
    const auto* values = static_cast<const std::int32_t*>(len.data);
    for (std::int64_t b = 0; b < B; ++b) {
      if (values[b] < 0 || values[b] > T) {
        return error(StatusCode::kLengthOutOfRange, "lengths[", b, "]: expected a value in [0, T = ", T, "], got ",
                     values[b]);
      }
    }
    apply_lengths(values, &sizes);
  }

  const std::int64_t LD = static_cast<std::int64_t>(spec.num_layers) * spec.num_directions();
  const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), Y = spec.output_size();
  CULSTM_RETURN_IF_ERROR(check_tensor("h0", args.h0, false, spec.dtype, data_memory, LD, B, R));
  CULSTM_RETURN_IF_ERROR(check_tensor("c0", args.c0, false, spec.dtype, data_memory, LD, B, H));
  CULSTM_RETURN_IF_ERROR(
      check_tensor("y", args.y, false, spec.dtype, data_memory, batch_major ? B : T, batch_major ? T : B, Y));
  CULSTM_RETURN_IF_ERROR(check_tensor("h_n", args.h_n, false, spec.dtype, data_memory, LD, B, R));
  CULSTM_RETURN_IF_ERROR(check_tensor("c_n", args.c_n, false, spec.dtype, data_memory, LD, B, H));

  // Outputs are written while inputs are still being read: they must not share memory.
  const std::pair<const char*, const TensorView*> outputs[] = {{"y", &args.y}, {"h_n", &args.h_n}, {"c_n", &args.c_n}};
  const std::pair<const char*, const TensorView*> inputs[] = {
      {"x", &args.x}, {"lengths", &args.lengths}, {"h0", &args.h0}, {"c0", &args.c0}};
  for (const auto& out : outputs) {
    for (const auto& in : inputs) {
      if (overlaps(*out.second, *in.second)) {
        return error(StatusCode::kInvalidArgument, out.first, ": output memory overlaps input ", in.first,
                     "; pass separate buffers");
      }
    }
    for (const auto& other : outputs) {
      if (out.second < other.second && overlaps(*out.second, *other.second)) {
        return error(StatusCode::kInvalidArgument, out.first, ": output memory overlaps output ", other.first);
      }
    }
  }

  const std::size_t need = backend.workspace_size(B, T);
  if (args.workspace_bytes < need) {
    return error(StatusCode::kWorkspaceTooSmall, "workspace_bytes: expected >= ", need, " (workspace_size(", B, ", ", T,
                 ")), got ", args.workspace_bytes);
  }
  if (need > 0 && args.workspace == nullptr) {
    return error(StatusCode::kNullPointer, "workspace: data is null but ", need, " bytes are required");
  }
  // The backends write the workspace's first `need` bytes while they read the inputs and write the outputs.
  const auto workspace_clear_of = [&](const auto& named_tensors) {
    for (const auto& [name, tensor] : named_tensors) {
      if (overlaps(args.workspace, need, tensor->data, tensor->bytes())) {
        return error(StatusCode::kInvalidArgument, "workspace: its first ", need, " bytes overlap ", name,
                     "; pass a separate buffer");
      }
    }
    return Status::Ok();
  };
  CULSTM_RETURN_IF_ERROR(workspace_clear_of(inputs));
  CULSTM_RETURN_IF_ERROR(workspace_clear_of(outputs));
  *shape = sizes;
  return Status::Ok();
}

}  // namespace culstm
