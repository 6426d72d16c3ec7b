// The registry of measured ops: every workload runs these factories' ops in this order (the
// order of the table's rows). Append epcomm's own factories here.
#include "bench/bench_op.hpp"
#include "bench/nccl_baseline.hpp"

namespace epcomm::bench {
std::vector<BenchOp> make_epcomm_ht_ops(BenchContext& context);  // epcomm_ht_ops.cpp
std::vector<BenchOp> make_epcomm_ll_ops(BenchContext& context);  // epcomm_ll_ops.cpp
// The low-latency path over NVSHMEM (epcomm_ll_ops.cpp); built with EPCOMM_WITH_NVSHMEM only.
std::vector<BenchOp> make_epcomm_ll_nvshmem_ops(BenchContext& context);
}  // namespace epcomm::bench

namespace epcomm::bench {

std::vector<OpFactory> op_factories() {
  return {
      make_nccl_baseline_ops,
      make_epcomm_ht_ops,
      make_epcomm_ll_ops,
#ifdef EPCOMM_BENCH_NVSHMEM
      make_epcomm_ll_nvshmem_ops,
#endif
  };
}

}  // namespace epcomm::bench
