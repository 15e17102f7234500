// An owning host array: what the .npy and safetensors readers produce and the writers consume.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "culstm/status.h"
#include "culstm/types.h"

namespace culstm {
namespace io {

struct Array {
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // C order (row-major); empty = scalar
  std::vector<std::uint8_t> bytes;  // numel * dtype_size, little-endian, C order

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }
  // A host view (rank <= 4) of the data; shape beyond rank 4 is not representable and yields rank 5 (invalid).
  TensorView view();
  // Values converted to f32 (from f32/f16/bf16/f64/i32/i64). Converts bytes.size() / dtype_size elements, which is
  // numel() for every Array the readers produce.
  std::vector<float> to_f32() const;
  // `values` stored as `dtype` (f32/f16/bf16/f64 round to nearest even; i32/i64 round to nearest, saturate, nan -> 0).
  static Array from_f32(const std::vector<float>& values, std::vector<std::int64_t> shape, DType dtype = DType::kF32);
};

// "[4, 8]": how error messages write a shape.
std::string shape_string(const std::vector<std::int64_t>& shape);

// numel * dtype_size of `shape` in *bytes; false when an extent is negative or the count overflows. Also false when
// the non-zero extents alone multiply past int64 (Array::numel() may form that product before it meets a zero), so
// an Array whose shape passed this check has a well-defined numel(). Readers use it before trusting a file's shape.
bool checked_byte_size(const std::vector<std::int64_t>& shape, DType dtype, std::uint64_t* bytes) noexcept;

// Whole-file helpers shared by the .npy and safetensors readers and writers. Failures are kIoError
// "cannot open <path>: <reason>" (or "cannot read" / "cannot write").
Status read_file(const std::string& path, std::vector<std::uint8_t>* out);
struct ByteSpan {
  const void* data;
  std::size_t size;
};
Status write_file(const std::string& path, const std::vector<ByteSpan>& pieces);  // the pieces, concatenated

}  // namespace io
}  // namespace culstm
