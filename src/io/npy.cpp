// .npy reader and writer. The format (numpy/lib/format.py): the magic "\x93NUMPY", a major and minor version byte,
// the header length (uint16 LE in 1.0, uint32 LE in 2.0 and 3.0), then the header: a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// padded with spaces and ended by '\n', then the raw data. The reader parses that literal with a small grammar of its
// own (no Python eval), checks every length against the buffer and refuses anything it does not understand.
#include "io/npy.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "detail.h"

namespace culstm {
namespace io {
namespace {

using detail::error;

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
// NumPy 2 allows 64 axes; more than that is not a real array.
constexpr std::size_t kMaxRank = 64;
// NumPy aligns the data to 64 bytes so that it can be memory-mapped with any alignment a dtype needs.
constexpr std::size_t kDataAlignment = 64;

// "(3, 4)", "(3,)": how NumPy writes a shape, in the header and in this reader's messages.
std::string python_tuple(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) s += detail::str(k ? ", " : "", shape[k]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

struct Descr {
  DType dtype;
  bool big_endian;
};

// '<f4' -> f32 little-endian, ... The byte-order character '=' means the writer's native order; NumPy itself never
// writes it, and culstm treats it as little-endian (the only byte order of the machines that write our files).
bool parse_descr(const std::string& s, Descr* out) {
  if (s.size() != 3 || (s[0] != '<' && s[0] != '>' && s[0] != '=')) return false;
  static const struct {
    const char* code;
    DType dtype;
  } kTypes[] = {
      {"f2", DType::kF16}, {"f4", DType::kF32}, {"f8", DType::kF64}, {"i4", DType::kI32}, {"i8", DType::kI64}};
  for (const auto& t : kTypes) {
    if (s.compare(1, 2, t.code) == 0) {
      out->dtype = t.dtype;
      out->big_endian = s[0] == '>';
      return true;
    }
  }
  return false;
}

const char* descr_for(DType dtype) {
  switch (dtype) {
    case DType::kF16: return "<f2";
    case DType::kF32:
    case DType::kBF16: return "<f4";  // NumPy has no bf16: written as f32 (exact, bf16 is a truncated f32)
    case DType::kF64: return "<f8";
    case DType::kI32: return "<i4";
    case DType::kI64: return "<i8";
  }
  return "?";
}

// The header dict: exactly the keys 'descr' (a string), 'fortran_order' (True/False) and 'shape' (a tuple of
// non-negative ints), as numpy.lib.format requires.
class HeaderParser {
 public:
  HeaderParser(const char* text, std::size_t size) : text_(text), size_(size) {}

  Status parse(std::string* descr, bool* fortran_order, std::vector<std::int64_t>* shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    skip_whitespace();
    if (!consume('{')) return fail("expected '{' at the start of the header dict");
    while (true) {
      skip_whitespace();
      if (consume('}')) break;
      std::string key;
      CULSTM_RETURN_IF_ERROR(parse_string(&key));
      skip_whitespace();
      if (!consume(':')) return fail("expected ':' after a key in the header dict");
      skip_whitespace();
      if (key == "descr" && !have_descr) {
        have_descr = true;
        if (!at_end() && peek() == '[') return fail("structured dtypes (a list descr) are not supported");
        CULSTM_RETURN_IF_ERROR(parse_string(descr));
      } else if (key == "fortran_order" && !have_order) {
        have_order = true;
        if (consume_word("True")) {
          *fortran_order = true;
        } else if (consume_word("False")) {
          *fortran_order = false;
        } else {
          return fail("'fortran_order' must be True or False");
        }
      } else if (key == "shape" && !have_shape) {
        have_shape = true;
        CULSTM_RETURN_IF_ERROR(parse_shape(shape));
      } else if (key == "descr" || key == "fortran_order" || key == "shape") {
        return fail(detail::str("duplicate key '", key, "' in the header dict"));
      } else {
        return fail(
            detail::str("unexpected key '", key, "' in the header dict (expected 'descr', 'fortran_order', 'shape')"));
      }
      skip_whitespace();
      if (consume('}')) break;
      if (!consume(',')) return fail("expected ',' or '}' in the header dict");
    }
    skip_whitespace();  // the padding and the final '\n'
    if (!at_end()) return fail("unexpected text after the header dict");
    if (!have_descr) return fail("header dict has no 'descr'");
    if (!have_order) return fail("header dict has no 'fortran_order'");
    if (!have_shape) return fail("header dict has no 'shape'");
    return Status::Ok();
  }

 private:
  Status fail(const std::string& what) const {
    return error(StatusCode::kFormatError, ".npy header: ", what, " (at header byte ", pos_, ")");
  }
  bool at_end() const { return pos_ >= size_; }
  char peek() const { return text_[pos_]; }  // only after checking !at_end()
  bool consume(char c) {
    if (at_end() || peek() != c) return false;
    ++pos_;
    return true;
  }
  bool consume_word(const char* word) {
    const std::size_t n = std::strlen(word);
    if (size_ - pos_ < n || std::memcmp(text_ + pos_, word, n) != 0) return false;
    pos_ += n;
    return true;
  }
  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\n' || peek() == '\t' || peek() == '\r')) ++pos_;
  }

  // 'text' or "text"; the keys and descrs NumPy writes never need escapes, so a backslash is refused.
  Status parse_string(std::string* out) {
    if (at_end() || (peek() != '\'' && peek() != '"')) return fail("expected a quoted string");
    const char quote = peek();
    const std::size_t start = ++pos_;
    while (!at_end() && peek() != quote) {
      if (peek() == '\\' || peek() == '\n') return fail("unsupported character in a header string");
      ++pos_;
    }
    if (at_end()) return fail("unterminated string");
    out->assign(text_ + start, pos_ - start);
    ++pos_;
    return Status::Ok();
  }

  // (), (3,), (3, 4), (3, 4,) ; Python 2 files may carry an 'L' suffix (3L,).
  Status parse_shape(std::vector<std::int64_t>* shape) {
    shape->clear();
    if (!consume('(')) return fail("'shape' must be a tuple");
    bool saw_comma = false;
    while (true) {
      skip_whitespace();
      if (consume(')')) break;
      if (!at_end() && peek() == '-') return fail("negative dimension in 'shape'");
      if (at_end() || peek() < '0' || peek() > '9') return fail("expected a non-negative integer in 'shape'");
      std::int64_t d = 0;
      while (!at_end() && peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (d > (INT64_MAX - digit) / 10) return fail("dimension in 'shape' does not fit in 64 bits");
        d = d * 10 + digit;
        ++pos_;
      }
      consume('L');
      if (shape->size() >= kMaxRank) return fail("'shape' has more than 64 dimensions");
      shape->push_back(d);
      skip_whitespace();
      if (consume(')')) break;
      if (!consume(',')) return fail("expected ',' or ')' in 'shape'");
      saw_comma = true;
    }
    // (3) is the int 3 in Python, not a tuple; NumPy refuses it too.
    if (shape->size() == 1 && !saw_comma) return fail("'shape' (n) is not a tuple; a 1-d shape is written (n,)");
    return Status::Ok();
  }

  const char* text_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Copies Fortran-order (first axis fastest) elements into C order (last axis fastest).
void fortran_to_c(const std::uint8_t* src, const std::vector<std::int64_t>& shape, std::size_t item_size,
                  std::uint8_t* dst) {
  const std::size_t rank = shape.size();
  std::vector<std::int64_t> f_stride(rank), index(rank, 0);
  std::int64_t stride = 1;
  for (std::size_t k = 0; k < rank; ++k) {
    f_stride[k] = stride;
    stride *= shape[k];
  }
  const std::int64_t numel = stride;
  for (std::int64_t out = 0; out < numel; ++out) {
    std::int64_t in = 0;
    for (std::size_t k = 0; k < rank; ++k) in += index[k] * f_stride[k];
    std::memcpy(dst + static_cast<std::size_t>(out) * item_size, src + static_cast<std::size_t>(in) * item_size,
                item_size);
    for (std::size_t k = rank; k-- > 0;) {  // next C-order index
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
}

Status parse_npy_unchecked(const std::uint8_t* data, std::size_t size, Array* out) {
  if (size < kMagicSize + 2) {
    return error(StatusCode::kFormatError, ".npy: file too short (", size, " bytes) for the magic and version");
  }
  if (std::memcmp(data, kMagic, kMagicSize) != 0) {
    return error(StatusCode::kFormatError, ".npy: bad magic, not a .npy file (expected \\x93NUMPY)");
  }
  const unsigned major = data[6], minor = data[7];
  if (major < 1 || major > 3 || minor != 0) {
    return error(StatusCode::kFormatError, ".npy: unsupported format version ", major, ".", minor,
                 " (culstm reads 1.0, 2.0 and 3.0)");
  }
  const std::size_t length_size = major == 1 ? 2 : 4;
  const std::size_t preamble = kMagicSize + 2 + length_size;
  if (size < preamble) {
    return error(StatusCode::kFormatError, ".npy: file too short (", size, " bytes) for the header length");
  }
  std::uint64_t header_len = 0;
  for (std::size_t k = 0; k < length_size; ++k) header_len |= std::uint64_t{data[8 + k]} << (8 * k);
  if (header_len > size - preamble) {
    return error(StatusCode::kFormatError, ".npy: header length ", header_len, " extends beyond the end of the file (",
                 size - preamble, " bytes follow the preamble)");
  }

  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  CULSTM_RETURN_IF_ERROR(
      HeaderParser(reinterpret_cast<const char*>(data + preamble), header_len).parse(&descr, &fortran_order, &shape));
  Descr parsed{};
  if (!parse_descr(descr, &parsed)) {
    return error(StatusCode::kFormatError, ".npy: unsupported descr '", descr,
                 "' (culstm reads <f2 <f4 <f8 <i4 <i8 and their big-endian '>' forms)");
  }
  const std::size_t item_size = dtype_size(parsed.dtype);
  std::uint64_t needed = 0;
  if (!checked_byte_size(shape, parsed.dtype, &needed)) {
    return error(StatusCode::kFormatError, ".npy: shape ", python_tuple(shape), " of ", descr,
                 " overflows a 64-bit byte count");
  }
  const std::uint8_t* payload = data + preamble + header_len;
  const std::size_t available = size - preamble - header_len;
  if (available < needed) {
    return error(StatusCode::kFormatError, ".npy: data truncated: shape ", python_tuple(shape), " of ", descr,
                 " needs ", needed, " bytes, the file has ", available);
  }
  if (available > needed) {
    return error(StatusCode::kFormatError, ".npy: ", available - needed, " trailing bytes after the ", needed,
                 " bytes of data for shape ", python_tuple(shape), " of ", descr);
  }

  Array array;
  array.dtype = parsed.dtype;
  array.shape = shape;
  array.bytes.resize(static_cast<std::size_t>(needed));
  if (fortran_order && shape.size() > 1) {
    fortran_to_c(payload, shape, item_size, array.bytes.data());
  } else if (needed != 0) {
    std::memcpy(array.bytes.data(), payload, static_cast<std::size_t>(needed));
  }
  if (parsed.big_endian && item_size > 1) {
    for (std::size_t k = 0; k < array.bytes.size(); k += item_size) {
      std::reverse(array.bytes.begin() + static_cast<std::ptrdiff_t>(k),
                   array.bytes.begin() + static_cast<std::ptrdiff_t>(k + item_size));
    }
  }
  *out = std::move(array);
  return Status::Ok();
}

}  // namespace

Status parse_npy(const std::uint8_t* data, std::size_t size, Array* out) {
  if (data == nullptr && size != 0) return Status(StatusCode::kNullPointer, ".npy: data is null");
  if (out == nullptr) return Status(StatusCode::kNullPointer, ".npy: output array is null");
  try {
    return parse_npy_unchecked(data, size, out);
  } catch (const std::bad_alloc&) {
    return error(StatusCode::kFormatError, ".npy: out of memory reading ", size, " bytes");
  }
}

Status read_npy(const std::string& path, Array* out) {
  std::vector<std::uint8_t> bytes;
  CULSTM_RETURN_IF_ERROR(read_file(path, &bytes));
  Status status = parse_npy(bytes.data(), bytes.size(), out);
  if (!status.ok()) return Status(status.code(), path + ": " + status.message());
  return status;
}

Status write_npy(const std::string& path, const Array& array) {
  try {
    std::uint64_t needed = 0;
    if (!checked_byte_size(array.shape, array.dtype, &needed)) {
      return error(StatusCode::kInvalidArgument, "write_npy ", path, ": shape ", python_tuple(array.shape),
                   " has a negative or overflowing extent");
    }
    if (array.shape.size() > kMaxRank) {
      return error(StatusCode::kInvalidArgument, "write_npy ", path, ": rank ", array.shape.size(), " exceeds ",
                   kMaxRank);
    }
    if (array.bytes.size() != needed) {
      return error(StatusCode::kInvalidArgument, "write_npy ", path, ": shape ", python_tuple(array.shape), " of ",
                   dtype_name(array.dtype), " needs ", needed, " bytes, the array has ", array.bytes.size());
    }
    // NumPy has no bf16: store the values as f32, which represents every bf16 exactly.
    const Array converted =
        array.dtype == DType::kBF16 ? Array::from_f32(array.to_f32(), array.shape, DType::kF32) : Array();
    const Array& source = array.dtype == DType::kBF16 ? converted : array;

    // Exactly what numpy.save writes, padded with spaces so the data starts at a multiple of 64.
    std::string header = detail::str("{'descr': '", descr_for(array.dtype),
                                     "', 'fortran_order': False, 'shape': ", python_tuple(array.shape), ", }");
    const std::size_t preamble = kMagicSize + 2 + 2;            // version 1.0: uint16 header length
    const std::size_t unpadded = preamble + header.size() + 1;  // + '\n'
    header.append((kDataAlignment - unpadded % kDataAlignment) % kDataAlignment, ' ');
    header += '\n';
    // A rank-64 shape of 19-digit extents is < 2 KB, far below the 65535 limit of version 1.0.
    std::uint8_t prefix[preamble];
    std::memcpy(prefix, kMagic, kMagicSize);
    prefix[6] = 1;
    prefix[7] = 0;
    prefix[8] = static_cast<std::uint8_t>(header.size() & 0xff);
    prefix[9] = static_cast<std::uint8_t>(header.size() >> 8);
    return write_file(path,
                      {{prefix, preamble}, {header.data(), header.size()}, {source.bytes.data(), source.bytes.size()}});
  } catch (const std::bad_alloc&) {
    return error(StatusCode::kIoError, "write_npy ", path, ": out of memory");
  }
}

}  // namespace io
}  // namespace culstm
