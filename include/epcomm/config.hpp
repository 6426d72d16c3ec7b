// Tuning knobs of the high-throughput kernels. Every rank must pass the same values.
#pragma once

namespace epcomm {

struct Config {
  // GPU multiprocessors (thread blocks, one per SM) a dispatch or combine occupies; the rest of
  // the GPU stays free for computation running beside it. At least 2.
  int num_sms = 24;
  // Accepted for compatibility with the reference library's Config(num_sms, nvl_send, nvl_recv,
  // rdma_send, rdma_recv). epcomm's single-domain kernels write rows straight to their final place
  // and need no chunked staging, so these do not change its behaviour.
  int nvl_send_chunk = 6;
  int nvl_recv_tokens = 256;
  int rdma_send_chunk = 6;
  int rdma_recv_tokens = 256;
};

}  // namespace epcomm
