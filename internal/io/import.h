// Importers: LSTM weights in each framework's own naming and layout, converted into culstm's canonical Weights
// (PyTorch layout, gate order i, f, g, o) plus the LstmSpec they imply. docs/formats.md ("Naming conventions")
// describes each convention, the metadata keys and what each importer checks.
//
// Every importer treats its input as hostile: a missing, mis-shaped, wrong-dtype or non-finite tensor, bad metadata
// or a corrupt .onnx file is an error naming the tensor/attribute/field (kFormatError, kShapeMismatch,
// kDtypeMismatch), an option culstm cannot express is kNotSupported naming it, and `spec`/`weights` are written
// only on success. No exception escapes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "io/safetensors.h"

namespace culstm {
namespace io {

enum class Naming : int {
  kAuto = 0,       // detected from the tensor names (see detect_naming)
  kPyTorch = 1,    // nn.LSTM state_dict: weight_ih_l{k}[_reverse], weight_hh_..., bias_ih_..., bias_hh_..., weight_hr_...
  kKeras = 2,      // Keras LSTM / Bidirectional: <layer>/lstm_cell/{kernel [I,4u], recurrent_kernel [u,4u], bias [4u]}
  kOnnx = 3,       // ONNX LSTM node inputs W [D,4H,I], R [D,4H,H], B [D,8H], P [D,3H] (gates i,o,f,c) + attributes
  kMindSpore = 4,  // MindSpore 2.x nn.LSTM parameters: PyTorch's names, layout and gate order (no projection)
};
const char* naming_name(Naming naming) noexcept;                 // "auto", "pytorch", "keras", "onnx", "mindspore"
Status parse_naming(const std::string& text, Naming* naming);   // the reverse; kInvalidArgument when unknown

struct ImportOptions {
  Naming naming = Naming::kAuto;
  std::string prefix;     // prepended to every expected name, e.g. "encoder.lstm." (PyTorch), "model/" (Keras)
  std::string onnx_node;  // .onnx files: the LSTM node to import by name; empty = the only LSTM node of the graph
};

// Metadata keys (safetensors "__metadata__"; values are JSON text). docs/formats.md documents each.
constexpr const char* kMetaSpec = "culstm.spec";               // what names cannot tell (all conventions)
constexpr const char* kMetaLayers = "culstm.layers";           // Keras: the layers in stack order (paths or objects)
constexpr const char* kMetaKeras = "culstm.keras";             // Keras: activations, go_backwards, merge_mode, ...
constexpr const char* kMetaOnnxAttributes = "onnx.attributes";  // ONNX: the LSTM node's attributes

// The convention of the tensors under `prefix`: PyTorch names (weight_ih_l0) -> kPyTorch (MindSpore 2.x files have
// the same names and read identically), W and R -> kOnnx, a .../recurrent_kernel -> kKeras. kFormatError listing
// some of the file's names when none matches, or when more than one does (pass a prefix or a naming then).
Status detect_naming(const SafetensorsFile& file, const std::string& prefix, Naming* naming);

// Infers the spec from names/shapes (plus "culstm.spec" metadata and the convention's own metadata) and converts
// the weights. With Naming::kAuto the convention is detected first.
Status import_weights(const SafetensorsFile& file, const ImportOptions& options, LstmSpec* spec, Weights* weights);

// Reads an LSTM node straight from a .onnx file: its W, R, B, P (initializers or Constant nodes) and attributes
// (direction, activations with alpha/beta, clip, input_forget, hidden_size, layout). `node_name` empty = the only
// LSTM node of the main graph. One node is one layer: a graph of stacked LSTM nodes is imported one node at a time.
Status import_onnx_file(const std::string& path, const std::string& node_name, LstmSpec* spec, Weights* weights);
// The same from an in-memory ModelProto (never reads outside [data, data + size)); used by the fuzzer and tests.
Status import_onnx_bytes(const std::uint8_t* data, std::size_t size, const std::string& node_name, LstmSpec* spec,
                         Weights* weights);

// A model file in any supported form: `.onnx` (by extension) goes through import_onnx_file, anything else is read
// as safetensors and goes through import_weights. Errors are prefixed with the path.
Status import_model_file(const std::string& path, const ImportOptions& options, LstmSpec* spec, Weights* weights);

}  // namespace io
}  // namespace culstm
