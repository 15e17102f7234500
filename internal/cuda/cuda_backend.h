// Internal: knobs and counters of the `cuda` backend's CUDA-graph path, for tests, benchmarks and the CLI.
// Not part of the public API (docs/cuda_backend.md describes the behaviour).
#pragma once

#include <cstdint>

#include "culstm/culstm.hpp"

namespace culstm {

// How a Context runs forward():
//   kAuto   direct launches; when a call repeats the previous call's arguments exactly (model, pointers, shape,
//           lengths, padding value), the launches are captured into a CUDA graph and later identical calls replay
//           it. The default.
//   kOff    always direct launches.
//   kOn     always through a graph: captured on the first call, updated (cudaGraphExecUpdate) or re-captured when
//           the arguments change, replayed while they do not.
// The environment variable CULSTM_CUDA_GRAPHS=auto|off|on (also 0/1) sets the mode of Contexts created afterwards.
// A forward on a stream that is itself being captured (the caller builds its own graph) always launches directly.
enum class CudaGraphMode : int { kAuto = 0, kOff = 1, kOn = 2 };

struct CudaGraphStats {
  std::int64_t direct_runs = 0;     // forwards enqueued as individual launches
  std::int64_t captures = 0;        // forwards captured into a new graph
  std::int64_t instantiations = 0;  // cudaGraphInstantiate calls
  std::int64_t updates = 0;         // successful cudaGraphExecUpdate calls (pointers/values changed, same topology)
  std::int64_t replays = 0;         // cudaGraphLaunch of a cached graph without capturing
};

// kInvalidArgument when `ctx` is not a Context of the cuda backend.
Status cuda_set_graph_mode(Context& ctx, CudaGraphMode mode);
Status cuda_graph_stats(Context& ctx, CudaGraphStats* stats);

}  // namespace culstm
