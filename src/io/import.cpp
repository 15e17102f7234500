// Naming conventions: detection, dispatch, the PyTorch and MindSpore conventions (which share nn.LSTM's names and
// are read by weights_io.cpp), and the helpers every importer shares. Keras is in import_keras.cpp, ONNX in
// import_onnx.cpp (+ the .onnx reader in onnx.cpp). docs/formats.md describes each convention.
#include "io/import.h"

#include <cmath>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "detail.h"
#include "io/import_internal.h"
#include "io/json.h"
#include "io/weights_io.h"

namespace culstm {
namespace io {

using detail::error;
using detail::str;

namespace internal {

Status check_float_dtype(const std::string& what, const Array& a) {
  if (a.dtype != DType::kF32 && a.dtype != DType::kF16 && a.dtype != DType::kBF16 && a.dtype != DType::kF64) {
    return error(StatusCode::kDtypeMismatch, "tensor '", what, "': expected a floating-point dtype, got ",
                 dtype_name(a.dtype));
  }
  std::uint64_t bytes = 0;
  if (!checked_byte_size(a.shape, a.dtype, &bytes) || a.bytes.size() != bytes) {
    return error(StatusCode::kFormatError, "tensor '", what, "': holds ", a.bytes.size(), " bytes, its shape ",
                 shape_string(a.shape), " needs ", bytes);
  }
  return Status::Ok();
}

Status float_tensor(const std::string& what, const Array& a, const std::vector<std::int64_t>& shape,
                    std::vector<float>* out) {
  if (a.shape != shape) {
    return error(StatusCode::kShapeMismatch, "tensor '", what, "': expected shape ", shape_string(shape), ", got ",
                 shape_string(a.shape));
  }
  CULSTM_RETURN_IF_ERROR(check_float_dtype(what, a));
  std::vector<float> values = a.to_f32();
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (!std::isfinite(values[k])) {
      return error(StatusCode::kFormatError, "tensor '", what, "' element ", k, ": expected a finite value, got ",
                   values[k]);
    }
  }
  *out = std::move(values);
  return Status::Ok();
}

Status spec_from_metadata(const SafetensorsFile& file, LstmSpec* spec, std::set<std::string>* keys) {
  LstmSpec s;
  keys->clear();
  auto it = file.metadata.find(kMetaSpec);
  if (it != file.metadata.end()) {
    CULSTM_RETURN_IF_ERROR(spec_from_json(it->second, &s));  // checks the JSON and every field
    json::Value root;
    CULSTM_RETURN_IF_ERROR(json::parse(it->second, &root));
    for (const auto& member : root.object) keys->insert(member.first);
  }
  *spec = s;
  return Status::Ok();
}

namespace {

std::string activation_text(const Activation& a) {
  return str(activation_kind_name(a.kind), "(", a.alpha, ", ", a.beta, ")");
}
bool same_activation(const Activation& a, const Activation& b) {
  return a.kind == b.kind && a.alpha == b.alpha && a.beta == b.beta;
}
std::string clip_text(const std::optional<float>& c) {
  return c ? str(*c) : std::string("null");
}

// Whether the two specs agree on the culstm.spec field `key`, with both values as text.
bool field_agrees(const LstmSpec& a, const LstmSpec& b, const std::string& key, std::string* va, std::string* vb) {
  if (key == "direction") {
    *va = direction_name(a.direction), *vb = direction_name(b.direction);
  } else if (key == "layout") {
    *va = layout_name(a.layout), *vb = layout_name(b.layout);
  } else if (key == "dtype") {
    *va = dtype_name(a.dtype), *vb = dtype_name(b.dtype);
  } else if (key == "math") {
    *va = math_mode_name(a.math), *vb = math_mode_name(b.math);
  } else if (key == "gate_activation" || key == "cell_activation" || key == "hidden_activation") {
    const Activation& x = key == "gate_activation" ? a.gate_activation
                          : key == "cell_activation" ? a.cell_activation : a.hidden_activation;
    const Activation& y = key == "gate_activation" ? b.gate_activation
                          : key == "cell_activation" ? b.cell_activation : b.hidden_activation;
    *va = activation_text(x), *vb = activation_text(y);
    return same_activation(x, y);
  } else if (key == "gate_clip") {
    *va = clip_text(a.gate_clip), *vb = clip_text(b.gate_clip);
  } else if (key == "cell_clip") {
    *va = clip_text(a.cell_clip), *vb = clip_text(b.cell_clip);
  } else if (key == "input_forget") {
    *va = a.input_forget ? "true" : "false", *vb = b.input_forget ? "true" : "false";
  } else {
    return true;
  }
  return *va == *vb;
}

}  // namespace

Status check_agreement(const LstmSpec& from_metadata, const std::set<std::string>& metadata_keys,
                       const LstmSpec& from_convention, const std::vector<std::string>& convention_keys,
                       const std::string& convention) {
  for (const std::string& key : convention_keys) {
    if (!metadata_keys.count(key)) continue;
    std::string va, vb;
    if (!field_agrees(from_metadata, from_convention, key, &va, &vb)) {
      return error(StatusCode::kFormatError, kMetaSpec, ": ", key, " is ", va, " but ", convention, " gives ", vb,
                   " (remove one of the two)");
    }
  }
  return Status::Ok();
}

Status validate_inferred(const LstmSpec& spec, const std::string& source) {
  Status valid = spec.validate();
  if (!valid.ok()) {
    return Status(valid.code(), str("spec inferred from ", source, " (", spec.describe(), "): ", valid.message()));
  }
  return Status::Ok();
}

}  // namespace internal

namespace {

constexpr Naming kAllNamings[] = {Naming::kAuto, Naming::kPyTorch, Naming::kKeras, Naming::kOnnx, Naming::kMindSpore};

bool starts_with(const std::string& s, const std::string& head) {
  return s.size() >= head.size() && s.compare(0, head.size(), head) == 0;
}
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Whether `name` is a PyTorch nn.LSTM tensor name: <kind>_l<digits>[_reverse].
bool pytorch_name(const std::string& name) {
  for (const char* kind : {"weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l", "weight_hr_l", "peephole_l"}) {
    if (!starts_with(name, kind)) continue;
    std::size_t pos = std::string(kind).size();
    const std::size_t digits = pos;
    while (pos < name.size() && name[pos] >= '0' && name[pos] <= '9') ++pos;
    if (pos == digits) return false;
    const std::string rest = name.substr(pos);
    return rest.empty() || rest == "_reverse";
  }
  return false;
}

Status import_pytorch(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec, Weights* weights) {
  return weights_from_safetensors(file, prefix, spec, weights);
}

// MindSpore 2.x nn.LSTM (mindspore/nn/layer/rnns.py) names its parameters exactly as PyTorch does
// (weight_ih_l{k}[_reverse], weight_hh_..., bias_ih_..., bias_hh_...), with PyTorch's [4H, I] layout and i, f, g, o
// gate order (its Ascend path reorders to i, g, f, o from those). It has no projection and no peepholes.
Status import_mindspore(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec, Weights* weights) {
  bool any = false;
  for (const auto& kv : file.tensors) {
    if (!starts_with(kv.first, prefix)) continue;
    const std::string rest = kv.first.substr(prefix.size());
    if (!pytorch_name(rest)) continue;
    any = true;
    if (starts_with(rest, "weight_hr_l") || starts_with(rest, "peephole_l")) {
      return error(StatusCode::kFormatError, "unexpected tensor '", kv.first,
                   "': MindSpore's nn.LSTM has no projection or peepholes (use --naming pytorch for this file)");
    }
  }
  if (!any) {
    auto flat = file.tensors.find(prefix + "weight");
    if (flat != file.tensors.end() && flat->second.shape.size() == 3 && flat->second.shape[1] == 1 &&
        flat->second.shape[2] == 1) {
      return error(StatusCode::kNotSupported, "tensor '", flat->first,
                   "' looks like the single packed (cuDNN-layout) weight of an older MindSpore nn.LSTM; culstm reads "
                   "MindSpore 2.x's per-layer parameters (weight_ih_l0, ...): re-create the model with MindSpore 2.x "
                   "and export it with tools/export_mindspore.py");
    }
  }
  return weights_from_safetensors(file, prefix, spec, weights);
}

Status import_unchecked(const SafetensorsFile& file, const ImportOptions& options, LstmSpec* spec,
                        Weights* weights) {
  Naming naming = options.naming;
  if (naming == Naming::kAuto) CULSTM_RETURN_IF_ERROR(detect_naming(file, options.prefix, &naming));
  switch (naming) {
    case Naming::kPyTorch: return import_pytorch(file, options.prefix, spec, weights);
    case Naming::kMindSpore: return import_mindspore(file, options.prefix, spec, weights);
    case Naming::kKeras: return internal::import_keras(file, options.prefix, spec, weights);
    case Naming::kOnnx: return internal::import_onnx_safetensors(file, options.prefix, spec, weights);
    case Naming::kAuto: break;
  }
  return error(StatusCode::kInvalidArgument, "import_weights: unknown naming ", static_cast<int>(naming));
}

}  // namespace

const char* naming_name(Naming naming) noexcept {
  switch (naming) {
    case Naming::kAuto: return "auto";
    case Naming::kPyTorch: return "pytorch";
    case Naming::kKeras: return "keras";
    case Naming::kOnnx: return "onnx";
    case Naming::kMindSpore: return "mindspore";
  }
  return "unknown";
}

Status parse_naming(const std::string& text, Naming* naming) {
  std::string expected;
  for (Naming n : kAllNamings) {
    if (text == naming_name(n)) {
      *naming = n;
      return Status::Ok();
    }
    expected += str(expected.empty() ? "" : "|", naming_name(n));
  }
  return error(StatusCode::kInvalidArgument, "naming: expected ", expected, ", got '", text, "'");
}

Status detect_naming(const SafetensorsFile& file, const std::string& prefix, Naming* naming) {
  if (naming == nullptr) return Status(StatusCode::kNullPointer, "detect_naming: naming is null");
  std::string pytorch_example, keras_example, onnx_example;
  std::vector<std::string> names;
  for (const auto& kv : file.tensors) {
    if (!starts_with(kv.first, prefix)) continue;
    const std::string rest = kv.first.substr(prefix.size());
    if (names.size() < 6) names.push_back(kv.first);
    if (pytorch_example.empty() && pytorch_name(rest)) pytorch_example = kv.first;
    std::string cell, leaf;
    if (keras_example.empty() && internal::keras_weight_name(rest, &cell, &leaf) && leaf == "recurrent_kernel") {
      keras_example = kv.first;
    }
  }
  if (file.tensors.count(prefix + "W") && file.tensors.count(prefix + "R")) onnx_example = prefix + "W";
  std::vector<std::pair<Naming, std::string>> found;
  if (!pytorch_example.empty()) found.emplace_back(Naming::kPyTorch, pytorch_example);
  if (!keras_example.empty()) found.emplace_back(Naming::kKeras, keras_example);
  if (!onnx_example.empty()) found.emplace_back(Naming::kOnnx, onnx_example);
  if (found.size() == 1) {
    *naming = found[0].first;
    return Status::Ok();
  }
  if (found.empty()) {
    std::string listed;
    for (const std::string& n : names) listed += str(listed.empty() ? "" : ", ", "'", n, "'");
    const std::size_t total = file.tensors.size();
    return error(StatusCode::kFormatError, "cannot tell the naming convention of the tensors under prefix '", prefix,
                 "': none is named like PyTorch/MindSpore ('weight_ih_l0'), ONNX ('W' and 'R') or Keras "
                 "('.../recurrent_kernel'); the file has ",
                 total, " tensor", total == 1 ? "" : "s", total ? ": " : "", listed,
                 total > names.size() ? ", ..." : "", " (pass --prefix and/or --naming)");
  }
  std::string which;
  for (const auto& f : found) which += str(which.empty() ? "" : ", ", naming_name(f.first), " ('", f.second, "')");
  return error(StatusCode::kFormatError, "the tensors under prefix '", prefix,
               "' match more than one naming convention: ", which, " (pass --prefix and/or --naming)");
}

Status import_weights(const SafetensorsFile& file, const ImportOptions& options, LstmSpec* spec, Weights* weights) {
  if (spec == nullptr || weights == nullptr) {
    return Status(StatusCode::kNullPointer, "import_weights: spec and weights must not be null");
  }
  try {
    LstmSpec s;
    Weights w;
    CULSTM_RETURN_IF_ERROR(import_unchecked(file, options, &s, &w));
    CULSTM_RETURN_IF_ERROR(w.check_against(s));  // every importer's result, checked the same way
    *spec = s;
    *weights = std::move(w);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kFormatError, "import_weights: out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, str("import_weights: unexpected exception: ", e.what()));
  }
}

Status import_model_file(const std::string& path, const ImportOptions& options, LstmSpec* spec, Weights* weights) {
  if (ends_with(path, ".onnx")) {
    if (options.naming != Naming::kAuto && options.naming != Naming::kOnnx) {
      return error(StatusCode::kInvalidArgument, path, ": a .onnx file has the onnx naming, not ",
                   naming_name(options.naming));
    }
    if (!options.prefix.empty()) {
      return error(StatusCode::kInvalidArgument, path, ": --prefix does not apply to .onnx files (use --onnx-node)");
    }
    return import_onnx_file(path, options.onnx_node, spec, weights);
  }
  if (!options.onnx_node.empty()) {
    return error(StatusCode::kInvalidArgument, path, ": --onnx-node applies only to .onnx files");
  }
  SafetensorsFile file;
  Status read = read_safetensors(path, &file);
  if (!read.ok()) {
    std::vector<std::uint8_t> head;
    // A common mistake: an ONNX model under another extension. Its first byte is ModelProto's ir_version tag.
    if (read.code() == StatusCode::kFormatError && read_file(path, &head).ok() && !head.empty() && head[0] == 0x08) {
      return Status(read.code(), read.message() + " (is it an ONNX model? name it *.onnx)");
    }
    return read;
  }
  Status status = import_weights(file, options, spec, weights);
  if (!status.ok()) return Status(status.code(), path + ": " + status.message());
  return status;
}

}  // namespace io
}  // namespace culstm
