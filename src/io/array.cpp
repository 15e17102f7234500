// Array conversions and the whole-file helpers. Bytes are little-endian: culstm only runs on little-endian hosts
// (x86-64, AArch64), so element bytes are memcpy'd directly; the readers byte-swap big-endian files on input.
#include "io/array.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>

#include "detail.h"
#include "float16.h"

namespace culstm {
namespace io {
namespace {

template <typename T>
T load(const std::uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store(std::uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// Round to nearest and saturate, for the integer dtypes (a plain cast of an out-of-range float is undefined).
template <typename T>
T float_to_int(float f) {
  if (std::isnan(f)) return 0;
  const double r = std::nearbyint(static_cast<double>(f));
  if (r <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
  if (r >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(r);
}

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

}  // namespace

TensorView Array::view() {
  TensorView v;
  v.data = bytes.data();
  v.dtype = dtype;
  v.memory = MemoryKind::kHost;
  const int rank = static_cast<int>(std::min<std::size_t>(shape.size(), TensorView::kMaxRank + 1));
  v.rank = rank;  // kMaxRank + 1 when the array has more axes: validation reports it as a rank error
  for (int axis = 0; axis < std::min(rank, TensorView::kMaxRank); ++axis) {
    v.shape[axis] = shape[static_cast<std::size_t>(axis)];
  }
  return v;
}

std::vector<float> Array::to_f32() const {
  const std::size_t size = dtype_size(dtype);
  const std::size_t n = size == 0 ? 0 : bytes.size() / size;
  std::vector<float> out(n);
  const std::uint8_t* p = bytes.data();
  for (std::size_t k = 0; k < n; ++k, p += size) {
    switch (dtype) {
      case DType::kF32: out[k] = load<float>(p); break;
      case DType::kF16: out[k] = detail::half_to_float(load<std::uint16_t>(p)); break;
      case DType::kBF16: out[k] = detail::bf16_to_float(load<std::uint16_t>(p)); break;
      case DType::kF64: out[k] = static_cast<float>(load<double>(p)); break;
      case DType::kI32: out[k] = static_cast<float>(load<std::int32_t>(p)); break;
      case DType::kI64: out[k] = static_cast<float>(load<std::int64_t>(p)); break;
    }
  }
  return out;
}

Array Array::from_f32(const std::vector<float>& values, std::vector<std::int64_t> shape, DType dtype) {
  Array a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  const std::size_t size = dtype_size(dtype);
  a.bytes.resize(values.size() * size);
  std::uint8_t* p = a.bytes.data();
  for (std::size_t k = 0; k < values.size(); ++k, p += size) {
    const float f = values[k];
    switch (dtype) {
      case DType::kF32: store(p, f); break;
      case DType::kF16: store(p, detail::float_to_half(f)); break;
      case DType::kBF16: store(p, detail::float_to_bf16(f)); break;
      case DType::kF64: store(p, static_cast<double>(f)); break;
      case DType::kI32: store(p, float_to_int<std::int32_t>(f)); break;
      case DType::kI64: store(p, float_to_int<std::int64_t>(f)); break;
    }
  }
  return a;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t k = 0; k < shape.size(); ++k) s += detail::str(k ? ", " : "", shape[k]);
  return s + "]";
}

bool checked_byte_size(const std::vector<std::int64_t>& shape, DType dtype, std::uint64_t* bytes) noexcept {
  std::int64_t nonzero_product = 1;
  bool has_zero = false;
  for (std::int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (nonzero_product > INT64_MAX / d) return false;
    nonzero_product *= d;
  }
  const std::uint64_t item_size = dtype_size(dtype);
  if (item_size == 0) return false;
  if (has_zero) {
    *bytes = 0;
    return true;
  }
  if (static_cast<std::uint64_t>(nonzero_product) > UINT64_MAX / item_size) return false;
  *bytes = static_cast<std::uint64_t>(nonzero_product) * item_size;
  return true;
}

Status read_file(const std::string& path, std::vector<std::uint8_t>* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return detail::error(StatusCode::kIoError, "cannot open ", path, ": ", errno_text(errno));
  std::vector<std::uint8_t> bytes;
  Status status;
  try {
    // Read in chunks until EOF rather than trusting a size from fseek/ftell: works for pipes and reports the read
    // error of a directory (fopen succeeds on one, fread fails with EISDIR).
    std::uint8_t chunk[1 << 16];
    while (true) {
      const std::size_t got = std::fread(chunk, 1, sizeof chunk, f);
      bytes.insert(bytes.end(), chunk, chunk + got);
      if (got < sizeof chunk) break;
    }
    if (std::ferror(f)) status = detail::error(StatusCode::kIoError, "cannot read ", path, ": ", errno_text(errno));
  } catch (const std::bad_alloc&) {
    status =
        detail::error(StatusCode::kIoError, "cannot read ", path, ": out of memory after ", bytes.size(), " bytes");
  }
  std::fclose(f);
  if (status.ok()) *out = std::move(bytes);
  return status;
}

Status write_file(const std::string& path, const std::vector<ByteSpan>& pieces) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return detail::error(StatusCode::kIoError, "cannot open ", path, " for writing: ", errno_text(errno));
  }
  bool ok = true;
  int err = 0;
  for (const ByteSpan& piece : pieces) {
    if (piece.size != 0 && std::fwrite(piece.data, 1, piece.size, f) != piece.size) {
      ok = false;
      err = errno;
      break;
    }
  }
  // fclose flushes: a full disk often shows up only here.
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(path.c_str());  // never leave a truncated file that looks like a model
    return detail::error(StatusCode::kIoError, "cannot write ", path, ": ", errno_text(err));
  }
  return Status::Ok();
}

}  // namespace io
}  // namespace culstm
