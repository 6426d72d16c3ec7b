// A Buffer over several NVLink domains, without a GPU (internode/md_buffer.hpp,
// epcomm/multi_domain.hpp): which options it takes, what it refuses and when (num_rdma_bytes
// without the NVSHMEM transport before any collective step; a missing or too small symmetric
// region once the domains are known), and the public size hints equal to md_sizes' values. This
// program never links epcomm_nvshmem, so it has NVSHMEM hooks only where a test registers fake ones.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/status_message.hpp"
#include "cpu/expect_error.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/multi_domain.hpp"
#include "internode/md_buffer.hpp"
#include "internode/md_sizes.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {
namespace {

using test::expect_arg_error;
using test::expect_error;

// ---- the public hints ------------------------------------------------------------------------

struct HintCase {
  int G, D, num_sms;
  bool fp8;
};

TEST(InternodeBuffer, HintsEqualTheSizesOfTheLayout) {
  for (const HintCase& c :
       {HintCase{8, 2, 24, false}, HintCase{8, 4, 24, true}, HintCase{2, 2, 2, false},
        HintCase{4, 3, 132, true}, HintCase{1, 64, 24, false}, HintCase{72, 2, 24, true}}) {
    const MultiDomainShape shape{.num_tokens = 4096,
                                 .hidden = 7168,
                                 .num_topk = 8,
                                 .num_experts = 2 * c.G * c.D,
                                 .num_ranks = c.G * c.D,
                                 .ranks_per_domain = c.G,
                                 .fp8 = c.fp8};
    const MdShape md{.num_tokens = 4096,
                     .hidden = 7168,
                     .num_topk = 8,
                     .num_experts = 2 * c.G * c.D,
                     .ranks_per_domain = c.G,
                     .num_domains = c.D,
                     .fp8 = c.fp8};
    SCOPED_TRACE(testing::Message() << c.G << "x" << c.D << " sms " << c.num_sms);
    EXPECT_EQ(multi_domain_rdma_bytes_hint(shape, c.num_sms),
              md_rdma_bytes_hint(md, md_ring_config(md, c.num_sms)));
    EXPECT_EQ(multi_domain_nvl_bytes_hint(shape), md_nvl_bytes_hint(md, std::int64_t{4096} * c.G * c.D));
    EXPECT_EQ(multi_domain_nvl_bytes_hint(shape, 1000), md_nvl_bytes_hint(md, 1000));
    // What the hints give is what an operation of that shape accepts.
    const std::int64_t rdma = multi_domain_rdma_bytes_hint(shape, c.num_sms);
    const MdRingConfig config = md_ring_config(md, c.num_sms);
    for (MdOp op : {kMdOpDispatch, kMdOpCombine})
      EXPECT_GE(md_fit_rdma(rdma, md, config.num_channels, config.staging_slots, op).ring_slots,
                config.ring_slots);
    EXPECT_NO_THROW(check_md_nvl_bytes(multi_domain_nvl_bytes_hint(shape, 1000), md, 1000));
  }
}

TEST(InternodeBuffer, HintsNameTheFieldOutOfRange) {
  const MultiDomainShape good{.num_tokens = 128,
                              .hidden = 1024,
                              .num_topk = 2,
                              .num_experts = 8,
                              .num_ranks = 4,
                              .ranks_per_domain = 2};
  EXPECT_GT(multi_domain_rdma_bytes_hint(good), 0);
  MultiDomainShape s = good;
  s.ranks_per_domain = 3;
  expect_arg_error([&] { multi_domain_rdma_bytes_hint(s); }, "num_ranks, ranks_per_domain");
  s = good;
  s.num_experts = 6;
  expect_arg_error([&] { multi_domain_nvl_bytes_hint(s); }, "num_experts");
  s = good;
  s.fp8 = true;
  s.hidden = 1000;
  expect_arg_error([&] { multi_domain_rdma_bytes_hint(s); }, "hidden");
  expect_arg_error([&] { multi_domain_rdma_bytes_hint(good, 1); }, "num_sms");
  expect_arg_error([&] { multi_domain_nvl_bytes_hint(good, -2); }, "received_rows");
  // Values no call takes are refused, not computed with overflowing sizes.
  expect_arg_error([&] { multi_domain_nvl_bytes_hint(good, INT64_MAX); }, "received_rows");
  s = good;
  s.hidden = INT64_MAX;
  expect_arg_error([&] { multi_domain_nvl_bytes_hint(s); }, "hidden: expected 1 to 131072");
  s = good;
  s.num_tokens = INT64_MAX;
  expect_arg_error([&] { multi_domain_rdma_bytes_hint(s); }, "num_tokens");
  s = good;
  s.num_topk = 33;
  expect_arg_error([&] { multi_domain_rdma_bytes_hint(s); }, "num_topk: expected 0 to 32");
}

// ---- the transport check, before any collective step ---------------------------------------------

// Hooks as epcomm_nvshmem registers them, here only passed to the check (nothing is opened).
bool in_use() {
  return true;
}
bool not_in_use() {
  return false;
}
const LlNvshmemHooks kFree{nullptr, &not_in_use, nullptr, nullptr};
const LlNvshmemHooks kTaken{nullptr, &in_use, nullptr, nullptr};

TEST(InternodeBuffer, NoSymmetricRegionNeedsNothing) {
  EXPECT_NO_THROW(checks::check_md_transport({}, nullptr));
  EXPECT_NO_THROW(checks::check_md_transport({.low_latency_mode = true}, nullptr));
}

TEST(InternodeBuffer, SymmetricRegionWithoutTheTransportIsUnsupported) {
  expect_error([] { checks::check_md_transport({.num_rdma_bytes = 1 << 20}, nullptr); },
               "num_rdma_bytes: 1048576 asks for the multi-domain symmetric region",
               ErrorCategory::kUnsupported);
  expect_error([] { checks::check_md_transport({.num_rdma_bytes = 1}, nullptr); }, "-DEPCOMM_WITH_NVSHMEM=ON",
               ErrorCategory::kUnsupported);
}

TEST(InternodeBuffer, SymmetricRegionWithTheTransport) {
  EXPECT_NO_THROW(checks::check_md_transport({.num_rdma_bytes = 1 << 20}, &kFree));
  expect_error(
      [] { checks::check_md_transport({.num_rdma_bytes = 1 << 20, .low_latency_mode = true}, &kFree); },
      "num_rdma_bytes: a low-latency Buffer takes its workspace from num_nvl_bytes",
      ErrorCategory::kUnsupported);
  expect_error([] { checks::check_md_transport({.num_rdma_bytes = 1 << 20}, &kTaken); },
               "num_rdma_bytes: NVSHMEM is already in use in this process", ErrorCategory::kUnsupported);
}

// A bootstrap that fails the test on any exchange: the refusal must come before the first one.
std::shared_ptr<Bootstrap> no_exchange_bootstrap(int* exchanges) {
  return make_callback_bootstrap(0, 2, [exchanges](const void*, void*, std::size_t) {
    ++*exchanges;
    throw Error(ErrorCategory::kBootstrap, "unexpected exchange", __FILE__, __LINE__);
  });
}

TEST(InternodeBuffer, BufferRefusesTheRegionWithoutTheTransportBeforeAnyExchange) {
  ASSERT_EQ(ll_nvshmem_hooks(), nullptr);  // this program does not link epcomm_nvshmem
  int exchanges = 0;
  expect_error([&] { Buffer buffer(no_exchange_bootstrap(&exchanges), {.num_rdma_bytes = 1 << 20}); },
               "num_rdma_bytes", ErrorCategory::kUnsupported);
  EXPECT_EQ(exchanges, 0);
}

// ---- the domains' check, after discovery ------------------------------------------------------

DomainInfo domains_of(int G, int D) {
  DomainInfo info;
  info.ranks_per_domain = G;
  info.num_domains = D;
  return info;
}

TEST(InternodeBuffer, OneDomainIgnoresTheSymmetricRegion) {
  EXPECT_FALSE(checks::check_md_domains({}, domains_of(8, 1)));
  EXPECT_FALSE(checks::check_md_domains({.num_rdma_bytes = 1 << 20}, domains_of(8, 1)));
  EXPECT_FALSE(checks::check_md_domains({.low_latency_mode = true}, domains_of(8, 1)));
}

TEST(InternodeBuffer, SeveralDomainsNeedTheRegionsHeaderAtLeast) {
  for (const auto& [G, D] :
       {std::pair{1, 2}, std::pair{2, 2}, std::pair{8, 16}, std::pair{8, 256}, std::pair{72, 2}}) {
    const auto header = static_cast<std::int64_t>(MdHeader::make(D, G).total_bytes);
    SCOPED_TRACE(testing::Message() << G << "x" << D << ", header " << header);
    expect_arg_error(
        [&] { checks::check_md_domains({}, domains_of(G, D)); },
        "num_rdma_bytes: " + std::to_string(D) + " NVLink domains of " + std::to_string(G) +
            " ranks need the symmetric region that rows cross domains through; expected at least " +
            std::to_string(header) + " bytes");
    expect_arg_error([&] { checks::check_md_domains({.num_rdma_bytes = header - 1}, domains_of(G, D)); },
                     "got " + std::to_string(header - 1));
    EXPECT_TRUE(checks::check_md_domains({.num_rdma_bytes = header}, domains_of(G, D)));
  }
}

TEST(InternodeBuffer, SeveralDomainsRefuseLowLatencyModeAndTooManyDomains) {
  expect_error(
      [] { checks::check_md_domains({.low_latency_mode = true}, domains_of(2, 2)); },
      "num_domains: high-throughput mode serves one NVLink domain when low_latency_mode is set, got 2 "
      "domains of 2 ranks",
      ErrorCategory::kUnsupported);
  expect_error(
      [] { checks::check_md_domains({.num_rdma_bytes = std::int64_t{1} << 40}, domains_of(1, 257)); },
      "num_domains: at most 256 NVLink domains supported, got 257", ErrorCategory::kUnsupported);
}

// The multi-domain kernels do not read the rank mask: asking a timeout to mask is refused when the
// Buffer is made, not left to fail at the first timeout.
TEST(InternodeBuffer, SeveralDomainsRefuseMaskOnTimeout) {
  const auto header = static_cast<std::int64_t>(MdHeader::make(2, 1).total_bytes);
  expect_error(
      [&] { checks::check_md_domains({.num_rdma_bytes = header, .mask_on_timeout = true}, domains_of(1, 2)); },
      "mask_on_timeout: a multi-domain Buffer (2 NVLink domains of 1 ranks) cannot mask ranks yet",
      ErrorCategory::kUnsupported);
  EXPECT_FALSE(checks::check_md_domains({.mask_on_timeout = true}, domains_of(8, 1)));  // one domain: masks
}

// A peer of another domain that made another call is named with its domain.
TEST(InternodeBuffer, MismatchesNameThePeersDomain) {
  DeviceStatus s{};
  s.code = static_cast<std::int32_t>(StatusCode::kPeerMismatch);
  s.op = static_cast<std::int32_t>(OpId::kCombine);
  s.rank = 0;
  s.peer = 1;
  s.peer_domain = 1 + 1;
  s.detail = static_cast<std::int32_t>(SigField::kHidden);
  s.expected = 7168;
  s.observed = 4096;
  const Error e = status_error(s, 1000, __FILE__, __LINE__);
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
  EXPECT_NE(e.message().find("rank 0: combine: rank 1 of domain 1 made a different call: hidden is 7168 here "
                             "but 4096 at rank 1"),
            std::string::npos)
      << e.message();
}

// A wait on a peer of another domain names the peer's domain and the multi-domain counter.
TEST(InternodeBuffer, TimeoutsNameThePeersDomain) {
  DeviceStatus s{};
  s.code = static_cast<std::int32_t>(StatusCode::kTimeout);
  s.op = static_cast<std::int32_t>(OpId::kDispatch);
  s.counter = static_cast<std::int32_t>(CounterId::kMdCredits);
  s.rank = 1;
  s.peer = 5;
  s.peer_domain = 2 + 1;
  s.expected = 9;
  s.observed = 4;
  const Error e = status_error(s, 1000, __FILE__, __LINE__);
  EXPECT_EQ(e.category(), ErrorCategory::kTimeout);
  EXPECT_NE(
      e.message().find("rank 1: dispatch timed out after 1000 ms waiting for rank 5 of domain 2 (counter "
                       "'ring credits from another domain': expected 9, observed 4)"),
      std::string::npos)
      << e.message();
  s.peer_domain = 0;  // a wait within the domain names no domain
  s.counter = static_cast<std::int32_t>(CounterId::kRowsArrived);
  EXPECT_NE(
      status_error(s, 1000, __FILE__, __LINE__).message().find("waiting for rank 5 (counter 'rows arrived'"),
      std::string::npos);
  for (CounterId c : {CounterId::kMdCountRecord, CounterId::kMdSlot, CounterId::kMdCredits})
    EXPECT_NE(std::string(to_string(c)).find("another domain"), std::string::npos) << to_string(c);
}

}  // namespace
}  // namespace epcomm
