// Runs a Model of any backend and dtype on host f32 data: encodes to the model's dtype, uploads to the device
// when the backend computes there, runs, waits, and brings the outputs back as f32.
#pragma once

#include <cstdint>
#include <vector>

#include "culstm/culstm.hpp"

namespace culstm {
namespace cli {

struct HostInputs {
  std::int64_t steps = 0, batch = 0;
  std::vector<float> x;               // [T, B, I] or [B, T, I] as the spec's layout says
  std::vector<std::int32_t> lengths;  // empty = all T
  std::vector<float> h0, c0;          // empty = zeros
};

struct HostOutputs {
  std::vector<float> y, h_n, c_n;
};

Status run_model(const Model& model, const HostInputs& in, HostOutputs* out, float padding_value = 0.0f);

}  // namespace cli
}  // namespace culstm
