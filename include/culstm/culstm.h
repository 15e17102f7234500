/* culstm/culstm.h: the C API (C99 and later, and C++). A thin layer over the C++ API (culstm/culstm.hpp) with the
 * same flow and the same meaning of every argument:
 *
 *   culstm_spec_t  --+
 *                    +--culstm_model_create--> culstm_model_t (immutable; share it between threads)
 *   culstm_weights_t-+                          culstm_context_create per thread / stream
 *                                               culstm_model_workspace_size(batch, steps) ; culstm_forward(...)
 *
 * Conventions:
 *   - Every function that can fail returns a culstm_status_t; its values equal culstm::StatusCode's.
 *   - culstm_last_error() holds the message of the calling thread's last call that returned a status: "" after a
 *     success, "<CodeName>: <what was wrong>" after a failure. It is per thread and valid until that thread's next
 *     culstm call.
 *   - No C++ exception crosses this API; an unexpected one becomes CULSTM_STATUS_INTERNAL.
 *   - Outputs (the *out arguments) are written only on success. Destroy functions accept NULL.
 *   - Thread safety: a model, spec or weights handle may be read from many threads at once (forward, workspace
 *     queries, context creation); a context is used by one thread at a time. Destroying races with nothing.
 *   - culstm_forward does not allocate memory (host or device) and, on GPU backends, does not synchronize.
 */
#ifndef CULSTM_C_API_H_
#define CULSTM_C_API_H_

#include <stddef.h>
#include <stdint.h>

#include "culstm/export.h"
#include "culstm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A CUDA stream (cudaStream_t is `struct CUstream_st*`); NULL is the legacy default stream. Ignored by the
 * reference backend. */
struct CUstream_st;
typedef struct CUstream_st* culstm_stream_t;

/* ----------------------------------------------------------------------------------------------------------- */
/* Enumerations (values equal the C++ enums')                                                                   */

typedef enum culstm_status {
  CULSTM_STATUS_OK = 0,
  CULSTM_STATUS_INVALID_SPEC = 1,             /* a spec field is out of range or inconsistent */
  CULSTM_STATUS_NULL_POINTER = 2,             /* a required pointer is NULL */
  CULSTM_STATUS_SHAPE_MISMATCH = 3,           /* a tensor's rank or extents disagree with the spec */
  CULSTM_STATUS_DTYPE_MISMATCH = 4,           /* a tensor's element type is not the one expected */
  CULSTM_STATUS_DEVICE_MISMATCH = 5,          /* host memory where device memory is required, or the reverse */
  CULSTM_STATUS_LENGTH_OUT_OF_RANGE = 6,      /* a sequence length < 0 or > T */
  CULSTM_STATUS_EXCEEDS_MODEL_LIMIT = 7,      /* batch or steps above the model's maximum */
  CULSTM_STATUS_WORKSPACE_TOO_SMALL = 8,      /* workspace smaller than culstm_model_workspace_size() */
  CULSTM_STATUS_UNSUPPORTED_COMBINATION = 9,  /* options that cannot be used together */
  CULSTM_STATUS_NOT_SUPPORTED = 10,           /* the backend cannot express an option of the spec */
  CULSTM_STATUS_NOT_IMPLEMENTED = 11,         /* the backend does not implement this yet */
  CULSTM_STATUS_BACKEND_UNAVAILABLE = 12,     /* no GPU, or built without that backend */
  CULSTM_STATUS_INVALID_ARGUMENT = 13,        /* any other bad argument (the message says which) */
  CULSTM_STATUS_IO_ERROR = 14,                /* a file could not be opened, read or written */
  CULSTM_STATUS_FORMAT_ERROR = 15,            /* a file is corrupt or not in the expected format */
  CULSTM_STATUS_CUDA_ERROR = 16,
  CULSTM_STATUS_CUBLAS_ERROR = 17,
  CULSTM_STATUS_CUDNN_ERROR = 18,
  CULSTM_STATUS_INTERNAL = 19 /* a bug in culstm, or out of host memory */
} culstm_status_t;

typedef enum culstm_backend {
  CULSTM_BACKEND_AUTO = 0,      /* cuda when a GPU can serve the spec, else reference */
  CULSTM_BACKEND_REFERENCE = 1, /* CPU, float64 accumulation, host pointers */
  CULSTM_BACKEND_CUDA = 2,
  CULSTM_BACKEND_CUDNN = 3
} culstm_backend_t;

typedef enum culstm_dtype {
  CULSTM_DTYPE_F32 = 0,
  CULSTM_DTYPE_F16 = 1,
  CULSTM_DTYPE_BF16 = 2,
  CULSTM_DTYPE_F64 = 3,
  CULSTM_DTYPE_I32 = 4,
  CULSTM_DTYPE_I64 = 5
} culstm_dtype_t;

typedef enum culstm_memory { CULSTM_MEMORY_HOST = 0, CULSTM_MEMORY_DEVICE = 1 } culstm_memory_t;

typedef enum culstm_direction {
  CULSTM_DIRECTION_FORWARD = 0,
  CULSTM_DIRECTION_REVERSE = 1,
  CULSTM_DIRECTION_BIDIRECTIONAL = 2
} culstm_direction_t;

typedef enum culstm_layout {
  CULSTM_LAYOUT_SEQ_MAJOR = 0,  /* x [T, B, I], y [T, B, D*R] */
  CULSTM_LAYOUT_BATCH_MAJOR = 1 /* x [B, T, I], y [B, T, D*R] */
} culstm_layout_t;

typedef enum culstm_math_mode { CULSTM_MATH_STRICT_F32 = 0, CULSTM_MATH_ALLOW_TF32 = 1 } culstm_math_mode_t;

/* The cuDNN RNN algorithm of the cudnn backend (ignored by the others; docs/cudnn_backend.md). An explicit one that
 * cuDNN refuses for the spec or a call's shape gives CULSTM_STATUS_NOT_SUPPORTED naming it. */
typedef enum culstm_cudnn_algo {
  CULSTM_CUDNN_ALGO_AUTO = 0,                    /* the first forward of each new shape times the legal ones and
                                                    keeps the fastest (that one call synchronizes) */
  CULSTM_CUDNN_ALGO_STANDARD = 1,                /* CUDNN_RNN_ALGO_STANDARD */
  CULSTM_CUDNN_ALGO_PERSIST_STATIC = 2,          /* CUDNN_RNN_ALGO_PERSIST_STATIC */
  CULSTM_CUDNN_ALGO_PERSIST_STATIC_SMALL_H = 3,  /* CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H */
  CULSTM_CUDNN_ALGO_PERSIST_DYNAMIC = 4          /* CUDNN_RNN_ALGO_PERSIST_DYNAMIC */
} culstm_cudnn_algo_t;

/* Which engine runs each layer's recurrence in the cuda backend (ignored by the others; docs/persistent.md);
 * culstm_model_explain says, per layer, which one runs and why. */
typedef enum culstm_cuda_engine {
  CULSTM_CUDA_ENGINE_AUTO = 0,      /* persistent where a layer fits on chip and a tile was measured for this GPU's
                                       architecture; stepwise elsewhere */
  CULSTM_CUDA_ENGINE_STEPWISE = 1,  /* cuBLAS recurrent GEMM + one fused pointwise kernel per step; every spec */
  CULSTM_CUDA_ENGINE_PERSISTENT = 2 /* persistent wherever a layer fits on chip; stepwise for layers that do not */
} culstm_cuda_engine_t;

typedef enum culstm_activation {
  CULSTM_ACTIVATION_SIGMOID = 0,
  CULSTM_ACTIVATION_TANH = 1,
  CULSTM_ACTIVATION_RELU = 2,
  CULSTM_ACTIVATION_AFFINE = 3,           /* alpha * x + beta */
  CULSTM_ACTIVATION_LEAKY_RELU = 4,       /* x >= 0 ? x : alpha * x */
  CULSTM_ACTIVATION_THRESHOLDED_RELU = 5, /* x > alpha ? x : 0 */
  CULSTM_ACTIVATION_SCALED_TANH = 6,      /* alpha * tanh(beta * x) */
  CULSTM_ACTIVATION_HARD_SIGMOID = 7,     /* clamp(alpha * x + beta, 0, 1) */
  CULSTM_ACTIVATION_ELU = 8,              /* x >= 0 ? x : alpha * (e^x - 1) */
  CULSTM_ACTIVATION_SOFTSIGN = 9,
  CULSTM_ACTIVATION_SOFTPLUS = 10
} culstm_activation_t;

/* The tensors of one (layer, direction), PyTorch layout and gate order i, f, g, o (see culstm/weights.h). */
typedef enum culstm_weight {
  CULSTM_WEIGHT_W_IH = 0,    /* [4H, I_l], I_l = I for layer 0, D*R above */
  CULSTM_WEIGHT_W_HH = 1,    /* [4H, R] */
  CULSTM_WEIGHT_B_IH = 2,    /* [4H]   (only with bias) */
  CULSTM_WEIGHT_B_HH = 3,    /* [4H]   (only with bias) */
  CULSTM_WEIGHT_W_HR = 4,    /* [P, H] (only with a projection) */
  CULSTM_WEIGHT_PEEPHOLE = 5 /* [3H]   p_i, p_f, p_o (only with peepholes) */
} culstm_weight_t;

/* ----------------------------------------------------------------------------------------------------------- */
/* Plain structs                                                                                                */

/* A non-owning, dense, row-major view of a tensor (rank 0..4). All-zero = absent (for optional tensors). */
typedef struct culstm_tensor {
  void* data; /* inputs are only read */
  culstm_dtype_t dtype;
  culstm_memory_t memory;
  int32_t rank;
  int64_t shape[4];
} culstm_tensor_t;

/* Arguments of culstm_forward; zero-initialize (`culstm_forward_args_t args = {0};`: every tensor absent,
 * padding 0), then set what you use. Shapes (T steps, B batch, L layers, D directions, R = proj or hidden):
 *   x        [T, B, I] or [B, T, I] (the spec's layout), the spec's dtype     required
 *   lengths  [B] i32 on the host, each in [0, T]; absent = all T            optional
 *   h0       [L*D, B, R]; c0 [L*D, B, H]; absent = zeros                    optional
 *   y        [T, B, D*R] or [B, T, D*R]; steps t >= lengths[b] hold padding_value     optional
 *   h_n      [L*D, B, R]; c_n [L*D, B, H]: state after each sequence's own last step   optional
 *   workspace  at least culstm_model_workspace_size(model, B, T) bytes (host memory for the reference backend,
 *              device memory for GPU backends; culstm_model_memory says which)
 * Outputs must not overlap inputs. */
typedef struct culstm_forward_args {
  culstm_tensor_t x;
  culstm_tensor_t lengths;
  culstm_tensor_t h0, c0;
  culstm_tensor_t y, h_n, c_n;
  void* workspace;
  size_t workspace_bytes;
  float padding_value;
} culstm_forward_args_t;

/* Options of culstm_model_create. Start from culstm_model_options_default() and set what you use.
 * Layout rules (the library checks them at compile time): fields are only ever appended, never reordered, resized
 * or removed; every field after max_seq_len has its default at 0, so zeroed memory means "default"; `reserved` keeps
 * room for future options without changing the struct's size (64 bytes) and must stay all zero: a nonzero slot
 * (an option this library does not know) is CULSTM_STATUS_INVALID_ARGUMENT, never silently ignored.
 * (The struct grew from 24 to 64 bytes when cudnn_algo and cuda_engine were added, before 1.0: programs compiled
 * against older culstm.h must be recompiled.) */
typedef struct culstm_model_options {
  culstm_backend_t backend;         /* default AUTO */
  int32_t device;                   /* CUDA device ordinal, default 0 */
  int64_t max_batch;                /* default 64 */
  int64_t max_seq_len;              /* default 4096 */
  culstm_cudnn_algo_t cudnn_algo;   /* default AUTO; backend cudnn only */
  culstm_cuda_engine_t cuda_engine; /* default AUTO; backend cuda only */
  int32_t reserved[8];              /* must be 0 */
} culstm_model_options_t;

/* The defaults above. (A zero-initialized struct is not valid: max_batch 0.) */
CULSTM_API culstm_model_options_t culstm_model_options_default(void);

/* Views with the given rank; `data` may be const (inputs are never written). */
static inline culstm_tensor_t culstm_tensor_1d(const void* data, culstm_dtype_t dtype, culstm_memory_t memory,
                                               int64_t d0) {
  culstm_tensor_t t;
  t.data = (void*)data;
  t.dtype = dtype;
  t.memory = memory;
  t.rank = 1;
  t.shape[0] = d0;
  t.shape[1] = t.shape[2] = t.shape[3] = 0;
  return t;
}
static inline culstm_tensor_t culstm_tensor_3d(const void* data, culstm_dtype_t dtype, culstm_memory_t memory,
                                               int64_t d0, int64_t d1, int64_t d2) {
  culstm_tensor_t t;
  t.data = (void*)data;
  t.dtype = dtype;
  t.memory = memory;
  t.rank = 3;
  t.shape[0] = d0;
  t.shape[1] = d1;
  t.shape[2] = d2;
  t.shape[3] = 0;
  return t;
}

/* ----------------------------------------------------------------------------------------------------------- */
/* Opaque handles                                                                                               */

typedef struct culstm_spec culstm_spec_t;
typedef struct culstm_weights culstm_weights_t;
typedef struct culstm_model culstm_model_t;
typedef struct culstm_context culstm_context_t;

/* ----------------------------------------------------------------------------------------------------------- */
/* Library                                                                                                      */

/* "MAJOR.MINOR.PATCH" of the library that is linked (CULSTM_VERSION_STRING is the headers'). */
CULSTM_API const char* culstm_version(void);
/* "Ok", "ShapeMismatch", ... ("Unknown" for a value outside the enum). */
CULSTM_API const char* culstm_status_name(culstm_status_t status);
/* The calling thread's last message (see the conventions above); never NULL. */
CULSTM_API const char* culstm_last_error(void);
/* 1 when `backend` can run in this process; 0 otherwise, with the reason in culstm_last_error(). */
CULSTM_API int culstm_backend_available(culstm_backend_t backend);
/* Number of usable CUDA devices (0 without a driver or device). */
CULSTM_API int culstm_cuda_device_count(void);

/* ----------------------------------------------------------------------------------------------------------- */
/* Spec: what the network is. Created with the C++ defaults (1 forward layer, bias, seq-major, sigmoid/tanh/tanh,
 * no clips, f32, strict fp32 math) and sizes 0, which the setters fill. Setters refuse only values outside an
 * enum; culstm_spec_validate (and culstm_model_create) check everything else.                                  */

CULSTM_API culstm_status_t culstm_spec_create(culstm_spec_t** out);
CULSTM_API void culstm_spec_destroy(culstm_spec_t* spec);
CULSTM_API culstm_status_t culstm_spec_set_input_size(culstm_spec_t* spec, int64_t input_size);
CULSTM_API culstm_status_t culstm_spec_set_hidden_size(culstm_spec_t* spec, int64_t hidden_size);
CULSTM_API culstm_status_t culstm_spec_set_proj_size(culstm_spec_t* spec, int64_t proj_size); /* 0 = none */
CULSTM_API culstm_status_t culstm_spec_set_num_layers(culstm_spec_t* spec, int32_t num_layers);
CULSTM_API culstm_status_t culstm_spec_set_direction(culstm_spec_t* spec, culstm_direction_t direction);
CULSTM_API culstm_status_t culstm_spec_set_bias(culstm_spec_t* spec, int bias);
CULSTM_API culstm_status_t culstm_spec_set_layout(culstm_spec_t* spec, culstm_layout_t layout);
/* Activations: gate (i, f, o), cell (g) and hidden (applied to c). alpha/beta as in the ONNX definitions. */
CULSTM_API culstm_status_t culstm_spec_set_gate_activation(culstm_spec_t* spec, culstm_activation_t kind, float alpha,
                                                           float beta);
CULSTM_API culstm_status_t culstm_spec_set_cell_activation(culstm_spec_t* spec, culstm_activation_t kind, float alpha,
                                                           float beta);
CULSTM_API culstm_status_t culstm_spec_set_hidden_activation(culstm_spec_t* spec, culstm_activation_t kind,
                                                             float alpha, float beta);
/* Clips: 0 = none; otherwise must be > 0. gate clip = ONNX `clip`, cell clip = cuDNN's. */
CULSTM_API culstm_status_t culstm_spec_set_gate_clip(culstm_spec_t* spec, float clip);
CULSTM_API culstm_status_t culstm_spec_set_cell_clip(culstm_spec_t* spec, float clip);
CULSTM_API culstm_status_t culstm_spec_set_peepholes(culstm_spec_t* spec, int peepholes);
CULSTM_API culstm_status_t culstm_spec_set_input_forget(culstm_spec_t* spec, int input_forget);
CULSTM_API culstm_status_t culstm_spec_set_dtype(culstm_spec_t* spec, culstm_dtype_t dtype);
CULSTM_API culstm_status_t culstm_spec_set_math_mode(culstm_spec_t* spec, culstm_math_mode_t math);
/* Ok, or CULSTM_STATUS_INVALID_SPEC / UNSUPPORTED_COMBINATION naming the field. */
CULSTM_API culstm_status_t culstm_spec_validate(const culstm_spec_t* spec);

/* Getters (for a spec read from a model file, or a model's): sizes and the fields that shape the tensors. */
CULSTM_API int64_t culstm_spec_input_size(const culstm_spec_t* spec);
CULSTM_API int64_t culstm_spec_hidden_size(const culstm_spec_t* spec);
CULSTM_API int64_t culstm_spec_proj_size(const culstm_spec_t* spec);
CULSTM_API int32_t culstm_spec_num_layers(const culstm_spec_t* spec);
CULSTM_API int32_t culstm_spec_num_directions(const culstm_spec_t* spec); /* D: 1 or 2 */
CULSTM_API int64_t culstm_spec_recurrent_size(const culstm_spec_t* spec); /* R: proj_size or hidden_size */
CULSTM_API int64_t culstm_spec_output_size(const culstm_spec_t* spec);    /* D*R: features of y */
CULSTM_API culstm_direction_t culstm_spec_direction(const culstm_spec_t* spec);
CULSTM_API culstm_layout_t culstm_spec_layout(const culstm_spec_t* spec);
CULSTM_API culstm_dtype_t culstm_spec_dtype(const culstm_spec_t* spec);
/* One line, e.g. "I=32 H=64 P=0 L=2 bidirectional bias seq_major f32 ...", NUL-terminated and truncated to
 * `capacity` bytes; returns the length of the full text (like snprintf). */
CULSTM_API size_t culstm_spec_describe(const culstm_spec_t* spec, char* buffer, size_t capacity);

/* ----------------------------------------------------------------------------------------------------------- */
/* Weights: canonical f32 host weights, sized for a spec.                                                       */

/* Every tensor sized for `spec` (which must be valid) and filled with zeros. */
CULSTM_API culstm_status_t culstm_weights_create(const culstm_spec_t* spec, culstm_weights_t** out);
CULSTM_API void culstm_weights_destroy(culstm_weights_t* weights);
/* Number of values tensor `which` of (layer, direction) holds for this spec (0 when the spec has no such tensor). */
CULSTM_API culstm_status_t culstm_weights_count(const culstm_weights_t* weights, int32_t layer, int32_t direction,
                                                culstm_weight_t which, size_t* count);
/* Copies `count` values (exactly culstm_weights_count's) into / out of tensor `which` of (layer, direction).
 * direction is 0..D-1 (1 = the reverse direction of a bidirectional layer). */
CULSTM_API culstm_status_t culstm_weights_set(culstm_weights_t* weights, int32_t layer, int32_t direction,
                                              culstm_weight_t which, const float* values, size_t count);
CULSTM_API culstm_status_t culstm_weights_get(const culstm_weights_t* weights, int32_t layer, int32_t direction,
                                              culstm_weight_t which, float* values, size_t count);

/* Model files (safetensors with PyTorch nn.LSTM names; docs/formats.md). `prefix` may be NULL or "". On success
 * *spec and *weights are new handles the caller destroys. */
CULSTM_API culstm_status_t culstm_load_model_file(const char* path, const char* prefix, culstm_spec_t** spec,
                                                  culstm_weights_t** weights);
CULSTM_API culstm_status_t culstm_save_model_file(const char* path, const culstm_spec_t* spec,
                                                  const culstm_weights_t* weights);

/* ----------------------------------------------------------------------------------------------------------- */
/* Model and context                                                                                            */

/* Validates spec, weights and options (NULL = defaults), picks the backend and prepares the weights. The model
 * keeps its own copies: spec and weights may be destroyed afterwards. An options field outside its enum (backend,
 * cudnn_algo, cuda_engine), or a nonzero reserved slot, is CULSTM_STATUS_INVALID_ARGUMENT naming the field. */
CULSTM_API culstm_status_t culstm_model_create(const culstm_spec_t* spec, const culstm_weights_t* weights,
                                               const culstm_model_options_t* options, culstm_model_t** out);
CULSTM_API void culstm_model_destroy(culstm_model_t* model);
/* The backend actually chosen (never AUTO), and where its tensors and workspace live. */
CULSTM_API culstm_backend_t culstm_model_backend(const culstm_model_t* model);
CULSTM_API culstm_memory_t culstm_model_memory(const culstm_model_t* model);
/* The model's spec (owned by the model, valid while it lives). */
CULSTM_API const culstm_spec_t* culstm_model_spec(const culstm_model_t* model);
/* The execution plan as text (owned by the model). */
CULSTM_API const char* culstm_model_explain(const culstm_model_t* model);
/* Bytes of workspace culstm_forward needs for this batch and number of steps. */
CULSTM_API culstm_status_t culstm_model_workspace_size(const culstm_model_t* model, int64_t batch, int64_t seq_len,
                                                       size_t* bytes);

/* Per-thread (per-stream) handles; create one for each thread that calls culstm_forward concurrently. */
CULSTM_API culstm_status_t culstm_context_create(const culstm_model_t* model, culstm_context_t** out);
CULSTM_API void culstm_context_destroy(culstm_context_t* context);

/* Runs the network: validates every argument first (outputs untouched on failure), then enqueues the work on
 * `stream` (GPU backends) or runs it on the calling thread (reference). */
CULSTM_API culstm_status_t culstm_forward(culstm_context_t* context, const culstm_model_t* model,
                                          const culstm_forward_args_t* args, culstm_stream_t stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CULSTM_C_API_H_ */
