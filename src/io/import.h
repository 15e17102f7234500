// Importers: LSTM weights in each framework's own naming and layout, converted into culstm's canonical Weights
// (PyTorch layout, gate order i, f, g, o) plus the LstmSpec they imply. docs/formats.md describes each convention.
#pragma once

#include <string>

#include "culstm/culstm.hpp"
#include "io/safetensors.h"

namespace culstm {
namespace io {

enum class Naming : int {
  kAuto = 0,       // detected from the tensor names
  kPyTorch = 1,    // nn.LSTM state_dict: weight_ih_l{k}[_reverse], ...
  kKeras = 2,      // Keras LSTM / Bidirectional: kernel [I,4u], recurrent_kernel [u,4u], bias [4u]; gates i,f,c,o
  kOnnx = 3,       // ONNX LSTM node inputs W [D,4H,I], R [D,4H,H], B [D,8H], P [D,3H]; gates i,o,f,c
  kMindSpore = 4,  // MindSpore nn.LSTM parameters
};
const char* naming_name(Naming naming) noexcept;                 // "auto", "pytorch", "keras", "onnx", "mindspore"
Status parse_naming(const std::string& text, Naming* naming);   // the reverse; kInvalidArgument when unknown

struct ImportOptions {
  Naming naming = Naming::kAuto;
  std::string prefix;  // prepended to every expected name, e.g. "encoder.lstm."
};

// Infers the spec from names/shapes (plus "culstm.spec" metadata and, for ONNX, the node attributes stored as
// metadata) and converts the weights. kFormatError / kShapeMismatch name the missing or mis-shaped tensor.
Status import_weights(const SafetensorsFile& file, const ImportOptions& options, LstmSpec* spec, Weights* weights);

// Reads an LSTM node straight from a .onnx file: its initializers W, R, B, P and attributes (direction,
// activations with alpha/beta, clip, input_forget, hidden_size, layout). `node_name` empty = the only LSTM node.
Status import_onnx_file(const std::string& path, const std::string& node_name, LstmSpec* spec, Weights* weights);

}  // namespace io
}  // namespace culstm
