// Streaming (docs/streaming.md): a long sequence fed in chunks, each call's h_n/c_n becoming the next call's h0/c0
// through two ping-pong state buffers, against one call over the whole sequence (reference backend).
//
// What is exact and what is not: the reference keeps h and c in float64 inside a call and rounds them to the
// model's dtype only when it writes h_n/c_n. A chunked run therefore rounds the carried state once per chunk
// boundary, where the whole-sequence call does not. So:
//   - bit for bit: everything before the first boundary; sequences that end in an earlier chunk (len = 0 in the
//     later chunks passes their state through unchanged); empty sequences; the padding;
//   - within 5e-7 (measured: at most 3e-8, about one f32 ulp of the outputs): everything after a boundary.
// Bidirectional and reverse layers cannot be streamed (the reverse direction needs the future): the calls succeed,
// and the results differ from the whole-sequence ones; the last tests show by how much.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "culstm/culstm.hpp"
#include "test_util.h"

namespace culstm {
namespace {

using testing_util::HostRun;
using testing_util::random_run;
using testing_util::random_weights;
using testing_util::run_host_forward;
using testing_util::state_rows;

// Between a chunked and a whole-sequence run after a chunk boundary (see the file comment). Measured: <= 3e-8.
constexpr float kBoundaryTolerance = 5e-7f;

LstmSpec spec_for(Direction dir, BatchLayout layout, int layers = 2, std::int64_t proj = 4) {
  LstmSpec s;
  s.input_size = 5;
  s.hidden_size = 8;
  s.proj_size = proj;
  s.num_layers = layers;
  s.direction = dir;
  s.layout = layout;
  return s;
}

// A chunked run's outputs, plus h_n after every chunk.
struct Streamed {
  std::vector<float> y, h_n, c_n;
  std::vector<std::vector<float>> h_n_after;  // per chunk
  Status status;
};

// Feeds `whole` (its x, lengths, h0/c0) through `model` in chunks of the given step counts: the pattern of
// docs/streaming.md. Chunk k reads its state from one buffer pair and writes the other; the pairs swap after each call.
Streamed run_chunked(const Model& model, const HostRun& whole, const std::vector<std::int64_t>& chunks) {
  const LstmSpec& spec = model.spec();
  const bool batch_major = spec.layout == BatchLayout::kBatchMajor;
  const std::int64_t T = whole.T, B = whole.B, I = spec.input_size, Y = spec.output_size();
  const std::int64_t LD = state_rows(spec), R = spec.recurrent_size(), H = spec.hidden_size;
  Streamed out;
  out.y.assign(static_cast<std::size_t>(T * B * Y), std::nanf(""));

  std::unique_ptr<Context> ctx;
  out.status = Context::create(model, &ctx);
  if (!out.status.ok()) return out;
  const std::int64_t max_chunk = *std::max_element(chunks.begin(), chunks.end());
  std::size_t bytes = 0;
  out.status = model.workspace_size(B, max_chunk, &bytes);
  if (!out.status.ok()) return out;
  std::vector<std::uint8_t> workspace(bytes);

  // Ping-pong state: outputs may not alias inputs, so h_n/c_n of chunk k go to the buffer chunk k+1 reads.
  std::vector<float> h[2], c[2];
  for (int k = 0; k < 2; ++k) {
    h[k].assign(static_cast<std::size_t>(LD * B * R), 0.0f);
    c[k].assign(static_cast<std::size_t>(LD * B * H), 0.0f);
  }
  if (whole.with_h0) h[0] = whole.h0;
  if (whole.with_c0) c[0] = whole.c0;
  std::vector<float> x_chunk, y_chunk;
  std::vector<std::int32_t> len_chunk(static_cast<std::size_t>(B));
  int cur = 0;
  std::int64_t t0 = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const std::int64_t n = chunks[k];
    ForwardArgs args;
    if (batch_major) {  // [B, n, I] gathered from [B, T, I]
      x_chunk.resize(static_cast<std::size_t>(B * n * I));
      y_chunk.assign(static_cast<std::size_t>(B * n * Y), std::nanf(""));
      for (std::int64_t b = 0; b < B; ++b) {
        std::copy_n(&whole.x[static_cast<std::size_t>((b * T + t0) * I)], n * I,
                    &x_chunk[static_cast<std::size_t>(b * n * I)]);
      }
      args.x = TensorView::host(x_chunk.data(), DType::kF32, {B, n, I});
      args.y = TensorView::host(y_chunk.data(), DType::kF32, {B, n, Y});
    } else {  // seq-major: a chunk is a contiguous slice, read and written in place
      args.x = TensorView::host(&whole.x[static_cast<std::size_t>(t0 * B * I)], DType::kF32, {n, B, I});
      args.y = TensorView::host(&out.y[static_cast<std::size_t>(t0 * B * Y)], DType::kF32, {n, B, Y});
    }
    if (whole.with_lengths) {
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t rest = whole.lengths[static_cast<std::size_t>(b)] - t0;
        len_chunk[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(std::clamp<std::int64_t>(rest, 0, n));
      }
      args.lengths = TensorView::host(len_chunk.data(), DType::kI32, {B});
    }
    const bool first = k == 0;
    if (!first || whole.with_h0) args.h0 = TensorView::host(h[cur].data(), DType::kF32, {LD, B, R});
    if (!first || whole.with_c0) args.c0 = TensorView::host(c[cur].data(), DType::kF32, {LD, B, H});
    args.h_n = TensorView::host(h[1 - cur].data(), DType::kF32, {LD, B, R});
    args.c_n = TensorView::host(c[1 - cur].data(), DType::kF32, {LD, B, H});
    args.workspace = workspace.data();
    args.workspace_bytes = workspace.size();
    out.status = forward(*ctx, model, args);
    if (!out.status.ok()) return out;
    if (batch_major) {
      for (std::int64_t b = 0; b < B; ++b) {
        std::copy_n(&y_chunk[static_cast<std::size_t>(b * n * Y)], n * Y,
                    &out.y[static_cast<std::size_t>((b * T + t0) * Y)]);
      }
    }
    cur = 1 - cur;
    out.h_n_after.push_back(h[cur]);
    t0 += n;
  }
  out.h_n = h[cur];
  out.c_n = c[cur];
  return out;
}

// Index of y element (t, b, k) in either layout.
std::size_t y_index(const LstmSpec& spec, std::int64_t T, std::int64_t B, std::int64_t t, std::int64_t b,
                    std::int64_t k) {
  const std::int64_t Y = spec.output_size();
  return static_cast<std::size_t>(spec.layout == BatchLayout::kBatchMajor ? (b * T + t) * Y + k
                                                                           : (t * B + b) * Y + k);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (std::size_t k = 0; k < a.size(); ++k) {
    const float d = std::fabs(a[k] - b[k]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

// The whole-sequence run of `spec` on random inputs, with lengths {T, ends mid-stream, 0, ...}.
struct Case {
  std::shared_ptr<const Model> model;
  HostRun whole;
};

Case make_case(const LstmSpec& spec, std::int64_t T, std::vector<std::int32_t> lengths, bool states,
               std::uint32_t seed) {
  std::mt19937 rng(seed);
  Case c;
  c.model = testing_util::make_reference_model(spec, random_weights(spec, rng), 8, 64);
  c.whole = random_run(spec, T, static_cast<std::int64_t>(lengths.size()), rng, states, states);
  c.whole.with_lengths = true;
  c.whole.lengths = std::move(lengths);
  const Status st = run_host_forward(*c.model, c.whole, 0.0f);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return c;
}

void check_forward_streaming(const LstmSpec& spec, bool states, const std::vector<std::int64_t>& chunks) {
  SCOPED_TRACE(spec.describe() + (states ? " with h0/c0" : " zero state"));
  constexpr std::int64_t T = 24;
  // b0 runs all T steps; b1 ends inside chunk 1 (t in [5, 12)); b2 is empty; b3 ends exactly on a boundary;
  // b4 has one step.
  const Case c = make_case(spec, T, {24, 10, 0, 12, 1}, states, 11);
  const HostRun& whole = c.whole;
  const Streamed s = run_chunked(*c.model, whole, chunks);
  ASSERT_TRUE(s.status.ok()) << s.status.to_string();
  const std::int64_t B = whole.B, Y = spec.output_size(), LD = state_rows(spec), R = spec.recurrent_size();

  // Within the boundary tolerance everywhere.
  EXPECT_LE(max_abs_diff(s.y, whole.y), kBoundaryTolerance);
  EXPECT_LE(max_abs_diff(s.h_n, whole.h_n), kBoundaryTolerance);
  EXPECT_LE(max_abs_diff(s.c_n, whole.c_n), kBoundaryTolerance);

  // Bit for bit before the first boundary, and at every padded step.
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = 0; t < T; ++t) {
      const bool exact = t < chunks[0] || t >= whole.lengths[static_cast<std::size_t>(b)];
      if (!exact) continue;
      for (std::int64_t k = 0; k < Y; ++k) {
        const std::size_t i = y_index(spec, T, B, t, b, k);
        ASSERT_EQ(s.y[i], whole.y[i]) << "y at t=" << t << " b=" << b << " k=" << k;
      }
    }
  }
  // A sequence that ended in an earlier chunk: later chunks (len 0) pass its state through bit for bit. The empty
  // sequence keeps h0 (or zeros) exactly, as in the whole-sequence run.
  auto state_of = [&](const std::vector<float>& h, std::int64_t b) {
    std::vector<float> v;
    for (std::int64_t r = 0; r < LD; ++r) {
      for (std::int64_t k = 0; k < R; ++k) v.push_back(h[static_cast<std::size_t>((r * B + b) * R + k)]);
    }
    return v;
  };
  std::int64_t t_end = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    t_end += chunks[k];
    for (std::int64_t b = 0; b < B; ++b) {
      if (k > 0 && whole.lengths[static_cast<std::size_t>(b)] <= t_end - chunks[k]) {  // ended before chunk k
        EXPECT_EQ(state_of(s.h_n_after[k], b), state_of(s.h_n_after[k - 1], b)) << "b=" << b << " chunk " << k;
      }
    }
  }
  EXPECT_EQ(state_of(s.h_n, 2), state_of(whole.h_n, 2));
  EXPECT_EQ(state_of(s.h_n, 4), state_of(whole.h_n, 4));  // b4 ends in the first chunk
}

TEST(StreamingTest, ForwardChunksMatchOneCallSeqMajor) {
  check_forward_streaming(spec_for(Direction::kForward, BatchLayout::kSeqMajor), true, {5, 7, 1, 11});
}

TEST(StreamingTest, ForwardChunksMatchOneCallBatchMajor) {
  check_forward_streaming(spec_for(Direction::kForward, BatchLayout::kBatchMajor), true, {5, 7, 1, 11});
}

TEST(StreamingTest, ZeroInitialStateAndNoProjection) {
  check_forward_streaming(spec_for(Direction::kForward, BatchLayout::kSeqMajor, 3, 0), false, {8, 8, 8});
}

TEST(StreamingTest, OneStepAtATime) {
  check_forward_streaming(spec_for(Direction::kForward, BatchLayout::kSeqMajor), true,
                          std::vector<std::int64_t>(24, 1));
}

TEST(StreamingTest, OneChunkIsTheWholeCallBitForBit) {
  const LstmSpec spec = spec_for(Direction::kForward, BatchLayout::kSeqMajor);
  const Case c = make_case(spec, 24, {24, 10, 0, 12, 1}, true, 5);
  const Streamed s = run_chunked(*c.model, c.whole, {24});
  ASSERT_TRUE(s.status.ok()) << s.status.to_string();
  EXPECT_EQ(s.y, c.whole.y);
  EXPECT_EQ(s.h_n, c.whole.h_n);
  EXPECT_EQ(s.c_n, c.whole.c_n);
}

// Reverse and bidirectional layers are not streamable: every call succeeds (forward() cannot know that the call is
// a chunk), but a reverse direction that sees only its chunk, started from the previous chunk's state, computes
// something else. With one bidirectional layer, the forward half of y still streams; the reverse half does not.
TEST(StreamingTest, ReverseAndBidirectionalAreNotStreamable) {
  const std::vector<std::int64_t> chunks = {6, 6, 6, 6};
  for (Direction dir : {Direction::kReverse, Direction::kBidirectional}) {
    for (int layers : {1, 2}) {
      const LstmSpec spec = spec_for(dir, BatchLayout::kSeqMajor, layers, 0);
      SCOPED_TRACE(spec.describe());
      const Case c = make_case(spec, 24, {24, 24, 24, 24, 24}, true, 21);
      const Streamed s = run_chunked(*c.model, c.whole, chunks);
      ASSERT_TRUE(s.status.ok()) << s.status.to_string();
      const std::int64_t T = 24, B = 5, R = spec.recurrent_size();
      float fwd_half = 0.0f, rev_half = 0.0f;
      for (std::int64_t t = 0; t < T; ++t) {
        for (std::int64_t b = 0; b < B; ++b) {
          for (int d = 0; d < spec.num_directions(); ++d) {
            for (std::int64_t k = 0; k < R; ++k) {
              const std::size_t i = y_index(spec, T, B, t, b, d * R + k);
              float& m = spec.runs_reversed(d) ? rev_half : fwd_half;
              m = std::max(m, std::fabs(s.y[i] - c.whole.y[i]));
            }
          }
        }
      }
      EXPECT_GT(rev_half, 1e-2f) << "the reverse direction should differ when chunked";
      if (dir == Direction::kBidirectional && layers == 1) {
        EXPECT_LE(fwd_half, kBoundaryTolerance) << "the forward half of one bidirectional layer streams";
      }
      if (layers == 2 && dir == Direction::kBidirectional) {
        EXPECT_GT(fwd_half, 1e-2f) << "layer 2's forward half reads layer 1's (wrong) reverse half";
      }
    }
  }
}

}  // namespace
}  // namespace culstm
