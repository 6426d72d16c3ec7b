// The TCP bootstrap: a star around rank 0. The frames are in bootstrap/tcp_wire.hpp.
//
//   connect:    each rank r > 0 connects to rank 0 and sends kHello {version, r, world size, job
//               token}. Rank 0 admits a hello only when it is well formed, of this protocol version,
//               for this world size, for a rank in [1, world size) not yet arrived, with this job's
//               token; any other connection (a stranger on the port, junk, a truncated hello, a
//               duplicate rank, another job) is refused: logged, sent kAbort with the reason when
//               it can take it, closed; the group carries on. Once every rank arrived, rank 0 sends
//               kWelcome to each.
//   all_gather: each rank r > 0 sends kData with its block; rank 0 receives all blocks at once
//               (poll over every peer), then sends kData with the whole result to each rank.
//   failure:    when rank 0 fails (a timeout, a size mismatch) it sends kAbort {category, message}
//               to every peer it can still reach, then closes all sockets.
// NOTE: non-root ranks wait a grace period longer than rank 0 (report_grace()), so that rank 0's
// report, which names the rank that is late, reaches them before their own timeout fires.
// After any failure the bootstrap is unusable: frames would be out of step.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <list>
#include <limits>
#include <sstream>
#include <vector>

#include <poll.h>

#include "epcomm/bootstrap.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "core/log.hpp"
#include "bootstrap/job_token.hpp"
#include "bootstrap/socket.hpp"
#include "bootstrap/tcp_wire.hpp"

namespace epcomm {

// The job's identity, when the options name none (see TcpBootstrapOptions::job_token).
std::string resolve_job_token(const TcpBootstrapOptions& o) {
  if (!o.job_token.empty()) return o.job_token;
  if (auto token = env::raw("EPCOMM_JOB_TOKEN")) return *token;
  std::string derived =
      "epcomm:port=" + std::to_string(o.master_port) + ":world=" + std::to_string(o.world_size);
  if (auto run = env::raw("TORCHELASTIC_RUN_ID")) derived += ":run=" + *run;
  return derived;
}

namespace {

// Fails the bootstrap (TcpBootstrap::fail) with the caller's file:line.
#define EPCOMM_TCP_FAIL(category, message) fail((category), (message), __FILE__, __LINE__)

using net::Deadline;
using net::IoResult;
using net::IoStatus;
using std::chrono::milliseconds;
using wire::FrameKind;
using wire::kHeaderBytes;

constexpr milliseconds kAbortSendBudget{200};  // rank 0's total effort to deliver reports
constexpr milliseconds kAbortReadBudget{200};  // a peer's wait for a report after a reset
constexpr std::size_t kMaxNamedRanks = 16;     // longer rank lists are abbreviated
constexpr std::size_t kMaxNamedRefusals = 4;   // refusals a timeout message quotes
// Connections rank 0 holds while their hello is incomplete. A real rank sends its hello at once, so
// when more wait, the oldest is refused to make room: strangers cannot exhaust rank 0's descriptors.
constexpr std::size_t kMaxPendingHellos = 64;

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
// NOTE: a hello's reader points into the same object's `hello`: such an Incoming never moves (rank
// 0 keeps them in a std::list).
struct Incoming {
  int fd = -1;
  int rank = -1;  // -1 until a hello names it
  wire::FrameReader reader;
  std::array<unsigned char, wire::kMaxHelloBytes> hello{};  // payload storage for hellos
};

// Reads what is available; calls on_header(in, header) once the header is complete, which must
// name the payload's storage (in.reader.set_payload) or throw.
template <typename OnHeader>
IoResult read_available(Incoming& in, OnHeader&& on_header) {
  while (true) {
    const std::span<unsigned char> room = in.reader.next();
    const IoResult r = net::recv_some(in.fd, room.data(), room.size());
    if (in.reader.advance(r.done)) on_header(in, in.reader.header());
    if (r.status != IoStatus::kOk || r.done < room.size() || in.reader.complete()) return r;
  }
}

class TcpBootstrap final : public Bootstrap {
 public:
  explicit TcpBootstrap(const TcpBootstrapOptions& options) : opt_(options) {
    opt_.job_token = resolve_job_token(options);
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

  // A wire check that failed (a kBootstrap epcomm::Error) fails the bootstrap, prefixed by `op`.
  template <typename Check>
  void checked(const char* op, Check&& check) {
    try {
      check();
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kBootstrap) throw;
      fail(e.category(), std::string(op) + ": " + e.message(), e.file(), e.line());
    }
  }

  void report_abort(ErrorCategory category, const std::string& message) {
    const std::vector<unsigned char> frame = wire::encode_abort(category, message);
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
    std::list<Incoming> hellos;  // accepted connections whose hello is not complete yet, oldest first
    std::vector<bool> arrived(peers_.size(), false);
    arrived[0] = true;
    int num_arrived = 1;
    while (num_arrived < opt_.world_size) {
      std::vector<pollfd> fds{{listener_.get(), POLLIN, 0}};
      std::vector<Incoming*> polled{nullptr};  // polled[i] reads fds[i]
      for (Incoming& in : hellos) {
        fds.push_back({in.fd, POLLIN, 0});
        polled.push_back(&in);
      }
      const int rc = ::poll(fds.data(), fds.size(), net::poll_timeout_ms(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) {
        EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                        std::string("connect: poll failed: ") + std::strerror(errno));
      }
      if (rc == 0) root_connect_timeout();
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Incoming& in = *polled[i];
        if (const int rank = read_hello(in, arrived); rank > 0) {
          admit(in.fd, rank);
          arrived[static_cast<std::size_t>(rank)] = true;
          ++num_arrived;
          in.fd = -1;
        }
      }
      std::erase_if(hellos, [](const Incoming& in) { return in.fd < 0; });
      if (fds[0].revents & POLLIN) accept_all(hellos);
    }
    // Connections still in the middle of a hello belong to no rank: every rank arrived.
    for (const Incoming& in : hellos) refuse(in.fd, "sent no complete hello before every rank arrived");
    listener_.reset();
    const wire::HeaderBytes welcome = wire::encode_header(FrameKind::kWelcome, 0);
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

  // Takes every pending connection; refuses the oldest incomplete hellos beyond kMaxPendingHellos.
  void accept_all(std::list<Incoming>& hellos) {
    for (net::Fd fd = net::accept_pending(listener_.get()); fd.valid(); fd = net::accept_pending(listener_.get())) {
      if (hellos.size() == kMaxPendingHellos) {
        refuse(hellos.front().fd, "sent no complete hello while " + std::to_string(kMaxPendingHellos) +
                                      " newer connections waited");
        hellos.pop_front();
      }
      hellos.emplace_back().fd = fd.get();
      pending_.push_back(std::move(fd));
    }
  }

  // Reads what `in` sent. Returns the rank of a complete hello that check_hello() admits; 0 while
  // the hello is incomplete; -1 once the connection was refused (and closed: in.fd is then -1).
  int read_hello(Incoming& in, const std::vector<bool>& arrived) {
    try {
      const IoResult r = read_available(in, [](Incoming& x, const wire::Header& h) {
        wire::check_hello_header(h);
        x.reader.set_payload(std::span<unsigned char>(x.hello).first(static_cast<std::size_t>(h.length)));
      });
      if (r.status != IoStatus::kOk) {
        refuse(in.fd, "closed the connection after " + std::to_string(in.reader.received()) +
                          " bytes of a hello (" + net::describe(r) + ")");
      } else if (in.reader.complete()) {
        const auto payload = std::span<const unsigned char>(in.hello).first(in.reader.header().length);
        return wire::check_hello(wire::decode_hello(payload), opt_.world_size, opt_.job_token, arrived);
      } else {
        return 0;
      }
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kBootstrap) throw;
      refuse(in.fd, e.message());
    }
    in.fd = -1;
    return -1;
  }

  void admit(int fd, int rank) {
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](const net::Fd& p) { return p.get() == fd; });
    peers_[static_cast<std::size_t>(rank)] = std::move(*it);
    pending_.erase(it);
    EPCOMM_LOG_DEBUG("bootstrap: rank ", rank, " arrived");
  }

  // Logs why, tells the process when it listens (a rank of ours learns the reason at once), closes.
  // NOTE: the report is sent without waiting: a stranger that reads nothing cannot stall rank 0.
  void refuse(int fd, const std::string& reason) {
    const std::string from = net::peer_address(fd);
    EPCOMM_LOG_WARN("bootstrap: rank 0 refused a connection from ", from, ": ", reason);
    if (refusals_.size() < kMaxNamedRefusals) refusals_.push_back(from + ": " + reason);
    ++num_refused_;
    const std::vector<unsigned char> frame =
        wire::encode_abort(ErrorCategory::kBootstrap, "rank 0 refused this connection: " + reason);
    net::send_all(fd, frame.data(), frame.size(), net::Clock::now());
    std::erase_if(pending_, [fd](const net::Fd& p) { return p.get() == fd; });
  }

  [[noreturn]] void root_connect_timeout() {
    std::vector<int> missing;
    for (int r = 1; r < opt_.world_size; ++r) {
      if (!peers_[r].valid()) missing.push_back(r);
    }
    std::string refused;
    if (num_refused_ > 0) {
      refused = "; refused " + std::to_string(num_refused_) + " connection" + (num_refused_ == 1 ? "" : "s");
      for (std::size_t i = 0; i < refusals_.size(); ++i) refused += (i ? "; " : ": ") + refusals_[i];
      if (num_refused_ > refusals_.size()) refused += "; ...";
    }
    EPCOMM_TCP_FAIL(ErrorCategory::kTimeout,
                    "connect: rank 0 timed out after " + timeout_text() + " waiting for " +
                        std::to_string(opt_.world_size) + " ranks at " + opt_.master_addr + ":" +
                        std::to_string(opt_.master_port) + "; never arrived: " + format_ranks(missing) + refused);
  }

  void root_all_gather(const void* in, unsigned char* out, std::size_t bytes) {
    const Deadline deadline = root_deadline();
    if (bytes > 0) std::memmove(out, in, bytes);
    std::vector<Incoming> blocks(peers_.size() - 1);
    for (int r = 1; r < opt_.world_size; ++r) {
      blocks[r - 1].fd = peers_[r].get();
      blocks[r - 1].rank = r;
    }
    auto on_header = [&](Incoming& b, const wire::Header& h) {
      checked("all_gather", [&] { wire::check_data_header(h, bytes, b.rank); });
      b.reader.set_payload({out + static_cast<std::size_t>(b.rank) * bytes, bytes});
    };
    while (true) {
      std::vector<pollfd> fds;
      std::vector<Incoming*> waiting;
      for (Incoming& b : blocks) {
        if (b.reader.complete()) continue;
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
    const wire::HeaderBytes h = wire::encode_header(FrameKind::kData, total);
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
    const std::vector<unsigned char> hello = wire::encode_hello({.version = wire::kProtocolVersion,
                                                                 .rank = static_cast<std::uint32_t>(opt_.rank),
                                                                 .world_size = static_cast<std::uint32_t>(opt_.world_size),
                                                                 .token = opt_.job_token});
    const IoResult sent = net::send_all(peers_[0].get(), hello.data(), hello.size(), deadline, true);
    if (sent.done < hello.size()) peer_lost_root("connect", sent, "sending its hello");
    peer_expect(
        FrameKind::kWelcome, 0, deadline, "connect",
        "for " + root_text() + " to confirm that all " + std::to_string(opt_.world_size) + " ranks arrived");
  }

  void peer_all_gather(const void* in, unsigned char* out, std::size_t bytes) {
    const Deadline deadline = peer_deadline();
    const int fd = peers_[0].get();
    const wire::HeaderBytes h = wire::encode_header(FrameKind::kData, bytes);
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
    wire::HeaderBytes bytes{};
    const IoResult r = net::recv_all(peers_[0].get(), bytes.data(), kHeaderBytes, deadline);
    if (r.status == IoStatus::kTimeout) {
      EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, std::string(op) + ": rank " + std::to_string(opt_.rank) +
                                                   " timed out after " + timeout_text() + " waiting " +
                                                   waiting_for);
    }
    if (r.status != IoStatus::kOk) peer_lost_root(op, r, "waiting " + waiting_for);
    const wire::Header h = wire::decode_header(bytes);
    if (h.is(FrameKind::kAbort)) peer_reported(op, h, deadline);
    const std::string what = std::string(op) + ": rank " + std::to_string(opt_.rank) +
                             " received an unexpected message from rank 0";
    checked(what.c_str(), [&] { wire::check_reply_header(h, kind, length); });
  }

  // The connection to rank 0 broke (or rank 0 answered early): read rank 0's report if one came.
  [[noreturn]] void peer_lost_root(const char* op, const IoResult& r, const std::string& doing) {
    if (r.status == IoStatus::kTimeout) {
      EPCOMM_TCP_FAIL(ErrorCategory::kTimeout, std::string(op) + ": rank " + std::to_string(opt_.rank) +
                                                   " timed out after " + timeout_text() + " " + doing +
                                                   " (rank 0 stopped reading)");
    }
    wire::HeaderBytes bytes{};
    const Deadline deadline = net::Clock::now() + kAbortReadBudget;
    if (net::recv_all(peers_[0].get(), bytes.data(), kHeaderBytes, deadline).status == IoStatus::kOk) {
      const wire::Header h = wire::decode_header(bytes);
      if (h.is(FrameKind::kAbort)) peer_reported(op, h, deadline);
    }
    EPCOMM_TCP_FAIL(ErrorCategory::kBootstrap,
                    std::string(op) + ": " + root_text() + " closed the connection to rank " +
                        std::to_string(opt_.rank) + " while it was " + doing + " (" +
                        (r.status == IoStatus::kOk ? std::string("it answered early") : net::describe(r)) +
                        "; did rank 0 fail? see its output)");
  }

  // Reads the report whose header `h` (kind kAbort) arrived and throws it. The payload is read only
  // when its length is within wire::kMaxAbortBytes.
  [[noreturn]] void peer_reported(const char* op, const wire::Header& h, Deadline deadline) {
    wire::Abort report{.category = ErrorCategory::kBootstrap, .message = "(the report was lost)"};
    try {
      wire::check_abort_header(h);
      std::vector<unsigned char> payload(static_cast<std::size_t>(h.length));
      if (net::recv_all(peers_[0].get(), payload.data(), payload.size(), deadline).status == IoStatus::kOk) {
        report = wire::decode_abort(payload);
      }
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kBootstrap) throw;
      report.message = "(a malformed report: " + e.message() + ")";
    }
    EPCOMM_TCP_FAIL(report.category, std::string(op) + ": rank " + std::to_string(opt_.rank) +
                                         " stopped because rank 0 reported: " + report.message);
  }

  TcpBootstrapOptions opt_;       // job_token resolved (never empty)
  std::vector<net::Fd> peers_;    // rank 0: [r] is rank r's connection; others: [0] is rank 0's
  std::vector<bool> clean_;       // rank 0: false while a frame to that rank is half sent
  std::vector<net::Fd> pending_;  // rank 0 during connect: accepted, hello not yet admitted
  net::Fd listener_;
  std::vector<std::string> refusals_;  // rank 0: the first kMaxNamedRefusals refusals, for messages
  std::size_t num_refused_ = 0;
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
  const std::string token = resolve_job_token(options);
  EPCOMM_CHECK_ARG(token.size() <= wire::kMaxTokenBytes, "TcpBootstrapOptions::job_token: expected at most ",
                   wire::kMaxTokenBytes, " bytes, got ", token.size(),
                   options.job_token.empty() ? " (from EPCOMM_JOB_TOKEN)" : "");
  return std::make_unique<TcpBootstrap>(options);
}

TcpBootstrapOptions tcp_bootstrap_options_from_env() {
  TcpBootstrapOptions options;
  options.master_addr = env::get_string("MASTER_ADDR");
  options.master_port = static_cast<int>(env::get_int("MASTER_PORT"));
  options.rank = static_cast<int>(env::get_int("RANK"));
  options.world_size = static_cast<int>(env::get_int("WORLD_SIZE"));
  options.timeout = env::get_duration("EPCOMM_BOOTSTRAP_TIMEOUT_MS");
  options.job_token = resolve_job_token(options);
  EPCOMM_CHECK_ARG(options.rank < options.world_size, "environment: RANK=", options.rank,
                   " must be below WORLD_SIZE=", options.world_size);
  return options;
}

}  // namespace epcomm
