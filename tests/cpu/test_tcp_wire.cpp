// The TCP bootstrap's wire format (bootstrap/tcp_wire.hpp): round trips, and every malformed input
// refused as epcomm::Error(kBootstrap) naming what was wrong, with no length from the wire trusted.
// The fuzz target fuzz/fuzz_bootstrap_wire.cpp feeds the same functions arbitrary bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "bootstrap/tcp_wire.hpp"

namespace epcomm::wire {
namespace {

// Runs fn, expects epcomm::Error(kBootstrap) whose message contains `needle`.
template <typename Fn>
void expect_refused(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected a refusal mentioning: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBootstrap) << e.message();
    EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
  }
}

Header header_of(const std::vector<unsigned char>& frame) {
  return decode_header(std::span<const unsigned char, kHeaderBytes>(frame.data(), kHeaderBytes));
}

std::span<const unsigned char> payload_of(const std::vector<unsigned char>& frame) {
  return std::span<const unsigned char>(frame).subspan(kHeaderBytes);
}

TEST(TcpWire, HelloRoundTrip) {
  const Hello sent{.rank = 3, .world_size = 8, .token = "job-42"};
  const std::vector<unsigned char> frame = encode_hello(sent);
  ASSERT_EQ(frame.size(), kHeaderBytes + kHelloFixedBytes + 6);
  const Header h = header_of(frame);
  EXPECT_TRUE(h.is(FrameKind::kHello));
  EXPECT_EQ(h.length, kHelloFixedBytes + 6);
  check_hello_header(h);
  const Hello got = decode_hello(payload_of(frame));
  EXPECT_EQ(got.version, kProtocolVersion);
  EXPECT_EQ(got.rank, 3u);
  EXPECT_EQ(got.world_size, 8u);
  EXPECT_EQ(got.token, "job-42");
  std::vector<bool> arrived(8, false);
  arrived[0] = true;
  EXPECT_EQ(check_hello(got, 8, "job-42", arrived), 3);
}

TEST(TcpWire, HelloHeadersOutsideTheBoundsAreRefused) {
  Header h = header_of(encode_hello({.rank = 1, .world_size = 2}));
  h.length = std::uint64_t{1} << 60;  // must be refused, never allocated
  expect_refused([&] { check_hello_header(h); }, "a hello of 1152921504606846976 bytes, expected 12 to 268");
  h.length = kHelloFixedBytes - 1;
  expect_refused([&] { check_hello_header(h); }, "a hello of 11 bytes");
  h.length = kHelloFixedBytes;
  h.magic = 0x47455420;  // "GET "
  expect_refused([&] { check_hello_header(h); }, "not an epcomm bootstrap hello (magic 0x47455420");
  h.magic = kMagic;
  h.kind = 77;
  expect_refused([&] { check_hello_header(h); }, "expected a hello, got magic 0x45504342, kind 77 (unknown)");
  const std::vector<unsigned char> short_payload(kHelloFixedBytes - 1);
  expect_refused([&] { decode_hello(short_payload); }, "a hello of 11 bytes");
}

TEST(TcpWire, CheckHelloNamesWhatIsWrongInOrder) {
  std::vector<bool> arrived = {true, true, false, false};
  const Hello good{.rank = 2, .world_size = 4, .token = "t"};
  Hello h = good;
  h.version = 1;
  h.world_size = 9;
  expect_refused([&] { check_hello(h, 4, "t", arrived); }, "speaks bootstrap protocol version 1, rank 0 speaks 2");
  h = good;
  h.world_size = 9;
  expect_refused([&] { check_hello(h, 4, "t", arrived); }, "has WORLD_SIZE 9 but rank 0 has 4");
  for (std::uint32_t rank : {0u, 4u, 0xffffffffu}) {
    h = good;
    h.rank = rank;
    expect_refused([&] { check_hello(h, 4, "t", arrived); }, "is out of range");
  }
  h = good;
  h.token = "u";
  expect_refused([&] { check_hello(h, 4, "t", arrived); }, "presented another job's token");
  h = good;
  h.rank = 1;
  expect_refused([&] { check_hello(h, 4, "t", arrived); }, "duplicate rank: two processes claim rank 1");
  EXPECT_EQ(check_hello(good, 4, "t", arrived), 2);
}

TEST(TcpWire, OverlongTokenIsNotEncoded) {
  const Hello h{.rank = 1, .world_size = 2, .token = std::string(kMaxTokenBytes + 1, 'x')};
  try {
    encode_hello(h);
    ADD_FAILURE() << "an overlong token was encoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
  }
}

TEST(TcpWire, AbortRoundTripAndBounds) {
  const std::vector<unsigned char> frame = encode_abort(ErrorCategory::kTimeout, "rank 2 is late");
  const Header h = header_of(frame);
  check_abort_header(h);
  const Abort a = decode_abort(payload_of(frame));
  EXPECT_EQ(a.category, ErrorCategory::kTimeout);
  EXPECT_EQ(a.message, "rank 2 is late");
  // A long message is cut to the bound; an unknown category reads as kBootstrap.
  const std::vector<unsigned char> long_frame = encode_abort(ErrorCategory::kBootstrap, std::string(1 << 17, 'm'));
  EXPECT_EQ(header_of(long_frame).length, kMaxAbortBytes);
  std::vector<unsigned char> odd = frame;
  put_be(odd.data() + kHeaderBytes, 1000, 4);
  EXPECT_EQ(decode_abort(payload_of(odd)).category, ErrorCategory::kBootstrap);
  Header big = h;
  big.length = kMaxAbortBytes + 1;
  expect_refused([&] { check_abort_header(big); }, "an abort report of 65537 bytes");
  big.length = 3;
  expect_refused([&] { check_abort_header(big); }, "an abort report of 3 bytes");
}

TEST(TcpWire, ReplyAndDataHeaders) {
  const HeaderBytes welcome = encode_header(FrameKind::kWelcome, 0);
  check_reply_header(decode_header(welcome), FrameKind::kWelcome, 0);
  expect_refused([&] { check_reply_header(decode_header(welcome), FrameKind::kData, 0); },
                 "expected a data frame of 0 bytes, got magic 0x45504342, kind 2 (welcome), length 0");
  const HeaderBytes data = encode_header(FrameKind::kData, 16);
  check_data_header(decode_header(data), 16, 1);
  expect_refused([&] { check_data_header(decode_header(data), 8, 1); },
                 "size mismatch: rank 0 contributes 8 bytes but rank 1 contributes 16 bytes");
  expect_refused([&] { check_data_header(decode_header(welcome), 0, 3); }, "rank 3 sent a malformed message");
}

TEST(TcpWire, FrameReaderTakesAFrameInAnySteps) {
  const std::vector<unsigned char> frame = encode_hello({.rank = 1, .world_size = 2, .token = "abc"});
  for (std::size_t step : {std::size_t{1}, std::size_t{5}, frame.size()}) {
    FrameReader reader;
    std::vector<unsigned char> storage;
    std::size_t sent = 0;
    while (!reader.complete()) {
      const std::span<unsigned char> room = reader.next();
      ASSERT_FALSE(room.empty());
      const std::size_t n = std::min({step, room.size(), frame.size() - sent});
      std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(sent), n, room.begin());
      sent += n;
      if (reader.advance(n)) {
        storage.resize(reader.header().length);
        reader.set_payload(storage);
      }
    }
    EXPECT_EQ(sent, frame.size()) << step;
    EXPECT_EQ(reader.received(), frame.size());
    EXPECT_EQ(decode_hello(storage).token, "abc");
  }
}

TEST(TcpWire, FrameReaderRefusesMisuse) {
  FrameReader reader;
  EXPECT_THROW(reader.advance(kHeaderBytes + 1), Error);
  std::vector<unsigned char> storage(3);
  EXPECT_THROW(reader.set_payload(storage), Error);  // no header yet
}

}  // namespace
}  // namespace epcomm::wire
