// Connections the TCP bootstrap's rank 0 refuses (bootstrap_tcp.cpp, bootstrap/tcp_wire.hpp): a
// stranger writing junk, a silent one, a truncated hello, a hello announcing 2^60 bytes, another
// protocol version, another job's token, a duplicate rank, another world size. Each connects while a
// real group of 3 forms over loopback; each is refused and logged by rank 0, and the group completes.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "bootstrap/socket.hpp"
#include "bootstrap/tcp_wire.hpp"
#include "core/log.hpp"
#include "cpu/test_bootstrap_common.hpp"

namespace epcomm {
namespace {

using namespace bootstrap_testing;

constexpr int kWorld = 3;
constexpr milliseconds kGroupTimeout{10000};

// Process ids of run_processes beyond the real ranks 0..kWorld-1.
enum Stranger : int { kJunk = 100, kSilent, kTruncated, kOversized, kOldVersion, kWrongToken };

// The hello a rank of this test's group would send, altered by the caller.
wire::Hello group_hello(int port, int rank) {
  return {.version = wire::kProtocolVersion,
          .rank = static_cast<std::uint32_t>(rank),
          .world_size = kWorld,
          .token = "epcomm:port=" + std::to_string(port) + ":world=" + std::to_string(kWorld)};
}

// Connects to rank 0 (waiting until it listens), sends `bytes`, half-closes when `finish`, and
// returns what rank 0 answered: "refused: <report>", or how the connection ended.
std::string visit(int port, const std::vector<unsigned char>& bytes, bool finish) {
  const auto deadline = Clock::now() + kGroupTimeout;
  std::string error;
  net::Fd fd = net::connect_with_retry("127.0.0.1", port, deadline, error);
  if (!fd.valid()) return "could not connect: " + error;
  if (net::send_all(fd.get(), bytes.data(), bytes.size(), deadline).status != net::IoStatus::kOk) {
    return "send failed";
  }
  if (finish) ::shutdown(fd.get(), SHUT_WR);
  wire::HeaderBytes head{};
  const net::IoResult r = net::recv_all(fd.get(), head.data(), head.size(), deadline);
  if (r.status != net::IoStatus::kOk) return "no report (" + net::describe(r) + ")";
  const wire::Header h = wire::decode_header(head);
  wire::check_abort_header(h);
  std::vector<unsigned char> payload(static_cast<std::size_t>(h.length));
  if (net::recv_all(fd.get(), payload.data(), payload.size(), deadline).status != net::IoStatus::kOk) {
    return "truncated report";
  }
  return "refused: " + wire::decode_abort(payload).message;
}

std::string stranger(int kind, int port) {
  std::vector<unsigned char> bytes;
  switch (kind) {
    case kJunk: {
      const std::string probe = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
      return visit(port, {probe.begin(), probe.end()}, true);
    }
    case kSilent:
      return visit(port, {}, false);
    case kTruncated:
      bytes = wire::encode_hello(group_hello(port, 1));
      bytes.resize(wire::kHeaderBytes + 5);
      return visit(port, bytes, true);
    case kOversized: {
      const wire::HeaderBytes h = wire::encode_header(wire::FrameKind::kHello, std::uint64_t{1} << 60);
      return visit(port, {h.begin(), h.end()}, true);
    }
    case kOldVersion: {
      wire::Hello hello = group_hello(port, 1);
      hello.version = 1;
      hello.token.clear();  // version 1 sent no token
      return visit(port, wire::encode_hello(hello), true);
    }
    case kWrongToken: {
      wire::Hello hello = group_hello(port, 1);
      hello.token = "another job";
      return visit(port, wire::encode_hello(hello), true);
    }
  }
  return "unknown stranger";
}

// Sends this process's stderr (where the logger writes) to a temporary file; text() reads it.
class CapturedStderr {
 public:
  CapturedStderr() {
    char name[] = "/tmp/epcomm_test_log_XXXXXX";
    const int fd = ::mkstemp(name);
    path_ = name;
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~CapturedStderr() { std::remove(path_.c_str()); }
  std::string text() const {
    std::ifstream file(path_);
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  }

 private:
  std::string path_;
};

// A real rank: connects (ranks > 0 after `delay`), all-gathers and checks. Rank 0 returns "ok"
// followed by what it logged.
std::string real_rank(int port, int rank, milliseconds delay) {
  std::unique_ptr<CapturedStderr> log;
  if (rank == 0) {
    log = std::make_unique<CapturedStderr>();
    log::set_level(log::Level::kWarn);
  } else {
    std::this_thread::sleep_for(delay);
  }
  auto b = make_tcp_bootstrap(options(port, rank, kWorld, kGroupTimeout));
  const auto mine = block_of(rank, 24);
  std::vector<unsigned char> out(24 * kWorld);
  b->all_gather(mine.data(), out.data(), 24);
  if (std::string s = check_gathered(out, kWorld, 24); s != "ok") return s;
  return log ? "ok\n" + log->text() : "ok";
}

std::string refused_as(const std::string& reason) {
  return "refused: rank 0 refused this connection: " + reason;
}

TEST(TcpBootstrapStrangers, EveryStrangerIsRefusedAndLoggedAndTheGroupCompletes) {
  const int port = net::pick_free_port();
  const std::vector<int> who = {0, 1, 2, kJunk, kSilent, kTruncated, kOversized, kOldVersion, kWrongToken};
  // Ranks 1 and 2 come late, so that every stranger but the silent one is refused before they arrive.
  auto reports = run_processes(who, [&](int id) {
    return id < kWorld ? real_rank(port, id, milliseconds(1000)) : stranger(id, port);
  });
  ASSERT_EQ(reports.size(), who.size());
  const std::string& log = reports[0].text;
  EXPECT_EQ(log.rfind("ok\n", 0), 0u) << log;
  EXPECT_EQ(reports[1].text, "ok");
  EXPECT_EQ(reports[2].text, "ok");
  // What each stranger was told (the junk's report may be lost: rank 0 closes with its rest unread).
  const std::vector<std::pair<int, std::string>> reasons = {
      {kJunk, "not an epcomm bootstrap hello (magic 0x47455420, kind"},
      {kSilent, "sent no complete hello before every rank arrived"},
      {kTruncated, "closed the connection after 21 bytes of a hello"},
      {kOversized, "a hello of 1152921504606846976 bytes, expected 12 to 268"},
      {kOldVersion, "a process claiming rank 1 speaks bootstrap protocol version 1, rank 0 speaks 2"},
      {kWrongToken, "a process claiming rank 1 presented another job's token"},
  };
  for (const auto& [id, reason] : reasons) {
    const std::size_t i = static_cast<std::size_t>(std::find(who.begin(), who.end(), id) - who.begin());
    EXPECT_EQ(reports[i].exit_code, 0) << id;
    if (id != kJunk) EXPECT_EQ(reports[i].text.rfind(refused_as(reason), 0), 0u) << reports[i].text;
    EXPECT_NE(log.find("warn: bootstrap: rank 0 refused a connection from 127.0.0.1:"), std::string::npos) << log;
    EXPECT_NE(log.find(reason), std::string::npos) << "rank 0 did not log: " << reason << "\n" << log;
  }
}

TEST(TcpBootstrapStrangers, DuplicateRankIsRefusedAndTheGroupCompletes) {
  const int port = net::pick_free_port();
  // Two processes claim rank 1 at once; rank 2 comes a second later, so one of them is the duplicate.
  auto reports = run_processes({0, 1, 1, 2}, [&](int rank) {
    return real_rank(port, rank, milliseconds(rank == 2 ? 1000 : 0));
  });
  EXPECT_EQ(reports[0].text.rfind("ok\n", 0), 0u) << reports[0].text;
  EXPECT_NE(reports[0].text.find("duplicate rank: two processes claim rank 1"), std::string::npos)
      << reports[0].text;
  EXPECT_EQ(reports[3].text, "ok");
  const std::string refused =
      "error bootstrap: connect: rank 1 stopped because rank 0 reported: rank 0 refused this connection: "
      "duplicate rank: two processes claim rank 1 (check RANK of every process)";
  const bool first_refused = reports[1].text == refused;
  EXPECT_EQ(reports[first_refused ? 2 : 1].text, "ok");
  EXPECT_EQ(reports[first_refused ? 1 : 2].text, refused);
}

TEST(TcpBootstrapStrangers, OtherWorldSizeIsRefusedAndTheGroupCompletes) {
  const int port = net::pick_free_port();
  constexpr int kWrongWorld = 11;  // a process of rank 1 with WORLD_SIZE 4, before the real rank 1
  auto reports = run_processes({0, 1, 2, kWrongWorld}, [&](int id) -> std::string {
    if (id != kWrongWorld) return real_rank(port, id, milliseconds(1000));
    auto b = make_tcp_bootstrap(options(port, 1, kWorld + 1, kGroupTimeout));
    return "connected";
  });
  EXPECT_EQ(reports[0].text.rfind("ok\n", 0), 0u) << reports[0].text;
  EXPECT_EQ(reports[1].text, "ok");
  EXPECT_EQ(reports[2].text, "ok");
  EXPECT_EQ(reports[3].text,
            "error bootstrap: connect: rank 1 stopped because rank 0 reported: rank 0 refused this "
            "connection: world size mismatch: a process claiming rank 1 has WORLD_SIZE 4 but rank 0 has 3");
}

TEST(TcpBootstrapStrangers, JobTokenFromTheEnvironmentSeparatesJobs) {
  const int port = net::pick_free_port();
  constexpr int kOtherJob = 12;  // rank 2 of another job, before the real rank 2
  auto reports = run_processes({0, 1, 2, kOtherJob}, [&](int id) -> std::string {
    ::setenv("EPCOMM_JOB_TOKEN", id == kOtherJob ? "job-b" : "job-a", 1);
    if (id != kOtherJob) return real_rank(port, id, milliseconds(id == 2 ? 1000 : 0));
    auto b = make_tcp_bootstrap(options(port, 2, kWorld, kGroupTimeout));
    return "connected";
  });
  EXPECT_EQ(reports[0].text.rfind("ok\n", 0), 0u) << reports[0].text;
  EXPECT_EQ(reports[1].text, "ok");
  EXPECT_EQ(reports[2].text, "ok");
  EXPECT_EQ(reports[3].text.rfind("error bootstrap: connect: rank 2 stopped because rank 0 reported: rank 0 "
                                  "refused this connection: a process claiming rank 2 presented another "
                                  "job's token",
                                  0),
            0u)
      << reports[3].text;
}

TEST(TcpBootstrapStrangers, TimeoutQuotesTheRefusals) {
  const int port = net::pick_free_port();
  // The only process claiming rank 1 belongs to another job: rank 0 times out and says why.
  auto reports = run_processes({0, kWrongToken}, [&](int id) -> std::string {
    if (id == kWrongToken) {
      return visit(port, wire::encode_hello({.rank = 1, .world_size = 2, .token = "another job"}), true);
    }
    auto b = make_tcp_bootstrap(options(port, 0, 2, milliseconds(1500)));
    return "connected";
  });
  EXPECT_EQ(reports[0].text.rfind("error timeout: connect: rank 0 timed out after 1500 ms", 0), 0u)
      << reports[0].text;
  EXPECT_NE(reports[0].text.find("never arrived: rank 1; refused 1 connection: 127.0.0.1:"), std::string::npos)
      << reports[0].text;
  EXPECT_NE(reports[0].text.find("a process claiming rank 1 presented another job's token"), std::string::npos)
      << reports[0].text;
}

TEST(TcpBootstrapStrangers, SilentConnectionsCannotCrowdOutTheRanks) {
  const int port = net::pick_free_port();
  constexpr int kSilent = 80;  // more than rank 0 keeps waiting for a hello (64)
  constexpr int kCrowd = 100;
  auto reports = run_processes({0, 1, 2, kCrowd}, [&](int id) -> std::string {
    if (id < kWorld) return real_rank(port, id, milliseconds(1000));
    std::vector<net::Fd> open;  // held until the group formed: rank 0 closes each in the end
    const auto deadline = Clock::now() + kGroupTimeout;
    std::string error;
    for (int i = 0; i < kSilent; ++i) {
      open.push_back(net::connect_with_retry("127.0.0.1", port, deadline, error));
      if (!open.back().valid()) return "could not connect: " + error;
    }
    for (net::Fd& fd : open) {  // each is refused, evicted early or once the group formed
      wire::HeaderBytes head{};
      if (net::recv_all(fd.get(), head.data(), head.size(), deadline).status != net::IoStatus::kOk) {
        return "a silent connection got no report";
      }
    }
    return "ok";
  });
  EXPECT_EQ(reports[0].text.rfind("ok\n", 0), 0u) << reports[0].text;
  EXPECT_EQ(reports[1].text, "ok");
  EXPECT_EQ(reports[2].text, "ok");
  EXPECT_EQ(reports[3].text, "ok");
  // Beyond 64 waiting, each new connection (a silent one, or a real rank arriving while 64 wait)
  // made the oldest give way; the rest were refused once every rank arrived. Each was refused once.
  const auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = reports[0].text.find(needle); at != std::string::npos;
         at = reports[0].text.find(needle, at + 1))
      ++n;
    return n;
  };
  const std::size_t evicted = count("sent no complete hello while 64 newer connections waited");
  const std::size_t at_end = count("sent no complete hello before every rank arrived");
  EXPECT_GE(evicted, std::size_t{kSilent - 64}) << reports[0].text;
  EXPECT_LE(evicted, std::size_t{kSilent - 64 + kWorld - 1}) << reports[0].text;
  EXPECT_EQ(evicted + at_end, std::size_t{kSilent}) << reports[0].text;
}

TEST(TcpBootstrapStrangers, JobTokenComesFromTheEnvironment) {
  // Each case runs in a child process: the environment of this one stays as it was.
  auto token_with = [](const char* job_token, const char* run_id) {
    auto reports = run_processes({0}, [&](int) {
      const auto set = [](const char* name, const char* value) {
        if (value) {
          ::setenv(name, value, 1);
        } else {
          ::unsetenv(name);
        }
      };
      set("MASTER_ADDR", "10.0.0.1");
      set("MASTER_PORT", "29501");
      set("RANK", "3");
      set("WORLD_SIZE", "8");
      set("EPCOMM_JOB_TOKEN", job_token);
      set("TORCHELASTIC_RUN_ID", run_id);
      return tcp_bootstrap_options_from_env().job_token;
    });
    return reports.at(0).text;
  };
  EXPECT_EQ(token_with("abc", "run-7"), "abc");
  EXPECT_EQ(token_with(nullptr, "run-7"), "epcomm:port=29501:world=8:run=run-7");
  EXPECT_EQ(token_with(nullptr, nullptr), "epcomm:port=29501:world=8");
  EXPECT_EQ(token_with("", ""), "epcomm:port=29501:world=8");  // empty counts as unset
}

TEST(TcpBootstrapStrangers, OverlongJobTokenIsRejected) {
  TcpBootstrapOptions o = options(29500, 0, 2, milliseconds(100));
  o.job_token.assign(wire::kMaxTokenBytes + 1, 'x');
  try {
    make_tcp_bootstrap(o);
    ADD_FAILURE() << "an overlong job token was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("job_token: expected at most 256 bytes, got 257"), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace epcomm
