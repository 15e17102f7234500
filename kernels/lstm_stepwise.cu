// kernels/lstm_stepwise.cu: launchers of the stepwise engine's kernels (lstm_stepwise.cuh): the storage type
// chosen at run time becomes the kernel's template argument, the grid covers the elements, and every launch is
// checked with cudaGetLastError.
#include <cuda_runtime_api.h>

#include <algorithm>

#include <string>

#include "cuda_check.h"
#include "lengths_upload.h"
#include "lstm_stepwise.cuh"

namespace culstm {
namespace kernels {
namespace {

// The grid-stride loops make any grid correct; this caps it at several waves of the largest current GPUs
// (132 SMs x 8 resident blocks of 256 threads is about 1k blocks) so huge tensors do not launch millions of blocks.
constexpr long long kMaxBlocks = 8192;

unsigned int blocks_for(long long elements) {
  const long long blocks = (elements + kBlockThreads - 1) / kBlockThreads;
  return static_cast<unsigned int>(std::max(1LL, std::min(blocks, kMaxBlocks)));
}

cudaStream_t as_cuda(Stream stream) {
  return static_cast<cudaStream_t>(stream);
}

// Calls `launch(T{})` with T the storage type of `dtype` (the lambda turns the tag into the template argument),
// then checks the launch.
template <typename Launch>
Status with_storage_type(DType dtype, const char* kernel, Launch&& launch) {
  switch (dtype) {
    case DType::kF32: launch(float{}); break;
    case DType::kF16: launch(__half{}); break;
    case DType::kBF16: launch(__nv_bfloat16{}); break;
    default:
      return Status(StatusCode::kInternal,
                    std::string(kernel) + ": storage type " + dtype_name(dtype) + " has no kernel");
  }
  return check_launch(kernel);
}

}  // namespace

namespace {
// cudaFuncGetAttributes loads the function (and reports a missing image; cuda_status consumes that error).
template <typename T>
Status load_typed_kernels() {
  cudaFuncAttributes a{};
  CULSTM_CUDA_CHECK(cudaFuncGetAttributes(&a, culstm_load_initial_state<T>));
  CULSTM_CUDA_CHECK(cudaFuncGetAttributes(&a, culstm_fill_padding<T>));
  CULSTM_CUDA_CHECK(cudaFuncGetAttributes(&a, culstm_lstm_pointwise_step<T>));
  CULSTM_CUDA_CHECK(cudaFuncGetAttributes(&a, culstm_lstm_projection_commit<T>));
  CULSTM_CUDA_CHECK(cudaFuncGetAttributes(&a, culstm_store_final_state<T>));
  return Status::Ok();
}
}  // namespace

Status load_stepwise_kernels() {
  const Status lengths = gpu::load_upload_lengths_kernel();
  if (!lengths.ok()) return lengths;
  const Status f32 = load_typed_kernels<float>();
  if (!f32.ok()) return f32;
  const Status f16 = load_typed_kernels<__half>();
  if (!f16.ok()) return f16;
  return load_typed_kernels<__nv_bfloat16>();
}

Status launch_initial_state(DType dtype, const InitialStateParams& params, Stream stream) {
  const unsigned int grid = blocks_for(state_elements(params.dims));
  return with_storage_type(dtype, "culstm_load_initial_state", [&](auto type_tag) {
    using T = decltype(type_tag);
    culstm_load_initial_state<T><<<grid, kBlockThreads, 0, as_cuda(stream)>>>(params);
  });
}

Status launch_fill_padding(DType dtype, const FillPaddingParams& params, Stream stream) {
  const unsigned int grid = blocks_for(output_elements(params.dims));
  return with_storage_type(dtype, "culstm_fill_padding", [&](auto type_tag) {
    using T = decltype(type_tag);
    culstm_fill_padding<T><<<grid, kBlockThreads, 0, as_cuda(stream)>>>(params);
  });
}

Status launch_pointwise_step(DType dtype, const PointwiseStepParams& params, Stream stream) {
  const unsigned int grid = blocks_for(state_elements(params.dims));
  return with_storage_type(dtype, "culstm_lstm_pointwise_step", [&](auto type_tag) {
    using T = decltype(type_tag);
    culstm_lstm_pointwise_step<T><<<grid, kBlockThreads, 0, as_cuda(stream)>>>(params);
  });
}

Status launch_projection_commit(DType dtype, const ProjectionCommitParams& params, Stream stream) {
  const unsigned int grid = blocks_for(projection_elements(params.dims));
  return with_storage_type(dtype, "culstm_lstm_projection_commit", [&](auto type_tag) {
    using T = decltype(type_tag);
    culstm_lstm_projection_commit<T><<<grid, kBlockThreads, 0, as_cuda(stream)>>>(params);
  });
}

Status launch_final_state(DType dtype, const FinalStateParams& params, Stream stream) {
  const unsigned int grid = blocks_for(state_elements(params.dims));
  return with_storage_type(dtype, "culstm_store_final_state", [&](auto type_tag) {
    using T = decltype(type_tag);
    culstm_store_final_state<T><<<grid, kBlockThreads, 0, as_cuda(stream)>>>(params);
  });
}

}  // namespace kernels
}  // namespace culstm
