// The Keras convention (docs/formats.md, "Keras"): one Keras layer per culstm layer. An LSTM's cell holds kernel
// [I, 4u], recurrent_kernel [u, 4u] and bias [4u] (gates i, f, c, o along the 4u axis; the transpose of PyTorch's
// layout; one bias). Tensor names are Keras's weight paths: "lstm/lstm_cell/kernel" (Keras 3),
// "lstm/lstm_cell/kernel:0" (tf.keras 2), "bidirectional/forward_lstm/lstm_cell/kernel".
//
// The import runs in steps, one function each: group the tensors into LSTMs (collect_lstms), read "culstm.keras"
// (read_config), build the stack of layers from "culstm.layers" or from the paths (read_stack), refuse what one
// LstmSpec cannot express (check_stack), infer the spec (spec_from_stack) and convert the tensors (convert_lstm).
//
// A Bidirectional layer's two LSTMs are identified from the model's structure, never guessed from a name: either
// "culstm.layers" lists them ({"path": ..., "forward": {"path": ...}, "backward": {"path": ...}}, as
// tools/export_keras.py writes from the loaded model), or the paths show them as Keras writes them: a wrapper holding
// exactly two LSTMs, one of them "forward_<name>" (keras.layers.Bidirectional always names its forward copy so); the
// other is the backward LSTM, whether Keras built it ("backward_<name>") or the user gave it (backward_layer=...,
// which keeps the user's name).
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "detail.h"
#include "io/import.h"
#include "io/import_internal.h"
#include "io/json.h"

namespace culstm {
namespace io {
namespace internal {

using detail::error;
using detail::str;

namespace {

// The tensors of one Keras LSTM cell (nullptr where the file has none) and their names for messages.
struct KerasCell {
  const Array* kernel = nullptr;
  const Array* recurrent = nullptr;
  const Array* bias = nullptr;
  std::string kernel_name, recurrent_name, bias_name;
};

// The options of one Keras LSTM that change its numbers and that its weights cannot tell.
struct KerasSettings {
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";
  bool go_backwards = false;
  bool time_major = false;
};

// "culstm.keras": the Keras version and the default options of every LSTM and Bidirectional layer.
struct KerasConfig {
  int major = 0;  // 0 = unknown
  std::string version;
  KerasSettings settings;
  std::string merge_mode = "concat";
};

// One Keras LSTM: a layer of the stack, or one direction of a Bidirectional wrapper.
struct KerasLstm {
  std::string path;  // relative to the prefix, without the cell component: "lstm_1", "bidirectional/forward_lstm"
  const KerasCell* cell = nullptr;
  KerasSettings settings;
};

// One culstm layer: an LSTM, or a Bidirectional wrapper's forward and backward LSTMs (in that order).
struct KerasStackLayer {
  std::string path;
  std::string merge_mode;  // Bidirectional only
  std::vector<KerasLstm> lstms;
};

using LstmMap = std::map<std::string, KerasCell>;  // LSTM layer path (relative to the prefix) -> its cell

bool starts_with(const std::string& s, const std::string& head) {
  return s.size() >= head.size() && s.compare(0, head.size(), head) == 0;
}

// Whether a path component names an RNN cell ("lstm_cell", "lstm_cell_1", "cell").
bool is_cell_component(const std::string& c) {
  std::size_t end = c.size();
  while (end > 0 && std::isdigit(static_cast<unsigned char>(c[end - 1]))) --end;
  if (end < c.size() && end > 0 && c[end - 1] == '_') --end;  // "_1"
  const std::string stem = c.substr(0, end);
  return stem.size() >= 4 && stem.compare(stem.size() - 4, 4, "cell") == 0;
}

std::string parent(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}
std::string last_component(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Python's spelling, as the user wrote the option.
const char* python_bool(bool b) { return b ? "True" : "False"; }

std::string list_lstms(const LstmMap& lstms, const std::string& prefix) {
  std::string have;
  for (const auto& kv : lstms) have += str(have.empty() ? "" : ", ", "'", prefix, kv.first, "'");
  return have.empty() ? "none" : have;
}

// ---- step 1: tensors -> LSTMs ------------------------------------------------------------------------------------

// Groups kernel / recurrent_kernel / bias under the prefix by cell and keeps the LSTM cells (recurrent kernel
// [u, 4u]), keyed by their layer's path. `non_lstm` receives a recurrent kernel of another shape (GRU, SimpleRNN).
Status collect_lstms(const SafetensorsFile& file, const std::string& prefix, LstmMap* lstms, std::string* non_lstm) {
  std::map<std::string, KerasCell> cells;
  for (const auto& kv : file.tensors) {
    if (!starts_with(kv.first, prefix)) continue;
    std::string cell, leaf;
    if (!keras_weight_name(kv.first.substr(prefix.size()), &cell, &leaf)) continue;
    KerasCell& c = cells[cell];
    const Array*& slot = leaf == "kernel" ? c.kernel : leaf == "recurrent_kernel" ? c.recurrent : c.bias;
    std::string& slot_name = leaf == "kernel" ? c.kernel_name : leaf == "recurrent_kernel" ? c.recurrent_name
                                                                                         : c.bias_name;
    if (slot != nullptr) {
      return error(StatusCode::kFormatError, "tensors '", slot_name, "' and '", kv.first, "' are the same Keras weight");
    }
    slot = &kv.second;
    slot_name = kv.first;
  }
  for (const auto& kv : cells) {
    if (kv.second.recurrent == nullptr) continue;  // Dense, Conv, ...: not recurrent
    const Array& rk = *kv.second.recurrent;
    if (rk.shape.size() == 2 && rk.shape[1] != 4 * rk.shape[0]) {
      *non_lstm = kv.second.recurrent_name;
      continue;
    }
    const std::string path = is_cell_component(last_component(kv.first)) ? parent(kv.first) : kv.first;
    const auto inserted = lstms->emplace(path, kv.second);
    if (!inserted.second) {
      return error(StatusCode::kFormatError, "Keras layer '", prefix, path, "' has two LSTM cells ('",
                   inserted.first->second.recurrent_name, "' and '", kv.second.recurrent_name, "')");
    }
  }
  return Status::Ok();
}

// ---- step 2: "culstm.keras" --------------------------------------------------------------------------------------

// Reads `key` into `settings` when it is one of an LSTM's options; `known` says whether it was. `where` names the
// JSON object in messages.
Status read_setting(const std::string& where, const std::string& key, const json::Value& v, KerasSettings* settings,
                    bool* known) {
  *known = true;
  std::string* text = key == "activation" ? &settings->activation
                      : key == "recurrent_activation" ? &settings->recurrent_activation
                                                      : nullptr;
  bool* flag = key == "go_backwards" ? &settings->go_backwards : key == "time_major" ? &settings->time_major : nullptr;
  if (text != nullptr) {
    if (!v.is_string()) {
      return error(StatusCode::kFormatError, where, ": ", key, ": expected a string, got ", json::serialize(v));
    }
    *text = v.string;
  } else if (flag != nullptr) {
    if (!v.is_bool()) {
      return error(StatusCode::kFormatError, where, ": ", key, ": expected true or false, got ", json::serialize(v));
    }
    *flag = v.boolean;
  } else {
    *known = false;
  }
  return Status::Ok();
}

// merge_mode: a string, or null (Keras returns the two directions as a list).
Status read_merge_mode(const std::string& where, const json::Value& v, std::string* merge_mode) {
  if (v.is_null()) {
    *merge_mode = "null";
  } else if (v.is_string()) {
    *merge_mode = v.string;
  } else {
    return error(StatusCode::kFormatError, where, ": merge_mode: expected a string or null, got ", json::serialize(v));
  }
  return Status::Ok();
}

Status read_keras_version(const json::Value& v, KerasConfig* c) {
  if (!v.is_string()) {
    return error(StatusCode::kFormatError, kMetaKeras, ": keras_version: expected a string, got ", json::serialize(v));
  }
  c->version = v.string;
  std::size_t k = 0;
  int major = 0;
  while (k < c->version.size() && k < 4 && std::isdigit(static_cast<unsigned char>(c->version[k]))) {
    major = major * 10 + (c->version[k] - '0');
    ++k;
  }
  if (k == 0) {
    return error(StatusCode::kFormatError, kMetaKeras, ": keras_version: expected a version such as \"3.4.1\", got \"",
                 c->version, "\"");
  }
  c->major = major;
  return Status::Ok();
}

// "culstm.keras" (absent: Keras's defaults, version unknown).
Status read_config(const SafetensorsFile& file, KerasConfig* out) {
  KerasConfig c;
  const auto meta = file.metadata.find(kMetaKeras);
  if (meta != file.metadata.end()) {
    json::Value root;
    const Status parsed = json::parse(meta->second, &root);
    if (!parsed.ok()) return Status(parsed.code(), str(kMetaKeras, ": ", parsed.message()));
    if (!root.is_object()) {
      return error(StatusCode::kFormatError, kMetaKeras, ": expected a JSON object, got ", json::type_name(root.type));
    }
    for (const auto& member : root.object) {
      bool known = false;
      CULSTM_RETURN_IF_ERROR(read_setting(kMetaKeras, member.first, member.second, &c.settings, &known));
      if (known) continue;
      if (member.first == "keras_version") {
        CULSTM_RETURN_IF_ERROR(read_keras_version(member.second, &c));
      } else if (member.first == "merge_mode") {
        CULSTM_RETURN_IF_ERROR(read_merge_mode(kMetaKeras, member.second, &c.merge_mode));
      } else {
        return error(StatusCode::kFormatError, kMetaKeras, ": unknown field '", member.first,
                     "' (expected keras_version, activation, recurrent_activation, go_backwards, merge_mode, "
                     "time_major)");
      }
    }
  }
  *out = c;
  return Status::Ok();
}

// A Keras activation name (what keras.activations.serialize gives) -> culstm's. `who` names the LSTM and option.
Status keras_activation(const std::string& who, const std::string& name, int keras_major, Activation* out) {
  if (name == "sigmoid") {
    *out = Activation::sigmoid();
  } else if (name == "tanh") {
    *out = Activation::tanh();
  } else if (name == "relu") {
    *out = Activation::relu();
  } else if (name == "linear") {
    *out = Activation::affine(1.0f, 0.0f);
  } else if (name == "softsign") {
    *out = Activation::softsign();
  } else if (name == "softplus") {
    *out = Activation::softplus();
  } else if (name == "elu") {
    *out = Activation::elu(1.0f);
  } else if (name == "hard_sigmoid") {
    if (keras_major == 2) {
      *out = Activation::hard_sigmoid(0.2f, 0.5f);  // Keras 2: clip(0.2 x + 0.5, 0, 1)
    } else if (keras_major >= 3) {
      *out = Activation::hard_sigmoid(1.0f / 6.0f, 0.5f);  // Keras 3: relu6(x + 3) / 6
    } else {
      return error(StatusCode::kFormatError, who,
                   " is hard_sigmoid, which is 0.2x+0.5 in Keras 2 and x/6+0.5 in Keras 3: give keras_version in ",
                   kMetaKeras);
    }
  } else if (name == "leaky_relu" && keras_major >= 3) {
    *out = Activation::leaky_relu(0.2f);  // Keras 3's default negative_slope
  } else {
    return error(StatusCode::kNotSupported, who, " '", name,
                 "' has no culstm equivalent (supported: sigmoid, tanh, relu, linear, softsign, softplus, elu, "
                 "hard_sigmoid, and leaky_relu for Keras 3)");
  }
  return Status::Ok();
}

// ---- step 3: the stack of layers ---------------------------------------------------------------------------------

// A Bidirectional wrapper's two LSTMs as Keras's paths show them: the wrapper holds exactly two LSTMs, and
// keras.layers.Bidirectional names its forward one "forward_<layer>"; the other is the backward LSTM (Keras's
// "backward_<layer>", or the user's backward_layer under the user's name).
Status bidirectional_lstms(const LstmMap& lstms, const std::string& prefix, const std::string& wrapper,
                           std::string* forward, std::string* backward) {
  std::vector<std::string> inside, forwards;
  for (const auto& kv : lstms) {
    if (parent(kv.first) != wrapper) continue;
    inside.push_back(kv.first);
    if (starts_with(last_component(kv.first), "forward_")) forwards.push_back(kv.first);
  }
  if (inside.empty()) {
    return error(StatusCode::kFormatError, "no Keras LSTM weights for layer '", prefix, wrapper, "' (expected '",
                 prefix, wrapper, "/lstm_cell/kernel', or '", prefix, wrapper,
                 "/forward_lstm/lstm_cell/kernel' for a Bidirectional layer; LSTM layers found: ",
                 list_lstms(lstms, prefix), ")");
  }
  if (inside.size() != 2 || forwards.size() != 1) {
    std::string held;
    for (const std::string& p : inside) held += str(held.empty() ? "" : ", ", "'", prefix, p, "'");
    return error(StatusCode::kFormatError, "Keras layer '", prefix, wrapper, "' holds the LSTMs ", held,
                 ", which is not a Bidirectional layer as Keras writes one (two LSTMs, the forward one named "
                 "'forward_<name>'); list its structure in ",
                 kMetaLayers, " ({\"path\": ..., \"forward\": {\"path\": ...}, \"backward\": {\"path\": ...}}, as "
                 "tools/export_keras.py writes it)");
  }
  *forward = forwards[0];
  *backward = inside[0] == forwards[0] ? inside[1] : inside[0];
  return Status::Ok();
}

// A layer named by its path alone (a "culstm.layers" string, or found in the paths): an LSTM, or a Bidirectional
// wrapper whose LSTMs take culstm.keras's options (the backward one going the other way, as Keras builds it).
Status layer_from_path(const LstmMap& lstms, const std::string& prefix, const std::string& path,
                       const KerasConfig& config, KerasStackLayer* out) {
  const auto it = lstms.find(path);
  if (it != lstms.end()) {
    *out = KerasStackLayer{path, "", {KerasLstm{path, &it->second, config.settings}}};
    return Status::Ok();
  }
  std::string forward, backward;
  CULSTM_RETURN_IF_ERROR(bidirectional_lstms(lstms, prefix, path, &forward, &backward));
  KerasSettings reversed = config.settings;
  reversed.go_backwards = !reversed.go_backwards;
  *out = KerasStackLayer{path,
                         config.merge_mode,
                         {KerasLstm{forward, &lstms.at(forward), config.settings},
                          KerasLstm{backward, &lstms.at(backward), reversed}}};
  return Status::Ok();
}

// One LSTM described by a JSON object {"path": ..., <options>}; options it does not give are `defaults`.
Status lstm_from_object(const LstmMap& lstms, const std::string& prefix, const std::string& where,
                        const json::Value& v, const KerasSettings& defaults, KerasLstm* out) {
  if (!v.is_object()) {
    return error(StatusCode::kFormatError, where, ": expected an object {\"path\": ..., <LSTM options>}, got ",
                 json::serialize(v));
  }
  KerasLstm lstm;
  lstm.settings = defaults;
  bool has_path = false;
  for (const auto& member : v.object) {
    bool known = false;
    CULSTM_RETURN_IF_ERROR(read_setting(where, member.first, member.second, &lstm.settings, &known));
    if (known) continue;
    if (member.first != "path") {
      return error(StatusCode::kFormatError, where, ": unknown field '", member.first,
                   "' (expected path, activation, recurrent_activation, go_backwards, time_major)");
    }
    if (!member.second.is_string()) {
      return error(StatusCode::kFormatError, where, ": path: expected a string, got ", json::serialize(member.second));
    }
    lstm.path = member.second.string;
    has_path = true;
  }
  if (!has_path) return error(StatusCode::kFormatError, where, ": no \"path\"");
  const auto it = lstms.find(lstm.path);
  if (it == lstms.end()) {
    return error(StatusCode::kFormatError, where, ": no Keras LSTM weights for '", prefix, lstm.path, "' (expected '",
                 prefix, lstm.path, "/lstm_cell/kernel'; LSTM layers found: ", list_lstms(lstms, prefix), ")");
  }
  lstm.cell = &it->second;
  *out = lstm;
  return Status::Ok();
}

// A layer described by a "culstm.layers" object: an LSTM {"path": ..., <options>}, or a Bidirectional layer
// {"path": ..., "merge_mode": ..., "forward": {LSTM}, "backward": {LSTM}}.
Status layer_from_object(const LstmMap& lstms, const std::string& prefix, const json::Value& v,
                         const KerasConfig& config, KerasStackLayer* out) {
  const std::string where = str(kMetaLayers, ": ", json::serialize(v));
  if (v.find("forward") == nullptr && v.find("backward") == nullptr) {
    KerasLstm lstm;
    CULSTM_RETURN_IF_ERROR(lstm_from_object(lstms, prefix, where, v, config.settings, &lstm));
    *out = KerasStackLayer{lstm.path, "", {lstm}};
    return Status::Ok();
  }
  KerasStackLayer layer;
  layer.merge_mode = config.merge_mode;
  const json::Value* forward = nullptr;
  const json::Value* backward = nullptr;
  for (const auto& member : v.object) {
    if (member.first == "path") {
      if (!member.second.is_string()) {
        return error(StatusCode::kFormatError, where, ": path: expected a string, got ",
                     json::serialize(member.second));
      }
      layer.path = member.second.string;
    } else if (member.first == "merge_mode") {
      CULSTM_RETURN_IF_ERROR(read_merge_mode(where, member.second, &layer.merge_mode));
    } else if (member.first == "forward") {
      forward = &member.second;
    } else if (member.first == "backward") {
      backward = &member.second;
    } else {
      return error(StatusCode::kFormatError, where, ": unexpected field '", member.first,
                   "' (a Bidirectional layer has a string path, merge_mode, forward and backward; the LSTM options "
                   "go in forward and backward)");
    }
  }
  if (layer.path.empty() || forward == nullptr || backward == nullptr) {
    return error(StatusCode::kFormatError, where,
                 ": a Bidirectional layer needs its \"path\", \"forward\" and \"backward\"");
  }
  KerasLstm f, b;
  CULSTM_RETURN_IF_ERROR(lstm_from_object(lstms, prefix, where, *forward, config.settings, &f));
  KerasSettings reversed = config.settings;  // Keras builds a backward layer going the other way
  reversed.go_backwards = !f.settings.go_backwards;
  CULSTM_RETURN_IF_ERROR(lstm_from_object(lstms, prefix, where, *backward, reversed, &b));
  layer.lstms = {f, b};
  *out = layer;
  return Status::Ok();
}

// Without "culstm.layers": every layer under the prefix, in natural order of the paths (Keras's automatic naming
// order). An LSTM belongs to a Bidirectional wrapper when it or a sibling is named as Keras names a wrapper's LSTMs.
std::vector<std::string> layer_paths_in_file(const LstmMap& lstms) {
  std::set<std::string> wrappers;
  for (const auto& kv : lstms) {
    const std::string last = last_component(kv.first);
    if (starts_with(last, "forward_") || starts_with(last, "backward_")) wrappers.insert(parent(kv.first));
  }
  std::set<std::string> paths;
  for (const auto& kv : lstms) {
    const std::string wrapper = parent(kv.first);
    paths.insert(wrappers.count(wrapper) ? wrapper : kv.first);
  }
  std::vector<std::string> order(paths.begin(), paths.end());
  std::sort(order.begin(), order.end(), natural_less);
  return order;
}

// The layers in stack order: as "culstm.layers" lists them, else every layer in the file.
Status read_stack(const SafetensorsFile& file, const LstmMap& lstms, const std::string& prefix,
                  const KerasConfig& config, std::vector<KerasStackLayer>* stack) {
  std::vector<KerasStackLayer> out;
  const auto listed = file.metadata.find(kMetaLayers);
  if (listed != file.metadata.end()) {
    json::Value root;
    const Status parsed = json::parse(listed->second, &root);
    if (!parsed.ok()) return Status(parsed.code(), str(kMetaLayers, ": ", parsed.message()));
    if (!root.is_array() || root.array.empty()) {
      return error(StatusCode::kFormatError, kMetaLayers, ": expected a non-empty JSON list of layers, got ",
                   json::serialize(root));
    }
    for (const json::Value& v : root.array) {
      KerasStackLayer layer;
      if (v.is_string()) {
        CULSTM_RETURN_IF_ERROR(layer_from_path(lstms, prefix, v.string, config, &layer));
      } else if (v.is_object()) {
        CULSTM_RETURN_IF_ERROR(layer_from_object(lstms, prefix, v, config, &layer));
      } else {
        return error(StatusCode::kFormatError, kMetaLayers, ": expected layer paths (strings) or objects, got ",
                     json::serialize(v));
      }
      out.push_back(layer);
    }
  } else {
    for (const std::string& path : layer_paths_in_file(lstms)) {
      KerasStackLayer layer;
      CULSTM_RETURN_IF_ERROR(layer_from_path(lstms, prefix, path, config, &layer));
      out.push_back(layer);
    }
  }
  std::set<std::string> used;
  for (const KerasStackLayer& layer : out) {
    for (const KerasLstm& lstm : layer.lstms) {
      if (!used.insert(lstm.path).second) {
        return error(StatusCode::kFormatError, kMetaLayers, ": layer '", prefix, lstm.path, "' is listed twice");
      }
    }
  }
  *stack = out;
  return Status::Ok();
}

// ---- step 4: what one LstmSpec can express -----------------------------------------------------------------------

// "layer 2 ('lstm_1')", "layer 1's backward LSTM ('bidirectional/lstm_1')"
std::string lstm_name(const std::vector<KerasStackLayer>& stack, std::size_t l, std::size_t d,
                      const std::string& prefix) {
  const KerasStackLayer& layer = stack[l];
  if (layer.lstms.size() == 1) return str("layer ", l + 1, " ('", prefix, layer.path, "')");
  return str("layer ", l + 1, "'s ", d ? "backward" : "forward", " LSTM ('", prefix, layer.lstms[d].path, "')");
}

// units from the recurrent kernel [units, 4 units], after checking the kernels' ranks.
Status lstm_units(const KerasCell& c, std::int64_t* units) {
  if (c.kernel == nullptr) {
    return error(StatusCode::kFormatError, "missing tensor '", parent(c.recurrent_name), "/kernel' (beside '",
                 c.recurrent_name, "')");
  }
  if (c.recurrent->shape.size() != 2 || c.recurrent->shape[0] <= 0) {
    return error(StatusCode::kShapeMismatch, "tensor '", c.recurrent_name, "': expected shape [units, 4*units], got ",
                 shape_string(c.recurrent->shape));
  }
  if (c.kernel->shape.size() != 2) {
    return error(StatusCode::kShapeMismatch, "tensor '", c.kernel_name, "': expected shape [input_size, 4*units], "
                 "got ", shape_string(c.kernel->shape));
  }
  *units = c.recurrent->shape[0];
  return Status::Ok();
}

// Every LSTM of the stack must agree with the first on what the spec holds once for all layers and directions.
Status check_same_options(const std::vector<KerasStackLayer>& stack, const std::string& prefix) {
  const KerasLstm& first = stack[0].lstms[0];
  std::int64_t first_units = 0;
  CULSTM_RETURN_IF_ERROR(lstm_units(*first.cell, &first_units));
  const bool first_bias = first.cell->bias != nullptr;
  for (std::size_t l = 0; l < stack.size(); ++l) {
    for (std::size_t d = 0; d < stack[l].lstms.size(); ++d) {
      const KerasLstm& lstm = stack[l].lstms[d];
      std::int64_t units = 0;
      CULSTM_RETURN_IF_ERROR(lstm_units(*lstm.cell, &units));
      const bool bias = lstm.cell->bias != nullptr;
      struct Option {
        const char* spec_field;  // what the LstmSpec holds once
        const char* key;         // the Keras option
        std::string value, first_value;
      };
      const Option options[] = {
          {"hidden size", "units", str(units), str(first_units)},
          {"cell and hidden activation", "activation", "'" + lstm.settings.activation + "'",
           "'" + first.settings.activation + "'"},
          {"gate activation", "recurrent_activation", "'" + lstm.settings.recurrent_activation + "'",
           "'" + first.settings.recurrent_activation + "'"},
          {"bias setting", "use_bias", python_bool(bias), python_bool(first_bias)},
          {"batch layout", "time_major", python_bool(lstm.settings.time_major),
           python_bool(first.settings.time_major)},
      };
      for (const Option& o : options) {
        if (o.value == o.first_value) continue;
        return error(StatusCode::kNotSupported, "culstm's LstmSpec has one ", o.spec_field,
                     " for all layers and directions; Keras ", lstm_name(stack, l, d, prefix), " has ", o.key, "=",
                     o.value, ", ", lstm_name(stack, 0, 0, prefix), " ", o.key, "=", o.first_value);
      }
    }
  }
  return Status::Ok();
}

// Directions: all layers Bidirectional (merge_mode concat; a forward LSTM with go_backwards=False and a backward
// one with go_backwards=True) or all unidirectional (the same go_backwards; go_backwards on one layer only).
Status check_directions(const std::vector<KerasStackLayer>& stack, const std::string& prefix) {
  const std::size_t D = stack[0].lstms.size();
  for (std::size_t l = 0; l < stack.size(); ++l) {
    const KerasStackLayer& layer = stack[l];
    if (layer.lstms.size() != D) {
      return error(StatusCode::kNotSupported, "Keras layers '", prefix, stack[0].path, "' and '", prefix, layer.path,
                   "': a stack mixing Bidirectional and unidirectional layers cannot be one culstm model (import "
                   "them separately with --prefix and culstm.layers)");
    }
    if (D == 2 && layer.merge_mode != "concat") {
      return error(StatusCode::kNotSupported, "Keras layer '", prefix, layer.path, "' (Bidirectional) has merge_mode '",
                   layer.merge_mode, "': culstm concatenates the two directions (merge_mode 'concat') only");
    }
    if (D == 2 && (layer.lstms[0].settings.go_backwards || !layer.lstms[1].settings.go_backwards)) {
      return error(StatusCode::kNotSupported, "Keras layer '", prefix, layer.path,
                   "' (Bidirectional): its forward LSTM has go_backwards=",
                   python_bool(layer.lstms[0].settings.go_backwards), " and its backward LSTM go_backwards=",
                   python_bool(layer.lstms[1].settings.go_backwards),
                   "; culstm's bidirectional direction is a forward LSTM with go_backwards=False beside a backward "
                   "one with go_backwards=True (the other way round Keras returns both halves in reversed time "
                   "order)");
    }
    if (D == 1 && layer.lstms[0].settings.go_backwards != stack[0].lstms[0].settings.go_backwards) {
      return error(StatusCode::kNotSupported, "culstm's LstmSpec has one direction for all layers; Keras ",
                   lstm_name(stack, l, 0, prefix), " has go_backwards=", python_bool(layer.lstms[0].settings.go_backwards),
                   ", ", lstm_name(stack, 0, 0, prefix), " go_backwards=",
                   python_bool(stack[0].lstms[0].settings.go_backwards));
    }
  }
  if (D == 1 && stack[0].lstms[0].settings.go_backwards && stack.size() > 1) {
    return error(StatusCode::kNotSupported, "go_backwards on ", stack.size(),
                 " stacked Keras layers: each Keras layer returns its outputs in reversed time order, so the next "
                 "layer sees a reversed sequence; culstm's reverse direction keeps outputs time-aligned. Import one "
                 "layer at a time");
  }
  return Status::Ok();
}

// ---- step 5: the spec --------------------------------------------------------------------------------------------

// The spec: what the "culstm.spec" metadata says, then what the (checked) Keras layers define.
Status spec_from_stack(const SafetensorsFile& file, const std::vector<KerasStackLayer>& stack,
                       const KerasConfig& config, const std::string& prefix, LstmSpec* out) {
  LstmSpec base;
  std::set<std::string> keys;
  CULSTM_RETURN_IF_ERROR(spec_from_metadata(file, &base, &keys));
  LstmSpec spec = base;
  const KerasLstm& first = stack[0].lstms[0];
  if (stack[0].lstms.size() == 2) {
    spec.direction = Direction::kBidirectional;
  } else {
    spec.direction = first.settings.go_backwards ? Direction::kReverse : Direction::kForward;
  }
  const std::string who = str("Keras ", lstm_name(stack, 0, 0, prefix), ": ");
  CULSTM_RETURN_IF_ERROR(keras_activation(who + "recurrent_activation", first.settings.recurrent_activation,
                                          config.major, &spec.gate_activation));
  CULSTM_RETURN_IF_ERROR(keras_activation(who + "activation", first.settings.activation, config.major,
                                          &spec.cell_activation));
  spec.hidden_activation = spec.cell_activation;
  spec.layout = first.settings.time_major ? BatchLayout::kSeqMajor : BatchLayout::kBatchMajor;
  spec.gate_clip.reset();
  spec.cell_clip.reset();
  spec.input_forget = false;
  CULSTM_RETURN_IF_ERROR(check_agreement(base, keys, spec,
                                         {"direction", "gate_activation", "cell_activation", "hidden_activation",
                                          "layout", "gate_clip", "cell_clip", "input_forget"},
                                         "the Keras layers / culstm.keras"));
  spec.hidden_size = first.cell->recurrent->shape[0];
  spec.input_size = first.cell->kernel->shape[0];
  spec.num_layers = static_cast<int>(std::min<std::size_t>(stack.size(), 1u << 20));
  spec.proj_size = 0;
  spec.peepholes = false;
  spec.bias = first.cell->bias != nullptr;
  CULSTM_RETURN_IF_ERROR(validate_inferred(spec, str("the Keras layers under prefix '", prefix, "'")));
  *out = spec;
  return Status::Ok();
}

// ---- step 6: the weights -----------------------------------------------------------------------------------------

// One LSTM's tensors, checked against the shapes of its place in the spec, in culstm's layout. Keras's gate order
// i, f, c, o is PyTorch's i, f, g, o: the matrices only need transposing. Keras has one bias: b_ih (b_hh = 0).
Status convert_lstm(const KerasCell& c, std::int64_t I, std::int64_t H, bool bias, LayerWeights* out) {
  std::vector<float> kernel, recurrent, b;
  CULSTM_RETURN_IF_ERROR(float_tensor(c.kernel_name, *c.kernel, {I, 4 * H}, &kernel));
  CULSTM_RETURN_IF_ERROR(float_tensor(c.recurrent_name, *c.recurrent, {H, 4 * H}, &recurrent));
  if (bias) CULSTM_RETURN_IF_ERROR(float_tensor(c.bias_name, *c.bias, {4 * H}, &b));
  const std::size_t rows = static_cast<std::size_t>(4 * H), in = static_cast<std::size_t>(I),
                    h = static_cast<std::size_t>(H);
  LayerWeights lw;
  lw.w_ih.resize(rows * in);
  lw.w_hh.resize(rows * h);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < in; ++k) lw.w_ih[r * in + k] = kernel[k * rows + r];
    for (std::size_t k = 0; k < h; ++k) lw.w_hh[r * h + k] = recurrent[k * rows + r];
  }
  if (bias) {
    lw.b_ih = b;
    lw.b_hh.assign(rows, 0.0f);
  }
  *out = std::move(lw);
  return Status::Ok();
}

}  // namespace

bool keras_weight_name(const std::string& name, std::string* cell, std::string* leaf) {
  std::string n = name;
  // tf.keras 2 variable names end in ":<index>".
  const std::size_t colon = n.rfind(':');
  if (colon != std::string::npos && colon + 1 < n.size() &&
      std::all_of(n.begin() + static_cast<std::ptrdiff_t>(colon + 1), n.end(),
                  [](char ch) { return ch >= '0' && ch <= '9'; })) {
    n.resize(colon);
  }
  const std::string last = last_component(n);
  if (last != "kernel" && last != "recurrent_kernel" && last != "bias") return false;
  *leaf = last;
  *cell = parent(n);
  return true;
}

bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])), db = std::isdigit(static_cast<unsigned char>(b[j]));
    if (da && db) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::size_t is = i, js = j;  // compare by value: skip leading zeros, then by length, then digit by digit
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      if (ie - i != je - j) return ie - i < je - j;  // "01" after "1"
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Status import_keras(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec_out, Weights* weights_out) {
  LstmMap lstms;
  std::string non_lstm;
  CULSTM_RETURN_IF_ERROR(collect_lstms(file, prefix, &lstms, &non_lstm));
  if (lstms.empty()) {
    const std::string hint = non_lstm.empty() ? "" : str(" ('", non_lstm, "' is a GRU or SimpleRNN weight)");
    return error(StatusCode::kFormatError, "missing tensor '", prefix,
                 "lstm/lstm_cell/recurrent_kernel': no Keras LSTM weights (<layer>/<cell>/kernel, recurrent_kernel, "
                 "bias) under prefix '", prefix, "'", hint);
  }
  KerasConfig config;
  CULSTM_RETURN_IF_ERROR(read_config(file, &config));
  std::vector<KerasStackLayer> stack;
  CULSTM_RETURN_IF_ERROR(read_stack(file, lstms, prefix, config, &stack));
  CULSTM_RETURN_IF_ERROR(check_directions(stack, prefix));
  CULSTM_RETURN_IF_ERROR(check_same_options(stack, prefix));
  LstmSpec spec;
  CULSTM_RETURN_IF_ERROR(spec_from_stack(file, stack, config, prefix, &spec));

  // Every LSTM is checked and converted before the canonical weights are allocated: their size then follows from
  // tensors that exist in the file, not from a layer count a hostile file could inflate.
  std::vector<LayerWeights> converted;
  for (int l = 0; l < spec.num_layers; ++l) {
    for (const KerasLstm& lstm : stack[static_cast<std::size_t>(l)].lstms) {
      converted.emplace_back();
      CULSTM_RETURN_IF_ERROR(
          convert_lstm(*lstm.cell, spec.layer_input_size(l), spec.hidden_size, spec.bias, &converted.back()));
    }
  }
  Weights weights = Weights::zeros_for(spec);
  const int D = spec.num_directions();
  for (int l = 0; l < spec.num_layers; ++l) {
    for (int d = 0; d < D; ++d) weights.at(l, d) = std::move(converted[static_cast<std::size_t>(l * D + d)]);
  }
  *spec_out = spec;
  *weights_out = std::move(weights);
  return Status::Ok();
}

}  // namespace internal
}  // namespace io
}  // namespace culstm
