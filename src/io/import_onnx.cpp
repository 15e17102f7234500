// The ONNX convention: one LSTM node's W [D,4H,I], R [D,4H,H], B [D,8H] (Wb then Rb), P [D,3H] with gates in the
// order i, o, f, c (peepholes i, o, f), plus the node's attributes. Read from a safetensors file (tensors W, R, B, P
// under a prefix, attributes as "onnx.attributes" metadata) or straight from a .onnx file (onnx.cpp parses it).
#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <deque>
#include <exception>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "detail.h"
#include "io/import.h"
#include "io/import_internal.h"
#include "io/json.h"
#include "io/onnx.h"

namespace culstm {
namespace io {

using detail::error;
using detail::str;

namespace internal {
namespace {

// ONNX's LSTM gate blocks are i, o, f, c; culstm's are i, f, g(=c), o. kOnnxBlock[canonical gate] = ONNX block.
constexpr int kOnnxBlock[4] = {0, 2, 3, 1};

struct OnnxActivation {
  const char* name;  // lower case, as ONNX Runtime compares them
  ActivationKind kind;
  bool uses_alpha, uses_beta;
};
// Which activations consume an alpha and/or a beta from activation_alpha/activation_beta (ONNX Runtime's table).
const OnnxActivation kOnnxActivations[] = {
    {"sigmoid", ActivationKind::kSigmoid, false, false},
    {"tanh", ActivationKind::kTanh, false, false},
    {"relu", ActivationKind::kRelu, false, false},
    {"affine", ActivationKind::kAffine, true, true},
    {"leakyrelu", ActivationKind::kLeakyRelu, true, false},
    {"thresholdedrelu", ActivationKind::kThresholdedRelu, true, false},
    {"scaledtanh", ActivationKind::kScaledTanh, true, true},
    {"hardsigmoid", ActivationKind::kHardSigmoid, true, true},
    {"elu", ActivationKind::kElu, true, false},
    {"softsign", ActivationKind::kSoftsign, false, false},
    {"softplus", ActivationKind::kSoftplus, false, false},
};

// alpha/beta when the node's lists do not provide them: what ONNX Runtime uses, since an imported model must give
// the answers the framework gives. Measured against onnxruntime 1.32 (tests/conformance: onnx_default_alpha_*):
// LeakyRelu 0.01, HardSigmoid 0.2/0.5 and Elu 1 (the standalone operators' defaults), but 0 for Affine,
// ThresholdedRelu and ScaledTanh (ONNX leaves these unspecified for LSTM).
Activation default_activation(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::kAffine: return Activation::affine(0.0f, 0.0f);
    case ActivationKind::kLeakyRelu: return Activation::leaky_relu();
    case ActivationKind::kThresholdedRelu: return Activation::thresholded_relu(0.0f);
    case ActivationKind::kScaledTanh: return Activation::scaled_tanh(0.0f, 0.0f);
    case ActivationKind::kHardSigmoid: return Activation::hard_sigmoid();
    case ActivationKind::kElu: return Activation::elu();
    default: return Activation{kind, 0.0f, 0.0f};
  }
}

// Resolves activations (f, g, h per direction) with their alpha/beta consumed in order, as ONNX Runtime does: each
// activation that takes an alpha (beta) takes the next unused value of activation_alpha (activation_beta), or the
// operator's default when the list is exhausted.
Status resolve_activations(const OnnxLstmAttributes& a, int D, std::vector<Activation>* out) {
  std::vector<std::string> names = a.activations;
  if (names.empty()) {
    for (int d = 0; d < D; ++d) names.insert(names.end(), {"Sigmoid", "Tanh", "Tanh"});
  }
  if (names.size() != static_cast<std::size_t>(3 * D)) {
    return error(StatusCode::kFormatError, "onnx attribute activations: expected ", 3 * D,
                 " names (f, g, h for each of the ", D, " direction", D == 1 ? "" : "s", "), got ", names.size());
  }
  std::size_t next_alpha = 0, next_beta = 0;
  out->clear();
  for (const std::string& name : names) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const OnnxActivation* found = nullptr;
    for (const OnnxActivation& candidate : kOnnxActivations) {
      if (lower == candidate.name) found = &candidate;
    }
    if (found == nullptr) {
      return error(StatusCode::kNotSupported, "onnx attribute activations: unknown activation '", name,
                   "' (expected one of Sigmoid, Tanh, Relu, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, "
                   "HardSigmoid, Elu, Softsign, Softplus)");
    }
    Activation act = default_activation(found->kind);
    if (found->uses_alpha && next_alpha < a.activation_alpha.size()) act.alpha = a.activation_alpha[next_alpha++];
    if (found->uses_beta && next_beta < a.activation_beta.size()) act.beta = a.activation_beta[next_beta++];
    out->push_back(act);
  }
  return Status::Ok();
}

std::string activation_text(const Activation& a) {
  return str(activation_kind_name(a.kind), "(alpha=", a.alpha, ", beta=", a.beta, ")");
}

}  // namespace

Status onnx_attributes_from_json(const std::string& text, OnnxLstmAttributes* out) {
  json::Value root;
  Status parsed = json::parse(text, &root);
  if (!parsed.ok()) return Status(parsed.code(), str(kMetaOnnxAttributes, ": ", parsed.message()));
  if (!root.is_object()) {
    return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": expected a JSON object, got ",
                 json::type_name(root.type));
  }
  OnnxLstmAttributes a;
  auto integer = [&](const std::string& key, const json::Value& v, std::int64_t* dst) -> Status {
    if (!v.is_number() || !v.is_integer) {
      return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": ", key, ": expected an integer, got ",
                   json::serialize(v));
    }
    *dst = v.integer;
    return Status::Ok();
  };
  auto number = [&](const std::string& key, const json::Value& v, float* dst) -> Status {
    if (!v.is_number() || !(std::fabs(v.number) <= FLT_MAX)) {
      return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": ", key, ": expected a finite number, got ",
                   json::serialize(v));
    }
    *dst = static_cast<float>(v.number);
    return Status::Ok();
  };
  for (const auto& member : root.object) {
    const std::string& key = member.first;
    const json::Value& v = member.second;
    if (key == "direction") {
      if (!v.is_string()) {
        return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": direction: expected a string, got ",
                     json::serialize(v));
      }
      a.direction = v.string;
    } else if (key == "hidden_size") {
      CULSTM_RETURN_IF_ERROR(integer(key, v, &a.hidden_size));
      a.has_hidden_size = true;
    } else if (key == "activations") {
      if (!v.is_array()) {
        return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": activations: expected a list of strings");
      }
      for (const json::Value& e : v.array) {
        if (!e.is_string()) {
          return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": activations: expected strings, got ",
                       json::serialize(e));
        }
        a.activations.push_back(e.string);
      }
    } else if (key == "activation_alpha" || key == "activation_beta") {
      if (!v.is_array()) {
        return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": ", key, ": expected a list of numbers");
      }
      std::vector<float>& dst = key == "activation_alpha" ? a.activation_alpha : a.activation_beta;
      for (const json::Value& e : v.array) {
        float f = 0.0f;
        CULSTM_RETURN_IF_ERROR(number(key, e, &f));
        dst.push_back(f);
      }
    } else if (key == "clip") {
      if (!v.is_null()) {
        CULSTM_RETURN_IF_ERROR(number(key, v, &a.clip));
        a.has_clip = true;
      }
    } else if (key == "input_forget") {
      CULSTM_RETURN_IF_ERROR(integer(key, v, &a.input_forget));
    } else if (key == "layout") {
      CULSTM_RETURN_IF_ERROR(integer(key, v, &a.layout));
    } else {
      return error(StatusCode::kFormatError, kMetaOnnxAttributes, ": unknown attribute '", key,
                   "' (an ONNX LSTM has direction, hidden_size, activations, activation_alpha, activation_beta, "
                   "clip, input_forget, layout)");
    }
  }
  *out = a;
  return Status::Ok();
}

Status onnx_to_canonical(const OnnxLstmAttributes& attributes, const OnnxLstmTensors& t, const LstmSpec& base,
                         const std::set<std::string>& metadata_keys, LstmSpec* spec_out, Weights* weights_out) {
  LstmSpec spec = base;
  if (attributes.direction == "forward") {
    spec.direction = Direction::kForward;
  } else if (attributes.direction == "reverse") {
    spec.direction = Direction::kReverse;
  } else if (attributes.direction == "bidirectional") {
    spec.direction = Direction::kBidirectional;
  } else {
    return error(StatusCode::kFormatError, "onnx attribute direction: expected forward, reverse or bidirectional, "
                 "got '", attributes.direction, "'");
  }
  const int D = spec.num_directions();

  std::vector<Activation> acts;
  CULSTM_RETURN_IF_ERROR(resolve_activations(attributes, D, &acts));
  if (D == 2) {
    const char* role[3] = {"f (gates)", "g (cell input)", "h (output)"};
    for (int k = 0; k < 3; ++k) {
      const Activation& fw = acts[static_cast<std::size_t>(k)];
      const Activation& bw = acts[static_cast<std::size_t>(3 + k)];
      if (fw.kind != bw.kind || fw.alpha != bw.alpha || fw.beta != bw.beta) {
        return error(StatusCode::kNotSupported, "onnx attribute activations: activation ", role[k],
                     " differs between the directions (forward ", activation_text(fw), ", reverse ",
                     activation_text(bw), "); culstm has one set of activations per model");
      }
    }
  }
  spec.gate_activation = acts[0];
  spec.cell_activation = acts[1];
  spec.hidden_activation = acts[2];
  if (attributes.has_clip) {
    if (!(attributes.clip > 0.0f)) {
      return error(StatusCode::kFormatError, "onnx attribute clip: expected a positive threshold, got ",
                   attributes.clip);
    }
    spec.gate_clip = attributes.clip;
  } else {
    spec.gate_clip.reset();
  }
  if (attributes.input_forget != 0 && attributes.input_forget != 1) {
    return error(StatusCode::kFormatError, "onnx attribute input_forget: expected 0 or 1, got ",
                 attributes.input_forget);
  }
  spec.input_forget = attributes.input_forget == 1;
  if (attributes.layout != 0 && attributes.layout != 1) {
    return error(StatusCode::kFormatError, "onnx attribute layout: expected 0 or 1, got ", attributes.layout);
  }
  spec.layout = attributes.layout == 1 ? BatchLayout::kBatchMajor : BatchLayout::kSeqMajor;
  spec.cell_clip.reset();  // ONNX has no cell clip (its `clip` is culstm's gate_clip)
  CULSTM_RETURN_IF_ERROR(check_agreement(base, metadata_keys, spec,
                                         {"direction", "gate_activation", "cell_activation", "hidden_activation",
                                          "gate_clip", "cell_clip", "input_forget", "layout"},
                                         "the ONNX attributes"));

  // Sizes: R [D, 4H, H] gives H, W [D, 4H, I] gives I.
  if (t.W == nullptr) return error(StatusCode::kFormatError, "missing tensor '", t.W_name, "' (W [D, 4H, I])");
  if (t.R == nullptr) return error(StatusCode::kFormatError, "missing tensor '", t.R_name, "' (R [D, 4H, H])");
  if (t.R->shape.size() != 3 || t.R->shape[2] <= 0) {
    return error(StatusCode::kShapeMismatch, "tensor '", t.R_name, "': expected shape [", D,
                 ", 4*hidden_size, hidden_size], got ", shape_string(t.R->shape));
  }
  if (t.W->shape.size() != 3) {
    return error(StatusCode::kShapeMismatch, "tensor '", t.W_name, "': expected shape [", D,
                 ", 4*hidden_size, input_size], got ", shape_string(t.W->shape));
  }
  const std::int64_t H = t.R->shape[2];
  if (attributes.has_hidden_size && attributes.hidden_size != H) {
    return error(StatusCode::kShapeMismatch, "onnx attribute hidden_size is ", attributes.hidden_size, " but '",
                 t.R_name, "' has shape ", shape_string(t.R->shape), " (hidden_size ", H, ")");
  }
  spec.hidden_size = H;
  spec.input_size = t.W->shape[2];
  spec.num_layers = 1;
  spec.proj_size = 0;
  spec.bias = t.B != nullptr;
  spec.peepholes = t.P != nullptr;
  CULSTM_RETURN_IF_ERROR(validate_inferred(spec, "the ONNX LSTM tensors and attributes"));

  const std::int64_t I = spec.input_size;
  std::vector<float> W, R, B, P;
  CULSTM_RETURN_IF_ERROR(float_tensor(t.W_name, *t.W, {D, 4 * H, I}, &W));
  CULSTM_RETURN_IF_ERROR(float_tensor(t.R_name, *t.R, {D, 4 * H, H}, &R));
  if (t.B) CULSTM_RETURN_IF_ERROR(float_tensor(t.B_name, *t.B, {D, 8 * H}, &B));
  if (t.P) CULSTM_RETURN_IF_ERROR(float_tensor(t.P_name, *t.P, {D, 3 * H}, &P));

  Weights weights = Weights::zeros_for(spec);
  const std::size_t h = static_cast<std::size_t>(H), in = static_cast<std::size_t>(I);
  for (int d = 0; d < D; ++d) {
    LayerWeights& lw = weights.at(0, d);
    const std::size_t dd = static_cast<std::size_t>(d);
    for (std::size_t g = 0; g < 4; ++g) {
      const std::size_t block = static_cast<std::size_t>(kOnnxBlock[g]);
      for (std::size_t j = 0; j < h; ++j) {
        const std::size_t row = g * h + j, onnx_row = block * h + j;
        std::copy_n(&W[(dd * 4 * h + onnx_row) * in], in, &lw.w_ih[row * in]);
        std::copy_n(&R[(dd * 4 * h + onnx_row) * h], h, &lw.w_hh[row * h]);
        if (spec.bias) {
          lw.b_ih[row] = B[dd * 8 * h + onnx_row];
          lw.b_hh[row] = B[dd * 8 * h + 4 * h + onnx_row];
        }
      }
    }
    if (spec.peepholes) {  // ONNX P is i, o, f; culstm's peephole is i, f, o
      const float* p = &P[dd * 3 * h];
      std::copy_n(p, h, &lw.peephole[0]);          // i
      std::copy_n(p + 2 * h, h, &lw.peephole[h]);  // f
      std::copy_n(p + h, h, &lw.peephole[2 * h]);  // o
    }
  }
  *spec_out = spec;
  *weights_out = std::move(weights);
  return Status::Ok();
}

Status import_onnx_safetensors(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec,
                               Weights* weights) {
  LstmSpec base;
  std::set<std::string> keys;
  CULSTM_RETURN_IF_ERROR(spec_from_metadata(file, &base, &keys));
  OnnxLstmAttributes attributes;
  auto meta = file.metadata.find(kMetaOnnxAttributes);
  if (meta != file.metadata.end()) CULSTM_RETURN_IF_ERROR(onnx_attributes_from_json(meta->second, &attributes));
  OnnxLstmTensors t;
  t.W_name = prefix + "W";
  t.R_name = prefix + "R";
  t.B_name = prefix + "B";
  t.P_name = prefix + "P";
  auto find = [&](const std::string& name) -> const Array* {
    auto it = file.tensors.find(name);
    return it == file.tensors.end() ? nullptr : &it->second;
  };
  t.W = find(t.W_name);
  t.R = find(t.R_name);
  t.B = find(t.B_name);
  t.P = find(t.P_name);
  return onnx_to_canonical(attributes, t, base, keys, spec, weights);
}

}  // namespace internal

namespace {

// Attributes of an LSTM node -> OnnxLstmAttributes, checking each one's type.
Status node_attributes(const onnx::Node& node, internal::OnnxLstmAttributes* out) {
  internal::OnnxLstmAttributes a;
  std::set<std::string> seen;
  for (const onnx::Attribute& attr : node.attributes) {
    const std::string where = str("LSTM node '", node.name, "' attribute '", attr.name, "'");
    if (!seen.insert(attr.name).second) return error(StatusCode::kFormatError, where, ": given twice");
    auto need = [&](bool present, const char* what) -> Status {
      if (present) return Status::Ok();
      return error(StatusCode::kFormatError, where, ": expected ", what);
    };
    if (attr.name == "direction") {
      CULSTM_RETURN_IF_ERROR(need(attr.has_s, "a string"));
      a.direction = attr.s;
    } else if (attr.name == "hidden_size") {
      CULSTM_RETURN_IF_ERROR(need(attr.has_i, "an int"));
      a.hidden_size = attr.i;
      a.has_hidden_size = true;
    } else if (attr.name == "activations") {
      CULSTM_RETURN_IF_ERROR(need(!attr.strings.empty() || attr.type == 8, "a list of strings"));
      a.activations = attr.strings;
    } else if (attr.name == "activation_alpha" || attr.name == "activation_beta") {
      CULSTM_RETURN_IF_ERROR(need(!attr.floats.empty() || attr.type == 6, "a list of floats"));
      (attr.name == "activation_alpha" ? a.activation_alpha : a.activation_beta) = attr.floats;
    } else if (attr.name == "clip") {
      CULSTM_RETURN_IF_ERROR(need(attr.has_f, "a float"));
      a.has_clip = true;
      a.clip = attr.f;
    } else if (attr.name == "input_forget") {
      CULSTM_RETURN_IF_ERROR(need(attr.has_i, "an int"));
      a.input_forget = attr.i;
    } else if (attr.name == "layout") {
      CULSTM_RETURN_IF_ERROR(need(attr.has_i, "an int"));
      a.layout = attr.i;
    } else if (attr.name == "output_sequence") {
      // opset 1 only: whether Y is produced; no effect on the weights or the computation.
    } else {
      return error(StatusCode::kNotSupported, where, ": unknown LSTM attribute");
    }
  }
  *out = a;
  return Status::Ok();
}

bool all_zero(const Array& a) {
  for (std::uint8_t b : a.bytes) {
    if (b != 0) return false;
  }
  return true;  // +0.0 in every float format is all-zero bytes (a -0.0 state is also refused, harmlessly)
}

// The graph's LSTM node named `node_name`, or its only LSTM node when `node_name` is empty.
Status find_lstm_node(const onnx::Graph& graph, const std::string& node_name, const onnx::Node** out) {
  const onnx::Node* node = nullptr;
  std::string lstm_names;
  int lstm_count = 0;
  for (const onnx::Node& n : graph.nodes) {
    if (n.op_type != "LSTM" || !(n.domain.empty() || n.domain == "ai.onnx")) continue;
    ++lstm_count;
    lstm_names += str(lstm_names.empty() ? "" : ", ", "'", n.name, "'");
    if (node_name.empty() ? lstm_count == 1 : n.name == node_name) node = &n;
  }
  if (lstm_count == 0) {
    return error(StatusCode::kFormatError, "the ONNX graph has no LSTM node (", graph.nodes.size(),
                 " nodes in the main graph; nodes inside subgraphs are not searched)");
  }
  if (node_name.empty() && lstm_count > 1) {
    return error(StatusCode::kInvalidArgument, "the ONNX graph has ", lstm_count, " LSTM nodes (", lstm_names,
                 "): choose one with --onnx-node (culstm imports one node, i.e. one layer, at a time)");
  }
  if (node == nullptr) {
    return error(StatusCode::kInvalidArgument, "the ONNX graph has no LSTM node named '", node_name, "' (it has ",
                 lstm_names, ")");
  }
  *out = node;
  return Status::Ok();
}

// The graph's constant tensors by name, from initializers or Constant nodes, converted to Arrays that this object
// owns (a deque: pointers to its elements stay valid while more are added).
class GraphConstants {
 public:
  explicit GraphConstants(const onnx::Graph& graph) : graph_(graph) {}

  // *out: the constant named `name`, or null when the name is empty or the tensor is computed in the graph.
  Status find(const std::string& name, const Array** out) {
    *out = nullptr;
    if (name.empty()) return Status::Ok();
    const onnx::Tensor* tensor = nullptr;
    for (const onnx::Tensor& init : graph_.initializers) {
      if (init.name == name) tensor = &init;
    }
    for (const onnx::Node& n : graph_.nodes) {
      if (tensor != nullptr) break;
      if (n.op_type != "Constant" || n.outputs.size() != 1 || n.outputs[0] != name) continue;
      for (const onnx::Attribute& attr : n.attributes) {
        if (attr.name == "value" && attr.has_t) tensor = &attr.t[0];
      }
    }
    if (tensor == nullptr) return Status::Ok();
    arrays_.emplace_back();
    if (tensor->name.empty()) {  // a Constant's value may be unnamed: name it after the node output in messages
      onnx::Tensor named = *tensor;
      named.name = name;
      CULSTM_RETURN_IF_ERROR(onnx::tensor_to_array(named, &arrays_.back()));
    } else {
      CULSTM_RETURN_IF_ERROR(onnx::tensor_to_array(*tensor, &arrays_.back()));
    }
    *out = &arrays_.back();
    return Status::Ok();
  }

 private:
  const onnx::Graph& graph_;
  std::deque<Array> arrays_;
};

// The node's k-th input name; empty when the node has fewer inputs (ONNX's optional inputs may also be "").
std::string node_input(const onnx::Node& node, std::size_t k) {
  return k < node.inputs.size() ? node.inputs[k] : std::string();
}

// The node's weight inputs W, R, B, P (inputs 1, 2, 3, 7), each a constant of the graph; W and R are required.
Status node_weights(const onnx::Node& node, const std::string& label, GraphConstants* constants,
                    internal::OnnxLstmTensors* t) {
  const char* roles[4] = {"W", "R", "B", "P"};
  const std::size_t index[4] = {1, 2, 3, 7};
  const Array** slots[4] = {&t->W, &t->R, &t->B, &t->P};
  std::string* names[4] = {&t->W_name, &t->R_name, &t->B_name, &t->P_name};
  for (int k = 0; k < 4; ++k) {
    const std::string name = node_input(node, index[k]);
    *names[k] = name.empty() ? str(roles[k], " of ", label) : name;
    CULSTM_RETURN_IF_ERROR(constants->find(name, slots[k]));
    if (!name.empty() && *slots[k] == nullptr) {
      return error(StatusCode::kNotSupported, label, ": its ", roles[k], " input '", name,
                   "' is computed in the graph, not stored as an initializer or Constant; culstm reads constant "
                   "weights only");
    }
  }
  if (t->W == nullptr || t->R == nullptr) {
    return error(StatusCode::kFormatError, label, ": missing its ", t->W == nullptr ? "W" : "R", " input");
  }
  return Status::Ok();
}

// Constant initial states (inputs 5, 6) cannot live in Weights: accept zeros (the default), refuse anything else.
Status check_constant_states(const onnx::Node& node, const std::string& label, GraphConstants* constants) {
  for (std::size_t k : {std::size_t{5}, std::size_t{6}}) {
    const Array* state = nullptr;
    CULSTM_RETURN_IF_ERROR(constants->find(node_input(node, k), &state));
    if (state != nullptr && !all_zero(*state)) {
      return error(StatusCode::kNotSupported, label, ": its ", k == 5 ? "initial_h" : "initial_c", " input '",
                   node_input(node, k), "' is a non-zero constant; culstm takes initial states at run time (pass it as ",
                   k == 5 ? "--h0" : "--c0", ")");
    }
  }
  return Status::Ok();
}

Status import_graph(const onnx::Graph& graph, const std::string& node_name, LstmSpec* spec, Weights* weights) {
  const onnx::Node* node = nullptr;
  CULSTM_RETURN_IF_ERROR(find_lstm_node(graph, node_name, &node));
  const std::string label = str("LSTM node '", node->name, "'");
  // Its inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P.
  if (node->inputs.size() > 8) {
    return error(StatusCode::kFormatError, label, ": has ", node->inputs.size(), " inputs; an ONNX LSTM has at most 8");
  }
  GraphConstants constants(graph);
  internal::OnnxLstmTensors t;
  CULSTM_RETURN_IF_ERROR(node_weights(*node, label, &constants, &t));
  CULSTM_RETURN_IF_ERROR(check_constant_states(*node, label, &constants));
  internal::OnnxLstmAttributes attributes;
  CULSTM_RETURN_IF_ERROR(node_attributes(*node, &attributes));
  return internal::onnx_to_canonical(attributes, t, LstmSpec(), {}, spec, weights);
}

}  // namespace

Status import_onnx_bytes(const std::uint8_t* data, std::size_t size, const std::string& node_name, LstmSpec* spec,
                         Weights* weights) {
  if (spec == nullptr || weights == nullptr) {
    return Status(StatusCode::kNullPointer, "import_onnx: spec and weights must not be null");
  }
  try {
    onnx::Graph graph;
    CULSTM_RETURN_IF_ERROR(onnx::parse_model(data, size, &graph));
    LstmSpec s;
    Weights w;
    CULSTM_RETURN_IF_ERROR(import_graph(graph, node_name, &s, &w));
    CULSTM_RETURN_IF_ERROR(w.check_against(s));
    *spec = s;
    *weights = std::move(w);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kFormatError, "import_onnx: out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, str("import_onnx: unexpected exception: ", e.what()));
  }
}

Status import_onnx_file(const std::string& path, const std::string& node_name, LstmSpec* spec, Weights* weights) {
  std::vector<std::uint8_t> bytes;
  CULSTM_RETURN_IF_ERROR(read_file(path, &bytes));
  Status status = import_onnx_bytes(bytes.data(), bytes.size(), node_name, spec, weights);
  if (!status.ok()) return Status(status.code(), path + ": " + status.message());
  return status;
}

}  // namespace io
}  // namespace culstm
