// The TCP bootstrap: a star around rank 0.
//
// Protocol (every message is a frame: a 16-byte header {magic, kind, payload length}, big-endian,
// then the payload):
//   connect:    each rank r > 0 connects to rank 0 and sends kHello {version, r, world_size};
//               once every rank arrived and checked out, rank 0 sends kWelcome to each.
//   all_gather: each rank r > 0 sends kData with its block; rank 0 receives all blocks at once
//               (poll over every peer), then sends kData with the whole result to each rank.
//   failure:    when rank 0 fails (a timeout, a size mismatch, a bad hello) it sends kAbort
//               {category, message} to every peer it can still reach, then closes all sockets.
// NOTE: non-root ranks wait a grace period longer than rank 0 (report_grace()), so that rank 0's
// report, which names the rank that is late, reaches them before their own timeout fires.
// After any failure the bootstrap is unusable: frames would be out of step.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include <poll.h>

#include "epcomm/bootstrap.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "core/log.hpp"
#include "bootstrap/socket.hpp"

namespace epcomm {
namespace {

// Fails the bootstrap (TcpBootstrap::fail) with the caller's file:line.
#define EPCOMM_TCP_FAIL(category, message) fail((category), (message), __FILE__, __LINE__)

using net::Deadline;
using net::IoResult;
using net::IoStatus;
using std::chrono::milliseconds;

constexpr std::uint32_t kMagic = 0x45504342;  // "EPCB"
constexpr std::uint32_t kProtocolVersion = 1;
constexpr std::size_t kHeaderBytes = 16;
constexpr std::size_t kHelloBytes = 12;            // version, rank, world size
constexpr std::size_t kMaxAbortBytes = 64 * 1024;  // an abort report is a short text
constexpr milliseconds kAbortSendBudget{200};      // rank 0's total effort to deliver reports
constexpr milliseconds kAbortReadBudget{200};      // a peer's wait for a report after a reset
constexpr std::size_t kMaxNamedRanks = 16;         // longer rank lists are abbreviated

enum class FrameKind : std::uint32_t { kHello = 1, kWelcome = 2, kData = 3, kAbort = 4 };

struct Header {
  std::uint32_t magic = 0;
  FrameKind kind = FrameKind::kData;
  std::uint64_t length = 0;
};
using HeaderBytes = std::array<unsigned char, kHeaderBytes>;

void put_be(unsigned char* p, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i, value >>= 8) p[i] = static_cast<unsigned char>(value & 0xff);
}
std::uint64_t get_be(const unsigned char* p, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | p[i];
  return value;
}

HeaderBytes encode(FrameKind kind, std::uint64_t length) {
  HeaderBytes h{};
  put_be(h.data(), kMagic, 4);
  put_be(h.data() + 4, static_cast<std::uint32_t>(kind), 4);
  put_be(h.data() + 8, length, 8);
  return h;
}
Header decode(const HeaderBytes& h) {
  return Header{static_cast<std::uint32_t>(get_be(h.data(), 4)),
                static_cast<FrameKind>(get_be(h.data() + 4, 4)), get_be(h.data() + 8, 8)};
}

// Grace added to the deadlines of ranks > 0 (see the NOTE at the top).
milliseconds report_grace(milliseconds timeout) {
  return std::min(timeout / 4, milliseconds(1000));
}

std::string format_ranks(const std::vector<int>& ranks) {
  std::ostringstream os;
  os << (ranks.size() == 1 ? "rank " : "ranks ");
  for (std::size_t i = 0; i < ranks.size() && i < kMaxNamedRanks; ++i) os << (i ? ", " : "") << ranks[i];
  if (ranks.size() > kMaxNamedRanks) os << ", ... (" << ranks.size() << " in all)";
  return os.str();
}

// One frame arriving on a non-blocking socket, read in steps as data comes (rank 0 multiplexes).
struct Incoming {
  int fd = -1;
  int rank = -1;  // -1 until a hello names it
  HeaderBytes head{};
  std::size_t head_done = 0;
  bool have_header = false;
  unsigned char* payload = nullptr;  // set by the header callback
  std::size_t payload_size = 0;
  std::size_t payload_done = 0;
  std::array<unsigned char, kHelloBytes> small{};  // payload storage for hellos

  bool complete() const { return have_header && payload_done == payload_size; }
};

// Reads what is available; calls on_header(in, header) once the header is complete, which must
// set in.payload / in.payload_size (or throw).
template <typename OnHeader>
IoResult read_available(Incoming& in, OnHeader&& on_header) {
  if (!in.have_header) {
    IoResult r = net::recv_some(in.fd, in.head.data() + in.head_done, kHeaderBytes - in.head_done);
    in.head_done += r.done;
    if (r.status != IoStatus::kOk || in.head_done < kHeaderBytes) return r;
    in.have_header = true;
    on_header(in, decode(in.head));
  }
  IoResult r = net::recv_some(in.fd, in.payload + in.payload_done, in.payload_size - in.payload_done);
  in.payload_done += r.done;
  return r;
}

class TcpBootstrap final : public Bootstrap {
 public:
  explicit TcpBootstrap(const TcpBootstrapOptions& options) : opt_(options) {
    peers_.resize(static_cast<std::size_t>(opt_.world_size));
    clean_.assign(peers_.size(), true);
    if (opt_.world_size == 1) return;
    if (opt_.rank == 0) {
      root_connect();
    } else {
      peer_connect();
    }
    EPCOMM_LOG_INFO("bootstrap: rank ", opt_.rank, " of ", opt_.world_size, " connected through ",
                    opt_.master_addr, ":", opt_.master_port);
  }

  int rank() const override { return opt_.rank; }
  int size() const override { return opt_.world_size; }

  void all_gather(const void* in, void* out, std::size_t bytes) override {
    EPCOMM_CHECK_ARG(bytes == 0 || (in != nullptr && out != nullptr),
                     "all_gather: in and out must not be null for bytes = ", bytes);
    EPCOMM_CHECK_ARG(bytes <= std::numeric_limits<std::size_t>::max() / peers_.size(),
                     "all_gather: bytes = ", bytes, " times ", opt_.world_size, " ranks overflows");
    EPCOMM_REQUIRE(broken_.empty(), ErrorCategory::kBootstrap, "all_gather: rank ", opt_.rank,
                   ": the bootstrap is unusable after an earlier failure: ", broken_);
    if (opt_.world_size == 1) {
      if (bytes > 0) std::memmove(out, in, bytes);
      return;
    }
    if (opt_.rank == 0) {
      root_all_gather(in, static_cast<unsigned char*>(out), bytes);
    } else {
      peer_all_gather(in, static_cast<unsigned char*>(out), bytes);
    }
  }

 private:
  Deadline root_deadline() const { return net::Clock::now() + opt_.timeout; }
  Deadline peer_deadline() const { return net::Clock::now() + opt_.timeout + report_grace(opt_.timeout); }
  std::string timeout_text() const { return std::to_string(opt_.timeout.count()) + " ms"; }

  // Marks the bootstrap broken, reports to every peer rank 0 can reach, closes, throws an error
  // located at file:line (the caller's, through EPCOMM_TCP_FAIL).
  [[noreturn]] void fail(ErrorCategory category, const std::string& message, const char* file, int line) {
    broken_ = message;
    if (opt_.rank == 0) report_abort(category, message);
    for (net::Fd& fd : peers_) fd.reset();
    pending_.clear();
    listener_.reset();
    EPCOMM_LOG_DEBUG("bootstrap failed: ", message);
    detail::raise(category, message, file, line);
  }

  void report_abort(ErrorCategory category, const std::string& message) {
    const std::string text = message.substr(0, kMaxAbortBytes - 4);
    std::vector<unsigned char> frame(kHeaderBytes + 4 + text.size());
    const HeaderBytes h = encode(FrameKind::kAbort, 4 + text.size());
    std::memcpy(frame.data(), h.data(), kHeaderBytes);
    put_be(frame.data() + kHeaderBytes, static_cast<std::uint32_t>(category), 4);
    std::memcpy(frame.data() + kHeaderBytes + 4, text.data(), text.size());
    const Deadline deadline = net::Clock::now() + kAbortSendBudget;
    auto send = [&](int fd) { net::send_all(fd, frame.data(), frame.size(), deadline); };
    for (std::size_t r = 1; r < peers_.size(); ++r) {
      // A peer we stopped in the middle of a frame cannot parse a report: just close it.
      if (peers_[r].valid() && clean_[r]) send(peers_[r].get());
    }
    for (const net::Fd& fd : pending_) send(fd.get());
  }

  // ---- rank 0 -------------------------------------------------------------------------------

  void root_connect() {
    listener_ = net::listen_tcp(opt_.master_addr, opt_.master_port);
    const Deadline deadline = root_deadline();
    std::vector<Incoming> hellos;  // accepted connections whose hello is not complete yet
    int arrived = 1;
    auto on_header = [&](Incoming& in, const Header& h) {
      if (h.magic != kMagic || h.kind != FrameKind::kHello || h.length != kHelloBytes) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        "connect: rank 0 received a malformed hello on " + opt_.master_addr + ":" +
                            std::to_string(opt_.master_port) + " (is another program using this port?)");
      }
      in.payload = in.small.data();
      in.payload_size = kHelloBytes;
    };
    while (arrived < opt_.world_size) {
      std::vector<pollfd> fds{{listener_.get(), POLLIN, 0}};
      for (const Incoming& in : hellos) fds.push_back({in.fd, POLLIN, 0});
      const int rc = ::poll(fds.data(), fds.size(), net::poll_timeout_ms(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        std::string("connect: poll failed: ") + std::strerror(errno));
      }
      if (rc == 0) root_connect_timeout();
      if (fds[0].revents & POLLIN) {
        for (net::Fd fd = net::accept_pending(listener_.get()); fd.valid();
             fd = net::accept_pending(listener_.get())) {
          hellos.push_back(Incoming{.fd = fd.get()});
          pending_.push_back(std::move(fd));
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Incoming& in = hellos[i - 1];
        const IoResult r = read_available(in, on_header);
        if (r.status != IoStatus::kOk) {
          // Closed before saying hello: not a rank of ours yet; wait for the real one.
          drop_pending(in.fd);
          in.fd = -1;
        } else if (in.complete()) {
          accept_hello(in);
          in.fd = -1;
          ++arrived;
        }
      }
      std::erase_if(hellos, [](const Incoming& in) { return in.fd < 0; });
    }
    listener_.reset();
    const HeaderBytes welcome = encode(FrameKind::kWelcome, 0);
    for (int r = 1; r < opt_.world_size; ++r) {
      const IoResult res = net::send_all(peers_[r].get(), welcome.data(), kHeaderBytes, deadline);
      if (res.status == IoStatus::kTimeout) root_connect_timeout();
      if (res.status != IoStatus::kOk) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        "connect: rank " + std::to_string(r) +
                            " closed its connection to rank 0 before the bootstrap "
                            "completed (" +
                            net::describe(res) + ")");
      }
    }
  }

  void drop_pending(int fd) {
    std::erase_if(pending_, [fd](const net::Fd& p) { return p.get() == fd; });
  }

  void accept_hello(Incoming& in) {
    const auto version = static_cast<std::uint32_t>(get_be(in.small.data(), 4));
    const auto rank = static_cast<std::int32_t>(get_be(in.small.data() + 4, 4));
    const auto world = static_cast<std::int32_t>(get_be(in.small.data() + 8, 4));
    const std::string who = "a process claiming rank " + std::to_string(rank);
    if (version != kProtocolVersion) {
      EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                      "connect: " + who + " speaks bootstrap protocol version " + std::to_string(version) +
                          ", rank 0 speaks " + std::to_string(kProtocolVersion) + " (mixed epcomm builds?)");
    }
    if (world != opt_.world_size) {
      EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                      "connect: world size mismatch: rank " + std::to_string(rank) + " has WORLD_SIZE " +
                          std::to_string(world) + " but rank 0 has " + std::to_string(opt_.world_size));
    }
    if (rank <= 0 || rank >= opt_.world_size) {
      EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                      "connect: " + who + " is out of range: ranks > 0 connect to rank 0 and " +
                          "must be below WORLD_SIZE " + std::to_string(opt_.world_size) +
                          (rank == 0 ? " (two processes have RANK 0)" : ""));
    }
    if (peers_[rank].valid()) {
      EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap, "connect: duplicate rank: two processes claim rank " +
                                                     std::to_string(rank) + " (check RANK of every process)");
    }
    auto it =
        std::find_if(pending_.begin(), pending_.end(), [&](const net::Fd& p) { return p.get() == in.fd; });
    peers_[rank] = std::move(*it);
    pending_.erase(it);
    EPCOMM_LOG_DEBUG("bootstrap: rank ", rank, " arrived");
  }

  [[noreturn]] void root_connect_timeout() {
    std::vector<int> missing;
    for (int r = 1; r < opt_.world_size; ++r) {
      if (!peers_[r].valid()) missing.push_back(r);
    }
    EPCOMM_TCP_FAIL(ErrorCategory::kTimeout,
                    "connect: rank 0 timed out after " + timeout_text() + " waiting for " +
                        std::to_string(opt_.world_size) + " ranks at " + opt_.master_addr + ":" +
                        std::to_string(opt_.master_port) + "; never arrived: " + format_ranks(missing));
  }

  void root_all_gather(const void* in, unsigned char* out, std::size_t bytes) {
    const Deadline deadline = root_deadline();
    if (bytes > 0) std::memmove(out, in, bytes);
    std::vector<Incoming> blocks;
    for (int r = 1; r < opt_.world_size; ++r) blocks.push_back(Incoming{.fd = peers_[r].get(), .rank = r});
    auto on_header = [&](Incoming& b, const Header& h) {
      if (h.magic != kMagic || h.kind != FrameKind::kData) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        "all_gather: rank " + std::to_string(b.rank) +
                            " sent a malformed message (mismatched collective calls?)");
      }
      if (h.length != bytes) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        "all_gather: size mismatch: rank 0 contributes " + std::to_string(bytes) +
                            " bytes but rank " + std::to_string(b.rank) + " contributes " +
                            std::to_string(h.length) + " bytes (all ranks must agree)");
      }
      b.payload = out + static_cast<std::size_t>(b.rank) * bytes;
      b.payload_size = bytes;
    };
    while (true) {
      std::vector<pollfd> fds;
      std::vector<Incoming*> waiting;
      for (Incoming& b : blocks) {
        if (b.complete()) continue;
        fds.push_back({b.fd, POLLIN, 0});
        waiting.push_back(&b);
      }
      if (waiting.empty()) break;
      const int rc = ::poll(fds.data(), fds.size(), net::poll_timeout_ms(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        std::string("all_gather: poll failed: ") + std::strerror(errno));
      }
      if (rc == 0) {
        std::vector<int> late;
        for (const Incoming* b : waiting) late.push_back(b->rank);
        EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, "all_gather: rank 0 timed out after " + timeout_text() +
                                                     " waiting for the blocks of " + format_ranks(late));
      }
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        const IoResult r = read_available(*waiting[i], on_header);
        if (r.status != IoStatus::kOk) {
          EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap, "all_gather: rank " + std::to_string(waiting[i]->rank) +
                                                         " closed its connection to rank 0 (" +
                                                         net::describe(r) +
                                                         "; did that process fail? see its output)");
        }
      }
    }
    const std::size_t total = bytes * peers_.size();
    const HeaderBytes h = encode(FrameKind::kData, total);
    for (int r = 1; r < opt_.world_size; ++r) {
      clean_[r] = false;
      IoResult res = net::send_all(peers_[r].get(), h.data(), kHeaderBytes, deadline);
      if (res.status == IoStatus::kOk) res = net::send_all(peers_[r].get(), out, total, deadline);
      if (res.status == IoStatus::kTimeout) {
        EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, "all_gather: rank 0 timed out after " + timeout_text() +
                                                     " sending the result to rank " + std::to_string(r) +
                                                     " (it stopped reading)");
      }
      if (res.status != IoStatus::kOk) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        "all_gather: rank " + std::to_string(r) +
                            " closed its connection to rank 0 while receiving the result (" +
                            net::describe(res) + ")");
      }
      clean_[r] = true;
    }
  }

  // ---- ranks > 0 ----------------------------------------------------------------------------

  std::string root_text() const {
    return "rank 0 at " + opt_.master_addr + ":" + std::to_string(opt_.master_port);
  }

  void peer_connect() {
    const Deadline deadline = peer_deadline();
    std::string last_error;
    net::Fd fd = net::connect_with_retry(opt_.master_addr, opt_.master_port, deadline, last_error);
    if (!fd.valid()) {
      EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, "connect: rank " + std::to_string(opt_.rank) +
                                                   " timed out after " + timeout_text() + " waiting for " +
                                                   root_text() + " (last error: " + last_error + ")");
    }
    peers_[0] = std::move(fd);
    std::array<unsigned char, kHeaderBytes + kHelloBytes> hello{};
    const HeaderBytes h = encode(FrameKind::kHello, kHelloBytes);
    std::memcpy(hello.data(), h.data(), kHeaderBytes);
    put_be(hello.data() + kHeaderBytes, kProtocolVersion, 4);
    put_be(hello.data() + kHeaderBytes + 4, static_cast<std::uint32_t>(opt_.rank), 4);
    put_be(hello.data() + kHeaderBytes + 8, static_cast<std::uint32_t>(opt_.world_size), 4);
    const IoResult sent = net::send_all(peers_[0].get(), hello.data(), hello.size(), deadline, true);
    if (sent.done < hello.size()) peer_lost_root("connect", sent, "sending its hello");
    peer_expect(
        FrameKind::kWelcome, 0, deadline, "connect",
        "for " + root_text() + " to confirm that all " + std::to_string(opt_.world_size) + " ranks arrived");
  }

  void peer_all_gather(const void* in, unsigned char* out, std::size_t bytes) {
    const Deadline deadline = peer_deadline();
    const int fd = peers_[0].get();
    const HeaderBytes h = encode(FrameKind::kData, bytes);
    // Rank 0 answers before taking our whole block only to report a failure (send_all stops).
    IoResult sent = net::send_all(fd, h.data(), kHeaderBytes, deadline, true);
    if (sent.done < kHeaderBytes) peer_lost_root("all_gather", sent, "sending its block");
    sent = net::send_all(fd, in, bytes, deadline, true);
    if (sent.done < bytes) peer_lost_root("all_gather", sent, "sending its block");
    const std::size_t total = bytes * peers_.size();
    peer_expect(FrameKind::kData, total, deadline, "all_gather", "for the result from rank 0");
    const IoResult got = net::recv_all(fd, out, total, deadline);
    if (got.status != IoStatus::kOk) peer_lost_root("all_gather", got, "receiving the result");
  }

  // Reads the next frame header from rank 0: returns when it is `kind` with `length`; throws the
  // error rank 0 reported, or names the timeout or the lost connection.
  void peer_expect(FrameKind kind, std::uint64_t length, Deadline deadline, const char* op,
                   const std::string& waiting_for) {
    HeaderBytes bytes{};
    const IoResult r = net::recv_all(peers_[0].get(), bytes.data(), kHeaderBytes, deadline);
    if (r.status == IoStatus::kTimeout) {
      EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, std::string(op) + ": rank " + std::to_string(opt_.rank) +
                                                   " timed out after " + timeout_text() + " waiting " +
                                                   waiting_for);
    }
    if (r.status != IoStatus::kOk) peer_lost_root(op, r, "waiting " + waiting_for);
    const Header h = decode(bytes);
    if (h.magic == kMagic && h.kind == FrameKind::kAbort) peer_reported(op, h, deadline);
    if (h.magic != kMagic || h.kind != kind || h.length != length) {
      EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                      std::string(op) + ": rank " + std::to_string(opt_.rank) +
                          " received an unexpected message from rank 0 (mismatched "
                          "collective calls or sizes?)");
    }
  }

  // The connection to rank 0 broke (or rank 0 answered early): read rank 0's report if one came.
  [[noreturn]] void peer_lost_root(const char* op, const IoResult& r, const std::string& doing) {
    if (r.status == IoStatus::kTimeout) {
      EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, std::string(op) + ": rank " + std::to_string(opt_.rank) +
                                                   " timed out after " + timeout_text() + " " + doing +
                                                   " (rank 0 stopped reading)");
    }
    HeaderBytes bytes{};
    const Deadline deadline = net::Clock::now() + kAbortReadBudget;
    if (net::recv_all(peers_[0].get(), bytes.data(), kHeaderBytes, deadline).status == IoStatus::kOk) {
      const Header h = decode(bytes);
      if (h.magic == kMagic && h.kind == FrameKind::kAbort) peer_reported(op, h, deadline);
    }
    EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                    std::string(op) + ": " + root_text() + " closed the connection to rank " +
                        std::to_string(opt_.rank) + " while it was " + doing + " (" +
                        (r.status == IoStatus::kOk ? std::string("it answered early") : net::describe(r)) +
                        "; did rank 0 fail? see its output)");
  }

  [[noreturn]] void peer_reported(const char* op, const Header& h, Deadline deadline) {
    std::string text = "(the report was lost)";
    ErrorCategory category = ErrorCategory::kBootstrap;
    if (h.length >= 4 && h.length <= kMaxAbortBytes) {
      std::vector<unsigned char> payload(h.length);
      if (net::recv_all(peers_[0].get(), payload.data(), payload.size(), deadline).status == IoStatus::kOk) {
        const auto code = get_be(payload.data(), 4);
        if (code <= static_cast<std::uint32_t>(ErrorCategory::kInternal)) {
          category = static_cast<ErrorCategory>(code);
        }
        text.assign(payload.begin() + 4, payload.end());
      }
    }
    EPCOMM_TCP_FAIL(category, std::string(op) + ": rank " + std::to_string(opt_.rank) +
                                  " stopped because rank 0 reported: " + text);
  }

  TcpBootstrapOptions opt_;
  std::vector<net::Fd> peers_;    // rank 0: [r] is rank r's connection; others: [0] is rank 0's
  std::vector<bool> clean_;       // rank 0: false while a frame to that rank is half sent
  std::vector<net::Fd> pending_;  // rank 0 during connect: accepted, hello not yet checked
  net::Fd listener_;
  std::string broken_;  // why the bootstrap is unusable; empty while it works
};

#undef EPCOMM_TCP_FAIL

}  // namespace

std::unique_ptr<Bootstrap> make_tcp_bootstrap(const TcpBootstrapOptions& options) {
  EPCOMM_CHECK_ARG(options.world_size >= 1, "TcpBootstrapOptions::world_size must be >= 1, got ",
                   options.world_size);
  EPCOMM_CHECK_ARG(options.rank >= 0 && options.rank < options.world_size,
                   "TcpBootstrapOptions::rank must be in [0, world_size = ", options.world_size, "), got ",
                   options.rank);
  EPCOMM_CHECK_ARG(options.world_size == 1 || (options.master_port >= 1 && options.master_port <= 65535),
                   "TcpBootstrapOptions::master_port must be in [1, 65535], got ", options.master_port);
  EPCOMM_CHECK_ARG(options.world_size == 1 || !options.master_addr.empty(),
                   "TcpBootstrapOptions::master_addr must not be empty");
  EPCOMM_CHECK_ARG(options.timeout.count() > 0, "TcpBootstrapOptions::timeout must be positive, got ",
                   options.timeout.count(), " ms");
  return std::make_unique<TcpBootstrap>(options);
}

TcpBootstrapOptions tcp_bootstrap_options_from_env() {
  TcpBootstrapOptions options;
  options.master_addr = env::get_string("MASTER_ADDR");
  options.master_port = static_cast<int>(env::get_int("MASTER_PORT"));
  options.rank = static_cast<int>(env::get_int("RANK"));
  options.world_size = static_cast<int>(env::get_int("WORLD_SIZE"));
  options.timeout = env::get_duration("EPCOMM_BOOTSTRAP_TIMEOUT_MS");
  EPCOMM_CHECK_ARG(options.rank < options.world_size, "environment: RANK=", options.rank,
                   " must be below WORLD_SIZE=", options.world_size);
  return options;
}

}  // namespace epcomm
