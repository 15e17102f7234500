// Internal helpers shared by the library's .cpp files.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "culstm/status.h"

namespace culstm {
namespace detail {

// str("x: expected rank ", 3, ", got ", 2)
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

template <typename... Args>
Status error(StatusCode code, Args&&... args) {
  return Status(code, str(std::forward<Args>(args)...));
}

}  // namespace detail
}  // namespace culstm

// Returns from the enclosing function when `expr` is not ok.
#define CULSTM_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::culstm::Status culstm_status_ = (expr);   \
    if (!culstm_status_.ok()) return culstm_status_; \
  } while (0)
