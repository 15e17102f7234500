// A minimal, bounds-checked reader of ONNX ModelProto files (protobuf wire format), for what importing an LSTM node
// needs: ModelProto.graph (7) -> GraphProto.node (1) and .initializer (5); NodeProto input (1), output (2), name (3),
// op_type (4), attribute (5), domain (7); AttributeProto name (1), f (2), i (3), s (4), t (5), floats (7), ints (8),
// strings (9), type (20); TensorProto dims (1), data_type (2), segment (3), float_data (4), int32_data (5),
// int64_data (7), name (8), raw_data (9), double_data (10), external_data (13), data_location (14). Field numbers
// are onnx/onnx.proto3's. Everything else (subgraphs, value_info, metadata, training info) is skipped unread.
//
// Every length is checked against the bytes that remain, varints are at most 10 bytes, group wire types and field
// number 0 are refused, and nothing is read outside [data, data + size): the reader is fuzzed (tests/fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "culstm/status.h"
#include "io/array.h"

namespace culstm {
namespace io {
namespace onnx {

// TensorProto.DataType values culstm converts.
constexpr int kFloat = 1;
constexpr int kFloat16 = 10;
constexpr int kDouble = 11;
constexpr int kBFloat16 = 16;

struct Tensor {
  std::string name;
  int data_type = 0;
  std::vector<std::int64_t> dims;
  // raw_data points into the parsed buffer (valid while it lives); the typed fields are decoded.
  const std::uint8_t* raw_data = nullptr;
  std::size_t raw_size = 0;
  bool has_raw_data = false;
  std::vector<float> float_data;
  std::vector<std::int64_t> int32_data;  // int32_data (f16/bf16 values are stored here as their 16-bit patterns)
  std::vector<std::int64_t> int64_data;
  std::vector<double> double_data;
  bool external = false;   // data_location EXTERNAL or external_data entries: data lives in another file
  bool segmented = false;  // a `segment` of a larger tensor
};

struct Attribute {
  std::string name;
  int type = 0;  // AttributeProto.AttributeType (1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS, 8 STRINGS)
  bool has_f = false, has_i = false, has_s = false, has_t = false;
  float f = 0.0f;
  std::int64_t i = 0;
  std::string s;
  std::vector<Tensor> t;  // 0 or 1 element (a Constant node's value)
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
  std::vector<std::string> strings;
};

struct Node {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
};

struct Graph {
  std::int64_t ir_version = 0;
  std::vector<Node> nodes;
  std::vector<Tensor> initializers;
};

// Parses a serialized ModelProto. Tensor raw_data spans point into [data, data + size).
Status parse_model(const std::uint8_t* data, std::size_t size, Graph* out);

// The tensor's values as an Array of its own dtype (F32, F16, BF16 or F64), after checking that dims are
// non-negative, the element count matches the data field used, and the data is inline (not external/segmented).
// kDtypeMismatch for other data types, kFormatError naming the tensor otherwise.
Status tensor_to_array(const Tensor& tensor, Array* out);

// "FLOAT", "FLOAT16", ... for messages ("data type 7" when not one culstm names).
std::string data_type_name(int data_type);

}  // namespace onnx
}  // namespace io
}  // namespace culstm
