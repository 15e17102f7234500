#include "cli_config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "detail.h"

namespace culstm {
namespace cli {
namespace {

using detail::error;

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : text) {
    if (c == sep) {
      parts.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  parts.push_back(current);
  return parts;
}

Status parse_bool(const std::string& key, const std::string& value, bool* out) {
  if (value == "1" || value == "true" || value == "on") {
    *out = true;
  } else if (value == "0" || value == "false" || value == "off") {
    *out = false;
  } else {
    return error(StatusCode::kInvalidArgument, "--config ", key, ": expected 0 or 1, got '", value, "'");
  }
  return Status::Ok();
}

Status parse_activation(const std::string& key, const std::string& value, Activation* out) {
  const std::vector<std::string> parts = split(value, ':');
  ActivationKind kind;
  if (parts.size() > 3 || !activation_kind_from_name(parts[0].c_str(), &kind)) {
    return error(StatusCode::kInvalidArgument, "--config ", key,
                 ": expected an activation name[:alpha[:beta]] (sigmoid, tanh, relu, affine, leaky_relu, "
                 "thresholded_relu, scaled_tanh, hard_sigmoid, elu, softsign, softplus), got '",
                 value, "'");
  }
  // Start from the kind's documented defaults, then apply the given parameters.
  switch (kind) {
    case ActivationKind::kAffine: *out = Activation::affine(1.0f, 0.0f); break;
    case ActivationKind::kLeakyRelu: *out = Activation::leaky_relu(); break;
    case ActivationKind::kThresholdedRelu: *out = Activation::thresholded_relu(); break;
    case ActivationKind::kScaledTanh: *out = Activation::scaled_tanh(); break;
    case ActivationKind::kHardSigmoid: *out = Activation::hard_sigmoid(); break;
    case ActivationKind::kElu: *out = Activation::elu(); break;
    default: *out = Activation{kind, 0.0f, 0.0f}; break;
  }
  if (parts.size() > 1 && !parse_float(parts[1], &out->alpha)) {
    return error(StatusCode::kInvalidArgument, "--config ", key, ": alpha '", parts[1], "' is not a number");
  }
  if (parts.size() > 2 && !parse_float(parts[2], &out->beta)) {
    return error(StatusCode::kInvalidArgument, "--config ", key, ": beta '", parts[2], "' is not a number");
  }
  return Status::Ok();
}

}  // namespace

bool parse_int(const std::string& text, std::int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return false;
  *out = v;
  return true;
}

bool parse_float(const std::string& text, float* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const float v = std::strtof(text.c_str(), &end);
  if (errno != 0 || end == nullptr || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

Status parse_dtype(const std::string& text, DType* out) {
  if (text == "f32") {
    *out = DType::kF32;
  } else if (text == "f16") {
    *out = DType::kF16;
  } else if (text == "bf16") {
    *out = DType::kBF16;
  } else {
    return error(StatusCode::kInvalidArgument, "dtype: expected f32, f16 or bf16, got '", text, "'");
  }
  return Status::Ok();
}

Status parse_backend(const std::string& text, Backend* out) {
  for (Backend b : {Backend::kAuto, Backend::kReference, Backend::kCuda, Backend::kCudnn}) {
    if (text == backend_name(b)) {
      *out = b;
      return Status::Ok();
    }
  }
  return error(StatusCode::kInvalidArgument, "backend: expected auto, reference, cuda or cudnn, got '", text, "'");
}

Status parse_cuda_engine(const std::string& text, CudaEngine* out) {
  for (CudaEngine e : {CudaEngine::kAuto, CudaEngine::kStepwise, CudaEngine::kPersistent}) {
    if (text == cuda_engine_name(e)) {
      *out = e;
      return Status::Ok();
    }
  }
  return error(StatusCode::kInvalidArgument, "--engine: expected auto, stepwise or persistent, got '", text, "'");
}

Status parse_cudnn_algo(const std::string& text, CudnnAlgo* out) {
  for (CudnnAlgo a : {CudnnAlgo::kAuto, CudnnAlgo::kStandard, CudnnAlgo::kPersistStatic,
                      CudnnAlgo::kPersistStaticSmallH, CudnnAlgo::kPersistDynamic}) {
    if (text == cudnn_algo_name(a)) {
      *out = a;
      return Status::Ok();
    }
  }
  return error(StatusCode::kInvalidArgument,
               "--cudnn-algo: expected auto, standard, persist_static, persist_static_small_h or persist_dynamic, "
               "got '",
               text, "'");
}

RunConfig default_config() {
  RunConfig c;
  c.spec.input_size = 64;
  c.spec.hidden_size = 128;
  c.spec.num_layers = 2;
  c.spec.direction = Direction::kBidirectional;
  return c;
}

Status apply_config(const std::string& text, RunConfig* config) {
  if (text.empty()) return Status::Ok();
  LstmSpec& s = config->spec;
  for (const std::string& item : split(text, ',')) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return error(StatusCode::kInvalidArgument, "--config: expected key=value, got '", item, "'");
    }
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    std::int64_t n = 0;
    float f = 0.0f;
    auto need_int = [&](std::int64_t* dst) -> Status {
      if (!parse_int(value, &n))
        return error(StatusCode::kInvalidArgument, "--config ", key, ": '", value, "' is not an integer");
      *dst = n;
      return Status::Ok();
    };
    if (key == "input") {
      CULSTM_RETURN_IF_ERROR(need_int(&s.input_size));
    } else if (key == "hidden") {
      CULSTM_RETURN_IF_ERROR(need_int(&s.hidden_size));
    } else if (key == "proj") {
      CULSTM_RETURN_IF_ERROR(need_int(&s.proj_size));
    } else if (key == "layers") {
      std::int64_t layers = 0;
      CULSTM_RETURN_IF_ERROR(need_int(&layers));
      if (layers < 0 || layers > 1 << 20)
        return error(StatusCode::kInvalidArgument, "--config layers: out of range: ", value);
      s.num_layers = static_cast<int>(layers);
    } else if (key == "dir") {
      if (value == "fwd" || value == "forward") {
        s.direction = Direction::kForward;
      } else if (value == "rev" || value == "reverse") {
        s.direction = Direction::kReverse;
      } else if (value == "bi" || value == "bidirectional") {
        s.direction = Direction::kBidirectional;
      } else {
        return error(StatusCode::kInvalidArgument, "--config dir: expected fwd, rev or bi, got '", value, "'");
      }
    } else if (key == "bias") {
      CULSTM_RETURN_IF_ERROR(parse_bool(key, value, &s.bias));
    } else if (key == "layout") {
      if (value == "seq") {
        s.layout = BatchLayout::kSeqMajor;
      } else if (value == "batch") {
        s.layout = BatchLayout::kBatchMajor;
      } else {
        return error(StatusCode::kInvalidArgument, "--config layout: expected seq or batch, got '", value, "'");
      }
    } else if (key == "dtype") {
      CULSTM_RETURN_IF_ERROR(parse_dtype(value, &s.dtype));
    } else if (key == "math") {
      if (value == "strict") {
        s.math = MathMode::kStrictF32;
      } else if (value == "tf32") {
        s.math = MathMode::kAllowTF32;
      } else {
        return error(StatusCode::kInvalidArgument, "--config math: expected strict or tf32, got '", value, "'");
      }
    } else if (key == "peepholes") {
      CULSTM_RETURN_IF_ERROR(parse_bool(key, value, &s.peepholes));
    } else if (key == "input_forget") {
      CULSTM_RETURN_IF_ERROR(parse_bool(key, value, &s.input_forget));
    } else if (key == "gate_clip" || key == "cell_clip") {
      if (!parse_float(value, &f))
        return error(StatusCode::kInvalidArgument, "--config ", key, ": '", value, "' is not a number");
      (key == "gate_clip" ? s.gate_clip : s.cell_clip) = f;
    } else if (key == "gate_act") {
      CULSTM_RETURN_IF_ERROR(parse_activation(key, value, &s.gate_activation));
    } else if (key == "cell_act") {
      CULSTM_RETURN_IF_ERROR(parse_activation(key, value, &s.cell_activation));
    } else if (key == "hidden_act") {
      CULSTM_RETURN_IF_ERROR(parse_activation(key, value, &s.hidden_activation));
    } else if (key == "batch") {
      CULSTM_RETURN_IF_ERROR(need_int(&config->batch));
    } else if (key == "steps") {
      CULSTM_RETURN_IF_ERROR(need_int(&config->steps));
    } else if (key == "lengths") {
      if (value != "full" && value != "mixed") {
        return error(StatusCode::kInvalidArgument, "--config lengths: expected full or mixed, got '", value, "'");
      }
      config->lengths = value;
    } else if (key == "states") {
      CULSTM_RETURN_IF_ERROR(parse_bool(key, value, &config->with_states));
    } else if (key == "seed") {
      std::int64_t seed = 0;
      CULSTM_RETURN_IF_ERROR(need_int(&seed));
      config->seed = static_cast<std::uint32_t>(seed);
    } else {
      return error(StatusCode::kInvalidArgument, "--config: unknown key '", key, "' (see `culstm help`)");
    }
  }
  if (config->batch < 1 || config->steps < 1) {
    return error(StatusCode::kInvalidArgument, "--config: batch and steps must be >= 1, got batch=", config->batch,
                 " steps=", config->steps);
  }
  return s.validate();
}

std::string config_help() {
  return "  --config KEY=VALUE[,KEY=VALUE...]  model and run to use (default: input=64,hidden=128,layers=2,dir=bi,\n"
         "      batch=8,steps=50,lengths=mixed). Keys: input hidden proj layers dir=fwd|rev|bi bias=0|1\n"
         "      layout=seq|batch dtype=f32|f16|bf16 math=strict|tf32 peepholes=0|1 input_forget=0|1 gate_clip=X\n"
         "      cell_clip=X gate_act|cell_act|hidden_act=NAME[:ALPHA[:BETA]] batch steps lengths=full|mixed\n"
         "      states=0|1 seed=N\n";
}

}  // namespace cli
}  // namespace culstm
