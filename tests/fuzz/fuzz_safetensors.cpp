// libFuzzer target: arbitrary bytes as a safetensors file (see fuzz_targets.h). Built by tests/fuzz/standalone with clang
// and -fsanitize=fuzzer,address,undefined; run by ctest (fuzz.safetensors) for a bounded time from tests/fuzz/corpus/safetensors/.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  culstm::fuzz::safetensors_input(data, size);
  return 0;
}
