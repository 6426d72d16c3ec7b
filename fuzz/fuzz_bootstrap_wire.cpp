// libFuzzer target: the TCP bootstrap's wire format (src/bootstrap/tcp_wire.hpp) fed arbitrary bytes
// the way each reader of bootstrap_tcp.cpp meets them: in steps, through wire::FrameReader, into
// storage sized only by bounds the reader knows.
//
// Input: byte 0 picks the reader, byte 1 the step size (1 to 32 bytes; 0: all at once), the rest is
// what arrives on the socket:
//   0  rank 0 reading hellos of a world of 4 (a stream of hellos: admitted ones mark their rank)
//   1  rank 1 reading rank 0's answers: a welcome, then all-gather results of 4 x 8 bytes, or an abort
//   2  rank 0 reading rank 1's all-gather blocks of 8 bytes
// Invariants: every refusal is an epcomm::Error of category kBootstrap (anything else escaping,
// a crash, undefined behaviour or an allocation beyond -malloc_limit_mb is a finding); an admitted
// hello re-encodes to the bytes that carried it.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "bootstrap/tcp_wire.hpp"
#include "epcomm/error.hpp"

namespace epcomm::wire {
namespace {

constexpr int kWorld = 4;
constexpr std::size_t kBlockBytes = 8;
const char* const kToken = "epcomm:port=29500:world=4";

void require(bool invariant) {
  if (!invariant) std::abort();
}

using Stream = std::span<const std::uint8_t>;

// Feeds `stream` to `reader` `step` bytes at a time until the frame is complete; calls
// on_header(header) when the header completes, which names the payload's storage or throws.
// False when the stream ends first (the connection closed mid-frame).
template <typename OnHeader>
bool read_frame(FrameReader& reader, Stream& stream, std::size_t step, OnHeader&& on_header) {
  while (!reader.complete()) {
    const std::span<unsigned char> room = reader.next();
    require(!room.empty());  // a complete header always has its payload named
    if (stream.empty()) return false;
    const std::size_t n = std::min({step, room.size(), stream.size()});
    std::memcpy(room.data(), stream.data(), n);
    stream = stream.subspan(n);
    if (reader.advance(n)) on_header(reader.header());
  }
  return true;
}

// Rank 0 during connect: each admitted hello marks its rank; the first refusal ends the stream.
void read_hellos(Stream stream, std::size_t step) {
  std::vector<bool> arrived(kWorld, false);
  arrived[0] = true;
  while (!stream.empty()) {
    const Stream frame_start = stream;
    FrameReader reader;
    std::array<unsigned char, kMaxHelloBytes> storage{};
    const bool whole = read_frame(reader, stream, step, [&](const Header& h) {
      check_hello_header(h);
      reader.set_payload(std::span<unsigned char>(storage).first(static_cast<std::size_t>(h.length)));
    });
    if (!whole) return;
    const auto payload = std::span<const unsigned char>(storage).first(reader.header().length);
    const Hello hello = decode_hello(payload);
    const int rank = check_hello(hello, kWorld, kToken, arrived);
    require(rank >= 1 && rank < kWorld && !arrived[static_cast<std::size_t>(rank)]);
    arrived[static_cast<std::size_t>(rank)] = true;
    const std::vector<unsigned char> again = encode_hello(hello);
    require(again.size() == reader.received() && std::memcmp(again.data(), frame_start.data(), again.size()) == 0);
  }
}

// A rank > 0: a welcome, then results; an abort report ends the stream as the peer's error would.
void read_answers(Stream stream, std::size_t step) {
  std::array<unsigned char, kWorld * kBlockBytes> result{};
  std::vector<unsigned char> report;
  FrameKind expected = FrameKind::kWelcome;
  while (!stream.empty()) {
    FrameReader reader;
    bool aborted = false;
    const bool whole = read_frame(reader, stream, step, [&](const Header& h) {
      if (h.is(FrameKind::kAbort)) {
        check_abort_header(h);  // bounds the allocation below
        report.assign(static_cast<std::size_t>(h.length), 0);
        reader.set_payload(report);
        aborted = true;
        return;
      }
      const std::size_t length = expected == FrameKind::kWelcome ? 0 : result.size();
      check_reply_header(h, expected, length);
      reader.set_payload(std::span<unsigned char>(result).first(length));
    });
    if (!whole) return;
    if (aborted) {
      const Abort a = decode_abort(report);
      require(a.message.size() + 4 == report.size());
      return;
    }
    expected = FrameKind::kData;
  }
}

// Rank 0 during an all-gather of 8-byte blocks, from rank 1.
void read_blocks(Stream stream, std::size_t step) {
  std::array<unsigned char, kBlockBytes> block{};
  while (!stream.empty()) {
    FrameReader reader;
    if (!read_frame(reader, stream, step, [&](const Header& h) {
          check_data_header(h, kBlockBytes, 1);
          reader.set_payload(block);
        })) {
      return;
    }
  }
}

}  // namespace
}  // namespace epcomm::wire

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace epcomm::wire;
  if (size < 2) return 0;
  const std::size_t step = data[1] % 33 == 0 ? size : data[1] % 33;
  const Stream stream(data + 2, size - 2);
  try {
    switch (data[0] % 3) {
      case 0:
        read_hellos(stream, step);
        break;
      case 1:
        read_answers(stream, step);
        break;
      default:
        read_blocks(stream, step);
        break;
    }
  } catch (const epcomm::Error& e) {
    require(e.category() == epcomm::ErrorCategory::kBootstrap);
  }
  return 0;
}
