// Model files: LSTM weights in safetensors with PyTorch nn.LSTM names, plus culstm's spec metadata.
//   weight_ih_l{k}[_reverse] [4H, I_k]   weight_hh_l{k}[_reverse] [4H, R]   bias_ih_l{k}[_reverse] [4H]
//   bias_hh_l{k}[_reverse] [4H]          weight_hr_l{k}[_reverse] [P, H]    peephole_l{k}[_reverse] [3H] (culstm)
// The header's "__metadata__" may hold "culstm.spec": a JSON object with what names cannot tell (direction
// "reverse", activations, clips, input_forget, layout, dtype, math); sizes, layers, bidirectionality, bias,
// projection and peepholes are inferred from the tensors.
#pragma once

#include <string>

#include "culstm/culstm.hpp"
#include "io/safetensors.h"

namespace culstm {
namespace io {

// Infers the spec from tensor names/shapes (and "culstm.spec" metadata) and fills the canonical weights.
// `prefix` is prepended to every name ("encoder.lstm."); other names in the file are ignored. Errors name the tensor:
// kFormatError for a missing, unexpected or non-finite tensor, inconsistent bias/projection/peepholes or bad
// "culstm.spec"; kShapeMismatch for a wrong shape (expected and actual); kDtypeMismatch for an integer tensor;
// kInvalidSpec when the inferred spec fails validate(). `spec` and `weights` are untouched on failure.
Status weights_from_safetensors(const SafetensorsFile& file, const std::string& prefix, LstmSpec* spec,
                                Weights* weights);
// The reverse: PyTorch names, f32 tensors (or spec.dtype when it is f16/bf16), and "culstm.spec" metadata.
Status weights_to_safetensors(const LstmSpec& spec, const Weights& weights, SafetensorsFile* file);

Status load_model_file(const std::string& path, const std::string& prefix, LstmSpec* spec, Weights* weights);
Status save_model_file(const std::string& path, const LstmSpec& spec, const Weights& weights);

// The spec's non-inferable fields as JSON, and back (used for "culstm.spec").
std::string spec_to_json(const LstmSpec& spec);
Status spec_from_json(const std::string& json, LstmSpec* spec);  // only fields present in the JSON are changed

}  // namespace io
}  // namespace culstm
