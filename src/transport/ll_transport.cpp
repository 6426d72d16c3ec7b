#include "transport/ll_transport.hpp"

#include <atomic>
#include <exception>
#include <vector>

#include "core/log.hpp"

namespace epcomm {

namespace {

// Constant-initialised, so a registration from another object's static initialiser is never
// overwritten by this one's, whatever their order.
std::atomic<const LlNvshmemHooks*> g_hooks{nullptr};

}  // namespace

const char* to_string(LlPath path) noexcept {
  switch (path) {
    case LlPath::kIpc:
      return "CUDA IPC (one NVLink domain)";
    case LlPath::kNvshmem:
      return "NVSHMEM (every peer through NVSHMEM)";
    case LlPath::kHybrid:
      return "hybrid (NVLink-domain peers by stores, the other domains through NVSHMEM)";
  }
  return "unknown";
}

const LlNvshmemHooks* ll_nvshmem_hooks() noexcept {
  return g_hooks.load(std::memory_order_acquire);
}

void set_ll_nvshmem_hooks(const LlNvshmemHooks* hooks) noexcept {
  g_hooks.store(hooks, std::memory_order_release);
}

void abandon_collective_teardown(std::shared_ptr<void>& owner) noexcept {
  if (!owner) return;
  // NOTE: kept alive on purpose (never destroyed): its deleter is the collective teardown.
  static auto* abandoned = new std::vector<std::shared_ptr<void>>();
  try {
    abandoned->push_back(std::move(owner));
    EPCOMM_LOG_WARN("Buffer teardown: a peer is gone, so NVSHMEM's collective teardown is skipped; this "
                    "process cannot make another NVSHMEM Buffer (restart it to use NVSHMEM again)");
  } catch (const std::exception& e) {
    EPCOMM_LOG_WARN("Buffer teardown: could not set NVSHMEM aside: ", e.what());
  }
}

}  // namespace epcomm
