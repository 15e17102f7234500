// The C API (include/culstm/culstm.h) over the C++ API. Every entry point catches everything (no exception crosses
// into C) and records the outcome in the calling thread's last-error buffer, a fixed thread_local array, so that
// recording never allocates or throws, and culstm_forward stays allocation-free.
#include "culstm/culstm.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "culstm/culstm.hpp"
#include "culstm/model_file.h"

using culstm::Status;
using culstm::StatusCode;

// The handles behind the opaque C types.
struct culstm_spec {
  culstm::LstmSpec spec;
};
struct culstm_weights {
  culstm::LstmSpec spec;  // what the weights are sized for
  culstm::Weights weights;
};
struct culstm_model {
  std::shared_ptr<const culstm::Model> model;
  culstm_spec spec;
  std::string explain;
};
struct culstm_context {
  std::unique_ptr<culstm::Context> context;
};

namespace {

// The C enums mirror the C++ ones value for value.
#define CULSTM_SAME_VALUE(c_value, cpp_value) \
  static_assert(static_cast<int>(c_value) == static_cast<int>(cpp_value), #c_value " differs from " #cpp_value)
CULSTM_SAME_VALUE(CULSTM_STATUS_OK, StatusCode::kOk);
CULSTM_SAME_VALUE(CULSTM_STATUS_INVALID_SPEC, StatusCode::kInvalidSpec);
CULSTM_SAME_VALUE(CULSTM_STATUS_NULL_POINTER, StatusCode::kNullPointer);
CULSTM_SAME_VALUE(CULSTM_STATUS_SHAPE_MISMATCH, StatusCode::kShapeMismatch);
CULSTM_SAME_VALUE(CULSTM_STATUS_DTYPE_MISMATCH, StatusCode::kDtypeMismatch);
CULSTM_SAME_VALUE(CULSTM_STATUS_DEVICE_MISMATCH, StatusCode::kDeviceMismatch);
CULSTM_SAME_VALUE(CULSTM_STATUS_LENGTH_OUT_OF_RANGE, StatusCode::kLengthOutOfRange);
CULSTM_SAME_VALUE(CULSTM_STATUS_EXCEEDS_MODEL_LIMIT, StatusCode::kExceedsModelLimit);
CULSTM_SAME_VALUE(CULSTM_STATUS_WORKSPACE_TOO_SMALL, StatusCode::kWorkspaceTooSmall);
CULSTM_SAME_VALUE(CULSTM_STATUS_UNSUPPORTED_COMBINATION, StatusCode::kUnsupportedCombination);
CULSTM_SAME_VALUE(CULSTM_STATUS_NOT_SUPPORTED, StatusCode::kNotSupported);
CULSTM_SAME_VALUE(CULSTM_STATUS_NOT_IMPLEMENTED, StatusCode::kNotImplemented);
CULSTM_SAME_VALUE(CULSTM_STATUS_BACKEND_UNAVAILABLE, StatusCode::kBackendUnavailable);
CULSTM_SAME_VALUE(CULSTM_STATUS_INVALID_ARGUMENT, StatusCode::kInvalidArgument);
CULSTM_SAME_VALUE(CULSTM_STATUS_IO_ERROR, StatusCode::kIoError);
CULSTM_SAME_VALUE(CULSTM_STATUS_FORMAT_ERROR, StatusCode::kFormatError);
CULSTM_SAME_VALUE(CULSTM_STATUS_CUDA_ERROR, StatusCode::kCudaError);
CULSTM_SAME_VALUE(CULSTM_STATUS_CUBLAS_ERROR, StatusCode::kCublasError);
CULSTM_SAME_VALUE(CULSTM_STATUS_CUDNN_ERROR, StatusCode::kCudnnError);
CULSTM_SAME_VALUE(CULSTM_STATUS_INTERNAL, StatusCode::kInternal);
CULSTM_SAME_VALUE(CULSTM_BACKEND_AUTO, culstm::Backend::kAuto);
CULSTM_SAME_VALUE(CULSTM_BACKEND_REFERENCE, culstm::Backend::kReference);
CULSTM_SAME_VALUE(CULSTM_BACKEND_CUDA, culstm::Backend::kCuda);
CULSTM_SAME_VALUE(CULSTM_BACKEND_CUDNN, culstm::Backend::kCudnn);
CULSTM_SAME_VALUE(CULSTM_DTYPE_F32, culstm::DType::kF32);
CULSTM_SAME_VALUE(CULSTM_DTYPE_F16, culstm::DType::kF16);
CULSTM_SAME_VALUE(CULSTM_DTYPE_BF16, culstm::DType::kBF16);
CULSTM_SAME_VALUE(CULSTM_DTYPE_F64, culstm::DType::kF64);
CULSTM_SAME_VALUE(CULSTM_DTYPE_I32, culstm::DType::kI32);
CULSTM_SAME_VALUE(CULSTM_DTYPE_I64, culstm::DType::kI64);
CULSTM_SAME_VALUE(CULSTM_MEMORY_HOST, culstm::MemoryKind::kHost);
CULSTM_SAME_VALUE(CULSTM_MEMORY_DEVICE, culstm::MemoryKind::kDevice);
CULSTM_SAME_VALUE(CULSTM_DIRECTION_FORWARD, culstm::Direction::kForward);
CULSTM_SAME_VALUE(CULSTM_DIRECTION_REVERSE, culstm::Direction::kReverse);
CULSTM_SAME_VALUE(CULSTM_DIRECTION_BIDIRECTIONAL, culstm::Direction::kBidirectional);
CULSTM_SAME_VALUE(CULSTM_LAYOUT_SEQ_MAJOR, culstm::BatchLayout::kSeqMajor);
CULSTM_SAME_VALUE(CULSTM_LAYOUT_BATCH_MAJOR, culstm::BatchLayout::kBatchMajor);
CULSTM_SAME_VALUE(CULSTM_MATH_STRICT_F32, culstm::MathMode::kStrictF32);
CULSTM_SAME_VALUE(CULSTM_MATH_ALLOW_TF32, culstm::MathMode::kAllowTF32);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_SIGMOID, culstm::ActivationKind::kSigmoid);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_TANH, culstm::ActivationKind::kTanh);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_RELU, culstm::ActivationKind::kRelu);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_AFFINE, culstm::ActivationKind::kAffine);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_LEAKY_RELU, culstm::ActivationKind::kLeakyRelu);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_THRESHOLDED_RELU, culstm::ActivationKind::kThresholdedRelu);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_SCALED_TANH, culstm::ActivationKind::kScaledTanh);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_HARD_SIGMOID, culstm::ActivationKind::kHardSigmoid);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_ELU, culstm::ActivationKind::kElu);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_SOFTSIGN, culstm::ActivationKind::kSoftsign);
CULSTM_SAME_VALUE(CULSTM_ACTIVATION_SOFTPLUS, culstm::ActivationKind::kSoftplus);
CULSTM_SAME_VALUE(CULSTM_CUDNN_ALGO_AUTO, culstm::CudnnAlgo::kAuto);
CULSTM_SAME_VALUE(CULSTM_CUDNN_ALGO_STANDARD, culstm::CudnnAlgo::kStandard);
CULSTM_SAME_VALUE(CULSTM_CUDNN_ALGO_PERSIST_STATIC, culstm::CudnnAlgo::kPersistStatic);
CULSTM_SAME_VALUE(CULSTM_CUDNN_ALGO_PERSIST_STATIC_SMALL_H, culstm::CudnnAlgo::kPersistStaticSmallH);
CULSTM_SAME_VALUE(CULSTM_CUDNN_ALGO_PERSIST_DYNAMIC, culstm::CudnnAlgo::kPersistDynamic);
CULSTM_SAME_VALUE(CULSTM_CUDA_ENGINE_AUTO, culstm::CudaEngine::kAuto);
CULSTM_SAME_VALUE(CULSTM_CUDA_ENGINE_STEPWISE, culstm::CudaEngine::kStepwise);
CULSTM_SAME_VALUE(CULSTM_CUDA_ENGINE_PERSISTENT, culstm::CudaEngine::kPersistent);
#undef CULSTM_SAME_VALUE

// culstm_model_options_t's layout is ABI (culstm.h): fields are only appended, the size stays 64 bytes while
// `reserved` has room, and every enum field is 4 bytes.
static_assert(sizeof(culstm_backend_t) == 4 && sizeof(culstm_cudnn_algo_t) == 4 && sizeof(culstm_cuda_engine_t) == 4,
              "C enums in culstm_model_options_t must be 4 bytes");
static_assert(offsetof(culstm_model_options_t, backend) == 0 && offsetof(culstm_model_options_t, device) == 4 &&
                  offsetof(culstm_model_options_t, max_batch) == 8 &&
                  offsetof(culstm_model_options_t, max_seq_len) == 16 &&
                  offsetof(culstm_model_options_t, cudnn_algo) == 24 &&
                  offsetof(culstm_model_options_t, cuda_engine) == 28 &&
                  offsetof(culstm_model_options_t, reserved) == 32,
              "culstm_model_options_t: fields may only be appended (take a reserved slot)");
static_assert(sizeof(culstm_model_options_t) == 64, "culstm_model_options_t must stay 64 bytes");

// The calling thread's last message. Fixed size: recording never allocates; longer messages are truncated.
constexpr std::size_t kLastErrorCapacity = 2048;
thread_local char t_last_error[kLastErrorCapacity] = {0};

void set_last_error(const char* code_name, const char* message) noexcept {
  std::snprintf(t_last_error, kLastErrorCapacity, "%s: %s", code_name, message);
}

culstm_status_t record(const Status& status) noexcept {
  if (status.ok()) {
    t_last_error[0] = '\0';
  } else {
    set_last_error(culstm::status_code_name(status.code()), status.message().c_str());
  }
  return static_cast<culstm_status_t>(status.code());
}

// Runs `body` (returning Status), records its outcome and turns any exception into CULSTM_STATUS_INTERNAL.
template <typename Body>
culstm_status_t guarded(const char* function, Body&& body) noexcept {
  try {
    return record(body());
  } catch (const std::bad_alloc&) {
    char message[160];
    std::snprintf(message, sizeof message, "%s: out of host memory", function);
    set_last_error("Internal", message);
  } catch (const std::exception& e) {
    char message[512];
    std::snprintf(message, sizeof message, "%s: unexpected exception: %s", function, e.what());
    set_last_error("Internal", message);
  } catch (...) {
    char message[160];
    std::snprintf(message, sizeof message, "%s: unexpected exception", function);
    set_last_error("Internal", message);
  }
  return CULSTM_STATUS_INTERNAL;
}

Status null_pointer(const char* name) {
  return Status(StatusCode::kNullPointer, std::string(name) + ": is NULL");
}

Status out_of_enum(const char* name, int value, int max) {
  return Status(StatusCode::kInvalidArgument, std::string(name) + ": expected a value in [0, " + std::to_string(max) +
                                                  "], got " + std::to_string(value));
}

// Applies `set` to the spec after checking the handle.
template <typename Set>
culstm_status_t set_spec(const char* function, culstm_spec_t* spec, Set&& set) noexcept {
  return guarded(function, [&]() -> Status {
    if (spec == nullptr) return null_pointer("spec");
    return set(spec->spec);
  });
}

Status to_activation(const char* name, culstm_activation_t kind, float alpha, float beta, culstm::Activation* out) {
  const int k = static_cast<int>(kind);
  if (k < 0 || k > static_cast<int>(CULSTM_ACTIVATION_SOFTPLUS)) {
    return out_of_enum(name, k, static_cast<int>(CULSTM_ACTIVATION_SOFTPLUS));
  }
  *out = culstm::Activation{static_cast<culstm::ActivationKind>(k), alpha, beta};
  return Status::Ok();
}

// The C tensor as a TensorView (field by field; no allocation).
Status to_view(const char* name, const culstm_tensor_t& t, culstm::TensorView* out) {
  if (t.rank < 0 || t.rank > culstm::TensorView::kMaxRank) {
    return Status(StatusCode::kShapeMismatch, std::string(name) + ": rank must be in [0, 4], got " +
                                                  std::to_string(t.rank));
  }
  const int dtype = static_cast<int>(t.dtype), memory = static_cast<int>(t.memory);
  if (dtype < 0 || dtype > static_cast<int>(CULSTM_DTYPE_I64)) {
    return out_of_enum((std::string(name) + ".dtype").c_str(), dtype, static_cast<int>(CULSTM_DTYPE_I64));
  }
  if (memory < 0 || memory > static_cast<int>(CULSTM_MEMORY_DEVICE)) {
    return out_of_enum((std::string(name) + ".memory").c_str(), memory, static_cast<int>(CULSTM_MEMORY_DEVICE));
  }
  culstm::TensorView v;
  v.data = t.data;
  v.dtype = static_cast<culstm::DType>(dtype);
  v.memory = static_cast<culstm::MemoryKind>(memory);
  v.rank = t.rank;
  for (int axis = 0; axis < culstm::TensorView::kMaxRank; ++axis) v.shape[axis] = axis < t.rank ? t.shape[axis] : 0;
  *out = v;
  return Status::Ok();
}

// The tensor `which` of (layer, direction), or an error naming what is out of range.
Status weight_tensor(const culstm_weights_t* weights, int32_t layer, int32_t direction, culstm_weight_t which,
                     const std::vector<float>** out) {
  if (weights == nullptr) return null_pointer("weights");
  const culstm::Weights& w = weights->weights;
  if (layer < 0 || layer >= w.num_layers()) {
    return Status(StatusCode::kInvalidArgument, "layer: expected a value in [0, " +
                                                    std::to_string(w.num_layers() - 1) + "], got " +
                                                    std::to_string(layer));
  }
  if (direction < 0 || direction >= w.num_directions()) {
    return Status(StatusCode::kInvalidArgument, "direction: expected a value in [0, " +
                                                    std::to_string(w.num_directions() - 1) + "], got " +
                                                    std::to_string(direction));
  }
  const culstm::LayerWeights& lw = w.at(layer, direction);
  switch (which) {
    case CULSTM_WEIGHT_W_IH: *out = &lw.w_ih; return Status::Ok();
    case CULSTM_WEIGHT_W_HH: *out = &lw.w_hh; return Status::Ok();
    case CULSTM_WEIGHT_B_IH: *out = &lw.b_ih; return Status::Ok();
    case CULSTM_WEIGHT_B_HH: *out = &lw.b_hh; return Status::Ok();
    case CULSTM_WEIGHT_W_HR: *out = &lw.w_hr; return Status::Ok();
    case CULSTM_WEIGHT_PEEPHOLE: *out = &lw.peephole; return Status::Ok();
  }
  return out_of_enum("which", static_cast<int>(which), static_cast<int>(CULSTM_WEIGHT_PEEPHOLE));
}

// The C options as ModelOptions. The enums of the cuDNN algorithm and the CUDA engine, and the reserved slots, are
// checked here; backend and the numbers by Model::create (the same messages as the C++ API).
Status to_model_options(const culstm_model_options_t& c, culstm::ModelOptions* out) {
  const int algo = static_cast<int>(c.cudnn_algo);
  if (algo < 0 || algo > static_cast<int>(CULSTM_CUDNN_ALGO_PERSIST_DYNAMIC)) {
    return Status(StatusCode::kInvalidArgument,
                  "options.cudnn_algo: expected CULSTM_CUDNN_ALGO_AUTO (0), _STANDARD (1), _PERSIST_STATIC (2), "
                  "_PERSIST_STATIC_SMALL_H (3) or _PERSIST_DYNAMIC (4), got " +
                      std::to_string(algo));
  }
  const int engine = static_cast<int>(c.cuda_engine);
  if (engine < 0 || engine > static_cast<int>(CULSTM_CUDA_ENGINE_PERSISTENT)) {
    return Status(StatusCode::kInvalidArgument,
                  "options.cuda_engine: expected CULSTM_CUDA_ENGINE_AUTO (0), _STEPWISE (1) or _PERSISTENT (2), "
                  "got " + std::to_string(engine));
  }
  for (std::size_t k = 0; k < sizeof c.reserved / sizeof c.reserved[0]; ++k) {
    if (c.reserved[k] != 0) {
      return Status(StatusCode::kInvalidArgument,
                    "options.reserved[" + std::to_string(k) + "]: expected 0 (an option this library (culstm " +
                        culstm::version() + ") does not know; start from culstm_model_options_default()), got " +
                        std::to_string(c.reserved[k]));
    }
  }
  out->backend = static_cast<culstm::Backend>(c.backend);  // range-checked by Model::create
  out->device = c.device;
  out->max_batch = c.max_batch;
  out->max_seq_len = c.max_seq_len;
  out->cudnn_algo = static_cast<culstm::CudnnAlgo>(algo);
  out->cuda_engine = static_cast<culstm::CudaEngine>(engine);
  return Status::Ok();
}

const char* weight_name(culstm_weight_t which) {
  static const char* const names[] = {"w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "peephole"};
  const int k = static_cast<int>(which);
  return k >= 0 && k < 6 ? names[k] : "?";
}

}  // namespace

extern "C" {

culstm_model_options_t culstm_model_options_default(void) {
  const culstm::ModelOptions defaults;
  culstm_model_options_t o;
  o.backend = static_cast<culstm_backend_t>(defaults.backend);
  o.device = defaults.device;
  o.max_batch = defaults.max_batch;
  o.max_seq_len = defaults.max_seq_len;
  o.cudnn_algo = static_cast<culstm_cudnn_algo_t>(defaults.cudnn_algo);
  o.cuda_engine = static_cast<culstm_cuda_engine_t>(defaults.cuda_engine);
  for (int32_t& r : o.reserved) r = 0;
  return o;
}

const char* culstm_version(void) {
  return culstm::version();
}

const char* culstm_status_name(culstm_status_t status) {
  const int s = static_cast<int>(status);
  if (s < 0 || s > static_cast<int>(CULSTM_STATUS_INTERNAL)) return "Unknown";
  return culstm::status_code_name(static_cast<StatusCode>(s));
}

const char* culstm_last_error(void) {
  return t_last_error;
}

int culstm_backend_available(culstm_backend_t backend) {
  int available = 0;
  guarded("culstm_backend_available", [&]() -> Status {
    const int b = static_cast<int>(backend);
    if (b < 0 || b > static_cast<int>(CULSTM_BACKEND_CUDNN)) {
      return out_of_enum("backend", b, static_cast<int>(CULSTM_BACKEND_CUDNN));
    }
    std::string why;
    available = culstm::backend_available(static_cast<culstm::Backend>(b), &why) ? 1 : 0;
    if (!available) return Status(StatusCode::kBackendUnavailable, why);
    return Status::Ok();
  });
  return available;
}

int culstm_cuda_device_count(void) {
  try {
    return culstm::cuda_device_count(nullptr);
  } catch (...) {
    return 0;
  }
}

// --- spec -------------------------------------------------------------------------------------------------------

culstm_status_t culstm_spec_create(culstm_spec_t** out) {
  return guarded("culstm_spec_create", [&]() -> Status {
    if (out == nullptr) return null_pointer("out");
    *out = new culstm_spec{};
    return Status::Ok();
  });
}

void culstm_spec_destroy(culstm_spec_t* spec) {
  delete spec;
}

culstm_status_t culstm_spec_set_input_size(culstm_spec_t* spec, int64_t input_size) {
  return set_spec("culstm_spec_set_input_size", spec, [&](culstm::LstmSpec& s) {
    s.input_size = input_size;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_hidden_size(culstm_spec_t* spec, int64_t hidden_size) {
  return set_spec("culstm_spec_set_hidden_size", spec, [&](culstm::LstmSpec& s) {
    s.hidden_size = hidden_size;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_proj_size(culstm_spec_t* spec, int64_t proj_size) {
  return set_spec("culstm_spec_set_proj_size", spec, [&](culstm::LstmSpec& s) {
    s.proj_size = proj_size;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_num_layers(culstm_spec_t* spec, int32_t num_layers) {
  return set_spec("culstm_spec_set_num_layers", spec, [&](culstm::LstmSpec& s) {
    s.num_layers = num_layers;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_direction(culstm_spec_t* spec, culstm_direction_t direction) {
  return set_spec("culstm_spec_set_direction", spec, [&](culstm::LstmSpec& s) {
    const int d = static_cast<int>(direction);
    if (d < 0 || d > 2) return out_of_enum("direction", d, 2);
    s.direction = static_cast<culstm::Direction>(d);
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_bias(culstm_spec_t* spec, int bias) {
  return set_spec("culstm_spec_set_bias", spec, [&](culstm::LstmSpec& s) {
    s.bias = bias != 0;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_layout(culstm_spec_t* spec, culstm_layout_t layout) {
  return set_spec("culstm_spec_set_layout", spec, [&](culstm::LstmSpec& s) {
    const int l = static_cast<int>(layout);
    if (l < 0 || l > 1) return out_of_enum("layout", l, 1);
    s.layout = static_cast<culstm::BatchLayout>(l);
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_gate_activation(culstm_spec_t* spec, culstm_activation_t kind, float alpha,
                                                float beta) {
  return set_spec("culstm_spec_set_gate_activation", spec, [&](culstm::LstmSpec& s) {
    return to_activation("kind", kind, alpha, beta, &s.gate_activation);
  });
}

culstm_status_t culstm_spec_set_cell_activation(culstm_spec_t* spec, culstm_activation_t kind, float alpha,
                                                float beta) {
  return set_spec("culstm_spec_set_cell_activation", spec, [&](culstm::LstmSpec& s) {
    return to_activation("kind", kind, alpha, beta, &s.cell_activation);
  });
}

culstm_status_t culstm_spec_set_hidden_activation(culstm_spec_t* spec, culstm_activation_t kind, float alpha,
                                                  float beta) {
  return set_spec("culstm_spec_set_hidden_activation", spec, [&](culstm::LstmSpec& s) {
    return to_activation("kind", kind, alpha, beta, &s.hidden_activation);
  });
}

culstm_status_t culstm_spec_set_gate_clip(culstm_spec_t* spec, float clip) {
  return set_spec("culstm_spec_set_gate_clip", spec, [&](culstm::LstmSpec& s) {
    if (clip == 0.0f) {
      s.gate_clip.reset();
    } else {
      s.gate_clip = clip;
    }
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_cell_clip(culstm_spec_t* spec, float clip) {
  return set_spec("culstm_spec_set_cell_clip", spec, [&](culstm::LstmSpec& s) {
    if (clip == 0.0f) {
      s.cell_clip.reset();
    } else {
      s.cell_clip = clip;
    }
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_peepholes(culstm_spec_t* spec, int peepholes) {
  return set_spec("culstm_spec_set_peepholes", spec, [&](culstm::LstmSpec& s) {
    s.peepholes = peepholes != 0;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_input_forget(culstm_spec_t* spec, int input_forget) {
  return set_spec("culstm_spec_set_input_forget", spec, [&](culstm::LstmSpec& s) {
    s.input_forget = input_forget != 0;
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_dtype(culstm_spec_t* spec, culstm_dtype_t dtype) {
  return set_spec("culstm_spec_set_dtype", spec, [&](culstm::LstmSpec& s) {
    const int d = static_cast<int>(dtype);
    if (d < 0 || d > static_cast<int>(CULSTM_DTYPE_I64)) return out_of_enum("dtype", d, CULSTM_DTYPE_I64);
    s.dtype = static_cast<culstm::DType>(d);
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_set_math_mode(culstm_spec_t* spec, culstm_math_mode_t math) {
  return set_spec("culstm_spec_set_math_mode", spec, [&](culstm::LstmSpec& s) {
    const int m = static_cast<int>(math);
    if (m < 0 || m > 1) return out_of_enum("math", m, 1);
    s.math = static_cast<culstm::MathMode>(m);
    return Status::Ok();
  });
}

culstm_status_t culstm_spec_validate(const culstm_spec_t* spec) {
  return guarded("culstm_spec_validate", [&]() -> Status {
    if (spec == nullptr) return null_pointer("spec");
    return spec->spec.validate();
  });
}

int64_t culstm_spec_input_size(const culstm_spec_t* spec) {
  return spec ? spec->spec.input_size : 0;
}
int64_t culstm_spec_hidden_size(const culstm_spec_t* spec) {
  return spec ? spec->spec.hidden_size : 0;
}
int64_t culstm_spec_proj_size(const culstm_spec_t* spec) {
  return spec ? spec->spec.proj_size : 0;
}
int32_t culstm_spec_num_layers(const culstm_spec_t* spec) {
  return spec ? spec->spec.num_layers : 0;
}
int32_t culstm_spec_num_directions(const culstm_spec_t* spec) {
  return spec ? spec->spec.num_directions() : 0;
}
int64_t culstm_spec_recurrent_size(const culstm_spec_t* spec) {
  return spec ? spec->spec.recurrent_size() : 0;
}
int64_t culstm_spec_output_size(const culstm_spec_t* spec) {
  return spec ? spec->spec.output_size() : 0;
}
culstm_direction_t culstm_spec_direction(const culstm_spec_t* spec) {
  return spec ? static_cast<culstm_direction_t>(spec->spec.direction) : CULSTM_DIRECTION_FORWARD;
}
culstm_layout_t culstm_spec_layout(const culstm_spec_t* spec) {
  return spec ? static_cast<culstm_layout_t>(spec->spec.layout) : CULSTM_LAYOUT_SEQ_MAJOR;
}
culstm_dtype_t culstm_spec_dtype(const culstm_spec_t* spec) {
  return spec ? static_cast<culstm_dtype_t>(spec->spec.dtype) : CULSTM_DTYPE_F32;
}

size_t culstm_spec_describe(const culstm_spec_t* spec, char* buffer, size_t capacity) {
  try {
    const std::string text = spec ? spec->spec.describe() : std::string("(null spec)");
    if (buffer != nullptr && capacity > 0) {
      const std::size_t n = text.size() < capacity - 1 ? text.size() : capacity - 1;
      std::memcpy(buffer, text.data(), n);
      buffer[n] = '\0';
    }
    return text.size();
  } catch (...) {
    if (buffer != nullptr && capacity > 0) buffer[0] = '\0';
    return 0;
  }
}

// --- weights ----------------------------------------------------------------------------------------------------

culstm_status_t culstm_weights_create(const culstm_spec_t* spec, culstm_weights_t** out) {
  return guarded("culstm_weights_create", [&]() -> Status {
    if (spec == nullptr) return null_pointer("spec");
    if (out == nullptr) return null_pointer("out");
    Status valid = spec->spec.validate();
    if (!valid.ok()) return valid;
    std::unique_ptr<culstm_weights> w(new culstm_weights{spec->spec, culstm::Weights::zeros_for(spec->spec)});
    *out = w.release();
    return Status::Ok();
  });
}

void culstm_weights_destroy(culstm_weights_t* weights) {
  delete weights;
}

culstm_status_t culstm_weights_count(const culstm_weights_t* weights, int32_t layer, int32_t direction,
                                     culstm_weight_t which, size_t* count) {
  return guarded("culstm_weights_count", [&]() -> Status {
    if (count == nullptr) return null_pointer("count");
    const std::vector<float>* tensor = nullptr;
    Status st = weight_tensor(weights, layer, direction, which, &tensor);
    if (!st.ok()) return st;
    *count = tensor->size();
    return Status::Ok();
  });
}

culstm_status_t culstm_weights_set(culstm_weights_t* weights, int32_t layer, int32_t direction, culstm_weight_t which,
                                   const float* values, size_t count) {
  return guarded("culstm_weights_set", [&]() -> Status {
    const std::vector<float>* tensor = nullptr;
    Status st = weight_tensor(weights, layer, direction, which, &tensor);
    if (!st.ok()) return st;
    if (count != tensor->size()) {
      return Status(StatusCode::kShapeMismatch,
                    "count: layer " + std::to_string(layer) + " direction " + std::to_string(direction) + " " +
                        weight_name(which) + " holds " + std::to_string(tensor->size()) + " values for this spec" +
                        (tensor->empty() ? " (the spec has no such tensor)" : "") + ", got " + std::to_string(count));
    }
    if (count > 0 && values == nullptr) return null_pointer("values");
    std::copy(values, values + count, const_cast<std::vector<float>*>(tensor)->begin());
    return Status::Ok();
  });
}

culstm_status_t culstm_weights_get(const culstm_weights_t* weights, int32_t layer, int32_t direction,
                                   culstm_weight_t which, float* values, size_t count) {
  return guarded("culstm_weights_get", [&]() -> Status {
    const std::vector<float>* tensor = nullptr;
    Status st = weight_tensor(weights, layer, direction, which, &tensor);
    if (!st.ok()) return st;
    if (count != tensor->size()) {
      return Status(StatusCode::kShapeMismatch, "count: layer " + std::to_string(layer) + " direction " +
                                                    std::to_string(direction) + " " + weight_name(which) + " holds " +
                                                    std::to_string(tensor->size()) + " values, got " +
                                                    std::to_string(count));
    }
    if (count > 0 && values == nullptr) return null_pointer("values");
    std::copy(tensor->begin(), tensor->end(), values);
    return Status::Ok();
  });
}

culstm_status_t culstm_load_model_file(const char* path, const char* prefix, culstm_spec_t** spec,
                                       culstm_weights_t** weights) {
  return guarded("culstm_load_model_file", [&]() -> Status {
    if (path == nullptr) return null_pointer("path");
    if (spec == nullptr) return null_pointer("spec");
    if (weights == nullptr) return null_pointer("weights");
    std::unique_ptr<culstm_spec> s(new culstm_spec{});
    std::unique_ptr<culstm_weights> w(new culstm_weights{});
    Status st = culstm::load_model_file(path, prefix ? prefix : "", &s->spec, &w->weights);
    if (!st.ok()) return st;
    w->spec = s->spec;
    *spec = s.release();
    *weights = w.release();
    return Status::Ok();
  });
}

culstm_status_t culstm_save_model_file(const char* path, const culstm_spec_t* spec, const culstm_weights_t* weights) {
  return guarded("culstm_save_model_file", [&]() -> Status {
    if (path == nullptr) return null_pointer("path");
    if (spec == nullptr) return null_pointer("spec");
    if (weights == nullptr) return null_pointer("weights");
    return culstm::save_model_file(path, spec->spec, weights->weights);
  });
}

// --- model and context ------------------------------------------------------------------------------------------

culstm_status_t culstm_model_create(const culstm_spec_t* spec, const culstm_weights_t* weights,
                                    const culstm_model_options_t* options, culstm_model_t** out) {
  return guarded("culstm_model_create", [&]() -> Status {
    if (spec == nullptr) return null_pointer("spec");
    if (weights == nullptr) return null_pointer("weights");
    if (out == nullptr) return null_pointer("out");
    culstm::ModelOptions o;
    if (options != nullptr) {
      Status st = to_model_options(*options, &o);
      if (!st.ok()) return st;
    }
    std::unique_ptr<culstm_model> m(new culstm_model{});
    Status st = culstm::Model::create(spec->spec, weights->weights, o, &m->model);
    if (!st.ok()) return st;
    m->spec.spec = spec->spec;
    m->explain = m->model->plan().explain();
    *out = m.release();
    return Status::Ok();
  });
}

void culstm_model_destroy(culstm_model_t* model) {
  delete model;
}

culstm_backend_t culstm_model_backend(const culstm_model_t* model) {
  return model ? static_cast<culstm_backend_t>(model->model->backend()) : CULSTM_BACKEND_AUTO;
}

culstm_memory_t culstm_model_memory(const culstm_model_t* model) {
  if (model == nullptr) return CULSTM_MEMORY_HOST;
  return model->model->backend() == culstm::Backend::kReference ? CULSTM_MEMORY_HOST : CULSTM_MEMORY_DEVICE;
}

const culstm_spec_t* culstm_model_spec(const culstm_model_t* model) {
  return model ? &model->spec : nullptr;
}

const char* culstm_model_explain(const culstm_model_t* model) {
  return model ? model->explain.c_str() : "";
}

culstm_status_t culstm_model_workspace_size(const culstm_model_t* model, int64_t batch, int64_t seq_len,
                                            size_t* bytes) {
  return guarded("culstm_model_workspace_size", [&]() -> Status {
    if (model == nullptr) return null_pointer("model");
    if (bytes == nullptr) return null_pointer("bytes");
    std::size_t b = 0;
    Status st = model->model->workspace_size(batch, seq_len, &b);
    if (!st.ok()) return st;
    *bytes = b;
    return Status::Ok();
  });
}

culstm_status_t culstm_context_create(const culstm_model_t* model, culstm_context_t** out) {
  return guarded("culstm_context_create", [&]() -> Status {
    if (model == nullptr) return null_pointer("model");
    if (out == nullptr) return null_pointer("out");
    std::unique_ptr<culstm_context> c(new culstm_context{});
    Status st = culstm::Context::create(*model->model, &c->context);
    if (!st.ok()) return st;
    *out = c.release();
    return Status::Ok();
  });
}

void culstm_context_destroy(culstm_context_t* context) {
  delete context;
}

culstm_status_t culstm_forward(culstm_context_t* context, const culstm_model_t* model,
                               const culstm_forward_args_t* args, culstm_stream_t stream) {
  return guarded("culstm_forward", [&]() -> Status {
    if (context == nullptr) return null_pointer("context");
    if (model == nullptr) return null_pointer("model");
    if (args == nullptr) return null_pointer("args");
    culstm::ForwardArgs a;
    const std::pair<const char*, std::pair<const culstm_tensor_t*, culstm::TensorView*>> tensors[] = {
        {"x", {&args->x, &a.x}},   {"lengths", {&args->lengths, &a.lengths}}, {"h0", {&args->h0, &a.h0}},
        {"c0", {&args->c0, &a.c0}}, {"y", {&args->y, &a.y}},                   {"h_n", {&args->h_n, &a.h_n}},
        {"c_n", {&args->c_n, &a.c_n}}};
    for (const auto& t : tensors) {
      Status st = to_view(t.first, *t.second.first, t.second.second);
      if (!st.ok()) return st;
    }
    a.workspace = args->workspace;
    a.workspace_bytes = args->workspace_bytes;
    a.padding_value = args->padding_value;
    return culstm::forward(*context->context, *model->model, a, stream);
  });
}

}  // extern "C"
