// Arguments of the low-latency kernels (dispatch, combine): plain data shared by the host code that
// fills them and the kernels that read them. Sections named below live in ll_layout.hpp.
//
// Protocol (R ranks; every rank runs the same sequence of LL operations). "Region" below is the
// rank's LL workspace (ll_layout.hpp):
//
// Sequence numbers and parity. Each kind (dispatch, combine) has a device counter `seq` in its
// LlControl. The send phase of an operation takes seq = control.seq + 1 (every block reads it at
// its start; the last block to finish sending stores it back, and into issued[half] for a receive
// launched later: an arrival counter, off the path to the peers). Staging sections are indexed by the parity
// p = seq & 1. Because the counter lives on the device, a captured CUDA graph alternates the staging parity
// on every replay exactly as eager calls do; all ranks replay the same graphs, so their counters agree. The
// host-side `half` (fixed in the call, and in a captured graph) selects only where the outputs go and which
// issued[] slot joins a split call's receive to its send.
//
// Dispatch has two forms. The one below (the staging form) serves every transport; with CUDA IPC,
// where every peer is reached by stores, the direct form (ll_dispatch_direct.cuh) replaces steps
// 2-5: list blocks publish each selection's place and the counts early, row blocks flag their
// rows per block, and each receiving block copies the items its same-numbered sender blocks sent
// as soon as their flags are set, not after the whole grid's done signal.
//
// Dispatch, send phase (on rank s):
//  1. Credit: before writing into receiver d's staging of parity p, wait (bounded) until
//     s's own control.freed[p][d] >= (seq - 1) / 2 * G, i.e. each of the G receive-phase blocks of
//     each earlier operation of parity p on d finished reading what s wrote there. Every rank
//     launches the same grid of G blocks (the Buffer agrees on it when it is made).
//  2. Write each token's row (cast to FP8 once, in registers, or its BF16 bytes) and scales at
//     staging_x / staging_scales[p][s][t] in every rank holding at least one of its experts: a
//     token crosses NVLink once per destination rank, however many experts it selects there. (Each
//     warp's first row is loaded and cast before the credit wait.) Then, for each expert e, block
//     e mod G writes the list of s's (token t, slot j) selections of e, in token and slot order, as
//     (t << 8) | j at sel[p][s][e][.] in e's holder, and its length at sel_count[p][s][e] (more
//     than T: reported, the rest dropped).
//     Block 0 also writes this call's signature (core/call_signature.hpp) at signature[p][s] in
//     every receiver's control block, before its done signal.
//  3. Completion: every block, once its sends are done, release-adds 1 to done[p][s] in every
//     receiver (no block waits for the grid's last one). One thread of it also bumps
//     send_arrivals, and no thread waits for that: the last one resets it and stores seq and
//     issued[half], read by later launches only.
// Dispatch, receive phase (on rank d):
//  4. Wait (bounded) until done[p][s] >= (seq + 1) / 2 * G for every source s: every block of this
//     operation and of each earlier one of parity p has signalled. Values only grow, so adds left
//     by older operations are counted, never mistaken: no counter ever needs cleaning. Then
//     compare every source's signature with this call's: on a difference, report kPeerMismatch and
//     skip step 5 (nothing is read by the wrong shape), but still give the credits of step 6.
//  5. For each local expert e (blocks split the experts, or the rows of one expert): its rows are
//     the lists of sources 0..R-1 one after the other (sel_count gives their lengths); row i copies
//     the staged token its entry names from staging into recv_x[e][i], its scales transposed into
//     recv_scales[e][.][i], src_info[e][i] = t and token_rows[s][t][slot] = e * capacity + i (the
//     send phase cleared token_rows to -1); write layout_range and recv_count.
//  6. Every block, once its copies are done, adds 1 to freed[p][d] in every source's control
//     block (the credit of step 1), unordered (ll_give_credits says why that suffices): no block
//     waits for the grid's last one, nor for its own output writes.
// Combine (rank d holds the experts, rank s owns the tokens): the same seq / parity / credit
// scheme with the combine control block.
//  7. Send: block 0 writes the owner's top-k weights of its T_s tokens into every holder d at
//     combine_weights[p][s], each tagged with seq in the same 8-byte word (ll_tag_word), and,
//     in a holder reached by puts, release-stores weights[p][s] = seq there once its put has
//     completed (it loads the first of them, and with CUDA IPC every
//     other block's warps their first item's rows, before the credit wait). As a holder, for each
//     (source s, token t) with rows here (token_rows of the handle's dispatch, filled by its
//     receive), read each slot's weight until its tag is seq (a source reached by puts: wait for
//     weights[p][s] first, as its put is not one word), then partial = the sum over those slots ascending of
//     w[t,k] * y[row], each product rounded to float32 and added in float32 from 0, stored at
//     combine_partial[p][t][d] in the owner. Then every block adds to done[p][d] in every rank, as
//     in step 3; with CUDA IPC, block b instead release-stores seq into partials_done[p][d][b] in
//     every rank (block 0 published the signature before its flag).
//  8. Receive: the owner waits for done from every rank, then out[t] = the sum of the partials of
//     the distinct ranks holding t's valid slots (0 <= topk_idx[t,k] < E), in rank order, added in
//     float32 from 0, one BF16 rounding (the reference's exact operations). Then credits, as in
//     step 6. With CUDA IPC, block b waits only for partials_done[p][s][0] and [p][s][b] of every
//     source s and sums the items its warps' slots took as senders whose owner is this rank: those
//     block b of every holder summed (every rank runs the same grid; ll_combine_recv.cuh).
// Combine, pulled (CUDA IPC with a zero-copy y, LlCombineArgs::pull; ll_combine_pull.cuh): y is
// zero_copy_y(half) of every rank's workspace, which every peer has mapped, so the owners read it.
//  7p. Send: block 0 waits for the credits (step 1), writes the signature into every other rank,
//      then release-stores seq into done[p][d] there (a flag: the IPC pushed combine flags per
//      block and never adds to done). Nothing else is written into a peer.
//  8p. Receive: every block waits for done[p][d] >= seq and the signature of every other unmasked
//      rank d (its own rows need no wait); then warps take (token, 256-channel part) items: each
//      slot's row is token_rows[s = this rank][t][slot] in its holder, read there with the row of
//      the holder's y, and out[t] is summed in step 7-8's order (per holder its slots in slot
//      order from 0, then the holders in rank order from 0, one BF16 rounding): the same bits.
//      Then credits, as in step 6, and block 0 waits until every other unmasked rank's credits for
//      this operation have come: when the launch ends no peer reads this rank's y or token_rows.
//
// Co-residency: a launch that runs both phases spins in its receive phase on the signal its own
// send-phase blocks give, so its grid never exceeds the SM count (one block per SM).
//
// Transports (ll_peers.cuh). With CUDA IPC, the writes of steps 2 and 7 and the signals of steps 3
// and 6 are stores into the peer's mapped workspace. With NVSHMEM (BufferOptions::ll_transport),
// the workspace is one symmetric allocation and every peer but this rank itself is reached by
// puts: a dispatch row piece is stored once at its staging slot in this rank's own workspace
// (slot [p][s][t] is at the same offset on every receiver) and put from there to each
// destination; each expert's list and count, written by its block, are put by one warp after a
// block barrier and a system-scope fence. Combine weights
// are put by block 0 (completed before their signal); a partial sum for another owner is computed
// into combine_stage and put from there. Each thread completes its puts
// (nvshmem_quiet) before its block signals, so every put of the block has completed before its
// done; signals are NVSHMEM signal SETs (weights: seq) or ADDs (done, freed); values still only
// grow. Waits stay polls of this rank's own memory. Across NVLink domains (the hybrid policy,
// transport/hybrid_ll_peers.cuh) the view covers every rank; the ranks of this rank's domain are
// reached as with CUDA IPC (stores into their symmetric workspaces, release signals), the others
// as with NVSHMEM, each peer decided at run time from its rank.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/domain_view.hpp"
#include "low_latency/ll_layout.hpp"

namespace epcomm {

// Which phases one launch runs.
enum LlPhases : int { kLlSend = 1, kLlRecv = 2, kLlBoth = 3 };

// Step 1's bound: the credits (freed adds) a receiver has given a sender, for staging of the
// parity of operation `seq` (1-based), once every earlier operation of that parity was read by all
// `grid` receive-phase blocks: (seq - 1) / 2 operations.
EPCOMM_HD constexpr std::uint64_t ll_credits_before(std::uint64_t seq, std::uint64_t grid) {
  return seq == 0 ? 0 : (seq - 1) / 2 * grid;
}

// Step 4's bound: the done adds a receiver has from each source once operation `seq` (1-based)
// and every earlier operation of its parity have finished sending, `grid` blocks each: (seq + 1) / 2
// operations.
EPCOMM_HD constexpr std::uint64_t ll_done_after(std::uint64_t seq, std::uint64_t grid) {
  return (seq + 1) / 2 * grid;
}

// The direct dispatch's roles (ll_dispatch_direct.cuh): its grid's last list_blocks blocks build
// the lists, about one per kLlExpertsPerListBlock experts and at most an eighth of the grid (at
// least one); its first row_blocks blocks send the rows (a grid of one block does both). Every rank
// computes the same roles from the same grid and experts.
inline constexpr int kLlExpertsPerListBlock = 64;
struct LlDirectRoles {
  int list_blocks, row_blocks;
};
EPCOMM_HD constexpr LlDirectRoles ll_direct_roles(int num_experts, int grid) {
  const int want = (num_experts + kLlExpertsPerListBlock - 1) / kLlExpertsPerListBlock;
  const int cap = grid / 8;
  const int lists = want < cap ? want : cap;
  const int list_blocks = lists > 1 ? lists : 1;
  return {list_blocks, grid - list_blocks > 1 ? grid - list_blocks : 1};
}

// The dispatch's row items (ll_dispatch_send.cuh; item = token * parts + part): warp w of row
// block b (of `row_blocks`) first takes item w * row_blocks + b, then every row_blocks * warps-th
// after it. A token's consecutive parts go to consecutive blocks, one SM each, and block b's items
// (the rows its flag covers) are those congruent to b modulo row_blocks, on sender and receiver alike.
EPCOMM_HD constexpr int ll_row_warp_slot(int block, int warp, int row_blocks) {
  return warp * row_blocks + block;
}

// The combine's send items (ll_combine.cuh), taken by the partial blocks: with a grid of more than
// one block every block but block 0, which sends the weights and whose flag every receive waits
// for (so it takes no rows, whose loads would hold its sends back behind the others', NOTES 11.92);
// a grid of one block takes them all. Item i goes to warp slot i mod (partial blocks * warps per
// block), and warp w of block b takes warp slot w * partial blocks + ll_partial_slot_block(b), or
// none (-1). Consecutive slots lie in consecutive blocks: a token's parts are summed by as many SMs
// as it has parts, not by one block's warps (bench/NOTES.md 11.88).
EPCOMM_HD constexpr int ll_partial_blocks(int grid) {
  return grid > 1 ? grid - 1 : 1;
}
// Block `block`'s place among the partial blocks, -1 for block 0 of a grid of more than one.
EPCOMM_HD constexpr int ll_partial_slot_block(int block, int grid) {
  return grid > 1 ? block - 1 : 0;
}
EPCOMM_HD constexpr int ll_partial_warp_slot(int block, int warp, int grid) {
  const int slot_block = ll_partial_slot_block(block, grid);
  return slot_block < 0 ? -1 : warp * ll_partial_blocks(grid) + slot_block;
}

// Phase-boundary timestamps (EPCOMM_LL_TRACE): with a non-null `trace`, thread 0 of every block
// stores %globaltimer at each point into trace[(seq % kLlTraceRing) * grid + block][point]. A launch
// that sends first clears its block's entry; a receive-only launch adds its points to it.
enum LlTracePoint : int {
  kLlTraceEntry,        // the launch began (send-capable launch)
  kLlTraceCredits,      // peers freed the staging this operation writes (the first loads done)
  kLlTraceListBinned,   // direct dispatch, list blocks: the first round's ids binned by expert
  kLlTraceListPlaced,   // direct dispatch, list blocks: the first round's places stored
  kLlTraceSent,         // the block's sends were issued
  kLlTraceSendArrived,  // thread 0 past its done signals (their fence)
  kLlTraceRecvEntry,    // a receive-only launch began
  kLlTraceDoneSeen,     // every source's completion signal was seen (and its signature checked;
                        // direct dispatch: and the counts scanned)
  kLlTraceItemReady,    // direct dispatch, row blocks: thread 0's first item located, its stores next
  kLlTraceReceived,     // the block's receive work is done
  kLlTraceExit,         // past the final arrival (the last block: after its signals)
  kLlTracePoints
};
inline constexpr int kLlTraceRing = 64;

struct LlDispatchArgs {
  DomainView view;
  CallSignature signature;  // this call's; every peer's must equal it (step 4)
  LlLayout layout;
  char* workspace = nullptr;         // this rank's workspace (ll_layout.hpp)
  const std::uint16_t* x = nullptr;  // [num_tokens, hidden] bf16
  const void* topk_idx = nullptr;    // [num_tokens, num_topk], int64 or int32 (idx_bytes)
  int idx_bytes = 8;
  std::int64_t num_tokens = 0;
  int num_topk = 0;
  bool use_fp8 = true;
  bool round_scale = false;
  bool use_ue8m0 = false;
  int half = 0;  // host half of the outputs
  int phases = kLlBoth;
  bool direct = false;             // the direct form (CUDA IPC only; ll_dispatch_direct.cuh)
  std::int32_t* stats = nullptr;   // [nle] cumulative received rows, or null
  std::uint64_t* trace = nullptr;  // phase timestamps (LlTracePoint), or null
};
static_assert(std::is_trivially_copyable_v<LlDispatchArgs>);

struct LlCombineArgs {
  DomainView view;
  CallSignature signature;  // this call's; every peer's must equal it
  LlLayout layout;
  char* workspace = nullptr;         // this rank's workspace (ll_layout.hpp)
  const std::uint16_t* y = nullptr;  // [nle, capacity, hidden] bf16, dispatch layout
  const void* topk_idx = nullptr;    // [num_tokens, num_topk]
  int idx_bytes = 8;
  const float* topk_weights = nullptr;  // [num_tokens, num_topk]
  std::int64_t num_tokens = 0;
  int num_topk = 0;
  int dispatch_half = 0;  // outputs half of the dispatch whose token_rows map the rows
  int half = 0;           // host half of this combine's output
  int phases = kLlBoth;
  // Pulled by the owners (steps 7p-8p; CUDA IPC with a zero-copy y only: y is then
  // zero_copy_y(half) in every rank's workspace), else pushed (steps 7-8).
  bool pull = false;
  std::uint64_t* trace = nullptr;  // phase timestamps (LlTracePoint), or null
  std::uint16_t* out = nullptr;    // [num_tokens, hidden] bf16: the caller's output, or the workspace's
  FastDivisor by_domain_ranks{1};  // by view.num_domain_ranks, set on the host
  FastDivisor by_topk{1};          // by num_topk (at least 1), set on the host
};
static_assert(std::is_trivially_copyable_v<LlCombineArgs>);

// Dynamic shared memory a low-latency kernel may ask for (well under every sm_90 limit).
inline constexpr std::size_t kLlMaxSharedBytes = 96 * 1024;

// Dynamic shared memory of the dispatch kernel's receive phase: the rows' layout, per (local expert,
// source) and per local expert (ll_dispatch.cuh, RecvLayout). Host code checks it against the limit.
inline std::size_t ll_dispatch_smem_bytes(int num_ranks, int num_local_experts) {
  const auto nle = static_cast<std::size_t>(num_local_experts);
  return sizeof(std::int32_t) * (nle * static_cast<std::size_t>(num_ranks) + 1 + nle + 1);
}

// Host-side launchers of the CUDA IPC kernels (stream is a cudaStream_t). num_blocks <= the
// device's SM count. The NVSHMEM kernels' launchers have the same types (transport/ll_transport.hpp).
void launch_ll_dispatch(const LlDispatchArgs& args, int num_blocks, void* stream);
void launch_ll_combine(const LlCombineArgs& args, int num_blocks, void* stream);
using LlDispatchLauncher = void (*)(const LlDispatchArgs& args, int num_blocks, void* stream);
using LlCombineLauncher = void (*)(const LlCombineArgs& args, int num_blocks, void* stream);

}  // namespace epcomm
