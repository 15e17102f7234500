// Internal: NVTX ranges for Nsight Systems (docs/profiling.md). The one place the library touches NVTX.
//   culstm/forward             around every forward() call (all backends)
//   culstm/layer{l}/{fwd|rev}  around one layer and direction of a backend's schedule
// NVTX3 is header-only: without a profiler attached each call is a test of a function pointer. Nothing here
// allocates (names are formatted into a stack buffer), so forward() stays allocation-free.
#pragma once

#include <nvtx3/nvToolsExt.h>

#include <cstdio>

namespace culstm {
namespace nvtx {

// Pushes a range on construction and pops it on destruction (the calling thread's range stack).
class Range {
 public:
  explicit Range(const char* name) noexcept { nvtxRangePushA(name); }
  ~Range() { nvtxRangePop(); }
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;
};

// "culstm/layer{layer}/fwd" or ".../rev".
class LayerRange {
 public:
  LayerRange(int layer, bool reversed) noexcept {
    char name[48];
    std::snprintf(name, sizeof name, "culstm/layer%d/%s", layer, reversed ? "rev" : "fwd");
    nvtxRangePushA(name);  // NVTX copies the string
  }
  ~LayerRange() { nvtxRangePop(); }
  LayerRange(const LayerRange&) = delete;
  LayerRange& operator=(const LayerRange&) = delete;
};

}  // namespace nvtx
}  // namespace culstm
