#include "transport/nvshmem_transport.hpp"

#include <cuda_runtime_api.h>
#include <nvshmem_host.h>

#include <atomic>
#include <cstdlib>

#include "core/check.hpp"
#include "core/log.hpp"

namespace epcomm {

namespace {

// NVSHMEM keeps one state per process: true while an NvshmemTransport owns it.
std::atomic<bool> g_transport_alive{false};

void check_nvshmem(int status, const char* call, const char* file, int line) {
  if (status != 0)
    detail::raise(ErrorCategory::kNvshmem, detail::concat(call, " failed with status ", status), file, line);
}
#define EPCOMM_NVSHMEM_CHECK(call) check_nvshmem((call), #call, __FILE__, __LINE__)

// NVSHMEM reads its environment when it initialises (and rank 0 when it makes the unique id).
void set_nvshmem_environment() {
  // NOTE: hard safety rule on shared machines: never NVLink multicast (NVLS), whatever was set.
  EPCOMM_REQUIRE(setenv("NVSHMEM_DISABLE_NVLS", "1", /*overwrite=*/1) == 0, ErrorCategory::kNvshmem,
                 "setenv(NVSHMEM_DISABLE_NVLS=1) failed");
  // One machine unless the caller names a remote transport: no probing for NICs (IBGDA, ...).
  EPCOMM_REQUIRE(setenv("NVSHMEM_REMOTE_TRANSPORT", "none", /*overwrite=*/0) == 0, ErrorCategory::kNvshmem,
                 "setenv(NVSHMEM_REMOTE_TRANSPORT=none) failed");
}

// What rank 0 broadcasts: the unique id, or the status of the call that failed to make it, so the
// other ranks fail at once instead of waiting in the bootstrap.
struct UniqueIdMessage {
  int status = 0;
  nvshmemx_uniqueid_t id = NVSHMEMX_UNIQUEID_INITIALIZER;
};

// nvshmemx_init_attr() does exactly this, but exit()s the process when initialisation fails
// (NONZERO_EXIT in NVSHMEM's header); a library reports the status instead.
int init_with_unique_id(nvshmemx_init_attr_t* attr) {
  const nvshmemi_version_t version = {NVSHMEM_VENDOR_MAJOR_VERSION, NVSHMEM_VENDOR_MINOR_VERSION,
                                      NVSHMEM_VENDOR_PATCH_VERSION};
  int provided = 0;
  return nvshmemi_init_thread(NVSHMEM_THREAD_SERIALIZED, &provided, NVSHMEMX_INIT_WITH_UNIQUEID, attr,
                              version);
}

}  // namespace

NvshmemTransport::NvshmemTransport(Bootstrap& bootstrap)
    : rank_(bootstrap.rank()), num_ranks_(bootstrap.size()) {
  EPCOMM_REQUIRE(!g_transport_alive.exchange(true), ErrorCategory::kUnsupported,
                 "NvshmemTransport: NVSHMEM is already initialised in this process by another "
                 "NvshmemTransport (NVSHMEM keeps one state per process)");
  bool initialised = false;
  try {
    set_nvshmem_environment();
    UniqueIdMessage message;
    if (rank_ == 0) message.status = nvshmemx_get_uniqueid(&message.id);
    bootstrap.broadcast(&message, sizeof(message), /*root=*/0);
    EPCOMM_REQUIRE(message.status == 0, ErrorCategory::kNvshmem,
                   "nvshmemx_get_uniqueid failed on rank 0 with status ", message.status);

    nvshmemx_init_attr_t attr = NVSHMEMX_INIT_ATTR_INITIALIZER;
    EPCOMM_NVSHMEM_CHECK(nvshmemx_set_attr_uniqueid_args(rank_, num_ranks_, &message.id, &attr));
    EPCOMM_NVSHMEM_CHECK(init_with_unique_id(&attr));
    initialised = true;

    const int my_pe = nvshmem_my_pe();
    const int num_pes = nvshmem_n_pes();
    EPCOMM_REQUIRE(my_pe == rank_ && num_pes == num_ranks_, ErrorCategory::kNvshmem,
                   "NvshmemTransport: NVSHMEM numbers this process PE ", my_pe, " of ", num_pes,
                   ", the bootstrap rank ", rank_, " of ", num_ranks_);
    EPCOMM_LOG_INFO("nvshmem: initialised, PE ", my_pe, " of ", num_pes);
  } catch (...) {
    if (initialised) nvshmem_finalize();
    g_transport_alive.store(false);
    throw;
  }
}

NvshmemTransport::~NvshmemTransport() {
  // Kernels still using the symmetric memory must be done before it goes.
  const cudaError_t status = cudaDeviceSynchronize();
  if (status != cudaSuccess)
    EPCOMM_LOG_WARN("NvshmemTransport teardown: cudaDeviceSynchronize: ", cudaGetErrorString(status));
  for (auto it = allocations_.rbegin(); it != allocations_.rend(); ++it) nvshmem_free(*it);
  nvshmem_finalize();
  g_transport_alive.store(false);
}

bool NvshmemTransport::in_use() noexcept {
  return g_transport_alive.load();
}

void* NvshmemTransport::alloc(std::size_t bytes) {
  EPCOMM_CHECK_ARG(bytes > 0, "NvshmemTransport::alloc: bytes must be > 0, got 0");
  allocations_.reserve(allocations_.size() + 1);  // so that recording the pointer cannot throw
  void* ptr = nvshmem_malloc(bytes);
  EPCOMM_REQUIRE(ptr != nullptr, ErrorCategory::kNvshmem, "nvshmem_malloc(", bytes,
                 " bytes) returned null: the symmetric heap is exhausted (raise NVSHMEM_SYMMETRIC_SIZE) "
                 "or ranks asked for different sizes");
  allocations_.push_back(ptr);
  return ptr;
}

void NvshmemTransport::barrier_all() {
  nvshmem_barrier_all();
}

}  // namespace epcomm
