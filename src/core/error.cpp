#include "epcomm/error.hpp"

#include <cstring>

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
// The path of a source file from the repository's root, whatever folder built it:
// "/home/me/epcomm/src/core/env.cpp" and "../src/core/env.cpp" both become "src/core/env.cpp".
const char* repo_relative(const char* file) {
  if (file == nullptr) return "";
  const char* best = file;
  for (const char* root : {"/src/", "/include/", "/tools/", "/tests/", "/python/"}) {
    for (const char* at = std::strstr(file, root); at != nullptr; at = std::strstr(at + 1, root))
      if (at + 1 > best) best = at + 1;
  }
  return best;
}

std::string decorate(ErrorCategory category, const std::string& message, const char* file, int line) {
  return std::string("epcomm [") + to_string(category) + "] " + message + " (" + file + ":" +
         std::to_string(line) + ")";
}
}  // namespace

Error::Error(ErrorCategory category, std::string message, const char* file, int line)
    : std::runtime_error(decorate(category, message, repo_relative(file), line)),
      category_(category),
      message_(std::move(message)),
      file_(repo_relative(file)),
      line_(line) {}

}  // namespace epcomm
