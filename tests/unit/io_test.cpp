// File I/O: JSON, .npy, safetensors and model files. Round trips, byte-exact layouts NumPy and safetensors expect,
// and one test per kind of malformed input, each checking the StatusCode and that the message names the culprit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "float16.h"
#include "io/array.h"
#include "io/json.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/weights_io.h"
#include "test_util.h"

namespace culstm {
namespace io {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "culstm_io_test_" + name;
}

Bytes file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void append(Bytes* out, const std::string& s) {
  out->insert(out->end(), s.begin(), s.end());
}
void append(Bytes* out, const Bytes& b) {
  out->insert(out->end(), b.begin(), b.end());
}

template <typename T>
Bytes le_bytes(const std::vector<T>& values) {
  Bytes b(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(b.data(), values.data(), b.size());
  return b;
}

// A .npy image with the given header dict text (padded to a 16-byte boundary like NumPy does) and data.
Bytes make_npy(const std::string& dict, const Bytes& data, int major = 1) {
  Bytes out;
  append(&out, std::string("\x93NUMPY", 6));
  out.push_back(static_cast<std::uint8_t>(major));
  out.push_back(0);
  const std::size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((preamble + header.size() + 1) % 16 != 0) header += ' ';
  header += '\n';
  const std::size_t n = header.size();
  for (std::size_t k = 0; k < preamble - 8; ++k) out.push_back(static_cast<std::uint8_t>((n >> (8 * k)) & 0xff));
  append(&out, header);
  append(&out, data);
  return out;
}

// A safetensors image: 8-byte LE header length, the header text as given, the data.
Bytes make_safetensors(const std::string& header, const Bytes& data) {
  Bytes out;
  for (int k = 0; k < 8; ++k) out.push_back(static_cast<std::uint8_t>((header.size() >> (8 * k)) & 0xff));
  append(&out, header);
  append(&out, data);
  return out;
}

Status parse_npy_bytes(const Bytes& b, Array* out) {
  return parse_npy(b.data(), b.size(), out);
}
Status parse_st_bytes(const Bytes& b, SafetensorsFile* out) {
  return parse_safetensors(b.data(), b.size(), out);
}

#define EXPECT_STATUS(expr, code_, substring)                                                \
  do {                                                                                       \
    const ::culstm::Status st_ = (expr);                                                     \
    EXPECT_EQ(st_.code(), (code_)) << st_.to_string();                                       \
    EXPECT_NE(st_.message().find(substring), std::string::npos)                              \
        << "message \"" << st_.message() << "\" does not mention \"" << (substring) << "\""; \
  } while (0)

// ---- JSON ----------------------------------------------------------------------------------------------------------

TEST(IoJsonTest, ParsesEveryValueKind) {
  json::Value v;
  ASSERT_TRUE(json::parse(R"( {"a": [1, -2.5e1, true, false, null], "b": {"c": "x\"y\\z\/\n\t\u00e9\ud83d\ude00"},
                              "big": 9007199254740993, "neg": -9223372036854775808} )",
                          &v)
                  .ok());
  ASSERT_TRUE(v.is_object());
  const json::Value* a = v.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 5u);
  EXPECT_TRUE(a->array[0].is_integer);
  EXPECT_EQ(a->array[0].integer, 1);
  EXPECT_FALSE(a->array[1].is_integer);
  EXPECT_EQ(a->array[1].number, -25.0);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_TRUE(a->array[3].is_bool() && !a->array[3].boolean);
  EXPECT_TRUE(a->array[4].is_null());
  EXPECT_EQ(v.find("b")->find("c")->string, "x\"y\\z/\n\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.find("big")->integer, 9007199254740993);  // exact beyond 2^53
  EXPECT_EQ(v.find("neg")->integer, INT64_MIN);
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(IoJsonTest, RejectsMalformedText) {
  const char* cases[] = {
      "",
      "{",
      "{\"a\" 1}",
      "[1,]",
      "[1 2]",
      "01",
      "1.",
      "-",
      "1e",
      "tru",
      "\"abc",
      "\"\\x\"",
      "\"\\u12\"",
      "\"\\ud800\"",
      "\"\\udc00\"",
      "\"\\ud800\\u0041\"",
      "\"\x01\"",
      "{\"a\":1,\"a\":2}",
      "1e400",
      "[1] x",
      "{1:2}",
      "nul",
  };
  for (const char* text : cases) {
    json::Value v;
    const Status st = json::parse(text, &v);
    EXPECT_EQ(st.code(), StatusCode::kFormatError) << "accepted: " << text;
    EXPECT_NE(st.message().find("at byte"), std::string::npos) << st.message();
  }
  const std::string bad_utf8[] = {"\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xe2\x82\"",
                                  "\"\xf4\x90\x80\x80\""};
  for (const std::string& text : bad_utf8) {
    json::Value v;
    EXPECT_STATUS(json::parse(text, &v), StatusCode::kFormatError, "UTF-8");
  }
}

TEST(IoJsonTest, LimitsNestingDepth) {
  json::Value v;
  const std::string ok = std::string(json::kMaxDepth, '[') + std::string(json::kMaxDepth, ']');
  EXPECT_TRUE(json::parse(ok, &v).ok());
  const std::string deep = std::string(json::kMaxDepth + 1, '[') + std::string(json::kMaxDepth + 1, ']');
  EXPECT_STATUS(json::parse(deep, &v), StatusCode::kFormatError, "nesting");
  // Far deeper than the limit must fail cleanly, not overflow the stack.
  EXPECT_STATUS(json::parse(std::string(1000000, '['), &v), StatusCode::kFormatError, "nesting");
  // A flat array past the value cap (memory, not depth, is the risk there).
  std::string many = "[";
  for (std::size_t k = 0; k < json::kMaxValues; ++k) many += "0,";
  many += "0]";
  EXPECT_STATUS(json::parse(many, &v), StatusCode::kFormatError, "values");
}

TEST(IoJsonTest, SerializesAndReadsBack) {
  json::Value v = json::Value::empty_object();
  v.add("s", json::Value::from_string("q\"b\\\n\x01\xc3\xa9"));
  v.add("f", json::Value::from_float(0.2f));
  v.add("i", json::Value::from_integer(-12345678901234));
  v.add("d", json::Value::from_number(1.0 / 3.0));
  v.add("n", json::Value::null());
  const std::string text = json::serialize(v);
  EXPECT_NE(text.find("\"f\":0.2,"), std::string::npos) << text;
  EXPECT_NE(text.find("\\u0001"), std::string::npos) << text;
  json::Value back;
  ASSERT_TRUE(json::parse(text, &back).ok()) << text;
  EXPECT_EQ(back.find("s")->string, v.find("s")->string);
  EXPECT_EQ(static_cast<float>(back.find("f")->number), 0.2f);
  EXPECT_EQ(back.find("i")->integer, -12345678901234);
  EXPECT_EQ(back.find("d")->number, 1.0 / 3.0);
  EXPECT_TRUE(back.find("n")->is_null());
}

// ---- .npy ----------------------------------------------------------------------------------------------------------

TEST(IoArrayTest, ConvertsBetweenDtypes) {
  const std::vector<float> values = {-2.5f, 0.5f, 1.5f, 1e10f, -1e10f, std::nanf("")};
  EXPECT_EQ(Array::from_f32(values, {6}, DType::kI32).to_f32(),
            (std::vector<float>{-2.0f, 0.0f, 2.0f, 2147483647.0f, -2147483648.0f, 0.0f}));  // nearest even, saturated
  const Array h = Array::from_f32({1.0f / 3.0f, 65504.0f, 1e6f}, {3}, DType::kF16);
  EXPECT_EQ(h.bytes.size(), 6u);
  EXPECT_EQ(h.to_f32()[0], detail::half_to_float(detail::float_to_half(1.0f / 3.0f)));
  EXPECT_EQ(h.to_f32()[1], 65504.0f);
  EXPECT_TRUE(std::isinf(h.to_f32()[2]));
  Array big = Array::from_f32(std::vector<float>(2 * 3 * 4 * 5 * 6, 1.0f), {2, 3, 4, 5, 6});
  const TensorView v5 = big.view();
  EXPECT_EQ(v5.rank, TensorView::kMaxRank + 1);  // not representable: validation rejects it
  Array m = Array::from_f32({1, 2, 3, 4, 5, 6}, {2, 3}, DType::kBF16);
  const TensorView v = m.view();
  EXPECT_EQ(v.rank, 2);
  EXPECT_EQ(v.shape[1], 3);
  EXPECT_EQ(v.dtype, DType::kBF16);
  EXPECT_EQ(v.data, m.bytes.data());
  EXPECT_EQ(v.memory, MemoryKind::kHost);
  std::uint64_t bytes = 0;
  EXPECT_TRUE(checked_byte_size({0, INT64_MAX}, DType::kF64, &bytes));
  EXPECT_EQ(bytes, 0u);
  EXPECT_FALSE(checked_byte_size({INT64_MAX, 2, 0}, DType::kF32, &bytes));
  EXPECT_FALSE(checked_byte_size({1LL << 62}, DType::kF32, &bytes));
  EXPECT_FALSE(checked_byte_size({-1}, DType::kF32, &bytes));
}

TEST(IoNpyTest, RoundTripsEveryDtype) {
  const std::vector<float> values = {-3.0f, 0.0f, 1.0f, 3.0f, 7.0f, 100.0f};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kI64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Array a = Array::from_f32(values, {2, 3}, dtype);
    const std::string path = temp_path(std::string("rt_") + dtype_name(dtype) + ".npy");
    ASSERT_TRUE(write_npy(path, a).ok());
    Array b;
    const Status st = read_npy(path, &b);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.to_f32(), values);
    if (dtype == DType::kBF16) {
      EXPECT_EQ(b.dtype, DType::kF32);  // NumPy has no bf16: stored as f4
    } else {
      EXPECT_EQ(b.dtype, dtype);
      EXPECT_EQ(b.bytes, a.bytes);
    }
  }
}

TEST(IoNpyTest, WritesNumpysLayout) {
  struct Case {
    std::vector<std::int64_t> shape;
    std::string shape_text;
  };
  for (const Case& c : {Case{{2, 3}, "(2, 3)"}, Case{{5}, "(5,)"}, Case{{}, "()"}, Case{{0, 4}, "(0, 4)"}}) {
    SCOPED_TRACE(c.shape_text);
    std::int64_t n = 1;
    for (std::int64_t d : c.shape) n *= d;
    const Array a = Array::from_f32(std::vector<float>(static_cast<std::size_t>(n), 1.5f), c.shape, DType::kF64);
    const std::string path = temp_path("layout.npy");
    ASSERT_TRUE(write_npy(path, a).ok());
    const Bytes b = file_bytes(path);
    ASSERT_GE(b.size(), 10u);
    EXPECT_EQ(std::string(b.begin(), b.begin() + 6), std::string("\x93NUMPY", 6));
    EXPECT_EQ(b[6], 1);
    EXPECT_EQ(b[7], 0);
    const std::size_t header_len = b[8] | (b[9] << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u);
    const std::string header(b.begin() + 10, b.begin() + 10 + static_cast<std::ptrdiff_t>(header_len));
    EXPECT_EQ(header.rfind("{'descr': '<f8', 'fortran_order': False, 'shape': " + c.shape_text + ", }", 0), 0u)
        << header;
    EXPECT_EQ(header.back(), '\n');
    EXPECT_EQ(b.size(), 10 + header_len + static_cast<std::size_t>(n) * 8);
    Array back;
    ASSERT_TRUE(read_npy(path, &back).ok());
    EXPECT_EQ(back.shape, c.shape);
    EXPECT_EQ(back.bytes, a.bytes);
  }
}

TEST(IoNpyTest, ReadsFortranOrder) {
  // Element (i, j, k) of a [2, 3, 4] array has value 12i + 4j + k; Fortran order stores it at i + 2j + 6k.
  std::vector<float> fortran(24);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) fortran[static_cast<std::size_t>(i + 2 * j + 6 * k)] = 12.0f * i + 4.0f * j + k;
  Array a;
  const Status st =
      parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }", le_bytes(fortran)), &a);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3, 4}));
  const std::vector<float> c = a.to_f32();
  for (std::size_t n = 0; n < c.size(); ++n) EXPECT_EQ(c[n], static_cast<float>(n)) << n;

  // 2-d int64, double-quoted keys and Python 2's long suffix.
  Array m;
  ASSERT_TRUE(parse_npy_bytes(make_npy(R"({"descr": "<i8", "fortran_order": True, "shape": (2L, 3L)})",
                                       le_bytes(std::vector<std::int64_t>{0, 3, 1, 4, 2, 5})),
                              &m)
                  .ok());
  EXPECT_EQ(m.to_f32(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST(IoNpyTest, ReadsBigEndian) {
  auto swapped = [](Bytes b, std::size_t item) {
    for (std::size_t k = 0; k < b.size(); k += item) std::reverse(b.begin() + k, b.begin() + k + item);
    return b;
  };
  const std::vector<float> f32 = {1.0f, -2.5f, 1e-3f};
  Array a;
  ASSERT_TRUE(parse_npy_bytes(
                  make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", swapped(le_bytes(f32), 4)), &a)
                  .ok());
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.to_f32(), f32);

  const std::vector<std::int64_t> i64 = {-1, 1LL << 40, 7};
  ASSERT_TRUE(parse_npy_bytes(
                  make_npy("{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }", swapped(le_bytes(i64), 8)), &a)
                  .ok());
  EXPECT_EQ(a.bytes, le_bytes(i64));

  const std::vector<std::uint16_t> f16 = {detail::float_to_half(0.5f), detail::float_to_half(-3.0f)};
  ASSERT_TRUE(parse_npy_bytes(
                  make_npy("{'descr': '>f2', 'fortran_order': True, 'shape': (1, 2), }", swapped(le_bytes(f16), 2)), &a)
                  .ok());
  EXPECT_EQ(a.dtype, DType::kF16);
  EXPECT_EQ(a.to_f32(), (std::vector<float>{0.5f, -3.0f}));
}

TEST(IoNpyTest, ReadsVersions2And3) {
  for (int major : {2, 3}) {
    Array a;
    const Status st = parse_npy_bytes(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                               le_bytes(std::vector<double>{1.25, -4.0}), major),
                                      &a);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(a.to_f32(), (std::vector<float>{1.25f, -4.0f}));
  }
}

TEST(IoNpyTest, RejectsMalformedFiles) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const Bytes data = le_bytes(std::vector<float>{1, 2});
  Array a;
  EXPECT_STATUS(parse_npy_bytes(Bytes{0x93, 'N', 'U'}, &a), StatusCode::kFormatError, "too short");
  Bytes bad_magic = make_npy(dict, data);
  bad_magic[1] = 'X';
  EXPECT_STATUS(parse_npy_bytes(bad_magic, &a), StatusCode::kFormatError, "magic");
  Bytes bad_version = make_npy(dict, data);
  bad_version[6] = 4;
  EXPECT_STATUS(parse_npy_bytes(bad_version, &a), StatusCode::kFormatError, "version 4.0");
  Bytes long_header = make_npy(dict, data);
  long_header[8] = 0xff;
  long_header[9] = 0xff;
  EXPECT_STATUS(parse_npy_bytes(long_header, &a), StatusCode::kFormatError, "header length 65535");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False}", data), &a),
                StatusCode::kFormatError, "'shape'");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}", data), &a),
                StatusCode::kFormatError, "'<u2'");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", data), &a),
                StatusCode::kFormatError, "negative");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                                         "(4611686018427387904, 4611686018427387904, 0)}",
                                         Bytes{}),
                                &a),
                StatusCode::kFormatError, "overflow");
  EXPECT_STATUS(
      parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", data), &a),
      StatusCode::kFormatError, "64 bits");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", data), &a),
                StatusCode::kFormatError, "truncated");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", data), &a),
                StatusCode::kFormatError, "trailing");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': maybe, 'shape': (2,)}", data), &a),
                StatusCode::kFormatError, "fortran_order");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", data), &a),
                StatusCode::kFormatError, "'x'");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", data), &a),
                StatusCode::kFormatError, "not a tuple");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", data), &a),
                StatusCode::kFormatError, "after the header");
  EXPECT_STATUS(parse_npy_bytes(make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", data), &a),
                StatusCode::kFormatError, "structured");
  EXPECT_STATUS(read_npy(temp_path("does_not_exist.npy"), &a), StatusCode::kIoError, "does_not_exist.npy");
}

// ---- safetensors ---------------------------------------------------------------------------------------------------

TEST(IoSafetensorsTest, RoundTripsEveryDtypeAndMetadata) {
  SafetensorsFile f;
  f.metadata["culstm.note"] = "quotes \" and \\ and \xc3\xa9";
  f.metadata["format"] = "pt";
  const std::vector<float> values = {1.0f, -0.5f, 2.0f, 0.25f, -8.0f, 3.0f};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kI64}) {
    f.tensors[std::string("t_") + dtype_name(dtype)] = Array::from_f32(values, {3, 2}, dtype);
  }
  f.tensors["empty"] = Array::from_f32({}, {0, 5});
  f.tensors["scalar"] = Array::from_f32({42.0f}, {});
  const std::string path = temp_path("rt.safetensors");
  ASSERT_TRUE(write_safetensors(path, f).ok());

  const Bytes b = file_bytes(path);
  ASSERT_GE(b.size(), 8u);
  std::uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= std::uint64_t{b[static_cast<std::size_t>(k)]} << (8 * k);
  EXPECT_EQ(n % 8, 0u);  // header padded so the data starts 8-byte aligned
  const std::string header(b.begin() + 8, b.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  EXPECT_EQ(header.rfind("{\"__metadata__\":{", 0), 0u) << header;

  SafetensorsFile g;
  const Status st = read_safetensors(path, &g);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (const auto& kv : f.tensors) {
    SCOPED_TRACE(kv.first);
    const Array& got = g.tensors.at(kv.first);
    EXPECT_EQ(got.dtype, kv.second.dtype);
    EXPECT_EQ(got.shape, kv.second.shape);
    EXPECT_EQ(got.bytes, kv.second.bytes);
  }
  EXPECT_EQ(g.tensors.at("t_bf16").to_f32(), values);
}

TEST(IoSafetensorsTest, ReadsHandWrittenHeader) {
  // Keys in any order, whitespace, an empty tensor, a hole between tensors, metadata last.
  const std::string header = R"({ "b": {"data_offsets": [16, 24], "shape": [2], "dtype": "F32"},
    "a": {"dtype": "I64", "shape": [1, 1], "data_offsets": [0, 8]}, "z": {"dtype": "F16", "shape": [0],
    "data_offsets": [8, 8]}, "__metadata__": {"k": "v"} }   )";
  Bytes data = le_bytes(std::vector<std::int64_t>{-7});
  append(&data, Bytes(8, 0xee));
  append(&data, le_bytes(std::vector<float>{0.5f, 1.5f}));
  SafetensorsFile f;
  const Status st = parse_st_bytes(make_safetensors(header, data), &f);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(f.metadata.at("k"), "v");
  EXPECT_EQ(f.tensors.at("a").to_f32(), std::vector<float>{-7.0f});
  EXPECT_EQ(f.tensors.at("b").to_f32(), (std::vector<float>{0.5f, 1.5f}));
  EXPECT_EQ(f.tensors.at("z").numel(), 0);
}

TEST(IoSafetensorsTest, RejectsMalformedFiles) {
  const Bytes data = le_bytes(std::vector<float>{1, 2, 3, 4});
  auto one = [&](const std::string& entry) { return make_safetensors("{\"w\": " + entry + "}", data); };
  SafetensorsFile f;
  EXPECT_STATUS(parse_st_bytes(Bytes{1, 2, 3}, &f), StatusCode::kFormatError, "too short");
  Bytes huge(16, 0);
  const std::uint64_t too_big = kMaxSafetensorsHeaderBytes + 1;
  for (int k = 0; k < 8; ++k) huge[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(too_big >> (8 * k));
  EXPECT_STATUS(parse_st_bytes(huge, &f), StatusCode::kFormatError, "exceeds the limit");
  Bytes beyond = make_safetensors("{}", {});
  beyond[0] = 3;
  EXPECT_STATUS(parse_st_bytes(beyond, &f), StatusCode::kFormatError, "beyond the end of the file");
  EXPECT_STATUS(parse_st_bytes(make_safetensors("{\"w\": ", data), &f), StatusCode::kFormatError, "JSON");
  EXPECT_STATUS(parse_st_bytes(make_safetensors("[1, 2]", data), &f), StatusCode::kFormatError, "object");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "U8", "shape": [16], "data_offsets": [0, 16]})"), &f),
                StatusCode::kFormatError, "'U8'");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]})"), &f),
                StatusCode::kFormatError, "tensor 'w': shape [3]");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [5], "data_offsets": [0, 20]})"), &f),
                StatusCode::kFormatError, "beyond the data section");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]})"), &f),
                StatusCode::kFormatError, "non-negative");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]})"), &f),
                StatusCode::kFormatError, "end before they begin");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [4]})"), &f), StatusCode::kFormatError, "data_offsets");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "extra": 1})"), &f),
                StatusCode::kFormatError, "'extra'");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [2.0, 2], "data_offsets": [0, 16]})"), &f),
                StatusCode::kFormatError, "non-negative integers");
  EXPECT_STATUS(parse_st_bytes(one(R"({"dtype": "F32", "shape": [4611686018427387904, 4611686018427387904, 0],)"
                                   R"( "data_offsets": [0, 0]})"),
                               &f),
                StatusCode::kFormatError, "overflows");
  EXPECT_STATUS(parse_st_bytes(make_safetensors(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                                                data),
                               &f),
                StatusCode::kFormatError, "'a' [0, 12) and 'b' [8, 16) overlap");
  EXPECT_STATUS(parse_st_bytes(make_safetensors(R"({"__metadata__": {"k": 1}})", {}), &f), StatusCode::kFormatError,
                "'k'");
  EXPECT_STATUS(parse_st_bytes(make_safetensors(R"({"w": {}, "w": {}})", {}), &f), StatusCode::kFormatError,
                "duplicate");
  EXPECT_STATUS(read_safetensors(::testing::TempDir(), &f), StatusCode::kIoError, "cannot read");
  EXPECT_STATUS(read_safetensors(temp_path("missing.safetensors"), &f), StatusCode::kIoError, "cannot open");
}

TEST(IoSafetensorsTest, WriterRejectsInconsistentArrays) {
  SafetensorsFile f;
  Array a = Array::from_f32({1, 2, 3}, {4});
  f.tensors["w"] = a;
  EXPECT_STATUS(write_safetensors(temp_path("bad.safetensors"), f), StatusCode::kInvalidArgument, "'w'");
  f.tensors.clear();
  f.tensors["\xff"] = Array::from_f32({1}, {1});
  EXPECT_STATUS(write_safetensors(temp_path("bad.safetensors"), f), StatusCode::kInvalidArgument,
                "invalid tensor name");
}

// Every truncation and many one-byte corruptions of valid files: the parsers must return (ok or an error), never
// read out of bounds (run under ASan) or throw.
TEST(IoSafetensorsTest, SurvivesTruncationAndCorruption) {
  LstmSpec spec;
  spec.input_size = 3;
  spec.hidden_size = 2;
  spec.direction = Direction::kBidirectional;
  spec.peepholes = true;
  std::mt19937 rng(7);
  SafetensorsFile model;
  ASSERT_TRUE(weights_to_safetensors(spec, testing_util::random_weights(spec, rng), &model).ok());
  const std::string st_path = temp_path("fuzz.safetensors");
  ASSERT_TRUE(write_safetensors(st_path, model).ok());
  const std::string npy_path = temp_path("fuzz.npy");
  ASSERT_TRUE(write_npy(npy_path, Array::from_f32({1, 2, 3, 4, 5, 6}, {2, 3}, DType::kF16)).ok());

  for (const std::string& path : {st_path, npy_path}) {
    const Bytes good = file_bytes(path);
    std::vector<Bytes> inputs;
    for (std::size_t n = 0; n < good.size(); ++n) inputs.emplace_back(good.begin(), good.begin() + n);
    for (std::size_t k = 0; k < good.size(); ++k) {
      for (std::uint8_t v : {0x00, 0x01, 0x22, 0x30, 0x5b, 0x7d, 0x80, 0xff}) {
        Bytes b = good;
        b[k] = v;
        inputs.push_back(std::move(b));
      }
    }
    for (const Bytes& b : inputs) {
      SafetensorsFile f;
      if (parse_safetensors(b.data(), b.size(), &f).ok()) {
        LstmSpec s;
        Weights w;
        (void)weights_from_safetensors(f, "", &s, &w);
      }
      Array a;
      (void)parse_npy(b.data(), b.size(), &a);
      json::Value v;
      (void)json::parse(reinterpret_cast<const char*>(b.data()), b.size(), &v);
    }
  }
}

// ---- model files ---------------------------------------------------------------------------------------------------

LstmSpec full_spec() {
  LstmSpec spec;
  spec.input_size = 5;
  spec.hidden_size = 6;
  spec.proj_size = 4;
  spec.num_layers = 2;
  spec.direction = Direction::kBidirectional;
  spec.bias = true;
  spec.layout = BatchLayout::kBatchMajor;
  spec.gate_activation = Activation::hard_sigmoid(1.0f / 6.0f, 0.5f);
  spec.cell_activation = Activation::scaled_tanh(1.5f, 0.7f);
  spec.hidden_activation = Activation::elu(0.3f);
  spec.gate_clip = 3.3f;
  spec.cell_clip = 7.25f;
  spec.peepholes = true;
  spec.input_forget = true;
  spec.math = MathMode::kAllowTF32;
  return spec;
}

void expect_same_activation(const Activation& a, const Activation& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.alpha, b.alpha);
  EXPECT_EQ(a.beta, b.beta);
}

void expect_same_spec(const LstmSpec& a, const LstmSpec& b) {
  EXPECT_EQ(a.input_size, b.input_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.proj_size, b.proj_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.direction, b.direction);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.layout, b.layout);
  expect_same_activation(a.gate_activation, b.gate_activation);
  expect_same_activation(a.cell_activation, b.cell_activation);
  expect_same_activation(a.hidden_activation, b.hidden_activation);
  EXPECT_EQ(a.gate_clip, b.gate_clip);
  EXPECT_EQ(a.cell_clip, b.cell_clip);
  EXPECT_EQ(a.peepholes, b.peepholes);
  EXPECT_EQ(a.input_forget, b.input_forget);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.math, b.math);
}

void expect_same_weights(const Weights& a, const Weights& b) {
  ASSERT_EQ(a.num_layers(), b.num_layers());
  ASSERT_EQ(a.num_directions(), b.num_directions());
  for (int l = 0; l < a.num_layers(); ++l) {
    for (int d = 0; d < a.num_directions(); ++d) {
      SCOPED_TRACE(testing::Message() << "layer " << l << " direction " << d);
      const LayerWeights &x = a.at(l, d), &y = b.at(l, d);
      EXPECT_EQ(x.w_ih, y.w_ih);
      EXPECT_EQ(x.w_hh, y.w_hh);
      EXPECT_EQ(x.b_ih, y.b_ih);
      EXPECT_EQ(x.b_hh, y.b_hh);
      EXPECT_EQ(x.w_hr, y.w_hr);
      EXPECT_EQ(x.peephole, y.peephole);
    }
  }
}

TEST(IoWeightsTest, ModelFileRoundTripsExactly) {
  const LstmSpec spec = full_spec();
  ASSERT_TRUE(spec.validate().ok()) << spec.validate().to_string();
  std::mt19937 rng(1234);
  const Weights weights = testing_util::random_weights(spec, rng);
  const std::string path = temp_path("model.safetensors");
  const Status saved = save_model_file(path, spec, weights);
  ASSERT_TRUE(saved.ok()) << saved.to_string();

  // PyTorch's names and shapes, f32.
  SafetensorsFile f;
  ASSERT_TRUE(read_safetensors(path, &f).ok());
  EXPECT_EQ(f.tensors.size(), 2u * 2u * 6u);
  EXPECT_EQ(f.tensors.at("weight_ih_l0").shape, (std::vector<std::int64_t>{24, 5}));
  EXPECT_EQ(f.tensors.at("weight_ih_l1_reverse").shape, (std::vector<std::int64_t>{24, 8}));
  EXPECT_EQ(f.tensors.at("weight_hh_l1").shape, (std::vector<std::int64_t>{24, 4}));
  EXPECT_EQ(f.tensors.at("bias_hh_l0_reverse").shape, (std::vector<std::int64_t>{24}));
  EXPECT_EQ(f.tensors.at("weight_hr_l1_reverse").shape, (std::vector<std::int64_t>{4, 6}));
  EXPECT_EQ(f.tensors.at("peephole_l0").shape, (std::vector<std::int64_t>{18}));
  EXPECT_EQ(f.tensors.at("weight_ih_l0").dtype, DType::kF32);
  EXPECT_NE(f.metadata.at("culstm.spec").find("\"gate_clip\":3.3"), std::string::npos) << f.metadata.at("culstm.spec");

  LstmSpec got_spec;
  Weights got_weights;
  const Status loaded = load_model_file(path, "", &got_spec, &got_weights);
  ASSERT_TRUE(loaded.ok()) << loaded.to_string();
  expect_same_spec(got_spec, spec);
  expect_same_weights(got_weights, weights);
}

TEST(IoWeightsTest, Bf16AndF16ModelsStoreTheirDtype) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    LstmSpec spec;
    spec.input_size = 3;
    spec.hidden_size = 5;
    spec.dtype = dtype;
    spec.direction = Direction::kReverse;
    spec.bias = false;
    std::mt19937 rng(5);
    Weights weights = testing_util::random_weights(spec, rng);
    // Values representable in the storage type round-trip exactly.
    for (std::vector<float>* t : {&weights.at(0, 0).w_ih, &weights.at(0, 0).w_hh}) {
      *t = Array::from_f32(*t, {static_cast<std::int64_t>(t->size())}, dtype).to_f32();
    }
    SafetensorsFile f;
    ASSERT_TRUE(weights_to_safetensors(spec, weights, &f).ok());
    EXPECT_EQ(f.tensors.at("weight_ih_l0").dtype, dtype);
    EXPECT_EQ(f.tensors.count("bias_ih_l0"), 0u);
    LstmSpec got_spec;
    Weights got_weights;
    const Status st = weights_from_safetensors(f, "", &got_spec, &got_weights);
    ASSERT_TRUE(st.ok()) << st.to_string();
    expect_same_spec(got_spec, spec);
    expect_same_weights(got_weights, weights);
  }
  LstmSpec spec;
  spec.input_size = 1;
  spec.hidden_size = 1;
  spec.dtype = DType::kF16;
  Weights weights = Weights::zeros_for(spec);
  weights.at(0, 0).w_hh[2] = 1e6f;  // beyond f16's range
  SafetensorsFile f;
  EXPECT_STATUS(weights_to_safetensors(spec, weights, &f), StatusCode::kInvalidArgument, "weight_hh_l0[2]");
}

// A file as PyTorch's save_file(lstm.state_dict()) inside a bigger model would hold it: a prefix, F64 tensors (the
// reader converts), no culstm metadata, and unrelated tensors that must be ignored.
SafetensorsFile pytorch_like_file(const std::string& prefix, std::int64_t I, std::int64_t H, int L, bool reverse) {
  SafetensorsFile f;
  std::mt19937 rng(99);
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    f.tensors[prefix + name] =
        Array::from_f32(testing_util::random_values(static_cast<std::size_t>(n), rng), shape, DType::kF64);
  };
  const int D = reverse ? 2 : 1;
  for (int l = 0; l < L; ++l) {
    for (int d = 0; d < D; ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
      add("weight_ih" + sfx, {4 * H, l == 0 ? I : D * H});
      add("weight_hh" + sfx, {4 * H, H});
      add("bias_ih" + sfx, {4 * H});
      add("bias_hh" + sfx, {4 * H});
    }
  }
  add("embedding.weight", {10, I});
  f.tensors["decoder.weight_ih_l0"] = Array::from_f32({1, 2}, {2});  // another module's LSTM: not under the prefix
  return f;
}

TEST(IoWeightsTest, InfersSpecFromPyTorchNames) {
  const SafetensorsFile f = pytorch_like_file("encoder.lstm.", 7, 3, 3, true);
  LstmSpec spec;
  Weights weights;
  const Status st = weights_from_safetensors(f, "encoder.lstm.", &spec, &weights);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(spec.input_size, 7);
  EXPECT_EQ(spec.hidden_size, 3);
  EXPECT_EQ(spec.proj_size, 0);
  EXPECT_EQ(spec.num_layers, 3);
  EXPECT_EQ(spec.direction, Direction::kBidirectional);
  EXPECT_TRUE(spec.bias);
  EXPECT_FALSE(spec.peepholes);
  EXPECT_EQ(spec.gate_activation.kind, ActivationKind::kSigmoid);
  EXPECT_EQ(spec.dtype, DType::kF32);
  EXPECT_EQ(weights.at(2, 1).w_ih, f.tensors.at("encoder.lstm.weight_ih_l2_reverse").to_f32());

  // "reverse" is the one direction names cannot tell.
  SafetensorsFile g = pytorch_like_file("", 2, 4, 1, false);
  g.metadata["culstm.spec"] = R"({"direction": "reverse", "gate_activation": {"kind": "hard_sigmoid"}})";
  ASSERT_TRUE(weights_from_safetensors(g, "", &spec, &weights).ok());
  EXPECT_EQ(spec.direction, Direction::kReverse);
  EXPECT_EQ(spec.num_layers, 1);
  expect_same_activation(spec.gate_activation, Activation::hard_sigmoid());  // kind alone takes ONNX's defaults
}

TEST(IoWeightsTest, RejectsMalformedModels) {
  const std::string p = "m.";
  auto base = [&] { return pytorch_like_file(p, 4, 2, 2, true); };
  LstmSpec spec;
  Weights weights;
  auto load = [&](const SafetensorsFile& f) { return weights_from_safetensors(f, p, &spec, &weights); };
  {
    SafetensorsFile f = base();
    f.tensors.erase("m.weight_hh_l1");
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "missing tensor 'm.weight_hh_l1'");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.weight_ih_l1"] = Array::from_f32(std::vector<float>(8 * 3), {8, 3});
    EXPECT_STATUS(load(f), StatusCode::kShapeMismatch, "tensor 'm.weight_ih_l1': expected shape [8, 4], got [8, 3]");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.bias_ih_l0"] = Array::from_f32(std::vector<float>(8), {2, 4});
    EXPECT_STATUS(load(f), StatusCode::kShapeMismatch, "'m.bias_ih_l0': expected shape [8], got [2, 4]");
  }
  {
    SafetensorsFile f = base();
    f.tensors.erase("m.bias_hh_l1_reverse");
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "inconsistent bias: missing tensor 'm.bias_hh_l1_reverse'");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.weight_ih_l5"] = Array::from_f32(std::vector<float>(8 * 4), {8, 4});
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "unexpected tensor 'm.weight_ih_l5'");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.peephole_l01"] = Array::from_f32(std::vector<float>(6), {6});
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "unexpected tensor 'm.peephole_l01'");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.weight_hr_l1"] = Array::from_f32(std::vector<float>(2), {1, 2});
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "inconsistent projection: missing tensor 'm.weight_hr_l0'");
  }
  {
    SafetensorsFile f = base();
    f.metadata["culstm.spec"] = R"({"direction": "reverse"})";
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "'m.weight_ih_l0_reverse' is present");
  }
  {
    SafetensorsFile f = pytorch_like_file(p, 4, 2, 1, false);
    f.metadata["culstm.spec"] = R"({"direction": "bidirectional"})";
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "missing tensor 'm.weight_ih_l0_reverse'");
  }
  {
    SafetensorsFile f = base();
    f.metadata["culstm.spec"] = R"({"direction": )";
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "culstm.spec: JSON");
  }
  {
    SafetensorsFile f = base();
    f.metadata["culstm.spec"] = R"({"cell_activation": {"kind": "swish"}})";
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "cell_activation: unknown activation kind 'swish'");
  }
  {
    SafetensorsFile f = base();
    f.metadata["culstm.spec"] = R"({"cell_clip": "big"})";
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "cell_clip");
  }
  {
    SafetensorsFile f = base();
    f.metadata["culstm.spec"] = R"({"peephole_order": "ifo"})";
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "unknown field 'peephole_order'");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.weight_hh_l0"] = Array::from_f32(std::vector<float>(8 * 2), {8, 2}, DType::kI32);
    EXPECT_STATUS(load(f), StatusCode::kDtypeMismatch, "'m.weight_hh_l0'");
  }
  {
    SafetensorsFile f = base();
    f.tensors["m.weight_hh_l0"] = Array::from_f32(std::vector<float>(6 * 2), {6, 2});
    EXPECT_STATUS(load(f), StatusCode::kShapeMismatch, "'m.weight_hh_l0'");
  }
  {
    SafetensorsFile f = base();
    Array& a = f.tensors["m.bias_hh_l1"];
    a = Array::from_f32(std::vector<float>(8, std::nanf("")), {8});
    EXPECT_STATUS(load(f), StatusCode::kFormatError, "'m.bias_hh_l1' element 0");
  }
  {
    SafetensorsFile f = base();
    f.metadata["culstm.spec"] = R"({"gate_clip": -1})";
    EXPECT_STATUS(load(f), StatusCode::kInvalidSpec, "gate_clip");
  }
  EXPECT_STATUS(weights_from_safetensors(base(), "other.", &spec, &weights), StatusCode::kFormatError,
                "missing tensor 'other.weight_ih_l0'");
  EXPECT_STATUS(weights_from_safetensors(base(), "", &spec, &weights), StatusCode::kFormatError,
                "(the file has 'decoder.weight_ih_l0': prefix 'decoder.'?)");
  EXPECT_STATUS(load_model_file(temp_path("no_model.safetensors"), "", &spec, &weights), StatusCode::kIoError,
                "no_model.safetensors");
}

TEST(IoWeightsTest, FailedLoadLeavesOutputsUntouched) {
  SafetensorsFile f = pytorch_like_file("", 4, 2, 1, false);
  f.tensors.erase("weight_hh_l0");
  LstmSpec spec = full_spec();
  Weights weights = Weights::zeros_for(spec);
  EXPECT_FALSE(weights_from_safetensors(f, "", &spec, &weights).ok());
  expect_same_spec(spec, full_spec());
  EXPECT_EQ(weights.num_layers(), 2);
}

TEST(IoWeightsTest, SpecJsonRoundTripsAndUpdatesOnlyGivenFields) {
  const LstmSpec spec = full_spec();
  LstmSpec back;
  ASSERT_TRUE(spec_from_json(spec_to_json(spec), &back).ok()) << spec_to_json(spec);
  back.input_size = spec.input_size;  // sizes are not part of the JSON
  back.hidden_size = spec.hidden_size;
  back.proj_size = spec.proj_size;
  back.num_layers = spec.num_layers;
  back.peepholes = spec.peepholes;
  expect_same_spec(back, spec);

  LstmSpec partial = full_spec();
  ASSERT_TRUE(spec_from_json(R"({"cell_clip": null, "layout": "seq_major"})", &partial).ok());
  EXPECT_FALSE(partial.cell_clip.has_value());
  EXPECT_EQ(partial.layout, BatchLayout::kSeqMajor);
  EXPECT_EQ(partial.gate_clip, spec.gate_clip);
  EXPECT_STATUS(spec_from_json(R"({"dtype": "f64"})", &partial), StatusCode::kFormatError, "dtype");
  EXPECT_STATUS(spec_from_json(R"({"gate_activation": {"kind": "elu", "alpha": 1e300}})", &partial),
                StatusCode::kFormatError, "gate_activation.alpha");
}

}  // namespace
}  // namespace io
}  // namespace culstm
