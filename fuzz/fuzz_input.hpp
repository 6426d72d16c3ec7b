// Reading a fuzzer's input as a sequence of fixed-size fields, front to back, so that a seed is easy
// to write by hand (fuzz/make_seeds.py) and a mutation of one byte changes one field. Past the end
// every field reads as zero.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace epcomm::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(take(4)); }
  std::uint64_t u64() { return take(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(take(8)); }
  int i32() { return static_cast<int>(static_cast<std::int32_t>(take(4))); }
  bool flag() { return (u8() & 1) != 0; }

  // A string: a 1-byte length, then that many bytes (fewer when the input ends).
  std::string str() {
    const std::size_t n = std::min<std::size_t>(u8(), size_ - pos_);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  // Everything not read yet.
  std::span<const std::uint8_t> rest() {
    std::span<const std::uint8_t> r(data_ + pos_, size_ - pos_);
    pos_ = size_;
    return r;
  }
  std::size_t left() const { return size_ - pos_; }

 private:
  // `bytes` little-endian bytes as an unsigned value.
  std::uint64_t take(int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      const std::uint64_t b = pos_ < size_ ? data_[pos_++] : 0;
      v |= b << (8 * i);
    }
    return v;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace epcomm::fuzz
