// The activations and the cell of kernels/cell_math.h at hand-computed points.
#include "cell_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace culstm {
namespace {

using cell::activate;

TEST(Activation, ValuesAtHandComputedPoints) {
  EXPECT_DOUBLE_EQ(activate(Activation::sigmoid(), 0.0), 0.5);
  EXPECT_NEAR(activate(Activation::sigmoid(), 2.0), 0.8807970779778823, 1e-15);
  EXPECT_NEAR(activate(Activation::tanh(), 0.5), 0.46211715726000974, 1e-15);
  EXPECT_DOUBLE_EQ(activate(Activation::relu(), -2.0), 0.0);
  EXPECT_DOUBLE_EQ(activate(Activation::relu(), 3.0), 3.0);
  EXPECT_DOUBLE_EQ(activate(Activation::affine(2.0f, 0.5f), 1.5), 3.5);
  EXPECT_NEAR(activate(Activation::leaky_relu(0.1f), -2.0), -0.2, 1e-8);
  EXPECT_DOUBLE_EQ(activate(Activation::leaky_relu(0.1f), 2.0), 2.0);
  EXPECT_DOUBLE_EQ(activate(Activation::thresholded_relu(1.0f), 0.5), 0.0);
  EXPECT_DOUBLE_EQ(activate(Activation::thresholded_relu(1.0f), 1.5), 1.5);
  EXPECT_NEAR(activate(Activation::scaled_tanh(2.0f, 0.5f), 1.0), 2.0 * 0.46211715726000974, 1e-15);
  EXPECT_NEAR(activate(Activation::hard_sigmoid(), 1.0), 0.7, 1e-8);
  EXPECT_DOUBLE_EQ(activate(Activation::hard_sigmoid(), 3.0), 1.0);
  EXPECT_DOUBLE_EQ(activate(Activation::hard_sigmoid(), -3.0), 0.0);
  EXPECT_NEAR(activate(Activation::hard_sigmoid(1.0f / 6.0f, 0.5f), 1.5), 0.75, 1e-7);
  EXPECT_NEAR(activate(Activation::elu(1.0f), -1.0), std::exp(-1.0) - 1.0, 1e-15);
  EXPECT_DOUBLE_EQ(activate(Activation::elu(1.0f), 2.0), 2.0);
  EXPECT_DOUBLE_EQ(activate(Activation::softsign(), 3.0), 0.75);
  EXPECT_DOUBLE_EQ(activate(Activation::softsign(), -1.0), -0.5);
  EXPECT_NEAR(activate(Activation::softplus(), 0.0), std::log(2.0), 1e-15);
  EXPECT_NEAR(activate(Activation::softplus(), -3.0), std::log1p(std::exp(-3.0)), 1e-15);
}

TEST(Activation, StableAtExtremes) {
  // softplus must not overflow where e^x does.
  EXPECT_DOUBLE_EQ(activate(Activation::softplus(), 1000.0), 1000.0);
  EXPECT_FLOAT_EQ(activate(Activation::softplus(), 200.0f), 200.0f);
  EXPECT_DOUBLE_EQ(activate(Activation::sigmoid(), -1000.0), 0.0);
  EXPECT_DOUBLE_EQ(activate(Activation::sigmoid(), 1000.0), 1.0);
  EXPECT_FLOAT_EQ(activate(Activation::sigmoid(), -100.0f), 0.0f);
}

TEST(Cell, PlainCellByHand) {
  const cell::CellParams p{Activation::sigmoid(), Activation::tanh(), Activation::tanh(), 0.0f, 0.0f, false, false};
  const auto r = cell::lstm_cell<double>(p, 0.5, -0.25, 1.0, 2.0, 0.3, 0, 0, 0);
  const double i = 1 / (1 + std::exp(-0.5)), f = 1 / (1 + std::exp(0.25)), g = std::tanh(1.0);
  const double o = 1 / (1 + std::exp(-2.0));
  const double c = f * 0.3 + i * g;
  EXPECT_NEAR(r.c, c, 1e-15);
  EXPECT_NEAR(r.h, o * std::tanh(c), 1e-15);
}

TEST(Cell, ClipsPeepholesAndCoupledGate) {
  // gate clip 0.4, cell clip 0.2, peepholes (0.5, -1, 2), input_forget.
  const cell::CellParams p{Activation::sigmoid(), Activation::tanh(), Activation::tanh(), 0.4f, 0.2f, true, true};
  // The clips are stored as float: the double computation clamps at the float values.
  const double gate_clip = 0.4f, cell_clip = 0.2f;
  const double c_prev = 0.6;
  const auto r = cell::lstm_cell<double>(p, 0.1, 9.0, -3.0, 0.05, c_prev, 0.5, -1.0, 2.0);
  const double pre_i = std::min(gate_clip, 0.1 + 0.5 * c_prev);  // 0.4 + 1e-16 clamped to the float 0.4f
  const double i = 1 / (1 + std::exp(-pre_i));
  const double f = 1 - i;
  const double g = std::tanh(-gate_clip);
  const double c = std::max(-cell_clip, std::min(cell_clip, f * c_prev + i * g));
  const double pre_o = std::min(gate_clip, std::max(-gate_clip, 0.05 + 2.0 * c));
  const double o = 1 / (1 + std::exp(-pre_o));
  EXPECT_NEAR(r.c, c, 1e-15);
  EXPECT_NEAR(r.h, o * std::tanh(c), 1e-15);
}

}  // namespace
}  // namespace culstm
