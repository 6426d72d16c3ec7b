// Per-call settings of the high-throughput kernels. Every rank must pass the same values.
#pragma once

namespace epcomm {

struct Config {
  // GPU multiprocessors (thread blocks, one per SM) a dispatch or combine occupies; the rest of
  // the GPU stays free for computation running beside it. At least 2.
  int num_sms = 24;
};

}  // namespace epcomm
