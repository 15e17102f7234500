// The Keras convention: one Keras layer per culstm layer. An LSTM layer's cell holds kernel [I, 4u],
// recurrent_kernel [u, 4u] and bias [4u] (gates i, f, c, o along the 4u axis; the transpose of PyTorch's layout; one
// bias). A Bidirectional layer holds forward_<name>/ and backward_<name>/ sub-layers. Tensor names are Keras's
// weight paths: "lstm/lstm_cell/kernel" (Keras 3), "lstm/lstm_cell/kernel:0" (tf.keras 2),
// "bidirectional/forward_lstm/lstm_cell/kernel". Metadata "culstm.layers" orders the layers, "culstm.keras" carries
// the activations, go_backwards, merge_mode, time_major and the Keras version (hard_sigmoid differs between 2 and 3).
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

struct KerasCell {
  const Array* kernel = nullptr;
  const Array* recurrent = nullptr;
  const Array* bias = nullptr;
  std::string kernel_name, recurrent_name, bias_name;
};

struct KerasLayer {
  KerasCell dirs[2];
  bool has[2] = {false, false};
};

struct KerasConfig {
  int major = 0;  // 0 = unknown
  std::string version;
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";
  bool go_backwards = false;
  std::string merge_mode = "concat";
  bool time_major = false;
};

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

Status parse_config(const std::string& text, KerasConfig* out) {
  json::Value root;
  Status parsed = json::parse(text, &root);
  if (!parsed.ok()) return Status(parsed.code(), str(kMetaKeras, ": ", parsed.message()));
  if (!root.is_object()) {
    return error(StatusCode::kFormatError, kMetaKeras, ": expected a JSON object, got ", json::type_name(root.type));
  }
  KerasConfig c;
  for (const auto& member : root.object) {
    const std::string& key = member.first;
    const json::Value& v = member.second;
    auto string_field = [&](std::string* dst) -> Status {
      if (!v.is_string()) {
        return error(StatusCode::kFormatError, kMetaKeras, ": ", key, ": expected a string, got ", json::serialize(v));
      }
      *dst = v.string;
      return Status::Ok();
    };
    auto bool_field = [&](bool* dst) -> Status {
      if (!v.is_bool()) {
        return error(StatusCode::kFormatError, kMetaKeras, ": ", key, ": expected true or false, got ",
                     json::serialize(v));
      }
      *dst = v.boolean;
      return Status::Ok();
    };
    if (key == "keras_version") {
      CULSTM_RETURN_IF_ERROR(string_field(&c.version));
      std::size_t k = 0;
      int major = 0;
      while (k < c.version.size() && k < 4 && std::isdigit(static_cast<unsigned char>(c.version[k]))) {
        major = major * 10 + (c.version[k] - '0');
        ++k;
      }
      if (k == 0) {
        return error(StatusCode::kFormatError, kMetaKeras, ": keras_version: expected a version such as \"3.4.1\", "
                     "got \"", c.version, "\"");
      }
      c.major = major;
    } else if (key == "activation") {
      CULSTM_RETURN_IF_ERROR(string_field(&c.activation));
    } else if (key == "recurrent_activation") {
      CULSTM_RETURN_IF_ERROR(string_field(&c.recurrent_activation));
    } else if (key == "go_backwards") {
      CULSTM_RETURN_IF_ERROR(bool_field(&c.go_backwards));
    } else if (key == "time_major") {
      CULSTM_RETURN_IF_ERROR(bool_field(&c.time_major));
    } else if (key == "merge_mode") {
      if (v.is_null()) {
        c.merge_mode = "null";
      } else {
        CULSTM_RETURN_IF_ERROR(string_field(&c.merge_mode));
      }
    } else {
      return error(StatusCode::kFormatError, kMetaKeras, ": unknown field '", key,
                   "' (expected keras_version, activation, recurrent_activation, go_backwards, merge_mode, "
                   "time_major)");
    }
  }
  *out = c;
  return Status::Ok();
}

// A Keras activation name (what keras.activations.serialize gives) -> culstm's.
Status keras_activation(const char* field, const std::string& name, const KerasConfig& config, Activation* out) {
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
    if (config.major == 2) {
      *out = Activation::hard_sigmoid(0.2f, 0.5f);  // Keras 2: clip(0.2 x + 0.5, 0, 1)
    } else if (config.major >= 3) {
      *out = Activation::hard_sigmoid(1.0f / 6.0f, 0.5f);  // Keras 3: relu6(x + 3) / 6
    } else {
      return error(StatusCode::kFormatError, kMetaKeras, ": ", field,
                   " is hard_sigmoid, which is 0.2x+0.5 in Keras 2 and x/6+0.5 in Keras 3: give keras_version");
    }
  } else if (name == "leaky_relu" && config.major >= 3) {
    *out = Activation::leaky_relu(0.2f);  // Keras 3's default negative_slope
  } else {
    return error(StatusCode::kNotSupported, kMetaKeras, ": ", field, " '", name,
                 "' has no culstm equivalent (supported: sigmoid, tanh, relu, linear, softsign, softplus, elu, "
                 "hard_sigmoid, and leaky_relu for Keras 3)");
  }
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
  // Group kernel / recurrent_kernel / bias by cell, and cells into layers and directions.
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
  std::map<std::string, KerasLayer> layers;
  std::set<std::string> skipped;  // recurrent cells that are not LSTMs (GRU, SimpleRNN)
  for (const auto& kv : cells) {
    if (kv.second.recurrent == nullptr) continue;  // Dense, Conv, ...: not recurrent
    const Array& rk = *kv.second.recurrent;
    if (rk.shape.size() == 2 && rk.shape[1] != 4 * rk.shape[0]) {
      skipped.insert(kv.second.recurrent_name);
      continue;
    }
    std::string path = kv.first;
    if (is_cell_component(last_component(path))) path = parent(path);
    int dir = 0;
    const std::string last = last_component(path);
    if (starts_with(last, "forward_") || starts_with(last, "backward_")) {
      dir = starts_with(last, "backward_") ? 1 : 0;
      path = parent(path);
    }
    KerasLayer& layer = layers[path];
    if (layer.has[dir]) {
      return error(StatusCode::kFormatError, "Keras layer '", prefix, path, "' has two ",
                   dir ? "backward" : "forward", " LSTM cells ('", layer.dirs[dir].recurrent_name, "' and '",
                   kv.second.recurrent_name, "')");
    }
    layer.has[dir] = true;
    layer.dirs[dir] = kv.second;
  }

  // Layer order: "culstm.layers", else natural order of the paths.
  std::vector<std::string> order;
  auto listed = file.metadata.find(kMetaLayers);
  if (listed != file.metadata.end()) {
    json::Value root;
    Status parsed = json::parse(listed->second, &root);
    if (!parsed.ok()) return Status(parsed.code(), str(kMetaLayers, ": ", parsed.message()));
    if (!root.is_array() || root.array.empty()) {
      return error(StatusCode::kFormatError, kMetaLayers, ": expected a non-empty JSON list of layer paths, got ",
                   json::serialize(root));
    }
    std::set<std::string> seen;
    for (const json::Value& v : root.array) {
      if (!v.is_string()) {
        return error(StatusCode::kFormatError, kMetaLayers, ": expected layer paths (strings), got ",
                     json::serialize(v));
      }
      if (!seen.insert(v.string).second) {
        return error(StatusCode::kFormatError, kMetaLayers, ": layer '", v.string, "' is listed twice");
      }
      if (!layers.count(v.string)) {
        std::string have;
        for (const auto& kv : layers) have += str(have.empty() ? "" : ", ", "'", kv.first, "'");
        return error(StatusCode::kFormatError, kMetaLayers, ": no Keras LSTM weights for layer '", v.string,
                     "' under prefix '", prefix, "' (expected '", prefix, v.string,
                     "/lstm_cell/kernel'; LSTM layers found: ", have.empty() ? "none" : have, ")");
      }
      order.push_back(v.string);
    }
  } else {
    for (const auto& kv : layers) order.push_back(kv.first);
    std::sort(order.begin(), order.end(), natural_less);
  }
  if (order.empty()) {
    std::string hint = skipped.empty() ? "" : str(" ('", *skipped.begin(), "' is a GRU or SimpleRNN weight)");
    return error(StatusCode::kFormatError, "missing tensor '", prefix,
                 "lstm/lstm_cell/recurrent_kernel': no Keras LSTM weights (<layer>/<cell>/kernel, recurrent_kernel, "
                 "bias) under prefix '", prefix, "'", hint);
  }

  KerasConfig config;
  auto meta = file.metadata.find(kMetaKeras);
  if (meta != file.metadata.end()) CULSTM_RETURN_IF_ERROR(parse_config(meta->second, &config));

  // The spec: what the metadata says, then what the Keras layers define.
  LstmSpec base;
  std::set<std::string> keys;
  CULSTM_RETURN_IF_ERROR(spec_from_metadata(file, &base, &keys));
  LstmSpec spec = base;
  const KerasLayer& first = layers.at(order[0]);
  const int D = first.has[1] ? 2 : 1;
  for (const std::string& path : order) {
    const KerasLayer& layer = layers.at(path);
    if (!layer.has[0]) {
      return error(StatusCode::kFormatError, "Keras layer '", prefix, path, "' has a backward LSTM ('",
                   layer.dirs[1].recurrent_name, "') but no forward one");
    }
    const int d = layer.has[1] ? 2 : 1;
    if (d != D) {
      return error(StatusCode::kNotSupported, "Keras layers '", prefix, order[0], "' and '", prefix, path,
                   "': a stack mixing Bidirectional and unidirectional layers cannot be one culstm model (import "
                   "them separately with --prefix and culstm.layers)");
    }
  }
  if (D == 2) {
    spec.direction = Direction::kBidirectional;
    if (config.merge_mode != "concat") {
      return error(StatusCode::kNotSupported, kMetaKeras, ": merge_mode '", config.merge_mode,
                   "': culstm concatenates the two directions (merge_mode 'concat') only");
    }
    if (config.go_backwards) {
      return error(StatusCode::kNotSupported, kMetaKeras,
                   ": go_backwards inside a Bidirectional wrapper swaps what its forward and backward layers do; "
                   "not supported");
    }
  } else if (config.go_backwards) {
    if (order.size() > 1) {
      return error(StatusCode::kNotSupported, kMetaKeras, ": go_backwards with ", order.size(),
                   " stacked layers: each Keras layer returns its outputs in reversed time order, so the next "
                   "layer sees a reversed sequence; culstm's reverse direction keeps outputs time-aligned. Import "
                   "one layer at a time");
    }
    spec.direction = Direction::kReverse;
  } else {
    spec.direction = Direction::kForward;
  }
  CULSTM_RETURN_IF_ERROR(keras_activation("recurrent_activation", config.recurrent_activation, config,
                                          &spec.gate_activation));
  CULSTM_RETURN_IF_ERROR(keras_activation("activation", config.activation, config, &spec.cell_activation));
  spec.hidden_activation = spec.cell_activation;
  spec.layout = config.time_major ? BatchLayout::kSeqMajor : BatchLayout::kBatchMajor;
  spec.gate_clip.reset();
  spec.cell_clip.reset();
  spec.input_forget = false;
  CULSTM_RETURN_IF_ERROR(check_agreement(base, keys, spec,
                                         {"direction", "gate_activation", "cell_activation", "hidden_activation",
                                          "layout", "gate_clip", "cell_clip", "input_forget"},
                                         "the Keras layers / culstm.keras"));

  // Sizes from the first layer's forward cell.
  const KerasCell& c0 = first.dirs[0];
  if (c0.kernel == nullptr) {
    return error(StatusCode::kFormatError, "missing tensor '", parent(c0.recurrent_name), "/kernel' (beside '",
                 c0.recurrent_name, "')");
  }
  if (c0.recurrent->shape.size() != 2 || c0.recurrent->shape[0] <= 0) {
    return error(StatusCode::kShapeMismatch, "tensor '", c0.recurrent_name, "': expected shape [units, 4*units], got ",
                 shape_string(c0.recurrent->shape));
  }
  if (c0.kernel->shape.size() != 2) {
    return error(StatusCode::kShapeMismatch, "tensor '", c0.kernel_name, "': expected shape [input_size, 4*units], "
                 "got ", shape_string(c0.kernel->shape));
  }
  spec.hidden_size = c0.recurrent->shape[0];
  spec.input_size = c0.kernel->shape[0];
  spec.num_layers = static_cast<int>(std::min<std::size_t>(order.size(), 1u << 20));
  spec.proj_size = 0;
  spec.peepholes = false;
  spec.bias = c0.bias != nullptr;
  CULSTM_RETURN_IF_ERROR(validate_inferred(spec, str("the Keras layers under prefix '", prefix, "'")));

  // Every cell is checked and converted before the canonical weights are allocated: their size then follows from
  // tensors that exist in the file, not from a layer count a hostile file could inflate.
  const std::int64_t H = spec.hidden_size;
  struct Converted {
    std::vector<float> kernel, recurrent, bias;
  };
  std::vector<Converted> converted(static_cast<std::size_t>(spec.num_layers) * static_cast<std::size_t>(D));
  for (int l = 0; l < spec.num_layers; ++l) {
    const KerasLayer& layer = layers.at(order[static_cast<std::size_t>(l)]);
    const std::int64_t I = spec.layer_input_size(l);
    for (int d = 0; d < D; ++d) {
      const KerasCell& c = layer.dirs[d];
      if (c.kernel == nullptr) {
        return error(StatusCode::kFormatError, "missing tensor '", parent(c.recurrent_name), "/kernel' (beside '",
                     c.recurrent_name, "')");
      }
      if ((c.bias != nullptr) != spec.bias) {
        return error(StatusCode::kFormatError, "inconsistent bias: ", c.bias ? "tensor '" + c.bias_name + "' is present"
                                                                         : "missing tensor '" +
                                                                               parent(c.recurrent_name) + "/bias'",
                     " while '", c0.bias ? c0.bias_name : c0.recurrent_name, "' ",
                     c0.bias ? "has one" : "has none", " (use_bias must be the same for every layer)");
      }
      Converted& v = converted[static_cast<std::size_t>(l * D + d)];
      CULSTM_RETURN_IF_ERROR(float_tensor(c.kernel_name, *c.kernel, {I, 4 * H}, &v.kernel));
      CULSTM_RETURN_IF_ERROR(float_tensor(c.recurrent_name, *c.recurrent, {H, 4 * H}, &v.recurrent));
      if (c.bias) CULSTM_RETURN_IF_ERROR(float_tensor(c.bias_name, *c.bias, {4 * H}, &v.bias));
    }
  }
  Weights weights = Weights::zeros_for(spec);
  for (int l = 0; l < spec.num_layers; ++l) {
    const std::size_t rows = static_cast<std::size_t>(4 * H), in = static_cast<std::size_t>(spec.layer_input_size(l)),
                      h = static_cast<std::size_t>(H);
    for (int d = 0; d < D; ++d) {
      const Converted& v = converted[static_cast<std::size_t>(l * D + d)];
      LayerWeights& lw = weights.at(l, d);
      // Keras gate order i, f, c, o is PyTorch's i, f, g, o: the matrices only need transposing.
      for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t k = 0; k < in; ++k) lw.w_ih[r * in + k] = v.kernel[k * rows + r];
        for (std::size_t k = 0; k < h; ++k) lw.w_hh[r * h + k] = v.recurrent[k * rows + r];
      }
      if (spec.bias) {
        lw.b_ih = v.bias;  // Keras has one bias
        std::fill(lw.b_hh.begin(), lw.b_hh.end(), 0.0f);
      }
    }
  }
  *spec_out = spec;
  *weights_out = std::move(weights);
  return Status::Ok();
}

}  // namespace internal
}  // namespace io
}  // namespace culstm
