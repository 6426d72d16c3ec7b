// Helpers of the bootstrap tests (test_bootstrap.cpp, test_bootstrap_strangers.cpp): bodies run in
// forked processes that report a string back, options for a loopback group, and rank-tagged blocks.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "bootstrap/socket.hpp"

namespace epcomm::bootstrap_testing {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct ProcessReport {
  int rank = 0;
  int exit_code = -1;  // -1: killed (by the time limit or a signal)
  std::string text;    // what the body returned, or the error it threw
};

inline std::string describe_error(const Error& e) {
  return std::string(to_string(e.category())) + ": " + e.message();
}

// Runs body(rank) for each rank in a forked process. Each child sends back the string its body
// returns ("ok" by convention) or "error <category>: <message>" for an epcomm::Error; the
// parent gathers them. Children still running after `limit` are killed.
inline std::vector<ProcessReport> run_processes(const std::vector<int>& ranks,
                                                const std::function<std::string(int)>& body,
                                                milliseconds limit = milliseconds(20000)) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids;
  std::vector<int> fds;
  for (int rank : ranks) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      std::string text;
      int code = 0;
      try {
        text = body(rank);
      } catch (const Error& e) {
        text = "error " + describe_error(e);
      } catch (const std::exception& e) {
        text = std::string("uncaught exception: ") + e.what();
        code = 1;
      }
      std::size_t done = 0;
      while (done < text.size()) {
        const ssize_t n = ::write(p[1], text.data() + done, text.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
      ::_exit(code);
    }
    ::close(p[1]);
    pids.push_back(pid);
    fds.push_back(p[0]);
  }
  std::vector<ProcessReport> reports(ranks.size());
  const auto deadline = Clock::now() + limit;
  std::vector<bool> open(fds.size(), true);
  while (std::count(open.begin(), open.end(), true) > 0 && Clock::now() < deadline) {
    std::vector<pollfd> pfds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (open[i]) {
        pfds.push_back({fds[i], POLLIN, 0});
        which.push_back(i);
      }
    }
    ::poll(pfds.data(), pfds.size(), net::poll_timeout_ms(deadline));
    for (std::size_t k = 0; k < pfds.size(); ++k) {
      if (pfds[k].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[which[k]], buf, sizeof(buf));
      if (n > 0) {
        reports[which[k]].text.append(buf, static_cast<std::size_t>(n));
      } else {
        open[which[k]] = false;
      }
    }
  }
  for (std::size_t i = 0; i < pids.size(); ++i) {
    if (open[i]) ::kill(pids[i], SIGKILL);
    int status = 0;
    ::waitpid(pids[i], &status, 0);
    ::close(fds[i]);
    reports[i].rank = ranks[i];
    reports[i].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return reports;
}

inline TcpBootstrapOptions options(int port, int rank, int world_size, milliseconds timeout) {
  TcpBootstrapOptions o;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.rank = rank;
  o.world_size = world_size;
  o.timeout = timeout;
  return o;
}

inline unsigned char pattern(int rank, std::size_t i) {
  return static_cast<unsigned char>(1 + (static_cast<std::size_t>(rank) * 131 + i * 7) % 251);  // never 0
}

inline std::vector<unsigned char> block_of(int rank, std::size_t bytes) {
  std::vector<unsigned char> block(bytes);
  for (std::size_t i = 0; i < bytes; ++i) block[i] = pattern(rank, i);
  return block;
}

// "ok" when out holds every rank's block_of(r, bytes) in rank order, else what differs.
inline std::string check_gathered(const std::vector<unsigned char>& out, int world_size, std::size_t bytes) {
  if (out.size() != bytes * world_size) return "wrong output size";
  for (int r = 0; r < world_size; ++r) {
    for (std::size_t i = 0; i < bytes; ++i) {
      if (out[r * bytes + i] != pattern(r, i)) {
        return "block of rank " + std::to_string(r) + " differs at byte " + std::to_string(i);
      }
    }
  }
  return "ok";
}

inline void expect_all_ok(const std::vector<ProcessReport>& reports) {
  for (const ProcessReport& r : reports) {
    EXPECT_EQ(r.exit_code, 0) << "rank " << r.rank;
    EXPECT_EQ(r.text, "ok") << "rank " << r.rank;
  }
}

}  // namespace epcomm::bootstrap_testing
