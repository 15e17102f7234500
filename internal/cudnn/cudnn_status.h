// Internal: how culstm reads a cudnnStatus_t (needs cuDNN's headers: include only where CULSTM_WITH_CUDNN).
// Shared by the cudnn backend and the benchmark's direct cuDNN baseline, so both classify cuDNN's answers alike.
#pragma once

#include <cudnn.h>

#include <string>

namespace culstm {
namespace cudnn_status {

// cuDNN unable to run here at all (its libraries, the driver, the runtime, the GPU): not about any configuration.
inline bool environment_failure(cudnnStatus_t st) {
  const int code = static_cast<int>(st);
  return CUDNN_STATUS_CATEGORY(code) == 1000 /* NOT_INITIALIZED, SUBLIBRARY_* ... */ ||
         code == CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER ||
         code == CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART || code == CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH ||
         code == CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE;
}

// cuDNN saying "not this configuration" to a call made for algorithm `algo` (calls about no algorithm in particular,
// e.g. data descriptors, are read with CUDNN_RNN_ALGO_STANDARD):
//   - any algorithm: the NOT_SUPPORTED family (less the environment codes above);
//   - the persistent algorithms also: the plain BAD_PARAM (or INVALID_VALUE, OUT_OF_BOUND) that the RNN API returns
//     for a combination they do not take (a hidden size, batch or length pattern outside their limits).
// STANDARD is cuDNN's general algorithm and takes whatever the RNN API can express, so a plain BAD_PARAM from it
// means an argument of ours is wrong (a descriptor bug that only hits bf16 or projections, say): an error to report
// and fail on, never a refusal to skip. The BAD_PARAM sub-codes about pointers, streams, shapes or descriptors
// (NULL_POINTER, MISALIGNED_POINTER, STREAM_MISMATCH, SHAPE_MISMATCH, ...) mean misuse for every algorithm.
inline bool refused(cudnnStatus_t st, cudnnRNNAlgo_t algo) {
  const int code = static_cast<int>(st);
  if (environment_failure(st)) return false;
  if (CUDNN_STATUS_CATEGORY(code) == CUDNN_STATUS_NOT_SUPPORTED) return true;
  if (algo == CUDNN_RNN_ALGO_STANDARD) return false;
  return code == CUDNN_STATUS_BAD_PARAM || code == 2001 /* CUDNN_STATUS_INVALID_VALUE, deprecated */ ||
         code == CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND;
}

// "CUDNN_STATUS_NOT_SUPPORTED (cuDNN's last message)"
inline std::string message(cudnnStatus_t st) {
  char last[512] = {0};
  cudnnGetLastErrorString(last, sizeof last);
  std::string s = cudnnGetErrorString(st);
  if (last[0] != '\0') s += std::string(" (") + last + ")";
  return s;
}

}  // namespace cudnn_status
}  // namespace culstm
