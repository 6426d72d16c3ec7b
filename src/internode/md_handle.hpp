// The multi-domain part of a DispatchHandle's state (intranode/dispatch_handle.hpp): the tables
// notify wrote (internode/md_args.hpp), which a cached dispatch retraces, and the routing it reads.
#pragma once

#include <cstdint>
#include <vector>

#include "epcomm/device_tensor.hpp"

namespace epcomm {

struct MdHandleTables {
  int num_domains = 0;         // D
  DeviceTensor count_matrix;   // [R][G] int32
  DeviceTensor fwd_prefix;     // [D][C + 1][G] int32
  DeviceTensor fwd_len;        // [D][C] int32
  DeviceTensor token_in_rank;  // [T, R] bool: the dispatch's is_token_in_rank (a cached dispatch has none)
  // Rows each rank of this domain received (the host's counts); empty in worst-case mode, where
  // every rank has num_worst_tokens rows. Combine checks every rank's staged rows fit alike.
  std::vector<std::int64_t> domain_rows;
};

}  // namespace epcomm
