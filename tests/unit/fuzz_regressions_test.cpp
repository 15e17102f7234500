// Replays every committed fuzz input through the fuzz targets' own code (tests/fuzz/fuzz_targets.h) in the regular
// build: the seed corpus (valid files, which must also import cleanly where they are models) and
// tests/fuzz/regressions/<format>/ (inputs that once crashed or misbehaved; each must now be refused or handled).
// Runs whether or not the libFuzzer targets are built.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.h"

namespace culstm {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs(const std::string& folder) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(CULSTM_SOURCE_DIR) / "tests" / "fuzz" / folder;
  if (!fs::exists(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') out.push_back(entry.path());
  }
  return out;
}

std::vector<std::uint8_t> bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Replay(const std::string& format, void (*target)(const std::uint8_t*, std::size_t)) {
  std::size_t count = 0;
  for (const char* kind : {"corpus/", "regressions/"}) {
    for (const fs::path& p : inputs(kind + format)) {
      SCOPED_TRACE(p.string());
      const std::vector<std::uint8_t> b = bytes_of(p);
      target(b.data(), b.size());  // aborts on a broken invariant; sanitizers (if any) catch the rest
      ++count;
    }
  }
  EXPECT_GT(count, 0u) << "no inputs for " << format;
}

TEST(FuzzRegressionsTest, Safetensors) { Replay("safetensors", fuzz::safetensors_input); }
TEST(FuzzRegressionsTest, Npy) { Replay("npy", fuzz::npy_input); }
TEST(FuzzRegressionsTest, Onnx) { Replay("onnx", fuzz::onnx_input); }

// The seed corpus's model files are valid: each imports (so the fuzzers start from inputs that reach the importers).
TEST(FuzzRegressionsTest, SeedModelsImport) {
  for (const fs::path& p : inputs("corpus/safetensors")) {
    if (p.filename().string().rfind("model_", 0) != 0) continue;
    SCOPED_TRACE(p.string());
    const std::vector<std::uint8_t> b = bytes_of(p);
    io::SafetensorsFile file;
    ASSERT_TRUE(io::parse_safetensors(b.data(), b.size(), &file).ok());
    LstmSpec spec;
    Weights weights;
    Status st = io::import_weights(file, io::ImportOptions(), &spec, &weights);
    EXPECT_TRUE(st.ok()) << st.to_string();
  }
  for (const fs::path& p : inputs("corpus/onnx")) {
    SCOPED_TRACE(p.string());
    const std::vector<std::uint8_t> b = bytes_of(p);
    LstmSpec spec;
    Weights weights;
    Status st = io::import_onnx_bytes(b.data(), b.size(), "", &spec, &weights);
    EXPECT_TRUE(st.ok()) << st.to_string();
  }
}

}  // namespace
}  // namespace culstm
