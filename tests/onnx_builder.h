// Test helper: writes ONNX ModelProto bytes (protobuf wire format) for an LSTM node and its initializers, written
// independently of src/io/onnx.cpp (field numbers from onnx/onnx.proto3), so tests can make valid files and then
// damage them. Also converts canonical culstm weights into ONNX's W/R/B/P (gates i, o, f, c; peepholes i, o, f).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"

namespace culstm {
namespace testing_util {
namespace onnx_builder {

using Bytes = std::vector<std::uint8_t>;

inline void varint(Bytes* out, std::uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<std::uint8_t>(v));
}
inline void key(Bytes* out, int field, int wire) {
  varint(out, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire));
}
inline void bytes_field(Bytes* out, int field, const Bytes& b) {
  key(out, field, 2);
  varint(out, b.size());
  out->insert(out->end(), b.begin(), b.end());
}
inline void string_field(Bytes* out, int field, const std::string& s) {
  bytes_field(out, field, Bytes(s.begin(), s.end()));
}
inline void int_field(Bytes* out, int field, std::int64_t v) {
  key(out, field, 0);
  varint(out, static_cast<std::uint64_t>(v));
}
inline void float_field(Bytes* out, int field, float f) {
  key(out, field, 5);
  std::uint8_t b[4];
  std::memcpy(b, &f, 4);
  out->insert(out->end(), b, b + 4);
}

// How a tensor's values are stored.
enum class Storage { kRaw, kFloatData, kFloatDataUnpacked, kHalfInt32Data, kDoubleData, kDoubleRaw };

inline std::uint16_t to_half(float f) {  // exact for the test values used with it (small, few mantissa bits)
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const int exponent = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  const std::uint32_t mantissa = (x >> 13) & 0x3ffu;
  if ((x & 0x7fffffffu) == 0) return static_cast<std::uint16_t>(sign);
  return static_cast<std::uint16_t>(sign | (static_cast<std::uint32_t>(exponent) << 10) | mantissa);
}

// TensorProto bytes.
inline Bytes tensor(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& values,
                    Storage storage = Storage::kRaw) {
  Bytes t;
  for (std::int64_t d : dims) int_field(&t, 1, d);  // dims, unpacked
  const int data_type = storage == Storage::kHalfInt32Data ? 10
                        : storage == Storage::kDoubleData || storage == Storage::kDoubleRaw ? 11 : 1;
  int_field(&t, 2, data_type);
  switch (storage) {
    case Storage::kRaw: {
      Bytes raw(values.size() * 4);
      if (!values.empty()) std::memcpy(raw.data(), values.data(), raw.size());
      bytes_field(&t, 9, raw);
      break;
    }
    case Storage::kFloatData: {
      Bytes packed(values.size() * 4);
      if (!values.empty()) std::memcpy(packed.data(), values.data(), packed.size());
      bytes_field(&t, 4, packed);
      break;
    }
    case Storage::kFloatDataUnpacked:
      for (float v : values) float_field(&t, 4, v);
      break;
    case Storage::kHalfInt32Data: {
      Bytes packed;
      for (float v : values) varint(&packed, to_half(v));
      bytes_field(&t, 5, packed);
      break;
    }
    case Storage::kDoubleData:
    case Storage::kDoubleRaw: {
      Bytes packed(values.size() * 8);
      for (std::size_t k = 0; k < values.size(); ++k) {
        const double d = values[k];
        std::memcpy(packed.data() + 8 * k, &d, 8);
      }
      bytes_field(&t, storage == Storage::kDoubleData ? 10 : 9, packed);
      break;
    }
  }
  string_field(&t, 8, name);
  return t;
}

// AttributeProto bytes.
inline Bytes attr_string(const std::string& name, const std::string& s) {
  Bytes a;
  string_field(&a, 1, name);
  int_field(&a, 20, 3);
  string_field(&a, 4, s);
  return a;
}
inline Bytes attr_int(const std::string& name, std::int64_t i) {
  Bytes a;
  string_field(&a, 1, name);
  int_field(&a, 20, 2);
  int_field(&a, 3, i);
  return a;
}
inline Bytes attr_float(const std::string& name, float f) {
  Bytes a;
  string_field(&a, 1, name);
  int_field(&a, 20, 1);
  float_field(&a, 2, f);
  return a;
}
inline Bytes attr_floats(const std::string& name, const std::vector<float>& fs) {
  Bytes a;
  string_field(&a, 1, name);
  int_field(&a, 20, 6);
  for (float f : fs) float_field(&a, 7, f);
  return a;
}
inline Bytes attr_strings(const std::string& name, const std::vector<std::string>& ss) {
  Bytes a;
  string_field(&a, 1, name);
  int_field(&a, 20, 8);
  for (const std::string& s : ss) string_field(&a, 9, s);
  return a;
}
inline Bytes attr_tensor(const std::string& name, const Bytes& tensor_bytes) {
  Bytes a;
  string_field(&a, 1, name);
  int_field(&a, 20, 4);
  bytes_field(&a, 5, tensor_bytes);
  return a;
}

// NodeProto bytes.
inline Bytes node(const std::string& op_type, const std::string& name, const std::vector<std::string>& inputs,
                  const std::vector<std::string>& outputs, const std::vector<Bytes>& attributes) {
  Bytes n;
  for (const std::string& i : inputs) string_field(&n, 1, i);
  for (const std::string& o : outputs) string_field(&n, 2, o);
  string_field(&n, 3, name);
  string_field(&n, 4, op_type);
  for (const Bytes& a : attributes) bytes_field(&n, 5, a);
  return n;
}

// ModelProto bytes: ir_version, an opset import, and a graph of nodes and initializers.
inline Bytes model(const std::vector<Bytes>& nodes, const std::vector<Bytes>& initializers) {
  Bytes g;
  for (const Bytes& n : nodes) bytes_field(&g, 1, n);
  string_field(&g, 2, "culstm_test");
  for (const Bytes& t : initializers) bytes_field(&g, 5, t);
  Bytes m;
  int_field(&m, 1, 8);
  string_field(&m, 2, "culstm-tests");
  bytes_field(&m, 7, g);
  Bytes opset;
  string_field(&opset, 1, "");
  int_field(&opset, 2, 14);
  bytes_field(&m, 8, opset);
  return m;
}

// ONNX W [D,4H,I], R [D,4H,H], B [D,8H], P [D,3H] of a one-layer culstm model.
struct OnnxWeights {
  std::vector<float> W, R, B, P;
};
inline OnnxWeights to_onnx(const LstmSpec& spec, const Weights& w) {
  const int D = spec.num_directions();
  const std::size_t H = static_cast<std::size_t>(spec.hidden_size), I = static_cast<std::size_t>(spec.input_size);
  const int canonical_of_block[4] = {0, 3, 1, 2};  // ONNX block i, o, f, c <- culstm gate i, f, g, o
  OnnxWeights o;
  for (int d = 0; d < D; ++d) {
    const LayerWeights& lw = w.at(0, d);
    for (int block = 0; block < 4; ++block) {
      const std::size_t g = static_cast<std::size_t>(canonical_of_block[block]);
      for (std::size_t j = 0; j < H; ++j) {
        const std::size_t row = g * H + j;
        o.W.insert(o.W.end(), lw.w_ih.begin() + static_cast<std::ptrdiff_t>(row * I),
                   lw.w_ih.begin() + static_cast<std::ptrdiff_t>((row + 1) * I));
        o.R.insert(o.R.end(), lw.w_hh.begin() + static_cast<std::ptrdiff_t>(row * H),
                   lw.w_hh.begin() + static_cast<std::ptrdiff_t>((row + 1) * H));
      }
    }
    if (spec.bias) {
      for (const std::vector<float>* b : {&lw.b_ih, &lw.b_hh}) {
        for (int block = 0; block < 4; ++block) {
          const std::size_t g = static_cast<std::size_t>(canonical_of_block[block]);
          o.B.insert(o.B.end(), b->begin() + static_cast<std::ptrdiff_t>(g * H),
                     b->begin() + static_cast<std::ptrdiff_t>((g + 1) * H));
        }
      }
    }
    if (spec.peepholes) {  // culstm i, f, o -> ONNX i, o, f
      for (std::size_t part : {std::size_t{0}, std::size_t{2}, std::size_t{1}}) {
        o.P.insert(o.P.end(), lw.peephole.begin() + static_cast<std::ptrdiff_t>(part * H),
                   lw.peephole.begin() + static_cast<std::ptrdiff_t>((part + 1) * H));
      }
    }
  }
  return o;
}

}  // namespace onnx_builder
}  // namespace testing_util
}  // namespace culstm
