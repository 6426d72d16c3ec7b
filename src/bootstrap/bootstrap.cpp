// What every Bootstrap shares: broadcast and barrier built on all_gather, the callback bootstrap,
// and the discovery of NVLink domains from host identities.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "core/check.hpp"
#include "core/domain_view.hpp"

namespace epcomm {
namespace {

// A host identity travels as a fixed-size record: a 2-byte big-endian length, the bytes, and in the
// last 4 bytes the ranks_per_domain the rank asked for (so ranks that disagree are told).
constexpr std::size_t kIdentityRecordBytes = 256;
constexpr std::size_t kMaxIdentityBytes = kIdentityRecordBytes - 2 - 4;
constexpr std::size_t kMaxHostNameBytes = 256;

class CallbackBootstrap final : public Bootstrap {
 public:
  CallbackBootstrap(int rank, int size, AllGatherFn fn) : rank_(rank), size_(size), fn_(std::move(fn)) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_gather(const void* in, void* out, std::size_t bytes) override {
    EPCOMM_CHECK_ARG(bytes == 0 || (in != nullptr && out != nullptr),
                     "all_gather: in and out must not be null for bytes = ", bytes);
    try {
      fn_(in, out, bytes);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      EPCOMM_THROW(ErrorCategory::kBootstrap, "all_gather: rank ", rank_,
                   ": the caller's all-gather callback failed: ", e.what());
    }
  }

 private:
  int rank_;
  int size_;
  AllGatherFn fn_;
};

std::string describe_hosts(const std::vector<std::string>& identity_of_rank) {
  std::map<std::string, std::vector<int>> ranks_of_host;
  for (std::size_t r = 0; r < identity_of_rank.size(); ++r) {
    ranks_of_host[identity_of_rank[r]].push_back(static_cast<int>(r));
  }
  std::ostringstream os;
  bool first_host = true;
  for (const auto& [identity, ranks] : ranks_of_host) {
    os << (first_host ? "" : "; ") << "host '" << identity << "' has ranks ";
    for (std::size_t i = 0; i < ranks.size(); ++i) os << (i ? "," : "") << ranks[i];
    first_host = false;
  }
  return os.str();
}

std::string join(const std::vector<int>& values) {
  std::ostringstream os;
  for (std::size_t i = 0; i < values.size(); ++i) os << (i ? ", " : "") << values[i];
  return os.str();
}

}  // namespace

void Bootstrap::broadcast(void* data, std::size_t bytes, int root) {
  EPCOMM_CHECK_ARG(root >= 0 && root < size(), "broadcast: root must be in [0, ", size(), "), got ", root);
  EPCOMM_CHECK_ARG(bytes == 0 || data != nullptr, "broadcast: data must not be null for bytes = ", bytes);
  // Bootstrap messages are small: gathering every rank's copy (size() * bytes) keeps this generic.
  std::vector<unsigned char> all(bytes * static_cast<std::size_t>(size()));
  all_gather(data, all.data(), bytes);
  if (rank() != root && bytes > 0)
    std::memcpy(data, all.data() + static_cast<std::size_t>(root) * bytes, bytes);
}

void Bootstrap::barrier() {
  const unsigned char token = 1;
  std::vector<unsigned char> all(static_cast<std::size_t>(size()));
  all_gather(&token, all.data(), 1);
}

std::unique_ptr<Bootstrap> make_callback_bootstrap(int rank, int size, AllGatherFn all_gather) {
  EPCOMM_CHECK_ARG(size >= 1, "make_callback_bootstrap: size must be >= 1, got ", size);
  EPCOMM_CHECK_ARG(rank >= 0 && rank < size, "make_callback_bootstrap: rank must be in [0, ", size, "), got ",
                   rank);
  EPCOMM_CHECK_ARG(static_cast<bool>(all_gather), "make_callback_bootstrap: all_gather must not be empty");
  return std::make_unique<CallbackBootstrap>(rank, size, std::move(all_gather));
}

namespace {

// Ranks grouped by host, hosts in order of first appearance.
struct Hosts {
  std::vector<std::string> identity;        // [H]
  std::vector<std::vector<int>> ranks;      // [H]: ascending
  std::vector<int> host_of_rank;            // [R]
};

Hosts group_by_host(const std::vector<std::string>& identity_of_rank) {
  Hosts hosts;
  std::map<std::string, int> index;
  hosts.host_of_rank.resize(identity_of_rank.size());
  for (std::size_t r = 0; r < identity_of_rank.size(); ++r) {
    const auto [it, added] = index.emplace(identity_of_rank[r], static_cast<int>(hosts.identity.size()));
    if (added) {
      hosts.identity.push_back(identity_of_rank[r]);
      hosts.ranks.emplace_back();
    }
    hosts.host_of_rank[r] = it->second;
    hosts.ranks[static_cast<std::size_t>(it->second)].push_back(static_cast<int>(r));
  }
  return hosts;
}

// One domain per host (ranks_per_domain = 0): hosts of equal size, each a contiguous block.
int ranks_per_host(const Hosts& hosts, const std::vector<std::string>& identity_of_rank) {
  const std::size_t size = hosts.ranks[0].size();
  const bool equal_sizes =
      std::all_of(hosts.ranks.begin(), hosts.ranks.end(), [&](const auto& r) { return r.size() == size; });
  EPCOMM_REQUIRE(equal_sizes, ErrorCategory::kBootstrap,
                 "discover_domains: hosts have different numbers of ranks (every NVLink domain must have "
                 "the same size; ranks_per_domain, a divisor of every host's ranks, splits hosts into equal "
                 "domains): ",
                 describe_hosts(identity_of_rank));
  const int G = static_cast<int>(size);
  std::vector<int> offending;
  for (std::size_t r = 0; r < hosts.host_of_rank.size(); ++r)
    if (hosts.host_of_rank[r] != static_cast<int>(r) / G) offending.push_back(static_cast<int>(r));
  EPCOMM_REQUIRE(offending.empty(), ErrorCategory::kBootstrap,
                 "discover_domains: the ranks of each host must be a contiguous block (rank r on host r / ", G,
                 "); offending ranks ", join(offending), ": ", describe_hosts(identity_of_rank));
  EPCOMM_REQUIRE(G <= kMaxDomainRanks, ErrorCategory::kUnsupported, "discover_domains: a host holds ", G,
                 " ranks, more than the ", kMaxDomainRanks,
                 " one NVLink domain supports; set ranks_per_domain (BufferOptions::ranks_per_domain or "
                 "EPCOMM_RANKS_PER_DOMAIN) to a divisor of ",
                 G);
  return G;
}

// Domains of G given (ranks_per_domain = G > 0): every host's ranks split into domains of G
// consecutive ranks, so G divides every host's rank count and no block of G spans two hosts.
void check_split(const Hosts& hosts, const std::vector<std::string>& identity_of_rank, int G) {
  for (std::size_t h = 0; h < hosts.ranks.size(); ++h) {
    const std::size_t n = hosts.ranks[h].size();
    EPCOMM_REQUIRE(n % static_cast<std::size_t>(G) == 0, ErrorCategory::kInvalidArgument,
                   "discover_domains: ranks_per_domain=", G, " must divide the ranks of every host; host '",
                   hosts.identity[h], "' has ", n, " ranks (", join(hosts.ranks[h]), ")");
  }
  const int num_ranks = static_cast<int>(identity_of_rank.size());
  for (int first = 0; first < num_ranks; first += G) {
    for (int r = first + 1; r < first + G; ++r) {
      EPCOMM_REQUIRE(identity_of_rank[static_cast<std::size_t>(r)] == identity_of_rank[static_cast<std::size_t>(first)],
                     ErrorCategory::kBootstrap, "discover_domains: ranks_per_domain=", G, ": domain ", first / G,
                     " (ranks ", first, "-", first + G - 1, ") spans hosts '", identity_of_rank[static_cast<std::size_t>(first)],
                     "' and '", identity_of_rank[static_cast<std::size_t>(r)],
                     "' (a domain's ranks must share a host): ", describe_hosts(identity_of_rank));
    }
  }
}

void check_ranks_per_domain(int ranks_per_domain) {
  EPCOMM_CHECK_ARG(ranks_per_domain >= 0 && ranks_per_domain <= kMaxDomainRanks,
                   "discover_domains: ranks_per_domain must be 0 (one domain per host) or in [1, ",
                   kMaxDomainRanks, "] (an NVLink domain holds at most ", kMaxDomainRanks, " ranks), got ",
                   ranks_per_domain);
}

}  // namespace

DomainInfo plan_domains(const std::vector<std::string>& identity_of_rank, int rank, int ranks_per_domain) {
  check_ranks_per_domain(ranks_per_domain);
  const int num_ranks = static_cast<int>(identity_of_rank.size());
  EPCOMM_CHECK_ARG(num_ranks >= 1, "plan_domains: identity_of_rank must name at least one rank");
  EPCOMM_CHECK_ARG(rank >= 0 && rank < num_ranks, "plan_domains: rank must be in [0, ", num_ranks, "), got ", rank);
  const Hosts hosts = group_by_host(identity_of_rank);
  int G = ranks_per_domain;
  if (G == 0) {
    G = ranks_per_host(hosts, identity_of_rank);
  } else {
    check_split(hosts, identity_of_rank, G);
  }
  DomainInfo info;
  info.ranks_per_domain = G;
  info.num_domains = num_ranks / G;
  info.domain = rank / G;
  info.local_index = rank % G;
  info.domain_of_rank.resize(static_cast<std::size_t>(num_ranks));
  for (int r = 0; r < num_ranks; ++r) info.domain_of_rank[static_cast<std::size_t>(r)] = r / G;
  return info;
}

DomainInfo discover_domains(Bootstrap& bootstrap, const std::string& host_identity, int ranks_per_domain) {
  EPCOMM_CHECK_ARG(host_identity.size() <= kMaxIdentityBytes, "discover_domains: host_identity has ",
                   host_identity.size(), " bytes, at most ", kMaxIdentityBytes, " are supported");
  check_ranks_per_domain(ranks_per_domain);
  const int num_ranks = bootstrap.size();
  // Record: [length: 2 bytes big-endian][identity][...][ranks_per_domain: 4 bytes big-endian, last].
  std::array<unsigned char, kIdentityRecordBytes> mine{};
  mine[0] = static_cast<unsigned char>(host_identity.size() >> 8);
  mine[1] = static_cast<unsigned char>(host_identity.size() & 0xff);
  std::memcpy(mine.data() + 2, host_identity.data(), host_identity.size());
  const auto g = static_cast<std::uint32_t>(ranks_per_domain);
  for (int b = 0; b < 4; ++b)
    mine[kIdentityRecordBytes - 4 + static_cast<std::size_t>(b)] = static_cast<unsigned char>(g >> (24 - 8 * b));
  std::vector<unsigned char> all(kIdentityRecordBytes * static_cast<std::size_t>(num_ranks));
  bootstrap.all_gather(mine.data(), all.data(), kIdentityRecordBytes);

  std::vector<std::string> identity_of_rank(static_cast<std::size_t>(num_ranks));
  std::vector<std::int32_t> asked(static_cast<std::size_t>(num_ranks));
  for (int r = 0; r < num_ranks; ++r) {
    const unsigned char* record = all.data() + static_cast<std::size_t>(r) * kIdentityRecordBytes;
    const std::size_t length =
        std::min<std::size_t>((std::size_t{record[0]} << 8) | record[1], kMaxIdentityBytes);
    identity_of_rank[static_cast<std::size_t>(r)].assign(reinterpret_cast<const char*>(record + 2), length);
    std::uint32_t theirs = 0;
    for (int b = 0; b < 4; ++b) theirs = theirs << 8 | record[kIdentityRecordBytes - 4 + static_cast<std::size_t>(b)];
    asked[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(theirs);
  }
  // Every rank sees every record, so every rank raises this error alike, with the same words.
  for (int r = 1; r < num_ranks; ++r) {
    EPCOMM_CHECK_ARG(asked[static_cast<std::size_t>(r)] == asked[0],
                     "discover_domains: ranks_per_domain must be the same on every rank; rank 0 passed ", asked[0],
                     ", rank ", r, " passed ", asked[static_cast<std::size_t>(r)]);
  }
  return plan_domains(identity_of_rank, bootstrap.rank(), ranks_per_domain);
}

std::string local_host_identity() {
  std::array<char, kMaxHostNameBytes + 1> host{};
  std::string identity = gethostname(host.data(), kMaxHostNameBytes) == 0 ? std::string(host.data())
                                                                          : std::string("unknown-host");
  // Two machines may carry the same host name (container images often fix one); the boot id,
  // which every process of one boot shares, tells them apart.
  std::ifstream boot_id_file("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  if (boot_id_file && std::getline(boot_id_file, boot_id) && !boot_id.empty()) identity += "/" + boot_id;
  return identity.substr(0, kMaxIdentityBytes);
}

}  // namespace epcomm
