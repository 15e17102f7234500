// The public model-file functions (culstm/model_file.h): the installed face of the internal reader/writer in
// src/io/weights_io.cpp. Nothing may throw across the API, so allocation failures become kInternal here.
#include "culstm/model_file.h"

#include <exception>

#include "detail.h"
#include "io/import.h"
#include "io/weights_io.h"

namespace culstm {

Status load_model_file(const std::string& path, const std::string& prefix, LstmSpec* spec, Weights* weights) {
  if (spec == nullptr) return Status(StatusCode::kNullPointer, "spec: the output pointer is null");
  if (weights == nullptr) return Status(StatusCode::kNullPointer, "weights: the output pointer is null");
  try {
    LstmSpec s;
    Weights w;
    CULSTM_RETURN_IF_ERROR(io::load_model_file(path, prefix, &s, &w));
    *spec = s;
    *weights = std::move(w);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("load_model_file: unexpected exception: ") + e.what());
  }
}

Status import_model_file(const std::string& path, const std::string& naming, const std::string& prefix,
                         const std::string& onnx_node, LstmSpec* spec, Weights* weights) {
  if (spec == nullptr) return Status(StatusCode::kNullPointer, "spec: the output pointer is null");
  if (weights == nullptr) return Status(StatusCode::kNullPointer, "weights: the output pointer is null");
  try {
    io::ImportOptions options;
    CULSTM_RETURN_IF_ERROR(io::parse_naming(naming, &options.naming));
    options.prefix = prefix;
    options.onnx_node = onnx_node;
    return io::import_model_file(path, options, spec, weights);  // writes the outputs only on success
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("import_model_file: unexpected exception: ") + e.what());
  }
}

Status save_model_file(const std::string& path, const LstmSpec& spec, const Weights& weights) {
  try {
    return io::save_model_file(path, spec, weights);
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("save_model_file: unexpected exception: ") + e.what());
  }
}

}  // namespace culstm
