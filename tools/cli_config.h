// `--config` strings of the culstm program: "hidden=256,layers=2,dir=bi,dtype=bf16,batch=8,steps=100".
#pragma once

#include <cstdint>
#include <string>

#include "culstm/culstm.hpp"

namespace culstm {
namespace cli {

struct RunConfig {
  LstmSpec spec;
  std::int64_t batch = 8;
  std::int64_t steps = 50;
  std::string lengths = "mixed";  // "full": every sequence T steps; "mixed": T, a zero, and values in between
  bool with_states = true;        // random h0/c0
  std::uint32_t seed = 1;
};

// The default model of `culstm check`: 2 layers, bidirectional, I=64, H=128, B=8, T=50.
RunConfig default_config();

// Applies "key=value,key=value" to `config`. Keys: input, hidden, proj, layers, dir (fwd|rev|bi), bias (0|1),
// layout (seq|batch), dtype (f32|f16|bf16), math (strict|tf32), peepholes (0|1), input_forget (0|1),
// gate_clip, cell_clip, gate_act / cell_act / hidden_act (name[:alpha[:beta]]), batch, steps,
// lengths (full|mixed), states (0|1), seed.
Status apply_config(const std::string& text, RunConfig* config);

// Strict number parsing: the whole string must be a number in range.
bool parse_int(const std::string& text, std::int64_t* out);
bool parse_float(const std::string& text, float* out);
Status parse_dtype(const std::string& text, DType* out);
Status parse_backend(const std::string& text, Backend* out);
Status parse_cuda_engine(const std::string& text, CudaEngine* out);  // --engine auto|stepwise|persistent
Status parse_cudnn_algo(const std::string& text, CudnnAlgo* out);    // --cudnn-algo auto|standard|persist_...

std::string config_help();

}  // namespace cli
}  // namespace culstm
