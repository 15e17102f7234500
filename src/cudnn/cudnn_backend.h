// Internal: what the cudnn backend exposes beyond BackendImpl (for tests, benchmarks and `culstm check`).
#pragma once

#include <string>

#include "culstm/culstm.hpp"

namespace culstm {

// The cudnn backend's algorithm choices so far: one line per shape that options.cudnn_algo = auto has timed
// ("B=8 T=50 lengths=full: persist_static; standard 0.412 ms, persist_static 0.187 ms, ..."), then the
// algorithms cuDNN refused for the spec. kInvalidArgument when `model` does not run on the cudnn backend;
// kBackendUnavailable when culstm was built without cuDNN.
Status cudnn_tuning_report(const Model& model, std::string* out);

}  // namespace culstm
