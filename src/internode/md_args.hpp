// Arguments of the multi-domain kernels (docs/multi_domain.md): plain data shared by the host op
// that fills them (md_dispatch_op.cpp) and the kernels that read them (md_notify.cu,
// md_dispatch.cu, built into epcomm_nvshmem), and the hooks through which the main library reaches
// those kernels when epcomm_nvshmem is linked into the program.
//
// Rank (d, i): domain d = rank / G, local index i = rank % G. Tables of the handle:
//   count_matrix [R][G]: tokens of source rank r reaching rank (d, j) of this domain
//   fwd_prefix [D][C + 1][G]: rows to (d, j) of the stream from (s, i) before channel c (c = C: all)
//   fwd_len [D][C]: tokens of channel c of (s, i) reaching domain d (the stream's length; s = d: 0)
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/call_signature.hpp"
#include "core/domain_view.hpp"
#include "internode/md_layout.hpp"
#include "intranode/ht_layout.hpp"

namespace epcomm {

// What notify leaves for the host in mapped memory (int32): [total | per_expert nle | domain
// totals G (rows each rank of this domain receives)].
struct MdHostCounts {
  int num_local_experts = 0, ranks_per_domain = 0;
  static constexpr int kTotal = 0;
  EPCOMM_HD int per_expert() const { return 1; }
  EPCOMM_HD int domain_totals() const { return 1 + num_local_experts; }
  EPCOMM_HD int ints() const { return 1 + num_local_experts + ranks_per_domain; }
};

// Where the rank sits among the domains, and its symmetric region.
struct MdPlace {
  int num_domains = 0;  // D
  int domain = 0;       // this rank's domain
  char* sym = nullptr;  // this rank's symmetric region (every PE's at the same address)
};

struct MdNotifyArgs {
  DomainView view;  // the NVLink domain (G ranks)
  MdPlace place;
  MdHeader header;
  MdRings rings;  // the rings of the dispatch that follows: notify clears their slot flags
  // This call's; every peer's must equal it. It travels with the records of both exchanges (the
  // other domains' peers, then the domain's), sync_only included.
  CallSignature signature;
  // Cached dispatch and combine: only the two synchronisations (with the peers of the other
  // domains, then the domain), no counts; every table below but notify_epoch is then unused.
  bool sync_only = false;
  const bool* is_token_in_rank = nullptr;               // [T, R]
  const std::int32_t* num_tokens_per_expert = nullptr;  // [E]
  std::int64_t num_tokens = 0;
  int num_channels = 0;  // C
  int num_local_experts = 0;
  int expert_alignment = 1;
  std::int32_t* scan = nullptr;  // scratch [C][R + D]: rows to rank r, tokens to domain d, per channel
  std::uint64_t* notify_epoch = nullptr;  // device counter of count exchanges (shared with one domain's)
  // Outputs (the handle).
  std::int32_t* count_matrix = nullptr;         // [R][G]
  std::int32_t* fwd_prefix = nullptr;           // [D][C + 1][G]
  std::int32_t* fwd_len = nullptr;              // [D][C]
  std::int32_t* num_recv = nullptr;             // [1]
  std::int32_t* num_recv_per_expert = nullptr;  // [nle], aligned
  std::int32_t* host_counts = nullptr;          // MdHostCounts in mapped host memory, or null
  std::uint64_t* host_ready = nullptr;          // mapped host memory: host_ready_seq after the counts
  std::uint64_t host_ready_seq = 0;
};
static_assert(std::is_trivially_copyable_v<MdNotifyArgs>);

// One forwarder stream's progress in this operation (scratch, zeroed before each dispatch).
struct MdStreamState {
  std::int32_t consumed;  // slots of this operation read so far
  std::int32_t credited;  // of those, returned to the sender as credits
  std::int32_t
      rows_to[kMaxDomainRanks];  // dispatch: the next row on each rank j; combine: the merge's cursor
  std::int32_t row_end[kMaxDomainRanks];  // combine: where the stream's rows on j end
};

struct MdDispatchArgs {
  DomainView view;
  MdPlace place;
  MdSymmetricLayout sym;  // header, slot format, this operation's rings
  HtDispatchLayout region;
  const std::uint8_t* x = nullptr;  // [T, row_bytes]
  const float* x_scales = nullptr;  // FP8 scales, strided
  std::int64_t scale_stride_token = 0, scale_stride_block = 0;
  const void* topk_idx = nullptr;          // [T, k], int64 or int32 (region.idx_bytes); null without top-k
  const float* topk_weights = nullptr;     // [T, k]
  const bool* is_token_in_rank = nullptr;  // [T, R]
  std::int64_t num_tokens = 0;
  int num_local_experts = 0;
  int num_channels = 0;  // C; the grid is 2C blocks (senders, then forwarders)
  const std::int32_t* count_matrix = nullptr;
  const std::int32_t* fwd_prefix = nullptr;
  const std::int32_t* fwd_len = nullptr;
  const std::int32_t* num_recv = nullptr;
  MdStreamState* streams = nullptr;  // scratch [P][C], zeroed
  // Rows that do not fit some rank of this domain (the host knows, or the kernel finds in
  // worst-case mode): no row is written here, but every stream is still read and credited, so the
  // other domains' ranks finish their part.
  bool drain = false;
  bool outputs_in_region = false;  // zero-copy
  std::int64_t num_rows = 0;
  bool num_worst = false;
  std::uint8_t* recv_x = nullptr;
  float* recv_scales = nullptr;
  void* recv_topk_idx = nullptr;
  float* recv_topk_weights = nullptr;
  std::int32_t* recv_src_idx = nullptr;
};
static_assert(std::is_trivially_copyable_v<MdDispatchArgs>);

// Where combine's forwarders find the rows a rank received, staged in its NVLink region's data
// area (RegionLayout::data): [ x rows: cap x hidden BF16 | weights: cap x k f32 | src_idx: cap x i32 ].
struct MdCombineNvl {
  std::int64_t cap_rows = 0, hidden = 0;
  int num_topk = 0;
  std::size_t x = 0, weights = 0, src_idx = 0;

  EPCOMM_HD static MdCombineNvl make(std::size_t data_bytes, std::int64_t hidden, int num_topk) {
    MdCombineNvl l;
    l.hidden = hidden;
    l.num_topk = num_topk;
    const std::size_t per_row =
        static_cast<std::size_t>(hidden) * 2 + 4u * static_cast<std::size_t>(num_topk) + 4u;
    const std::size_t slack = 3 * kSectionAlignment;
    l.cap_rows = data_bytes > slack ? static_cast<std::int64_t>((data_bytes - slack) / per_row) : 0;
    const auto cap = static_cast<std::size_t>(l.cap_rows);
    l.weights = align_up(cap * static_cast<std::size_t>(hidden) * 2, kSectionAlignment);
    l.src_idx = align_up(l.weights + cap * 4u * static_cast<std::size_t>(num_topk), kSectionAlignment);
    return l;
  }
};

struct MdCombineArgs {
  DomainView view;
  MdPlace place;
  MdSymmetricLayout sym;  // combine slots and rings
  MdCombineNvl nvl;       // every rank of the domain staged its rows so (progress(j, j, 1) says when)
  int num_channels = 0;   // C of the dispatch (the handle's); the grid is 2C blocks
  int num_local_experts = 0;
  std::int64_t num_tokens = 0;
  const bool* is_token_in_rank = nullptr;  // [T, R]: the dispatch's routing (the handle's copy)
  const std::int32_t* count_matrix = nullptr;
  const std::int32_t* fwd_prefix = nullptr;
  const std::int32_t* fwd_len = nullptr;
  const std::uint16_t* bias0 = nullptr;  // [T, hidden] or null
  const std::uint16_t* bias1 = nullptr;
  std::uint16_t* out = nullptr;      // [T, hidden]
  float* out_weights = nullptr;      // [T, k] or null
  MdStreamState* streams = nullptr;  // scratch [P][C]: the forwarders' merge cursors (rows_to), zeroed
};
static_assert(std::is_trivially_copyable_v<MdCombineArgs>);

inline constexpr int kMdWarpsPerBlock = 16;
inline constexpr int kMdPublishTokens = 4;  // a writer releases its rows' progress this often

// The launchers (md_notify.cu, md_dispatch.cu; epcomm_nvshmem only). stream: a cudaStream_t.
void launch_md_notify(const MdNotifyArgs& args, void* stream);
void launch_md_dispatch(const MdDispatchArgs& args, void* stream);
void launch_md_combine(const MdCombineArgs& args, void* stream);

using MdNotifyLauncher = void (*)(const MdNotifyArgs& args, void* stream);
using MdDispatchLauncher = void (*)(const MdDispatchArgs& args, void* stream);
using MdCombineLauncher = void (*)(const MdCombineArgs& args, void* stream);

struct MdKernelHooks {
  MdNotifyLauncher notify;
  MdDispatchLauncher dispatch;
  MdCombineLauncher combine;
};
// Null unless epcomm_nvshmem is linked into the program.
const MdKernelHooks* md_kernel_hooks() noexcept;
void set_md_kernel_hooks(const MdKernelHooks* hooks) noexcept;

}  // namespace epcomm
