// NumPy .npy files (format versions 1.0, 2.0, 3.0): little- and big-endian f2/f4/f8/i4/i8 (converted to
// little-endian), C and Fortran order (Fortran is transposed to C order on read). NumPy has no bf16; culstm
// reads and writes bf16 .npy data as f4 (see docs/formats.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "culstm/status.h"
#include "io/array.h"

namespace culstm {
namespace io {

// Parses an in-memory .npy image. Never reads outside [data, data + size). kFormatError names the problem.
Status parse_npy(const std::uint8_t* data, std::size_t size, Array* out);
Status read_npy(const std::string& path, Array* out);          // kIoError when the file cannot be read
Status write_npy(const std::string& path, const Array& array);  // version 1.0, little-endian, C order

}  // namespace io
}  // namespace culstm
