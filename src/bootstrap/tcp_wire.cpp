#include "bootstrap/tcp_wire.hpp"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/check.hpp"

namespace epcomm::wire {
namespace {

constexpr std::size_t kAbortFixedBytes = 4;  // the category

std::vector<unsigned char> frame(FrameKind kind, std::size_t payload_bytes) {
  std::vector<unsigned char> out(kHeaderBytes + payload_bytes);
  const HeaderBytes h = encode_header(kind, payload_bytes);
  std::memcpy(out.data(), h.data(), kHeaderBytes);
  return out;
}

const char* kind_name(std::uint32_t kind) {
  switch (kind) {
    case static_cast<std::uint32_t>(FrameKind::kHello):
      return "hello";
    case static_cast<std::uint32_t>(FrameKind::kWelcome):
      return "welcome";
    case static_cast<std::uint32_t>(FrameKind::kData):
      return "data";
    case static_cast<std::uint32_t>(FrameKind::kAbort):
      return "abort";
  }
  return "unknown";
}

}  // namespace

void put_be(unsigned char* p, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i, value >>= 8) p[i] = static_cast<unsigned char>(value & 0xff);
}

std::uint64_t get_be(const unsigned char* p, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | p[i];
  return value;
}

HeaderBytes encode_header(FrameKind kind, std::uint64_t length) {
  HeaderBytes h{};
  put_be(h.data(), kMagic, 4);
  put_be(h.data() + 4, static_cast<std::uint32_t>(kind), 4);
  put_be(h.data() + 8, length, 8);
  return h;
}

Header decode_header(std::span<const unsigned char, kHeaderBytes> bytes) {
  return Header{static_cast<std::uint32_t>(get_be(bytes.data(), 4)),
                static_cast<std::uint32_t>(get_be(bytes.data() + 4, 4)), get_be(bytes.data() + 8, 8)};
}

std::string describe(const Header& h) {
  std::ostringstream os;
  os << "magic 0x" << std::hex << h.magic << std::dec << ", kind " << h.kind << " (" << kind_name(h.kind)
     << "), length " << h.length;
  return os.str();
}

// ---- hello --------------------------------------------------------------------------------------

std::vector<unsigned char> encode_hello(const Hello& hello) {
  EPCOMM_CHECK_ARG(hello.token.size() <= kMaxTokenBytes, "job token: expected at most ", kMaxTokenBytes,
                   " bytes, got ", hello.token.size());
  std::vector<unsigned char> out = frame(FrameKind::kHello, kHelloFixedBytes + hello.token.size());
  unsigned char* p = out.data() + kHeaderBytes;
  put_be(p, hello.version, 4);
  put_be(p + 4, hello.rank, 4);
  put_be(p + 8, hello.world_size, 4);
  std::copy(hello.token.begin(), hello.token.end(), p + kHelloFixedBytes);
  return out;
}

void check_hello_header(const Header& h) {
  EPCOMM_REQUIRE(h.magic == kMagic, ErrorCategory::kBootstrap,
                 "not an epcomm bootstrap hello (", describe(h), "; another program on this port?)");
  EPCOMM_REQUIRE(h.is(FrameKind::kHello), ErrorCategory::kBootstrap, "expected a hello, got ", describe(h));
  EPCOMM_REQUIRE(h.length >= kHelloFixedBytes && h.length <= kMaxHelloBytes, ErrorCategory::kBootstrap,
                 "a hello of ", h.length, " bytes, expected ", kHelloFixedBytes, " to ", kMaxHelloBytes);
}

Hello decode_hello(std::span<const unsigned char> payload) {
  EPCOMM_REQUIRE(payload.size() >= kHelloFixedBytes && payload.size() <= kMaxHelloBytes,
                 ErrorCategory::kBootstrap, "a hello of ", payload.size(), " bytes, expected ",
                 kHelloFixedBytes, " to ", kMaxHelloBytes);
  Hello hello;
  hello.version = static_cast<std::uint32_t>(get_be(payload.data(), 4));
  hello.rank = static_cast<std::uint32_t>(get_be(payload.data() + 4, 4));
  hello.world_size = static_cast<std::uint32_t>(get_be(payload.data() + 8, 4));
  hello.token.assign(payload.begin() + kHelloFixedBytes, payload.end());
  return hello;
}

int check_hello(const Hello& hello, int world_size, std::string_view token, const std::vector<bool>& arrived) {
  EPCOMM_REQUIRE(arrived.size() == static_cast<std::size_t>(world_size), ErrorCategory::kInternal,
                 "check_hello: arrived has ", arrived.size(), " entries for ", world_size, " ranks");
  const std::string who = "a process claiming rank " + std::to_string(hello.rank);
  EPCOMM_REQUIRE(hello.version == kProtocolVersion, ErrorCategory::kBootstrap, who,
                 " speaks bootstrap protocol version ", hello.version, ", rank 0 speaks ", kProtocolVersion,
                 " (mixed epcomm builds?)");
  EPCOMM_REQUIRE(hello.world_size == static_cast<std::uint32_t>(world_size), ErrorCategory::kBootstrap,
                 "world size mismatch: ", who, " has WORLD_SIZE ", hello.world_size, " but rank 0 has ",
                 world_size);
  EPCOMM_REQUIRE(hello.rank >= 1 && hello.rank < static_cast<std::uint32_t>(world_size),
                 ErrorCategory::kBootstrap, who, " is out of range: ranks > 0 connect to rank 0 and must be ",
                 "below WORLD_SIZE ", world_size, hello.rank == 0 ? " (two processes have RANK 0)" : "");
  EPCOMM_REQUIRE(hello.token == token, ErrorCategory::kBootstrap, who,
                 " presented another job's token (EPCOMM_JOB_TOKEN, or where unset MASTER_PORT, "
                 "WORLD_SIZE and TORCHELASTIC_RUN_ID, must be equal on every rank)");
  const int rank = static_cast<int>(hello.rank);
  EPCOMM_REQUIRE(!arrived[static_cast<std::size_t>(rank)], ErrorCategory::kBootstrap,
                 "duplicate rank: two processes claim rank ", rank, " (check RANK of every process)");
  return rank;
}

// ---- abort report -------------------------------------------------------------------------------

std::vector<unsigned char> encode_abort(ErrorCategory category, std::string_view message) {
  const std::string_view text = message.substr(0, kMaxAbortBytes - kAbortFixedBytes);
  std::vector<unsigned char> out = frame(FrameKind::kAbort, kAbortFixedBytes + text.size());
  put_be(out.data() + kHeaderBytes, static_cast<std::uint32_t>(category), 4);
  std::copy(text.begin(), text.end(), out.data() + kHeaderBytes + kAbortFixedBytes);
  return out;
}

void check_abort_header(const Header& h) {
  EPCOMM_REQUIRE(h.is(FrameKind::kAbort), ErrorCategory::kBootstrap, "expected an abort report, got ",
                 describe(h));
  EPCOMM_REQUIRE(h.length >= kAbortFixedBytes && h.length <= kMaxAbortBytes, ErrorCategory::kBootstrap,
                 "an abort report of ", h.length, " bytes, expected ", kAbortFixedBytes, " to ",
                 kMaxAbortBytes);
}

Abort decode_abort(std::span<const unsigned char> payload) {
  EPCOMM_REQUIRE(payload.size() >= kAbortFixedBytes && payload.size() <= kMaxAbortBytes,
                 ErrorCategory::kBootstrap, "an abort report of ", payload.size(), " bytes, expected ",
                 kAbortFixedBytes, " to ", kMaxAbortBytes);
  Abort abort;
  const std::uint64_t code = get_be(payload.data(), 4);
  if (code <= static_cast<std::uint32_t>(ErrorCategory::kInternal)) {
    abort.category = static_cast<ErrorCategory>(code);
  }
  abort.message.assign(payload.begin() + kAbortFixedBytes, payload.end());
  return abort;
}

// ---- the other frames ---------------------------------------------------------------------------

void check_reply_header(const Header& h, FrameKind expected, std::uint64_t length) {
  EPCOMM_REQUIRE(h.is(expected) && h.length == length, ErrorCategory::kBootstrap,
                 "expected a ", kind_name(static_cast<std::uint32_t>(expected)), " frame of ", length,
                 " bytes, got ", describe(h), " (mismatched collective calls or sizes?)");
}

void check_data_header(const Header& h, std::uint64_t bytes, int rank) {
  EPCOMM_REQUIRE(h.is(FrameKind::kData), ErrorCategory::kBootstrap, "rank ", rank,
                 " sent a malformed message (", describe(h), "; mismatched collective calls?)");
  EPCOMM_REQUIRE(h.length == bytes, ErrorCategory::kBootstrap, "size mismatch: rank 0 contributes ", bytes,
                 " bytes but rank ", rank, " contributes ", h.length, " bytes (all ranks must agree)");
}

// ---- FrameReader --------------------------------------------------------------------------------

std::span<unsigned char> FrameReader::next() {
  if (!has_header()) return std::span<unsigned char>(head_).subspan(head_done_);
  if (!payload_set_) return {};
  return payload_.subspan(payload_done_);
}

bool FrameReader::advance(std::size_t n) {
  const std::size_t room = next().size();
  EPCOMM_REQUIRE(n <= room, ErrorCategory::kInternal, "FrameReader::advance(", n, ") with room for ", room);
  if (has_header()) {
    payload_done_ += n;
    return false;
  }
  head_done_ += n;
  if (!has_header()) return false;
  header_ = decode_header(head_);
  return true;
}

void FrameReader::set_payload(std::span<unsigned char> storage) {
  EPCOMM_REQUIRE(has_header() && !payload_set_ && storage.size() == header_.length, ErrorCategory::kInternal,
                 "FrameReader::set_payload: ", storage.size(), " bytes for a frame of ", header_.length);
  payload_ = storage;
  payload_set_ = true;
}

}  // namespace epcomm::wire
