// Low-latency mode over NVSHMEM, host side: the symmetric workspace of a Buffer on the NVSHMEM or
// hybrid path (LlPath), the peers' load/store addresses in it, and the registration of this transport's hooks with the main library
// (transport/ll_transport.hpp) when epcomm_nvshmem is linked into a program.
#include <cuda_runtime_api.h>
#include <nvshmem_host.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "transport/region_layout.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "transport/ll_transport.hpp"
#include "core/log.hpp"
#include "low_latency/ll_domains.hpp"
#include "transport/nvshmem_ll.hpp"
#include "transport/nvshmem_transport.hpp"

namespace epcomm {

namespace {

constexpr std::uint64_t kNvshmemDefaultHeapBytes = std::uint64_t{1} << 30;  // NVSHMEM's own default, 1 GiB
// Room NVSHMEM keeps for its own symmetric objects (team and collective work areas; a few MiB on
// small jobs): generous, since running out fails the whole Buffer.
constexpr std::uint64_t kNvshmemReserveBytes = std::uint64_t{256} << 20;
constexpr std::uint64_t kHeapGranularity = std::uint64_t{2} << 20;  // the GPU's large page

// The value this process last gave NVSHMEM_SYMMETRIC_SIZE (empty: none). A value the user set is
// kept; one set here is replaced for the next workspace, which may be larger.
std::string& heap_size_set_here() {
  static std::string value;
  return value;
}

// NVSHMEM reads the variable when it initialises, so it is set before the transport is made.
void size_symmetric_heap(std::size_t workspace_bytes) {
  const char* current = std::getenv("NVSHMEM_SYMMETRIC_SIZE");
  if (current != nullptr && heap_size_set_here() != current) {
    EPCOMM_LOG_INFO("nvshmem: NVSHMEM_SYMMETRIC_SIZE=", current, " (set by the user) for a low-latency ",
                    "workspace of ", workspace_bytes, " bytes");
    return;
  }
  const std::string value = std::to_string(nvshmem_heap_bytes_for(workspace_bytes));
  EPCOMM_REQUIRE(setenv("NVSHMEM_SYMMETRIC_SIZE", value.c_str(), /*overwrite=*/1) == 0,
                 ErrorCategory::kNvshmem, "setenv(NVSHMEM_SYMMETRIC_SIZE=", value, ") failed");
  heap_size_set_here() = value;
  EPCOMM_LOG_INFO("nvshmem: NVSHMEM_SYMMETRIC_SIZE=", value, " for a low-latency workspace of ",
                  workspace_bytes, " bytes");
}

bool nvshmem_in_use() {
  return NvshmemTransport::in_use();
}

const LlNvshmemHooks kHooks{&open_nvshmem_ll_workspace,  &nvshmem_in_use,
                            &launch_ll_dispatch_nvshmem, &launch_ll_combine_nvshmem,
                            &launch_ll_dispatch_hybrid,  &launch_ll_combine_hybrid,
                            &nvshmem_ll_peer_pointer};

[[maybe_unused]] const bool kRegistered = [] {
  set_ll_nvshmem_hooks(&kHooks);
  return true;
}();

}  // namespace

std::uint64_t nvshmem_heap_bytes_for(std::size_t workspace_bytes) {
  const std::uint64_t wanted =
      align_up(static_cast<std::uint64_t>(workspace_bytes) + kNvshmemReserveBytes, kHeapGranularity);
  return wanted > kNvshmemDefaultHeapBytes ? wanted : kNvshmemDefaultHeapBytes;
}

void* nvshmem_ll_peer_pointer(void* workspace, int pe) {
  return nvshmem_ptr(workspace, pe);
}

std::shared_ptr<void> open_nvshmem_ll_workspace(Bootstrap& bootstrap, std::size_t bytes, void** workspace) {
  // NOTE: nvshmem_malloc is a collective whose waits NVSHMEM does not bound: ranks that asked for
  // different sizes would wait in it for ever (or corrupt the heap). The bounded exchange first
  // refuses that on every rank alike, before NVSHMEM is initialised.
  check_same_ll_workspace_bytes(bootstrap, bytes);
  size_symmetric_heap(bytes);
  EPCOMM_LOG_INFO("nvshmem: initialising NVSHMEM on ", bootstrap.size(), " PEs for a workspace of ", bytes,
                  " bytes");
  auto transport = std::make_shared<NvshmemTransport>(bootstrap);
  EPCOMM_LOG_INFO("nvshmem: allocating the symmetric workspace (collective)");
  void* ptr = transport->alloc(bytes);
  // NOTE: the protocol's counters start at zero (ll_layout.hpp), and no rank may signal into a
  // peer's workspace before that peer has zeroed it: zero, wait for the device, then meet.
  EPCOMM_CUDA_CHECK(cudaMemset(ptr, 0, bytes));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  bootstrap.barrier();
  EPCOMM_LOG_INFO("nvshmem: workspace zeroed on every PE");
  *workspace = ptr;
  return transport;  // frees the workspace and finalises NVSHMEM when the Buffer's state goes
}

}  // namespace epcomm

// NOTE: epcomm_nvshmem's link interface names this symbol as undefined (--undefined), so the
// linker takes this object out of the archive although no code calls into it; without that, the
// registration above would be left out of the program.
extern "C" const int epcomm_nvshmem_ll_anchor = 1;
