#include "culstm/weights.h"

#include <cmath>

#include "detail.h"

namespace culstm {
namespace {

struct Expected {
  const char* name;
  const std::vector<float>* values;
  std::int64_t rows, cols;  // cols == 1 for vectors
  bool present;
};

}  // namespace

Weights Weights::zeros_for(const LstmSpec& spec) {
  Weights w;
  w.num_layers_ = spec.num_layers;
  w.num_directions_ = spec.num_directions();
  w.layers_.resize(static_cast<std::size_t>(w.num_layers_ * w.num_directions_));
  const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
  for (int l = 0; l < w.num_layers_; ++l) {
    for (int d = 0; d < w.num_directions_; ++d) {
      LayerWeights& lw = w.at(l, d);
      lw.w_ih.assign(static_cast<std::size_t>(4 * H * spec.layer_input_size(l)), 0.0f);
      lw.w_hh.assign(static_cast<std::size_t>(4 * H * R), 0.0f);
      if (spec.bias) {
        lw.b_ih.assign(static_cast<std::size_t>(4 * H), 0.0f);
        lw.b_hh.assign(static_cast<std::size_t>(4 * H), 0.0f);
      }
      if (P > 0) lw.w_hr.assign(static_cast<std::size_t>(P * H), 0.0f);
      if (spec.peepholes) lw.peephole.assign(static_cast<std::size_t>(3 * H), 0.0f);
    }
  }
  return w;
}

Status Weights::check_against(const LstmSpec& spec) const {
  if (num_layers_ != spec.num_layers || num_directions_ != spec.num_directions()) {
    return detail::error(StatusCode::kShapeMismatch, "weights: expected ", spec.num_layers, " layers x ",
                         spec.num_directions(), " directions, got ", num_layers_, " x ", num_directions_);
  }
  const std::int64_t H = spec.hidden_size, R = spec.recurrent_size(), P = spec.proj_size;
  for (int l = 0; l < num_layers_; ++l) {
    for (int d = 0; d < num_directions_; ++d) {
      const LayerWeights& lw = at(l, d);
      const Expected tensors[] = {
          {"w_ih", &lw.w_ih, 4 * H, spec.layer_input_size(l), true},
          {"w_hh", &lw.w_hh, 4 * H, R, true},
          {"b_ih", &lw.b_ih, 4 * H, 1, spec.bias},
          {"b_hh", &lw.b_hh, 4 * H, 1, spec.bias},
          {"w_hr", &lw.w_hr, P, H, P > 0},
          {"peephole", &lw.peephole, 3 * H, 1, spec.peepholes},
      };
      for (const Expected& t : tensors) {
        const std::int64_t want = t.present ? t.rows * t.cols : 0;
        const auto got = static_cast<std::int64_t>(t.values->size());
        if (got != want) {
          return detail::error(
              StatusCode::kShapeMismatch, "weights layer ", l, " direction ", d, " ", t.name, ": expected ", want,
              " values",
              t.present ? detail::str(" ([", t.rows, ", ", t.cols, "])") : std::string(" (not used by this spec)"),
              ", got ", got);
        }
        for (std::size_t k = 0; k < t.values->size(); ++k) {
          if (!std::isfinite((*t.values)[k])) {
            return detail::error(StatusCode::kInvalidArgument, "weights layer ", l, " direction ", d, " ", t.name, "[",
                                 k, "]: expected a finite value, got ", (*t.values)[k]);
          }
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace culstm
