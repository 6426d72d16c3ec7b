#include "internode/md_sizes.hpp"

#include <algorithm>
#include <climits>

#include "core/check.hpp"
#include "internode/md_args.hpp"
#include "internode/md_plan.hpp"
#include "intranode/ht_layout.hpp"
#include "intranode/op_checks.hpp"

namespace epcomm {

namespace {

constexpr int kFp8ScaleBlock = 128;  // channels per FP8 scale

// The shape's own preconditions (errors name the field).
// The bounds keep every size computed from a shape far from overflow (the public hints take any
// value): the operations themselves allow no more.
void check_shape(const MdShape& shape) {
  MdGeometry::make(shape.num_ranks(), shape.ranks_per_domain, shape.num_experts);
  EPCOMM_CHECK_ARG(shape.num_tokens >= 0 && shape.num_tokens <= INT32_MAX, "num_tokens: expected 0 to ",
                   INT32_MAX, ", got ", shape.num_tokens);
  EPCOMM_CHECK_ARG(shape.hidden > 0 && shape.hidden <= checks::kMaxHidden &&
                       (!shape.fp8 || shape.hidden % kFp8ScaleBlock == 0),
                   "hidden: expected 1 to ", checks::kMaxHidden,
                   shape.fp8 ? ", a multiple of 128 (FP8 scales)" : "", ", got ", shape.hidden);
  EPCOMM_CHECK_ARG(shape.num_topk >= 0 && shape.num_topk <= checks::kMaxTopk, "num_topk: expected 0 to ",
                   checks::kMaxTopk, ", got ", shape.num_topk);
}

// Rows of a region: at most every token of every rank, R x T (well inside 2^46), so sizes stay exact.
constexpr std::int64_t kMaxRegionRows = std::int64_t{1} << 46;

const char* op_name(MdOp op) {
  return op == kMdOpDispatch ? "dispatch" : "combine";
}

HtDispatchLayout nvl_dispatch(const MdShape& shape, std::size_t data_bytes) {
  return HtDispatchLayout::make(data_bytes, shape.fp8 ? shape.hidden : shape.hidden * 2,
                                shape.fp8 ? static_cast<int>(shape.hidden / kFp8ScaleBlock) : 0,
                                shape.num_topk,
                                /*idx_bytes=*/8);
}
// Combine stages each received row with its weights and source token (md_combine_op.cpp).
MdCombineNvl nvl_combine(const MdShape& shape, std::size_t data_bytes) {
  return MdCombineNvl::make(data_bytes, shape.hidden, shape.num_topk);
}

}  // namespace

MdSlot md_dispatch_slot(const MdShape& shape) {
  check_shape(shape);
  return MdSlot::dispatch(shape.fp8 ? shape.hidden : shape.hidden * 2,
                          shape.fp8 ? static_cast<int>(shape.hidden / kFp8ScaleBlock) : 0, shape.num_topk,
                          shape.ranks_per_domain);
}

MdSlot md_combine_slot(const MdShape& shape) {
  check_shape(shape);
  return MdSlot::combine(shape.hidden, shape.num_topk);
}

MdRingConfig md_ring_config(const MdShape& shape, int num_sms, std::int64_t ring_budget_bytes) {
  check_shape(shape);
  EPCOMM_CHECK_ARG(num_sms >= 2, "num_sms: expected >= 2 (one channel is a sender and a forwarder), got ",
                   num_sms);
  EPCOMM_CHECK_ARG(ring_budget_bytes > 0, "ring_budget_bytes: expected > 0, got ", ring_budget_bytes);
  MdRingConfig config;
  config.num_channels = std::min(num_sms / 2, kMdMaxChannels);
  config.staging_slots = kMdDefaultStagingSlots;
  const int num_peers = shape.num_domains - 1;
  if (num_peers == 0) return config;
  const std::size_t stride = std::max(md_dispatch_slot(shape).stride, md_combine_slot(shape).stride);
  const auto per_slot = static_cast<std::int64_t>((stride + sizeof(std::uint64_t)) *
                                                  static_cast<std::size_t>(num_peers * config.num_channels));
  const std::int64_t whole_channel = (shape.num_tokens + config.num_channels - 1) / config.num_channels;
  const std::int64_t slots =
      std::min({std::int64_t{kMdDefaultRingSlots}, std::max<std::int64_t>(whole_channel, 1),
                ring_budget_bytes / per_slot});
  config.ring_slots = static_cast<int>(std::max<std::int64_t>(slots, kMdMinRingSlots));
  return config;
}

std::int64_t md_rdma_bytes_hint(const MdShape& shape, const MdRingConfig& config) {
  check_shape(shape);
  EPCOMM_CHECK_ARG(config.num_channels >= 1 && config.num_channels <= kMdMaxChannels,
                   "num_channels: expected 1 to ", kMdMaxChannels, ", got ", config.num_channels);
  EPCOMM_CHECK_ARG(config.ring_slots >= 0 && config.ring_slots <= kMdMaxRingSlots,
                   "ring_slots: expected 0 to ", kMdMaxRingSlots, ", got ", config.ring_slots);
  EPCOMM_CHECK_ARG(config.staging_slots >= 1, "staging_slots: expected >= 1, got ", config.staging_slots);
  std::size_t bytes = 0;
  for (const MdSlot& slot : {md_dispatch_slot(shape), md_combine_slot(shape)}) {
    bytes = std::max(bytes,
                     MdSymmetricLayout::make(shape.num_domains, shape.ranks_per_domain, config.num_channels,
                                             config.ring_slots, config.staging_slots, slot)
                         .total_bytes());
  }
  return static_cast<std::int64_t>(bytes);
}

MdRingConfig md_fit_rdma(std::int64_t num_rdma_bytes, const MdShape& shape, int num_channels,
                         int staging_slots, MdOp op) {
  check_shape(shape);
  EPCOMM_CHECK_ARG(num_channels >= 1 && num_channels <= kMdMaxChannels, "num_channels: expected 1 to ",
                   kMdMaxChannels, ", got ", num_channels);
  EPCOMM_CHECK_ARG(staging_slots >= 1, "staging_slots: expected >= 1, got ", staging_slots);
  EPCOMM_CHECK_ARG(num_rdma_bytes >= 0, "num_rdma_bytes: expected >= 0, got ", num_rdma_bytes);
  const MdSlot slot = op == kMdOpDispatch ? md_dispatch_slot(shape) : md_combine_slot(shape);
  const MdSymmetricLayout layout =
      MdSymmetricLayout::fit(static_cast<std::size_t>(num_rdma_bytes), shape.num_domains,
                             shape.ranks_per_domain, num_channels, staging_slots, slot);
  if (shape.num_domains > 1 && layout.rings.ring_slots < kMdMinRingSlots) {
    const std::size_t needed = MdSymmetricLayout::make(shape.num_domains, shape.ranks_per_domain,
                                                       num_channels, kMdMinRingSlots, staging_slots, slot)
                                   .total_bytes();
    EPCOMM_THROW(ErrorCategory::kInvalidArgument, "num_rdma_bytes: ", num_rdma_bytes, " bytes hold ",
                 layout.rings.ring_slots, " ring slots per (peer domain, channel) for ", op_name(op), " (",
                 shape.num_domains - 1, " peer domains x ", num_channels, " channels, ", slot.stride,
                 "-byte slots); at least ", kMdMinRingSlots, " are needed: ", needed,
                 " bytes (md_rdma_bytes_hint sizes a full configuration)");
  }
  return MdRingConfig{num_channels, layout.rings.ring_slots, staging_slots};
}

std::int64_t md_worst_recv_rows(const MdShape& shape) {
  check_shape(shape);
  return static_cast<std::int64_t>(shape.num_ranks()) * shape.num_tokens;
}

std::int64_t md_nvl_bytes_hint(const MdShape& shape, std::int64_t rows) {
  check_shape(shape);
  EPCOMM_CHECK_ARG(rows >= 0 && rows <= kMaxRegionRows, "rows: expected 0 to ", kMaxRegionRows, ", got ",
                   rows);
  const auto n = static_cast<std::size_t>(rows);
  // HtDispatchLayout / MdCombineNvl::make keep 5 / 3 section alignments of slack.
  const std::size_t dispatch = n * nvl_dispatch(shape, 0).bytes_per_row() + 5 * kSectionAlignment;
  const std::size_t combine =
      n * (static_cast<std::size_t>(shape.hidden) * 2 + 4u * static_cast<std::size_t>(shape.num_topk) + 4u) +
      3 * kSectionAlignment;
  return static_cast<std::int64_t>(std::max(dispatch, combine));
}

void check_md_nvl_bytes(std::int64_t num_nvl_bytes, const MdShape& shape, std::int64_t rows) {
  check_shape(shape);
  EPCOMM_CHECK_ARG(num_nvl_bytes >= 0, "num_nvl_bytes: expected >= 0, got ", num_nvl_bytes);
  const auto bytes = static_cast<std::size_t>(num_nvl_bytes);
  const std::int64_t cap = std::min(nvl_dispatch(shape, bytes).cap_rows, nvl_combine(shape, bytes).cap_rows);
  EPCOMM_CHECK_ARG(cap >= rows, "num_nvl_bytes: ", num_nvl_bytes, " bytes hold ", cap,
                   " received rows (hidden ", shape.hidden, shape.fp8 ? " FP8" : " BF16", ", top-",
                   shape.num_topk, "); this operation needs ", rows, ": ", md_nvl_bytes_hint(shape, rows),
                   " bytes");
}

}  // namespace epcomm
