// culstm/status.h: the result of every public call. No exception crosses the API (docs/design.md §4).
#pragma once

#include <string>
#include <utility>

#include "culstm/export.h"

namespace culstm {

// One code per kind of failure, so callers can branch without parsing messages.
enum class StatusCode : int {
  kOk = 0,
  kInvalidSpec = 1,             // an LstmSpec field is out of range or inconsistent
  kNullPointer = 2,             // required data pointer is null
  kShapeMismatch = 3,           // a tensor's rank or extents disagree with the spec / other tensors
  kDtypeMismatch = 4,           // a tensor's element type is not the one expected
  kDeviceMismatch = 5,          // host tensor where device memory is required, or the reverse
  kLengthOutOfRange = 6,        // a sequence length < 0 or > T
  kExceedsModelLimit = 7,       // batch or sequence length above the Model's maximum
  kWorkspaceTooSmall = 8,       // caller's workspace smaller than workspace_size()
  kUnsupportedCombination = 9,  // options that cannot be used together
  kNotSupported = 10,           // the chosen backend cannot express an option of the spec
  kNotImplemented = 11,         // the backend exists but does not implement this yet
  kBackendUnavailable = 12,     // no GPU, or the library was built without that backend
  kInvalidArgument = 13,        // any other bad argument (message says which)
  kIoError = 14,                // a file could not be opened / read / written
  kFormatError = 15,            // a file is corrupt, truncated or not in the expected format
  kCudaError = 16,
  kCublasError = 17,
  kCudnnError = 18,
  kInternal = 19,  // a bug in culstm
};

// Stable, human-readable name of a code ("ShapeMismatch").
CULSTM_API const char* status_code_name(StatusCode code) noexcept;

class [[nodiscard]] CULSTM_API Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const noexcept { return code_ == StatusCode::kOk; }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // "ShapeMismatch: x: expected rank 3, got 2"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace culstm
