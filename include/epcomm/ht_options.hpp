// How the high-throughput operations move rows (BufferOptions::ht, Buffer::set_ht_options). The
// defaults are the paths every release is measured on. The other paths are correct (tested against
// the reference) but not yet timed on several GPUs; a measurement there will make the fastest the
// default and delete the rest. Every rank must use the same options.
//
// The EPCOMM_HT_DISPATCH_CE, EPCOMM_HT_DISPATCH_STRAIGHT, EPCOMM_HT_COMBINE_PULL and
// EPCOMM_HT_COMBINE_CE environment variables override these fields of BufferOptions::ht when set
// (for experiments); Buffer::set_ht_options takes its argument as given.
#pragma once

namespace epcomm {

// Copy-engine dispatch: which rows the copy engine copies straight from x instead of the SMs
// packing them first. Only a rank that misses at most 4 of this rank's tokens qualifies (each
// device copy costs ~5 us of host and ~2.7 us of copy engine, so only few runs of rows pay).
enum class StraightCopies : int {
  kNone = 0,             // every peer's rows are packed
  kPeers = 1,            // qualifying peers' rows are copied straight
  kPeersAndOwnRows = 2,  // and this rank's own rows, to its outputs, on a second copy stream
};

// How combine brings rows to the ranks that own their tokens.
enum class CombineTransfer : int {
  kPush = 0,                   // each rank's SMs write its rows into their owners' regions
  kPullStagedBySms = 1,        // staged in the own region by the SMs; owners read them as they sum
  kPullStagedByCopyEngine = 2  // the same, staged by the copy engine (kPullStagedBySms in worst-case mode)
};

inline constexpr int kMaxCopyChunks = 8;  // chunks of a copy-engine dispatch or combine

struct HtOptions {
  // Dispatch: 0: the SMs store each row into its destination's region; n (1 to kMaxCopyChunks):
  // the SMs pack each peer's rows into local staging in n chunks and the copy engine carries each
  // chunk while the next is packed (SM stores in worst-case mode, where the host lacks the counts).
  int dispatch_copy_chunks = 0;
  StraightCopies dispatch_straight = StraightCopies::kPeers;  // copy-engine dispatch only
  CombineTransfer combine = CombineTransfer::kPush;
  // Combine: n (1 to kMaxCopyChunks): the copy engine writes each owner's rows into its region in n
  // chunks while every SM reduces what has landed (overrides `combine` except in worst-case mode).
  int combine_copy_chunks = 0;
};

}  // namespace epcomm
