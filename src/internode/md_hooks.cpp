#include <atomic>

#include "internode/md_args.hpp"

namespace epcomm {

namespace {
// Constant-initialised: a registration from another object's static initialiser is never lost.
std::atomic<const MdKernelHooks*> g_md_hooks{nullptr};
}  // namespace

const MdKernelHooks* md_kernel_hooks() noexcept {
  return g_md_hooks.load(std::memory_order_acquire);
}

void set_md_kernel_hooks(const MdKernelHooks* hooks) noexcept {
  g_md_hooks.store(hooks, std::memory_order_release);
}

}  // namespace epcomm
