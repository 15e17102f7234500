// culstm._culstm: the nanobind extension behind the `culstm` Python package (DESIGN.md §7).
// It maps Python arguments onto the public C++ API (include/culstm/) and maps results back; it never validates what
// the library validates, nor computes anything the library computes. Every failure reaches Python as a StatusError,
// which the translator below raises as the culstm.Error subclass registered for its StatusCode.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "culstm/culstm.hpp"
#include "culstm/model_file.h"

namespace nb = nanobind;

namespace culstm {
namespace python {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Errors: one C++ exception type carries the StatusCode and the library's message to the translator.

struct StatusError : std::exception {
  StatusError(StatusCode c, std::string m) : code(c), message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
  StatusCode code;
  std::string message;
};

[[noreturn]] void fail(StatusCode code, const std::string& message) { throw StatusError(code, message); }

void check(const Status& st) {
  if (!st.ok()) fail(st.code(), st.message());
}

// StatusCode -> Python exception class, filled once by culstm/_errors.py at import.
std::map<int, nb::object>& error_classes() {
  static auto* classes = new std::map<int, nb::object>();  // never destroyed: outlives interpreter teardown order
  return *classes;
}

// The StatusCodes the library defines (all but kOk): contiguous from 1 until status_code_name says "Unknown".
std::vector<std::pair<int, std::string>> status_codes() {
  std::vector<std::pair<int, std::string>> codes;
  for (int c = 1;; ++c) {
    const std::string name = status_code_name(static_cast<StatusCode>(c));
    if (name == "Unknown") break;
    codes.emplace_back(c, name);
  }
  return codes;
}

// ---------------------------------------------------------------------------------------------------------------
// Enumerations by name: the library's own *_name() functions are the only spelling, so parsing walks the values.

template <typename E>
E parse_enum(const char* what, const std::string& text, const char* (*name)(E), std::initializer_list<E> values) {
  std::string known;
  for (E v : values) {
    if (text == name(v)) return v;
    known += known.empty() ? "" : ", ";
    known += name(v);
  }
  fail(StatusCode::kInvalidArgument, std::string(what) + ": unknown value '" + text + "' (expected one of: " +
                                         known + ")");
}

Direction parse_direction(const std::string& s) {
  return parse_enum("direction", s, direction_name,
                    {Direction::kForward, Direction::kReverse, Direction::kBidirectional});
}
BatchLayout parse_layout(const std::string& s) {
  return parse_enum("layout", s, layout_name, {BatchLayout::kSeqMajor, BatchLayout::kBatchMajor});
}
MathMode parse_math(const std::string& s) {
  return parse_enum("math", s, math_mode_name, {MathMode::kStrictF32, MathMode::kAllowTF32});
}
// Model storage types: the ones LstmSpec::validate accepts are decided by the library, not here.
DType parse_dtype(const std::string& s) {
  return parse_enum("dtype", s, dtype_name,
                    {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kI64});
}
Backend parse_backend(const std::string& s) {
  return parse_enum("backend", s, backend_name, {Backend::kAuto, Backend::kReference, Backend::kCuda, Backend::kCudnn});
}
CudaEngine parse_engine(const std::string& s) {
  return parse_enum("cuda_engine", s, cuda_engine_name,
                    {CudaEngine::kAuto, CudaEngine::kStepwise, CudaEngine::kPersistent});
}
CudnnAlgo parse_cudnn_algo(const std::string& s) {
  return parse_enum("cudnn_algo", s, cudnn_algo_name,
                    {CudnnAlgo::kAuto, CudnnAlgo::kStandard, CudnnAlgo::kPersistStatic,
                     CudnnAlgo::kPersistStaticSmallH, CudnnAlgo::kPersistDynamic});
}

// An activation by name with the library's default alpha/beta for that kind (activation.h's factories).
Activation make_activation(const std::string& name, std::optional<float> alpha, std::optional<float> beta) {
  ActivationKind kind;
  if (!activation_kind_from_name(name.c_str(), &kind)) {
    fail(StatusCode::kInvalidArgument, "activation: unknown name '" + name + "'");
  }
  Activation a;
  switch (kind) {
    case ActivationKind::kSigmoid: a = Activation::sigmoid(); break;
    case ActivationKind::kTanh: a = Activation::tanh(); break;
    case ActivationKind::kRelu: a = Activation::relu(); break;
    case ActivationKind::kAffine: a = Activation::affine(1.0f, 0.0f); break;
    case ActivationKind::kLeakyRelu: a = Activation::leaky_relu(); break;
    case ActivationKind::kThresholdedRelu: a = Activation::thresholded_relu(); break;
    case ActivationKind::kScaledTanh: a = Activation::scaled_tanh(); break;
    case ActivationKind::kHardSigmoid: a = Activation::hard_sigmoid(); break;
    case ActivationKind::kElu: a = Activation::elu(); break;
    case ActivationKind::kSoftsign: a = Activation::softsign(); break;
    case ActivationKind::kSoftplus: a = Activation::softplus(); break;
  }
  if (alpha) a.alpha = *alpha;
  if (beta) a.beta = *beta;
  return a;
}

// ---------------------------------------------------------------------------------------------------------------
// Arrays: any DLPack producer or buffer-protocol object, viewed as a culstm::TensorView without copying.

using Array = nb::ndarray<nb::ro>;  // inputs and outputs alike; outputs are checked for writability separately

std::string device_text(const Array& a) {
  if (a.device_type() == nb::device::cpu::value) return "cpu";
  std::ostringstream s;
  if (a.device_type() == nb::device::cuda::value) {
    s << "cuda:" << a.device_id();
  } else if (a.device_type() == nb::device::cuda_host::value) {
    s << "cuda_host";
  } else if (a.device_type() == nb::device::cuda_managed::value) {
    s << "cuda_managed:" << a.device_id();
  } else {
    s << "DLPack device type " << a.device_type();
  }
  return s.str();
}

// Host memory for CPU and pinned arrays; device memory for CUDA and managed ones; anything else is refused.
MemoryKind memory_of(const char* what, const Array& a) {
  const int type = a.device_type();
  if (type == nb::device::cpu::value || type == nb::device::cuda_host::value) return MemoryKind::kHost;
  if (type == nb::device::cuda::value || type == nb::device::cuda_managed::value) return MemoryKind::kDevice;
  fail(StatusCode::kDeviceMismatch, std::string(what) + ": arrays on " + device_text(a) +
                                        " are not supported (culstm takes CPU or CUDA memory)");
}

DType dtype_of(const char* what, const Array& a) {
  const nb::dlpack::dtype d = a.dtype();
  if (d.lanes == 1) {
    if (d == nb::dtype<float>()) return DType::kF32;
    if (d == nb::dtype<double>()) return DType::kF64;
    if (d == nb::dtype<std::int32_t>()) return DType::kI32;
    if (d == nb::dtype<std::int64_t>()) return DType::kI64;
    if (d.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Float) && d.bits == 16) return DType::kF16;
    if (d.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Bfloat) && d.bits == 16) return DType::kBF16;
  }
  std::ostringstream s;
  s << what << ": element type (DLPack code " << int(d.code) << ", " << int(d.bits) << " bits, " << d.lanes
    << " lanes) is none of f32, f16, bf16, f64, i32, i64";
  fail(StatusCode::kDtypeMismatch, s.str());
}

// TensorView is dense and row-major: an array with any other strides is refused (the caller makes it contiguous).
void check_contiguous(const char* what, const Array& a) {
  std::int64_t expected = 1;
  bool empty = false;
  for (size_t i = 0; i < a.ndim(); ++i) empty = empty || a.shape(i) == 0;
  if (empty) return;  // no element is addressed: any strides describe the same (empty) array
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected) {
      std::ostringstream s;
      s << what << ": must be C-contiguous (dense, row-major); got strides (";
      for (size_t k = 0; k < a.ndim(); ++k) s << (k ? ", " : "") << a.stride(k);
      s << ") elements for shape (";
      for (size_t k = 0; k < a.ndim(); ++k) s << (k ? ", " : "") << a.shape(k);
      s << ")";
      fail(StatusCode::kInvalidArgument, s.str());
    }
    expected *= static_cast<std::int64_t>(a.shape(i));
  }
}

// nanobind marks a DLPack capsule it consumed as used (renames it) only when it is handed the capsule itself; from
// the capsule a __dlpack__() call returns it only clears the destructor. A producer that returns one capsule it
// keeps (a protocol violation, but Python code can do it) would then have its tensor imported, and freed, once per
// call: a use-after-free. So every array is imported from a capsule exported here, which nanobind renames, and a
// capsule handed out again is refused as no array. The exports are the ones nanobind asks for: unversioned for
// reading, versioned (which carries the read-only flag) for writing, the other when that fails; an object without
// __dlpack__, or whose __dlpack__ fails, is given to nanobind as it is (the buffer protocol).
nb::object dlpack_source(nb::handle obj, bool writable) {
  if (PyCapsule_CheckExact(obj.ptr()) || !nb::hasattr(obj, "__dlpack__")) return nb::borrow(obj);
  auto attempt = [&](bool versioned) -> nb::object {
    try {
      nb::object export_fn = obj.attr("__dlpack__");
      if (!versioned) return export_fn();
      return export_fn(nb::arg("max_version") = nb::make_tuple(nb::dlpack::major_version, nb::dlpack::minor_version));
    } catch (const nb::python_error&) {
      return nb::object();
    }
  };
  nb::object capsule = attempt(writable);
  if (!capsule.is_valid()) capsule = attempt(!writable);
  return capsule.is_valid() ? capsule : nb::borrow(obj);
}

// obj as an nb::ndarray of type A (no conversion), through dlpack_source.
template <typename A>
bool import_array(nb::handle obj, A& out, bool writable) {
  return nb::try_cast(dlpack_source(obj, writable), out, /*convert=*/false);
}

// One argument of forward(): absent (None) or an array viewed in place.
struct Arg {
  std::optional<Array> array;
  TensorView view;
};

Arg to_arg(const char* what, nb::handle obj, bool output) {
  Arg arg;
  if (obj.is_none()) return arg;
  Array a;
  // An output is imported as writable memory: nanobind then refuses what its producer marks read-only (a read-only
  // NumPy array, a memoryview of a bytes object, a DLPack 1.0 tensor flagged read-only) instead of culstm writing
  // through it. The read-only import after a refusal only tells "read-only" from "not an array".
  nb::ndarray<> writable;
  const bool imported = output ? import_array(obj, writable, true) : import_array(obj, a, false);
  if (output && imported) a = Array(writable);
  if (!imported && output && import_array(obj, a, false)) {
    fail(StatusCode::kInvalidArgument, std::string(what) + ": the output array is read-only");
  }
  if (!imported) {
    std::string why;
    if (nb::hasattr(obj, "__dlpack__")) {
      // A producer that refuses to export (a tensor that requires grad, a meta tensor, ...) says why: pass it on.
      try {
        obj.attr("__dlpack__")();
      } catch (const nb::python_error& e) {
        why = std::string(" (its __dlpack__() failed: ") + nb::str(e.type().attr("__name__")).c_str() + ": " +
              nb::str(e.value()).c_str() + ")";
      }
    }
    fail(StatusCode::kInvalidArgument,
         std::string(what) + ": expected an array (DLPack or buffer protocol), got " +
             nb::cast<std::string>(nb::str(obj.type().attr("__qualname__"))) + why);
  }
  if (a.ndim() > static_cast<size_t>(TensorView::kMaxRank)) {
    fail(StatusCode::kShapeMismatch, std::string(what) + ": rank " + std::to_string(a.ndim()) +
                                         " is more than a culstm tensor has (at most " +
                                         std::to_string(TensorView::kMaxRank) + ")");
  }
  arg.view.memory = memory_of(what, a);
  arg.view.dtype = dtype_of(what, a);
  check_contiguous(what, a);
  arg.view.rank = static_cast<int>(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) arg.view.shape[i] = static_cast<std::int64_t>(a.shape(i));
  arg.view.data = const_cast<void*>(a.data());
  arg.array = std::move(a);
  return arg;
}

// ---------------------------------------------------------------------------------------------------------------
// Device memory for workspaces: stream-ordered, so that growing never races with work still queued on that stream.

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

  static void check_cuda(cudaError_t err, const char* call) {
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // consume it: the next caller must not be blamed for this one
      fail(StatusCode::kCudaError, std::string(call) + ": " + cudaGetErrorString(err));
    }
  }

 private:
  int previous_ = 0;
};

// One Context per (thread, backend model, stream) with its workspace, grown only when a larger (B, T) needs more.
struct Slot {
  std::unique_ptr<Context> context;
  std::vector<unsigned char> host_workspace;
  void* device_workspace = nullptr;
  std::size_t device_bytes = 0;
  int device = 0;

  ~Slot() {
    if (device_workspace != nullptr) {
      int previous = 0;
      if (cudaGetDevice(&previous) == cudaSuccess) {
        (void)cudaSetDevice(device);
        (void)cudaFree(device_workspace);  // synchronizes: queued work that used it has finished first
        (void)cudaSetDevice(previous);
      }
      (void)cudaGetLastError();
    }
  }

  // Returns the workspace pointer for `bytes` on the model's memory.
  void* workspace(bool on_device, std::size_t bytes, Stream stream) {
    if (bytes == 0) return nullptr;
    if (!on_device) {
      if (host_workspace.size() < bytes) host_workspace.resize(bytes);
      return host_workspace.data();
    }
    if (device_bytes < bytes) {
      DeviceGuard guard(device);
      auto* s = reinterpret_cast<cudaStream_t>(stream);
      if (device_workspace != nullptr) {
        DeviceGuard::check_cuda(cudaFreeAsync(device_workspace, s), "cudaFreeAsync (workspace)");
        device_workspace = nullptr;
        device_bytes = 0;
      }
      DeviceGuard::check_cuda(cudaMallocAsync(&device_workspace, bytes, s), "cudaMallocAsync (workspace)");
      device_bytes = bytes;
    }
    return device_workspace;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// The model as Python sees it: a spec and host weights, and one C++ Model per (backend, device) it has run on.

struct Limits {
  std::int64_t max_batch = ModelOptions().max_batch;
  std::int64_t max_seq_len = ModelOptions().max_seq_len;
};

class PyModel {
 public:
  PyModel(const LstmSpec& spec, const Weights& weights, const std::string& backend, int device, std::int64_t max_batch,
          std::int64_t max_seq_len, const std::string& cuda_engine, const std::string& cudnn_algo)
      : spec_(spec), weights_(weights) {
    options_.backend = parse_backend(backend);
    options_.device = device;
    options_.max_batch = max_batch;
    options_.max_seq_len = max_seq_len;
    options_.cuda_engine = parse_engine(cuda_engine);
    options_.cudnn_algo = parse_cudnn_algo(cudnn_algo);
    // Built now so that a bad spec, bad weights or options fail here rather than at the first forward: the
    // reference model when the backend follows the data, else the named backend on `device`.
    const Backend home = options_.backend == Backend::kAuto ? Backend::kReference : options_.backend;
    nb::gil_scoped_release release;
    home_ = model_for(home, device);
  }

  const LstmSpec& spec() const { return spec_; }
  const Weights& weights() const { return weights_; }
  std::string backend() const { return backend_name(options_.backend); }
  std::int64_t max_batch() const { return options_.max_batch; }
  std::int64_t max_seq_len() const { return options_.max_seq_len; }

  std::string plan(std::optional<std::string> device) {
    std::shared_ptr<const Model> model;
    {
      nb::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(close_mutex_);
      check_open();
      if (!device) {
        model = home_;
      } else {
        const auto [memory, ordinal] = parse_device(*device);
        model = model_for(backend_for(memory), ordinal);
      }
    }
    return model->plan().explain();
  }

  // Bytes of workspace forward() needs on `device` ("cpu", "cuda:N") for this batch and sequence length.
  std::size_t workspace_size(const std::string& device, std::int64_t batch, std::int64_t seq_len) {
    std::shared_ptr<const Model> model;
    {
      nb::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(close_mutex_);
      check_open();
      const auto [memory, ordinal] = parse_device(device);
      model = model_for(backend_for(memory), ordinal);
    }
    std::size_t bytes = 0;
    check(model->workspace_size(batch, seq_len, &bytes));
    return bytes;
  }

  // `workspace`: None (this thread's Context keeps one per stream, grown when a larger (B, T) arrives) or a
  // caller's contiguous buffer where x is, e.g. from a framework's stream-ordered allocator, which is what a CUDA
  // graph capture needs: the graph then owns the memory its kernels use.
  void forward(nb::handle x, nb::handle lengths, nb::handle h0, nb::handle c0, nb::handle y, nb::handle h_n,
               nb::handle c_n, nb::handle workspace, std::uintptr_t stream_handle, float padding_value) {
    ForwardArgs args;
    Arg ax = to_arg("x", x, false), al = to_arg("lengths", lengths, false), ah0 = to_arg("h0", h0, false),
        ac0 = to_arg("c0", c0, false), ay = to_arg("y", y, true), ahn = to_arg("h_n", h_n, true),
        acn = to_arg("c_n", c_n, true);
    if (!ax.array) fail(StatusCode::kNullPointer, "x: required, got None");
    // Every data array lives where x does (lengths is host memory for every backend: the library checks it).
    for (const auto& [name, arg] : {std::pair<const char*, const Arg*>{"h0", &ah0}, {"c0", &ac0}, {"y", &ay},
                                    {"h_n", &ahn}, {"c_n", &acn}}) {
      if (arg->array && (arg->array->device_type() != ax.array->device_type() ||
                         arg->array->device_id() != ax.array->device_id())) {
        fail(StatusCode::kDeviceMismatch, std::string(name) + ": on " + device_text(*arg->array) + " but x is on " +
                                              device_text(*ax.array));
      }
    }
    std::optional<Array> caller_workspace;
    if (!workspace.is_none()) {
      Array w;
      if (!import_array(workspace, w, false)) {
        fail(StatusCode::kInvalidArgument, "workspace: expected an array (DLPack or buffer protocol)");
      }
      check_contiguous("workspace", w);
      if (w.device_type() != ax.array->device_type() || w.device_id() != ax.array->device_id()) {
        fail(StatusCode::kDeviceMismatch, "workspace: on " + device_text(w) + " but x is on " + device_text(*ax.array));
      }
      caller_workspace = std::move(w);
    }
    args.x = ax.view;
    args.lengths = al.view;
    args.h0 = ah0.view;
    args.c0 = ac0.view;
    args.y = ay.view;
    args.h_n = ahn.view;
    args.c_n = acn.view;
    args.padding_value = padding_value;
    const MemoryKind memory = ax.view.memory;
    const int ordinal = memory == MemoryKind::kDevice ? static_cast<int>(ax.array->device_id()) : 0;
    auto* stream = reinterpret_cast<Stream>(stream_handle);

    Status st;
    {
      nb::gil_scoped_release release;  // the arrays stay alive: ax..acn hold their references
      std::shared_lock<std::shared_mutex> lock(close_mutex_);
      check_open();
      std::shared_ptr<const Model> model = model_for(backend_for(memory), ordinal);
      Slot& slot = slot_for(model, stream);
      // (B, T) of x in the spec's layout; when x is malformed or above the model's limits the workspace size is
      // refused too, and forward() then names the real problem.
      const bool batch_major = spec_.layout == BatchLayout::kBatchMajor;
      const std::int64_t B = args.x.rank == 3 ? args.x.shape[batch_major ? 0 : 1] : 0;
      const std::int64_t T = args.x.rank == 3 ? args.x.shape[batch_major ? 1 : 0] : 0;
      std::size_t bytes = 0;
      if (!model->workspace_size(B, T, &bytes).ok()) bytes = 0;
      if (caller_workspace) {
        args.workspace = caller_workspace->size() ? const_cast<void*>(caller_workspace->data()) : nullptr;
        args.workspace_bytes = caller_workspace->nbytes();  // the library refuses one that is too small
      } else {
        args.workspace = slot.workspace(model->backend() != Backend::kReference, bytes, stream);
        args.workspace_bytes = bytes;
      }
      st = culstm::forward(*slot.context, *model, args, stream);
    }
    check(st);
  }

  void close() {
    nb::gil_scoped_release release;
    std::unique_lock<std::shared_mutex> lock(close_mutex_);  // waits for every forward in flight
    std::lock_guard<std::mutex> guard(mutex_);
    slots_.clear();
    models_.clear();
    home_.reset();
    closed_ = true;
  }
  bool closed() const { return closed_.load(); }

 private:
  void check_open() const {
    if (closed_) fail(StatusCode::kInvalidArgument, "the model is closed");
  }

  // "cpu", "cuda", "cuda:N".
  static std::pair<MemoryKind, int> parse_device(const std::string& d) {
    if (d == "cpu") return {MemoryKind::kHost, 0};
    if (d == "cuda") return {MemoryKind::kDevice, 0};
    if (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.find_first_not_of("0123456789", 5) == std::string::npos &&
        d.size() < 12) {
      return {MemoryKind::kDevice, std::stoi(d.substr(5))};
    }
    fail(StatusCode::kInvalidArgument, "device: expected 'cpu', 'cuda' or 'cuda:N', got '" + d + "'");
  }

  // Backend "auto" follows the data: host arrays on the reference backend, CUDA arrays on the cuda backend. A named
  // backend is used as it is; the library refuses arrays in the wrong memory (kDeviceMismatch).
  Backend backend_for(MemoryKind memory) const {
    if (options_.backend != Backend::kAuto) return options_.backend;
    return memory == MemoryKind::kHost ? Backend::kReference : Backend::kCuda;
  }

  std::shared_ptr<const Model> model_for(Backend backend, int device) {
    std::lock_guard<std::mutex> guard(mutex_);
    const auto key = std::make_pair(static_cast<int>(backend), backend == Backend::kReference ? 0 : device);
    auto it = models_.find(key);
    if (it != models_.end()) return it->second;
    ModelOptions options = options_;
    options.backend = backend;
    options.device = key.second;
    std::shared_ptr<const Model> model;
    check(Model::create(spec_, weights_, options, &model));
    models_.emplace(key, model);
    return model;
  }

  Slot& slot_for(const std::shared_ptr<const Model>& model, Stream stream) {
    std::lock_guard<std::mutex> guard(mutex_);
    const auto key = std::make_tuple(std::this_thread::get_id(), model.get(), reinterpret_cast<std::uintptr_t>(stream));
    auto it = slots_.find(key);
    if (it != slots_.end()) return *it->second;
    auto slot = std::make_unique<Slot>();
    slot->device = model->options().device;
    check(Context::create(*model, &slot->context));
    return *slots_.emplace(key, std::move(slot)).first->second;
  }

  LstmSpec spec_;
  Weights weights_;
  ModelOptions options_;
  std::shared_ptr<const Model> home_;
  std::shared_mutex close_mutex_;  // shared by forwards, exclusive for close()
  std::mutex mutex_;               // guards models_ and slots_
  std::map<std::pair<int, int>, std::shared_ptr<const Model>> models_;
  std::map<std::tuple<std::thread::id, const Model*, std::uintptr_t>, std::unique_ptr<Slot>> slots_;
  std::atomic<bool> closed_{false};
};

// ---------------------------------------------------------------------------------------------------------------
// Weights: the canonical host-side tensors of one (layer, direction), by field name.

std::vector<float>& weight_field(Weights& w, int layer, int dir, const std::string& name) {
  if (layer < 0 || layer >= w.num_layers() || dir < 0 || dir >= w.num_directions()) {
    fail(StatusCode::kInvalidArgument, "weights: (layer " + std::to_string(layer) + ", direction " +
                                           std::to_string(dir) + ") is outside " + std::to_string(w.num_layers()) +
                                           " layers x " + std::to_string(w.num_directions()) + " directions");
  }
  LayerWeights& lw = w.at(layer, dir);
  if (name == "w_ih") return lw.w_ih;
  if (name == "w_hh") return lw.w_hh;
  if (name == "b_ih") return lw.b_ih;
  if (name == "b_hh") return lw.b_hh;
  if (name == "w_hr") return lw.w_hr;
  if (name == "peephole") return lw.peephole;
  fail(StatusCode::kInvalidArgument,
       "weights: unknown tensor '" + name + "' (expected w_ih, w_hh, b_ih, b_hh, w_hr or peephole)");
}

// Weights with the spec's (layer, direction) entries and every tensor empty, for set() to fill: zeros_for(spec)
// would allocate every tensor at its full size before the caller's arrays are even looked at, which for a large
// spec is gigabytes (or an out-of-memory kill) spent on input the library then refuses. The spec is checked first,
// so that num_layers cannot ask for millions of entries either.
Weights empty_weights_for(const LstmSpec& spec) {
  check(spec.validate());
  LstmSpec entries_only = spec;
  entries_only.input_size = 0;
  entries_only.hidden_size = 0;
  entries_only.proj_size = 0;
  return Weights::zeros_for(entries_only);  // every size is 0: entries, no tensor data
}

using HostF32 = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

void set_weight(Weights& w, int layer, int dir, const std::string& name, nb::handle values) {
  std::vector<float>& field = weight_field(w, layer, dir, name);
  HostF32 a;
  if (!import_array(values, a, false)) {
    fail(StatusCode::kDtypeMismatch, "weights: " + name + " must be a C-contiguous float32 CPU array");
  }
  const std::size_t n = a.size();
  // Sizes are the library's to check (Weights::check_against names the tensor when Model is created).
  field.assign(a.data(), a.data() + n);
}

nb::ndarray<nb::numpy, float> get_weight(Weights& w, int layer, int dir, const std::string& name) {
  const std::vector<float>& field = weight_field(w, layer, dir, name);
  auto* copy = new std::vector<float>(field);
  nb::capsule owner(copy, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return nb::ndarray<nb::numpy, float>(copy->data(), {copy->size()}, owner);
}

}  // namespace
}  // namespace python
}  // namespace culstm

NB_MODULE(_culstm, m) {
  using namespace culstm;
  using namespace culstm::python;
  m.doc() = "culstm's C++ API for Python (use the `culstm` package, not this module)";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      auto& classes = error_classes();
      auto it = classes.find(static_cast<int>(e.code));
      PyObject* cls = it != classes.end() ? it->second.ptr() : PyExc_RuntimeError;
      // A message may quote bytes of a corrupt file (a name that is no UTF-8): they show as \xNN escapes.
      // PyErr_SetString would fail to decode them and raise the class with an empty message.
      PyObject* text = PyUnicode_DecodeUTF8(e.message.data(), static_cast<Py_ssize_t>(e.message.size()),
                                            "backslashreplace");
      PyErr_SetObject(cls, text);
      Py_XDECREF(text);
    }
  });

  m.def("status_codes", &status_codes, "[(code, name)] for every StatusCode but Ok");
  m.def("_register_error_class", [](int code, nb::object cls) { error_classes()[code] = std::move(cls); });
  m.def("version", []() { return std::string(version()); });
  m.def("info", &system_info);  // the text `culstm info` prints
  m.def("cuda_device_count", []() { return cuda_device_count(); });
  m.def("backend_available", [](const std::string& backend) {
    std::string why;
    const bool ok = backend_available(parse_backend(backend), &why);
    return std::make_pair(ok, why);
  });

  nb::class_<Activation>(m, "Activation")
      .def(nb::new_([](const std::string& kind, std::optional<float> alpha, std::optional<float> beta) {
             return make_activation(kind, alpha, beta);
           }),
           nb::arg("kind"), nb::arg("alpha") = nb::none(), nb::arg("beta") = nb::none())
      .def_prop_ro("kind", [](const Activation& a) { return std::string(activation_kind_name(a.kind)); })
      .def_ro("alpha", &Activation::alpha)
      .def_ro("beta", &Activation::beta)
      .def("__eq__", [](const Activation& a, const Activation& b) {
        return a.kind == b.kind && a.alpha == b.alpha && a.beta == b.beta;
      })
      .def("__repr__", [](const Activation& a) {
        std::ostringstream s;
        s << "Activation('" << activation_kind_name(a.kind) << "', alpha=" << a.alpha << ", beta=" << a.beta << ")";
        return s.str();
      });

  nb::class_<LstmSpec>(m, "_Spec")
      .def(nb::init<>())
      .def_rw("input_size", &LstmSpec::input_size)
      .def_rw("hidden_size", &LstmSpec::hidden_size)
      .def_rw("proj_size", &LstmSpec::proj_size)
      .def_rw("num_layers", &LstmSpec::num_layers)
      .def_rw("bias", &LstmSpec::bias)
      .def_rw("peepholes", &LstmSpec::peepholes)
      .def_rw("input_forget", &LstmSpec::input_forget)
      .def_rw("gate_activation", &LstmSpec::gate_activation)
      .def_rw("cell_activation", &LstmSpec::cell_activation)
      .def_rw("hidden_activation", &LstmSpec::hidden_activation)
      .def_rw("gate_clip", &LstmSpec::gate_clip)
      .def_rw("cell_clip", &LstmSpec::cell_clip)
      .def_prop_rw(
          "direction", [](const LstmSpec& s) { return std::string(direction_name(s.direction)); },
          [](LstmSpec& s, const std::string& v) { s.direction = parse_direction(v); })
      .def_prop_rw(
          "layout", [](const LstmSpec& s) { return std::string(layout_name(s.layout)); },
          [](LstmSpec& s, const std::string& v) { s.layout = parse_layout(v); })
      .def_prop_rw(
          "dtype", [](const LstmSpec& s) { return std::string(dtype_name(s.dtype)); },
          [](LstmSpec& s, const std::string& v) { s.dtype = parse_dtype(v); })
      .def_prop_rw(
          "math", [](const LstmSpec& s) { return std::string(math_mode_name(s.math)); },
          [](LstmSpec& s, const std::string& v) { s.math = parse_math(v); })
      .def("num_directions", &LstmSpec::num_directions)
      .def("recurrent_size", &LstmSpec::recurrent_size)
      .def("output_size", &LstmSpec::output_size)
      .def("validate", [](const LstmSpec& s) { check(s.validate()); })
      .def("describe", &LstmSpec::describe);

  nb::class_<Weights>(m, "_Weights")
      .def_static("empty_for", &empty_weights_for)
      .def_prop_ro("num_layers", &Weights::num_layers)
      .def_prop_ro("num_directions", &Weights::num_directions)
      .def("set", &set_weight)
      .def("get", &get_weight)
      .def("check_against", [](const Weights& w, const LstmSpec& s) { check(w.check_against(s)); });

  // The shape of an array as forward() would view it, or None for anything it would refuse as no array: what
  // Python allocates results from when x has no `shape` of its own (a bare DLPack producer).
  m.def("_shape_of", [](nb::handle obj) -> std::optional<std::vector<std::int64_t>> {
    Array a;
    if (!import_array(obj, a, false)) return std::nullopt;
    std::vector<std::int64_t> shape;
    for (size_t i = 0; i < a.ndim(); ++i) shape.push_back(static_cast<std::int64_t>(a.shape(i)));
    return shape;
  });
  m.def("load_model_file", [](const std::string& path, const std::string& prefix) {
    LstmSpec spec;
    Weights weights;
    check(load_model_file(path, prefix, &spec, &weights));
    return std::make_pair(spec, weights);
  });
  m.def("import_model_file", [](const std::string& path, const std::string& naming, const std::string& prefix,
                                const std::string& onnx_node) {
    LstmSpec spec;
    Weights weights;
    check(import_model_file(path, naming, prefix, onnx_node, &spec, &weights));
    return std::make_pair(spec, weights);
  });
  m.def("save_model_file", [](const std::string& path, const LstmSpec& spec, const Weights& weights) {
    check(save_model_file(path, spec, weights));
  });

  nb::class_<PyModel>(m, "_Model")
      .def(nb::init<const LstmSpec&, const Weights&, const std::string&, int, std::int64_t, std::int64_t,
                    const std::string&, const std::string&>())
      .def_prop_ro("spec", &PyModel::spec)
      .def_prop_ro("weights", &PyModel::weights)
      .def_prop_ro("backend", &PyModel::backend)
      .def_prop_ro("max_batch", &PyModel::max_batch)
      .def_prop_ro("max_seq_len", &PyModel::max_seq_len)
      .def_prop_ro("closed", &PyModel::closed)
      .def("plan", &PyModel::plan, nb::arg("device") = nb::none())
      .def("workspace_size", &PyModel::workspace_size)
      .def("forward", &PyModel::forward, nb::arg("x").none(), nb::arg("lengths").none(), nb::arg("h0").none(),
           nb::arg("c0").none(), nb::arg("y").none(), nb::arg("h_n").none(), nb::arg("c_n").none(), nb::arg("workspace").none(),
           nb::arg("stream"),
           nb::arg("padding_value"))
      .def("close", &PyModel::close);
}
