// A small inference server around culstm, the way one is usually built:
//   - the model is loaded from a safetensors file once and shared (read-only) by every worker thread;
//   - each worker owns a Context, a CUDA stream (none for the CPU reference backend), a workspace and I/O buffers,
//     all allocated once, so serving a request allocates nothing in culstm;
//   - requests of different lengths are batched: padded to the longest, with per-sequence lengths.
// At the end every request's output is checked against the same request run alone (batch of 1): bit for bit on the
// reference backend, within 1e-4 on GPU backends (their GEMMs may sum in a batch-size-dependent order).
//
// usage: culstm_server_example MODEL.safetensors [--prefix P] [--threads N] [--requests N] [--max-batch N]
//                              [--max-steps N] [--backend auto|reference|cuda|cudnn]
//        culstm_server_example --make-model MODEL.safetensors [same options]   (writes a random model first)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <culstm/culstm.hpp>
#include <culstm/model_file.h>

namespace {

struct Options {
  std::string model_path, prefix;
  bool make_model = false;
  int threads = 4;
  int requests = 64;
  std::int64_t max_batch = 8;
  std::int64_t max_steps = 64;
  culstm::Backend backend = culstm::Backend::kAuto;
};

struct Request {
  int id = 0;
  std::int64_t steps = 0;
  std::vector<float> x;  // [steps, I]
  std::vector<float> y;  // [steps, D*R], filled by a worker
  int batch_size = 0;    // how many requests shared its batch
};

// A queue of pending requests; workers take up to max_batch at a time.
class Queue {
 public:
  void push(Request* r) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(r);
    cv_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  // Up to `n` requests; empty when the queue is closed and drained.
  std::vector<Request*> take(std::int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !pending_.empty(); });
    std::vector<Request*> batch;
    while (!pending_.empty() && static_cast<std::int64_t>(batch.size()) < n) {
      batch.push_back(pending_.front());
      pending_.pop_front();
    }
    return batch;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request*> pending_;
  bool closed_ = false;
};

bool check(const culstm::Status& st, const char* what) {
  if (!st.ok()) std::fprintf(stderr, "culstm_server_example: %s: %s\n", what, st.to_string().c_str());
  return st.ok();
}

bool check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) std::fprintf(stderr, "culstm_server_example: %s: %s\n", what, cudaGetErrorString(err));
  return err == cudaSuccess;
}

// Everything one worker owns: a Context, a stream, and buffers for the largest batch. On the reference backend
// the tensors live on the host; on GPU backends in device memory, staged through host buffers.
class Worker {
 public:
  Worker(const culstm::Model& model, std::int64_t max_batch, std::int64_t max_steps)
      : model_(model), max_batch_(max_batch), max_steps_(max_steps) {}
  ~Worker() {
    if (on_device_) {
      for (void* p : {d_x_, d_y_, d_workspace_}) cudaFree(p);
      if (stream_) cudaStreamDestroy(stream_);
    }
  }

  bool init() {
    const culstm::LstmSpec& spec = model_.spec();
    on_device_ = model_.backend() != culstm::Backend::kReference;
    if (!check(culstm::Context::create(model_, &ctx_), "Context::create")) return false;
    if (!check(model_.workspace_size(max_batch_, max_steps_, &workspace_bytes_), "workspace_size")) return false;
    x_.resize(static_cast<std::size_t>(max_batch_ * max_steps_ * spec.input_size));
    y_.resize(static_cast<std::size_t>(max_batch_ * max_steps_ * spec.output_size()));
    lengths_.resize(static_cast<std::size_t>(max_batch_));
    if (!on_device_) {
      workspace_.resize(workspace_bytes_);
      return true;
    }
    if (!check_cuda(cudaSetDevice(model_.options().device), "cudaSetDevice")) return false;
    return check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate") &&
           check_cuda(cudaMalloc(&d_x_, x_.size() * sizeof(float)), "cudaMalloc x") &&
           check_cuda(cudaMalloc(&d_y_, y_.size() * sizeof(float)), "cudaMalloc y") &&
           check_cuda(cudaMalloc(&d_workspace_, std::max<std::size_t>(workspace_bytes_, 1)), "cudaMalloc workspace");
  }

  // Pads the requests to the longest, runs them as one batch, and writes each request's y.
  bool serve(const std::vector<Request*>& batch) {
    const culstm::LstmSpec& spec = model_.spec();
    const bool batch_major = spec.layout == culstm::BatchLayout::kBatchMajor;
    const std::int64_t B = static_cast<std::int64_t>(batch.size()), I = spec.input_size, Y = spec.output_size();
    std::int64_t T = 1;
    for (const Request* r : batch) T = std::max(T, r->steps);
    std::fill(x_.begin(), x_.begin() + T * B * I, 0.0f);
    for (std::int64_t b = 0; b < B; ++b) {
      const Request& r = *batch[static_cast<std::size_t>(b)];
      lengths_[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(r.steps);
      for (std::int64_t t = 0; t < r.steps; ++t) {
        const std::int64_t row = batch_major ? b * T + t : t * B + b;
        std::copy_n(&r.x[static_cast<std::size_t>(t * I)], I, &x_[static_cast<std::size_t>(row * I)]);
      }
    }
    float* x = on_device_ ? static_cast<float*>(d_x_) : x_.data();
    float* y = on_device_ ? static_cast<float*>(d_y_) : y_.data();
    const culstm::MemoryKind where = on_device_ ? culstm::MemoryKind::kDevice : culstm::MemoryKind::kHost;
    culstm::ForwardArgs args;
    args.x = batch_major ? culstm::TensorView(x, spec.dtype, where, {B, T, I})
                         : culstm::TensorView(x, spec.dtype, where, {T, B, I});
    args.lengths = culstm::TensorView::host(lengths_.data(), culstm::DType::kI32, {B});  // always on the host
    args.y = batch_major ? culstm::TensorView(y, spec.dtype, where, {B, T, Y})
                         : culstm::TensorView(y, spec.dtype, where, {T, B, Y});
    args.workspace = on_device_ ? d_workspace_ : workspace_.data();
    args.workspace_bytes = workspace_bytes_;
    if (on_device_ && !check_cuda(cudaMemcpyAsync(d_x_, x_.data(), static_cast<std::size_t>(T * B * I) * sizeof(float),
                                                  cudaMemcpyHostToDevice, stream_),
                                  "upload x")) {
      return false;
    }
    if (!check(culstm::forward(*ctx_, model_, args, stream_), "forward")) return false;
    if (on_device_ &&
        !(check_cuda(cudaMemcpyAsync(y_.data(), d_y_, static_cast<std::size_t>(T * B * Y) * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_),
                     "download y") &&
          check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"))) {
      return false;
    }
    for (std::int64_t b = 0; b < B; ++b) {
      Request& r = *batch[static_cast<std::size_t>(b)];
      r.y.resize(static_cast<std::size_t>(r.steps * Y));
      r.batch_size = static_cast<int>(B);
      for (std::int64_t t = 0; t < r.steps; ++t) {
        const std::int64_t row = batch_major ? b * T + t : t * B + b;
        std::copy_n(&y_[static_cast<std::size_t>(row * Y)], Y, &r.y[static_cast<std::size_t>(t * Y)]);
      }
    }
    return true;
  }

 private:
  const culstm::Model& model_;
  std::int64_t max_batch_, max_steps_;
  bool on_device_ = false;
  std::unique_ptr<culstm::Context> ctx_;
  cudaStream_t stream_ = nullptr;  // nullptr for the reference backend (ignored there)
  std::size_t workspace_bytes_ = 0;
  std::vector<float> x_, y_;
  std::vector<std::int32_t> lengths_;
  std::vector<std::uint8_t> workspace_;
  void* d_x_ = nullptr;
  void* d_y_ = nullptr;
  void* d_workspace_ = nullptr;
};

bool parse(int argc, char** argv, Options* o) {
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    const bool has_value = k + 1 < argc;
    if (a == "--make-model" && has_value) {
      o->make_model = true;
      o->model_path = argv[++k];
    } else if (a == "--prefix" && has_value) {
      o->prefix = argv[++k];
    } else if (a == "--threads" && has_value) {
      o->threads = std::atoi(argv[++k]);
    } else if (a == "--requests" && has_value) {
      o->requests = std::atoi(argv[++k]);
    } else if (a == "--max-batch" && has_value) {
      o->max_batch = std::atoll(argv[++k]);
    } else if (a == "--max-steps" && has_value) {
      o->max_steps = std::atoll(argv[++k]);
    } else if (a == "--backend" && has_value) {
      const std::string b = argv[++k];
      if (b == "auto") o->backend = culstm::Backend::kAuto;
      else if (b == "reference") o->backend = culstm::Backend::kReference;
      else if (b == "cuda") o->backend = culstm::Backend::kCuda;
      else if (b == "cudnn") o->backend = culstm::Backend::kCudnn;
      else return false;
    } else if (!a.empty() && a[0] != '-' && o->model_path.empty()) {
      o->model_path = a;
    } else {
      return false;
    }
  }
  return !o->model_path.empty() && o->threads >= 1 && o->requests >= 1 && o->max_batch >= 1 && o->max_steps >= 1;
}

// A random 2-layer model, written the way a converted PyTorch nn.LSTM would be.
bool write_random_model(const std::string& path) {
  culstm::LstmSpec spec;
  spec.input_size = 40;
  spec.hidden_size = 64;
  spec.num_layers = 2;
  culstm::Weights w = culstm::Weights::zeros_for(spec);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-0.125f, 0.125f);  // PyTorch's U(-1/sqrt(H), 1/sqrt(H))
  for (int l = 0; l < w.num_layers(); ++l) {
    culstm::LayerWeights& lw = w.at(l, 0);
    for (std::vector<float>* t : {&lw.w_ih, &lw.w_hh, &lw.b_ih, &lw.b_hh}) {
      for (float& v : *t) v = dist(rng);
    }
  }
  return check(culstm::save_model_file(path, spec, w), "save_model_file");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: culstm_server_example MODEL.safetensors | --make-model MODEL.safetensors\n"
                 "         [--prefix P] [--threads N] [--requests N] [--max-batch N] [--max-steps N]\n"
                 "         [--backend auto|reference|cuda|cudnn]\n");
    return 2;
  }
  if (opt.make_model && !write_random_model(opt.model_path)) return 1;

  // Load once; share the immutable Model between all workers.
  culstm::LstmSpec spec;
  culstm::Weights weights;
  if (!check(culstm::load_model_file(opt.model_path, opt.prefix, &spec, &weights), "load_model_file")) return 1;
  if (spec.dtype != culstm::DType::kF32) {
    std::fprintf(stderr, "culstm_server_example: this example serves f32 models; the file's is %s\n",
                 culstm::dtype_name(spec.dtype));
    return 1;
  }
  culstm::ModelOptions options;
  options.backend = opt.backend;
  options.max_batch = opt.max_batch;
  options.max_seq_len = opt.max_steps;
  std::shared_ptr<const culstm::Model> model;
  if (!check(culstm::Model::create(spec, weights, options, &model), "Model::create")) return 1;
  std::printf("culstm %s, model %s\nbackend %s, %d worker threads, batches of up to %lld\n", culstm::version(),
              spec.describe().c_str(), culstm::backend_name(model->backend()), opt.threads,
              static_cast<long long>(opt.max_batch));

  // Requests of random lengths in [1, max_steps].
  std::mt19937 rng(42);
  std::uniform_int_distribution<std::int64_t> length(1, opt.max_steps);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<Request> requests(static_cast<std::size_t>(opt.requests));
  for (int k = 0; k < opt.requests; ++k) {
    Request& r = requests[static_cast<std::size_t>(k)];
    r.id = k;
    r.steps = length(rng);
    r.x.resize(static_cast<std::size_t>(r.steps * spec.input_size));
    for (float& v : r.x) v = value(rng);
  }

  // Workers: set up first (Context, stream, buffers), then serve batches from the queue.
  Queue queue;
  std::mutex stats_mu;
  int batches = 0;
  bool ok = true;
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < opt.threads; ++t) {
    threads.emplace_back([&] {
      Worker worker(*model, opt.max_batch, opt.max_steps);
      bool worker_ok = worker.init();
      for (;;) {
        std::vector<Request*> batch = queue.take(opt.max_batch);
        if (batch.empty()) break;
        if (worker_ok) worker_ok = worker.serve(batch);
        std::lock_guard<std::mutex> lock(stats_mu);
        ++batches;
        ok = ok && worker_ok;
      }
      std::lock_guard<std::mutex> lock(stats_mu);
      ok = ok && worker_ok;
    });
  }
  for (Request& r : requests) queue.push(&r);
  queue.close();
  for (std::thread& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!ok) return 1;
  std::int64_t steps = 0;
  for (const Request& r : requests) steps += r.steps;
  std::printf("served %d requests (%lld steps) in %d batches (%.1f requests per batch) in %.3f s\n", opt.requests,
              static_cast<long long>(steps), batches, static_cast<double>(opt.requests) / batches, seconds);

  // Check: each request alone (a batch of 1) gives the same output.
  Worker single(*model, 1, opt.max_steps);
  if (!single.init()) return 1;
  const bool exact = model->backend() == culstm::Backend::kReference;
  double max_diff = 0.0;
  int mismatches = 0;
  for (const Request& r : requests) {
    Request alone;
    alone.steps = r.steps;
    alone.x = r.x;
    std::vector<Request*> one = {&alone};
    if (!single.serve(one)) return 1;
    double diff = 0.0;
    for (std::size_t k = 0; k < r.y.size(); ++k) {
      const double d = std::fabs(static_cast<double>(r.y[k]) - alone.y[k]);
      diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    }
    max_diff = std::max(max_diff, diff);
    if (exact ? std::memcmp(r.y.data(), alone.y.data(), r.y.size() * sizeof(float)) != 0 : !(diff <= 1e-4)) {
      if (mismatches++ < 5) {
        std::fprintf(stderr, "request %d (T=%lld, batch of %d): differs from running alone by %g\n", r.id,
                     static_cast<long long>(r.steps), r.batch_size, diff);
      }
    }
  }
  const Request& first = requests[0];
  std::printf("request 0: T=%lld, y[T-1][:4] =", static_cast<long long>(first.steps));
  for (std::int64_t k = 0; k < std::min<std::int64_t>(4, spec.output_size()); ++k) {
    std::printf(" %.6f", first.y[static_cast<std::size_t>((first.steps - 1) * spec.output_size() + k)]);
  }
  std::printf("\n");
  if (mismatches) {
    std::printf("FAILED: %d of %d requests differ from their single-request run (max |diff| %g)\n", mismatches,
                opt.requests, max_diff);
    return 1;
  }
  std::printf("all %d requests match their single-request run (%s, max |diff| %g)\n", opt.requests,
              exact ? "bit for bit" : "within 1e-4", max_diff);
  return 0;
}
