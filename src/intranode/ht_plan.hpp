// Host-side planning of the high-throughput kernels: how the SM budget splits into roles, how
// tokens split into channels, what the host learns from notify, and whether rows fit. Pure host
// code, covered by CPU tests for any domain size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "epcomm/ht_options.hpp"
#include "intranode/ht_layout.hpp"

namespace epcomm {

// The high-throughput transfer paths in force (HtOptions, with the environment's overrides).
struct HtTuning {
  // 0 push; pull (the owners read staged rows): 1 staged by SMs, 2 by the copy engine.
  int combine_pull = 0;
  // 0: SM stores carry dispatch rows to peers; n: the copy engine, in n chunks.
  int dispatch_copy_chunks = 0;
  // Copy-engine dispatch: rows that go to a rank that gets nearly every token (straight_copies) are
  // copied by the copy engine straight from x: 0 none (peers packed, own rows by SM stores), 1 the
  // peers' rows (kStraightPeers), 2 the own rows too, on a second copy stream (kStraightAll).
  int dispatch_straight = 1;
  // n > 0: the copy engine pushes combine's rows, in n chunks (over combine_pull).
  int combine_copy_chunks = 0;
  // Copy-engine dispatch: largest worst-case staging the packs may use before the host knows the
  // counts (early_staging_rows). Not an environment knob; tests lower it to reach the other path.
  std::int64_t dispatch_early_staging_bytes = std::int64_t{256} << 20;
  // The Buffer's options, each field overridden by its environment variable when that is set
  // (EPCOMM_HT_DISPATCH_CE, _DISPATCH_STRAIGHT, _COMBINE_PULL, _COMBINE_CE). Checked: an option out
  // of range is an epcomm::Error naming the field.
  static HtTuning resolve(const HtOptions& options);
  // Exactly these options, checked (no environment override): Buffer::set_ht_options.
  void set(const HtOptions& options);
  HtOptions options() const;
};

// Throws epcomm::Error naming the field of `options` out of range.
void check_ht_options(const HtOptions& options);

inline constexpr int kStraightPeers = 1;
inline constexpr int kStraightAll = 2;

struct HtDispatchPlan {
  int num_blocks = 0;          // = num_sms
  int num_senders = 0;         // sender blocks (every block copies out once its sends are done)
  int num_channels = 0;        // sender warps: num_senders * kHtWarpsPerBlock
  int tokens_per_channel = 0;  // channel c holds tokens [c * tpc, (c + 1) * tpc)
  // Copy-engine dispatch: one launch of num_senders blocks packs rows in `copy_chunks` chunks (each
  // a run of num_channels / copy_chunks channels, one per sender warp) and the copy engine moves
  // each chunk to the peers once packed; then num_blocks blocks receive. 0: SM stores to the peers'
  // regions.
  int copy_chunks = 0;
};


// Blocks for a kernel whose warps spin until the copy stream's copies and writes land (copy-engine
// dispatch's receiving launch, copy-engine push combine): one SM is always left free.
// NOTE: measured (session 8, ranks sharing one H200): with every SM held, such a dispatch hung on 4
// and 8 ranks (2 passed); with one SM free every count passed. Cause unknown: within one process a
// device copy starts while a kernel holds every SM (tools/probes/local_copy_probe.cu).
inline int blocks_beside_copies(int blocks, int device_sms) {
  return blocks < device_sms ? blocks : device_sms - 1;
}

// num_sms in [2, min(kMaxBlocks, device_sms)]; num_channels fixed (cached dispatch: the handle's,
// with its copy_chunks) or 0 to derive it. Every block sends, then copies out what arrived (the
// phased schedule; measured against senders and receivers at once, bench/NOTES.md). copy_chunks > 0
// (at most kMaxCopyChunks): a copy-engine dispatch, with as many of the chunks as the progress
// counters allow (kMaxChannels), at least one.
HtDispatchPlan plan_ht_dispatch(int num_sms, int device_sms, std::int64_t num_tokens, int num_channels = 0,
                                int copy_chunks = 0);

// EPCOMM_HT_COMBINE_PULL: how combine moves rows to their owners.
inline constexpr int kCombinePush = 0;            // written into the owners' regions, then reduced
inline constexpr int kCombinePullSms = 1;         // staged in the own region by the kernel's SMs
inline constexpr int kCombinePullCopyEngine = 2;  // staged by the copy engine before the kernel

struct HtCombinePlan {
  int num_blocks = 0;
  int num_senders = 0;  // sender blocks: every block sends, then reduces
  int num_shares = 0;   // sender warps: each copies one share of every source's rows
};
HtCombinePlan plan_ht_combine(int num_sms, int device_sms);

// Notify's counts for the host in mapped host memory (HtHostCounts; the multi-domain notify's too), and
// at kHostReadyOffset the multi-domain notify's call sequence number, stored once its counts are
// written.
inline constexpr std::size_t kHostCountsBytes = 1 << 20;
inline constexpr std::size_t kHostReadyOffset = kHostCountsBytes - 64;
// That word, given the host or the device address of the buffer.
inline std::uint64_t* host_ready_word(void* host_counts) {
  return reinterpret_cast<std::uint64_t*>(static_cast<char*>(host_counts) + kHostReadyOffset);
}

// The Buffer's device scratch as the high-throughput dispatch uses it (stream-ordered: one
// operation at a time): notify's per-channel prefix sums and the receivers' copied-row counts.
struct HtScratch {
  static constexpr std::size_t kInts = static_cast<std::size_t>(kMaxDomainRanks) * (kMaxChannels + 1);
  static constexpr std::size_t kBytes = 2 * kInts * sizeof(std::int32_t);
  static std::int32_t* chunk_start(void* scratch) { return static_cast<std::int32_t*>(scratch); }
  static std::int32_t* recv_copied(void* scratch) { return static_cast<std::int32_t*>(scratch) + kInts; }
};

// Rows each rank receives (column sums) or gets back in combine (row sums) of a G x G matrix.
std::vector<std::int64_t> rows_received(const std::int32_t* count_matrix, int G);
std::vector<std::int64_t> rows_returned(const std::int32_t* count_matrix, int G);

// The rows a rank's combine region must hold, per rank: push, the rows it gets back (row sums);
// pull, the rows it received (column sums: they are staged at the index they have in x).
std::vector<std::int64_t> combine_region_rows(const std::int32_t* count_matrix, int G, bool pull);

// Pull mode's staging on domain rank `me`: the rows it received from each other rank, as
// [first, first + count) of x, where they are also staged in its region. Sources ascending, empty
// ones and `me` (its own rows are read from x) left out.
struct StagedRows {
  int source = 0;
  std::int64_t first = 0, count = 0;
};
std::vector<StagedRows> pull_staged_rows(const std::int32_t* count_matrix, int G, int me);

// Copy-engine dispatch: packing may start before the host knows the counts when staging sized for
// the worst case (every token to every peer) is at most `max_bytes` (HtTuning). That many rows,
// or -1 when the bound is larger (the packs then wait for the counts).
std::int64_t early_staging_rows(std::int64_t num_tokens, int num_domain_ranks, std::int64_t row_bytes,
                                std::int64_t max_bytes = HtTuning{}.dispatch_early_staging_bytes);

// Copy-engine dispatch on domain rank `me`: one copy of chunk k to peer d moves this rank's rows
// [send_prefix[d][k], send_prefix[d][k + 1]) to d (send_prefix: G x (K + 1), from notify) from
// its staging (first_staged_row) to where they land in d's region (first_row_on). Chunks ascending,
// then peers; empty copies and `me` (its rows go straight to its outputs) left out.
struct ChunkCopy {
  int chunk = 0, dst = 0;
  std::int64_t stage_row = 0, region_row = 0, rows = 0;
};
std::vector<ChunkCopy> dispatch_chunk_copies(const std::int32_t* count_matrix,
                                             const std::int32_t* send_prefix, int G, int me, int K);

// Straight copies (straight_copies) on domain rank `me`: one copy moves rows [token, token + rows)
// of x to peer `dst`'s region at `region_row` (first_row_on + the tokens to dst before `token`);
// a run of consecutive tokens to dst, cut where a chunk ends (chunk k: the tokens of channels
// [copy_chunk_channel(k), copy_chunk_channel(k + 1)), tokens_per_channel each). Ranks whose rows
// are not straight, and `me` unless `self` (its own rows, at the same rows of its outputs), left
// out; chunks ascending, then ranks, then tokens. in_rank: the caller's is_token_in_rank,
// [num_tokens][G], on the host.
struct StraightCopy {
  int chunk = 0, dst = 0;
  std::int64_t token = 0, region_row = 0, rows = 0;
};
std::vector<StraightCopy> dispatch_straight_copies(const bool* in_rank, std::int64_t num_tokens,
                                                   const std::int32_t* count_matrix, int G, int me, int K,
                                                   int num_channels, int tokens_per_channel,
                                                   bool self = false);

// Combine pushed by the copy engine (EPCOMM_HT_COMBINE_CE) on domain rank `me`: the copy of chunk
// b to owner s moves share b (share_begin(n, b, K)) of the n rows this rank received from s, from
// x (where s's rows start at first_row_on(s, me)) to s's region at first_row_back(s, me). Chunks
// ascending, then owners; empty copies and `me` left out.
struct CombineCopy {
  int chunk = 0, owner = 0;
  std::int64_t x_row = 0, region_row = 0, rows = 0;
};
std::vector<CombineCopy> combine_chunk_copies(const std::int32_t* count_matrix, int G, int me, int K);

// Throws epcomm::Error naming num_nvl_bytes (and the rank and rows) when some rank's rows exceed
// the region's capacity.
void check_rows_fit(const std::vector<std::int64_t>& rows_per_rank, std::int64_t cap_rows,
                    std::size_t bytes_per_row, const char* what);

// Largest number of local experts the notify mailbox holds for a domain of G ranks and C channels.
int max_local_experts(int num_domain_ranks, int num_channels);

}  // namespace epcomm
