// culstm/types.h: element types and non-owning tensor views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "culstm/export.h"

// cudaStream_t is `struct CUstream_st*`; declaring the struct lets this header name the caller's stream without
// including any CUDA header.
struct CUstream_st;

namespace culstm {

using Stream = CUstream_st*;  // == cudaStream_t; nullptr is the legacy default stream

enum class DType : int { kF32 = 0, kF16 = 1, kBF16 = 2, kF64 = 3, kI32 = 4, kI64 = 5 };

CULSTM_API const char* dtype_name(DType dtype) noexcept;  // "f32", "f16", "bf16", "f64", "i32", "i64"
CULSTM_API std::size_t dtype_size(DType dtype) noexcept;  // bytes per element

enum class MemoryKind : int { kHost = 0, kDevice = 1 };
CULSTM_API const char* memory_kind_name(MemoryKind kind) noexcept;

// A non-owning, dense, row-major view of a tensor of rank 0..4. An "absent" optional tensor has data == nullptr and
// rank == 0 (the default-constructed view). Inputs are read through `data`, never written.
struct CULSTM_API TensorView {
  static constexpr int kMaxRank = 4;

  void* data = nullptr;
  DType dtype = DType::kF32;
  MemoryKind memory = MemoryKind::kHost;
  int rank = 0;
  std::int64_t shape[kMaxRank] = {0, 0, 0, 0};

  TensorView() = default;
  TensorView(const void* ptr, DType type, MemoryKind where, std::initializer_list<std::int64_t> dims);

  static TensorView host(const void* ptr, DType type, std::initializer_list<std::int64_t> dims) {
    return TensorView(ptr, type, MemoryKind::kHost, dims);
  }
  static TensorView device(const void* ptr, DType type, std::initializer_list<std::int64_t> dims) {
    return TensorView(ptr, type, MemoryKind::kDevice, dims);
  }

  bool present() const noexcept { return data != nullptr || rank != 0; }
  std::int64_t numel() const noexcept;
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }
};

}  // namespace culstm
