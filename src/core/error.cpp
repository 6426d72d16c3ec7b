#include "epcomm/error.hpp"

namespace epcomm {

const char* to_string(ErrorCategory category) noexcept {
  switch (category) {
    case ErrorCategory::kInvalidArgument:
      return "invalid argument";
    case ErrorCategory::kUnsupported:
      return "unsupported";
    case ErrorCategory::kCuda:
      return "cuda";
    case ErrorCategory::kNccl:
      return "nccl";
    case ErrorCategory::kNvshmem:
      return "nvshmem";
    case ErrorCategory::kBootstrap:
      return "bootstrap";
    case ErrorCategory::kTimeout:
      return "timeout";
    case ErrorCategory::kInternal:
      return "internal";
  }
  return "unknown";
}

namespace {
std::string decorate(ErrorCategory category, const std::string& message, const char* file, int line) {
  return std::string("epcomm [") + to_string(category) + "] " + message + " (" + file + ":" +
         std::to_string(line) + ")";
}
}  // namespace

Error::Error(ErrorCategory category, std::string message, const char* file, int line)
    : std::runtime_error(decorate(category, message, file, line)),
      category_(category),
      message_(std::move(message)),
      file_(file),
      line_(line) {}

}  // namespace epcomm
