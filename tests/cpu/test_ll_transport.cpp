// The choice of low-latency transport (BufferOptions::ll_transport, transport/ll_transport.hpp)
// without a GPU: what is refused, with which error, and that the refusal comes before any
// collective step. This program never links epcomm_nvshmem, so it has no NVSHMEM hooks unless a
// test registers fake ones.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "expect_error.hpp"
#include "ll_fakes.hpp"
#include "low_latency/ll_checks.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {
namespace {

using test::expect_error;

using test::FakeNvshmem;
using test::no_exchange_bootstrap;

const BufferOptions kNvshmemOptions{.low_latency_mode = true, .ll_transport = LlTransport::kNvshmem};

TEST(LlTransport, NoHooksUnlessTheNvshmemLibraryIsLinked) {
  EXPECT_EQ(ll_nvshmem_hooks(), nullptr);
}

TEST(LlTransport, CudaIpcNeedsNothing) {
  EXPECT_NO_THROW(checks::check_ll_transport({}, nullptr));
  EXPECT_NO_THROW(checks::check_ll_transport({.low_latency_mode = true}, nullptr));
}

TEST(LlTransport, NvshmemWithoutTheTransportIsUnsupported) {
  expect_error([] { checks::check_ll_transport(kNvshmemOptions, ll_nvshmem_hooks()); },
               "ll_transport: LlTransport::kNvshmem needs the NVSHMEM transport",
               ErrorCategory::kUnsupported);
  expect_error([] { checks::check_ll_transport(kNvshmemOptions, nullptr); },
               "-DEPCOMM_WITH_NVSHMEM=ON and link epcomm_nvshmem", ErrorCategory::kUnsupported);
}

TEST(LlTransport, NvshmemOnlyInLowLatencyMode) {
  const FakeNvshmem nvshmem(/*in_use=*/false);
  expect_error(
      [] { checks::check_ll_transport({.ll_transport = LlTransport::kNvshmem}, ll_nvshmem_hooks()); },
      "ll_transport: LlTransport::kNvshmem applies to low-latency mode", ErrorCategory::kInvalidArgument);
}

TEST(LlTransport, UnknownValueIsRefused) {
  BufferOptions options{.low_latency_mode = true};
  options.ll_transport = static_cast<LlTransport>(7);
  expect_error([&] { checks::check_ll_transport(options, nullptr); },
               "ll_transport: expected LlTransport::kAuto or LlTransport::kNvshmem, got 7",
               ErrorCategory::kInvalidArgument);
}

TEST(LlTransport, NvshmemWithTheTransportIsAccepted) {
  const FakeNvshmem nvshmem(/*in_use=*/false);
  EXPECT_NO_THROW(checks::check_ll_transport(kNvshmemOptions, ll_nvshmem_hooks()));
}

TEST(LlTransport, SecondNvshmemOwnerIsRefused) {
  const FakeNvshmem nvshmem(/*in_use=*/true);
  expect_error([] { checks::check_ll_transport(kNvshmemOptions, ll_nvshmem_hooks()); },
               "NVSHMEM is already in use in this process", ErrorCategory::kUnsupported);
}

TEST(LlTransport, BufferRefusesNvshmemBeforeAnyCollectiveStep) {
  const LowLatencyOptions ll{.max_tokens_per_rank = 128, .hidden = 7168, .num_experts = 288};
  int exchanges = 0;
  expect_error([&] { Buffer buffer(no_exchange_bootstrap(2, &exchanges), kNvshmemOptions, ll); }, "ll_transport",
               ErrorCategory::kUnsupported);
  expect_error([&] { Buffer buffer(no_exchange_bootstrap(2, &exchanges), kNvshmemOptions); }, "ll_transport",
               ErrorCategory::kUnsupported);
  {
    const FakeNvshmem nvshmem(/*in_use=*/true);
    expect_error([&] { Buffer buffer(no_exchange_bootstrap(2, &exchanges), kNvshmemOptions, ll); },
                 "already in use", ErrorCategory::kUnsupported);
  }
  EXPECT_EQ(exchanges, 0);
}

}  // namespace
}  // namespace epcomm
