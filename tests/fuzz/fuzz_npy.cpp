// libFuzzer target: arbitrary bytes as a npy file (see fuzz_targets.h). Built by tests/fuzz/standalone with clang
// and -fsanitize=fuzzer,address,undefined; run by ctest (fuzz.npy) for a bounded time from tests/fuzz/corpus/npy/.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  culstm::fuzz::npy_input(data, size);
  return 0;
}
