// The TCP bootstrap's wire format (bootstrap_tcp.cpp speaks it): frames, hellos and abort reports as
// pure functions over bytes, with no socket, so a CPU test or a fuzz target can feed them anything.
// Host code only.
//
// A frame is a 16-byte header {magic u32, kind u32, payload length u64}, big-endian, then the payload:
//   kHello   rank r > 0 -> rank 0: {protocol version u32, rank u32, world size u32, job token bytes}
//   kWelcome rank 0 -> r: empty; every rank arrived
//   kData    both ways: one rank's all-gather block, or the gathered result
//   kAbort   rank 0 -> r: {ErrorCategory u32, message bytes}: why the group stopped, or why rank 0
//            refused this connection
// Every refusal is an epcomm::Error of category kBootstrap whose message says what was wrong.
// NOTE: no length read from the wire sizes anything before it is checked against a bound the reader
// already knows (kMaxHelloBytes, kMaxAbortBytes, the caller's all-gather size): a header announcing
// 2^60 bytes is refused, never allocated.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "epcomm/error.hpp"

namespace epcomm::wire {

inline constexpr std::uint32_t kMagic = 0x45504342;  // "EPCB"
// 1: hello {version, rank, world size}; 2: the hello ends with the job token.
inline constexpr std::uint32_t kProtocolVersion = 2;
inline constexpr std::size_t kHeaderBytes = 16;
inline constexpr std::size_t kHelloFixedBytes = 12;  // version, rank, world size
inline constexpr std::size_t kMaxTokenBytes = 256;   // TcpBootstrapOptions::job_token's bound
inline constexpr std::size_t kMaxHelloBytes = kHelloFixedBytes + kMaxTokenBytes;
inline constexpr std::size_t kMaxAbortBytes = 64 * 1024;  // an abort report is a short text

enum class FrameKind : std::uint32_t { kHello = 1, kWelcome = 2, kData = 3, kAbort = 4 };

// A header as it arrived: any field may hold anything until a check_* function accepted it.
struct Header {
  std::uint32_t magic = 0;
  std::uint32_t kind = 0;  // a FrameKind when the frame is well formed
  std::uint64_t length = 0;

  bool is(FrameKind k) const { return magic == kMagic && kind == static_cast<std::uint32_t>(k); }
};
using HeaderBytes = std::array<unsigned char, kHeaderBytes>;

void put_be(unsigned char* p, std::uint64_t value, int bytes);
std::uint64_t get_be(const unsigned char* p, int bytes);

HeaderBytes encode_header(FrameKind kind, std::uint64_t length);
Header decode_header(std::span<const unsigned char, kHeaderBytes> bytes);
// "magic 0x..., kind 7, length 123": a refused header, for messages.
std::string describe(const Header& h);

// ---- hello --------------------------------------------------------------------------------------

// Fields as sent; rank and world_size are unsigned on the wire and checked by check_hello().
struct Hello {
  std::uint32_t version = kProtocolVersion;
  std::uint32_t rank = 0;
  std::uint32_t world_size = 0;
  std::string token;  // at most kMaxTokenBytes
};
// The whole frame (header and payload). Throws kInvalidArgument for a token over kMaxTokenBytes.
std::vector<unsigned char> encode_hello(const Hello& hello);
// A hello's header: the magic, kind kHello, a length in [kHelloFixedBytes, kMaxHelloBytes].
void check_hello_header(const Header& h);
// A hello's payload, whose size check_hello_header() accepted.
Hello decode_hello(std::span<const unsigned char> payload);

// What rank 0 admits: the job's world size and token, and which ranks already arrived
// (`arrived[r]`, size world_size). Returns the hello's rank, in [1, world_size), not yet arrived.
// NOTE: the checks run in this order so that a process of our own job with a wrong setting (an
// older build, another WORLD_SIZE, a taken RANK) learns which one rather than "wrong token".
int check_hello(const Hello& hello, int world_size, std::string_view token, const std::vector<bool>& arrived);

// ---- abort report -------------------------------------------------------------------------------

struct Abort {
  ErrorCategory category = ErrorCategory::kBootstrap;
  std::string message;
};
// The whole frame; a message over kMaxAbortBytes - 4 bytes is cut there.
std::vector<unsigned char> encode_abort(ErrorCategory category, std::string_view message);
// An abort's header: kind kAbort, a length in [4, kMaxAbortBytes].
void check_abort_header(const Header& h);
// A category outside ErrorCategory reads as kBootstrap.
Abort decode_abort(std::span<const unsigned char> payload);

// ---- the other frames ---------------------------------------------------------------------------

// A frame rank > 0 expects from rank 0 (kWelcome with length 0, kData with the gathered size).
// kAbort is not accepted here: the caller reads it first (Header::is).
void check_reply_header(const Header& h, FrameKind expected, std::uint64_t length);
// rank 0's check of rank `rank`'s all-gather block header: kData of exactly `bytes` bytes.
void check_data_header(const Header& h, std::uint64_t bytes, int rank);

// ---- reading a frame in steps -------------------------------------------------------------------

// One frame read as bytes come, from any source (a non-blocking socket, a fuzzer's input): fill
// next() with what arrived, then advance(n). When advance() returns true the header is complete and
// the caller, after checking header(), names the payload's storage with set_payload(); the reader
// never allocates.
class FrameReader {
 public:
  // Where the next bytes go: the rest of the header, then the rest of the payload; empty when the
  // frame is complete, or while the header is complete but set_payload() was not called yet.
  std::span<unsigned char> next();
  // `n` bytes (at most next().size()) were written to next(). True when they completed the header.
  bool advance(std::size_t n);
  bool has_header() const { return head_done_ == kHeaderBytes; }
  const Header& header() const { return header_; }
  // Storage of exactly header().length bytes (checked; throws kInternal otherwise).
  void set_payload(std::span<unsigned char> storage);
  bool complete() const { return has_header() && payload_set_ && payload_done_ == payload_.size(); }
  // Bytes of the frame received so far.
  std::size_t received() const { return head_done_ + payload_done_; }

 private:
  HeaderBytes head_{};
  std::size_t head_done_ = 0;
  Header header_{};
  std::span<unsigned char> payload_{};
  bool payload_set_ = false;
  std::size_t payload_done_ = 0;
};

}  // namespace epcomm::wire
