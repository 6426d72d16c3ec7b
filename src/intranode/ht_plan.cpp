#include "intranode/ht_plan.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>

#include "core/check.hpp"
#include "core/env.hpp"

namespace epcomm {

void check_ht_options(const HtOptions& o) {
  EPCOMM_CHECK_ARG(o.dispatch_copy_chunks >= 0 && o.dispatch_copy_chunks <= kMaxCopyChunks,
                   "ht.dispatch_copy_chunks: expected 0 to ", kMaxCopyChunks, ", got ", o.dispatch_copy_chunks);
  EPCOMM_CHECK_ARG(o.combine_copy_chunks >= 0 && o.combine_copy_chunks <= kMaxCopyChunks,
                   "ht.combine_copy_chunks: expected 0 to ", kMaxCopyChunks, ", got ", o.combine_copy_chunks);
  const int straight = static_cast<int>(o.dispatch_straight);
  EPCOMM_CHECK_ARG(straight >= 0 && straight <= kStraightAll, "ht.dispatch_straight: expected 0 to ",
                   kStraightAll, ", got ", straight);
  const int combine = static_cast<int>(o.combine);
  EPCOMM_CHECK_ARG(combine >= kCombinePush && combine <= kCombinePullCopyEngine, "ht.combine: expected ",
                   kCombinePush, " to ", kCombinePullCopyEngine, ", got ", combine);
}

HtTuning HtTuning::resolve(const HtOptions& options) {
  check_ht_options(options);  // the caller's fields, named, even where the environment overrides them
  HtOptions o = options;
  const auto override_with = [](const char* name, auto& field) {
    if (env::is_set(name)) field = static_cast<std::remove_reference_t<decltype(field)>>(env::get_int(name));
  };
  override_with("EPCOMM_HT_DISPATCH_CE", o.dispatch_copy_chunks);
  override_with("EPCOMM_HT_DISPATCH_STRAIGHT", o.dispatch_straight);
  override_with("EPCOMM_HT_COMBINE_PULL", o.combine);
  override_with("EPCOMM_HT_COMBINE_CE", o.combine_copy_chunks);
  HtTuning t;
  t.set(o);
  return t;
}

void HtTuning::set(const HtOptions& o) {
  check_ht_options(o);
  dispatch_copy_chunks = o.dispatch_copy_chunks;
  dispatch_straight = static_cast<int>(o.dispatch_straight);
  combine_pull = static_cast<int>(o.combine);
  combine_copy_chunks = o.combine_copy_chunks;
}

HtOptions HtTuning::options() const {
  return {.dispatch_copy_chunks = dispatch_copy_chunks,
          .dispatch_straight = static_cast<StraightCopies>(dispatch_straight),
          .combine = static_cast<CombineTransfer>(combine_pull),
          .combine_copy_chunks = combine_copy_chunks};
}

namespace {
// The SM budget of one high-throughput kernel.
void check_num_sms(int num_sms, int device_sms) {
  EPCOMM_CHECK_ARG(num_sms >= 2 && num_sms <= kMaxBlocks, "config.num_sms: expected 2 to ", kMaxBlocks,
                   ", got ", num_sms);
  EPCOMM_CHECK_ARG(num_sms <= device_sms, "config.num_sms: this GPU has ", device_sms,
                   " multiprocessors, got ", num_sms);
}
}  // namespace

HtDispatchPlan plan_ht_dispatch(int num_sms, int device_sms, std::int64_t num_tokens, int num_channels,
                                int copy_chunks) {
  check_num_sms(num_sms, device_sms);
  // Channels count tokens in int (tokens_per_channel); more tokens than that is no real batch.
  EPCOMM_CHECK_ARG(num_tokens >= 0 && num_tokens <= std::numeric_limits<std::int32_t>::max(),
                   "x: expected 0 to ", std::numeric_limits<std::int32_t>::max(), " tokens, got ", num_tokens);
  EPCOMM_REQUIRE(copy_chunks >= 0 && copy_chunks <= kMaxCopyChunks, ErrorCategory::kInternal,
                 "copy_chunks: expected 0 to ", kMaxCopyChunks, ", got ", copy_chunks);
  HtDispatchPlan plan;
  plan.num_blocks = num_sms;
  if (copy_chunks > 0) {
    // Every chunk is packed by up to num_sms blocks, then all of them receive.
    if (num_channels > 0) {
      const int per_chunk = num_channels / copy_chunks;
      EPCOMM_REQUIRE(num_channels % copy_chunks == 0 && per_chunk % kHtWarpsPerBlock == 0,
                     ErrorCategory::kInternal, "handle: ", num_channels, " channels do not make ",
                     copy_chunks, " chunks of whole blocks");
      plan.num_senders = per_chunk / kHtWarpsPerBlock;
      EPCOMM_CHECK_ARG(plan.num_senders <= num_sms, "config.num_sms: a cached dispatch keeps the handle's ",
                       plan.num_senders, " blocks per chunk; got num_sms ", num_sms);
      plan.copy_chunks = copy_chunks;
    } else {
      plan.num_senders = num_sms;
      plan.copy_chunks = std::min(copy_chunks, kMaxChannels / (num_sms * kHtWarpsPerBlock));
    }
    plan.num_channels = plan.copy_chunks * plan.num_senders * kHtWarpsPerBlock;
    plan.tokens_per_channel =
        static_cast<int>(std::max<std::int64_t>(1, (num_tokens + plan.num_channels - 1) / plan.num_channels));
    return plan;
  }
  if (num_channels > 0) {
    EPCOMM_REQUIRE(num_channels % kHtWarpsPerBlock == 0, ErrorCategory::kInternal, "handle: ", num_channels,
                   " channels is not a whole number of blocks");
    plan.num_senders = num_channels / kHtWarpsPerBlock;
    EPCOMM_CHECK_ARG(plan.num_senders <= num_sms, "config.num_sms: a cached dispatch keeps the handle's ",
                     plan.num_senders, " sender blocks; got num_sms ", num_sms);
  } else {
    plan.num_senders = num_sms;
  }
  plan.num_channels = plan.num_senders * kHtWarpsPerBlock;
  plan.tokens_per_channel =
      static_cast<int>(std::max<std::int64_t>(1, (num_tokens + plan.num_channels - 1) / plan.num_channels));
  return plan;
}

HtCombinePlan plan_ht_combine(int num_sms, int device_sms) {
  check_num_sms(num_sms, device_sms);
  HtCombinePlan plan;
  plan.num_blocks = num_sms;
  plan.num_senders = num_sms;
  plan.num_shares = plan.num_senders * kHtWarpsPerBlock;
  return plan;
}

std::vector<std::int64_t> rows_received(const std::int32_t* count_matrix, int G) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(G), 0);
  for (int s = 0; s < G; ++s)
    for (int d = 0; d < G; ++d) rows[static_cast<std::size_t>(d)] += count_matrix[s * G + d];
  return rows;
}

std::vector<std::int64_t> rows_returned(const std::int32_t* count_matrix, int G) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(G), 0);
  for (int s = 0; s < G; ++s)
    for (int d = 0; d < G; ++d) rows[static_cast<std::size_t>(s)] += count_matrix[s * G + d];
  return rows;
}

std::vector<std::int64_t> combine_region_rows(const std::int32_t* count_matrix, int G, bool pull) {
  return pull ? rows_received(count_matrix, G) : rows_returned(count_matrix, G);
}

std::vector<StagedRows> pull_staged_rows(const std::int32_t* count_matrix, int G, int me) {
  std::vector<StagedRows> staged;
  std::int64_t first = 0;
  for (int s = 0; s < G; ++s) {
    const std::int64_t n = count_matrix[s * G + me];
    if (s != me && n > 0) staged.push_back({s, first, n});
    first += n;
  }
  return staged;
}

std::int64_t early_staging_rows(std::int64_t num_tokens, int num_domain_ranks, std::int64_t row_bytes,
                                std::int64_t max_bytes) {
  const std::int64_t rows = num_tokens * (num_domain_ranks - 1);
  return rows * row_bytes <= max_bytes ? rows : -1;
}

std::vector<ChunkCopy> dispatch_chunk_copies(const std::int32_t* count_matrix,
                                             const std::int32_t* send_prefix, int G, int me, int K) {
  std::vector<ChunkCopy> copies;
  for (int k = 0; k < K; ++k) {
    for (int d = 0; d < G; ++d) {
      const std::int32_t* prefix = send_prefix + d * (K + 1);
      const std::int64_t rows = prefix[k + 1] - prefix[k];
      if (d == me || rows <= 0) continue;
      copies.push_back({k, d, first_staged_row(count_matrix, G, me, d) + prefix[k],
                        first_row_on(count_matrix, G, me, d) + prefix[k], rows});
    }
  }
  return copies;
}

std::vector<StraightCopy> dispatch_straight_copies(const bool* in_rank, std::int64_t num_tokens,
                                                   const std::int32_t* count_matrix, int G, int me, int K,
                                                   int num_channels, int tokens_per_channel, bool self) {
  std::vector<StraightCopy> copies;
  std::vector<std::int64_t> next_row(static_cast<std::size_t>(G), 0);
  for (int d = 0; d < G; ++d) next_row[d] = first_row_on(count_matrix, G, me, d);
  // Chunk k's tokens start here (the channels cover every token: C * tokens_per_channel >= T).
  auto chunk_token = [&](int k) {
    return std::min(num_tokens, std::int64_t{copy_chunk_channel(k, K, num_channels)} * tokens_per_channel);
  };
  for (int k = 0; k < K; ++k) {
    const std::int64_t t_begin = chunk_token(k), t_end = chunk_token(k + 1);
    for (int d = 0; d < G; ++d) {
      if ((d == me && !self) || !straight_copies(count_matrix[me * G + d], num_tokens)) continue;
      std::int64_t& row = next_row[static_cast<std::size_t>(d)];
      for (std::int64_t t = t_begin; t < t_end; ++t) {
        if (!in_rank[t * G + d]) continue;
        if (!copies.empty() && copies.back().chunk == k && copies.back().dst == d &&
            copies.back().token + copies.back().rows == t)
          ++copies.back().rows;
        else
          copies.push_back({k, d, t, row, 1});
        ++row;
      }
    }
  }
  return copies;
}

std::vector<CombineCopy> combine_chunk_copies(const std::int32_t* count_matrix, int G, int me, int K) {
  std::vector<CombineCopy> copies;
  for (int b = 0; b < K; ++b) {
    for (int s = 0; s < G; ++s) {
      const std::int64_t n = count_matrix[s * G + me];
      const std::int64_t j0 = share_begin(n, b, K), j1 = share_begin(n, b + 1, K);
      if (s == me || j1 == j0) continue;
      copies.push_back({b, s, first_row_on(count_matrix, G, s, me) + j0,
                        first_row_back(count_matrix, G, s, me) + j0, j1 - j0});
    }
  }
  return copies;
}

void check_rows_fit(const std::vector<std::int64_t>& rows_per_rank, std::int64_t cap_rows,
                    std::size_t bytes_per_row, const char* what) {
  for (std::size_t r = 0; r < rows_per_rank.size(); ++r)
    EPCOMM_CHECK_ARG(rows_per_rank[r] <= cap_rows, "num_nvl_bytes: too small for this ", what, ": rank ", r,
                     " needs ", rows_per_rank[r], " rows of ", bytes_per_row, " bytes but the region holds ",
                     cap_rows, " (about ",
                     static_cast<double>(rows_per_rank[r]) * static_cast<double>(bytes_per_row) / 1e6,
                     " MB of workspace needed)");
}

int max_local_experts(int num_domain_ranks, int num_channels) {
  const std::size_t ints = (RegionLayout::kMailboxBytes - 64) / sizeof(std::int32_t);
  return static_cast<int>(ints) - num_domain_ranks - (num_channels + 1);  // ht_notify.cu's Mailbox
}

}  // namespace epcomm
