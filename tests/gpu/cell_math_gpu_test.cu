// The one copy of the cell math (kernels/cell_math.h), compiled for the device in float, against the same code on
// the host in double, over every activation and option. Skipped without a GPU.
#include <cmath>
#include <random>
#include <vector>

#include "cell_math.h"
#include "gpu_test_util.h"

namespace culstm {
namespace {

struct CellCase {
  float pre[4];
  float c_prev;
  float peep[3];
};

__global__ void lstm_cell_kernel(cell::CellParams params, const CellCase* cases, int n, float* c_out, float* h_out) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const CellCase cc = cases[k];
  const cell::CellOutput<float> r = cell::lstm_cell<float>(params, cc.pre[0], cc.pre[1], cc.pre[2], cc.pre[3],
                                                           cc.c_prev, cc.peep[0], cc.peep[1], cc.peep[2]);
  c_out[k] = r.c;
  h_out[k] = r.h;
}

std::vector<cell::CellParams> all_params() {
  const Activation acts[] = {Activation::sigmoid(),
                             Activation::tanh(),
                             Activation::relu(),
                             Activation::affine(0.5f, 0.1f),
                             Activation::leaky_relu(0.1f),
                             Activation::thresholded_relu(0.3f),
                             Activation::scaled_tanh(1.5f, 0.7f),
                             Activation::hard_sigmoid(),
                             Activation::elu(0.9f),
                             Activation::softsign(),
                             Activation::softplus()};
  std::vector<cell::CellParams> out;
  for (const Activation& a : acts) {
    out.push_back({a, Activation::tanh(), Activation::tanh(), 0.0f, 0.0f, false, false});
    out.push_back({Activation::sigmoid(), a, Activation::tanh(), 0.0f, 0.0f, false, false});
    out.push_back({Activation::sigmoid(), Activation::tanh(), a, 0.0f, 0.0f, false, false});
  }
  out.push_back({Activation::sigmoid(), Activation::tanh(), Activation::tanh(), 1.5f, 0.0f, false, false});
  out.push_back({Activation::sigmoid(), Activation::tanh(), Activation::tanh(), 0.0f, 0.7f, false, false});
  out.push_back({Activation::sigmoid(), Activation::tanh(), Activation::tanh(), 0.0f, 0.0f, true, false});
  out.push_back({Activation::sigmoid(), Activation::tanh(), Activation::tanh(), 0.0f, 0.0f, false, true});
  out.push_back(
      {Activation::hard_sigmoid(1.0f / 6.0f, 0.5f), Activation::tanh(), Activation::tanh(), 2.0f, 1.0f, true, true});
  return out;
}

TEST(CellMathGpu, DeviceFloatMatchesHostDouble) {
  CULSTM_SKIP_WITHOUT_GPU();
  constexpr int kCases = 4096;
  std::mt19937 rng(123);
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  std::vector<CellCase> cases(kCases);
  for (CellCase& c : cases) {
    for (float& v : c.pre) v = dist(rng);
    c.c_prev = dist(rng);
    for (float& v : c.peep) v = 0.5f * dist(rng);
  }
  CellCase* d_cases = nullptr;
  float *d_c = nullptr, *d_h = nullptr;
  CULSTM_ASSERT_CUDA(cudaMalloc(&d_cases, kCases * sizeof(CellCase)));
  CULSTM_ASSERT_CUDA(cudaMalloc(&d_c, kCases * sizeof(float)));
  CULSTM_ASSERT_CUDA(cudaMalloc(&d_h, kCases * sizeof(float)));
  CULSTM_ASSERT_CUDA(cudaMemcpy(d_cases, cases.data(), kCases * sizeof(CellCase), cudaMemcpyHostToDevice));
  std::vector<float> c_out(kCases), h_out(kCases);
  for (const cell::CellParams& params : all_params()) {
    CULSTM_ASSERT_CUDA(cudaMemset(d_c, 0xff, kCases * sizeof(float)));  // NaN poison
    CULSTM_ASSERT_CUDA(cudaMemset(d_h, 0xff, kCases * sizeof(float)));
    lstm_cell_kernel<<<(kCases + 255) / 256, 256>>>(params, d_cases, kCases, d_c, d_h);
    CULSTM_ASSERT_CUDA(cudaGetLastError());
    CULSTM_ASSERT_CUDA(cudaMemcpy(c_out.data(), d_c, kCases * sizeof(float), cudaMemcpyDeviceToHost));
    CULSTM_ASSERT_CUDA(cudaMemcpy(h_out.data(), d_h, kCases * sizeof(float), cudaMemcpyDeviceToHost));
    for (int k = 0; k < kCases; ++k) {
      const CellCase& c = cases[k];
      const auto ref = cell::lstm_cell<double>(params, c.pre[0], c.pre[1], c.pre[2], c.pre[3], c.c_prev, c.peep[0],
                                               c.peep[1], c.peep[2]);
      // float math on values of order 1..10: a few ulp of the larger of the value and 1.
      ASSERT_NEAR(c_out[k], ref.c, 4e-6 * std::max(1.0, std::fabs(ref.c))) << "case " << k;
      ASSERT_NEAR(h_out[k], ref.h, 4e-6 * std::max(1.0, std::fabs(ref.h))) << "case " << k;
    }
  }
  cudaFree(d_cases);
  cudaFree(d_c);
  cudaFree(d_h);
}

}  // namespace
}  // namespace culstm
