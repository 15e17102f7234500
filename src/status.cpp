#include "culstm/status.h"

namespace culstm {

const char* status_code_name(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk: return "Ok";
    case StatusCode::kInvalidSpec: return "InvalidSpec";
    case StatusCode::kNullPointer: return "NullPointer";
    case StatusCode::kShapeMismatch: return "ShapeMismatch";
    case StatusCode::kDtypeMismatch: return "DtypeMismatch";
    case StatusCode::kDeviceMismatch: return "DeviceMismatch";
    case StatusCode::kLengthOutOfRange: return "LengthOutOfRange";
    case StatusCode::kExceedsModelLimit: return "ExceedsModelLimit";
    case StatusCode::kWorkspaceTooSmall: return "WorkspaceTooSmall";
    case StatusCode::kUnsupportedCombination: return "UnsupportedCombination";
    case StatusCode::kNotSupported: return "NotSupported";
    case StatusCode::kNotImplemented: return "NotImplemented";
    case StatusCode::kBackendUnavailable: return "BackendUnavailable";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kIoError: return "IoError";
    case StatusCode::kFormatError: return "FormatError";
    case StatusCode::kCudaError: return "CudaError";
    case StatusCode::kCublasError: return "CublasError";
    case StatusCode::kCudnnError: return "CudnnError";
    case StatusCode::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Status::to_string() const {
  if (ok()) return "Ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

}  // namespace culstm
