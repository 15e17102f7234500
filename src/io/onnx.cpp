// The minimal ONNX (protobuf wire format) reader: see onnx.h for the fields read. Wire format: each field is a
// varint key (field_number << 3 | wire_type) followed by a varint (type 0), 8 bytes (type 1), a varint length and
// that many bytes (type 2), or 4 bytes (type 5). Repeated scalars come packed (one type-2 field) or one per key.
#include "io/onnx.h"

#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "detail.h"

namespace culstm {
namespace io {
namespace onnx {
namespace {

using detail::error;
using detail::str;

enum Wire : int { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// A cursor over [begin, end) that never reads past end. `base` is the start of the whole file, for offsets in
// messages.
class Reader {
 public:
  Reader(const std::uint8_t* base, const std::uint8_t* begin, const std::uint8_t* end)
      : base_(base), p_(begin), end_(end) {}

  bool done() const { return p_ >= end_; }
  std::size_t offset() const { return static_cast<std::size_t>(p_ - base_); }

  Status varint(std::uint64_t* out) {
    std::uint64_t v = 0;
    for (int k = 0; k < 10; ++k) {
      if (p_ >= end_) return fail("truncated varint");
      const std::uint8_t b = *p_++;
      if (k == 9 && b > 1) return fail("varint longer than 64 bits");
      v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * k);
      if ((b & 0x80) == 0) {
        *out = v;
        return Status::Ok();
      }
    }
    return fail("varint longer than 10 bytes");
  }

  Status key(std::uint32_t* field, int* wire) {
    std::uint64_t k = 0;
    CULSTM_RETURN_IF_ERROR(varint(&k));
    const std::uint64_t number = k >> 3;
    *wire = static_cast<int>(k & 7);
    if (number == 0 || number > 536870911u) return fail(str("invalid field number ", number));
    if (*wire != kVarint && *wire != kFixed64 && *wire != kLengthDelimited && *wire != kFixed32) {
      return fail(str("unsupported wire type ", *wire, " (field ", number, ")"));
    }
    *field = static_cast<std::uint32_t>(number);
    return Status::Ok();
  }

  Status length_delimited(const std::uint8_t** data, std::size_t* size) {
    std::uint64_t n = 0;
    CULSTM_RETURN_IF_ERROR(varint(&n));
    if (n > static_cast<std::uint64_t>(end_ - p_)) {
      return fail(str("length ", n, " runs past the end of its message (", end_ - p_, " bytes left)"));
    }
    *data = p_;
    *size = static_cast<std::size_t>(n);
    p_ += n;
    return Status::Ok();
  }

  Status fixed32(std::uint32_t* out) {
    if (end_ - p_ < 4) return fail("truncated 32-bit value");
    std::memcpy(out, p_, 4);
    p_ += 4;
    return Status::Ok();
  }
  Status fixed64(std::uint64_t* out) {
    if (end_ - p_ < 8) return fail("truncated 64-bit value");
    std::memcpy(out, p_, 8);
    p_ += 8;
    return Status::Ok();
  }

  Status skip(int wire) {
    std::uint64_t v = 0;
    std::uint32_t v32 = 0;
    const std::uint8_t* d = nullptr;
    std::size_t n = 0;
    switch (wire) {
      case kVarint: return varint(&v);
      case kFixed64: return fixed64(&v);
      case kFixed32: return fixed32(&v32);
      case kLengthDelimited: return length_delimited(&d, &n);
      default: return fail(str("unsupported wire type ", wire));
    }
  }

  // A sub-reader over a length-delimited field's bytes.
  Status message(Reader* sub) {
    const std::uint8_t* d = nullptr;
    std::size_t n = 0;
    CULSTM_RETURN_IF_ERROR(length_delimited(&d, &n));
    *sub = Reader(base_, d, d + n);
    return Status::Ok();
  }

  Status string(std::string* out) {
    const std::uint8_t* d = nullptr;
    std::size_t n = 0;
    CULSTM_RETURN_IF_ERROR(length_delimited(&d, &n));
    out->assign(reinterpret_cast<const char*>(d), n);
    return Status::Ok();
  }

  Status fail(const std::string& what) const {
    return error(StatusCode::kFormatError, "onnx: ", what, " at byte ", offset());
  }

 private:
  const std::uint8_t* base_;
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

Status expect_wire(const Reader& r, const char* field, int wire, int expected) {
  if (wire == expected) return Status::Ok();
  return r.fail(str(field, ": wire type ", wire, ", expected ", expected));
}

// Repeated scalar fields, packed (one length-delimited field) or not (one key per value).
Status read_floats(Reader& r, int wire, const char* field, std::vector<float>* out) {
  if (wire == kFixed32) {
    std::uint32_t u = 0;
    CULSTM_RETURN_IF_ERROR(r.fixed32(&u));
    float f;
    std::memcpy(&f, &u, 4);
    out->push_back(f);
    return Status::Ok();
  }
  CULSTM_RETURN_IF_ERROR(expect_wire(r, field, wire, kLengthDelimited));
  const std::uint8_t* d = nullptr;
  std::size_t n = 0;
  CULSTM_RETURN_IF_ERROR(r.length_delimited(&d, &n));
  if (n % 4 != 0) return r.fail(str(field, ": packed floats of ", n, " bytes (not a multiple of 4)"));
  const std::size_t old = out->size();
  out->resize(old + n / 4);
  if (n) std::memcpy(out->data() + old, d, n);
  return Status::Ok();
}

Status read_doubles(Reader& r, int wire, const char* field, std::vector<double>* out) {
  if (wire == kFixed64) {
    std::uint64_t u = 0;
    CULSTM_RETURN_IF_ERROR(r.fixed64(&u));
    double v;
    std::memcpy(&v, &u, 8);
    out->push_back(v);
    return Status::Ok();
  }
  CULSTM_RETURN_IF_ERROR(expect_wire(r, field, wire, kLengthDelimited));
  const std::uint8_t* d = nullptr;
  std::size_t n = 0;
  CULSTM_RETURN_IF_ERROR(r.length_delimited(&d, &n));
  if (n % 8 != 0) return r.fail(str(field, ": packed doubles of ", n, " bytes (not a multiple of 8)"));
  const std::size_t old = out->size();
  out->resize(old + n / 8);
  if (n) std::memcpy(out->data() + old, d, n);
  return Status::Ok();
}

// int32/int64 fields: varints holding the two's complement value (negative int32s are sign-extended to 64 bits).
Status read_ints(Reader& r, int wire, const char* field, std::vector<std::int64_t>* out) {
  std::uint64_t v = 0;
  if (wire == kVarint) {
    CULSTM_RETURN_IF_ERROR(r.varint(&v));
    out->push_back(static_cast<std::int64_t>(v));
    return Status::Ok();
  }
  CULSTM_RETURN_IF_ERROR(expect_wire(r, field, wire, kLengthDelimited));
  Reader packed(nullptr, nullptr, nullptr);
  CULSTM_RETURN_IF_ERROR(r.message(&packed));
  while (!packed.done()) {
    CULSTM_RETURN_IF_ERROR(packed.varint(&v));
    out->push_back(static_cast<std::int64_t>(v));
  }
  return Status::Ok();
}

Status read_int(Reader& r, int wire, const char* field, std::int64_t* out) {
  CULSTM_RETURN_IF_ERROR(expect_wire(r, field, wire, kVarint));
  std::uint64_t v = 0;
  CULSTM_RETURN_IF_ERROR(r.varint(&v));
  *out = static_cast<std::int64_t>(v);
  return Status::Ok();
}

Status read_string(Reader& r, int wire, const char* field, std::string* out) {
  CULSTM_RETURN_IF_ERROR(expect_wire(r, field, wire, kLengthDelimited));
  return r.string(out);
}

Status parse_tensor(Reader r, Tensor* t) {
  while (!r.done()) {
    std::uint32_t field = 0;
    int wire = 0;
    CULSTM_RETURN_IF_ERROR(r.key(&field, &wire));
    std::int64_t v = 0;
    switch (field) {
      case 1: CULSTM_RETURN_IF_ERROR(read_ints(r, wire, "TensorProto.dims", &t->dims)); break;
      case 2:
        CULSTM_RETURN_IF_ERROR(read_int(r, wire, "TensorProto.data_type", &v));
        t->data_type = v < 0 || v > 1000 ? -1 : static_cast<int>(v);
        break;
      case 3:
        t->segmented = true;
        CULSTM_RETURN_IF_ERROR(r.skip(wire));
        break;
      case 4: CULSTM_RETURN_IF_ERROR(read_floats(r, wire, "TensorProto.float_data", &t->float_data)); break;
      case 5: CULSTM_RETURN_IF_ERROR(read_ints(r, wire, "TensorProto.int32_data", &t->int32_data)); break;
      case 7: CULSTM_RETURN_IF_ERROR(read_ints(r, wire, "TensorProto.int64_data", &t->int64_data)); break;
      case 8: CULSTM_RETURN_IF_ERROR(read_string(r, wire, "TensorProto.name", &t->name)); break;
      case 9:
        CULSTM_RETURN_IF_ERROR(expect_wire(r, "TensorProto.raw_data", wire, kLengthDelimited));
        CULSTM_RETURN_IF_ERROR(r.length_delimited(&t->raw_data, &t->raw_size));
        t->has_raw_data = true;
        break;
      case 10: CULSTM_RETURN_IF_ERROR(read_doubles(r, wire, "TensorProto.double_data", &t->double_data)); break;
      case 13:
        t->external = true;
        CULSTM_RETURN_IF_ERROR(r.skip(wire));
        break;
      case 14:
        CULSTM_RETURN_IF_ERROR(read_int(r, wire, "TensorProto.data_location", &v));
        if (v != 0) t->external = true;
        break;
      default: CULSTM_RETURN_IF_ERROR(r.skip(wire)); break;
    }
  }
  return Status::Ok();
}

Status parse_attribute(Reader r, Attribute* a) {
  while (!r.done()) {
    std::uint32_t field = 0;
    int wire = 0;
    CULSTM_RETURN_IF_ERROR(r.key(&field, &wire));
    std::int64_t v = 0;
    switch (field) {
      case 1: CULSTM_RETURN_IF_ERROR(read_string(r, wire, "AttributeProto.name", &a->name)); break;
      case 2: {
        CULSTM_RETURN_IF_ERROR(expect_wire(r, "AttributeProto.f", wire, kFixed32));
        std::uint32_t u = 0;
        CULSTM_RETURN_IF_ERROR(r.fixed32(&u));
        std::memcpy(&a->f, &u, 4);
        a->has_f = true;
        break;
      }
      case 3:
        CULSTM_RETURN_IF_ERROR(read_int(r, wire, "AttributeProto.i", &a->i));
        a->has_i = true;
        break;
      case 4:
        CULSTM_RETURN_IF_ERROR(read_string(r, wire, "AttributeProto.s", &a->s));
        a->has_s = true;
        break;
      case 5: {
        CULSTM_RETURN_IF_ERROR(expect_wire(r, "AttributeProto.t", wire, kLengthDelimited));
        Reader sub(nullptr, nullptr, nullptr);
        CULSTM_RETURN_IF_ERROR(r.message(&sub));
        a->t.assign(1, Tensor());
        CULSTM_RETURN_IF_ERROR(parse_tensor(sub, &a->t[0]));
        a->has_t = true;
        break;
      }
      case 7: CULSTM_RETURN_IF_ERROR(read_floats(r, wire, "AttributeProto.floats", &a->floats)); break;
      case 8: CULSTM_RETURN_IF_ERROR(read_ints(r, wire, "AttributeProto.ints", &a->ints)); break;
      case 9:
        a->strings.emplace_back();
        CULSTM_RETURN_IF_ERROR(read_string(r, wire, "AttributeProto.strings", &a->strings.back()));
        break;
      case 20:
        CULSTM_RETURN_IF_ERROR(read_int(r, wire, "AttributeProto.type", &v));
        a->type = v < 0 || v > 1000 ? -1 : static_cast<int>(v);
        break;
      default: CULSTM_RETURN_IF_ERROR(r.skip(wire)); break;  // g, graphs, tensors, doc_string, ...
    }
  }
  return Status::Ok();
}

Status parse_node(Reader r, Node* n) {
  while (!r.done()) {
    std::uint32_t field = 0;
    int wire = 0;
    CULSTM_RETURN_IF_ERROR(r.key(&field, &wire));
    switch (field) {
      case 1:
        n->inputs.emplace_back();
        CULSTM_RETURN_IF_ERROR(read_string(r, wire, "NodeProto.input", &n->inputs.back()));
        break;
      case 2:
        n->outputs.emplace_back();
        CULSTM_RETURN_IF_ERROR(read_string(r, wire, "NodeProto.output", &n->outputs.back()));
        break;
      case 3: CULSTM_RETURN_IF_ERROR(read_string(r, wire, "NodeProto.name", &n->name)); break;
      case 4: CULSTM_RETURN_IF_ERROR(read_string(r, wire, "NodeProto.op_type", &n->op_type)); break;
      case 5: {
        CULSTM_RETURN_IF_ERROR(expect_wire(r, "NodeProto.attribute", wire, kLengthDelimited));
        Reader sub(nullptr, nullptr, nullptr);
        CULSTM_RETURN_IF_ERROR(r.message(&sub));
        n->attributes.emplace_back();
        CULSTM_RETURN_IF_ERROR(parse_attribute(sub, &n->attributes.back()));
        break;
      }
      case 7: CULSTM_RETURN_IF_ERROR(read_string(r, wire, "NodeProto.domain", &n->domain)); break;
      default: CULSTM_RETURN_IF_ERROR(r.skip(wire)); break;
    }
  }
  return Status::Ok();
}

Status parse_graph(Reader r, Graph* g) {
  while (!r.done()) {
    std::uint32_t field = 0;
    int wire = 0;
    CULSTM_RETURN_IF_ERROR(r.key(&field, &wire));
    if (field == 1 || field == 5) {
      CULSTM_RETURN_IF_ERROR(
          expect_wire(r, field == 1 ? "GraphProto.node" : "GraphProto.initializer", wire, kLengthDelimited));
      Reader sub(nullptr, nullptr, nullptr);
      CULSTM_RETURN_IF_ERROR(r.message(&sub));
      if (field == 1) {
        g->nodes.emplace_back();
        CULSTM_RETURN_IF_ERROR(parse_node(sub, &g->nodes.back()));
      } else {
        g->initializers.emplace_back();
        CULSTM_RETURN_IF_ERROR(parse_tensor(sub, &g->initializers.back()));
      }
    } else {
      CULSTM_RETURN_IF_ERROR(r.skip(wire));
    }
  }
  return Status::Ok();
}

}  // namespace

std::string data_type_name(int data_type) {
  switch (data_type) {
    case 1: return "FLOAT";
    case 2: return "UINT8";
    case 3: return "INT8";
    case 4: return "UINT16";
    case 5: return "INT16";
    case 6: return "INT32";
    case 7: return "INT64";
    case 8: return "STRING";
    case 9: return "BOOL";
    case 10: return "FLOAT16";
    case 11: return "DOUBLE";
    case 12: return "UINT32";
    case 13: return "UINT64";
    case 16: return "BFLOAT16";
    default: return str("data type ", data_type);
  }
}

Status parse_model(const std::uint8_t* data, std::size_t size, Graph* out) {
  if (out == nullptr) return Status(StatusCode::kNullPointer, "onnx::parse_model: out is null");
  if (data == nullptr && size != 0) return Status(StatusCode::kNullPointer, "onnx::parse_model: data is null");
  try {
    Graph g;
    Reader r(data, data, data + size);
    bool has_graph = false;
    while (!r.done()) {
      std::uint32_t field = 0;
      int wire = 0;
      CULSTM_RETURN_IF_ERROR(r.key(&field, &wire));
      if (field == 1) {
        CULSTM_RETURN_IF_ERROR(read_int(r, wire, "ModelProto.ir_version", &g.ir_version));
      } else if (field == 7) {
        CULSTM_RETURN_IF_ERROR(expect_wire(r, "ModelProto.graph", wire, kLengthDelimited));
        Reader sub(nullptr, nullptr, nullptr);
        CULSTM_RETURN_IF_ERROR(r.message(&sub));
        CULSTM_RETURN_IF_ERROR(parse_graph(sub, &g));  // a repeated message field merges, as protobuf does
        has_graph = true;
      } else {
        CULSTM_RETURN_IF_ERROR(r.skip(wire));
      }
    }
    if (!has_graph) {
      return Status(StatusCode::kFormatError, "onnx: the file has no graph (ModelProto field 7); is it an ONNX model?");
    }
    *out = std::move(g);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kFormatError, "onnx: out of memory");
  }
}

namespace {

Status tensor_to_array_unchecked(const Tensor& t, Array* out) {
  const std::string name = t.name.empty() ? std::string("<unnamed>") : t.name;
  if (t.external) {
    return error(StatusCode::kNotSupported, "tensor '", name,
                 "': its data is stored outside the .onnx file (external data), which culstm does not read; save "
                 "the model with onnx.save_model(model, path, save_as_external_data=False)");
  }
  if (t.segmented) {
    return error(StatusCode::kNotSupported, "tensor '", name, "': segmented tensors are not supported");
  }
  DType dtype = DType::kF32;
  switch (t.data_type) {
    case kFloat: dtype = DType::kF32; break;
    case kFloat16: dtype = DType::kF16; break;
    case kBFloat16: dtype = DType::kBF16; break;
    case kDouble: dtype = DType::kF64; break;
    default:
      return error(StatusCode::kDtypeMismatch, "tensor '", name, "': expected FLOAT, FLOAT16, BFLOAT16 or DOUBLE, got ",
                   data_type_name(t.data_type));
  }
  for (std::int64_t d : t.dims) {
    if (d < 0) return error(StatusCode::kFormatError, "tensor '", name, "': negative dimension ", d);
  }
  std::uint64_t bytes = 0;
  if (!checked_byte_size(t.dims, dtype, &bytes)) {
    return error(StatusCode::kFormatError, "tensor '", name, "': its dims overflow");
  }
  const std::uint64_t numel = bytes / dtype_size(dtype);
  const std::size_t typed = t.float_data.size() + t.int32_data.size() + t.double_data.size() + t.int64_data.size();
  if (t.has_raw_data && typed != 0) {
    return error(StatusCode::kFormatError, "tensor '", name, "': has both raw_data and typed data fields");
  }
  Array a;
  a.dtype = dtype;
  a.shape = t.dims;
  if (t.has_raw_data) {
    if (t.raw_size != bytes) {
      return error(StatusCode::kFormatError, "tensor '", name, "': raw_data holds ", t.raw_size, " bytes, its dims ",
                   "need ", bytes);
    }
    a.bytes.assign(t.raw_data, t.raw_data + t.raw_size);
  } else {
    auto count_error = [&](const char* field, std::size_t got) {
      return error(StatusCode::kFormatError, "tensor '", name, "': ", field, " holds ", got, " values, its dims need ",
                   numel);
    };
    // Counts first: the dims alone must never decide an allocation (they can claim terabytes in a few bytes).
    const char* field = dtype == DType::kF32 ? "float_data" : dtype == DType::kF64 ? "double_data" : "int32_data";
    const std::size_t have = dtype == DType::kF32 ? t.float_data.size()
                             : dtype == DType::kF64 ? t.double_data.size() : t.int32_data.size();
    if (have != numel || typed != have) return count_error(field, typed);
    a.bytes.resize(static_cast<std::size_t>(bytes));
    if (dtype == DType::kF32) {
      if (bytes) std::memcpy(a.bytes.data(), t.float_data.data(), static_cast<std::size_t>(bytes));
    } else if (dtype == DType::kF64) {
      if (bytes) std::memcpy(a.bytes.data(), t.double_data.data(), static_cast<std::size_t>(bytes));
    } else {  // f16 / bf16: 16-bit patterns in int32_data
      for (std::size_t k = 0; k < t.int32_data.size(); ++k) {
        const std::int64_t v = t.int32_data[k];
        if (v < 0 || v > 0xffff) {
          return error(StatusCode::kFormatError, "tensor '", name, "': int32_data[", k, "] = ", v,
                       " is not a 16-bit pattern");
        }
        const std::uint16_t h = static_cast<std::uint16_t>(v);
        std::memcpy(a.bytes.data() + 2 * k, &h, 2);
      }
    }
  }
  *out = std::move(a);
  return Status::Ok();
}

}  // namespace

Status tensor_to_array(const Tensor& t, Array* out) {
  try {
    return tensor_to_array_unchecked(t, out);
  } catch (const std::bad_alloc&) {
    return error(StatusCode::kFormatError, "tensor '", t.name, "': out of memory");
  }
}

}  // namespace onnx
}  // namespace io
}  // namespace culstm
