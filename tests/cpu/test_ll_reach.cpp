// How the low-latency kernels number the ranks they reach across NVLink domains (low_latency/
// ll_reach.hpp, the same functions the hybrid and NVSHMEM policies run on the device), the mapping
// of a domain's workspaces into peer_base (map_domain_workspaces) and the bounded agreement on the
// symmetric workspace's size before NVSHMEM's unbounded collective allocation
// (check_same_ll_workspace_bytes), all on the world view that ll_world_view gives.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "expect_error.hpp"
#include "low_latency/ll_domains.hpp"
#include "low_latency/ll_reach.hpp"

namespace epcomm {
namespace {

using test::expect_error;

DomainView world_view(int rank, int num_ranks, int ranks_per_domain, LlPath path) {
  DomainView domain;  // the Buffer's own domain view: only its status, timeout and mask carry over
  return ll_world_view(domain, rank, num_ranks, ranks_per_domain, path);
}

TEST(LlReach, RankInRangeIncludingBelowTheFirst) {
  EXPECT_TRUE(ll_rank_in(2, 2, 2));
  EXPECT_TRUE(ll_rank_in(2, 2, 3));
  EXPECT_FALSE(ll_rank_in(2, 2, 4));
  EXPECT_FALSE(ll_rank_in(2, 2, 1));  // below the range: wraps to a large unsigned value
  EXPECT_FALSE(ll_rank_in(2, 2, -1));
  EXPECT_FALSE(ll_rank_in(0, 0, 0));  // an empty range holds nothing
}

// Catches a rank of another domain reached by stores (its peer_base slot does not exist), or a
// domain peer sent to by NVSHMEM while its signals are stored (or the reverse), and a PE taken
// from the domain index instead of the global rank.
TEST(LlReach, HybridWorldViewReachesExactlyItsDomainByStores) {
  for (const auto& [R, G] : {std::pair{4, 2}, std::pair{4, 1}, std::pair{8, 4}, std::pair{128, 8}}) {
    for (int rank = 0; rank < R; ++rank) {
      const DomainView v = world_view(rank, R, G, LlPath::kHybrid);
      for (int d = 0; d < R; ++d) {
        const bool same_domain = d / G == rank / G;
        EXPECT_EQ(ll_in_nvl_domain(v, d), same_domain) << R << "x" << G << " rank " << rank << " peer " << d;
        EXPECT_EQ(ll_pe(v, d), d) << "the PE of a view rank is its global rank";
        if (same_domain) {
          EXPECT_EQ(ll_nvl_slot(v, d), d % G);
          EXPECT_LT(ll_nvl_slot(v, d), v.nvl_ranks);
        }
      }
      EXPECT_EQ(ll_nvl_slot(v, rank), rank % G) << "this rank's own slot";
    }
  }
}

// The NVSHMEM-for-every-peer view reaches no rank through peer_base: its only rank reached by
// stores is itself, through its own workspace (NvshmemSelfOnly: [domain_rank, domain_rank + 1)).
TEST(LlReach, NvshmemWorldViewReachesOnlyItself) {
  const DomainView v = world_view(3, 4, 2, LlPath::kNvshmem);
  for (int d = 0; d < 4; ++d) {
    EXPECT_FALSE(ll_in_nvl_domain(v, d));
    EXPECT_EQ(ll_rank_in(v.domain_rank, 1, d), d == 3);
  }
}

// A fake nvshmem_ptr: records each PE asked for and answers a distinct address per PE, or null
// for `unreachable`.
struct FakePeerPointer {
  static std::vector<int>& asked() {
    static std::vector<int> pes;
    return pes;
  }
  static int& unreachable() {
    static int pe = -1;
    return pe;
  }
  static char* address_of(int pe) {
    static char bytes[256];
    return bytes + pe;
  }
  static void* call(void* /*workspace*/, int pe) {
    asked().push_back(pe);
    return pe == unreachable() ? nullptr : address_of(pe);
  }
  FakePeerPointer() {
    asked().clear();
    unreachable() = -1;
  }
};

TEST(LlReach, DomainWorkspacesMapIntoTheirSlotsByGlobalRank) {
  FakePeerPointer fake;
  char workspace[8];
  DomainView v = world_view(3, 4, 2, LlPath::kHybrid);
  EXPECT_EQ(map_domain_workspaces(v, &FakePeerPointer::call, workspace), -1);
  EXPECT_EQ(FakePeerPointer::asked(), std::vector<int>{2}) << "only the domain peer, by its PE";
  EXPECT_EQ(v.peer_base[0], FakePeerPointer::address_of(2));
  EXPECT_EQ(v.peer_base[1], workspace) << "this rank's own slot is its workspace";
  EXPECT_EQ(v.peer_base[2], nullptr) << "no slot beyond the domain";

  FakePeerPointer again;
  DomainView first = world_view(0, 8, 4, LlPath::kHybrid);
  EXPECT_EQ(map_domain_workspaces(first, &FakePeerPointer::call, workspace), -1);
  EXPECT_EQ(FakePeerPointer::asked(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(first.peer_base[0], workspace);
  EXPECT_EQ(first.peer_base[3], FakePeerPointer::address_of(3));
}

TEST(LlReach, UnreachableDomainPeerIsNamed) {
  FakePeerPointer fake;
  FakePeerPointer::unreachable() = 6;
  char workspace[8];
  DomainView v = world_view(5, 8, 4, LlPath::kHybrid);
  EXPECT_EQ(map_domain_workspaces(v, &FakePeerPointer::call, workspace), 6);
}

TEST(LlReach, NoDomainToMapOnTheNvshmemPath) {
  FakePeerPointer fake;
  char workspace[8];
  DomainView v = world_view(1, 4, 2, LlPath::kNvshmem);
  EXPECT_EQ(map_domain_workspaces(v, &FakePeerPointer::call, workspace), -1);
  EXPECT_TRUE(FakePeerPointer::asked().empty());
  for (void* base : v.peer_base) EXPECT_EQ(base, nullptr);
}

// A bootstrap of rank `rank` whose all-gather answers `sizes` (one 8-byte value per rank).
std::shared_ptr<Bootstrap> sizes_bootstrap(int rank, std::vector<std::uint64_t> sizes) {
  const int size = static_cast<int>(sizes.size());
  return make_callback_bootstrap(rank, size, [sizes](const void* /*in*/, void* out, std::size_t bytes) {
    ASSERT_EQ(bytes, sizeof(std::uint64_t));
    std::memcpy(out, sizes.data(), sizes.size() * sizeof(std::uint64_t));
  });
}

TEST(LlReach, SameWorkspaceSizeOnEveryRankPasses) {
  EXPECT_NO_THROW(check_same_ll_workspace_bytes(*sizes_bootstrap(1, {4096, 4096, 4096, 4096}), 4096));
}

TEST(LlReach, DifferentWorkspaceSizeIsRefusedNamingTheRank) {
  expect_error([] { check_same_ll_workspace_bytes(*sizes_bootstrap(0, {4096, 4096, 8192, 4096}), 4096); },
               "rank 2 asks for 8192 bytes, rank 0 for 4096", ErrorCategory::kInvalidArgument);
}

}  // namespace
}  // namespace epcomm
