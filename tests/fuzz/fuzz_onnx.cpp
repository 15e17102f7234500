// libFuzzer target: arbitrary bytes as a onnx file (see fuzz_targets.h). Built by tests/fuzz/standalone with clang
// and -fsanitize=fuzzer,address,undefined; run by ctest (fuzz.onnx) for a bounded time from tests/fuzz/corpus/onnx/.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  culstm::fuzz::onnx_input(data, size);
  return 0;
}
