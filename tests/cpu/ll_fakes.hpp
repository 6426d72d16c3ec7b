// Fakes for the CPU tests of the low-latency transport's choice (test_ll_transport.cpp,
// test_ll_domains.cpp): NVSHMEM hooks that open nothing and launch nothing, registered for one test
// by FakeNvshmem, and a bootstrap that fails on any exchange (a refusal must come before the first).
#pragma once

#include <memory>

#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm::test {

// What the fake hooks' in_use() answers.
inline bool& fake_nvshmem_in_use() {
  static bool in_use = false;
  return in_use;
}

inline const LlNvshmemHooks* fake_ll_hooks() {
  static const LlNvshmemHooks hooks{nullptr, [] { return fake_nvshmem_in_use(); }, nullptr, nullptr, nullptr,
                                    nullptr, nullptr};
  return &hooks;
}

// Registers the fake hooks for one test, and takes them away after it.
class FakeNvshmem {
 public:
  explicit FakeNvshmem(bool in_use) {
    fake_nvshmem_in_use() = in_use;
    set_ll_nvshmem_hooks(fake_ll_hooks());
  }
  ~FakeNvshmem() { set_ll_nvshmem_hooks(nullptr); }
  FakeNvshmem(const FakeNvshmem&) = delete;
  FakeNvshmem& operator=(const FakeNvshmem&) = delete;
};

// Rank 0 of `size`; every exchange counts into *exchanges and throws.
inline std::shared_ptr<Bootstrap> no_exchange_bootstrap(int size, int* exchanges) {
  return make_callback_bootstrap(0, size, [exchanges](const void*, void*, std::size_t) {
    ++*exchanges;
    throw Error(ErrorCategory::kBootstrap, "unexpected exchange", __FILE__, __LINE__);
  });
}

}  // namespace epcomm::test
