#include "io/json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <locale>
#include <new>
#include <set>
#include <sstream>

#include "detail.h"

namespace culstm {
namespace io {
namespace json {
namespace {

// Number text <-> double through streams imbued with the classic locale: strtod/printf follow the process's
// LC_NUMERIC, and an application that set a German locale would otherwise read "0.5" as 0.
bool text_to_double(const std::string& text, double* out) {
  std::istringstream in(text);
  in.imbue(std::locale::classic());
  double d = 0.0;
  in >> d;
  if (in.fail() || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

std::string double_to_text(double d, int precision) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out.precision(precision);
  out << d;
  return out.str();
}

// Length of the valid UTF-8 sequence starting at s[0] (at most `n` bytes available), or 0 when it is invalid:
// overlong forms, surrogates (U+D800..DFFF) and code points above U+10FFFF are invalid (RFC 3629).
std::size_t utf8_sequence_length(const unsigned char* s, std::size_t n) {
  const unsigned char c = s[0];
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (s[k] < 0x80 || s[k] > 0xbf) return 0;
  }
  return len;
}

void append_utf8(std::uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Recursive descent over [data, data + size). `pos_` is the only cursor and every read checks it against size_.
class Parser {
 public:
  Parser(const char* data, std::size_t size) : data_(reinterpret_cast<const unsigned char*>(data)), size_(size) {}

  Status parse_document(Value* out) {
    skip_whitespace();
    CULSTM_RETURN_IF_ERROR(parse_value(out, 0));
    skip_whitespace();
    if (pos_ != size_) return fail("unexpected text after the JSON value");
    return Status::Ok();
  }

 private:
  Status fail(const char* what) const {
    return detail::error(StatusCode::kFormatError, "JSON: ", what, " at byte ", pos_);
  }
  bool at_end() const { return pos_ >= size_; }
  unsigned char peek() const { return data_[pos_]; }  // only after checking !at_end()

  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  bool consume_literal(const char* word) {
    std::size_t n = 0;
    while (word[n] != '\0') ++n;
    if (size_ - pos_ < n || !std::equal(word, word + n, data_ + pos_)) return false;
    pos_ += n;
    return true;
  }

  Status parse_value(Value* out, int depth) {
    if (at_end()) return fail("unexpected end of input, expected a value");
    if (++values_ > kMaxValues) return fail("more than 1048576 values in the document");
    const unsigned char c = peek();
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) return fail("nesting deeper than 64 levels");
      return c == '{' ? parse_object(out, depth + 1) : parse_array(out, depth + 1);
    }
    if (c == '"') {
      out->type = Value::Type::kString;
      return parse_string(&out->string);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(out);
    if (consume_literal("true")) {
      *out = Value::from_bool(true);
    } else if (consume_literal("false")) {
      *out = Value::from_bool(false);
    } else if (consume_literal("null")) {
      *out = Value::null();
    } else {
      return fail("unexpected character, expected a value");
    }
    return Status::Ok();
  }

  Status parse_object(Value* out, int depth) {
    out->type = Value::Type::kObject;
    std::set<std::string> seen;
    ++pos_;  // '{'
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return Status::Ok();
    }
    while (true) {
      skip_whitespace();
      if (at_end() || peek() != '"') return fail("expected a string key in object");
      const std::size_t key_pos = pos_;
      std::string key;
      CULSTM_RETURN_IF_ERROR(parse_string(&key));
      // A set, not a scan of the members: a hostile header with a million keys must stay O(n log n).
      if (!seen.insert(key).second) {
        pos_ = key_pos;
        return fail("duplicate object key");
      }
      skip_whitespace();
      if (at_end() || peek() != ':') return fail("expected ':' after object key");
      ++pos_;
      skip_whitespace();
      Value value;
      CULSTM_RETURN_IF_ERROR(parse_value(&value, depth));
      out->add(std::move(key), std::move(value));
      skip_whitespace();
      if (at_end()) return fail("unexpected end of input in object");
      if (peek() == '}') {
        ++pos_;
        return Status::Ok();
      }
      if (peek() != ',') return fail("expected ',' or '}' in object");
      ++pos_;
    }
  }

  Status parse_array(Value* out, int depth) {
    out->type = Value::Type::kArray;
    ++pos_;  // '['
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return Status::Ok();
    }
    while (true) {
      skip_whitespace();
      Value element;
      CULSTM_RETURN_IF_ERROR(parse_value(&element, depth));
      out->array.push_back(std::move(element));
      skip_whitespace();
      if (at_end()) return fail("unexpected end of input in array");
      if (peek() == ']') {
        ++pos_;
        return Status::Ok();
      }
      if (peek() != ',') return fail("expected ',' or ']' in array");
      ++pos_;
    }
  }

  // Four hex digits of a \u escape.
  Status parse_hex4(std::uint32_t* out) {
    if (size_ - pos_ < 4) return fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char h = data_[pos_ + static_cast<std::size_t>(k)];
      std::uint32_t digit = 0;
      if (h >= '0' && h <= '9') {
        digit = h - '0';
      } else if (h >= 'a' && h <= 'f') {
        digit = h - 'a' + 10u;
      } else if (h >= 'A' && h <= 'F') {
        digit = h - 'A' + 10u;
      } else {
        return fail("invalid hex digit in \\u escape");
      }
      v = (v << 4) | digit;
    }
    pos_ += 4;
    *out = v;
    return Status::Ok();
  }

  Status parse_string(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (at_end()) return fail("unterminated string");
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return Status::Ok();
      }
      if (c < 0x20) return fail("unescaped control character in string");
      if (c >= 0x80) {
        const std::size_t len = utf8_sequence_length(data_ + pos_, size_ - pos_);
        if (len == 0) return fail("invalid UTF-8 in string");
        out->append(reinterpret_cast<const char*>(data_ + pos_), len);
        pos_ += len;
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;  // backslash
      if (at_end()) return fail("unterminated escape in string");
      const unsigned char e = peek();
      ++pos_;
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          CULSTM_RETURN_IF_ERROR(parse_hex4(&cp));
          if (cp >= 0xdc00 && cp <= 0xdfff) return fail("unpaired low surrogate in \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {  // a high surrogate must be followed by \u<low surrogate>
            if (size_ - pos_ < 2 || data_[pos_] != '\\' || data_[pos_ + 1] != 'u') {
              return fail("unpaired high surrogate in \\u escape");
            }
            pos_ += 2;
            std::uint32_t low = 0;
            CULSTM_RETURN_IF_ERROR(parse_hex4(&low));
            if (low < 0xdc00 || low > 0xdfff) return fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          append_utf8(cp, out);
          break;
        }
        default: --pos_; return fail("invalid escape in string");
      }
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  exactly, as RFC 8259 has it.
  Status parse_number(Value* out) {
    const std::size_t start = pos_;
    auto digits = [this]() {
      const std::size_t from = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - from;
    };
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') return fail("expected a digit in number");
    const std::size_t int_start = pos_;
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && peek() >= '0' && peek() <= '9') return fail("leading zero in number");
    } else {
      digits();
    }
    const std::size_t int_end = pos_;
    bool integral = true;
    if (!at_end() && peek() == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) return fail("expected a digit after '.' in number");
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      integral = false;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (digits() == 0) return fail("expected a digit in exponent");
    }
    const std::string text(reinterpret_cast<const char*>(data_ + start), pos_ - start);
    double d = 0.0;
    if (!text_to_double(text, &d)) {
      pos_ = start;
      return fail("number out of range");
    }
    *out = Value::from_number(d);
    if (integral) {  // exact int64 when it fits; larger integers keep only the double
      std::uint64_t magnitude = 0;
      bool fits = true;
      for (std::size_t k = int_start; k < int_end && fits; ++k) {
        const std::uint64_t digit = data_[k] - '0';
        fits = magnitude <= (UINT64_MAX - digit) / 10;
        if (fits) magnitude = magnitude * 10 + digit;
      }
      const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
      if (fits && magnitude <= limit) {
        out->is_integer = true;
        out->integer = negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
      }
    }
    return Status::Ok();
  }

  const unsigned char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
};

void serialize_to(const Value& v, std::string* out) {
  switch (v.type) {
    case Value::Type::kNull: *out += "null"; return;
    case Value::Type::kBool: *out += v.boolean ? "true" : "false"; return;
    case Value::Type::kNumber: {
      if (v.is_integer) {
        *out += std::to_string(v.integer);
      } else if (!std::isfinite(v.number)) {
        *out += "null";
      } else {
        // The shortest text that reads back as the same double: 0.2 stays "0.2", not "0.20000000000000001".
        std::string text;
        for (int precision = 1; precision <= 17; ++precision) {
          text = double_to_text(v.number, precision);
          double back = 0.0;
          if (text_to_double(text, &back) && back == v.number) break;
        }
        *out += text;
      }
      return;
    }
    case Value::Type::kString: *out += quote(v.string); return;
    case Value::Type::kArray: {
      *out += '[';
      for (std::size_t k = 0; k < v.array.size(); ++k) {
        if (k) *out += ',';
        serialize_to(v.array[k], out);
      }
      *out += ']';
      return;
    }
    case Value::Type::kObject: {
      *out += '{';
      for (std::size_t k = 0; k < v.object.size(); ++k) {
        if (k) *out += ',';
        *out += quote(v.object[k].first);
        *out += ':';
        serialize_to(v.object[k].second, out);
      }
      *out += '}';
      return;
    }
  }
}

}  // namespace

Value Value::from_bool(bool b) {
  Value v;
  v.type = Type::kBool;
  v.boolean = b;
  return v;
}
Value Value::from_number(double d) {
  Value v;
  v.type = Type::kNumber;
  v.number = d;
  return v;
}
Value Value::from_float(float f) {
  double shortest = static_cast<double>(f);
  if (std::isfinite(f)) {
    for (int precision = 1; precision <= 9; ++precision) {  // 9 significant digits always round-trip a float
      double back = 0.0;
      if (text_to_double(double_to_text(static_cast<double>(f), precision), &back) && static_cast<float>(back) == f) {
        shortest = back;
        break;
      }
    }
  }
  return from_number(shortest);
}
Value Value::from_integer(std::int64_t i) {
  Value v;
  v.type = Type::kNumber;
  v.number = static_cast<double>(i);
  v.is_integer = true;
  v.integer = i;
  return v;
}
Value Value::from_string(std::string s) {
  Value v;
  v.type = Type::kString;
  v.string = std::move(s);
  return v;
}
Value Value::empty_array() {
  Value v;
  v.type = Type::kArray;
  return v;
}
Value Value::empty_object() {
  Value v;
  v.type = Type::kObject;
  return v;
}

const Value* Value::find(const std::string& key) const {
  for (const auto& member : object) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

const char* type_name(Value::Type type) noexcept {
  switch (type) {
    case Value::Type::kNull: return "null";
    case Value::Type::kBool: return "boolean";
    case Value::Type::kNumber: return "number";
    case Value::Type::kString: return "string";
    case Value::Type::kArray: return "array";
    case Value::Type::kObject: return "object";
  }
  return "unknown";
}

bool valid_utf8(const std::string& s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t pos = 0; pos < s.size();) {
    const std::size_t len = utf8_sequence_length(p + pos, s.size() - pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

Status parse(const char* data, std::size_t size, Value* out) {
  if (data == nullptr && size != 0) return Status(StatusCode::kNullPointer, "JSON: data is null");
  try {
    Value value;
    CULSTM_RETURN_IF_ERROR(Parser(data, size).parse_document(&value));
    *out = std::move(value);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return detail::error(StatusCode::kFormatError, "JSON: out of memory parsing ", size, " bytes");
  }
}

std::string serialize(const Value& value) {
  std::string out;
  serialize_to(value, &out);
  return out;
}

std::string quote(const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;  // UTF-8 passes through; writers check valid_utf8 first
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace json
}  // namespace io
}  // namespace culstm
