// The copy-engine dispatch (EPCOMM_HT_DISPATCH_CE): the SMs pack, the copy engine carries.
#pragma once

#include <cstdint>

#include "epcomm/device_tensor.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/ht_args.hpp"
#include "buffer/buffer_impl.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm {

// One call's copy-engine dispatch, in two steps on the communication stream after notify or
// prepare (the opening barrier):
//  pack(): one launch of sender blocks packs the rows for the peers chunk by chunk (payload into
//    local staging, metadata straight into the peers' regions), each warp counting each chunk done
//    in a device counter zeroed just before. Needs only the device's counts, so it may run while the
//    host still waits for notify's. Given is_token_in_rank, peers that get nearly every token
//    (straight_copies) get only their metadata packed: once the host has the counts, the copy
//    stream copies is_token_in_rank to the host, which then copies those peers' rows straight from
//    x, run by run (and, with kStraightAll, this rank's own rows to its outputs, on a second copy
//    stream).
//  finish(): with the host's counts in the handle (count_matrix_host, send_prefix_host), the copy
//    stream copies each chunk's packed rows into each peer's region once its count says packed
//    (a stream wait on the counter, no kernel boundary between chunks) and marks the
//    chunk's channels arrived there; a last launch writes this rank's own rows to the outputs while
//    the copies run, then every warp receives (copies out). The communication stream joins the
//    copy stream, so the call's event covers the copies.
// Staging is released (stream-ordered, on the communication stream) when this goes.
class CopyEngineDispatch {
 public:
  // `staged_rows`: at least this rank's rows to its peers. `token_ranks`: the call's
  // is_token_in_rank ([T][G], device), or null for no straight copies; `straight`: which rows may
  // be copied straight when it is given (HtTuning::dispatch_straight, kStraightPeers or more).
  CopyEngineDispatch(Buffer::Impl& m, const HtDispatchPlan& plan, std::int64_t staged_rows,
                     std::int64_t row_bytes, const bool* token_ranks, int straight, cudaStream_t comm);
  // Joins the copy streams if finish() did not (a call that failed in between).
  ~CopyEngineDispatch();
  CopyEngineDispatch(const CopyEngineDispatch&) = delete;
  CopyEngineDispatch& operator=(const CopyEngineDispatch&) = delete;
  // `d` holds everything but the launch-specific fields (outputs unused).
  void pack(HtDispatchArgs d);
  // `outputs_stream`: where fresh outputs were allocated (null: they are the region); `caller`: the
  // caller's stream, which an error leaves ordered after everything queued.
  void finish(HtDispatchArgs d, const DispatchHandle::State& h, cudaStream_t outputs_stream, cudaStream_t caller);

 private:
  // With the host's counts: which copies each chunk takes (and the own rows' straight copies); the
  // copy stream forks.
  void plan_copies(const HtDispatchArgs& d, const DispatchHandle::State& h);
  // On the copy stream, chunk k: its straight copies, then once packed its packed rows' copies, then
  // the marks.
  void queue_chunk(const HtDispatchArgs& d, int k);
  // On own_copy, once the outputs exist: the own rows' straight copies.
  void queue_own_copies(const HtDispatchArgs& d, cudaStream_t outputs_stream);
  // One launch of `blocks` sender blocks.
  void launch(HtDispatchArgs& d, const char* label, int blocks);

  Buffer::Impl& m_;
  HtDispatchPlan plan_;
  cudaStream_t comm_;
  DeviceTensor staging_;
  std::int64_t staged_rows_;
  // The copy stream waits for each chunk's count (false under stream capture: for the whole pack).
  bool wait_for_counts_ = true;
  const bool* token_ranks_;
  int straight_mode_;
  bool straight_ = false;       // this call's pack left the straight peers' payload to the copy engine
  bool straight_self_ = false;  // and its last launch the own rows' payload (when straight)
  bool joined_ = true;          // nothing queued on the copy stream that the communication stream misses
  bool own_joined_ = true;      // the same for own_copy
  std::vector<ChunkCopy> staged_copies_;
  std::vector<StraightCopy> straight_copies_, own_copies_;
  std::size_t next_staged_ = 0, next_straight_ = 0;  // the first copies of the next chunk to queue
};

}  // namespace epcomm
