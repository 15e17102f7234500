// gpu/host_device.h: CULSTM_HD marks a function compiled for the host and, under nvcc, for the device too: the
// one definition that host-and-device headers (kernels/cell_math.h, sequence_index.h, ...) share, so that the CPU
// tests run the very code the kernels run.
#pragma once

#if defined(__CUDACC__)
#define CULSTM_HD __host__ __device__ __forceinline__
#else
#define CULSTM_HD inline
#endif
