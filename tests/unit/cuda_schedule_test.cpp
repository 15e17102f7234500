// The cuda backend's two engines executed on the CPU: the real call plan and runner (src/cuda/call_plan.cpp,
// layer_runner.cpp), the real weight packing, workspace layout and GEMM translation, the real per-element kernel code of the stepwise
// engine (kernels/stepwise_elements.h) and the real block program of the persistent engine
// (kernels/persistent_elements.h), with a host executor that performs each GEMM with cuBLAS's column-major
// semantics (checking leading dimensions and that every operand stays inside its buffer), runs each stepwise
// kernel's elements in a loop, and runs the persistent program with one host thread per block, a real barrier for
// the grid sync and poisoned, guarded "shared memory" per block. Compared with the reference backend over many
// configurations. What this cannot check is left to tests/gpu/cuda_backend_test.cpp: CUDA launches, cuBLAS itself,
// warps, the GPU's memory model, streams and graphs.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cuda/call_plan.h"
#include "cuda/layer_runner.h"
#include "cuda/packed_weights.h"
#include "float16.h"
#include "persistent_elements.h"
#include "stepwise_elements.h"
#include "test_util.h"

namespace culstm {

// Host stand-ins for the device's 16-bit storage types, rounding as __float2half_rn / __float2bfloat16_rn do.
struct HostF16 {
  std::uint16_t bits;
};
struct HostBF16 {
  std::uint16_t bits;
};

namespace kernels {
template <>
struct Storage<HostF16> {
  static float load(HostF16 v) { return detail::half_to_float(v.bits); }
  static HostF16 store(float v) { return HostF16{detail::float_to_half(v)}; }
};
template <>
struct Storage<HostBF16> {
  static float load(HostBF16 v) { return detail::bf16_to_float(v.bits); }
  static HostBF16 store(float v) { return HostBF16{detail::float_to_bf16(v)}; }
};
}  // namespace kernels

namespace {

using cuda_backend::BlasGemm;
using testing_util::random_values;
using testing_util::random_weights;

constexpr std::size_t kGuard = 256;
constexpr std::uint8_t kGuardByte = 0xA5;

// The grid sync of the persistent engine between host threads: nobody leaves until all `count` have arrived.
class HostGridBarrier {
 public:
  explicit HostGridBarrier(int count) : count_(count) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const long long generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_;
  int arrived_ = 0;
  long long generation_ = 0;
};

// How the CPU runs a block of the persistent program: `warps` x `lanes` host threads. With 1 x 1 the thread is the
// whole block; with more, the block's strided loops, its barriers and the lane split of every dot product run
// truly in parallel, as on the GPU (where a block is 8 warps of 32 lanes).
struct HostBlockShape {
  int warps = 1;
  int lanes = 1;
};

// What the host threads of one block share: the block barrier and, per warp, the slots of lane_sum's exchange.
struct HostBlock {
  HostBlock(const HostBlockShape& shape)
      : barrier(shape.warps * shape.lanes),
        slots(static_cast<std::size_t>(shape.warps * shape.lanes)),
        warp_barriers(static_cast<std::size_t>(shape.warps)) {
    for (auto& w : warp_barriers) w = std::make_unique<HostGridBarrier>(shape.lanes);
  }
  HostGridBarrier barrier;
  std::vector<float> slots;
  std::vector<std::unique_ptr<HostGridBarrier>> warp_barriers;
};

// The persistent program's Team for one host thread of a block (persistent_elements.h). Every thread of every
// block meets at the grid barrier, like cooperative groups' grid sync.
struct HostTeam {
  HostGridBarrier* grid;
  HostBlock* block;
  HostBlockShape shape;
  int index;  // warp * lanes + lane
  int thread() const { return index; }
  int threads() const { return shape.warps * shape.lanes; }
  int warp() const { return index / shape.lanes; }
  int warps() const { return shape.warps; }
  int lane() const { return index % shape.lanes; }
  int lanes() const { return shape.lanes; }
  // Every lane of the warp must call it (as __shfl_xor_sync with a full mask demands; a lane that does not would
  // hang the test). Every lane gets the sum, as with the GPU's butterfly.
  float lane_sum(float v) const {
    if (shape.lanes == 1) return v;
    HostGridBarrier& warp_barrier = *block->warp_barriers[static_cast<std::size_t>(warp())];
    block->slots[static_cast<std::size_t>(index)] = v;
    warp_barrier.wait();
    float sum = 0.0f;
    for (int l = 0; l < shape.lanes; ++l) sum += block->slots[static_cast<std::size_t>(warp() * shape.lanes + l)];
    warp_barrier.wait();  // everyone has read the slots before they are written again
    return sum;
  }
  void sync_block() const { block->barrier.wait(); }
  void sync_grid() const { grid->wait(); }
};

// A named byte range the GEMM operands must stay inside.
struct Span {
  std::string name;
  const std::uint8_t* begin;
  std::size_t bytes;
};

// Runs the schedule's operations on the CPU. T is the storage type (float, HostF16, HostBF16).
template <typename T>
class HostExecutor final : public cuda_backend::Executor {
 public:
  explicit HostExecutor(std::vector<Span> spans, HostBlockShape block_shape = {})
      : spans_(std::move(spans)), block_shape_(block_shape) {}

  std::map<std::string, int> counts;

  Status gemm(const BlasGemm& g, const char* what) override {
    ++counts[what];
    // cuBLAS's own argument rules (CUBLAS_STATUS_INVALID_VALUE otherwise).
    const int rows_a = g.trans_a ? g.k : g.m, cols_a = g.trans_a ? g.m : g.k;
    const int rows_b = g.trans_b ? g.n : g.k, cols_b = g.trans_b ? g.k : g.n;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 1 || g.lda < std::max(1, rows_a) || g.ldb < std::max(1, rows_b) ||
        g.ldc < std::max(1, g.m)) {
      return Status(StatusCode::kInternal, std::string(what) + ": invalid cuBLAS arguments");
    }
    Status st = inside(what, "A", g.A, rows_a, cols_a, g.lda, g.stride_a, g.batch, sizeof(T));
    if (st.ok()) st = inside(what, "B", g.B, rows_b, cols_b, g.ldb, g.stride_b, g.batch, sizeof(T));
    if (st.ok()) st = inside(what, "C", g.C, g.m, g.n, g.ldc, g.stride_c, g.batch, sizeof(float));
    if (!st.ok()) return st;
    for (int p = 0; p < g.batch; ++p) {
      const T* A = static_cast<const T*>(g.A) + p * g.stride_a;
      const T* B = static_cast<const T*>(g.B) + p * g.stride_b;
      float* C = g.C + p * g.stride_c;
      for (int j = 0; j < g.n; ++j) {
        for (int i = 0; i < g.m; ++i) {
          double acc = 0.0;
          for (int l = 0; l < g.k; ++l) {
            const T a =
                g.trans_a ? A[l + static_cast<std::int64_t>(i) * g.lda] : A[i + static_cast<std::int64_t>(l) * g.lda];
            const T b =
                g.trans_b ? B[j + static_cast<std::int64_t>(l) * g.ldb] : B[l + static_cast<std::int64_t>(j) * g.ldb];
            acc += static_cast<double>(kernels::Storage<T>::load(a)) * kernels::Storage<T>::load(b);
          }
          C[i + static_cast<std::int64_t>(j) * g.ldc] = static_cast<float>(acc);  // alpha = 1, beta = 0
        }
      }
    }
    return Status::Ok();
  }
  Status upload_lengths(const gpu::UploadLengthsParams& p) override {
    ++counts["upload_lengths"];
    for (long long k = 0; k < p.count; ++k) gpu::upload_lengths_element(p, k);
    return Status::Ok();
  }
  Status initial_state(const kernels::InitialStateParams& p) override {
    ++counts["initial_state"];
    for (long long i = 0; i < kernels::state_elements(p.dims); ++i) kernels::initial_state_element<T>(p, i);
    return Status::Ok();
  }
  Status fill_padding(const kernels::FillPaddingParams& p) override {
    ++counts["fill_padding"];
    for (long long i = 0; i < kernels::output_elements(p.dims); ++i) kernels::fill_padding_element<T>(p, i);
    return Status::Ok();
  }
  Status pointwise_step(const kernels::PointwiseStepParams& p) override {
    ++counts["pointwise_step"];
    for (long long i = 0; i < kernels::state_elements(p.dims); ++i) kernels::pointwise_step_element<T>(p, i);
    return Status::Ok();
  }
  Status projection_commit(const kernels::ProjectionCommitParams& p) override {
    ++counts["projection_commit"];
    for (long long i = 0; i < kernels::projection_elements(p.dims); ++i) kernels::projection_commit_element<T>(p, i);
    return Status::Ok();
  }
  Status final_state(const kernels::FinalStateParams& p) override {
    ++counts["final_state"];
    for (long long i = 0; i < kernels::state_elements(p.dims); ++i) kernels::final_state_element<T>(p, i);
    return Status::Ok();
  }
  // One host thread per block. Each block's shared memory starts as 0xFF bytes (NaN), is followed by a guard
  // zone, and lives for the whole launch, as on the GPU.
  Status persistent_layer(const kernels::PersistentLayerParams& p) override {
    ++counts["persistent_layer"];
    const int blocks = p.dims.directions * p.tiling.blocks_per_direction;
    if (blocks < 1 || p.tiling.units_per_block < 1 ||
        static_cast<long long>(p.tiling.units_per_block) * p.tiling.blocks_per_direction < p.dims.hidden) {
      return Status(StatusCode::kInternal, "persistent_layer: the tiling does not cover the hidden units");
    }
    const kernels::PersistentSmemLayout& layout = p.smem;  // as the plan laid it out
    constexpr std::size_t kSmemGuard = 64;
    std::vector<std::vector<float>> smem(static_cast<std::size_t>(blocks));
    for (auto& m : smem) {
      m.resize((layout.total + kSmemGuard) / sizeof(float));
      std::memset(m.data(), 0xFF, layout.total);
      std::memset(reinterpret_cast<std::uint8_t*>(m.data()) + layout.total, kGuardByte, kSmemGuard);
    }
    const int per_block = block_shape_.warps * block_shape_.lanes;
    HostGridBarrier grid(blocks * per_block);
    std::vector<std::unique_ptr<HostBlock>> block_state;
    for (int b = 0; b < blocks; ++b) block_state.push_back(std::make_unique<HostBlock>(block_shape_));
    std::vector<std::thread> threads;
    for (int b = 0; b < blocks; ++b) {
      for (int t = 0; t < per_block; ++t) {
        threads.emplace_back([&, b, t] {
          HostTeam team{&grid, block_state[static_cast<std::size_t>(b)].get(), block_shape_, t};
          unsigned char* block_smem = reinterpret_cast<unsigned char*>(smem[b].data());
          switch (kernels::persistent_batch_chunk(p.dims.batch)) {  // as the GPU launcher picks the kernel
            case 1: kernels::persistent_layer_program<T, 1>(p, b, block_smem, team); break;
            case 2: kernels::persistent_layer_program<T, 2>(p, b, block_smem, team); break;
            case 4: kernels::persistent_layer_program<T, 4>(p, b, block_smem, team); break;
            default: kernels::persistent_layer_program<T, 8>(p, b, block_smem, team); break;
          }
        });
      }
    }
    for (std::thread& t : threads) t.join();
    for (const auto& m : smem) {
      const auto* guard = reinterpret_cast<const std::uint8_t*>(m.data()) + layout.total;
      for (std::size_t k = 0; k < kSmemGuard; ++k) {
        if (guard[k] != kGuardByte) return Status(StatusCode::kInternal, "persistent_layer: shared memory overrun");
      }
    }
    return Status::Ok();
  }

 private:
  // For each batch, the bytes a column-major operand touches (cols x ld, the last column only `rows` deep) must lie
  // inside one registered span: a stride that runs into the next buffer is caught.
  Status inside(const char* what, const char* operand, const void* ptr, int rows, int cols, int ld, long long stride,
                int batch, std::size_t elem) const {
    if (rows == 0 || cols == 0) return Status::Ok();
    const std::size_t extent = static_cast<std::size_t>(cols - 1) * static_cast<std::size_t>(ld) + rows;
    for (int p = 0; p < batch; ++p) {
      const auto* first = static_cast<const std::uint8_t*>(ptr) + static_cast<std::size_t>(p * stride) * elem;
      const std::uint8_t* end = first + extent * elem;
      bool found = false;
      for (const Span& s : spans_) found = found || (first >= s.begin && end <= s.begin + s.bytes);
      if (!found) {
        return Status(StatusCode::kInternal, std::string(what) + ": operand " + operand + " of batch " +
                                                 std::to_string(p) + " is not inside any buffer");
      }
    }
    return Status::Ok();
  }
  std::vector<Span> spans_;
  HostBlockShape block_shape_;
};

// Host buffers of one run, each with a guard zone on both sides that must stay untouched.

class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::size_t bytes, std::uint8_t fill = 0xFF)
      : bytes_(bytes), storage_(bytes + 3 * kGuard, kGuardByte) {
    // The data starts 256-byte aligned (the workspace's regions need it).
    const auto raw = reinterpret_cast<std::uintptr_t>(storage_.data()) + kGuard;
    offset_ =
        kGuard + (cuda_backend::kWorkspaceAlignment - raw % cuda_backend::kWorkspaceAlignment) % cuda_backend::kWorkspaceAlignment;
    std::memset(data(), fill, bytes_);
  }
  std::uint8_t* data() { return storage_.data() + offset_; }
  std::size_t bytes() const { return bytes_; }
  bool guards_intact() const {
    for (std::size_t k = 0; k < storage_.size(); ++k) {
      if ((k < offset_ || k >= offset_ + bytes_) && storage_[k] != kGuardByte) return false;
    }
    return true;
  }

 private:
  std::size_t bytes_;
  std::vector<std::uint8_t> storage_;
  std::size_t offset_ = 0;
};

std::vector<std::uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<std::uint8_t> out(v.size() * dtype_size(dtype));
  for (std::size_t k = 0; k < v.size(); ++k) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[4 * k], &v[k], 4);
    } else {
      const std::uint16_t bits = dtype == DType::kF16 ? detail::float_to_half(v[k]) : detail::float_to_bf16(v[k]);
      std::memcpy(&out[2 * k], &bits, 2);
    }
  }
  return out;
}

std::vector<float> decode(const std::uint8_t* bytes, std::size_t n, DType dtype) {
  std::vector<float> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[k], bytes + 4 * k, 4);
    } else {
      std::uint16_t bits;
      std::memcpy(&bits, bytes + 2 * k, 2);
      out[k] = dtype == DType::kF16 ? detail::half_to_float(bits) : detail::bf16_to_float(bits);
    }
  }
  return out;
}

struct Problem {
  LstmSpec spec;
  Weights weights;
  std::int64_t T = 0, B = 0;
  std::vector<float> x, h0, c0;
  std::vector<std::int32_t> lengths;
  float padding = 0.0f;
};

struct Result {
  std::vector<float> y, h_n, c_n;
  std::map<std::string, int> counts;
};

std::int64_t state_rows(const LstmSpec& s) {
  return static_cast<std::int64_t>(s.num_layers) * s.num_directions();
}

ForwardArgs make_args(const Problem& p, void* x, void* h0, void* c0, void* y, void* h_n, void* c_n, void* ws,
                      std::size_t ws_bytes) {
  const LstmSpec& s = p.spec;
  const bool bm = s.layout == BatchLayout::kBatchMajor;
  const std::int64_t LD = state_rows(s);
  ForwardArgs a;
  a.x = bm ? TensorView::host(x, s.dtype, {p.B, p.T, s.input_size})
           : TensorView::host(x, s.dtype, {p.T, p.B, s.input_size});
  if (!p.lengths.empty()) a.lengths = TensorView::host(p.lengths.data(), DType::kI32, {p.B});
  if (h0) a.h0 = TensorView::host(h0, s.dtype, {LD, p.B, s.recurrent_size()});
  if (c0) a.c0 = TensorView::host(c0, s.dtype, {LD, p.B, s.hidden_size});
  a.y = bm ? TensorView::host(y, s.dtype, {p.B, p.T, s.output_size()})
           : TensorView::host(y, s.dtype, {p.T, p.B, s.output_size()});
  a.h_n = TensorView::host(h_n, s.dtype, {LD, p.B, s.recurrent_size()});
  a.c_n = TensorView::host(c_n, s.dtype, {LD, p.B, s.hidden_size});
  a.workspace = ws;
  a.workspace_bytes = ws_bytes;
  a.padding_value = p.padding;
  return a;
}

// The shape validation derives for `a` (validate_forward_args: forward_shape, then apply_lengths).
ForwardShape shape_of(const LstmSpec& s, const ForwardArgs& a) {
  ForwardShape shape = forward_shape(s, a.x);
  if (a.lengths.data != nullptr) apply_lengths(static_cast<const std::int32_t*>(a.lengths.data), &shape);
  return shape;
}

// Plans the call and runs the plan through `exec`, as the cuda backend's forward does.
Status plan_and_run(const LstmSpec& s, std::vector<cuda_backend::LayerWeightPointers> weights, const ForwardArgs& a,
                    std::size_t cublas_bytes, cuda_backend::Executor& exec,
                    std::vector<cuda_backend::LayerEngine> engines = {}) {
  cuda_backend::ModelPlan model;
  model.spec = s;
  model.cublas_bytes = cublas_bytes;
  model.weights = std::move(weights);
  model.engines = std::move(engines);
  cuda_backend::CallPlan plan;
  const Status planned = cuda_backend::plan_call(model, a, shape_of(s, a), &plan);
  return planned.ok() ? cuda_backend::run_call(plan, exec) : planned;
}

// The stepwise engine on the CPU. Outputs and workspace start as 0xFF bytes (NaN) so that unwritten elements and
// reads of never-written workspace show.
// `persistent_blocks` > 0 runs every layer on the persistent engine with at most that many blocks per direction,
// each block run by `block_shape` host threads.
template <typename T>
::testing::AssertionResult run_host_schedule(const Problem& p, Result* out, int persistent_blocks,
                                             HostBlockShape block_shape) {
  const LstmSpec& s = p.spec;
  const DType dt = s.dtype;
  const std::size_t v = dtype_size(dt);
  const std::size_t cublas_bytes = 1024;  // unused on the CPU, but its region must be laid out
  const cuda_backend::WorkspaceLayout layout = cuda_backend::workspace_layout(s, p.B, p.T, cublas_bytes);
  const cuda_backend::PackedWeights packed = cuda_backend::pack_weights(s, p.weights);

  GuardedBuffer weights(packed.bytes.size(), 0);
  std::memcpy(weights.data(), packed.bytes.data(), packed.bytes.size());
  const std::vector<std::uint8_t> x_bytes = encode(p.x, dt), h0_bytes = encode(p.h0, dt), c0_bytes = encode(p.c0, dt);
  GuardedBuffer x(x_bytes.size(), 0), h0(h0_bytes.size(), 0), c0(c0_bytes.size(), 0);
  std::memcpy(x.data(), x_bytes.data(), x_bytes.size());
  if (!h0_bytes.empty()) std::memcpy(h0.data(), h0_bytes.data(), h0_bytes.size());
  if (!c0_bytes.empty()) std::memcpy(c0.data(), c0_bytes.data(), c0_bytes.size());
  const std::size_t ny = static_cast<std::size_t>(p.T * p.B * s.output_size());
  const std::size_t nh = static_cast<std::size_t>(state_rows(s) * p.B * s.recurrent_size());
  const std::size_t nc = static_cast<std::size_t>(state_rows(s) * p.B * s.hidden_size);
  GuardedBuffer y(ny * v), h_n(nh * v), c_n(nc * v), ws(layout.total);

  std::vector<Span> spans = {
      {"x", x.data(), x.bytes()}, {"y", y.data(), y.bytes()}, {"weights", weights.data(), weights.bytes()}};
  const std::pair<const char*, cuda_backend::Region> regions[] = {
      {"gates_x", layout.gates_x}, {"layer_out0", layout.layer_out[0]}, {"layer_out1", layout.layer_out[1]}};
  for (const auto& r : regions) spans.push_back({r.first, ws.data() + r.second.offset, r.second.bytes});
  // Each direction's state buffers are separate regions inside the state block.
  for (int d = 0; d < s.num_directions(); ++d) {
    std::uint8_t* block = ws.data() + layout.state.offset + d * layout.direction_block;
    spans.push_back({"gates_h", block + layout.gates_h, static_cast<std::size_t>(p.B * 4 * s.hidden_size) * 4});
    spans.push_back({"h", block + layout.h, static_cast<std::size_t>(p.B * s.recurrent_size()) * v});
    if (s.proj_size > 0) {
      spans.push_back({"h_cell", block + layout.h_cell, static_cast<std::size_t>(p.B * s.hidden_size) * v});
      spans.push_back({"h_proj", block + layout.h_proj, static_cast<std::size_t>(p.B * s.proj_size) * 4});
    }
    spans.push_back({"h_next", block + layout.h_next, static_cast<std::size_t>(p.B * s.recurrent_size()) * v});
  }
  HostExecutor<T> exec(spans, block_shape);
  std::vector<cuda_backend::LayerEngine> engines;
  if (persistent_blocks > 0) {
    cuda_backend::LayerEngine e;
    e.persistent = true;
    e.tiling = cuda_backend::persistent_tiling(s.hidden_size, s.proj_size, persistent_blocks);
    engines.assign(static_cast<std::size_t>(s.num_layers), e);
  }

  const ForwardArgs args =
      make_args(p, x.data(), p.h0.empty() ? nullptr : h0.data(), p.c0.empty() ? nullptr : c0.data(), y.data(),
                h_n.data(), c_n.data(), ws.data(), layout.total);
  const Status st = plan_and_run(s, cuda_backend::weight_pointers(s, packed, weights.data()), args, cublas_bytes, exec,
                                 engines);
  if (!st.ok()) return ::testing::AssertionFailure() << "plan and run: " << st.to_string();
  for (const GuardedBuffer* b : {&weights, &x, &h0, &c0, &y, &h_n, &c_n, &ws}) {
    if (!b->guards_intact()) return ::testing::AssertionFailure() << "a write outside a buffer";
  }
  out->y = decode(y.data(), ny, dt);
  out->h_n = decode(h_n.data(), nh, dt);
  out->c_n = decode(c_n.data(), nc, dt);
  out->counts = exec.counts;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult run_host(const Problem& p, Result* out, int persistent_blocks = 0,
                                    HostBlockShape block_shape = {}) {
  switch (p.spec.dtype) {
    case DType::kF16: return run_host_schedule<HostF16>(p, out, persistent_blocks, block_shape);
    case DType::kBF16: return run_host_schedule<HostBF16>(p, out, persistent_blocks, block_shape);
    default: return run_host_schedule<float>(p, out, persistent_blocks, block_shape);
  }
}

::testing::AssertionResult run_reference(const Problem& p, Result* out) {
  const LstmSpec& s = p.spec;
  const DType dt = s.dtype;
  std::shared_ptr<const Model> model = testing_util::make_reference_model(s, p.weights, p.B, p.T);
  if (!model) return ::testing::AssertionFailure() << "reference model";
  std::vector<std::uint8_t> x = encode(p.x, dt), h0 = encode(p.h0, dt), c0 = encode(p.c0, dt);
  const std::size_t v = dtype_size(dt);
  const std::size_t ny = static_cast<std::size_t>(p.T * p.B * s.output_size());
  const std::size_t nh = static_cast<std::size_t>(state_rows(s) * p.B * s.recurrent_size());
  const std::size_t nc = static_cast<std::size_t>(state_rows(s) * p.B * s.hidden_size);
  std::vector<std::uint8_t> y(ny * v, 0xFF), h_n(nh * v, 0xFF), c_n(nc * v, 0xFF);
  std::size_t bytes = 0;
  Status st = model->workspace_size(p.B, p.T, &bytes);
  if (!st.ok()) return ::testing::AssertionFailure() << st.to_string();
  std::vector<std::uint8_t> ws(bytes);
  const ForwardArgs args =
      make_args(p, x.data(), p.h0.empty() ? nullptr : h0.data(), p.c0.empty() ? nullptr : c0.data(), y.data(),
                h_n.data(), c_n.data(), ws.data(), bytes);
  std::unique_ptr<Context> ctx;
  st = Context::create(*model, &ctx);
  if (st.ok()) st = forward(*ctx, *model, args);
  if (!st.ok()) return ::testing::AssertionFailure() << st.to_string();
  out->y = decode(y.data(), ny, dt);
  out->h_n = decode(h_n.data(), nh, dt);
  out->c_n = decode(c_n.data(), nc, dt);
  return ::testing::AssertionSuccess();
}

// Norm-wise relative error, max abs error; every element finite.
::testing::AssertionResult close(const char* what, const std::vector<float>& got, const std::vector<float>& ref,
                                 double rel_tol, double abs_tol, double* worst_rel) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  double diff2 = 0.0, ref2 = 0.0, max_abs = 0.0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    if (!std::isfinite(got[k]))
      return ::testing::AssertionFailure() << what << "[" << k << "] = " << got[k] << " (unwritten?)";
    const double d = static_cast<double>(got[k]) - ref[k];
    diff2 += d * d;
    ref2 += static_cast<double>(ref[k]) * ref[k];
    max_abs = std::max(max_abs, std::fabs(d));
  }
  const double rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  *worst_rel = std::max(*worst_rel, rel);
  if (rel > rel_tol || max_abs > abs_tol) {
    return ::testing::AssertionFailure() << what << ": rel " << rel << " (tol " << rel_tol << "), max abs " << max_abs
                                         << " (tol " << abs_tol << ")";
  }
  return ::testing::AssertionSuccess();
}

// --- a grid of configurations --------------------------------------------------------------------------------------

struct Config {
  DType dtype;
  int layers;
  Direction dir;
  std::int64_t I, H, P, T, B;
  BatchLayout layout;
  int lengths;  // 0 absent, 1 all T, 2 mixed, 3 with zeros, 4 all zero
  bool h0, c0, bias;
  int options;  // 0 plain, 1 peepholes, 2 gate clip, 3 cell clip, 4 hard sigmoid, 5 input-forget, 6 everything
};

Problem make_problem(const Config& c, unsigned seed) {
  Problem p;
  LstmSpec& s = p.spec;
  s.input_size = c.I;
  s.hidden_size = c.H;
  s.proj_size = c.P;
  s.num_layers = c.layers;
  s.direction = c.dir;
  s.layout = c.layout;
  s.dtype = c.dtype;
  s.bias = c.bias;
  switch (c.options) {
    case 1: s.peepholes = true; break;
    case 2: s.gate_clip = 0.8f; break;
    case 3: s.cell_clip = 0.5f; break;
    case 4: s.gate_activation = Activation::hard_sigmoid(); break;
    case 5: s.input_forget = true; break;
    case 6:
      s.peepholes = true;
      s.gate_clip = 1.5f;
      s.cell_clip = 1.0f;
      s.gate_activation = Activation::hard_sigmoid(1.0f / 6.0f, 0.5f);
      s.cell_activation = Activation::scaled_tanh(1.2f, 0.8f);
      s.hidden_activation = Activation::softsign();
      s.input_forget = true;
      break;
    default: break;
  }
  std::mt19937 rng(seed);
  p.weights = random_weights(s, rng, 0.4f);
  p.T = c.T;
  p.B = c.B;
  p.x = random_values(static_cast<std::size_t>(c.T * c.B * c.I), rng);
  if (c.h0) p.h0 = random_values(static_cast<std::size_t>(state_rows(s) * c.B * s.recurrent_size()), rng);
  if (c.c0) p.c0 = random_values(static_cast<std::size_t>(state_rows(s) * c.B * c.H), rng);
  std::uniform_int_distribution<int> any(0, static_cast<int>(c.T)), positive(1, static_cast<int>(c.T));
  for (std::int64_t b = 0; c.lengths != 0 && b < c.B; ++b) {
    const int len = c.lengths == 1   ? static_cast<int>(c.T)
                    : c.lengths == 2 ? positive(rng)
                    : c.lengths == 3 ? (b % 3 == 0 ? 0 : any(rng))
                                     : 0;
    p.lengths.push_back(len);
  }
  if (c.lengths == 2 && c.B > 1) {
    p.lengths[0] = static_cast<std::int32_t>(c.T);
    p.lengths[static_cast<std::size_t>(c.B - 1)] = static_cast<std::int32_t>(std::max<std::int64_t>(1, c.T / 2));
  }
  p.padding = c.lengths == 0 ? 0.0f : -2.5f;
  return p;
}

std::vector<Config> configs() {
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  const Direction dirs[] = {Direction::kForward, Direction::kReverse, Direction::kBidirectional};
  struct Size {
    std::int64_t I, H, P, T, B;
  };
  const Size sizes[] = {{5, 3, 2, 7, 4},  {1, 1, 0, 1, 1},  {6, 33, 8, 5, 3},
                        {8, 16, 4, 1, 5}, {3, 17, 5, 9, 1}, {7, 12, 0, 6, 6}};
  std::vector<Config> out;
  std::mt19937 rng(4242);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  // Every dtype x direction x layer count, the rest varied so that every value of every other option appears.
  int k = 0;
  for (DType dt : dtypes) {
    for (Direction dir : dirs) {
      for (int layers = 1; layers <= 3; ++layers) {
        for (int rep = 0; rep < 4; ++rep, ++k) {
          const Size& sz = sizes[k % 6];
          Config c;
          c.dtype = dt;
          c.layers = layers;
          c.dir = dir;
          c.I = sz.I;
          c.H = sz.H;
          c.P = (k / 6) % 2 == 1 ? sz.P : 0;
          c.T = sz.T;
          c.B = sz.B;
          c.layout = static_cast<BatchLayout>(k % 2);
          c.lengths = k % 5;
          c.h0 = pick(2) == 1;
          c.c0 = pick(2) == 1;
          c.bias = k % 7 != 3;
          c.options = (k / 2) % 7;
          out.push_back(c);
        }
      }
    }
  }
  return out;
}

void PrintTo(const Config& c, std::ostream* os) {
  *os << dtype_name(c.dtype) << " L" << c.layers << " " << direction_name(c.dir) << " I" << c.I << " H" << c.H << " P"
      << c.P << " T" << c.T << " B" << c.B << " " << layout_name(c.layout) << " lengths" << c.lengths << " options"
      << c.options << (c.h0 ? " h0" : "") << (c.c0 ? " c0" : "") << (c.bias ? " bias" : " no-bias");
}

std::string config_name(const ::testing::TestParamInfo<Config>& info) {
  const Config& c = info.param;
  static const char* const dirs[] = {"fwd", "rev", "bi"};
  return std::to_string(info.index) + "_" + dtype_name(c.dtype) + "_L" + std::to_string(c.layers) + "_" +
         dirs[static_cast<int>(c.dir)] + (c.P ? "_proj" : "") + (c.layout == BatchLayout::kBatchMajor ? "_bm" : "_sm") +
         "_len" + std::to_string(c.lengths) + "_opt" + std::to_string(c.options) + "_H" + std::to_string(c.H);
}

// Host-emulated tolerances: the GEMMs accumulate in double here, so these bound the engine's own rounding (f32
// gates and cell state; 16-bit h and layer outputs for f16/bf16). The GPU adds its GEMMs' f32 accumulation.
double rel_tolerance(DType dt) {
  return dt == DType::kF32 ? 2e-6 : dt == DType::kF16 ? 5e-3 : 3e-2;
}
double abs_tolerance(DType dt) {
  return dt == DType::kF32 ? 2e-5 : dt == DType::kF16 ? 3e-2 : 2e-1;
}

std::map<std::string, double> g_worst;

// Values, padding at t >= len, and length-0 sequences passing their state through.
void expect_matches_reference(const Config& c, const Problem& p, const Result& got, const Result& ref,
                              const std::string& engine) {
  double& worst = g_worst[engine + " engine vs reference, " + dtype_name(c.dtype)];
  const double rt = rel_tolerance(c.dtype), at = abs_tolerance(c.dtype);
  EXPECT_TRUE(close("y", got.y, ref.y, rt, at, &worst)) << p.spec.describe();
  EXPECT_TRUE(close("h_n", got.h_n, ref.h_n, rt, at, &worst)) << p.spec.describe();
  EXPECT_TRUE(close("c_n", got.c_n, ref.c_n, rt, at, &worst)) << p.spec.describe();
  if (p.lengths.empty()) return;
  const bool bm = c.layout == BatchLayout::kBatchMajor;
  const float pad = decode(encode({p.padding}, c.dtype).data(), 1, c.dtype)[0];
  const std::int64_t Y = p.spec.output_size(), R = p.spec.recurrent_size();
  for (std::int64_t b = 0; b < p.B; ++b) {
    for (std::int64_t t = p.lengths[static_cast<std::size_t>(b)]; t < p.T; ++t) {
      const std::int64_t row = bm ? b * p.T + t : t * p.B + b;
      for (std::int64_t k = 0; k < Y; ++k) ASSERT_EQ(got.y[static_cast<std::size_t>(row * Y + k)], pad);
    }
    if (p.lengths[static_cast<std::size_t>(b)] != 0) continue;
    const std::vector<float> h0 =
        p.h0.empty() ? std::vector<float>() : decode(encode(p.h0, c.dtype).data(), p.h0.size(), c.dtype);
    for (std::int64_t row = 0; row < state_rows(p.spec); ++row) {
      for (std::int64_t k = 0; k < R; ++k) {
        const std::size_t i = static_cast<std::size_t>((row * p.B + b) * R + k);
        ASSERT_EQ(got.h_n[i], h0.empty() ? 0.0f : h0[i]) << "h_n of a length-0 sequence";
      }
    }
  }
}

std::int64_t steps_of(const Problem& p) {
  return p.lengths.empty() ? p.T : *std::max_element(p.lengths.begin(), p.lengths.end());
}
bool any_short(const Problem& p) {
  return std::any_of(p.lengths.begin(), p.lengths.end(), [&](int v) { return v < p.T; });
}

class HostSchedule : public ::testing::TestWithParam<Config> {};

TEST_P(HostSchedule, MatchesReference) {
  const Config& c = GetParam();
  const Problem p = make_problem(c, 100 + static_cast<unsigned>(c.I * 31 + c.H * 7 + c.layers));
  ASSERT_TRUE(p.spec.validate().ok()) << p.spec.validate().to_string();
  Result ref, got;
  ASSERT_TRUE(run_reference(p, &ref));
  ASSERT_TRUE(run_host(p, &got));
  expect_matches_reference(c, p, got, ref, "stepwise");

  // The schedule's shape: one input GEMM per layer, one recurrent GEMM and one pointwise kernel per step.
  const std::int64_t steps = steps_of(p);
  const int L = c.layers;
  EXPECT_EQ(got.counts["input projection GEMM"], steps > 0 ? L : 0);
  EXPECT_EQ(got.counts["recurrent GEMM"], L * steps);
  EXPECT_EQ(got.counts["pointwise_step"], L * steps);
  EXPECT_EQ(got.counts["projection GEMM"], c.P > 0 ? L * steps : 0);
  EXPECT_EQ(got.counts["projection_commit"], c.P > 0 ? L * steps : 0);
  EXPECT_EQ(got.counts["initial_state"], L);
  EXPECT_EQ(got.counts["final_state"], L);
  EXPECT_EQ(got.counts["persistent_layer"], 0);
  EXPECT_EQ(got.counts["fill_padding"], any_short(p) ? L : 0);
  EXPECT_EQ(got.counts["upload_lengths"], any_short(p) ? 1 : 0);
}

// The persistent engine's block program on the same grid, with 1 to 4 blocks per direction (so that blocks own
// several units, the last block fewer, and with a projection some blocks no projection output), and with a block
// per hidden unit; blocks of one host thread, and blocks of 3 warps x 4 lanes (a lane count that divides neither
// the sizes nor kBatchChunk, and more warps than some blocks have rows).
class HostPersistent : public ::testing::TestWithParam<Config> {};

TEST_P(HostPersistent, MatchesReference) {
  const Config& c = GetParam();
  const Problem p = make_problem(c, 100 + static_cast<unsigned>(c.I * 31 + c.H * 7 + c.layers));
  Result ref;
  ASSERT_TRUE(run_reference(p, &ref));
  const int index = static_cast<int>(c.H * 13 + c.layers * 5 + static_cast<int>(c.dir) + c.lengths);
  struct Variant {
    int blocks;
    HostBlockShape shape;
  };
  for (const Variant& v : {Variant{1 + index % 4, {1, 1}}, Variant{1 << 20, {1, 1}}, Variant{1 + index % 3, {3, 4}}}) {
    SCOPED_TRACE("at most " + std::to_string(v.blocks) + " blocks per direction, " + std::to_string(v.shape.warps) +
                 " x " + std::to_string(v.shape.lanes) + " threads per block");
    Result got;
    ASSERT_TRUE(run_host(p, &got, v.blocks, v.shape));
    expect_matches_reference(c, p, got, ref, "persistent");
    // One input GEMM and one persistent launch per layer; nothing per step.
    const int L = c.layers;
    EXPECT_EQ(got.counts["input projection GEMM"], steps_of(p) > 0 ? L : 0);
    EXPECT_EQ(got.counts["persistent_layer"], L);
    EXPECT_EQ(got.counts["recurrent GEMM"], 0);
    EXPECT_EQ(got.counts["pointwise_step"], 0);
    EXPECT_EQ(got.counts["initial_state"], 0);
    EXPECT_EQ(got.counts["final_state"], 0);
    EXPECT_EQ(got.counts["fill_padding"], any_short(p) ? L : 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Grid, HostSchedule, ::testing::ValuesIn(configs()), config_name);
INSTANTIATE_TEST_SUITE_P(Grid, HostPersistent, ::testing::ValuesIn(configs()), config_name);

// Batches above kBatchChunk: several staged chunks per step, the last one partly past B (the grid's batches are
// all smaller). Both engines, the persistent one with one thread and with 3 x 4 threads per block.
TEST(HostEnginesLargeBatch, SeveralBatchChunksPerStepMatchReference) {
  const Config cases[] = {
      {DType::kF32, 1, Direction::kForward, 6, 10, 0, 5, 19, BatchLayout::kSeqMajor, 2, true, true, true, 1},
      {DType::kBF16, 2, Direction::kBidirectional, 4, 9, 4, 4, 17, BatchLayout::kBatchMajor, 3, false, true, true, 6},
      {DType::kF16, 1, Direction::kReverse, 3, 7, 3, 3, 8, BatchLayout::kSeqMajor, 0, true, false, false, 2},
      {DType::kF32, 2, Direction::kBidirectional, 5, 12, 0, 6, 16, BatchLayout::kBatchMajor, 1, true, true, true, 0},
      {DType::kF32, 1, Direction::kForward, 4, 6, 2, 3, 9, BatchLayout::kSeqMajor, 4, true, true, true, 5}};
  static_assert(kernels::kBatchChunk < 9, "these batches must span several chunks");
  for (const Config& c : cases) {
    std::ostringstream name;
    PrintTo(c, &name);
    SCOPED_TRACE(name.str());
    const Problem p = make_problem(c, 7 + static_cast<unsigned>(c.B));
    Result ref, stepwise_result;
    ASSERT_TRUE(run_reference(p, &ref));
    ASSERT_TRUE(run_host(p, &stepwise_result));
    expect_matches_reference(c, p, stepwise_result, ref, "stepwise");
    for (const HostBlockShape shape : {HostBlockShape{1, 1}, HostBlockShape{3, 4}}) {
      Result got;
      ASSERT_TRUE(run_host(p, &got, 3, shape));
      expect_matches_reference(c, p, got, ref, "persistent");
      EXPECT_EQ(got.counts["persistent_layer"], c.layers);
    }
  }
}

// A batch above gpu::kLengthsPerLaunch: the lengths reach the device in two upload launches (the GPU tests'
// batches are all far smaller, so only this test runs that loop). Every sequence's length, including those of the
// second launch, must reach the kernels: each row's padding, values and final state are checked.
TEST(HostEnginesLargeBatch, LengthsUploadedInSeveralLaunchesMatchReference) {
  const std::int64_t B = gpu::kLengthsPerLaunch + 17;
  const Config c = {DType::kF32, 1, Direction::kBidirectional, 2, 3, 0, 4, B, BatchLayout::kBatchMajor, 3,
                    true,        true, true, 0};
  const Problem p = make_problem(c, 31);
  ASSERT_TRUE(any_short(p));
  Result ref, stepwise_result, persistent_result;
  ASSERT_TRUE(run_reference(p, &ref));
  ASSERT_TRUE(run_host(p, &stepwise_result));
  expect_matches_reference(c, p, stepwise_result, ref, "stepwise");
  EXPECT_EQ(stepwise_result.counts["upload_lengths"], 2);
  ASSERT_TRUE(run_host(p, &persistent_result, 2));
  expect_matches_reference(c, p, persistent_result, ref, "persistent");
  EXPECT_EQ(persistent_result.counts["upload_lengths"], 2);
}

// Prints the worst errors after all tests: evidence for the provisional tolerances of
// tests/gpu/cuda_backend_test.cpp (these GEMMs accumulate in double; the GPU's in f32).
class WorstErrorReport : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [dtype, rel] : g_worst) {
      std::cout << "[culstm host-emulated] " << dtype << ": worst rel " << rel << "\n";
    }
  }
};
[[maybe_unused]] const auto* const g_report = ::testing::AddGlobalTestEnvironment(new WorstErrorReport);

// --- pieces ----------------------------------------------------------------------------------------------------

TEST(StepwiseSchedule, ToBlasIsTheRowMajorProductInColumnMajorTerms) {
  // C[2, 3] = A[2, 4] * W[3, 4]^T, row-major, through the translation and the column-major host GEMM.
  const std::vector<float> a = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<float> w = {1, 0, 0, 1, 0, 1, 0, 0, 2, 2, 2, 2};
  std::vector<float> c(6, -1.0f);
  cuda_backend::Gemm g;
  g.m = 2;
  g.n = 3;
  g.k = 4;
  g.a = a.data();
  g.lda = 4;
  g.w = w.data();
  g.ldw = 4;
  g.c = c.data();
  g.ldc = 3;
  BlasGemm b;
  ASSERT_TRUE(cuda_backend::to_blas(g, &b).ok());
  EXPECT_TRUE(b.trans_a);
  EXPECT_FALSE(b.trans_b);
  EXPECT_EQ(b.m, 3);
  EXPECT_EQ(b.n, 2);
  EXPECT_EQ(b.k, 4);
  HostExecutor<float> exec({{"a", reinterpret_cast<const std::uint8_t*>(a.data()), a.size() * 4},
                            {"w", reinterpret_cast<const std::uint8_t*>(w.data()), w.size() * 4},
                            {"c", reinterpret_cast<const std::uint8_t*>(c.data()), c.size() * 4}});
  ASSERT_TRUE(exec.gemm(b, "test").ok());
  const std::vector<float> want = {1 + 4, 2, 2 * 10, 5 + 8, 6, 2 * 26};
  EXPECT_EQ(c, want);

  g.m = std::int64_t{1} << 31;  // beyond cuBLAS's int
  EXPECT_EQ(cuda_backend::to_blas(g, &b).code(), StatusCode::kInternal);
}

TEST(StepwiseSchedule, PackedWeightsStackDirectionsAndSumBiases) {
  LstmSpec s;
  s.input_size = 3;
  s.hidden_size = 2;
  s.proj_size = 1;
  s.direction = Direction::kBidirectional;
  s.peepholes = true;
  s.dtype = DType::kBF16;
  std::mt19937 rng(5);
  const Weights w = random_weights(s, rng, 1.0f);
  const cuda_backend::PackedWeights packed = cuda_backend::pack_weights(s, w);
  const std::vector<cuda_backend::LayerWeightPointers> ptr = cuda_backend::weight_pointers(s, packed, packed.bytes.data());
  ASSERT_EQ(ptr.size(), 1u);
  const auto round = [](float v) { return detail::bf16_to_float(detail::float_to_bf16(v)); };
  const auto* w_ih = static_cast<const std::uint16_t*>(ptr[0].w_ih);
  for (int d = 0; d < 2; ++d) {
    for (int k = 0; k < 8 * 3; ++k) {  // [4H, I] of direction d at row d*4H of the stacked [D*4H, I]
      EXPECT_EQ(detail::bf16_to_float(w_ih[d * 24 + k]), round(w.at(0, d).w_ih[static_cast<std::size_t>(k)]));
    }
    for (int r = 0; r < 8; ++r) {
      const double sum = static_cast<double>(round(w.at(0, d).b_ih[static_cast<std::size_t>(r)])) +
                         round(w.at(0, d).b_hh[static_cast<std::size_t>(r)]);
      EXPECT_EQ(ptr[0].bias[d * 8 + r], static_cast<float>(sum));
    }
    for (int k = 0; k < 6; ++k)
      EXPECT_EQ(ptr[0].peephole[d * 6 + k], round(w.at(0, d).peephole[static_cast<std::size_t>(k)]));
  }
  for (const void* p : {ptr[0].w_ih, ptr[0].w_hh, ptr[0].w_hr, static_cast<const void*>(ptr[0].bias),
                        static_cast<const void*>(ptr[0].peephole)}) {
    EXPECT_EQ((static_cast<const std::uint8_t*>(p) - packed.bytes.data()) % 256, 0);
  }
  s.bias = false;
  s.peepholes = false;
  const cuda_backend::PackedWeights plain = cuda_backend::pack_weights(s, Weights::zeros_for(s));
  const auto none = cuda_backend::weight_pointers(s, plain, plain.bytes.data());
  EXPECT_EQ(none[0].bias, nullptr);
  EXPECT_EQ(none[0].peephole, nullptr);
}

// Records what the schedule asks for, dereferencing nothing.
class RecordingExecutor final : public cuda_backend::Executor {
 public:
  std::vector<BlasGemm> gemms;
  int kernels = 0;
  Status gemm(const BlasGemm& g, const char*) override {
    gemms.push_back(g);
    return Status::Ok();
  }
  Status upload_lengths(const gpu::UploadLengthsParams&) override { return kernel(); }
  Status initial_state(const kernels::InitialStateParams&) override { return kernel(); }
  Status fill_padding(const kernels::FillPaddingParams&) override { return kernel(); }
  Status pointwise_step(const kernels::PointwiseStepParams&) override { return kernel(); }
  Status projection_commit(const kernels::ProjectionCommitParams&) override { return kernel(); }
  Status final_state(const kernels::FinalStateParams&) override { return kernel(); }
  Status persistent_layer(const kernels::PersistentLayerParams&) override { return kernel(); }

 private:
  Status kernel() {
    ++kernels;
    return Status::Ok();
  }
};

std::string gemm_shape(const BlasGemm& g) {
  std::ostringstream s;
  s << g.trans_a << g.trans_b << " " << g.m << "x" << g.n << "x" << g.k << " ld " << g.lda << "," << g.ldb << ","
    << g.ldc << " batch " << g.batch;
  return s.str();
}

// The warm-up before a graph capture (graph mode `on`): every GEMM shape of the forward exactly once, no kernel.
TEST(StepwiseSchedule, DistinctGemmsOnlyCallsEachGemmShapeOnceAndNoKernel) {
  LstmSpec s;
  s.input_size = 5;
  s.hidden_size = 6;
  s.proj_size = 3;
  s.num_layers = 3;
  s.direction = Direction::kBidirectional;
  const std::int64_t T = 4, B = 3;
  std::int32_t lengths[3] = {4, 1, 0};
  std::vector<std::uint8_t> fake(1);  // never dereferenced: the executors only record
  ForwardArgs a;
  a.x = TensorView::host(fake.data(), DType::kF32, {T, B, s.input_size});
  a.lengths = TensorView::host(lengths, DType::kI32, {B});
  a.y = TensorView::host(fake.data(), DType::kF32, {T, B, s.output_size()});
  a.workspace = fake.data();
  const std::vector<cuda_backend::LayerWeightPointers> weights(static_cast<std::size_t>(s.num_layers));

  RecordingExecutor all;
  ASSERT_TRUE(plan_and_run(s, weights, a, 1024, all).ok());
  std::set<std::string> distinct;
  for (const BlasGemm& g : all.gemms) distinct.insert(gemm_shape(g));
  // Layer 0's input GEMM (k = 5) differs from the others' (k = D*P = 6); recurrent and projection shapes repeat.
  EXPECT_EQ(distinct.size(), 4u);
  ASSERT_GT(all.gemms.size(), distinct.size());

  RecordingExecutor warmed;
  cuda_backend::DistinctGemmsOnly warm_up(warmed);
  ASSERT_TRUE(plan_and_run(s, weights, a, 1024, warm_up).ok());
  EXPECT_EQ(warmed.kernels, 0);
  std::set<std::string> seen;
  for (const BlasGemm& g : warmed.gemms) EXPECT_TRUE(seen.insert(gemm_shape(g)).second) << gemm_shape(g);
  EXPECT_EQ(seen, distinct);
}

TEST(StepwiseSchedule, RunShapeFromLengths) {
  LstmSpec s;
  s.input_size = 2;
  s.hidden_size = 3;
  s.layout = BatchLayout::kBatchMajor;
  float x[1] = {};
  std::int32_t lengths[3] = {4, 2, 0};
  ForwardArgs a;
  a.x = TensorView::host(x, DType::kF32, {3, 4, 2});  // [B, T, I]
  ForwardShape r = shape_of(s, a);
  EXPECT_EQ(r.batch, 3);
  EXPECT_EQ(r.seq_len, 4);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.lengths, nullptr);
  a.lengths = TensorView::host(lengths, DType::kI32, {3});
  r = shape_of(s, a);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.lengths, lengths);  // some len < T: uploaded, and the kernels mask
  lengths[0] = 3;
  EXPECT_EQ(shape_of(s, a).steps, 3);
  lengths[0] = lengths[1] = lengths[2] = 4;
  r = shape_of(s, a);
  EXPECT_EQ(r.lengths, nullptr);  // all T: the kernels read no lengths
  lengths[0] = lengths[1] = lengths[2] = 0;
  EXPECT_EQ(shape_of(s, a).steps, 0);
}

}  // namespace
}  // namespace culstm
