// Two gtest listeners for the GPU suite, which gpu-session runs as one process:
//  - a watchdog: a test that runs longer than CULSTM_TEST_TIMEOUT_S (default 180 s) is named and the process
//    ends (a kernel that never finishes cannot be cancelled; only the process can be stopped), so a hang leaves a
//    log that says where it happened instead of a bare time-out;
//  - a CUDA error a test left pending is named and cleared after the test, so that the library's next forward()
//    (which reports errors it did not cause, before enqueuing) does not fail the following tests for it.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

int timeout_seconds() {
  const char* v = std::getenv("CULSTM_TEST_TIMEOUT_S");
  const int s = v != nullptr ? std::atoi(v) : 0;
  return s > 0 ? s : 180;
}

class Watchdog final : public ::testing::EmptyTestEventListener {
 public:
  Watchdog() {
    std::thread([this] { watch(); }).detach();  // lives as long as the process
  }
  void OnTestStart(const ::testing::TestInfo& test) override {
    std::lock_guard<std::mutex> lock(mu_);
    name_ = std::string(test.test_suite_name()) + "." + test.name();
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds());
    armed_ = true;
  }
  void OnTestEnd(const ::testing::TestInfo& /*test*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
  }

 private:
  void watch() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::lock_guard<std::mutex> lock(mu_);
      if (armed_ && std::chrono::steady_clock::now() > deadline_) {
        std::fprintf(stderr, "\n[culstm watchdog] %s ran longer than %d s (a kernel or stream never finished?)\n",
                     name_.c_str(), timeout_seconds());
        std::fflush(nullptr);
        std::_Exit(3);
      }
    }
  }
  std::mutex mu_;
  std::string name_;
  std::chrono::steady_clock::time_point deadline_{};
  bool armed_ = false;
};

class PendingCudaError final : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& test) override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {  // no GPU: nothing could be pending
      cudaGetLastError();
      return;
    }
    const cudaError_t pending = cudaGetLastError();
    if (pending != cudaSuccess) {
      std::printf("[culstm] %s.%s left a CUDA error pending: %s (cleared)\n", test.test_suite_name(), test.name(),
                  cudaGetErrorName(pending));
    }
  }
};

[[maybe_unused]] const bool g_listeners_installed = [] {
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new Watchdog);
  listeners.Append(new PendingCudaError);
  return true;
}();

}  // namespace
