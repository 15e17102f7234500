// kernels/lstm_stepwise.cuh: the kernels of the stepwise engine (parameters and shapes in lstm_stepwise.h). Each is
// a grid-stride loop over the per-element functions of stepwise_elements.h, so any launch shape is correct and the
// launchers in lstm_stepwise.cu pick one. Names start with culstm_ so that Nsight shows what each one is.
#pragma once

#include "dtype_traits.cuh"
#include "lstm_stepwise.h"
#include "stepwise_elements.h"

namespace culstm {
namespace kernels {

// Threads per block for the elementwise kernels: a multiple of the warp size that keeps enough blocks per SM
// resident on every architecture from sm_80 on.
constexpr int kBlockThreads = 256;

__device__ __forceinline__ long long grid_start() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() {
  return static_cast<long long>(gridDim.x) * blockDim.x;
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) culstm_load_initial_state(InitialStateParams p) {
  const long long n = state_elements(p.dims);
  for (long long idx = grid_start(); idx < n; idx += grid_stride()) initial_state_element<T>(p, idx);
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) culstm_fill_padding(FillPaddingParams p) {
  const long long n = output_elements(p.dims);
  for (long long idx = grid_start(); idx < n; idx += grid_stride()) fill_padding_element<T>(p, idx);
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) culstm_lstm_pointwise_step(PointwiseStepParams p) {
  const long long n = state_elements(p.dims);
  for (long long idx = grid_start(); idx < n; idx += grid_stride()) pointwise_step_element<T>(p, idx);
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) culstm_lstm_projection_commit(ProjectionCommitParams p) {
  const long long n = projection_elements(p.dims);
  for (long long idx = grid_start(); idx < n; idx += grid_stride()) projection_commit_element<T>(p, idx);
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) culstm_store_final_state(FinalStateParams p) {
  const long long n = state_elements(p.dims);
  for (long long idx = grid_start(); idx < n; idx += grid_stride()) final_state_element<T>(p, idx);
}

}  // namespace kernels
}  // namespace culstm
