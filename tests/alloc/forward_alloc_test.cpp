// forward() never allocates (docs/decisions.md): this executable replaces the global operator new/delete (every
// form) with counting versions and checks that, after a warm-up call, forward() on the reference backend (C++ and
// C API), and workspace_size(), perform no allocation and no deallocation. It links the static library, so the
// library's own code (std::string, std::vector, ...) goes through these operators too; the first tests prove the
// hook sees allocations made inside the library.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "culstm/culstm.h"
#include "culstm/culstm.hpp"
#include "float16.h"
#include "test_util.h"

namespace {

std::atomic<long> g_allocations{0};
std::atomic<long> g_deallocations{0};

void* counted_alloc(std::size_t size, std::size_t alignment = 0) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  void* p = nullptr;
  if (alignment > alignof(std::max_align_t)) {
    if (posix_memalign(&p, alignment, size) != 0) p = nullptr;
  } else {
    p = std::malloc(size);
  }
  return p;
}

void counted_free(void* p) {
  if (p == nullptr) return;
  g_deallocations.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

void* operator new(std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void* operator new(std::size_t size, std::align_val_t al) {
  if (void* p = counted_alloc(size, static_cast<std::size_t>(al))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t al) {
  if (void* p = counted_alloc(size, static_cast<std::size_t>(al))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<std::size_t>(al));
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }

namespace culstm {
namespace {

using testing_util::random_values;
using testing_util::random_weights;
using testing_util::state_rows;

// Allocations and deallocations made while `body` runs.
struct Counts {
  long allocations, deallocations;
};
template <typename Body>
Counts count_during(Body&& body) {
  const long a0 = g_allocations.load(), d0 = g_deallocations.load();
  body();
  return Counts{g_allocations.load() - a0, g_deallocations.load() - d0};
}

TEST(ForwardAllocTest, HookSeesAllocations) {
  static std::vector<int>* volatile sink = nullptr;  // volatile: the compiler may not elide the new/delete pair
  const Counts c = count_during([] {
    sink = new std::vector<int>(100);
    delete sink;
  });
  EXPECT_EQ(c.allocations, 2);
  EXPECT_EQ(c.deallocations, 2);
}

// Host buffers of one call in the model's dtype, and the views of them.
struct Buffers {
  std::vector<std::uint8_t> x, h0, c0, y, h_n, c_n, workspace;
  std::vector<std::int32_t> lengths;
  ForwardArgs args;
};

std::vector<std::uint8_t> random_bytes_of(DType dtype, std::size_t n, std::mt19937& rng) {
  const std::vector<float> v = random_values(n, rng);
  std::vector<std::uint8_t> out(n * dtype_size(dtype));
  for (std::size_t k = 0; k < n; ++k) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[4 * k], &v[k], 4);
    } else {
      const std::uint16_t bits = dtype == DType::kF16 ? detail::float_to_half(v[k]) : detail::float_to_bf16(v[k]);
      std::memcpy(&out[2 * k], &bits, 2);
    }
  }
  return out;
}

void make_buffers(const Model& model, std::int64_t T, std::int64_t B, std::mt19937& rng, Buffers* buf) {
  const LstmSpec& spec = model.spec();
  const DType dt = spec.dtype;
  const std::size_t es = dtype_size(dt);
  const std::int64_t LD = state_rows(spec), R = spec.recurrent_size(), H = spec.hidden_size, Y = spec.output_size();
  const bool bm = spec.layout == BatchLayout::kBatchMajor;
  buf->x = random_bytes_of(dt, static_cast<std::size_t>(T * B * spec.input_size), rng);
  buf->h0 = random_bytes_of(dt, static_cast<std::size_t>(LD * B * R), rng);
  buf->c0 = random_bytes_of(dt, static_cast<std::size_t>(LD * B * H), rng);
  buf->y.assign(static_cast<std::size_t>(T * B * Y) * es, 0);
  buf->h_n.assign(static_cast<std::size_t>(LD * B * R) * es, 0);
  buf->c_n.assign(static_cast<std::size_t>(LD * B * H) * es, 0);
  buf->lengths.resize(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) buf->lengths[b] = static_cast<std::int32_t>((b * 5) % (T + 1));
  std::size_t bytes = 0;
  ASSERT_TRUE(model.workspace_size(B, T, &bytes).ok());
  buf->workspace.assign(bytes, 0);
  ForwardArgs& a = buf->args;
  a.x = bm ? TensorView::host(buf->x.data(), dt, {B, T, spec.input_size})
           : TensorView::host(buf->x.data(), dt, {T, B, spec.input_size});
  a.lengths = TensorView::host(buf->lengths.data(), DType::kI32, {B});
  a.h0 = TensorView::host(buf->h0.data(), dt, {LD, B, R});
  a.c0 = TensorView::host(buf->c0.data(), dt, {LD, B, H});
  a.y = bm ? TensorView::host(buf->y.data(), dt, {B, T, Y}) : TensorView::host(buf->y.data(), dt, {T, B, Y});
  a.h_n = TensorView::host(buf->h_n.data(), dt, {LD, B, R});
  a.c_n = TensorView::host(buf->c_n.data(), dt, {LD, B, H});
  a.workspace = buf->workspace.data();
  a.workspace_bytes = bytes;
}

std::vector<LstmSpec> specs() {
  std::vector<LstmSpec> out;
  LstmSpec s;
  s.input_size = 4;
  s.hidden_size = 6;
  out.push_back(s);  // the simplest
  s.num_layers = 2;
  s.direction = Direction::kBidirectional;
  s.proj_size = 3;
  s.peepholes = true;
  s.layout = BatchLayout::kBatchMajor;
  out.push_back(s);  // everything structural
  s = LstmSpec();
  s.input_size = 5;
  s.hidden_size = 7;
  s.dtype = DType::kBF16;
  s.gate_clip = 2.0f;
  s.cell_clip = 1.0f;
  s.input_forget = true;
  s.direction = Direction::kReverse;
  out.push_back(s);
  s.dtype = DType::kF16;
  s.gate_activation = Activation::hard_sigmoid();
  out.push_back(s);
  return out;
}

TEST(ForwardAllocTest, LibraryAllocationsAreCounted) {
  // A failing forward builds its message in a std::string inside the library: the hook must see it, or the zero
  // counts below would prove nothing.
  std::mt19937 rng(1);
  const LstmSpec spec = specs()[0];
  std::shared_ptr<const Model> model = testing_util::make_reference_model(spec, random_weights(spec, rng), 8, 16);
  ASSERT_TRUE(model);
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::create(*model, &ctx).ok());
  Buffers buf;
  make_buffers(*model, 5, 3, rng, &buf);
  buf.args.workspace_bytes = 1;
  Status st;
  const Counts c = count_during([&] { st = forward(*ctx, *model, buf.args); });
  EXPECT_EQ(st.code(), StatusCode::kWorkspaceTooSmall);
  EXPECT_GT(c.allocations, 0);
}

TEST(ForwardAllocTest, ReferenceForwardDoesNotAllocate) {
  std::mt19937 rng(2);
  for (const LstmSpec& spec : specs()) {
    SCOPED_TRACE(spec.describe());
    std::shared_ptr<const Model> model = testing_util::make_reference_model(spec, random_weights(spec, rng), 8, 32);
    ASSERT_TRUE(model);
    std::unique_ptr<Context> ctx;
    ASSERT_TRUE(Context::create(*model, &ctx).ok());
    Buffers big, small;
    make_buffers(*model, 20, 8, rng, &big);
    make_buffers(*model, 3, 1, rng, &small);
    ASSERT_TRUE(forward(*ctx, *model, big.args).ok());  // warm-up
    Status st1, st2, st3;
    std::size_t bytes = 0;
    const Counts c = count_during([&] {
      for (int k = 0; k < 3; ++k) {
        st1 = forward(*ctx, *model, big.args);
        st2 = forward(*ctx, *model, small.args);
        st3 = model->workspace_size(8, 20, &bytes);
      }
    });
    EXPECT_TRUE(st1.ok()) << st1.to_string();
    EXPECT_TRUE(st2.ok()) << st2.to_string();
    EXPECT_TRUE(st3.ok()) << st3.to_string();
    EXPECT_EQ(c.allocations, 0);
    EXPECT_EQ(c.deallocations, 0);
  }
}

TEST(ForwardAllocTest, CApiForwardDoesNotAllocate) {
  culstm_spec_t* spec = nullptr;
  ASSERT_EQ(culstm_spec_create(&spec), CULSTM_STATUS_OK);
  ASSERT_EQ(culstm_spec_set_input_size(spec, 4), CULSTM_STATUS_OK);
  ASSERT_EQ(culstm_spec_set_hidden_size(spec, 6), CULSTM_STATUS_OK);
  ASSERT_EQ(culstm_spec_set_direction(spec, CULSTM_DIRECTION_BIDIRECTIONAL), CULSTM_STATUS_OK);
  culstm_weights_t* weights = nullptr;
  ASSERT_EQ(culstm_weights_create(spec, &weights), CULSTM_STATUS_OK);
  culstm_model_options_t options = culstm_model_options_default();
  options.backend = CULSTM_BACKEND_REFERENCE;
  culstm_model_t* model = nullptr;
  ASSERT_EQ(culstm_model_create(spec, weights, &options, &model), CULSTM_STATUS_OK) << culstm_last_error();
  culstm_context_t* ctx = nullptr;
  ASSERT_EQ(culstm_context_create(model, &ctx), CULSTM_STATUS_OK);
  constexpr std::int64_t T = 6, B = 2;
  std::vector<float> x(T * B * 4, 0.25f), y(T * B * 12), h_n(2 * B * 6), c_n(2 * B * 6);
  std::size_t bytes = 0;
  ASSERT_EQ(culstm_model_workspace_size(model, B, T, &bytes), CULSTM_STATUS_OK);
  std::vector<std::uint8_t> workspace(bytes);
  culstm_forward_args_t args;
  std::memset(&args, 0, sizeof args);
  args.x = culstm_tensor_3d(x.data(), CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, T, B, 4);
  args.y = culstm_tensor_3d(y.data(), CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, T, B, 12);
  args.h_n = culstm_tensor_3d(h_n.data(), CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 2, B, 6);
  args.c_n = culstm_tensor_3d(c_n.data(), CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 2, B, 6);
  args.workspace = workspace.data();
  args.workspace_bytes = bytes;
  ASSERT_EQ(culstm_forward(ctx, model, &args, nullptr), CULSTM_STATUS_OK);  // warm-up
  culstm_status_t st = CULSTM_STATUS_INTERNAL;
  const Counts c = count_during([&] {
    for (int k = 0; k < 3; ++k) st = culstm_forward(ctx, model, &args, nullptr);
  });
  EXPECT_EQ(st, CULSTM_STATUS_OK) << culstm_last_error();
  EXPECT_EQ(c.allocations, 0);
  EXPECT_EQ(c.deallocations, 0);
  culstm_context_destroy(ctx);
  culstm_model_destroy(model);
  culstm_weights_destroy(weights);
  culstm_spec_destroy(spec);
}

}  // namespace
}  // namespace culstm
