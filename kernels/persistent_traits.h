// kernels/persistent_traits.h: the persistent engine's tile per GPU architecture, with the evidence behind it
// (docs/persistent.md). The engine choice (src/cuda/engine_choice.cpp) lets backend cuda's automatic engine choice
// pick the persistent engine only on an architecture whose entry records a measured win over the stepwise engine;
// options.cuda_engine = kPersistent runs it wherever it fits, measured or not.
//
// To fill an entry: run bench/run_gpu.sh on that GPU, compare "cuda/persistent" with "cuda/stepwise" per batch size,
// set faster_up_to_batch to the largest batch where persistent was faster in every configuration that fits, and
// name the results file in `evidence`.
#pragma once

namespace culstm {
namespace kernels {

struct PersistentTraits {
  int cc_major = 0, cc_minor = 0;    // architecture (compute capability)
  int threads = 0;                   // threads per block (kPersistentThreads)
  int batch_chunk = 0;               // sequences per pass over a weight row (kBatchChunk)
  long long faster_up_to_batch = 0;  // measured: persistent beat stepwise for every batch <= this; 0 = no timing yet
  const char* evidence = "";         // the bench/results/ file with those timings, or why there is none
};

// One entry per architecture the engine has been reasoned about. None is measured yet: no GPU has run the engine
// (docs/status.md), so the automatic choice stays on the stepwise engine everywhere.
constexpr PersistentTraits kPersistentTraits[] = {
    {9, 0, 256, 8, 0, "no timing yet: the engine has not run on an H100/H200 (bench/run_gpu.sh produces it)"},
    {8, 0, 256, 8, 0, "no timing yet: the engine has not run on an A100"},
};

// The entry of an architecture, or null.
inline const PersistentTraits* persistent_traits(int cc_major, int cc_minor) {
  for (const PersistentTraits& t : kPersistentTraits) {
    if (t.cc_major == cc_major && t.cc_minor == cc_minor) return &t;
  }
  return nullptr;
}

}  // namespace kernels
}  // namespace culstm
