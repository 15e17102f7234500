// A small, strict JSON (RFC 8259) value, parser and serializer: enough for safetensors headers and culstm's
// "culstm.spec" metadata. We carry our own because those documents are tiny and the GPU build machines have no JSON
// package. The parser must be safe on arbitrary bytes (it is fuzzed): every read is bounds-checked, nesting is
// limited to kMaxDepth and the number of values to kMaxValues, strings must be valid UTF-8, duplicate object keys
// are refused (they would make a header ambiguous), and no exception escapes; failures are kFormatError with the
// byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "culstm/status.h"

namespace culstm {
namespace io {
namespace json {

// Deeper nesting than this is refused (safetensors headers nest 3 deep); keeps the recursive parser's stack small.
constexpr int kMaxDepth = 64;
// More values than this in one document are refused. A parsed Value takes ~100 bytes while its text can take 2
// ("0,"), so without a cap a 100 MB hostile header would need gigabytes. 1M values is ~125k safetensors entries,
// far more than any model file has (large checkpoints have a few thousand tensors per file).
constexpr std::size_t kMaxValues = std::size_t{1} << 20;

struct Value {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type = Type::kNull;
  bool boolean = false;
  double number = 0.0;
  // Set for numbers written as an integer literal (no fraction, no exponent) that fit in int64: offsets and shapes
  // above 2^53 stay exact this way. `number` holds the same value, rounded.
  bool is_integer = false;
  std::int64_t integer = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in document order; keys unique

  static Value null() { return Value(); }
  static Value from_bool(bool b);
  static Value from_number(double d);  // serialized with the fewest digits that read back as the same double
  // The double with the fewest decimal digits that converts back to exactly `f`: serializes as 0.2, not as
  // 0.20000000298023224, and reading it back and casting to float restores `f`.
  static Value from_float(float f);
  static Value from_integer(std::int64_t i);
  static Value from_string(std::string s);
  static Value empty_array();
  static Value empty_object();

  bool is_null() const noexcept { return type == Type::kNull; }
  bool is_bool() const noexcept { return type == Type::kBool; }
  bool is_number() const noexcept { return type == Type::kNumber; }
  bool is_string() const noexcept { return type == Type::kString; }
  bool is_array() const noexcept { return type == Type::kArray; }
  bool is_object() const noexcept { return type == Type::kObject; }

  // The member named `key` of an object, or nullptr (also for non-objects).
  const Value* find(const std::string& key) const;
  // Appends a member to an object (the caller keeps keys unique).
  void add(std::string key, Value value) { object.emplace_back(std::move(key), std::move(value)); }
};

// "null", "true", "number", ... for messages.
const char* type_name(Value::Type type) noexcept;

// Parses exactly one JSON value, optionally surrounded by whitespace, from [data, data + size).
Status parse(const char* data, std::size_t size, Value* out);
inline Status parse(const std::string& text, Value* out) {
  return parse(text.data(), text.size(), out);
}

// Compact JSON (no whitespace), object members in their stored order. Non-finite numbers, which JSON cannot
// represent, are written as null.
std::string serialize(const Value& value);
// `s` as a JSON string literal, quotes included. Bytes >= 0x80 are copied as they are, so `s` should be UTF-8.
std::string quote(const std::string& s);
// Whether `s` is well-formed UTF-8 (what the parser accepts inside strings); writers check names with it.
bool valid_utf8(const std::string& s) noexcept;

}  // namespace json
}  // namespace io
}  // namespace culstm
