#include "cudnn_direct.h"

#include <cmath>
#include <string>
#include <vector>

#if CULSTM_WITH_CUDNN
#include <cudnn.h>

#include "cudnn/cudnn_status.h"
#endif

namespace culstm_bench {

#if CULSTM_WITH_CUDNN

namespace {

const char* kAlgoNames[] = {"standard", "persist_static", "persist_static_small_h", "persist_dynamic"};
const cudnnRNNAlgo_t kAlgos[] = {CUDNN_RNN_ALGO_STANDARD, CUDNN_RNN_ALGO_PERSIST_STATIC,
                                 CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H, CUDNN_RNN_ALGO_PERSIST_DYNAMIC};

// cuDNN refusing this configuration or algorithm is recorded as "unsupported", not as a failure: decided on the
// status code and the algorithm the call was made for by the cudnn backend's own rule (internal/cudnn/cudnn_status.h;
// calls about no algorithm in particular read with STANDARD's, the strict one).
Outcome check(cudnnStatus_t st, const char* what, cudnnRNNAlgo_t algo = CUDNN_RNN_ALGO_STANDARD) {
  if (st == CUDNN_STATUS_SUCCESS) return {};
  return Outcome(std::string(what) + ": " + culstm::cudnn_status::message(st),
                 culstm::cudnn_status::refused(st, algo));
}
Outcome check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return {};
  return Outcome(std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

#define RETURN_IF_FAILED(expr)             \
  do {                                     \
    Outcome outcome_ = (expr);             \
    if (!outcome_.ok()) return outcome_;   \
  } while (0)

// One handle per process (culstm_bench is single-threaded); created on first use, never destroyed.
Outcome shared_handle(cudnnHandle_t* out) {
  static cudnnHandle_t handle = nullptr;
  if (!handle) {
    Outcome e = check(cudnnCreate(&handle), "cudnnCreate");
    if (!e.ok()) {
      handle = nullptr;
      return e;
    }
  }
  *out = handle;
  return {};
}

cudnnDataType_t data_type(ElemType t) {
  switch (t) {
    case ElemType::kF32: return CUDNN_DATA_FLOAT;
    case ElemType::kF16: return CUDNN_DATA_HALF;
    case ElemType::kBF16: return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}

}  // namespace

struct CudnnDirect::State {
  cudnnHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnRNNAlgo_t algo = CUDNN_RNN_ALGO_STANDARD;
  cudnnDropoutDescriptor_t dropout = nullptr;
  cudnnRNNDataDescriptor_t x_desc = nullptr, y_desc = nullptr;
  cudnnTensorDescriptor_t h_desc = nullptr, c_desc = nullptr;
  void* dropout_states = nullptr;
  void* weights = nullptr;
  void* workspace = nullptr;
  void* reserve = nullptr;
  void* y = nullptr;
  void* hy = nullptr;
  void* cy = nullptr;
  int* dev_seq_lengths = nullptr;
  std::size_t weight_bytes = 0, workspace_bytes = 0, reserve_bytes = 0, dropout_bytes = 0;
  std::size_t y_elems = 0, hy_elems = 0, cy_elems = 0, y_bytes = 0, hy_bytes = 0, cy_bytes = 0;

  ~State() {
    for (void* p : {dropout_states, weights, workspace, reserve, y, hy, cy, static_cast<void*>(dev_seq_lengths)}) {
      if (p) cudaFree(p);
    }
    if (x_desc) cudnnDestroyRNNDataDescriptor(x_desc);
    if (y_desc) cudnnDestroyRNNDataDescriptor(y_desc);
    if (h_desc) cudnnDestroyTensorDescriptor(h_desc);
    if (c_desc) cudnnDestroyTensorDescriptor(c_desc);
    if (rnn) cudnnDestroyRNNDescriptor(rnn);
    if (dropout) cudnnDestroyDropoutDescriptor(dropout);
  }
};

std::vector<std::string> cudnn_algorithm_names() { return {kAlgoNames, kAlgoNames + 4}; }

std::string cudnn_version_string() {
  const std::size_t v = cudnnGetVersion();
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100) +
         " (built against " + std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." +
         std::to_string(CUDNN_PATCHLEVEL) + ")";
}

bool cudnn_built() { return true; }

CudnnDirect::CudnnDirect() : s_(new State) {}
CudnnDirect::~CudnnDirect() = default;

Outcome CudnnDirect::setup(const RnnShape& shape, const std::string& algorithm, cudaStream_t stream) {
  s_.reset(new State);
  State& s = *s_;
  int algo_index = -1;
  for (int k = 0; k < 4; ++k) {
    if (algorithm == kAlgoNames[k]) algo_index = k;
  }
  if (algo_index < 0) return "unknown cuDNN algorithm '" + algorithm + "'";
  const cudnnRNNAlgo_t algo = kAlgos[algo_index];
  const int B = static_cast<int>(shape.batch), T = static_cast<int>(shape.steps);
  const int H = static_cast<int>(shape.hidden), P = static_cast<int>(shape.proj);
  const int R = P > 0 ? P : H, I = static_cast<int>(shape.input), L = shape.layers;
  const int D = shape.bidirectional ? 2 : 1;
  const cudnnDataType_t dt = data_type(shape.dtype);
  const std::size_t es = elem_size(shape.dtype);
  // PyTorch's choice: tensor cores for 16-bit data; f32 strict uses FMA only, f32 with tf32 the default math.
  cudnnMathType_t math = CUDNN_TENSOR_OP_MATH;
  if (shape.dtype == ElemType::kF32) math = shape.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;

  s.stream = stream;
  RETURN_IF_FAILED(shared_handle(&s.handle));
  RETURN_IF_FAILED(check(cudnnSetStream(s.handle, stream), "cudnnSetStream"));
  RETURN_IF_FAILED(check(cudnnCreateDropoutDescriptor(&s.dropout), "cudnnCreateDropoutDescriptor"));
  RETURN_IF_FAILED(check(cudnnDropoutGetStatesSize(s.handle, &s.dropout_bytes), "cudnnDropoutGetStatesSize"));
  RETURN_IF_FAILED(check(cudaMalloc(&s.dropout_states, s.dropout_bytes), "cudaMalloc dropout states"));
  RETURN_IF_FAILED(check(cudnnSetDropoutDescriptor(s.dropout, s.handle, 0.0f, s.dropout_states, s.dropout_bytes, 0),
                         "cudnnSetDropoutDescriptor"));
  RETURN_IF_FAILED(check(cudnnCreateRNNDescriptor(&s.rnn), "cudnnCreateRNNDescriptor"));
  RETURN_IF_FAILED(check(cudnnSetRNNDescriptor_v8(s.rnn, algo, CUDNN_LSTM, CUDNN_RNN_DOUBLE_BIAS,
                                                  D == 2 ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL,
                                                  CUDNN_LINEAR_INPUT, dt, CUDNN_DATA_FLOAT, math, I, H, R, L,
                                                  s.dropout, CUDNN_RNN_PADDED_IO_DISABLED),
                         "cudnnSetRNNDescriptor_v8", algo));
  s.algo = algo;
  if (algo == CUDNN_RNN_ALGO_PERSIST_DYNAMIC) {
    RETURN_IF_FAILED(check(cudnnBuildRNNDynamic(s.handle, s.rnn, B), "cudnnBuildRNNDynamic", algo));
  }

  // x and y: seq-major packed (all lengths T: the same bytes as culstm's [T, B, F]).
  std::vector<int> lengths(static_cast<std::size_t>(B), T);
  RETURN_IF_FAILED(check(cudnnCreateRNNDataDescriptor(&s.x_desc), "cudnnCreateRNNDataDescriptor"));
  RETURN_IF_FAILED(check(cudnnCreateRNNDataDescriptor(&s.y_desc), "cudnnCreateRNNDataDescriptor"));
  RETURN_IF_FAILED(check(cudnnSetRNNDataDescriptor(s.x_desc, dt, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED, T, B, I,
                                                   lengths.data(), nullptr),
                         "cudnnSetRNNDataDescriptor x"));
  RETURN_IF_FAILED(check(cudnnSetRNNDataDescriptor(s.y_desc, dt, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED, T, B, D * R,
                                                   lengths.data(), nullptr),
                         "cudnnSetRNNDataDescriptor y"));
  const int h_dims[3] = {L * D, B, R}, h_strides[3] = {B * R, R, 1};
  const int c_dims[3] = {L * D, B, H}, c_strides[3] = {B * H, H, 1};
  RETURN_IF_FAILED(check(cudnnCreateTensorDescriptor(&s.h_desc), "cudnnCreateTensorDescriptor"));
  RETURN_IF_FAILED(check(cudnnCreateTensorDescriptor(&s.c_desc), "cudnnCreateTensorDescriptor"));
  RETURN_IF_FAILED(
      check(cudnnSetTensorNdDescriptor(s.h_desc, dt, 3, h_dims, h_strides), "cudnnSetTensorNdDescriptor h"));
  RETURN_IF_FAILED(
      check(cudnnSetTensorNdDescriptor(s.c_desc, dt, 3, c_dims, c_strides), "cudnnSetTensorNdDescriptor c"));

  RETURN_IF_FAILED(check(cudnnGetRNNWeightSpaceSize(s.handle, s.rnn, &s.weight_bytes), "cudnnGetRNNWeightSpaceSize",
                         algo));
  RETURN_IF_FAILED(check(cudnnGetRNNTempSpaceSizes(s.handle, s.rnn, CUDNN_FWD_MODE_INFERENCE, s.x_desc,
                                                   &s.workspace_bytes, &s.reserve_bytes),
                         "cudnnGetRNNTempSpaceSizes", algo));
  RETURN_IF_FAILED(check(cudaMalloc(&s.weights, s.weight_bytes), "cudaMalloc weights"));
  if (s.workspace_bytes) RETURN_IF_FAILED(check(cudaMalloc(&s.workspace, s.workspace_bytes), "cudaMalloc workspace"));
  if (s.reserve_bytes) RETURN_IF_FAILED(check(cudaMalloc(&s.reserve, s.reserve_bytes), "cudaMalloc reserve"));
  s.y_elems = static_cast<std::size_t>(T) * B * D * R;
  s.hy_elems = static_cast<std::size_t>(L) * D * B * R;
  s.cy_elems = static_cast<std::size_t>(L) * D * B * H;
  s.y_bytes = s.y_elems * es;
  s.hy_bytes = s.hy_elems * es;
  s.cy_bytes = s.cy_elems * es;
  RETURN_IF_FAILED(check(cudaMalloc(&s.y, s.y_bytes), "cudaMalloc y"));
  RETURN_IF_FAILED(check(cudaMalloc(&s.hy, s.hy_bytes), "cudaMalloc hy"));
  RETURN_IF_FAILED(check(cudaMalloc(&s.cy, s.cy_bytes), "cudaMalloc cy"));
  RETURN_IF_FAILED(check(cudaMalloc(reinterpret_cast<void**>(&s.dev_seq_lengths), lengths.size() * sizeof(int)),
                         "cudaMalloc seq lengths"));
  RETURN_IF_FAILED(check(cudaMemcpy(s.dev_seq_lengths, lengths.data(), lengths.size() * sizeof(int),
                                    cudaMemcpyHostToDevice),
                         "cudaMemcpy seq lengths"));
  // Random weights and biases in [-1/sqrt(H), 1/sqrt(H)] (PyTorch's initialisation range); the whole space at once.
  const float scale = 1.0f / std::sqrt(static_cast<float>(H));
  RETURN_IF_FAILED(fill_uniform(s.weights, s.weight_bytes / es, shape.dtype, scale, 0xC0DEull, stream));
  return check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

Outcome CudnnDirect::run(const void* x) {
  State& s = *s_;
  if (!s.rnn) return "CudnnDirect::run before a successful setup";
  return check(cudnnRNNForward(s.handle, s.rnn, CUDNN_FWD_MODE_INFERENCE, s.dev_seq_lengths, s.x_desc, x, s.y_desc,
                               s.y, s.h_desc, nullptr, s.hy, s.c_desc, nullptr, s.cy, s.weight_bytes, s.weights,
                               s.workspace_bytes, s.workspace, s.reserve_bytes, s.reserve),
               "cudnnRNNForward", s.algo);
}

void* CudnnDirect::y() const { return s_->y; }
void* CudnnDirect::hy() const { return s_->hy; }
void* CudnnDirect::cy() const { return s_->cy; }
std::size_t CudnnDirect::y_elems() const { return s_->y_elems; }
std::size_t CudnnDirect::hy_elems() const { return s_->hy_elems; }
std::size_t CudnnDirect::cy_elems() const { return s_->cy_elems; }
std::size_t CudnnDirect::device_bytes() const {
  return s_->weight_bytes + s_->workspace_bytes + s_->reserve_bytes + s_->y_bytes + s_->hy_bytes + s_->cy_bytes;
}

#else  // !CULSTM_WITH_CUDNN

struct CudnnDirect::State {};
std::vector<std::string> cudnn_algorithm_names() { return {}; }
std::string cudnn_version_string() { return "not built (CULSTM_WITH_CUDNN=OFF)"; }
bool cudnn_built() { return false; }
CudnnDirect::CudnnDirect() : s_(new State) {}
CudnnDirect::~CudnnDirect() = default;
Outcome CudnnDirect::setup(const RnnShape&, const std::string&, cudaStream_t) {
  return "culstm_bench was built without cuDNN (CULSTM_WITH_CUDNN=OFF)";
}
Outcome CudnnDirect::run(const void*) { return "built without cuDNN"; }
void* CudnnDirect::y() const { return nullptr; }
void* CudnnDirect::hy() const { return nullptr; }
void* CudnnDirect::cy() const { return nullptr; }
std::size_t CudnnDirect::y_elems() const { return 0; }
std::size_t CudnnDirect::hy_elems() const { return 0; }
std::size_t CudnnDirect::cy_elems() const { return 0; }
std::size_t CudnnDirect::device_bytes() const { return 0; }

#endif

}  // namespace culstm_bench
