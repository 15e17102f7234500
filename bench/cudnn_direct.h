// The cuDNN baseline of culstm_bench: cuDNN 9's cudnnRNNForward called directly (inference mode), one algorithm at a
// time, so that "cuDNN's fastest algorithm" is measured without any culstm code in the way and whether or not
// culstm's own `cudnn` backend is finished. Weights are random (timing only: cuDNN's packed weight space is filled
// as a whole); x is [T, B, I] seq-major (cuDNN's packed layout, all lengths T), y [T, B, D*R], hy/cy
// [L*D, B, R]/[L*D, B, H], h0/c0 absent (zeros), exactly the tensors culstm_bench gives culstm's forward().
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench_device.h"

namespace culstm_bench {

struct RnnShape {
  std::int64_t batch = 1, input = 0, hidden = 0, proj = 0, steps = 1;
  int layers = 1;
  bool bidirectional = false;
  ElemType dtype = ElemType::kF32;
  bool allow_tf32 = false;  // f32 only: strict fp32 (CUDNN_FMA_MATH) unless true
};

// Algorithm names as culstm_bench prints them: "standard", "persist_static", "persist_static_small_h",
// "persist_dynamic". Empty when built without cuDNN.
std::vector<std::string> cudnn_algorithm_names();
// "9.19.0 (built against 9.19.0)", or why there is none.
std::string cudnn_version_string();
bool cudnn_built();

class CudnnDirect {
 public:
  CudnnDirect();
  ~CudnnDirect();
  CudnnDirect(const CudnnDirect&) = delete;
  CudnnDirect& operator=(const CudnnDirect&) = delete;

  // Descriptors, weight space (random), workspace, outputs; PERSIST_DYNAMIC also builds its kernels here. On
  // failure: the failing call and cuDNN's status (e.g. "cudnnRNNForward: CUDNN_STATUS_NOT_SUPPORTED ..."), and
  // `unsupported` when that status is cuDNN refusing this configuration or algorithm.
  Outcome setup(const RnnShape& shape, const std::string& algorithm, cudaStream_t stream);
  // Enqueues one forward pass over x ([T, B, I], device) on the setup stream. No allocation.
  Outcome run(const void* x);
  // The outputs (device memory, allocated by setup): y [T, B, D*R], hy [L*D, B, R], cy [L*D, B, H].
  void* y() const;
  void* hy() const;
  void* cy() const;
  std::size_t y_elems() const;
  std::size_t hy_elems() const;
  std::size_t cy_elems() const;
  std::size_t device_bytes() const;  // weights + workspace + outputs it allocated

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace culstm_bench
