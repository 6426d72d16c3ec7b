// What every Bootstrap shares: broadcast and barrier built on all_gather, the callback bootstrap,
// and the discovery of NVLink domains from host identities.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "core/check.hpp"

namespace epcomm {
namespace {

// A host identity travels as a fixed-size record: a 2-byte big-endian length, then the bytes.
constexpr std::size_t kIdentityRecordBytes = 256;
constexpr std::size_t kMaxIdentityBytes = kIdentityRecordBytes - 2;
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

DomainInfo discover_domains(Bootstrap& bootstrap, const std::string& host_identity) {
  EPCOMM_CHECK_ARG(host_identity.size() <= kMaxIdentityBytes, "discover_domains: host_identity has ",
                   host_identity.size(), " bytes, at most ", kMaxIdentityBytes, " are supported");
  const int num_ranks = bootstrap.size();
  std::array<unsigned char, kIdentityRecordBytes> mine{};
  mine[0] = static_cast<unsigned char>(host_identity.size() >> 8);
  mine[1] = static_cast<unsigned char>(host_identity.size() & 0xff);
  std::memcpy(mine.data() + 2, host_identity.data(), host_identity.size());
  std::vector<unsigned char> all(kIdentityRecordBytes * static_cast<std::size_t>(num_ranks));
  bootstrap.all_gather(mine.data(), all.data(), kIdentityRecordBytes);

  std::vector<std::string> identity_of_rank(static_cast<std::size_t>(num_ranks));
  for (int r = 0; r < num_ranks; ++r) {
    const unsigned char* record = all.data() + static_cast<std::size_t>(r) * kIdentityRecordBytes;
    const std::size_t length =
        std::min<std::size_t>((std::size_t{record[0]} << 8) | record[1], kMaxIdentityBytes);
    identity_of_rank[r].assign(reinterpret_cast<const char*>(record + 2), length);
  }

  // Domains numbered in order of first appearance; contiguous equal blocks number them r / G.
  DomainInfo info;
  info.domain_of_rank.resize(static_cast<std::size_t>(num_ranks));
  std::vector<std::string> domains;
  std::vector<int> domain_sizes;
  for (int r = 0; r < num_ranks; ++r) {
    auto it = std::find(domains.begin(), domains.end(), identity_of_rank[r]);
    if (it == domains.end()) {
      domains.push_back(identity_of_rank[r]);
      domain_sizes.push_back(0);
      it = domains.end() - 1;
    }
    const int d = static_cast<int>(it - domains.begin());
    info.domain_of_rank[r] = d;
    ++domain_sizes[d];
  }
  const int num_domains = static_cast<int>(domains.size());
  const bool equal_sizes =
      std::all_of(domain_sizes.begin(), domain_sizes.end(), [&](int s) { return s == domain_sizes[0]; });
  EPCOMM_REQUIRE(equal_sizes, ErrorCategory::kBootstrap,
                 "discover_domains: hosts have different numbers of ranks (every NVLink domain must have "
                 "the same size): ",
                 describe_hosts(identity_of_rank));
  const int ranks_per_domain = num_ranks / num_domains;
  std::vector<int> offending;
  for (int r = 0; r < num_ranks; ++r) {
    if (info.domain_of_rank[r] != r / ranks_per_domain) offending.push_back(r);
  }
  EPCOMM_REQUIRE(offending.empty(), ErrorCategory::kBootstrap,
                 "discover_domains: the ranks of each host must be a contiguous block (rank r on host r / ",
                 ranks_per_domain, "); offending ranks ", join(offending), ": ",
                 describe_hosts(identity_of_rank));

  info.ranks_per_domain = ranks_per_domain;
  info.num_domains = num_domains;
  info.domain = bootstrap.rank() / ranks_per_domain;
  info.local_index = bootstrap.rank() % ranks_per_domain;
  return info;
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
