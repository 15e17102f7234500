// safetensors: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {string: string}}, then the raw little-endian tensor bytes. dtypes F32, F16, BF16, F64, I32, I64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "culstm/status.h"
#include "io/array.h"

namespace culstm {
namespace io {

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, Array> tensors;
};

// Header larger than this is refused (the format's own reference implementation uses 100 MB).
constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100u * 1000u * 1000u;

// Parses an in-memory file; checks header size, JSON, dtypes, shapes against offsets, offsets within the data and
// non-overlapping. Never reads outside [data, data + size).
Status parse_safetensors(const std::uint8_t* data, std::size_t size, SafetensorsFile* out);
Status read_safetensors(const std::string& path, SafetensorsFile* out);
Status write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace io
}  // namespace culstm
