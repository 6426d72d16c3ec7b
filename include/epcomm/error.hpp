// epcomm::Error: the one exception type the library throws.
//
// Every failure carries a category, the message (which names the argument or the call that
// failed, what was expected and what was given), and the file:line of the check that raised it.
#pragma once

#include <stdexcept>
#include <string>

#include "epcomm/export.hpp"

namespace epcomm {

enum class ErrorCategory {
  kInvalidArgument,  // a caller's input broke a documented precondition
  kUnsupported,      // a valid request this build or machine cannot serve
  kCuda,             // a CUDA runtime or driver call failed
  kNccl,             // an NCCL call failed
  kNvshmem,          // an NVSHMEM call failed
  kBootstrap,        // rendezvous or exchange between ranks failed
  kTimeout,          // a peer did not answer within the configured timeout
  kInternal,         // a broken invariant inside epcomm (a bug)
};

EPCOMM_API const char* to_string(ErrorCategory category) noexcept;

class EPCOMM_API Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, std::string message, const char* file, int line);

  ErrorCategory category() const noexcept { return category_; }
  // The message without the "[category] file:line" decoration.
  const std::string& message() const noexcept { return message_; }
  const char* file() const noexcept { return file_; }
  int line() const noexcept { return line_; }

 private:
  ErrorCategory category_;
  std::string message_;
  const char* file_;
  int line_;
};

}  // namespace epcomm
