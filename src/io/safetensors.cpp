// safetensors reader and writer (https://github.com/huggingface/safetensors, "Format"). Every tensor's bytes are
// copied out of the buffer into its own Array, so nothing refers to the file after parsing and alignment of the data
// section does not matter.
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "detail.h"
#include "io/json.h"

namespace culstm {
namespace io {
namespace {

using detail::error;

constexpr std::size_t kMaxRank = 64;

bool dtype_from_name(const std::string& name, DType* out) {
  static const struct {
    const char* name;
    DType dtype;
  } kTable[] = {{"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
                {"F64", DType::kF64}, {"I32", DType::kI32}, {"I64", DType::kI64}};
  for (const auto& entry : kTable) {
    if (name == entry.name) {
      *out = entry.dtype;
      return true;
    }
  }
  return false;
}

const char* dtype_to_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
  }
  return "?";
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

// One tensor's header entry: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, offsets relative to
// the start of the data section.
Status parse_entry(const std::string& name, const json::Value& v, std::uint64_t data_size, Entry* out) {
  const std::string where = detail::str("safetensors: tensor '", name, "'");
  if (!v.is_object()) {
    return error(StatusCode::kFormatError, where, ": expected an object, got ", json::type_name(v.type));
  }
  for (const auto& member : v.object) {
    if (member.first != "dtype" && member.first != "shape" && member.first != "data_offsets") {
      return error(StatusCode::kFormatError, where, ": unexpected key '", member.first,
                   "' (expected dtype, shape, data_offsets)");
    }
  }
  const json::Value* dtype = v.find("dtype");
  const json::Value* shape = v.find("shape");
  const json::Value* offsets = v.find("data_offsets");
  if (dtype == nullptr || !dtype->is_string()) {
    return error(StatusCode::kFormatError, where, ": missing string 'dtype'");
  }
  if (shape == nullptr || !shape->is_array()) {
    return error(StatusCode::kFormatError, where, ": missing array 'shape'");
  }
  if (offsets == nullptr || !offsets->is_array()) {
    return error(StatusCode::kFormatError, where, ": missing array 'data_offsets'");
  }
  out->name = name;
  if (!dtype_from_name(dtype->string, &out->dtype)) {
    return error(StatusCode::kFormatError, where, ": unsupported dtype '", dtype->string,
                 "' (culstm reads F32, F16, BF16, F64, I32, I64)");
  }
  if (shape->array.size() > kMaxRank) {
    return error(StatusCode::kFormatError, where, ": shape has ", shape->array.size(), " dimensions (at most ",
                 kMaxRank, ")");
  }
  out->shape.clear();
  for (const json::Value& d : shape->array) {
    if (!d.is_number() || !d.is_integer || d.integer < 0) {
      return error(StatusCode::kFormatError, where, ": shape entries must be non-negative integers, got ",
                   json::serialize(d));
    }
    out->shape.push_back(d.integer);
  }
  if (offsets->array.size() != 2 || !offsets->array[0].is_integer || !offsets->array[1].is_integer ||
      offsets->array[0].integer < 0 || offsets->array[1].integer < 0) {
    return error(StatusCode::kFormatError, where, ": data_offsets must be [begin, end] of non-negative integers, got ",
                 json::serialize(*offsets));
  }
  out->begin = static_cast<std::uint64_t>(offsets->array[0].integer);
  out->end = static_cast<std::uint64_t>(offsets->array[1].integer);
  if (out->begin > out->end) {
    return error(StatusCode::kFormatError, where, ": data_offsets [", out->begin, ", ", out->end,
                 "] end before they begin");
  }
  if (out->end > data_size) {
    return error(StatusCode::kFormatError, where, ": data_offsets [", out->begin, ", ", out->end,
                 "] extend beyond the data section of ", data_size, " bytes");
  }
  std::uint64_t needed = 0;
  if (!checked_byte_size(out->shape, out->dtype, &needed)) {
    return error(StatusCode::kFormatError, where, ": shape ", shape_string(out->shape),
                 " overflows a 64-bit byte count");
  }
  if (out->end - out->begin != needed) {
    return error(StatusCode::kFormatError, where, ": shape ", shape_string(out->shape), " of ", dtype->string,
                 " needs ", needed, " bytes but data_offsets [", out->begin, ", ", out->end, "] hold ",
                 out->end - out->begin);
  }
  return Status::Ok();
}

Status parse_unchecked(const std::uint8_t* data, std::size_t size, SafetensorsFile* out) {
  if (size < 8) {
    return error(StatusCode::kFormatError, "safetensors: file too short (", size,
                 " bytes) for the 8-byte header length");
  }
  std::uint64_t header_len = 0;
  for (int k = 0; k < 8; ++k) header_len |= std::uint64_t{data[k]} << (8 * k);
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return error(StatusCode::kFormatError, "safetensors: header length ", header_len, " exceeds the limit of ",
                 kMaxSafetensorsHeaderBytes, " bytes");
  }
  if (header_len > size - 8) {
    return error(StatusCode::kFormatError, "safetensors: header length ", header_len,
                 " extends beyond the end of the file (", size - 8, " bytes follow the length)");
  }
  json::Value header;
  Status parsed = json::parse(reinterpret_cast<const char*>(data + 8), static_cast<std::size_t>(header_len), &header);
  if (!parsed.ok()) return Status(parsed.code(), "safetensors header: " + parsed.message());
  if (!header.is_object()) {
    return error(StatusCode::kFormatError, "safetensors header: expected a JSON object, got ",
                 json::type_name(header.type));
  }

  const std::uint8_t* section = data + 8 + header_len;
  const std::uint64_t data_size = size - 8 - header_len;
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& member : header.object) {
    if (member.first == "__metadata__") {
      if (!member.second.is_object()) {
        return error(StatusCode::kFormatError, "safetensors: __metadata__ must be an object of strings, got ",
                     json::type_name(member.second.type));
      }
      for (const auto& kv : member.second.object) {
        if (!kv.second.is_string()) {
          return error(StatusCode::kFormatError, "safetensors: __metadata__ value of '", kv.first,
                       "' must be a string, got ", json::type_name(kv.second.type));
        }
        file.metadata[kv.first] = kv.second.string;
      }
      continue;
    }
    Entry entry;
    CULSTM_RETURN_IF_ERROR(parse_entry(member.first, member.second, data_size, &entry));
    entries.push_back(std::move(entry));
  }

  // No two tensors may share bytes: sorted by begin, each must start at or after the previous one's end.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (std::size_t k = 1; k < by_offset.size(); ++k) {
    const Entry& prev = *by_offset[k - 1];
    const Entry& cur = *by_offset[k];
    if (cur.begin < prev.end) {
      return error(StatusCode::kFormatError, "safetensors: tensors '", prev.name, "' [", prev.begin, ", ", prev.end,
                   ") and '", cur.name, "' [", cur.begin, ", ", cur.end, ") overlap");
    }
  }

  for (Entry& e : entries) {
    Array array;
    array.dtype = e.dtype;
    array.shape = std::move(e.shape);
    array.bytes.assign(section + e.begin, section + e.end);
    file.tensors[e.name] = std::move(array);
  }
  *out = std::move(file);
  return Status::Ok();
}

}  // namespace

Status parse_safetensors(const std::uint8_t* data, std::size_t size, SafetensorsFile* out) {
  if (data == nullptr && size != 0) return Status(StatusCode::kNullPointer, "safetensors: data is null");
  if (out == nullptr) return Status(StatusCode::kNullPointer, "safetensors: output is null");
  try {
    return parse_unchecked(data, size, out);
  } catch (const std::bad_alloc&) {
    return error(StatusCode::kFormatError, "safetensors: out of memory reading ", size, " bytes");
  }
}

Status read_safetensors(const std::string& path, SafetensorsFile* out) {
  std::vector<std::uint8_t> bytes;
  CULSTM_RETURN_IF_ERROR(read_file(path, &bytes));
  Status status = parse_safetensors(bytes.data(), bytes.size(), out);
  if (!status.ok()) return Status(status.code(), path + ": " + status.message());
  return status;
}

Status write_safetensors(const std::string& path, const SafetensorsFile& file) {
  try {
    // Header: "__metadata__" first, then the tensors in name order (std::map's), laid out back to back.
    json::Value header = json::Value::empty_object();
    if (!file.metadata.empty()) {
      json::Value metadata = json::Value::empty_object();
      for (const auto& kv : file.metadata) {
        if (!json::valid_utf8(kv.first) || !json::valid_utf8(kv.second)) {
          return error(StatusCode::kInvalidArgument, "write_safetensors ", path, ": metadata '", kv.first,
                       "' is not valid UTF-8");
        }
        metadata.add(kv.first, json::Value::from_string(kv.second));
      }
      header.add("__metadata__", std::move(metadata));
    }
    std::vector<ByteSpan> pieces;
    pieces.push_back({nullptr, 0});  // the length and header, filled in below
    std::uint64_t offset = 0;
    for (const auto& kv : file.tensors) {
      const std::string& name = kv.first;
      const Array& a = kv.second;
      if (name == "__metadata__" || name.empty() || !json::valid_utf8(name)) {
        return error(StatusCode::kInvalidArgument, "write_safetensors ", path, ": invalid tensor name '", name, "'");
      }
      std::uint64_t needed = 0;
      if (!checked_byte_size(a.shape, a.dtype, &needed) || a.bytes.size() != needed) {
        return error(StatusCode::kInvalidArgument, "write_safetensors ", path, ": tensor '", name, "' has ",
                     a.bytes.size(), " bytes, its shape ", shape_string(a.shape), " of ", dtype_name(a.dtype),
                     " needs ", needed);
      }
      json::Value entry = json::Value::empty_object();
      entry.add("dtype", json::Value::from_string(dtype_to_name(a.dtype)));
      json::Value shape = json::Value::empty_array();
      for (std::int64_t d : a.shape) shape.array.push_back(json::Value::from_integer(d));
      entry.add("shape", std::move(shape));
      json::Value offsets = json::Value::empty_array();
      offsets.array.push_back(json::Value::from_integer(static_cast<std::int64_t>(offset)));
      offsets.array.push_back(json::Value::from_integer(static_cast<std::int64_t>(offset + needed)));
      entry.add("data_offsets", std::move(offsets));
      header.add(name, std::move(entry));
      offset += needed;
      pieces.push_back({a.bytes.data(), a.bytes.size()});
    }
    std::string text = json::serialize(header);
    // Spaces up to a multiple of 8 so the data section starts 8-byte aligned (the format allows trailing spaces).
    text.append((8 - text.size() % 8) % 8, ' ');
    if (text.size() > kMaxSafetensorsHeaderBytes) {
      return error(StatusCode::kInvalidArgument, "write_safetensors ", path, ": header of ", text.size(),
                   " bytes exceeds the limit of ", kMaxSafetensorsHeaderBytes);
    }
    std::string prefix(8, '\0');
    for (std::size_t k = 0; k < 8; ++k) prefix[k] = static_cast<char>((text.size() >> (8 * k)) & 0xff);
    prefix += text;
    pieces[0] = {prefix.data(), prefix.size()};
    return write_file(path, pieces);
  } catch (const std::bad_alloc&) {
    return error(StatusCode::kIoError, "write_safetensors ", path, ": out of memory");
  }
}

}  // namespace io
}  // namespace culstm
