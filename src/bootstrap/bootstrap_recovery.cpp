// The survivors' new TCP bootstrap (epcomm/bootstrap.hpp, SurvivorGroup).
#include <cstdint>
#include <cstdio>
#include <string>

#include "bootstrap/job_token.hpp"
#include "core/check.hpp"
#include "epcomm/bootstrap.hpp"

namespace epcomm {

namespace {

constexpr int kMaxPort = 65535;

// FNV-1a over the survivor list: survivors with different lists get different tokens, so rank 0
// refuses the ones that disagree with it instead of mixing two views of the group.
std::string survivors_digest(const std::vector<int>& survivors) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (int r : survivors) {
    for (int byte = 0; byte < 4; ++byte) {
      h ^= static_cast<std::uint64_t>((static_cast<std::uint32_t>(r) >> (8 * byte)) & 0xffu);
      h *= 0x100000001b3ull;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void check_survivors(const TcpBootstrapOptions& old, const std::vector<int>& survivors) {
  EPCOMM_CHECK_ARG(!survivors.empty(), "survivors: expected the old ranks that go on, got none");
  for (std::size_t i = 0; i < survivors.size(); ++i) {
    const int r = survivors[i];
    EPCOMM_CHECK_ARG(r >= 0 && r < old.world_size, "survivors: expected old ranks in [0, ", old.world_size,
                     "), got ", r, " at index ", i);
    EPCOMM_CHECK_ARG(i == 0 || survivors[i - 1] < r,
                     "survivors: expected ascending ranks without repeats, got ", survivors[i - 1],
                     " before ", r, " at index ", i);
  }
}

int new_rank_of(const std::vector<int>& survivors, int old_rank) {
  for (std::size_t i = 0; i < survivors.size(); ++i)
    if (survivors[i] == old_rank) return static_cast<int>(i);
  return -1;
}

}  // namespace

TcpBootstrapOptions survivor_bootstrap_options(const TcpBootstrapOptions& old, const SurvivorGroup& group) {
  check_survivors(old, group.survivors);
  const int rank = new_rank_of(group.survivors, old.rank);
  EPCOMM_CHECK_ARG(rank >= 0, "survivors: this rank (old rank ", old.rank,
                   ") is not among them; only survivors make the new bootstrap");
  EPCOMM_CHECK_ARG(group.attempt >= 1, "attempt: expected >= 1 (1 for the first rebuild), got ",
                   group.attempt);
  const std::int64_t port =
      group.master_port != 0 ? group.master_port : static_cast<std::int64_t>(old.master_port) + group.attempt;
  EPCOMM_CHECK_ARG(port >= 1 && port <= kMaxPort, "master_port: the new rendezvous port must be in [1, ",
                   kMaxPort, "], got ", port, group.master_port == 0 ? " (old port + attempt)" : "");
  TcpBootstrapOptions next = old;
  next.rank = rank;
  next.world_size = static_cast<int>(group.survivors.size());
  next.master_port = static_cast<int>(port);
  if (!group.master_addr.empty()) next.master_addr = group.master_addr;
  next.job_token = detail::concat(resolve_job_token(old), ":attempt=", group.attempt,
                                  ":survivors=", survivors_digest(group.survivors));
  return next;
}

std::unique_ptr<Bootstrap> make_survivor_bootstrap(const TcpBootstrapOptions& old,
                                                   const SurvivorGroup& group) {
  return make_tcp_bootstrap(survivor_bootstrap_options(old, group));
}

}  // namespace epcomm
