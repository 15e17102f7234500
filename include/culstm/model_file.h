// culstm/model_file.h: reading and writing model files (safetensors with PyTorch nn.LSTM tensor names plus
// culstm's spec metadata; other frameworks' conventions and .onnx through import_model_file; docs/formats.md). Include it explicitly; culstm.hpp does not.
#pragma once

#include <string>

#include "culstm/export.h"
#include "culstm/spec.h"
#include "culstm/status.h"
#include "culstm/weights.h"

namespace culstm {

// Reads the LSTM stored under `prefix` ("" for a bare nn.LSTM, "encoder.lstm." for a submodule) in the safetensors
// file at `path`. The spec (sizes, layers, directions, bias, projection, peepholes) is inferred from the tensors'
// names and shapes, the rest (activations, clips, layout, dtype, ...) from the "culstm.spec" metadata when present.
// f16/bf16/f64 tensors are converted to the canonical f32 weights. kIoError when the file cannot be read,
// kFormatError naming the tensor when it is corrupt or an LSTM tensor is missing or mis-shaped. `spec` and
// `weights` are written only on success.
CULSTM_API Status load_model_file(const std::string& path, const std::string& prefix, LstmSpec* spec,
                                  Weights* weights);

// Reads a model exported from any supported framework: safetensors with PyTorch, Keras, ONNX or MindSpore tensor
// names (`naming` "auto" detects the convention; or "pytorch", "keras", "onnx", "mindspore"), or an .onnx file
// (chosen by extension; `onnx_node` names the LSTM node when the graph has several). Weights are converted into the
// canonical layout (docs/formats.md lists each convention). kInvalidArgument for an unknown naming, kNotSupported
// for a model option culstm cannot express, kFormatError/kShapeMismatch naming the bad tensor or attribute.
// `spec` and `weights` are written only on success.
CULSTM_API Status import_model_file(const std::string& path, const std::string& naming, const std::string& prefix,
                                    const std::string& onnx_node, LstmSpec* spec, Weights* weights);

// Writes `weights` (checked against `spec` first) to `path` with PyTorch names, as f32 tensors (or spec.dtype when
// it is f16/bf16), and the spec as "culstm.spec" metadata, so that load_model_file gives back the same spec.
CULSTM_API Status save_model_file(const std::string& path, const LstmSpec& spec, const Weights& weights);

}  // namespace culstm
