// gpu/gpu_status.h: the GPU support both GPU backends and the kernels share (docs/design.md): CUDA runtime
// return codes as culstm::Status (every code is checked), the pending-error check, the capture query, the device
// guard and the launch check. Depends on the public headers and the CUDA runtime only. No macros here
// (cuda_check.h has the check macro).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "culstm/status.h"

namespace culstm {

// A failed runtime call also becomes the thread's "last error"; it is consumed here, where it is reported, so that
// it is not reported a second time (check_no_pending_error) as if someone else had left it.
inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  cudaGetLastError();
  return Status(StatusCode::kCudaError,
                std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// An error some earlier CUDA work of the caller's thread left pending (cudaPeekAtLastError): reported (and
// cleared, where CUDA allows) before a call enqueues anything, so that no launch check of ours later reports it as
// our kernel's failure after part of the work was enqueued. A sticky error (the context is unusable) stays.
inline Status check_no_pending_error(const char* backend) {
  const cudaError_t pending = cudaPeekAtLastError();
  if (pending == cudaSuccess) return Status::Ok();
  cudaGetLastError();
  const bool sticky = cudaPeekAtLastError() != cudaSuccess;
  return Status(StatusCode::kCudaError,
                std::string("backend ") + backend +
                    ": an error from earlier CUDA work on this thread was pending (nothing was enqueued; " +
                    (sticky ? "the error is sticky: this CUDA context is unusable" : "the error is now cleared") +
                    "): " + cudaGetErrorName(pending) + " (" + cudaGetErrorString(pending) + ")");
}

// Whether the caller is capturing `stream` (into `status`). The legacy default stream while another blocking
// stream of the device is being captured cannot be used at all (CUDA makes it wait on that capture): that is an
// InvalidArgument, reported before anything is enqueued.
inline Status query_capture(cudaStream_t stream, int device, cudaStreamCaptureStatus* status) {
  *status = cudaStreamCaptureStatusNone;
  const cudaError_t err = cudaStreamIsCapturing(stream, status);
  if (err == cudaErrorStreamCaptureImplicit) {
    cudaGetLastError();
    return Status(StatusCode::kInvalidArgument,
                  "stream: the legacy default stream cannot be used while another stream of device " +
                      std::to_string(device) +
                      " is being captured (CUDA makes it wait on that capture); pass a stream created with "
                      "cudaStreamNonBlocking");
  }
  return cuda_status(err, "cudaStreamIsCapturing");
}

// Makes `device` current for a scope and restores the caller's device after (both backends' entry points).
class DeviceGuard {
 public:
  DeviceGuard() = default;
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }
  Status enter(int device) {
    const Status got = cuda_status(cudaGetDevice(&previous_), "cudaGetDevice");
    if (!got.ok() || previous_ == device) return got;
    const Status set = cuda_status(cudaSetDevice(device), "cudaSetDevice");
    switched_ = set.ok();
    return set;
  }

 private:
  int previous_ = 0;
  bool switched_ = false;
};

// The last launch's error (cudaGetLastError), naming the kernel.
inline Status check_launch(const char* kernel) {
  return cuda_status(cudaGetLastError(), kernel);
}

}  // namespace culstm
