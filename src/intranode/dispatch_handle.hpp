// The state behind an epcomm::DispatchHandle (opaque in the public API): everything combine and a
// cached dispatch need to retrace one dispatch's route. Device tensors are owned and shared.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/handle_access.hpp"
#include "epcomm/dispatch.hpp"

namespace epcomm {

struct MdHandleTables;  // internode/md_handle.hpp

struct DispatchHandle::State {
  int num_ranks = 0;
  int num_channels = 0;               // sender warps (channels) of the dispatch that made it
  int copy_chunks = 0;                // copy-engine dispatch (HtOptions::dispatch_copy_chunks); else 0
  std::int64_t num_tokens = 0;        // tokens this rank sent from
  std::int64_t num_recv_tokens = -1;  // rows received (host value; -1 in worst-case mode)
  std::int64_t num_rows = 0;          // rows of the outputs (num_worst_tokens in worst-case mode)
  int num_local_experts = 0;
  int expert_alignment = 1;
  DeviceTensor send_slot;         // [T, R] int32: index of token t among this rank's rows to r, or -1
  DeviceTensor count_matrix;      // [R, R] int32: rows rank s sends to rank d
  DeviceTensor recv_chunk_start;  // [R, C] int32: first row on this rank from (source s, channel c)
  DeviceTensor recv_chunk_count;  // [R, C] int32: rows on this rank from (source s, channel c)
  DeviceTensor recv_src_idx;      // [num_rows] int32: each row's token index on its source rank
  DeviceTensor num_recv_dev;      // [1] int32: rows received, on the device
  DeviceTensor num_recv_tokens_per_expert;      // [E/R] int32 on the device (aligned counts)
  std::vector<std::int32_t> count_matrix_host;  // [R * R]; empty in worst-case mode
  std::vector<std::int32_t> send_prefix_host;   // copy-engine dispatch: [R, copy_chunks + 1], this
                                                // rank's rows to each rank before each chunk
  // Multi-domain dispatch only (then count_matrix, recv_chunk_* and send_slot stay empty).
  std::shared_ptr<const MdHandleTables> md;
  std::uint64_t mask_changes = 0;  // Buffer::Impl::mask_changes when the routing was made
};

// A handle routes as the rank mask was when its dispatch ran (SPEC "Rank masking"): once the mask
// changed, its routing still names the ranks masked since (or skips the ones cleared), so cached
// dispatch and combine refuse it (`op` names the call). Throws epcomm::Error (invalid argument).
void check_handle_mask(const DispatchHandle::State& h, std::uint64_t mask_changes, const char* op);

// The state of a defined handle (checked by the caller: check_handle).
inline const DispatchHandle::State& handle_state(const DispatchHandle& h) { return *HandleAccess::state(h); }

}  // namespace epcomm
