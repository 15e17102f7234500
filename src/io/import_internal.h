// Pieces the importers (import.cpp, import_keras.cpp, import_onnx.cpp) share. Internal to src/io.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "io/array.h"
#include "io/import.h"
#include "io/safetensors.h"

namespace culstm {
namespace io {
namespace internal {

// `a`'s values as f32 after checking that it is a floating-point tensor (f32/f16/bf16/f64) of exactly `shape` whose
// bytes match the shape and whose values are all finite. Errors name the tensor `what`.
Status float_tensor(const std::string& what, const Array& a, const std::vector<std::int64_t>& shape,
                    std::vector<float>* out);
// The same checks without the shape (used before the shape is known): floating-point dtype, bytes match.
Status check_float_dtype(const std::string& what, const Array& a);

// The spec as the "culstm.spec" metadata sets it (defaults where absent), and the JSON keys the metadata gave.
Status spec_from_metadata(const SafetensorsFile& file, LstmSpec* spec, std::set<std::string>* keys);

// For each key in `convention_keys` that the culstm.spec metadata also gave (`metadata_keys`): the two specs must
// agree on that field, else kFormatError naming the field, both values and `convention` ("onnx.attributes").
Status check_agreement(const LstmSpec& from_metadata, const std::set<std::string>& metadata_keys,
                       const LstmSpec& from_convention, const std::vector<std::string>& convention_keys,
                       const std::string& convention);

// Validates the spec the importer inferred; the message carries the spec and `source`.
Status validate_inferred(const LstmSpec& spec, const std::string& source);

// ---- ONNX --------------------------------------------------------------------------------------------------------

// The attributes of an ONNX LSTM node that culstm reads (from a .onnx node or the "onnx.attributes" metadata).
struct OnnxLstmAttributes {
  std::string direction = "forward";
  bool has_hidden_size = false;
  std::int64_t hidden_size = 0;
  std::vector<std::string> activations;  // empty = defaults (Sigmoid, Tanh, Tanh per direction)
  std::vector<float> activation_alpha, activation_beta;
  bool has_clip = false;
  float clip = 0.0f;
  std::int64_t input_forget = 0;
  std::int64_t layout = 0;
};

// "onnx.attributes" JSON -> attributes. Unknown keys are errors.
Status onnx_attributes_from_json(const std::string& text, OnnxLstmAttributes* out);

// The ONNX tensors of one LSTM node (nullptr when absent: B and P are optional) and their names for messages.
struct OnnxLstmTensors {
  const Array* W = nullptr;
  const Array* R = nullptr;
  const Array* B = nullptr;
  const Array* P = nullptr;
  std::string W_name = "W", R_name = "R", B_name = "B", P_name = "P";
};

// W [D,4H,I], R [D,4H,H], B [D,8H], P [D,3H] (gates i,o,f,c; peepholes i,o,f) + attributes -> canonical.
// `base` carries what the culstm.spec metadata set; `metadata_keys` its keys (checked for agreement).
Status onnx_to_canonical(const OnnxLstmAttributes& attributes, const OnnxLstmTensors& tensors, const LstmSpec& base,
                         const std::set<std::string>& metadata_keys, LstmSpec* spec, Weights* weights);

// The ONNX convention in a safetensors file: tensors <prefix>W, R, B, P and "onnx.attributes".
Status import_onnx_safetensors(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec,
                               Weights* weights);

// ---- Keras -------------------------------------------------------------------------------------------------------

Status import_keras(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec, Weights* weights);
// Whether `name` (prefix removed) is a Keras LSTM weight: its last path component, without a ":0" suffix, is
// kernel, recurrent_kernel or bias. `leaf` receives that component, `cell` the path before it.
bool keras_weight_name(const std::string& name, std::string* cell, std::string* leaf);
// Natural order: "lstm_2" < "lstm_10" (digit runs compare by value).
bool natural_less(const std::string& a, const std::string& b);

}  // namespace internal
}  // namespace io
}  // namespace culstm
