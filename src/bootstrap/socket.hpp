// Small POSIX TCP helpers for the bootstrap and the launcher. Host code only.
//
// Every socket is non-blocking; every read and write waits with poll() for at most the time left
// until a deadline, so no call here can hang. I/O helpers report timeouts and closed peers as a
// status (the caller knows which rank and operation to name in the error); setup failures that no
// caller can explain better throw epcomm::Error(kBootstrap).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace epcomm::net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Milliseconds left until `deadline` for poll(): 0 once it passed, rounded up otherwise.
int poll_timeout_ms(Deadline deadline) noexcept;

// Owns one file descriptor; closes it on destruction. Move-only.
class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept;
  void reset() noexcept;  // closes the descriptor, if any

 private:
  int fd_ = -1;
};

enum class IoStatus {
  kOk,
  kTimeout,  // the deadline passed first
  kClosed,   // the peer closed the connection (or reset it)
  kFailed,   // another socket error; see error_number
};
struct IoResult {
  IoStatus status = IoStatus::kOk;
  int error_number = 0;  // errno for kFailed and kClosed (0 for an orderly close)
  std::size_t done = 0;  // bytes moved before the status
};
// "timed out", "connection closed by peer", "Connection reset by peer", ...
std::string describe(const IoResult& result);

// Sends / receives exactly `size` bytes unless the deadline passes or the connection breaks.
// With `stop_on_readable`, send_all returns early (status kOk, done < size) as soon as the socket
// has data to read: the peer answered before taking all of our message (an abort report).
IoResult send_all(int fd, const void* data, std::size_t size, Deadline deadline,
                  bool stop_on_readable = false);
IoResult recv_all(int fd, void* data, std::size_t size, Deadline deadline);
// Reads what is available now without waiting; `done` counts the bytes read. kOk with done == 0
// means nothing was pending.
IoResult recv_some(int fd, void* data, std::size_t size);

// Listens on host:port (port 0: any free port) with SO_REUSEADDR. When `host` is not an address of
// this machine, listens on the wildcard address of its family instead. Throws kBootstrap.
Fd listen_tcp(const std::string& host, int port);
// The local port a socket is bound to.
int local_port(int fd);
// "host:port" of a connected socket's peer, for logs; "unknown peer" when it cannot be read.
std::string peer_address(int fd);
// A connection pending on `listener`, or an invalid Fd when none is pending. Throws kBootstrap.
Fd accept_pending(int listener);
// Connects to host:port, retrying with exponential backoff until the deadline (the listener may
// not exist yet). Returns an invalid Fd on timeout, with the last error text in `last_error`.
Fd connect_with_retry(const std::string& host, int port, Deadline deadline, std::string& last_error);

// A TCP port that was free a moment ago on 127.0.0.1 (bound to port 0, then closed).
int pick_free_port();

}  // namespace epcomm::net
