// What each fuzz target does with one input: parse it, and when it parses, push it through everything that consumes
// that format (importers in every naming, tensor conversion), checking the invariants a successful parse promises.
// Shared by the libFuzzer targets (tests/fuzz/fuzz_*.cpp, built with clang and sanitizers) and by the unit test
// that replays the seed corpus and every committed regression input (tests/unit/fuzz_regressions_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "culstm/culstm.hpp"
#include "io/array.h"
#include "io/import.h"
#include "io/npy.h"
#include "io/onnx.h"
#include "io/safetensors.h"
#include "io/weights_io.h"

namespace culstm {
namespace fuzz {

// A broken promise is a bug: abort so the fuzzer records the input (and the replay test dies loudly).
inline void require(bool condition) {
  if (!condition) std::abort();
}

inline void check_imported(const Status& st, const LstmSpec& spec, const Weights& weights) {
  if (!st.ok()) return;
  require(spec.validate().ok());
  require(weights.check_against(spec).ok());
}

inline void safetensors_input(const std::uint8_t* data, std::size_t size) {
  io::SafetensorsFile file;
  if (!io::parse_safetensors(data, size, &file).ok()) return;
  for (const auto& kv : file.tensors) {
    std::uint64_t bytes = 0;
    require(io::checked_byte_size(kv.second.shape, kv.second.dtype, &bytes) && bytes == kv.second.bytes.size());
  }
  for (io::Naming naming : {io::Naming::kAuto, io::Naming::kPyTorch, io::Naming::kKeras, io::Naming::kOnnx,
                            io::Naming::kMindSpore}) {
    io::ImportOptions options;
    options.naming = naming;
    LstmSpec spec;
    Weights weights;
    check_imported(io::import_weights(file, options, &spec, &weights), spec, weights);
  }
}

inline void npy_input(const std::uint8_t* data, std::size_t size) {
  io::Array array;
  if (!io::parse_npy(data, size, &array).ok()) return;
  std::uint64_t bytes = 0;
  require(io::checked_byte_size(array.shape, array.dtype, &bytes) && bytes == array.bytes.size());
  require(array.to_f32().size() == static_cast<std::size_t>(array.numel()));
}

inline void onnx_input(const std::uint8_t* data, std::size_t size) {
  io::onnx::Graph graph;
  if (io::onnx::parse_model(data, size, &graph).ok()) {
    for (const io::onnx::Tensor& t : graph.initializers) {
      io::Array array;
      if (io::onnx::tensor_to_array(t, &array).ok()) {
        std::uint64_t bytes = 0;
        require(io::checked_byte_size(array.shape, array.dtype, &bytes) && bytes == array.bytes.size());
      }
    }
  }
  LstmSpec spec;
  Weights weights;
  check_imported(io::import_onnx_bytes(data, size, "", &spec, &weights), spec, weights);
}

}  // namespace fuzz
}  // namespace culstm
