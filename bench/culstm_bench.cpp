// culstm_bench: times culstm's forward() against cuDNN's fastest RNN algorithm over a grid of LSTM configurations
// (issue 6), the way docs/design.md §6 and bench/README.md say: CUDA events on one stream, warm-up, >= 20 timed runs,
// inputs rotated through a pool larger than L2, no allocation in the timed loop; every runner's outputs verified
// before it is timed (NaN-filled outputs must be fully written, and culstm's values must match culstm's cudnn backend
// with the standard algorithm); per configuration the per-step latency, TFLOP/s, the speedup over cuDNN and the
// ratio to the floor (FLOPs over the measured GEMM rate, bytes over the measured copy bandwidth, the recurrence's
// per-step floor from sync_microbench). Writes a table to stdout and a JSON list of records (rewritten after every
// configuration, so a run cut short keeps what it measured).
//
//   culstm_bench [--quick] [--batch 1,8] [--hidden 512] [--steps 100] [--layers 1] [--dirs uni,bi]
//                [--dtypes f32,bf16] [--backends cuda,cudnn] [--budget-s 300] [--json out.json] ...   (--help)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bench_device.h"
#include "cudnn_direct.h"
#include "cuda/cuda_backend.h"  // internal: cuda_set_graph_mode, cuda_graph_stats (recorded per culstm cuda run)
#include "culstm/culstm.hpp"
#include "io/json.h"

#ifndef CULSTM_BENCH_COMMIT
#define CULSTM_BENCH_COMMIT "unknown"
#endif

namespace culstm_bench {
namespace {

namespace json = culstm::io::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------------------------
// The ModelOptions that select culstm's engines: cuda_engine (cuda backend) and cudnn_algo (cudnn backend).

bool set_engine(culstm::ModelOptions& options, const std::string& name) {
  if (name == "auto") options.cuda_engine = culstm::CudaEngine::kAuto;
  else if (name == "stepwise") options.cuda_engine = culstm::CudaEngine::kStepwise;
  else if (name == "persistent") options.cuda_engine = culstm::CudaEngine::kPersistent;
  else return false;
  return true;
}

bool set_cudnn_algo(culstm::ModelOptions& options, const std::string& name) {
  for (const culstm::CudnnAlgo a : {culstm::CudnnAlgo::kAuto, culstm::CudnnAlgo::kStandard,
                                    culstm::CudnnAlgo::kPersistStatic, culstm::CudnnAlgo::kPersistStaticSmallH,
                                    culstm::CudnnAlgo::kPersistDynamic}) {
    if (name == culstm::cudnn_algo_name(a)) {
      options.cudnn_algo = a;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Command line.

struct Options {
  std::vector<std::int64_t> batch{1, 8, 32, 64, 256};
  std::vector<std::int64_t> hidden{256, 512, 1024, 2048};
  std::vector<std::int64_t> steps{100, 1000};
  std::vector<std::int64_t> layers{1, 4};
  std::vector<std::string> dirs{"uni", "bi"};
  std::vector<std::string> dtypes{"f32", "bf16"};
  std::vector<std::string> backends{"cuda", "cudnn"};
  // culstm cuda engines: default (the backend's own choice) and each engine forced.
  std::vector<std::string> engines{"default", "stepwise", "persistent"};
  std::vector<std::string> algos{"standard", "persist_static", "persist_static_small_h", "persist_dynamic"};
  std::int64_t input = 0;  // 0: input_size = hidden
  std::int64_t proj = 0;
  std::string math = "strict";  // strict | tf32 (f32 only)
  std::string graphs;           // culstm cuda Contexts' CUDA-graph mode: off | auto | on; empty: the Context's default
  std::string order = "priority";
  std::string mode = "latency";  // latency: idle GPU before each call; throughput: calls back to back
  int warmup = 3;
  int min_runs = 20;
  int max_runs = 200;
  double target_ms = 300;  // timed time per measurement; runs = clamp(target / call, min_runs, max_runs)
  double budget_s = 0;     // 0: none
  double rotate_mb = 0;    // 0: 2 x L2
  int device = 0;
  std::string json_path = "culstm_bench.json";
  std::string sync_json;
  std::string commit = CULSTM_BENCH_COMMIT;
  std::string driver;
  bool ceilings = true;
  bool dry_run = false;
};

// The CUDA-graph mode of culstm's cuda Contexts, as recorded: --graphs when given (set on every Context right after
// Context::create), else the mode Context::create picks by itself: CULSTM_CUDA_GRAPHS=off|OFF|0 -> off, on|ON|1 -> on,
// anything else or unset -> auto (the rule of graph_mode_from_env() in src/cuda/cuda_backend.cpp).
std::string graph_mode_name(const Options& o) {
  if (!o.graphs.empty()) return o.graphs;
  const char* env = std::getenv("CULSTM_CUDA_GRAPHS");
  const std::string v = env ? env : "";
  if (v == "0" || v == "off" || v == "OFF") return "off";
  if (v == "1" || v == "on" || v == "ON") return "on";
  return "auto";
}

culstm::CudaGraphMode graph_mode_value(const std::string& name) {
  return name == "off" ? culstm::CudaGraphMode::kOff : name == "on" ? culstm::CudaGraphMode::kOn
                                                                     : culstm::CudaGraphMode::kAuto;
}

const char* kUsage =
    "usage: culstm_bench [options]\n"
    "grid (comma-separated lists; default: the issue-6 grid):\n"
    "  --batch 1,8,32,64,256   --hidden 256,512,1024,2048   --steps 100,1000   --layers 1,4\n"
    "  --dirs uni,bi           --dtypes f32,bf16 (also f16)  --input N (0: = hidden)   --proj P (0: none)\n"
    "  --quick                 batch 1,64; hidden 512; steps 100; layers 1; dirs uni (other flags still apply)\n"
    "what to run:\n"
    "  --backends cuda,cudnn   cuda: culstm's cuda backend; cudnn: cuDNN called directly, every algorithm, the\n"
    "                          fastest kept; culstm-cudnn: culstm's cudnn backend (algorithms when selectable)\n"
    "  --engines LIST          culstm cuda engines: default (backend's choice), auto, stepwise, persistent\n"
    "                          (default: default,stepwise,persistent)\n"
    "  --algos LIST            cuDNN algorithms tried (standard,persist_static,persist_static_small_h,persist_dynamic;\n"
    "                          auto: culstm-cudnn's own choice)\n"
    "  --math strict|tf32      f32 math (strict: no tf32 anywhere, the default)\n"
    "  --graphs off|auto|on    CUDA-graph mode of culstm's cuda Contexts (default: the Context's own, auto unless\n"
    "                          CULSTM_CUDA_GRAPHS says otherwise); recorded with the graph counters of each run\n"
    "timing:\n"
    "  --warmup 3 --runs 20 --max-runs 200 --target-ms 300   runs = clamp(target / call time, runs, max-runs)\n"
    "  --mode latency|throughput   latency (default): the stream is idle before each timed call\n"
    "  --rotate-mb M           input pool size (default 2 x L2); every call reads a different x\n"
    "  --budget-s S            stop cleanly (JSON written) before exceeding S seconds\n"
    "  --order priority|grid   priority (default): the issue's target points first, cheapest first\n"
    "output:\n"
    "  --json PATH             records (default culstm_bench.json)   --sync-json PATH  sync_microbench output\n"
    "  --commit HASH --driver VERSION   override what is recorded   --device N   --no-ceilings\n"
    "  --dry-run               print the grid, its order and an estimate of the run time; no GPU needed\n";

bool split_list(const std::string& s, std::vector<std::string>* out) {
  out->clear();
  std::string item;
  std::stringstream in(s);
  while (std::getline(in, item, ',')) {
    if (item.empty()) return false;
    out->push_back(item);
  }
  return !out->empty();
}

bool parse_int_list(const std::string& s, std::vector<std::int64_t>* out) {
  std::vector<std::string> items;
  if (!split_list(s, &items)) return false;
  out->clear();
  for (const std::string& it : items) {
    char* end = nullptr;
    const long long v = std::strtoll(it.c_str(), &end, 10);
    if (*end != '\0' || v <= 0) return false;
    out->push_back(v);
  }
  return true;
}

bool check_names(const std::vector<std::string>& values, const std::set<std::string>& allowed, const char* flag) {
  for (const std::string& v : values) {
    if (!allowed.count(v)) {
      std::fprintf(stderr, "culstm_bench: error: %s: unknown value '%s'\n", flag, v.c_str());
      return false;
    }
  }
  return true;
}

// 0: ok, 1: --help, 2: error (printed).
int parse_options(int argc, char** argv, Options* o) {
  bool quick = false;
  std::map<std::string, std::string> given;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    if (a == "--help" || a == "-h") return 1;
    if (a == "--quick") {
      quick = true;
    } else if (a == "--dry-run") {
      o->dry_run = true;
    } else if (a == "--no-ceilings") {
      o->ceilings = false;
    } else if (a.rfind("--", 0) == 0) {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "culstm_bench: error: %s: missing value\n", a.c_str());
        return 2;
      }
      given[a] = argv[++k];
    } else {
      std::fprintf(stderr, "culstm_bench: error: unexpected argument '%s'\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (quick) {
    o->batch = {1, 64};
    o->hidden = {512};
    o->steps = {100};
    o->layers = {1};
    o->dirs = {"uni"};
  }
  auto bad = [](const std::string& flag, const std::string& v) {
    std::fprintf(stderr, "culstm_bench: error: %s: bad value '%s'\n", flag.c_str(), v.c_str());
    return 2;
  };
  for (const auto& [flag, v] : given) {
    bool ok = true;
    auto num = [&](double lo) {  // a finite number >= lo
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      ok = end != v.c_str() && *end == '\0' && std::isfinite(d) && d >= lo;
      return d;
    };
    auto integer = [&](long long lo) {  // a whole number in [lo, INT_MAX]: "2.5" or "1e3" is refused, not truncated
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      ok = end != v.c_str() && *end == '\0' && errno == 0 && n >= lo && n <= INT_MAX;
      return ok ? static_cast<int>(n) : 0;
    };
    if (flag == "--batch") ok = parse_int_list(v, &o->batch);
    else if (flag == "--hidden") ok = parse_int_list(v, &o->hidden);
    else if (flag == "--steps") ok = parse_int_list(v, &o->steps);
    else if (flag == "--layers") ok = parse_int_list(v, &o->layers);
    else if (flag == "--dirs") ok = split_list(v, &o->dirs) && check_names(o->dirs, {"uni", "bi"}, "--dirs");
    else if (flag == "--dtypes")
      ok = split_list(v, &o->dtypes) && check_names(o->dtypes, {"f32", "f16", "bf16"}, "--dtypes");
    else if (flag == "--backends")
      ok = split_list(v, &o->backends) && check_names(o->backends, {"cuda", "cudnn", "culstm-cudnn"}, "--backends");
    else if (flag == "--engines")
      ok = split_list(v, &o->engines) &&
           check_names(o->engines, {"default", "auto", "stepwise", "persistent"}, "--engines");
    else if (flag == "--algos")
      ok = split_list(v, &o->algos) &&
           check_names(o->algos, {"auto", "standard", "persist_static", "persist_static_small_h", "persist_dynamic"},
                       "--algos");
    else if (flag == "--input") o->input = integer(0);
    else if (flag == "--proj") o->proj = integer(0);
    else if (flag == "--math") {
      ok = v == "strict" || v == "tf32";
      o->math = v;
    } else if (flag == "--order") {
      ok = v == "priority" || v == "grid";
      o->order = v;
    } else if (flag == "--mode") {
      ok = v == "latency" || v == "throughput";
      o->mode = v;
    } else if (flag == "--graphs") {
      ok = v == "off" || v == "auto" || v == "on";
      o->graphs = v;
    }
    else if (flag == "--warmup") o->warmup = integer(1);
    else if (flag == "--runs") o->min_runs = integer(1);
    else if (flag == "--max-runs") o->max_runs = integer(1);
    else if (flag == "--target-ms") o->target_ms = num(0);
    else if (flag == "--budget-s") o->budget_s = num(0);
    else if (flag == "--rotate-mb") o->rotate_mb = num(0);
    else if (flag == "--device") o->device = integer(0);
    else if (flag == "--json") o->json_path = v;
    else if (flag == "--sync-json") o->sync_json = v;
    else if (flag == "--commit") o->commit = v;
    else if (flag == "--driver") o->driver = v;
    else {
      std::fprintf(stderr, "culstm_bench: error: unknown option '%s'\n%s", flag.c_str(), kUsage);
      return 2;
    }
    if (!ok) return bad(flag, v);
  }
  if (o->max_runs < o->min_runs) o->max_runs = o->min_runs;
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Configurations.

struct Config {
  std::int64_t batch = 1, input = 0, hidden = 0, proj = 0, steps = 1;
  int layers = 1;
  int dirs = 1;
  std::string dtype = "f32";
  int tier = 1;                 // 0: one of the target points
  double target_speedup = 1.0;  // the bar for this point
  double est_call_s = 0;        // rough, for ordering and --dry-run only

  std::int64_t R() const { return proj > 0 ? proj : hidden; }
  std::int64_t layer_input(int l) const { return l == 0 ? input : dirs * R(); }
  ElemType elem() const { return dtype == "f32" ? ElemType::kF32 : dtype == "f16" ? ElemType::kF16 : ElemType::kBF16; }
  std::size_t es() const { return elem_size(elem()); }
  // 8·B·T·H·(I_l + R) per layer and direction, + 2·B·T·H·P for the projection (docs/design.md §6).
  double flops() const {
    double f = 0;
    for (int l = 0; l < layers; ++l) {
      const double per = 8.0 * batch * steps * hidden * static_cast<double>(layer_input(l) + R()) +
                         (proj > 0 ? 2.0 * batch * steps * hidden * static_cast<double>(proj) : 0.0);
      f += per * dirs;
    }
    return f;
  }
  double weight_elems() const {
    double w = 0;
    for (int l = 0; l < layers; ++l) {
      w += dirs * (4.0 * hidden * static_cast<double>(layer_input(l) + R()) + 8.0 * hidden +
                   static_cast<double>(proj) * hidden);
    }
    return w;
  }
  std::size_t x_bytes() const { return static_cast<std::size_t>(steps * batch * input) * es(); }
  std::size_t y_bytes() const { return static_cast<std::size_t>(steps * batch * dirs * R()) * es(); }
  std::size_t state_bytes() const {
    return static_cast<std::size_t>(layers) * dirs * batch * static_cast<std::size_t>(R() + hidden) * es();
  }
  // Fewest bytes one forward must move through device memory: x, y, h_n, c_n and the weights, once each.
  double min_bytes() const {
    return static_cast<double>(x_bytes() + y_bytes() + state_bytes()) + weight_elems() * static_cast<double>(es());
  }
  std::string describe() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "B=%lld I=%lld H=%lld P=%lld T=%lld L=%d %s %s", static_cast<long long>(batch),
                  static_cast<long long>(input), static_cast<long long>(hidden), static_cast<long long>(proj),
                  static_cast<long long>(steps), layers, dirs == 2 ? "bi" : "uni", dtype.c_str());
    return buf;
  }
};

std::vector<Config> make_grid(const Options& o) {
  std::vector<Config> grid;
  for (const std::string& dt : o.dtypes)
    for (std::int64_t L : o.layers)
      for (const std::string& d : o.dirs)
        for (std::int64_t T : o.steps)
          for (std::int64_t H : o.hidden)
            for (std::int64_t B : o.batch) {
              Config c;
              c.batch = B;
              c.hidden = H;
              c.input = o.input > 0 ? o.input : H;
              c.proj = o.proj;
              c.steps = T;
              c.layers = static_cast<int>(L);
              c.dirs = d == "bi" ? 2 : 1;
              c.dtype = dt;
              const bool small = B <= 8 && H >= 512 && H <= 1024;
              const bool large = B >= 64 && B <= 256;
              c.tier = small || large ? 0 : 1;
              c.target_speedup = small ? 3.0 : large ? 1.5 : 1.0;
              // Rough call time: the FLOPs at a modest rate plus ~8 µs per step and layer (launch-bound stepwise
              // recurrences). Only orders the grid and sizes --dry-run's estimate.
              const double rate = dt == "f32" ? (o.math == "tf32" ? 150e12 : 30e12) : 300e12;
              c.est_call_s = c.flops() / rate + static_cast<double>(T) * L * 8e-6;
              grid.push_back(c);
            }
  if (o.proj > 0) {
    std::vector<Config> ok;
    for (const Config& c : grid) {
      if (c.proj < c.hidden) ok.push_back(c);
    }
    grid.swap(ok);
  }
  if (o.order == "priority") {
    std::stable_sort(grid.begin(), grid.end(), [](const Config& a, const Config& b) {
      if (a.tier != b.tier) return a.tier < b.tier;
      return a.est_call_s < b.est_call_s;
    });
  }
  return grid;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON output.

std::string jnum(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

class JsonObject {
 public:
  JsonObject& str(const std::string& k, const std::string& v) { return raw(k, json::quote(v)); }
  JsonObject& num(const std::string& k, double v) { return raw(k, jnum(v)); }
  JsonObject& integer(const std::string& k, long long v) { return raw(k, std::to_string(v)); }
  JsonObject& boolean(const std::string& k, bool v) { return raw(k, v ? "true" : "false"); }
  JsonObject& null(const std::string& k) { return raw(k, "null"); }
  JsonObject& raw(const std::string& k, const std::string& v) {
    body_ += (body_.empty() ? "" : ", ") + json::quote(k) + ": " + v;
    return *this;
  }
  std::string text() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

bool write_json_list(const std::string& path, const std::vector<std::string>& records) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << "[\n";
    for (std::size_t k = 0; k < records.size(); ++k) out << "  " << records[k] << (k + 1 < records.size() ? ",\n" : "\n");
    out << "]\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// ---------------------------------------------------------------------------------------------------------------
// The machine: what it is and its two measured ceilings.

std::string cuda_err(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return "";
  return std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}

struct Machine {
  std::string name, driver, cuda_runtime, cudnn;
  int sm_count = 0, cc_major = 0, cc_minor = 0;
  std::size_t l2_bytes = 0, total_mem = 0;
  std::map<std::string, double> gemm_tflops;  // "f32", "tf32", "bf16", "f16"
  double copy_gbps = NAN;
};

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string gemm_kind(const std::string& dtype, const std::string& math) {
  if (dtype == "f32") return math == "tf32" ? "tf32" : "f32";
  return dtype;
}

// ---------------------------------------------------------------------------------------------------------------
// The recurrence's per-step floor from sync_microbench's JSON: the fastest measured step (barrier + exchange of an
// H-float hidden state) over every scheme and grid size, for the smallest measured H >= the model's (else the
// largest measured); barrier-only steps when no exchange was measured.

struct SyncFloor {
  double ns = NAN;
  std::string scheme;
};

struct SyncTable {
  struct Row {
    std::string scheme, variant;
    long long grid = 0, hidden = 0;
    double ns = NAN;
  };
  std::vector<Row> rows;
  std::string error;

  void load(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
      error = "cannot open " + path;
      return;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    json::Value v;
    culstm::Status st = json::parse(ss.str(), &v);
    if (!st.ok() || !v.is_array()) {
      error = "cannot parse " + path + (st.ok() ? ": not a list" : ": " + st.message());
      return;
    }
    for (const json::Value& r : v.array) {
      const json::Value* status = r.find("status");
      const json::Value* ns = r.find("ns_per_step_median");
      if (!status || !status->is_string() || status->string != "ok" || !ns || !ns->is_number()) continue;
      Row row;
      if (const json::Value* s = r.find("scheme"); s && s->is_string()) row.scheme = s->string;
      if (const json::Value* s = r.find("variant"); s && s->is_string()) row.variant = s->string;
      if (const json::Value* g = r.find("grid"); g && g->is_number()) row.grid = static_cast<long long>(g->number);
      if (const json::Value* h = r.find("hidden"); h && h->is_number()) row.hidden = static_cast<long long>(h->number);
      row.ns = ns->number;
      rows.push_back(row);
    }
  }

  SyncFloor floor_for(std::int64_t hidden) const {
    long long best_h = -1, max_h = -1;
    for (const Row& r : rows) {
      if (r.variant != "exchange") continue;
      max_h = std::max(max_h, r.hidden);
      if (r.hidden >= hidden && (best_h < 0 || r.hidden < best_h)) best_h = r.hidden;
    }
    if (best_h < 0) best_h = max_h;
    SyncFloor f;
    for (const Row& r : rows) {
      const bool use = best_h >= 0 ? (r.variant == "exchange" && r.hidden == best_h) : r.variant == "sync";
      if (use && (!std::isfinite(f.ns) || r.ns < f.ns)) {
        f.ns = r.ns;
        f.scheme = r.scheme + "/" + r.variant + (best_h >= 0 ? "/H=" + std::to_string(best_h) : "") +
                   "/grid=" + std::to_string(r.grid);
      }
    }
    return f;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Device memory.

struct DevMem {
  void* p = nullptr;
  std::size_t bytes = 0;
  DevMem() = default;
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  ~DevMem() { reset(); }
  void reset() {
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
  std::string alloc(std::size_t n, const char* what) {
    reset();
    if (n == 0) return "";
    const cudaError_t err = cudaMalloc(&p, n);
    if (err != cudaSuccess) {
      p = nullptr;
      cudaGetLastError();  // an allocation failure is not sticky; clear it
      return cuda_err(err, what);
    }
    bytes = n;
    return "";
  }
};

// Inputs rotated through a pool larger than L2: call k reads buffer k mod n, so no call finds its x in L2.
struct InputPool {
  DevMem mem;
  std::size_t stride = 0, count = 0, x_bytes = 0;
  std::size_t next = 0;
  std::string init(const Config& c, std::size_t pool_min_bytes, cudaStream_t stream) {
    x_bytes = c.x_bytes();
    stride = (x_bytes + 255) / 256 * 256;
    count = std::max<std::size_t>(2, (std::max(pool_min_bytes, 2 * stride) + stride - 1) / stride);
    std::string e = mem.alloc(stride * count, "cudaMalloc input pool");
    if (!e.empty()) return e;
    e = fill_uniform(mem.p, stride * count / c.es(), c.elem(), 1.0f, 0x5eedull + c.batch * 131 + c.hidden, stream);
    if (!e.empty()) return e;
    return cuda_err(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
  const void* take() { return entry(next++); }
  const void* entry(std::size_t k) const { return static_cast<const char*>(mem.p) + stride * (k % count); }
};

// ---------------------------------------------------------------------------------------------------------------
// Runners: one engine or algorithm of one backend, set up for one configuration.

// A runner's three outputs (device memory), in the order of kOutputNames.
struct Outputs {
  void* p[3] = {nullptr, nullptr, nullptr};
  std::size_t n[3] = {0, 0, 0};  // elements
};
const char* const kOutputNames[3] = {"y", "h_n", "c_n"};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual Outcome setup(const Config& c, const Options& o, cudaStream_t stream) = 0;
  virtual Outcome run(const void* x) = 0;
  virtual std::string engine() const = 0;  // what actually ran (from the plan, or the algorithm)
  virtual Outputs outputs() const = 0;
  // Built from culstm's canonical Weights (the same seed for every culstm runner of a configuration), so its values
  // can be compared with the reference; false for cuDNN called directly (random bytes in its opaque weight space).
  virtual bool canonical_weights() const = 0;
  // The CUDA-graph counters of its Context; false when it has none (not culstm's cuda backend).
  virtual bool graph_stats(culstm::CudaGraphStats*) { return false; }
};

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fill_host(std::vector<float>& v, float scale, std::uint64_t& state) {
  for (float& x : v) x = (static_cast<float>(splitmix(state) >> 40) * (2.0f / 16777216.0f) - 1.0f) * scale;
}

culstm::DType culstm_dtype(const std::string& d) {
  return d == "f32" ? culstm::DType::kF32 : d == "f16" ? culstm::DType::kF16 : culstm::DType::kBF16;
}

// A culstm Status as an Outcome: NotSupported, NotImplemented and BackendUnavailable mean culstm cannot serve this
// configuration (or this engine/algorithm); every other code is a failure.
Outcome from_status(const culstm::Status& st, const char* what) {
  if (st.ok()) return {};
  const culstm::StatusCode code = st.code();
  const bool unsupported = code == culstm::StatusCode::kNotSupported || code == culstm::StatusCode::kNotImplemented ||
                           code == culstm::StatusCode::kBackendUnavailable;
  return Outcome(std::string(what) + ": " + st.to_string(), unsupported);
}

class CulstmRunner : public Runner {
 public:
  CulstmRunner(culstm::Backend backend, std::string engine, std::string algo)
      : backend_(backend), engine_choice_(std::move(engine)), algo_choice_(std::move(algo)) {}

  Outcome setup(const Config& c, const Options& o, cudaStream_t stream) override {
    stream_ = stream;
    spec_ = culstm::LstmSpec();
    spec_.input_size = c.input;
    spec_.hidden_size = c.hidden;
    spec_.proj_size = c.proj;
    spec_.num_layers = c.layers;
    spec_.direction = c.dirs == 2 ? culstm::Direction::kBidirectional : culstm::Direction::kForward;
    spec_.dtype = culstm_dtype(c.dtype);
    spec_.math = o.math == "tf32" ? culstm::MathMode::kAllowTF32 : culstm::MathMode::kStrictF32;
    culstm::ModelOptions mo;
    mo.backend = backend_;
    mo.device = o.device;
    mo.max_batch = c.batch;
    mo.max_seq_len = c.steps;
    if (engine_choice_ != "default" && !set_engine(mo, engine_choice_)) {
      return Outcome("engine '" + engine_choice_ + "' cannot be selected: ModelOptions has no such engine option/value",
                     true);
    }
    if (!algo_choice_.empty() && algo_choice_ != "default" && !set_cudnn_algo(mo, algo_choice_)) {
      return Outcome("cuDNN algorithm '" + algo_choice_ + "' cannot be selected: ModelOptions has no such option/value",
                     true);
    }
    culstm::Weights w = culstm::Weights::zeros_for(spec_);
    std::uint64_t seed = 0xA11CEull + static_cast<std::uint64_t>(c.hidden);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hidden));
    for (int l = 0; l < w.num_layers(); ++l) {
      for (int d = 0; d < w.num_directions(); ++d) {
        culstm::LayerWeights& lw = w.at(l, d);
        for (std::vector<float>* v : {&lw.w_ih, &lw.w_hh, &lw.b_ih, &lw.b_hh, &lw.w_hr, &lw.peephole}) {
          fill_host(*v, scale, seed);
        }
      }
    }
    Outcome e = from_status(culstm::Model::create(spec_, w, mo, &model_), "Model::create");
    if (e.ok()) e = from_status(culstm::Context::create(*model_, &ctx_), "Context::create");
    if (e.ok() && backend_ == culstm::Backend::kCuda && !o.graphs.empty()) {
      e = from_status(culstm::cuda_set_graph_mode(*ctx_, graph_mode_value(o.graphs)), "cuda_set_graph_mode");
    }
    std::size_t ws = 0;
    if (e.ok()) e = from_status(model_->workspace_size(c.batch, c.steps, &ws), "workspace_size");
    if (!e.ok()) return e;
    const std::int64_t LD = static_cast<std::int64_t>(c.layers) * c.dirs;
    out_.n[0] = static_cast<std::size_t>(c.steps * c.batch * c.dirs * c.R());
    out_.n[1] = static_cast<std::size_t>(LD * c.batch * c.R());
    out_.n[2] = static_cast<std::size_t>(LD * c.batch * c.hidden);
    std::string err = ws_.alloc(ws, "cudaMalloc workspace");
    if (err.empty()) err = y_.alloc(out_.n[0] * c.es(), "cudaMalloc y");
    if (err.empty()) err = hn_.alloc(out_.n[1] * c.es(), "cudaMalloc h_n");
    if (err.empty()) err = cn_.alloc(out_.n[2] * c.es(), "cudaMalloc c_n");
    if (!err.empty()) return err;
    out_.p[0] = y_.p;
    out_.p[1] = hn_.p;
    out_.p[2] = cn_.p;
    const culstm::DType dt = spec_.dtype;
    args_ = culstm::ForwardArgs();
    args_.y = culstm::TensorView::device(y_.p, dt, {c.steps, c.batch, c.dirs * c.R()});
    args_.h_n = culstm::TensorView::device(hn_.p, dt, {LD, c.batch, c.R()});
    args_.c_n = culstm::TensorView::device(cn_.p, dt, {LD, c.batch, c.hidden});
    args_.workspace = ws_.p;
    args_.workspace_bytes = ws;
    x_shape_[0] = c.steps;
    x_shape_[1] = c.batch;
    x_shape_[2] = c.input;
    // The engines that run, from the plan ("persistent", "stepwise", ...), joined with '+' when they differ.
    std::set<std::string> engines;
    for (const culstm::PlanStep& s : model_->plan().steps()) engines.insert(s.engine);
    engine_.clear();
    for (const std::string& s : engines) engine_ += (engine_.empty() ? "" : "+") + s;
    if (engine_.empty()) engine_ = culstm::backend_name(model_->backend());
    return {};
  }

  Outcome run(const void* x) override {
    args_.x = culstm::TensorView::device(x, spec_.dtype, {x_shape_[0], x_shape_[1], x_shape_[2]});
    return from_status(culstm::forward(*ctx_, *model_, args_, stream_), "forward");
  }
  std::string engine() const override { return engine_; }
  Outputs outputs() const override { return out_; }
  bool canonical_weights() const override { return true; }
  bool graph_stats(culstm::CudaGraphStats* stats) override {
    return backend_ == culstm::Backend::kCuda && ctx_ && culstm::cuda_graph_stats(*ctx_, stats).ok();
  }
  // Frees the model (weights), the Context and the workspace; keeps the outputs. The reference does this once it
  // has run, so that only its outputs hold device memory while the other runners are timed.
  void keep_outputs_only() {
    ctx_.reset();
    model_.reset();
    ws_.reset();
  }

 private:
  culstm::Backend backend_;
  std::string engine_choice_, algo_choice_, engine_;
  culstm::LstmSpec spec_;
  std::shared_ptr<const culstm::Model> model_;
  std::unique_ptr<culstm::Context> ctx_;
  culstm::ForwardArgs args_;
  std::int64_t x_shape_[3] = {0, 0, 0};
  DevMem ws_, y_, hn_, cn_;
  Outputs out_;
  cudaStream_t stream_ = nullptr;
};

class CudnnRunner : public Runner {
 public:
  explicit CudnnRunner(std::string algo) : algo_(std::move(algo)) {}
  Outcome setup(const Config& c, const Options& o, cudaStream_t stream) override {
    RnnShape s;
    s.batch = c.batch;
    s.input = c.input;
    s.hidden = c.hidden;
    s.proj = c.proj;
    s.steps = c.steps;
    s.layers = c.layers;
    s.bidirectional = c.dirs == 2;
    s.dtype = c.elem();
    s.allow_tf32 = o.math == "tf32";
    return rnn_.setup(s, algo_, stream);
  }
  Outcome run(const void* x) override { return rnn_.run(x); }
  std::string engine() const override { return algo_; }
  Outputs outputs() const override {
    Outputs out;
    out.p[0] = rnn_.y();
    out.p[1] = rnn_.hy();
    out.p[2] = rnn_.cy();
    out.n[0] = rnn_.y_elems();
    out.n[1] = rnn_.hy_elems();
    out.n[2] = rnn_.cy_elems();
    return out;
  }
  bool canonical_weights() const override { return false; }

 private:
  std::string algo_;
  CudnnDirect rnn_;
};

// ---------------------------------------------------------------------------------------------------------------
// Timing.

struct Timing {
  std::string status = "ok";  // ok | error | unsupported | skipped | wrong_output
  std::string error;
  std::vector<double> us;  // per timed call, sorted
  double median_us = NAN, min_us = NAN, max_us = NAN, mean_us = NAN;
  double enqueue_us = NAN;  // median host time to enqueue one call
  double setup_s = NAN;
  int runs = 0, warmup = 0;
  bool quick = false;  // a clearly slower cuDNN algorithm, timed with fewer runs
  std::string engine, output_check;
  // The verification before timing (W1): "ok", "skipped (why)" or "wrong: detail".
  std::string verify = "skipped (not reached: set-up, warm-up or budget stopped first)";
  bool compared = false;            // values compared with the reference: verify_rel_l2 and verify_bound are set
  double verify_rel_l2 = NAN;       // the largest ||out - ref|| / ||ref|| over y, h_n and c_n
  double verify_bound = NAN;        // the largest accepted
  double verify_reference_s = NAN;  // the reference's cost (set up + one run), once per configuration
  bool has_graph_stats = false;     // culstm cuda runners: graph counters over the timed loop
  culstm::CudaGraphStats graph_delta;
};

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct EventPool {
  std::vector<cudaEvent_t> ev;
  std::string ensure(std::size_t n) {
    while (ev.size() < n) {
      cudaEvent_t e;
      const cudaError_t err = cudaEventCreate(&e);
      if (err != cudaSuccess) return cuda_err(err, "cudaEventCreate");
      ev.push_back(e);
    }
    return "";
  }
  ~EventPool() {
    for (cudaEvent_t e : ev) cudaEventDestroy(e);
  }
};

// A CUDA error that poisons the context (illegal address, launch failure...) ends the program: nothing after it
// could be trusted. Returns true when the device still works.
bool device_healthy(std::string* why) {
  cudaGetLastError();
  const cudaError_t err = cudaDeviceSynchronize();
  if (err == cudaSuccess) return true;
  *why = cuda_err(err, "cudaDeviceSynchronize after a failure");
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Verification (W1): every runner is run once on NaN-filled outputs before it is timed, and culstm's runners are
// compared with a reference, so that neither an engine that leaves outputs unwritten (the allocator often hands a
// runner the memory of the previous one, holding a correct result) nor one that computes wrong values gets a time.

const char* const kReferenceName = "culstm cudnn standard";

// Largest accepted ||out - ref|| / ||ref|| of a culstm runner against the reference. `culstm check` accepts each GPU
// backend within tolerance() of the float64 CPU reference (tools/culstm_main.cpp: f32 strict 1e-5; tf32 and f16
// 1e-2; bf16 5e-2); two implementations that each meet it differ by at most about twice that.
double verify_bound(const Config& c, const Options& o) {
  const double tol = c.dtype == "bf16" ? 5e-2 : c.dtype == "f16" ? 1e-2 : o.math == "tf32" ? 1e-2 : 1e-5;
  return 2 * tol;
}

// 0xFF bytes are NaN in f32, f16 and bf16: an element the next run does not write stays NaN.
std::string poison(const Outputs& out, std::size_t elem_bytes, cudaStream_t stream) {
  for (int k = 0; k < 3; ++k) {
    if (out.n[k] == 0) continue;
    const std::string e = cuda_err(cudaMemsetAsync(out.p[k], 0xFF, out.n[k] * elem_bytes, stream), "cudaMemsetAsync");
    if (!e.empty()) return e;
  }
  return "";
}

// Statistics of each output, and of its difference to `ref`'s when ref is not null (synchronizes the stream).
std::string stats_of(const Outputs& out, const Outputs* ref, ElemType t, cudaStream_t stream, OutputStats stats[3]) {
  for (int k = 0; k < 3; ++k) {
    if (ref && ref->n[k] != out.n[k]) {
      return std::string("verification: ") + kOutputNames[k] + " has a different size from the reference's";
    }
    const std::string e = output_stats(out.p[k], ref ? ref->p[k] : nullptr, out.n[k], t, stream, &stats[k]);
    if (!e.empty()) return e;
  }
  return "";
}

// "y 3, c_n 12": the outputs with non-finite elements; empty when there are none.
std::string nonfinite_list(const OutputStats stats[3]) {
  std::string list;
  for (int k = 0; k < 3; ++k) {
    if (stats[k].nonfinite == 0) continue;
    list += (list.empty() ? "" : ", ") + std::string(kOutputNames[k]) + " " + std::to_string(stats[k].nonfinite);
  }
  return list;
}

// The reference of one configuration: culstm's cudnn backend with CUDNN_RNN_ALGO_STANDARD, an implementation
// independent of culstm's cuda backend that serves every bench shape, built from the same canonical Weights as every
// culstm runner, run once on the pool's entry 0. Only its outputs stay allocated (keep_outputs_only).
struct Reference {
  std::unique_ptr<CulstmRunner> runner;  // null: no reference, `why` says why
  std::string why;
  bool failed = false;  // an error (not a refusal of the configuration): the caller checks the device
  double seconds = NAN;
};

Reference make_reference(const Config& c, const Options& o, const InputPool& pool, cudaStream_t stream) {
  Reference ref;
  const auto t0 = Clock::now();
  auto runner = std::make_unique<CulstmRunner>(culstm::Backend::kCudnn, "default", "standard");
  Outcome e = runner->setup(c, o, stream);
  if (e.ok()) e = poison(runner->outputs(), c.es(), stream);
  if (e.ok()) e = runner->run(pool.entry(0));
  if (e.ok()) e = cuda_err(cudaStreamSynchronize(stream), "cudaStreamSynchronize (reference)");
  OutputStats stats[3];
  if (e.ok()) e = stats_of(runner->outputs(), nullptr, c.elem(), stream, stats);
  ref.seconds = seconds_since(t0);
  if (!e.ok()) {
    ref.why = e.error;
    ref.failed = !e.unsupported;
  } else if (!nonfinite_list(stats).empty()) {
    ref.why = std::string(kReferenceName) + " left non-finite values (" + nonfinite_list(stats) + ")";
  } else {
    runner->keep_outputs_only();
    ref.runner = std::move(runner);
  }
  return ref;
}

class Timer {
 public:
  Timer(const Options& o, cudaStream_t stream, EventPool* events, Clock::time_point deadline, bool has_deadline)
      : o_(o), stream_(stream), events_(events), deadline_(deadline), has_deadline_(has_deadline) {}

  double remaining_s() const {
    return has_deadline_ ? std::chrono::duration<double>(deadline_ - Clock::now()).count() : 1e30;
  }

  // Sets up `r` for `c`, warms it up, verifies its outputs (against `ref` when it has one and `r` uses the canonical
  // weights), times it. `slower_than_ms` > 0: the best time so far among the alternatives (cuDNN algorithms); a
  // runner clearly slower than that is timed with a few runs only (Timing::quick). A runner whose outputs fail a
  // check is still timed (the numbers help judge a borderline case) but gets status "wrong_output".
  Timing measure(Runner& r, const Config& c, InputPool& pool, double slower_than_ms, const Reference* ref) {
    Timing t;
    const auto t0 = Clock::now();
    Outcome e = r.setup(c, o_, stream_);
    t.setup_s = seconds_since(t0);
    if (!e.ok()) return fail(t, e);
    t.engine = r.engine();
    const bool latency = o_.mode == "latency";
    // Warm-up, each call timed by the host around call + synchronize: an upper bound used to size the timed runs.
    double call_ms = 0;
    for (int k = 0; k < o_.warmup; ++k) {
      const auto w0 = Clock::now();
      e = r.run(pool.take());
      if (e.ok()) e = cuda_err(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (warm-up)");
      if (!e.ok()) return fail(t, e);
      call_ms = seconds_since(w0) * 1e3;
      if (k == 0 && call_ms * 1e-3 * (o_.warmup + o_.min_runs) > remaining_s()) {
        t.status = "skipped";
        t.error = "time budget: one call takes " + jnum(call_ms) + " ms";
        return t;
      }
    }
    t.warmup = o_.warmup;
    int runs = static_cast<int>(std::ceil(o_.target_ms / std::max(call_ms, 1e-3)));
    runs = std::max(o_.min_runs, std::min(o_.max_runs, runs));
    if (slower_than_ms > 0 && call_ms > 1.5 * slower_than_ms) {
      runs = std::min(runs, 5);
      t.quick = true;
    }
    const double left = remaining_s() * 0.9;
    if (runs * call_ms * 1e-3 > left) runs = std::max(t.quick ? 3 : o_.min_runs, static_cast<int>(left / (call_ms * 1e-3)));
    if (runs * call_ms * 1e-3 > remaining_s()) {
      t.status = "skipped";
      t.error = "time budget";
      return t;
    }
    if (!(e = verify(r, c, pool, ref, t)).ok()) return fail(t, e);
    // The first timed call must not repeat the verification call's x (entry 0): culstm's auto graph mode captures a
    // call that repeats the previous one, and that capture would land inside the timed region.
    if (pool.next % pool.count == 0) pool.take();
    if (!(e = events_->ensure(2 * static_cast<std::size_t>(runs))).ok()) return fail(t, e);
    // Graph counters around the timed loop only (W6): which path (direct launches, replays, updates) was timed.
    culstm::CudaGraphStats before, after;
    const bool graphs = r.graph_stats(&before);
    std::vector<double> enqueue(static_cast<std::size_t>(runs));
    for (int k = 0; k < runs && e.ok(); ++k) {
      if (latency) e = cuda_err(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      const void* x = pool.take();
      const auto h0 = Clock::now();
      if (e.ok()) e = cuda_err(cudaEventRecord(events_->ev[2 * k], stream_), "cudaEventRecord");
      if (e.ok()) e = r.run(x);
      if (e.ok()) e = cuda_err(cudaEventRecord(events_->ev[2 * k + 1], stream_), "cudaEventRecord");
      enqueue[k] = seconds_since(h0) * 1e6;
    }
    if (e.ok()) e = cuda_err(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    if (!e.ok()) return fail(t, e);
    if (graphs && r.graph_stats(&after)) {
      t.has_graph_stats = true;
      t.graph_delta.direct_runs = after.direct_runs - before.direct_runs;
      t.graph_delta.captures = after.captures - before.captures;
      t.graph_delta.instantiations = after.instantiations - before.instantiations;
      t.graph_delta.updates = after.updates - before.updates;
      t.graph_delta.replays = after.replays - before.replays;
    }
    for (int k = 0; k < runs; ++k) {
      float ms = 0;
      if (!(e = cuda_err(cudaEventElapsedTime(&ms, events_->ev[2 * k], events_->ev[2 * k + 1]),
                         "cudaEventElapsedTime")).ok())
        return fail(t, e);
      t.us.push_back(ms * 1e3);
    }
    std::sort(t.us.begin(), t.us.end());
    t.runs = runs;
    t.median_us = median(t.us);
    t.min_us = t.us.front();
    t.max_us = t.us.back();
    double sum = 0;
    for (double v : t.us) sum += v;
    t.mean_us = sum / runs;
    t.enqueue_us = median(enqueue);
    // The outputs of the last timed call must be finite, and y not all zeros (a run that broke while being timed).
    OutputStats stats[3];
    if (!(e = stats_of(r.outputs(), nullptr, c.elem(), stream_, stats)).ok()) return fail(t, e);
    const std::string nonfinite = nonfinite_list(stats);
    t.output_check = !nonfinite.empty()                   ? "nonfinite: " + nonfinite
                     : stats[0].zeros == r.outputs().n[0] ? "all_zero"
                                                          : "ok";
    // W2: a failed check makes the record unusable as a time (report.py uses status "ok" only).
    if (t.verify.rfind("wrong", 0) == 0) {
      t.status = "wrong_output";
      t.error = "verification before timing: " + t.verify;
    } else if (t.output_check != "ok") {
      t.status = "wrong_output";
      t.error = "output check after timing: " + t.output_check;
    }
    return t;
  }

 private:
  // W1, after warm-up and before timing: poison y, h_n and c_n, run once on the pool's entry 0 (the reference's
  // input), require every element written and finite, then compare the values with the reference where that means
  // something. Sets t.verify; returns a failure of the run itself (a CUDA or library error).
  Outcome verify(Runner& r, const Config& c, const InputPool& pool, const Reference* ref, Timing& t) {
    const Outputs out = r.outputs();
    const Outputs ref_out = ref && ref->runner ? ref->runner->outputs() : Outputs();
    const bool compare = r.canonical_weights() && ref && ref->runner;
    Outcome e = poison(out, c.es(), stream_);
    if (e.ok()) e = r.run(pool.entry(0));
    if (e.ok()) e = cuda_err(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (verification)");
    OutputStats stats[3];
    if (e.ok()) e = stats_of(out, compare ? &ref_out : nullptr, c.elem(), stream_, stats);
    if (!e.ok()) return e;
    const std::string nonfinite = nonfinite_list(stats);
    if (!nonfinite.empty()) {
      t.verify = "wrong: non-finite elements after one run on NaN-filled outputs (" + nonfinite + ")";
    } else if (!r.canonical_weights()) {
      t.verify = "skipped (random weights, no reference: only checked that every output element is written and finite)";
    } else if (!compare) {
      t.verify = "skipped (no reference: " + (ref ? ref->why : std::string("none computed")) +
                 "; every output element written and finite)";
    } else {
      t.compared = true;
      t.verify_bound = verify_bound(c, o_);
      t.verify_reference_s = ref->seconds;
      t.verify_rel_l2 = 0;
      bool within = true;
      std::string detail;
      for (int k = 0; k < 3; ++k) {
        const double rel = stats[k].ref_sq > 0 ? std::sqrt(stats[k].diff_sq / stats[k].ref_sq)
                           : stats[k].diff_sq > 0 ? INFINITY : 0.0;
        within = within && rel <= t.verify_bound;
        t.verify_rel_l2 = std::max(t.verify_rel_l2, rel);
        detail += std::string(k ? ", " : "") + kOutputNames[k] + " " + jnum(rel);
      }
      t.verify = within ? "ok"
                        : "wrong: rel_l2 against " + std::string(kReferenceName) + " (" + detail + ") above " +
                              jnum(t.verify_bound);
    }
    return {};
  }

  // Unsupported: the status code says the backend or algorithm cannot serve this configuration (not a failure).
  Timing fail(Timing& t, const Outcome& e) {
    t.status = e.unsupported ? "unsupported" : "error";
    t.error = e.error;
    return t;
  }
  const Options& o_;
  cudaStream_t stream_;
  EventPool* events_;
  Clock::time_point deadline_;
  bool has_deadline_;
};

// ---------------------------------------------------------------------------------------------------------------
// Results.

struct Result {
  std::string backend;  // cuda | cudnn | culstm-cudnn
  std::string engine_choice;
  Timing t;
  std::string algo;                           // winning algorithm (cudnn, culstm-cudnn)
  std::vector<std::pair<std::string, Timing>> alternatives;  // every algorithm tried
};

std::string timestamp_utc() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

struct Floors {
  double compute_us = NAN, bytes_us = NAN, recurrence_us = NAN, floor_us = NAN;
  std::string kind, sync_scheme;
  double sync_ns = NAN;
};

Floors floors_for(const Config& c, const Options& o, const Machine& m, const SyncTable& sync) {
  Floors f;
  auto it = m.gemm_tflops.find(gemm_kind(c.dtype, o.math));
  const double rate = it == m.gemm_tflops.end() ? NAN : it->second;
  f.compute_us = c.flops() / (rate * 1e12) * 1e6;
  f.bytes_us = c.min_bytes() / (m.copy_gbps * 1e9) * 1e6;
  const SyncFloor sf = sync.floor_for(c.hidden);
  if (std::isfinite(sf.ns)) {
    // The chain of dependent steps. Unidirectional: a wavefront over layers (layer l+1 runs step t once layer l has
    // run it), T + L - 1 steps. Bidirectional: layer l+1's first step needs layer l's reverse output at t = 0, which
    // is the reverse direction's last step, so each layer waits for the whole previous one: L·T steps. Each step is
    // at least one barrier + hidden-state exchange plus its recurrent math (8·B·H·R per direction, both directions
    // at once) at the full matrix rate.
    const double chain = c.dirs == 2 ? static_cast<double>(c.steps) * c.layers
                                     : static_cast<double>(c.steps + c.layers - 1);
    const double step_math_ns = 8.0 * c.batch * c.hidden * static_cast<double>(c.R()) * c.dirs / (rate * 1e12) * 1e9;
    f.recurrence_us = chain * (sf.ns + (std::isfinite(step_math_ns) ? step_math_ns : 0)) / 1e3;
    f.sync_ns = sf.ns;
    f.sync_scheme = sf.scheme;
  }
  f.floor_us = -1;
  for (auto [v, name] : {std::pair<double, const char*>{f.compute_us, "compute"}, {f.bytes_us, "bytes"},
                         {f.recurrence_us, "recurrence"}}) {
    if (std::isfinite(v) && v > f.floor_us) {
      f.floor_us = v;
      f.kind = name;
    }
  }
  if (f.floor_us < 0) f.floor_us = NAN;
  return f;
}

std::string record_json(const Result& r, const Config& c, const Options& o, const Machine& m, const Floors& f,
                        double cudnn_best_us, const std::string& cudnn_best_name, std::size_t pool_count,
                        std::size_t pool_bytes) {
  const Timing& t = r.t;
  JsonObject j;
  j.str("device", m.name).str("driver", m.driver).str("commit", o.commit);
  j.str("backend", r.backend).str("engine", t.engine.empty() ? r.engine_choice : t.engine);
  j.str("engine_requested", r.engine_choice).str("algo", r.algo);
  j.str("dtype", c.dtype).str("math", c.dtype == "f32" ? o.math : "tensor");
  j.integer("batch", c.batch).integer("input_size", c.input).integer("hidden_size", c.hidden);
  j.integer("proj_size", c.proj).integer("seq_len", c.steps).integer("layers", c.layers).integer("directions", c.dirs);
  j.num("median_us", t.median_us).num("min_us", t.min_us).num("max_us", t.max_us).num("mean_us", t.mean_us);
  j.integer("runs", t.runs).integer("warmup", t.warmup);
  j.num("per_step_us", t.median_us / c.steps);
  j.num("flops", c.flops()).num("tflops", c.flops() / (t.median_us * 1e-6) / 1e12);
  j.num("min_bytes", c.min_bytes());
  j.num("speedup_vs_cudnn", cudnn_best_us / t.median_us).num("cudnn_best_us", cudnn_best_us);
  j.str("cudnn_best", cudnn_best_name);
  j.num("target_speedup", c.target_speedup).integer("priority_tier", c.tier);
  j.num("compute_floor_us", f.compute_us).num("bytes_floor_us", f.bytes_us).num("recurrence_floor_us", f.recurrence_us);
  j.num("floor_us", f.floor_us).str("floor_kind", f.kind).num("ratio_to_floor", t.median_us / f.floor_us);
  j.num("sync_step_ns", f.sync_ns).str("sync_scheme", f.sync_scheme);
  auto g = m.gemm_tflops.find(gemm_kind(c.dtype, o.math));
  j.num("gemm_tflops", g == m.gemm_tflops.end() ? NAN : g->second).num("copy_gbps", m.copy_gbps);
  j.str("timing_mode", o.mode).integer("rotation_buffers", static_cast<long long>(pool_count));
  j.integer("rotation_bytes", static_cast<long long>(pool_bytes));
  j.num("enqueue_us", t.enqueue_us).num("setup_s", t.setup_s).str("output_check", t.output_check);
  j.str("verify", t.verify);
  if (t.compared) {
    j.num("verify_rel_l2", t.verify_rel_l2).num("verify_bound", t.verify_bound).str("verify_against", kReferenceName);
    j.num("verify_reference_s", t.verify_reference_s);
  }
  if (r.backend == "cuda") {
    j.str("graph_mode", graph_mode_name(o));
    if (t.has_graph_stats) {
      const culstm::CudaGraphStats& g = t.graph_delta;
      JsonObject gs;
      gs.integer("direct_runs", g.direct_runs).integer("captures", g.captures);
      gs.integer("instantiations", g.instantiations).integer("updates", g.updates).integer("replays", g.replays);
      j.raw("graph_stats", gs.text());
    } else {
      j.null("graph_stats");
    }
  }
  if (!r.alternatives.empty()) {
    JsonObject alts;
    for (const auto& [name, at] : r.alternatives) {
      JsonObject a;
      a.str("status", at.status);
      if (at.status == "ok") a.num("median_us", at.median_us).integer("runs", at.runs).boolean("quick", at.quick);
      else a.str("error", at.error);
      a.str("verify", at.verify);
      if (at.compared) a.num("verify_rel_l2", at.verify_rel_l2);
      alts.raw(name, a.text());
    }
    j.raw("algos", alts.text());
  }
  j.str("status", t.status).str("error", t.error);
  j.integer("sm_count", m.sm_count).integer("l2_bytes", static_cast<long long>(m.l2_bytes));
  j.str("cuda_runtime", m.cuda_runtime).str("cudnn_version", m.cudnn).str("culstm_version", culstm::version());
  j.str("timestamp", timestamp_utc());
  return j.text();
}

void print_header() {
  std::printf("%-5s %-5s %-5s %-5s %-3s %-3s %-5s %-13s %-26s %11s %9s %8s %8s %8s %7s %s\n", "B", "H", "I", "T",
              "L", "dir", "dtype", "backend", "engine/algo", "median_us", "step_us", "TFLOP/s", "vs_cudnn", "target",
              "x_floor", "status");
}

void print_row(const Config& c, const Result& r, const Floors& f, double cudnn_best_us) {
  const Timing& t = r.t;
  std::string eng = t.engine.empty() ? r.engine_choice : t.engine;
  if (!r.algo.empty() && r.algo != eng) eng += ":" + r.algo;
  std::string status = t.status;
  if (t.status != "ok") status += ": " + t.error.substr(0, 100);
  else if (t.output_check != "ok") status += " (output " + t.output_check + ")";
  char target[16];
  std::snprintf(target, sizeof target, ">=%.1fx", c.target_speedup);
  std::printf("%-5lld %-5lld %-5lld %-5lld %-3d %-3s %-5s %-13s %-26s %11.1f %9.2f %8.2f %8.2f %8s %7.1f %s\n",
              static_cast<long long>(c.batch), static_cast<long long>(c.hidden), static_cast<long long>(c.input),
              static_cast<long long>(c.steps), c.layers, c.dirs == 2 ? "bi" : "uni", c.dtype.c_str(),
              r.backend.c_str(), eng.substr(0, 26).c_str(), t.median_us, t.median_us / c.steps,
              c.flops() / (t.median_us * 1e-6) / 1e12, cudnn_best_us / t.median_us, target, t.median_us / f.floor_us,
              status.c_str());
  std::fflush(stdout);
}

int dry_run(const Options& o, const std::vector<Config>& grid) {
  std::printf("culstm_bench --dry-run: %zu configurations, order %s\n", grid.size(), o.order.c_str());
  std::printf("cuDNN (direct): %s\n", cudnn_built() ? "built" : "not built");
  int per_config = 0;
  for (const std::string& b : o.backends) {
    if (b == "cuda") per_config += static_cast<int>(o.engines.size());
    else if (b == "cudnn") per_config += cudnn_built() ? static_cast<int>(o.algos.size()) : 0;
    else per_config += static_cast<int>(o.algos.size());
  }
  // Per configuration: the reference (set up + one call) where culstm runners are timed; per measurement: set-up,
  // warm-up, the verification call and the timed calls.
  const bool reference = std::count(o.backends.begin(), o.backends.end(), "cuda") ||
                         std::count(o.backends.begin(), o.backends.end(), "culstm-cudnn");
  double total = 0;
  for (const Config& c : grid) {
    const int runs = std::max(o.min_runs, std::min(o.max_runs, static_cast<int>(std::ceil(o.target_ms / std::max(c.est_call_s * 1e3, 1e-3)))));
    const double est = per_config * (0.3 + c.est_call_s * (o.warmup + 1 + runs)) +
                       (reference ? 0.3 + c.est_call_s : 0.0) + c.weight_elems() * 4e-9;
    total += est;
    std::printf("  tier %d  %-44s  flops %.3g  est %.2f s (cumulative %.0f s)\n", c.tier, c.describe().c_str(),
                c.flops(), est, total);
  }
  std::printf("estimated total: %.0f s (rough: ~8 us per step and layer, %d measurements per configuration%s)\n", total,
              per_config, reference ? " + the verification reference" : "");
  return 0;
}

int bench_main(int argc, char** argv) {
  Options o;
  const int pr = parse_options(argc, argv, &o);
  if (pr == 1) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (pr != 0) return 2;
  const std::vector<Config> grid = make_grid(o);
  if (o.dry_run) return dry_run(o, grid);
  const auto start = Clock::now();
  const bool has_deadline = o.budget_s > 0;
  const auto deadline = start + std::chrono::microseconds(static_cast<long long>(o.budget_s * 1e6));

  std::string e = cuda_err(cudaSetDevice(o.device), "cudaSetDevice");
  if (!e.empty()) {
    std::fprintf(stderr, "culstm_bench: error: %s\n", e.c_str());
    return 1;
  }
  Machine m;
  cudaDeviceProp prop{};
  if ((e = cuda_err(cudaGetDeviceProperties(&prop, o.device), "cudaGetDeviceProperties")) != "") {
    std::fprintf(stderr, "culstm_bench: error: %s\n", e.c_str());
    return 1;
  }
  m.name = prop.name;
  m.sm_count = prop.multiProcessorCount;
  m.cc_major = prop.major;
  m.cc_minor = prop.minor;
  m.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
  m.total_mem = prop.totalGlobalMem;
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  m.cuda_runtime = std::to_string(rt / 1000) + "." + std::to_string((rt % 1000) / 10);
  m.driver = o.driver;
  if (m.driver.empty()) {
    m.driver = run_command("nvidia-smi --query-gpu=driver_version --format=csv,noheader -i " +
                           std::to_string(o.device) + " 2>/dev/null");
  }
  if (m.driver.empty() || m.driver.find(' ') != std::string::npos) {
    m.driver = "cuda-driver-api " + std::to_string(drv / 1000) + "." + std::to_string((drv % 1000) / 10);
  }
  m.cudnn = cudnn_version_string();
  std::printf("culstm_bench: %s (sm_%d%d, %d SMs, L2 %.0f MB), driver %s, CUDA runtime %s, cuDNN %s, culstm %s, "
              "commit %s\n",
              m.name.c_str(), m.cc_major, m.cc_minor, m.sm_count, m.l2_bytes / 1e6, m.driver.c_str(),
              m.cuda_runtime.c_str(), m.cudnn.c_str(), culstm::version(), o.commit.c_str());
  std::printf("timing mode %s; culstm cuda graphs %s%s; %zu configurations\n", o.mode.c_str(),
              graph_mode_name(o).c_str(), o.graphs.empty() ? " (the Context's default)" : " (--graphs)", grid.size());

  // The two ceilings (docs/design.md §6), measured once.
  if (o.ceilings) {
    std::set<std::string> kinds;
    for (const std::string& d : o.dtypes) kinds.insert(gemm_kind(d, o.math));
    for (const std::string& k : kinds) {
      double tf = NAN;
      e = measure_gemm_tflops(k, 8192, 10, &tf);
      if (!e.empty()) std::printf("ceiling: GEMM %s failed: %s\n", k.c_str(), e.c_str());
      else std::printf("ceiling: cuBLAS GEMM %s 8192^3: %.1f TFLOP/s\n", k.c_str(), tf);
      m.gemm_tflops[k] = tf;
    }
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    const std::size_t copy_bytes = std::min<std::size_t>(std::size_t{1} << 30, free_b / 4);
    e = measure_copy_gbps(copy_bytes, 10, &m.copy_gbps);
    if (!e.empty()) std::printf("ceiling: copy failed: %s\n", e.c_str());
    else std::printf("ceiling: device-to-device copy of %zu MiB: %.0f GB/s (read + write)\n", copy_bytes >> 20, m.copy_gbps);
    std::string why;
    if (!device_healthy(&why)) {
      std::fprintf(stderr, "culstm_bench: error: %s\n", why.c_str());
      return 1;
    }
  }
  SyncTable sync;
  if (!o.sync_json.empty()) {
    sync.load(o.sync_json);
    if (!sync.error.empty()) std::printf("sync floor: %s (recurrence floor left out)\n", sync.error.c_str());
    else std::printf("sync floor: %zu measurements from %s\n", sync.rows.size(), o.sync_json.c_str());
  } else {
    std::printf("sync floor: no --sync-json given; recurrence floor left out\n");
  }

  cudaStream_t stream = nullptr;
  if ((e = cuda_err(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate")) != "") {
    std::fprintf(stderr, "culstm_bench: error: %s\n", e.c_str());
    return 1;
  }
  EventPool events;
  Timer timer(o, stream, &events, deadline, has_deadline);
  const std::size_t pool_min = o.rotate_mb > 0 ? static_cast<std::size_t>(o.rotate_mb * 1e6) : 2 * m.l2_bytes;
  std::vector<std::string> records;
  std::size_t done = 0;
  int exit_code = 0;
  print_header();
  // The reference is needed where a culstm runner is timed (they are compared with it).
  const bool want_reference = std::count(o.backends.begin(), o.backends.end(), "cuda") ||
                              std::count(o.backends.begin(), o.backends.end(), "culstm-cudnn");
  for (const Config& c : grid) {
    if (has_deadline && Clock::now() >= deadline) break;
    std::vector<Result> results;
    // Memory: the input pool plus, per runner, outputs, weights (twice: culstm may keep a repacked copy) and
    // room for workspaces, plus the reference's outputs, kept while the others run; skip what cannot fit instead of
    // failing half-way.
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    const double need = std::max<double>(pool_min, 2.0 * c.x_bytes()) + 3.0 * c.y_bytes() +
                        3.0 * c.weight_elems() * c.es() + 2.0 * c.state_bytes() +
                        (want_reference ? static_cast<double>(c.y_bytes() + c.state_bytes()) : 0.0);
    InputPool pool;
    std::string pool_err;
    if (need > 0.9 * free_b) {
      pool_err = "needs ~" + jnum(need / 1e9) + " GB of device memory, " + jnum(free_b / 1e9) + " GB free";
    } else {
      pool_err = pool.init(c, pool_min, stream);
    }
    auto add_failed = [&](const std::string& backend, const std::string& why, const char* status) {
      Result r;
      r.backend = backend;
      r.t.status = status;
      r.t.error = why;
      results.push_back(r);
    };
    bool fatal = false;
    std::string fatal_why;
    Reference ref;
    if (pool_err.empty() && want_reference) {
      ref = make_reference(c, o, pool, stream);
      if (!ref.runner) {
        std::printf("note: %s: no verification reference (%s); culstm runners get the unwritten/non-finite check "
                    "only\n", c.describe().c_str(), ref.why.substr(0, 160).c_str());
      }
      if (ref.failed && !device_healthy(&fatal_why)) fatal = true;
    }
    for (const std::string& b : o.backends) {
      if (fatal) break;
      if (!pool_err.empty()) {
        add_failed(b, pool_err, "skipped");
        continue;
      }
      if (b == "cuda") {
        for (const std::string& eng : o.engines) {
          CulstmRunner runner(culstm::Backend::kCuda, eng, "");
          Result r;
          r.backend = b;
          r.engine_choice = eng;
          r.t = timer.measure(runner, c, pool, 0, &ref);
          results.push_back(r);
          if ((r.t.status == "error" || r.t.status == "wrong_output") && !device_healthy(&fatal_why)) fatal = true;
          if (fatal) break;
        }
      } else {
        // cudnn (direct) or culstm-cudnn: every algorithm, the fastest fully timed one is the record.
        const std::vector<std::string>& algos = o.algos;
        Result r;
        r.backend = b;
        double best = 0;
        for (const std::string& a : algos) {
          if (b == "cudnn" && a == "auto") continue;  // cuDNN itself has no "auto"; culstm-cudnn does
          std::unique_ptr<Runner> runner;
          if (b == "cudnn") runner.reset(new CudnnRunner(a));
          else runner.reset(new CulstmRunner(culstm::Backend::kCudnn, "default", a));
          Timing t = timer.measure(*runner, c, pool, best, &ref);
          if ((t.status == "error" || t.status == "wrong_output") && !device_healthy(&fatal_why)) fatal = true;
          if (!fatal && t.status == "ok" && t.quick && t.median_us * 1e-3 < best) {
            // A "clearly slower" warm-up turned out faster: time it fully.
            t = timer.measure(*runner, c, pool, 0, &ref);
          }
          if (t.status == "ok" && !t.quick && (best == 0 || t.median_us * 1e-3 < best)) best = t.median_us * 1e-3;
          r.alternatives.emplace_back(a, t);
          if (fatal) break;
        }
        // The winner: the fastest fully timed algorithm whose outputs passed the checks (status "ok" only, so a
        // cuDNN algorithm that left its outputs unwritten can never become a fast baseline).
        const Timing* win = nullptr;
        for (const auto& [name, t] : r.alternatives) {
          if (t.status == "ok" && !t.quick && (!win || t.median_us < win->median_us)) {
            win = &t;
            r.algo = name;
          }
        }
        if (win) {
          r.t = *win;
        } else {
          r.t.status = "error";
          for (const auto& [name, t] : r.alternatives) r.t.error += (r.t.error.empty() ? "" : "; ") + name + ": " + t.error;
          if (r.alternatives.empty()) r.t.error = "no algorithm tried";
          // The record's status: wrong_output when any algorithm computed wrong outputs, else the status every
          // algorithm shares (all skipped or all unsupported), else error.
          bool any_wrong = false, all_skipped = !r.alternatives.empty(), all_unsupported = !r.alternatives.empty();
          for (const auto& [name, t] : r.alternatives) {
            any_wrong = any_wrong || t.status == "wrong_output";
            all_skipped = all_skipped && t.status == "skipped";
            all_unsupported = all_unsupported && t.status == "unsupported";
          }
          if (any_wrong) r.t.status = "wrong_output";
          else if (all_skipped) r.t.status = "skipped";
          else if (all_unsupported) r.t.status = "unsupported";
        }
        results.push_back(r);
      }
    }
    double cudnn_best = NAN;
    std::string cudnn_best_name;
    for (const Result& r : results) {
      if ((r.backend == "cudnn" || r.backend == "culstm-cudnn") && r.t.status == "ok" &&
          (!std::isfinite(cudnn_best) || r.t.median_us < cudnn_best)) {
        cudnn_best = r.t.median_us;
        cudnn_best_name = r.backend + ":" + r.algo;
      }
    }
    const Floors f = floors_for(c, o, m, sync);
    for (const Result& r : results) {
      print_row(c, r, f, cudnn_best);
      records.push_back(record_json(r, c, o, m, f, cudnn_best, cudnn_best_name, pool.count, pool.mem.bytes));
    }
    ++done;
    if (!write_json_list(o.json_path, records)) {
      std::fprintf(stderr, "culstm_bench: error: cannot write %s\n", o.json_path.c_str());
      exit_code = 1;
    }
    if (fatal) {
      std::fprintf(stderr, "culstm_bench: error: the CUDA context is broken (%s); stopping\n", fatal_why.c_str());
      return 1;
    }
  }
  if (done < grid.size()) {
    std::printf("culstm_bench: time budget of %.0f s reached: %zu of %zu configurations run; the rest not run:\n",
                o.budget_s, done, grid.size());
    for (std::size_t k = done; k < grid.size() && k < done + 10; ++k) {
      std::printf("  not run: %s\n", grid[k].describe().c_str());
    }
    if (grid.size() > done + 10) std::printf("  ... and %zu more (--dry-run lists the order)\n", grid.size() - done - 10);
  }
  if (!write_json_list(o.json_path, records)) {
    std::fprintf(stderr, "culstm_bench: error: cannot write %s\n", o.json_path.c_str());
    exit_code = 1;
  }
  std::printf("culstm_bench: %zu records in %s (%.0f s)\n", records.size(), o.json_path.c_str(), seconds_since(start));
  cudaStreamDestroy(stream);
  return exit_code;
}

}  // namespace
}  // namespace culstm_bench

int main(int argc, char** argv) { return culstm_bench::bench_main(argc, argv); }
