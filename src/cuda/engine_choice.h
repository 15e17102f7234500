// Internal: which engine runs each layer of the cuda backend (docs/persistent.md). Pure host code: the device's
// limits and an occupancy oracle come in as values, so tests/unit/cuda_persistent_test.cpp checks the decisions
// for an H100's numbers on the CPU.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "culstm/culstm.hpp"
#include "lstm_persistent.h"

namespace culstm {
namespace cuda_backend {

// The decision for one layer (both directions run the same engine).
struct LayerEngine {
  bool persistent = false;
  kernels::PersistentTiling tiling;  // persistent only
  std::size_t smem_bytes = 0;        // dynamic shared memory per block at the model's max_batch (persistent only)
  int blocks_per_sm = 0;             // co-resident blocks per SM at that size (persistent only)
  std::string why;                   // one line for Plan::explain()
};

// The tiling with the fewest units per block that uses at most `max_blocks_per_direction` blocks per direction;
// every block owns at least one hidden unit.
kernels::PersistentTiling persistent_tiling(long long hidden, long long proj, int max_blocks_per_direction);

// Where a block keeps its data in shared memory for `dims` (kernels/lstm_persistent.h describes the regions), with
// `value_bytes` the model dtype's size.
kernels::PersistentSmemLayout persistent_smem_layout(const kernels::LayerDims& dims,
                                                     const kernels::PersistentTiling& tiling, std::size_t value_bytes);

// What the planner knows of the GPU.
struct PersistentDevice {
  int cc_major = 0, cc_minor = 0;
  kernels::PersistentDeviceLimits limits;
  // Co-resident blocks per SM of the persistent kernel with this much dynamic shared memory (the occupancy API on
  // a GPU); called only with sizes <= limits.max_smem_per_block.
  std::function<Status(std::size_t smem_bytes, int* blocks_per_sm)> blocks_per_sm;
};

// Per layer, persistent or stepwise, from options.cuda_engine, what fits on the device at options.max_batch, and
// the traits table. A failing occupancy query is returned as an error.
Status choose_engines(const LstmSpec& spec, const ModelOptions& options, const PersistentDevice& device,
                      std::vector<LayerEngine>* out);

}  // namespace cuda_backend
}  // namespace culstm
