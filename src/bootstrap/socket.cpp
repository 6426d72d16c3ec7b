#include "bootstrap/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>

#include "core/check.hpp"

namespace epcomm::net {
namespace {

constexpr auto kFirstRetryDelay = std::chrono::milliseconds(10);
constexpr auto kMaxRetryDelay = std::chrono::milliseconds(500);

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const noexcept { freeaddrinfo(info); }
};
using AddrInfoList = std::unique_ptr<addrinfo, AddrInfoDeleter>;

// Resolves host:port; on failure returns null and sets `error`.
AddrInfoList resolve(const std::string& host, int port, bool passive, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    error = "cannot resolve '" + host + "': " + gai_strerror(rc);
    return nullptr;
  }
  return AddrInfoList(list);
}

std::string format_address(const sockaddr* addr, socklen_t len) {
  char host[NI_MAXHOST] = "?";
  char service[NI_MAXSERV] = "?";
  getnameinfo(addr, len, host, sizeof(host), service, sizeof(service), NI_NUMERICHOST | NI_NUMERICSERV);
  return std::string(host) + ":" + service;
}

Fd make_socket(int family) {
  return Fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

void set_no_delay(int fd) noexcept {
  // Frames are a small header followed by the payload: without this, Nagle's algorithm and
  // delayed acknowledgements add ~40 ms to every small exchange.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Linux may connect a socket to itself when the target port is unused and in the ephemeral range.
bool is_self_connection(int fd) noexcept {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return false;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) return false;
  return local_len == peer_len && std::memcmp(&local, &peer, local_len) == 0;
}

// One connection attempt, waiting at most until `deadline`. Invalid Fd and `error` on failure.
Fd try_connect(const addrinfo& addr, Deadline deadline, std::string& error) {
  Fd fd = make_socket(addr.ai_family);
  if (!fd.valid()) {
    error = std::string("socket: ") + std::strerror(errno);
    return Fd();
  }
  int rc = ::connect(fd.get(), addr.ai_addr, addr.ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd.get(), POLLOUT, 0};
    do {
      rc = ::poll(&p, 1, poll_timeout_ms(deadline));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      error = "connect to " + format_address(addr.ai_addr, addr.ai_addrlen) + ": timed out";
      return Fd();
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
    errno = so_error;
    rc = so_error == 0 ? 0 : -1;
  }
  if (rc != 0) {
    error = "connect to " + format_address(addr.ai_addr, addr.ai_addrlen) + ": " + std::strerror(errno);
    return Fd();
  }
  if (is_self_connection(fd.get())) {
    error = "connect to " + format_address(addr.ai_addr, addr.ai_addrlen) + ": nobody listening";
    return Fd();
  }
  set_no_delay(fd.get());
  return fd;
}

// On failure: an invalid Fd, the errno in `error_number` and its text in `error`.
Fd bind_and_listen(int family, const sockaddr* addr, socklen_t len, std::string& error, int& error_number) {
  Fd fd = make_socket(family);
  int one = 1;
  if (!fd.valid() || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(fd.get(), addr, len) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
    error_number = errno;
    error = "listen on " + format_address(addr, len) + ": " + std::strerror(error_number);
    return Fd();
  }
  return fd;
}

}  // namespace

int poll_timeout_ms(Deadline deadline) noexcept {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<std::int64_t>(ms, std::numeric_limits<int>::max()));
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

int Fd::release() noexcept {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);  // close() errors leave nothing to recover; the fd is gone anyway
  fd_ = -1;
}

std::string describe(const IoResult& result) {
  switch (result.status) {
    case IoStatus::kOk:
      return "ok";
    case IoStatus::kTimeout:
      return "timed out";
    case IoStatus::kClosed:
      return result.error_number == 0 ? std::string("connection closed by peer")
                                      : std::string(std::strerror(result.error_number));
    case IoStatus::kFailed:
      return std::string(std::strerror(result.error_number));
  }
  return "unknown";
}

IoResult send_all(int fd, const void* data, std::size_t size, Deadline deadline, bool stop_on_readable) {
  IoResult result;
  const char* bytes = static_cast<const char*>(data);
  while (result.done < size) {
    const ssize_t n = ::send(fd, bytes + result.done, size - result.done, MSG_NOSIGNAL);
    if (n > 0) {
      result.done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      result.error_number = errno;
      result.status = (errno == EPIPE || errno == ECONNRESET) ? IoStatus::kClosed : IoStatus::kFailed;
      return result;
    }
    pollfd p{fd, static_cast<short>(POLLOUT | (stop_on_readable ? POLLIN : 0)), 0};
    const int rc = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return {IoStatus::kFailed, errno, result.done};
    if (rc == 0) return {IoStatus::kTimeout, 0, result.done};
    if (stop_on_readable && (p.revents & POLLIN)) return result;
  }
  return result;
}

IoResult recv_some(int fd, void* data, std::size_t size) {
  IoResult result;
  char* bytes = static_cast<char*>(data);
  while (result.done < size) {
    const ssize_t n = ::recv(fd, bytes + result.done, size - result.done, 0);
    if (n > 0) {
      result.done += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return {IoStatus::kClosed, 0, result.done};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return result;
    result.error_number = errno;
    result.status = errno == ECONNRESET ? IoStatus::kClosed : IoStatus::kFailed;
    return result;
  }
  return result;
}

IoResult recv_all(int fd, void* data, std::size_t size, Deadline deadline) {
  std::size_t done = 0;
  while (true) {
    IoResult step = recv_some(fd, static_cast<char*>(data) + done, size - done);
    done += step.done;
    if (step.status != IoStatus::kOk) return {step.status, step.error_number, done};
    if (done == size) return {IoStatus::kOk, 0, done};
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return {IoStatus::kFailed, errno, done};
    if (rc == 0) return {IoStatus::kTimeout, 0, done};
  }
}

Fd listen_tcp(const std::string& host, int port) {
  std::string error;
  AddrInfoList list = resolve(host, port, /*passive=*/true, error);
  EPCOMM_REQUIRE(list != nullptr, ErrorCategory::kBootstrap, "listen: ", error);
  int error_number = 0;
  for (const addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
    if (Fd fd = bind_and_listen(a->ai_family, a->ai_addr, a->ai_addrlen, error, error_number); fd.valid()) {
      return fd;
    }
    if (error_number != EADDRNOTAVAIL) continue;
    // `host` names another machine's address (or one this machine does not own): listen on every
    // interface instead; peers still reach us through `host` when it routes here.
    if (a->ai_family == AF_INET) {
      sockaddr_in any{};
      any.sin_family = AF_INET;
      any.sin_port = htons(static_cast<uint16_t>(port));
      any.sin_addr.s_addr = htonl(INADDR_ANY);
      Fd fd = bind_and_listen(AF_INET, reinterpret_cast<sockaddr*>(&any), sizeof(any), error, error_number);
      if (fd.valid()) return fd;
    } else if (a->ai_family == AF_INET6) {
      sockaddr_in6 any{};
      any.sin6_family = AF_INET6;
      any.sin6_port = htons(static_cast<uint16_t>(port));
      any.sin6_addr = in6addr_any;
      Fd fd = bind_and_listen(AF_INET6, reinterpret_cast<sockaddr*>(&any), sizeof(any), error, error_number);
      if (fd.valid()) return fd;
    }
  }
  EPCOMM_THROW(ErrorCategory::kBootstrap, error, " (is another job using port ", port, "?)");
}

int local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  EPCOMM_REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0, ErrorCategory::kBootstrap,
                 "getsockname: ", std::strerror(errno));
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

std::string peer_address(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
  return format_address(reinterpret_cast<const sockaddr*>(&addr), len);
}

Fd accept_pending(int listener) {
  while (true) {
    Fd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd.valid()) {
      set_no_delay(fd.get());
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Fd();
    EPCOMM_THROW(ErrorCategory::kBootstrap, "accept: ", std::strerror(errno));
  }
}

Fd connect_with_retry(const std::string& host, int port, Deadline deadline, std::string& last_error) {
  auto delay = std::chrono::duration_cast<Clock::duration>(kFirstRetryDelay);
  last_error = "timed out before the first attempt";
  while (true) {
    if (AddrInfoList list = resolve(host, port, /*passive=*/false, last_error)) {
      for (const addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
        if (Fd fd = try_connect(*a, deadline, last_error); fd.valid()) return fd;
      }
    }
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return Fd();
    std::this_thread::sleep_for(std::min(delay, left));
    delay = std::min(delay * 2, std::chrono::duration_cast<Clock::duration>(kMaxRetryDelay));
  }
}

int pick_free_port() {
  Fd fd = make_socket(AF_INET);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EPCOMM_REQUIRE(fd.valid() && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0,
                 ErrorCategory::kBootstrap, "pick_free_port: bind 127.0.0.1:0: ", std::strerror(errno));
  return local_port(fd.get());
}

}  // namespace epcomm::net
