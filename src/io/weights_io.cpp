// Model files: PyTorch nn.LSTM state-dict names in safetensors <-> LstmSpec + Weights (see weights_io.h and
// docs/formats.md). Reading infers everything the names and shapes can tell, takes the rest from the "culstm.spec"
// metadata, and checks every tensor against the inferred spec before converting anything, so a bad file is reported
// by the name of the first tensor that is wrong rather than by a size mismatch deep inside Weights.
#include "io/weights_io.h"

#include <cfloat>
#include <cmath>
#include <initializer_list>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "detail.h"
#include "io/json.h"

namespace culstm {
namespace io {
namespace {

using detail::error;
using detail::str;

constexpr const char* kSpecKey = "culstm.spec";

enum class Kind : int { kWeightIh = 0, kWeightHh, kBiasIh, kBiasHh, kWeightHr, kPeephole, kCount };
const char* const kKindNames[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "peephole"};

// Stand-in layer index for a name whose number is not canonical ("_l01", "_l99999999999"): it still matches the
// LSTM pattern, so it is reported as an unexpected tensor instead of being silently ignored.
constexpr int kBadLayer = 1 << 30;

struct NameKey {
  Kind kind;
  int layer;
  bool reverse;
  bool operator<(const NameKey& o) const {
    return std::tie(kind, layer, reverse) < std::tie(o.kind, o.layer, o.reverse);
  }
};

std::string tensor_name(const std::string& prefix, Kind kind, int layer, bool reverse) {
  return str(prefix, kKindNames[static_cast<int>(kind)], "_l", layer, reverse ? "_reverse" : "");
}

// Whether `name` (prefix already removed) is <kind>_l<digits>[_reverse].
bool parse_lstm_name(const std::string& name, NameKey* out) {
  for (int k = 0; k < static_cast<int>(Kind::kCount); ++k) {
    const std::string head = std::string(kKindNames[k]) + "_l";
    if (name.compare(0, head.size(), head) != 0) continue;
    std::size_t pos = head.size();
    const std::size_t digits_start = pos;
    while (pos < name.size() && name[pos] >= '0' && name[pos] <= '9') ++pos;
    const std::size_t digits = pos - digits_start;
    if (digits == 0) return false;
    const std::string rest = name.substr(pos);
    if (rest != "" && rest != "_reverse") return false;
    out->kind = static_cast<Kind>(k);
    out->reverse = !rest.empty();
    const bool canonical = digits <= 9 && (digits == 1 || name[digits_start] != '0');
    out->layer = canonical ? std::stoi(name.substr(digits_start, digits)) : kBadLayer;
    return true;
  }
  return false;
}

// ---- "culstm.spec" JSON -------------------------------------------------------------------------------------------

json::Value activation_to_json(const Activation& a) {
  json::Value v = json::Value::empty_object();
  v.add("kind", json::Value::from_string(activation_kind_name(a.kind)));
  v.add("alpha", json::Value::from_float(a.alpha));
  v.add("beta", json::Value::from_float(a.beta));
  return v;
}

Status json_to_float(const std::string& field, const json::Value& v, float* out) {
  if (!v.is_number() || !(std::fabs(v.number) <= FLT_MAX)) {
    return error(StatusCode::kFormatError, kSpecKey, ": ", field, ": expected a finite number, got ",
                 json::serialize(v));
  }
  *out = static_cast<float>(v.number);
  return Status::Ok();
}

// The ONNX defaults the Activation factories carry, for a JSON activation that gives only "kind".
bool activation_from_name(const std::string& name, Activation* out) {
  static const Activation kAll[] = {
      Activation::sigmoid(),     Activation::tanh(),         Activation::relu(),
      Activation::affine(1, 0),  Activation::leaky_relu(),   Activation::thresholded_relu(),
      Activation::scaled_tanh(), Activation::hard_sigmoid(), Activation::elu(),
      Activation::softsign(),    Activation::softplus()};
  for (const Activation& a : kAll) {
    if (name == activation_kind_name(a.kind)) {
      *out = a;
      return true;
    }
  }
  return false;
}

Status json_to_activation(const std::string& field, const json::Value& v, Activation* out) {
  if (!v.is_object()) {
    return error(StatusCode::kFormatError, kSpecKey, ": ", field,
                 ": expected an object {\"kind\": ..., \"alpha\": ..., \"beta\": ...}, got ", json::serialize(v));
  }
  const json::Value* kind = v.find("kind");
  if (kind == nullptr || !kind->is_string()) {
    return error(StatusCode::kFormatError, kSpecKey, ": ", field, ": missing string \"kind\"");
  }
  Activation a;
  if (!activation_from_name(kind->string, &a)) {
    return error(StatusCode::kFormatError, kSpecKey, ": ", field, ": unknown activation kind '", kind->string, "'");
  }
  for (const auto& member : v.object) {
    if (member.first == "kind") continue;
    if (member.first == "alpha") {
      CULSTM_RETURN_IF_ERROR(json_to_float(field + ".alpha", member.second, &a.alpha));
    } else if (member.first == "beta") {
      CULSTM_RETURN_IF_ERROR(json_to_float(field + ".beta", member.second, &a.beta));
    } else {
      return error(StatusCode::kFormatError, kSpecKey, ": ", field, ": unknown key '", member.first, "'");
    }
  }
  *out = a;
  return Status::Ok();
}

// Picks the enum value whose name is the JSON string.
template <typename E, typename NameFn>
Status json_to_enum(const std::string& field, const json::Value& v, std::initializer_list<E> values, NameFn name,
                    E* out) {
  std::string expected;
  for (E e : values) {
    if (v.is_string() && v.string == name(e)) {
      *out = e;
      return Status::Ok();
    }
    expected += str(expected.empty() ? "" : ", ", "\"", name(e), "\"");
  }
  return error(StatusCode::kFormatError, kSpecKey, ": ", field, ": expected one of ", expected, ", got ",
               json::serialize(v));
}

// Applies the fields present in `text` to `spec`; `direction_given` tells whether "direction" was among them.
// Unknown fields are errors: a newer writer's field that this reader ignored could silently change the results.
Status apply_spec_json(const std::string& text, LstmSpec* spec, bool* direction_given) {
  json::Value root;
  Status parsed = json::parse(text, &root);
  if (!parsed.ok()) return Status(parsed.code(), str(kSpecKey, ": ", parsed.message()));
  if (!root.is_object()) {
    return error(StatusCode::kFormatError, kSpecKey, ": expected a JSON object, got ", json::type_name(root.type));
  }
  LstmSpec s = *spec;
  *direction_given = false;
  for (const auto& member : root.object) {
    const std::string& key = member.first;
    const json::Value& v = member.second;
    if (key == "direction") {
      *direction_given = true;
      CULSTM_RETURN_IF_ERROR(json_to_enum(key, v, {Direction::kForward, Direction::kReverse, Direction::kBidirectional},
                                          direction_name, &s.direction));
    } else if (key == "layout") {
      CULSTM_RETURN_IF_ERROR(
          json_to_enum(key, v, {BatchLayout::kSeqMajor, BatchLayout::kBatchMajor}, layout_name, &s.layout));
    } else if (key == "dtype") {
      CULSTM_RETURN_IF_ERROR(json_to_enum(key, v, {DType::kF32, DType::kF16, DType::kBF16}, dtype_name, &s.dtype));
    } else if (key == "math") {
      CULSTM_RETURN_IF_ERROR(
          json_to_enum(key, v, {MathMode::kStrictF32, MathMode::kAllowTF32}, math_mode_name, &s.math));
    } else if (key == "gate_activation") {
      CULSTM_RETURN_IF_ERROR(json_to_activation(key, v, &s.gate_activation));
    } else if (key == "cell_activation") {
      CULSTM_RETURN_IF_ERROR(json_to_activation(key, v, &s.cell_activation));
    } else if (key == "hidden_activation") {
      CULSTM_RETURN_IF_ERROR(json_to_activation(key, v, &s.hidden_activation));
    } else if (key == "gate_clip" || key == "cell_clip") {
      std::optional<float>& clip = key == "gate_clip" ? s.gate_clip : s.cell_clip;
      if (v.is_null()) {
        clip.reset();  // null: no clip
      } else {
        float value = 0.0f;
        CULSTM_RETURN_IF_ERROR(json_to_float(key, v, &value));
        clip = value;
      }
    } else if (key == "input_forget") {
      if (!v.is_bool()) {
        return error(StatusCode::kFormatError, kSpecKey, ": input_forget: expected true or false, got ",
                     json::serialize(v));
      }
      s.input_forget = v.boolean;
    } else {
      return error(StatusCode::kFormatError, kSpecKey, ": unknown field '", key, "'");
    }
  }
  *spec = s;
  return Status::Ok();
}

// ---- reading ----------------------------------------------------------------------------------------------------

Status from_safetensors_unchecked(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec_out,
                                  Weights* weights_out) {
  // Every tensor under `prefix` whose name has the LSTM pattern; other names (an embedding, a decoder) are ignored.
  std::map<NameKey, std::pair<std::string, const Array*>> found;
  for (const auto& kv : file.tensors) {
    if (kv.first.compare(0, prefix.size(), prefix) != 0) continue;
    NameKey key{};
    if (parse_lstm_name(kv.first.substr(prefix.size()), &key)) found[key] = {kv.first, &kv.second};
  }
  auto find = [&](Kind kind, int layer, bool reverse) -> const Array* {
    auto it = found.find(NameKey{kind, layer, reverse});
    return it == found.end() ? nullptr : it->second.second;
  };

  // Layers are 0..L-1 where each has at least one tensor; a tensor of a later layer is an unexpected extra.
  std::set<int> layers;
  bool any_reverse = false;
  for (const auto& kv : found) layers.insert(kv.first.layer);
  int num_layers = 0;
  while (layers.count(num_layers)) ++num_layers;
  if (num_layers == 0) {
    // Point at the likely mistake: the file has an LSTM under another prefix.
    const std::string wanted = tensor_name("", Kind::kWeightIh, 0, false);
    std::string hint;
    for (const auto& kv : file.tensors) {
      const std::string& name = kv.first;
      if (name.size() >= wanted.size() && name.compare(name.size() - wanted.size(), wanted.size(), wanted) == 0) {
        hint = str(" (the file has '", name, "': prefix '", name.substr(0, name.size() - wanted.size()), "'?)");
        break;
      }
    }
    return error(StatusCode::kFormatError, "missing tensor '", prefix, wanted, "': no LSTM tensors under prefix '",
                 prefix, "'", hint);
  }
  std::string reverse_example;
  for (const auto& kv : found) {
    if (kv.first.layer >= num_layers) {
      return error(StatusCode::kFormatError, "unexpected tensor '", kv.second.first, "': the model's layers are 0..",
                   num_layers - 1, " and no tensor names layer ", num_layers);
    }
    if (kv.first.reverse && !any_reverse) {
      any_reverse = true;
      reverse_example = kv.second.first;
    }
  }

  LstmSpec spec;  // defaults for everything neither the tensors nor the metadata set
  bool direction_given = false;
  auto meta = file.metadata.find(kSpecKey);
  if (meta != file.metadata.end()) CULSTM_RETURN_IF_ERROR(apply_spec_json(meta->second, &spec, &direction_given));
  if (!direction_given) {
    spec.direction = any_reverse ? Direction::kBidirectional : Direction::kForward;
  } else if (any_reverse && spec.direction != Direction::kBidirectional) {
    return error(StatusCode::kFormatError, kSpecKey, ": direction '", direction_name(spec.direction),
                 "' disagrees with the tensors: '", reverse_example,
                 "' is present (reverse tensors mean bidirectional)");
  } else if (!any_reverse && spec.direction == Direction::kBidirectional) {
    return error(StatusCode::kFormatError, kSpecKey,
                 ": direction 'bidirectional' disagrees with the tensors: missing "
                 "tensor '",
                 tensor_name(prefix, Kind::kWeightIh, 0, true), "'");
  }
  const int D = spec.num_directions();

  // Sizes from layer 0's forward tensors.
  auto matrix = [&](Kind kind, const Array** out) -> Status {
    const std::string name = tensor_name(prefix, kind, 0, false);
    *out = find(kind, 0, false);
    if (*out == nullptr) return error(StatusCode::kFormatError, "missing tensor '", name, "'");
    if ((*out)->shape.size() != 2) {
      return error(StatusCode::kShapeMismatch, "tensor '", name, "': expected a 2-d matrix, got shape ",
                   shape_string((*out)->shape));
    }
    return Status::Ok();
  };
  const Array* w_hh0 = nullptr;
  const Array* w_ih0 = nullptr;
  CULSTM_RETURN_IF_ERROR(matrix(Kind::kWeightIh, &w_ih0));
  CULSTM_RETURN_IF_ERROR(matrix(Kind::kWeightHh, &w_hh0));
  const std::int64_t gate_rows = w_hh0->shape[0];
  if (gate_rows <= 0 || gate_rows % 4 != 0) {
    return error(StatusCode::kShapeMismatch, "tensor '", tensor_name(prefix, Kind::kWeightHh, 0, false),
                 "': expected 4*hidden_size rows (a positive multiple of 4), got shape ", shape_string(w_hh0->shape));
  }
  spec.hidden_size = gate_rows / 4;
  spec.input_size = w_ih0->shape[1];
  spec.num_layers = num_layers;
  if (find(Kind::kWeightHr, 0, false) != nullptr) {
    const Array* w_hr0 = nullptr;
    CULSTM_RETURN_IF_ERROR(matrix(Kind::kWeightHr, &w_hr0));
    spec.proj_size = w_hr0->shape[0];
  }

  // Optional tensor groups are all-or-none over every (layer, direction).
  auto all_or_none = [&](const char* what, std::initializer_list<Kind> kinds, bool* present) -> Status {
    std::string first_present, first_missing;
    for (int l = 0; l < num_layers; ++l) {
      for (int d = 0; d < D; ++d) {
        for (Kind kind : kinds) {
          std::string& slot = find(kind, l, d == 1) ? first_present : first_missing;
          if (slot.empty()) slot = tensor_name(prefix, kind, l, d == 1);
        }
      }
    }
    if (!first_present.empty() && !first_missing.empty()) {
      return error(StatusCode::kFormatError, "inconsistent ", what, ": missing tensor '", first_missing, "' while '",
                   first_present, "' is present (", what, " must be given for every layer and direction, or none)");
    }
    *present = !first_present.empty();
    return Status::Ok();
  };
  bool has_projection = false;
  CULSTM_RETURN_IF_ERROR(all_or_none("bias", {Kind::kBiasIh, Kind::kBiasHh}, &spec.bias));
  CULSTM_RETURN_IF_ERROR(all_or_none("projection", {Kind::kWeightHr}, &has_projection));
  CULSTM_RETURN_IF_ERROR(all_or_none("peepholes", {Kind::kPeephole}, &spec.peepholes));

  // Validating before the shape checks keeps the expected extents below (D * R, 4 * H) far from overflow.
  Status valid = spec.validate();
  if (!valid.ok()) {
    return Status(valid.code(), str("spec inferred from the tensors under prefix '", prefix, "' (", spec.describe(),
                                    "): ", valid.message()));
  }

  // Every tensor: present, expected shape, a floating-point dtype.
  const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
  struct Expected {
    Kind kind;
    bool present;
    std::vector<std::int64_t> shape;
  };
  // Pass 0 checks everything, pass 1 converts: no work on a bad file, and the weights are allocated only once every
  // tensor is known to hold its share of them (a hostile file cannot make a few bytes ask for gigabytes).
  Weights weights;
  LayerWeights unused;  // what pass 0's table points at; it only reads shapes
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) weights = Weights::zeros_for(spec);
    for (int l = 0; l < num_layers; ++l) {
      for (int d = 0; d < D; ++d) {
        const bool reverse = d == 1;
        LayerWeights& lw = pass == 1 ? weights.at(l, d) : unused;
        const std::pair<Expected, std::vector<float>*> tensors[] = {
            {{Kind::kWeightIh, true, {4 * H, spec.layer_input_size(l)}}, &lw.w_ih},
            {{Kind::kWeightHh, true, {4 * H, R}}, &lw.w_hh},
            {{Kind::kBiasIh, spec.bias, {4 * H}}, &lw.b_ih},
            {{Kind::kBiasHh, spec.bias, {4 * H}}, &lw.b_hh},
            {{Kind::kWeightHr, P > 0, {P, H}}, &lw.w_hr},
            {{Kind::kPeephole, spec.peepholes, {3 * H}}, &lw.peephole},
        };
        for (const auto& t : tensors) {
          if (!t.first.present) continue;
          const Array* a = find(t.first.kind, l, reverse);
          const std::string name = tensor_name(prefix, t.first.kind, l, reverse);
          if (pass == 1) {
            *t.second = a->to_f32();
            for (std::size_t k = 0; k < t.second->size(); ++k) {
              if (!std::isfinite((*t.second)[k])) {
                return error(StatusCode::kFormatError, "tensor '", name, "' element ", k,
                             ": expected a finite value, got ", (*t.second)[k]);
              }
            }
            continue;
          }
          if (a == nullptr) {
            return error(StatusCode::kFormatError, "missing tensor '", name, "' (expected shape ",
                         shape_string(t.first.shape), ")");
          }
          if (a->shape != t.first.shape) {
            return error(StatusCode::kShapeMismatch, "tensor '", name, "': expected shape ",
                         shape_string(t.first.shape), ", got ", shape_string(a->shape), " (", spec.describe(), ")");
          }
          if (a->dtype != DType::kF32 && a->dtype != DType::kF16 && a->dtype != DType::kBF16 &&
              a->dtype != DType::kF64) {
            return error(StatusCode::kDtypeMismatch, "tensor '", name, "': expected a floating-point dtype, got ",
                         dtype_name(a->dtype));
          }
          std::uint64_t bytes = 0;
          if (!checked_byte_size(a->shape, a->dtype, &bytes) || a->bytes.size() != bytes) {
            return error(StatusCode::kFormatError, "tensor '", name, "': holds ", a->bytes.size(),
                         " bytes, its shape needs ", bytes);
          }
        }
      }
    }
  }
  CULSTM_RETURN_IF_ERROR(weights.check_against(spec));  // cannot fail after the checks above; kept as a backstop
  *spec_out = spec;
  *weights_out = std::move(weights);
  return Status::Ok();
}

}  // namespace

std::string spec_to_json(const LstmSpec& spec) {
  json::Value v = json::Value::empty_object();
  v.add("direction", json::Value::from_string(direction_name(spec.direction)));
  v.add("layout", json::Value::from_string(layout_name(spec.layout)));
  v.add("dtype", json::Value::from_string(dtype_name(spec.dtype)));
  v.add("math", json::Value::from_string(math_mode_name(spec.math)));
  v.add("gate_activation", activation_to_json(spec.gate_activation));
  v.add("cell_activation", activation_to_json(spec.cell_activation));
  v.add("hidden_activation", activation_to_json(spec.hidden_activation));
  v.add("gate_clip", spec.gate_clip ? json::Value::from_float(*spec.gate_clip) : json::Value::null());
  v.add("cell_clip", spec.cell_clip ? json::Value::from_float(*spec.cell_clip) : json::Value::null());
  v.add("input_forget", json::Value::from_bool(spec.input_forget));
  return json::serialize(v);
}

Status spec_from_json(const std::string& json, LstmSpec* spec) {
  if (spec == nullptr) return Status(StatusCode::kNullPointer, "spec_from_json: spec is null");
  try {
    bool direction_given = false;
    return apply_spec_json(json, spec, &direction_given);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kFormatError, str(kSpecKey, ": out of memory"));
  }
}

Status weights_from_safetensors(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec,
                                Weights* weights) {
  if (spec == nullptr || weights == nullptr) {
    return Status(StatusCode::kNullPointer, "weights_from_safetensors: spec and weights must not be null");
  }
  try {
    return from_safetensors_unchecked(file, prefix, spec, weights);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kFormatError, "weights_from_safetensors: out of memory");
  }
}

Status weights_to_safetensors(const LstmSpec& spec, const Weights& weights, SafetensorsFile* file) {
  if (file == nullptr) return Status(StatusCode::kNullPointer, "weights_to_safetensors: file is null");
  CULSTM_RETURN_IF_ERROR(spec.validate());
  CULSTM_RETURN_IF_ERROR(weights.check_against(spec));
  try {
    const DType dtype = spec.dtype == DType::kF16 || spec.dtype == DType::kBF16 ? spec.dtype : DType::kF32;
    const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
    SafetensorsFile out;
    for (int l = 0; l < spec.num_layers; ++l) {
      for (int d = 0; d < spec.num_directions(); ++d) {
        const LayerWeights& lw = weights.at(l, d);
        const bool reverse = d == 1;
        const struct {
          Kind kind;
          bool present;
          const std::vector<float>* values;
          std::vector<std::int64_t> shape;
        } tensors[] = {
            {Kind::kWeightIh, true, &lw.w_ih, {4 * H, spec.layer_input_size(l)}},
            {Kind::kWeightHh, true, &lw.w_hh, {4 * H, R}},
            {Kind::kBiasIh, spec.bias, &lw.b_ih, {4 * H}},
            {Kind::kBiasHh, spec.bias, &lw.b_hh, {4 * H}},
            {Kind::kWeightHr, P > 0, &lw.w_hr, {P, H}},
            {Kind::kPeephole, spec.peepholes, &lw.peephole, {3 * H}},
        };
        for (const auto& t : tensors) {
          if (!t.present) continue;
          const std::string name = tensor_name("", t.kind, l, reverse);
          Array a = Array::from_f32(*t.values, t.shape, dtype);
          // A weight beyond f16's range would become inf and make the saved file unloadable: refuse it now.
          const std::vector<float> stored = a.to_f32();
          for (std::size_t k = 0; k < stored.size(); ++k) {
            if (!std::isfinite(stored[k])) {
              return error(StatusCode::kInvalidArgument, "weights_to_safetensors: ", name, "[", k,
                           "] = ", (*t.values)[k], " is out of the range of ", dtype_name(dtype));
            }
          }
          out.tensors[name] = std::move(a);
        }
      }
    }
    out.metadata[kSpecKey] = spec_to_json(spec);
    *file = std::move(out);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInvalidArgument, "weights_to_safetensors: out of memory");
  }
}

Status load_model_file(const std::string& path, const std::string& prefix, LstmSpec* spec, Weights* weights) {
  SafetensorsFile file;
  CULSTM_RETURN_IF_ERROR(read_safetensors(path, &file));
  Status status = weights_from_safetensors(file, prefix, spec, weights);
  if (!status.ok()) return Status(status.code(), path + ": " + status.message());
  return status;
}

Status save_model_file(const std::string& path, const LstmSpec& spec, const Weights& weights) {
  SafetensorsFile file;
  CULSTM_RETURN_IF_ERROR(weights_to_safetensors(spec, weights, &file));
  return write_safetensors(path, file);
}

}  // namespace io
}  // namespace culstm
