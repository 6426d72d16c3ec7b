// NCCL for the baseline: status checks and an owning communicator.
#pragma once

#include <nccl.h>

#include "epcomm/bootstrap.hpp"

namespace epcomm::bench {

[[noreturn]] void raise_nccl(ncclResult_t status, ncclComm_t comm, const char* call, const char* file,
                             int line);

// Every NCCL status is checked; a failure becomes epcomm::Error (category kNccl) naming the call,
// NCCL's error string and its last error message.
#define BENCH_NCCL(call)                                                                   \
  do {                                                                                     \
    const ncclResult_t bench_nccl_status_ = (call);                                        \
    if (bench_nccl_status_ != ncclSuccess)                                                 \
      ::epcomm::bench::raise_nccl(bench_nccl_status_, nullptr, #call, __FILE__, __LINE__); \
  } while (0)

// One communicator over the bootstrap's ranks (the unique id travels by bootstrap broadcast).
// Construction is collective. Destruction finalizes and destroys it; failures are printed, not thrown.
class NcclComm {
 public:
  explicit NcclComm(Bootstrap& bootstrap);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  ncclComm_t get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
};

// "2.28.9" from ncclGetVersion.
const char* nccl_version_string();

}  // namespace epcomm::bench
