/* The C API used from C (compiled as C99, linked to the shared library): handles, setters, weights from raw arrays,
 * forward on the reference backend checked against a small LSTM written here, model files, and every error path's
 * code and per-thread message. The bit-for-bit comparison with the C++ API is in c_api_crosscheck_test.cpp.
 *
 * usage: culstm_c_api_test WORK_DIR */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "culstm/culstm.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                     \
  do {                                                                  \
    ++g_checks;                                                         \
    if (!(cond)) {                                                      \
      ++g_failures;                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                   \
  } while (0)

/* A call that must succeed; on failure prints the status and the thread's message. */
#define CHECK_OK(call)                                                                                     \
  do {                                                                                                     \
    culstm_status_t st_ = (call);                                                                          \
    ++g_checks;                                                                                            \
    if (st_ != CULSTM_STATUS_OK) {                                                                         \
      ++g_failures;                                                                                        \
      fprintf(stderr, "%s:%d: %s returned %s (%s)\n", __FILE__, __LINE__, #call, culstm_status_name(st_), \
              culstm_last_error());                                                                        \
    } else if (culstm_last_error()[0] != '\0') {                                                           \
      ++g_failures;                                                                                        \
      fprintf(stderr, "%s:%d: success left a message: %s\n", __FILE__, __LINE__, culstm_last_error());     \
    }                                                                                                      \
  } while (0)

/* A call that must fail with `code` and a message that contains `needle`. */
#define CHECK_FAILS(call, code, needle)                                                                           \
  do {                                                                                                            \
    culstm_status_t st_ = (call);                                                                                 \
    ++g_checks;                                                                                                   \
    if (st_ != (code) || strstr(culstm_last_error(), (needle)) == NULL ||                                         \
        strstr(culstm_last_error(), culstm_status_name(code)) != culstm_last_error()) {                           \
      ++g_failures;                                                                                               \
      fprintf(stderr, "%s:%d: %s: expected %s with \"%s\", got %s: \"%s\"\n", __FILE__, __LINE__, #call,          \
              culstm_status_name(code), (needle), culstm_status_name(st_), culstm_last_error());                  \
    }                                                                                                             \
  } while (0)

enum { I = 5, H = 7, T = 6, B = 3 };

static float value_at(int k, int salt) { return 0.5f * (float)sin(0.37 * k + 1.3 * salt); }

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* One forward layer, PyTorch semantics, gate order i, f, g, o, in double: the test's own definition. */
static void lstm_reference(const float* w_ih, const float* w_hh, const float* b_ih, const float* b_hh,
                           const float* x, const int32_t* lengths, const float* h0, const float* c0, double* y,
                           double* h_n, double* c_n) {
  int b, t, j, k;
  for (b = 0; b < B; ++b) {
    double h[H], c[H], pre[4 * H];
    for (j = 0; j < H; ++j) {
      h[j] = h0[b * H + j];
      c[j] = c0[b * H + j];
    }
    for (t = 0; t < T; ++t) {
      if (t >= lengths[b]) {
        for (j = 0; j < H; ++j) y[(t * B + b) * H + j] = 0.0;
        continue;
      }
      for (k = 0; k < 4 * H; ++k) {
        double acc = (double)b_ih[k] + (double)b_hh[k];
        for (j = 0; j < I; ++j) acc += (double)w_ih[k * I + j] * x[(t * B + b) * I + j];
        for (j = 0; j < H; ++j) acc += (double)w_hh[k * H + j] * h[j];
        pre[k] = acc;
      }
      for (j = 0; j < H; ++j) {
        const double ig = sigmoid(pre[j]), fg = sigmoid(pre[H + j]), gg = tanh(pre[2 * H + j]),
                     og = sigmoid(pre[3 * H + j]);
        c[j] = fg * c[j] + ig * gg;
        h[j] = og * tanh(c[j]);
        y[(t * B + b) * H + j] = h[j];
      }
    }
    for (j = 0; j < H; ++j) {
      h_n[b * H + j] = h[j];
      c_n[b * H + j] = c[j];
    }
  }
}

static void test_library(void) {
  char expected[64];
  const char* v = culstm_version();
  int major = -1, minor = -1, patch = -1;
  CHECK(strcmp(v, CULSTM_VERSION_STRING) == 0);
  CHECK(sscanf(v, "%d.%d.%d", &major, &minor, &patch) == 3);
  sprintf(expected, "%d.%d.%d", CULSTM_VERSION_MAJOR, CULSTM_VERSION_MINOR, CULSTM_VERSION_PATCH);
  CHECK(strcmp(v, expected) == 0);
  CHECK(strcmp(culstm_status_name(CULSTM_STATUS_OK), "Ok") == 0);
  CHECK(strcmp(culstm_status_name(CULSTM_STATUS_SHAPE_MISMATCH), "ShapeMismatch") == 0);
  CHECK(strcmp(culstm_status_name(CULSTM_STATUS_INTERNAL), "Internal") == 0);
  CHECK(strcmp(culstm_status_name((culstm_status_t)99), "Unknown") == 0);
  CHECK(culstm_backend_available(CULSTM_BACKEND_REFERENCE) == 1);
  CHECK(culstm_last_error()[0] == '\0');
  if (!culstm_backend_available(CULSTM_BACKEND_CUDA)) {
    CHECK(strncmp(culstm_last_error(), "BackendUnavailable: ", 20) == 0);
  }
  CHECK(culstm_backend_available((culstm_backend_t)7) == 0);
  CHECK(strstr(culstm_last_error(), "backend") != NULL);
  {
    const culstm_model_options_t o = culstm_model_options_default();
    int k;
    CHECK(o.backend == CULSTM_BACKEND_AUTO && o.device == 0 && o.max_batch == 64 && o.max_seq_len == 4096);
    CHECK(o.cudnn_algo == CULSTM_CUDNN_ALGO_AUTO && o.cuda_engine == CULSTM_CUDA_ENGINE_AUTO);
    for (k = 0; k < 8; ++k) CHECK(o.reserved[k] == 0);
    /* The layout is ABI: existing fields never move (culstm.h). */
    CHECK(sizeof(culstm_model_options_t) == 64);
    CHECK(offsetof(culstm_model_options_t, max_seq_len) == 16 && offsetof(culstm_model_options_t, cudnn_algo) == 24);
    CHECK(offsetof(culstm_model_options_t, cuda_engine) == 28 && offsetof(culstm_model_options_t, reserved) == 32);
  }
}

static culstm_spec_t* make_spec(void) {
  culstm_spec_t* spec = NULL;
  CHECK_OK(culstm_spec_create(&spec));
  CHECK_OK(culstm_spec_set_input_size(spec, I));
  CHECK_OK(culstm_spec_set_hidden_size(spec, H));
  CHECK_OK(culstm_spec_set_num_layers(spec, 1));
  CHECK_OK(culstm_spec_set_direction(spec, CULSTM_DIRECTION_FORWARD));
  CHECK_OK(culstm_spec_validate(spec));
  return spec;
}

static void test_spec(void) {
  culstm_spec_t* spec = make_spec();
  char text[256];
  size_t n;
  CHECK(culstm_spec_input_size(spec) == I && culstm_spec_hidden_size(spec) == H && culstm_spec_proj_size(spec) == 0);
  CHECK(culstm_spec_num_layers(spec) == 1 && culstm_spec_num_directions(spec) == 1);
  CHECK(culstm_spec_recurrent_size(spec) == H && culstm_spec_output_size(spec) == H);
  CHECK(culstm_spec_direction(spec) == CULSTM_DIRECTION_FORWARD && culstm_spec_layout(spec) == CULSTM_LAYOUT_SEQ_MAJOR);
  CHECK(culstm_spec_dtype(spec) == CULSTM_DTYPE_F32);
  n = culstm_spec_describe(spec, text, sizeof text);
  CHECK(n == strlen(text) && strstr(text, "I=5") != NULL && strstr(text, "H=7") != NULL);
  n = culstm_spec_describe(spec, text, 4); /* truncated, NUL-terminated, returns the full length */
  CHECK(strlen(text) == 3 && n > 3);

  CHECK_FAILS(culstm_spec_set_direction(spec, (culstm_direction_t)5), CULSTM_STATUS_INVALID_ARGUMENT, "direction");
  CHECK_FAILS(culstm_spec_set_layout(spec, (culstm_layout_t)-1), CULSTM_STATUS_INVALID_ARGUMENT, "layout");
  CHECK_FAILS(culstm_spec_set_gate_activation(spec, (culstm_activation_t)11, 0.0f, 0.0f),
              CULSTM_STATUS_INVALID_ARGUMENT, "kind");
  CHECK_FAILS(culstm_spec_set_input_size(NULL, 3), CULSTM_STATUS_NULL_POINTER, "spec");
  CHECK_FAILS(culstm_spec_create(NULL), CULSTM_STATUS_NULL_POINTER, "out");
  CHECK(culstm_spec_direction(spec) == CULSTM_DIRECTION_FORWARD); /* unchanged by the failed setter */

  /* Setters store; validate judges. */
  CHECK_OK(culstm_spec_set_hidden_size(spec, 0));
  CHECK_FAILS(culstm_spec_validate(spec), CULSTM_STATUS_INVALID_SPEC, "hidden_size");
  CHECK_OK(culstm_spec_set_hidden_size(spec, H));
  CHECK_OK(culstm_spec_set_gate_clip(spec, -1.0f));
  CHECK_FAILS(culstm_spec_validate(spec), CULSTM_STATUS_INVALID_SPEC, "gate_clip");
  CHECK_OK(culstm_spec_set_gate_clip(spec, 0.0f)); /* 0 = none */
  CHECK_OK(culstm_spec_validate(spec));
  CHECK_OK(culstm_spec_set_gate_activation(spec, CULSTM_ACTIVATION_HARD_SIGMOID, 0.2f, 0.5f));
  CHECK_OK(culstm_spec_set_cell_activation(spec, CULSTM_ACTIVATION_TANH, 0.0f, 0.0f));
  CHECK_OK(culstm_spec_set_hidden_activation(spec, CULSTM_ACTIVATION_SOFTSIGN, 0.0f, 0.0f));
  CHECK_OK(culstm_spec_set_cell_clip(spec, 3.0f));
  CHECK_OK(culstm_spec_set_peepholes(spec, 1));
  CHECK_OK(culstm_spec_set_input_forget(spec, 1));
  CHECK_OK(culstm_spec_set_bias(spec, 0));
  CHECK_OK(culstm_spec_set_layout(spec, CULSTM_LAYOUT_BATCH_MAJOR));
  CHECK_OK(culstm_spec_set_dtype(spec, CULSTM_DTYPE_BF16));
  CHECK_OK(culstm_spec_set_math_mode(spec, CULSTM_MATH_ALLOW_TF32));
  CHECK_OK(culstm_spec_set_proj_size(spec, 3));
  CHECK_FAILS(culstm_spec_validate(spec), CULSTM_STATUS_UNSUPPORTED_COMBINATION, "allow_tf32");
  CHECK_OK(culstm_spec_set_math_mode(spec, CULSTM_MATH_STRICT_F32));
  CHECK_OK(culstm_spec_validate(spec));
  CHECK(culstm_spec_recurrent_size(spec) == 3 && culstm_spec_layout(spec) == CULSTM_LAYOUT_BATCH_MAJOR);
  culstm_spec_destroy(spec);
  culstm_spec_destroy(NULL);
}

/* Fills every tensor of a 1-layer forward model with value_at() and keeps copies for lstm_reference. */
static culstm_weights_t* make_weights(const culstm_spec_t* spec, float* w_ih, float* w_hh, float* b_ih, float* b_hh) {
  culstm_weights_t* w = NULL;
  size_t count = 0;
  int k;
  CHECK_OK(culstm_weights_create(spec, &w));
  for (k = 0; k < 4 * H * I; ++k) w_ih[k] = value_at(k, 1);
  for (k = 0; k < 4 * H * H; ++k) w_hh[k] = value_at(k, 2);
  for (k = 0; k < 4 * H; ++k) {
    b_ih[k] = value_at(k, 3);
    b_hh[k] = value_at(k, 4);
  }
  CHECK_OK(culstm_weights_count(w, 0, 0, CULSTM_WEIGHT_W_IH, &count));
  CHECK(count == 4 * H * I);
  CHECK_OK(culstm_weights_count(w, 0, 0, CULSTM_WEIGHT_W_HR, &count));
  CHECK(count == 0);
  CHECK_OK(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_W_IH, w_ih, 4 * H * I));
  CHECK_OK(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_W_HH, w_hh, 4 * H * H));
  CHECK_OK(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_B_IH, b_ih, 4 * H));
  CHECK_OK(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_B_HH, b_hh, 4 * H));
  return w;
}

static void test_weights_errors(culstm_weights_t* w) {
  float buffer[4 * H * H];
  size_t count = 0;
  CHECK_FAILS(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_W_HH, buffer, 10), CULSTM_STATUS_SHAPE_MISMATCH, "w_hh holds");
  CHECK_FAILS(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_PEEPHOLE, buffer, 3 * H), CULSTM_STATUS_SHAPE_MISMATCH,
              "no such tensor");
  CHECK_FAILS(culstm_weights_set(w, 1, 0, CULSTM_WEIGHT_W_HH, buffer, 4 * H * H), CULSTM_STATUS_INVALID_ARGUMENT,
              "layer");
  CHECK_FAILS(culstm_weights_set(w, 0, 1, CULSTM_WEIGHT_W_HH, buffer, 4 * H * H), CULSTM_STATUS_INVALID_ARGUMENT,
              "direction");
  CHECK_FAILS(culstm_weights_set(w, 0, 0, (culstm_weight_t)9, buffer, 4 * H * H), CULSTM_STATUS_INVALID_ARGUMENT,
              "which");
  CHECK_FAILS(culstm_weights_set(w, 0, 0, CULSTM_WEIGHT_W_HH, NULL, 4 * H * H), CULSTM_STATUS_NULL_POINTER, "values");
  CHECK_FAILS(culstm_weights_count(NULL, 0, 0, CULSTM_WEIGHT_W_HH, &count), CULSTM_STATUS_NULL_POINTER, "weights");
  CHECK_OK(culstm_weights_get(w, 0, 0, CULSTM_WEIGHT_W_HH, buffer, 4 * H * H));
  CHECK(buffer[5] == value_at(5, 2));
  {
    culstm_spec_t* bad = NULL;
    culstm_weights_t* none = NULL;
    CHECK_OK(culstm_spec_create(&bad)); /* sizes 0: invalid */
    CHECK_FAILS(culstm_weights_create(bad, &none), CULSTM_STATUS_INVALID_SPEC, "input_size");
    CHECK(none == NULL);
    culstm_spec_destroy(bad);
  }
}

/* cudnn_algo and cuda_engine: every value of the enums is accepted (the reference backend ignores them, and runs
 * the same bits); values outside them, and nonzero reserved slots, are InvalidArgument naming the field, with the
 * output untouched. */
static void test_model_options(const culstm_spec_t* spec, const culstm_weights_t* weights) {
  static const culstm_cudnn_algo_t algos[] = {CULSTM_CUDNN_ALGO_AUTO, CULSTM_CUDNN_ALGO_STANDARD,
                                              CULSTM_CUDNN_ALGO_PERSIST_STATIC,
                                              CULSTM_CUDNN_ALGO_PERSIST_STATIC_SMALL_H,
                                              CULSTM_CUDNN_ALGO_PERSIST_DYNAMIC};
  static const culstm_cuda_engine_t engines[] = {CULSTM_CUDA_ENGINE_AUTO, CULSTM_CUDA_ENGINE_STEPWISE,
                                                 CULSTM_CUDA_ENGINE_PERSISTENT};
  culstm_model_options_t options = culstm_model_options_default();
  culstm_model_t* model = NULL;
  culstm_model_t* untouched = (culstm_model_t*)&options; /* any non-NULL value: failures must not write it */
  culstm_model_t* out = untouched;
  culstm_status_t st;
  size_t a, e;
  options.backend = CULSTM_BACKEND_REFERENCE;
  options.max_batch = 8;
  options.max_seq_len = 16;
  for (a = 0; a < sizeof algos / sizeof algos[0]; ++a) {
    for (e = 0; e < sizeof engines / sizeof engines[0]; ++e) {
      options.cudnn_algo = algos[a];
      options.cuda_engine = engines[e];
      CHECK_OK(culstm_model_create(spec, weights, &options, &model));
      CHECK(model != NULL && culstm_model_backend(model) == CULSTM_BACKEND_REFERENCE);
      culstm_model_destroy(model);
      model = NULL;
    }
  }

  options.cudnn_algo = (culstm_cudnn_algo_t)5;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT,
              "options.cudnn_algo: expected CULSTM_CUDNN_ALGO_AUTO (0)");
  CHECK(strstr(culstm_last_error(), "got 5") != NULL);
  options.cudnn_algo = (culstm_cudnn_algo_t)-1;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT, "got -1");
  options.cudnn_algo = CULSTM_CUDNN_ALGO_STANDARD;
  options.cuda_engine = (culstm_cuda_engine_t)3;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT,
              "options.cuda_engine: expected CULSTM_CUDA_ENGINE_AUTO (0), _STEPWISE (1) or _PERSISTENT (2), got 3");
  options.cuda_engine = (culstm_cuda_engine_t)-2;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT,
              "options.cuda_engine");
  options.cuda_engine = CULSTM_CUDA_ENGINE_PERSISTENT;
  options.reserved[7] = 1;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT,
              "options.reserved[7]: expected 0");
  options.reserved[7] = 0;
  CHECK(out == untouched);

  /* The enums are checked whichever backend is asked for (here one that may be unavailable: the range check
   * comes first). */
  options.backend = CULSTM_BACKEND_CUDNN;
  options.cudnn_algo = (culstm_cudnn_algo_t)9;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT,
              "options.cudnn_algo");
  options.backend = CULSTM_BACKEND_CUDA;
  options.cudnn_algo = CULSTM_CUDNN_ALGO_AUTO;
  options.cuda_engine = (culstm_cuda_engine_t)4;
  CHECK_FAILS(culstm_model_create(spec, weights, &options, &out), CULSTM_STATUS_INVALID_ARGUMENT,
              "options.cuda_engine");
  CHECK(out == untouched);

  /* Valid values reach the GPU backends: on a machine without them, their own reason, not a range error. */
  options.cuda_engine = CULSTM_CUDA_ENGINE_STEPWISE;
  st = culstm_model_create(spec, weights, &options, &model);
  CHECK(st == CULSTM_STATUS_OK || st == CULSTM_STATUS_BACKEND_UNAVAILABLE || st == CULSTM_STATUS_NOT_IMPLEMENTED ||
        st == CULSTM_STATUS_NOT_SUPPORTED);
  if (st == CULSTM_STATUS_OK) {
    /* Stepwise everywhere: the Plan (one line per layer and direction) names no other engine. */
    CHECK(culstm_model_backend(model) == CULSTM_BACKEND_CUDA);
    CHECK(strstr(culstm_model_explain(model), "engine=stepwise") != NULL);
    CHECK(strstr(culstm_model_explain(model), "engine=persistent") == NULL);
    culstm_model_destroy(model);
    model = NULL;
  }
  options.backend = CULSTM_BACKEND_CUDNN;
  options.cudnn_algo = CULSTM_CUDNN_ALGO_STANDARD;
  st = culstm_model_create(spec, weights, &options, &model);
  CHECK(st == CULSTM_STATUS_OK || st == CULSTM_STATUS_BACKEND_UNAVAILABLE || st == CULSTM_STATUS_NOT_SUPPORTED);
  if (st == CULSTM_STATUS_OK) {
    /* The Plan names the explicit algorithm (docs/cudnn_backend.md). */
    CHECK(strstr(culstm_model_explain(model), "algorithm: standard (options.cudnn_algo)") != NULL);
    culstm_model_destroy(model);
  }
}

static void test_forward(const char* work_dir) {
  static float w_ih[4 * H * I], w_hh[4 * H * H], b_ih[4 * H], b_hh[4 * H];
  static float x[T * B * I], h0[B * H], c0[B * H], y[T * B * H], h_n[B * H], c_n[B * H], y2[T * B * H];
  static double y_ref[T * B * H], h_ref[B * H], c_ref[B * H];
  const int32_t lengths[B] = {T, 0, 4};
  culstm_spec_t* spec = make_spec();
  culstm_weights_t* weights = make_weights(spec, w_ih, w_hh, b_ih, b_hh);
  culstm_model_options_t options = culstm_model_options_default();
  culstm_model_t* model = NULL;
  culstm_context_t* ctx = NULL;
  culstm_forward_args_t args;
  size_t bytes = 0;
  void* workspace;
  double max_err = 0.0;
  int k;

  test_weights_errors(weights);
  options.backend = CULSTM_BACKEND_REFERENCE;
  options.max_batch = 8;
  options.max_seq_len = 16;
  CHECK_OK(culstm_model_create(spec, weights, &options, &model));
  if (model == NULL) return;
  /* The model keeps copies. */
  culstm_weights_destroy(weights);
  culstm_spec_destroy(spec);
  CHECK(culstm_model_backend(model) == CULSTM_BACKEND_REFERENCE);
  CHECK(culstm_model_memory(model) == CULSTM_MEMORY_HOST);
  CHECK(culstm_spec_hidden_size(culstm_model_spec(model)) == H);
  CHECK(strstr(culstm_model_explain(model), "reference") != NULL);
  CHECK_OK(culstm_model_workspace_size(model, B, T, &bytes));
  CHECK(bytes > 0);
  CHECK_FAILS(culstm_model_workspace_size(model, 9, T, &bytes), CULSTM_STATUS_EXCEEDS_MODEL_LIMIT, "max_batch");
  workspace = malloc(bytes);
  CHECK_OK(culstm_context_create(model, &ctx));

  for (k = 0; k < T * B * I; ++k) x[k] = value_at(k, 5);
  for (k = 0; k < B * H; ++k) {
    h0[k] = value_at(k, 6);
    c0[k] = value_at(k, 7);
  }
  for (k = 0; k < T * B * H; ++k) y[k] = NAN;
  for (k = 0; k < B * H; ++k) h_n[k] = c_n[k] = NAN;

  memset(&args, 0, sizeof args);
  args.x = culstm_tensor_3d(x, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, T, B, I);
  args.lengths = culstm_tensor_1d(lengths, CULSTM_DTYPE_I32, CULSTM_MEMORY_HOST, B);
  args.h0 = culstm_tensor_3d(h0, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 1, B, H);
  args.c0 = culstm_tensor_3d(c0, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 1, B, H);
  args.y = culstm_tensor_3d(y, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, T, B, H);
  args.h_n = culstm_tensor_3d(h_n, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 1, B, H);
  args.c_n = culstm_tensor_3d(c_n, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 1, B, H);
  args.workspace = workspace;
  args.workspace_bytes = bytes;
  CHECK_OK(culstm_forward(ctx, model, &args, NULL));

  lstm_reference(w_ih, w_hh, b_ih, b_hh, x, lengths, h0, c0, y_ref, h_ref, c_ref);
  for (k = 0; k < T * B * H; ++k) max_err = fmax(max_err, fabs(y[k] - y_ref[k]));
  for (k = 0; k < B * H; ++k) max_err = fmax(max_err, fmax(fabs(h_n[k] - h_ref[k]), fabs(c_n[k] - c_ref[k])));
  CHECK(max_err < 1e-6); /* NaN (an unwritten output) fails this too */
  for (k = 0; k < H; ++k) CHECK(h_n[1 * H + k] == h0[1 * H + k] && c_n[1 * H + k] == c0[1 * H + k]); /* len 0 */

  /* Bad arguments: the right code, a message naming the argument, outputs untouched. */
  for (k = 0; k < T * B * H; ++k) y2[k] = -7.0f;
  args.y = culstm_tensor_3d(y2, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, T, B, H);
  args.x.shape[2] = I + 1;
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_SHAPE_MISMATCH, "x: expected shape");
  args.x.shape[2] = I;
  args.x.dtype = CULSTM_DTYPE_F16;
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_DTYPE_MISMATCH, "x: expected dtype f32");
  args.x.dtype = (culstm_dtype_t)42;
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_INVALID_ARGUMENT, "x.dtype");
  args.x.dtype = CULSTM_DTYPE_F32;
  args.x.rank = 5;
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_SHAPE_MISMATCH, "x: rank");
  args.x.rank = 3;
  args.h0.memory = CULSTM_MEMORY_DEVICE;
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_DEVICE_MISMATCH, "h0");
  args.h0.memory = CULSTM_MEMORY_HOST;
  args.workspace_bytes = bytes - 1;
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_WORKSPACE_TOO_SMALL, "workspace_bytes");
  args.workspace_bytes = bytes;
  args.h_n = culstm_tensor_3d(h0, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 1, B, H); /* aliases the input h0 */
  CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_INVALID_ARGUMENT, "overlaps");
  args.h_n = culstm_tensor_3d(h_n, CULSTM_DTYPE_F32, CULSTM_MEMORY_HOST, 1, B, H);
  CHECK_FAILS(culstm_forward(ctx, model, NULL, NULL), CULSTM_STATUS_NULL_POINTER, "args");
  CHECK_FAILS(culstm_forward(NULL, model, &args, NULL), CULSTM_STATUS_NULL_POINTER, "context");
  {
    const int32_t bad_lengths[B] = {T, T + 1, 0};
    args.lengths = culstm_tensor_1d(bad_lengths, CULSTM_DTYPE_I32, CULSTM_MEMORY_HOST, B);
    CHECK_FAILS(culstm_forward(ctx, model, &args, NULL), CULSTM_STATUS_LENGTH_OUT_OF_RANGE, "lengths[1]");
    args.lengths = culstm_tensor_1d(lengths, CULSTM_DTYPE_I32, CULSTM_MEMORY_HOST, B);
  }
  for (k = 0; k < T * B * H; ++k) CHECK(y2[k] == -7.0f);
  CHECK_OK(culstm_forward(ctx, model, &args, NULL)); /* the same call succeeds again and clears the message */
  CHECK(memcmp(y, y2, sizeof y) == 0);

  /* Model files: save, load, run the loaded model: the same outputs bit for bit. */
  {
    char path[1024];
    culstm_spec_t* loaded_spec = NULL;
    culstm_weights_t* loaded_weights = NULL;
    culstm_spec_t* spec2 = make_spec();
    culstm_weights_t* weights2 = make_weights(spec2, w_ih, w_hh, b_ih, b_hh);
    culstm_model_t* model2 = NULL;
    culstm_context_t* ctx2 = NULL;
    snprintf(path, sizeof path, "%s/c_api_model.safetensors", work_dir);
    CHECK_OK(culstm_save_model_file(path, spec2, weights2));
    CHECK_OK(culstm_load_model_file(path, NULL, &loaded_spec, &loaded_weights));
    CHECK(culstm_spec_input_size(loaded_spec) == I && culstm_spec_hidden_size(loaded_spec) == H);
    CHECK_OK(culstm_model_create(loaded_spec, loaded_weights, &options, &model2));
    CHECK_OK(culstm_context_create(model2, &ctx2));
    for (k = 0; k < T * B * H; ++k) y2[k] = NAN;
    CHECK_OK(culstm_forward(ctx2, model2, &args, NULL));
    CHECK(memcmp(y, y2, sizeof y) == 0);
    /* A context belongs to its model's backend; a context of another model of the same backend works too. */
    CHECK_OK(culstm_forward(ctx, model2, &args, NULL));
    CHECK_FAILS(culstm_load_model_file("/nonexistent/culstm/model.safetensors", "", &loaded_spec, &loaded_weights),
                CULSTM_STATUS_IO_ERROR, "model.safetensors");
    CHECK_FAILS(culstm_load_model_file(path, "encoder.", &loaded_spec, &loaded_weights), CULSTM_STATUS_FORMAT_ERROR,
                "encoder.weight_ih_l0");
    culstm_context_destroy(ctx2);
    culstm_model_destroy(model2);
    culstm_spec_destroy(loaded_spec);
    culstm_weights_destroy(loaded_weights);
    culstm_spec_destroy(spec2);
    culstm_weights_destroy(weights2);
  }

  /* Explicit GPU backends report why they cannot run here (or run, on a GPU machine with them implemented). */
  {
    culstm_spec_t* spec3 = make_spec();
    culstm_weights_t* weights3 = make_weights(spec3, w_ih, w_hh, b_ih, b_hh);
    culstm_model_t* none = NULL;
    culstm_status_t st;
    options.backend = CULSTM_BACKEND_CUDA;
    st = culstm_model_create(spec3, weights3, &options, &none);
    CHECK(st == CULSTM_STATUS_OK || st == CULSTM_STATUS_BACKEND_UNAVAILABLE || st == CULSTM_STATUS_NOT_IMPLEMENTED);
    CHECK((st == CULSTM_STATUS_OK) == (culstm_last_error()[0] == '\0'));
    culstm_model_destroy(none);
    options.backend = (culstm_backend_t)8;
    CHECK_FAILS(culstm_model_create(spec3, weights3, &options, &none), CULSTM_STATUS_INVALID_ARGUMENT,
                "options.backend");
    test_model_options(spec3, weights3);
    culstm_spec_destroy(spec3);
    culstm_weights_destroy(weights3);
  }

  culstm_context_destroy(ctx);
  culstm_context_destroy(NULL);
  culstm_model_destroy(model);
  culstm_model_destroy(NULL);
  free(workspace);
}

int main(int argc, char** argv) {
  const char* work_dir = argc > 1 ? argv[1] : ".";
  test_library();
  test_spec();
  test_forward(work_dir);
  if (g_failures) {
    fprintf(stderr, "c_api_test: %d of %d checks failed\n", g_failures, g_checks);
    return 1;
  }
  printf("c_api_test: all %d checks passed (culstm %s)\n", g_checks, culstm_version());
  return 0;
}
