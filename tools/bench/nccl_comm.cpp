#include "bench/nccl_comm.hpp"

#include <cstdio>
#include <string>

#include "bench/require.hpp"

namespace epcomm::bench {

void raise_nccl(ncclResult_t status, ncclComm_t comm, const char* call, const char* file, int line) {
  const char* last = ncclGetLastError(comm);
  throw Error(
      ErrorCategory::kNccl,
      concat(call, " failed: ", ncclGetErrorString(status), " (ncclResult_t ", static_cast<int>(status), ")",
             last != nullptr && *last != '\0' ? std::string("; last error: ") + last : ""),
      file, line);
}

NcclComm::NcclComm(Bootstrap& bootstrap) : rank_(bootstrap.rank()), size_(bootstrap.size()) {
  ncclUniqueId id{};
  if (rank_ == 0) BENCH_NCCL(ncclGetUniqueId(&id));
  bootstrap.broadcast(&id, sizeof id, 0);
  BENCH_NCCL(ncclCommInitRank(&comm_, size_, id, rank_));
}

NcclComm::~NcclComm() {
  if (comm_ == nullptr) return;
  if (const ncclResult_t s = ncclCommFinalize(comm_); s != ncclSuccess)
    std::fprintf(stderr, "epcomm-bench: ncclCommFinalize failed during cleanup: %s\n", ncclGetErrorString(s));
  if (const ncclResult_t s = ncclCommDestroy(comm_); s != ncclSuccess)
    std::fprintf(stderr, "epcomm-bench: ncclCommDestroy failed during cleanup: %s\n", ncclGetErrorString(s));
}

const char* nccl_version_string() {
  static const std::string text = [] {
    int version = 0;
    if (ncclGetVersion(&version) != ncclSuccess) return std::string("unknown");
    // NCCL_VERSION(X, Y, Z) = X * 10000 + Y * 100 + Z since 2.9.
    return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
           std::to_string(version % 100);
  }();
  return text.c_str();
}

}  // namespace epcomm::bench
