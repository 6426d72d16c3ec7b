// Multi-domain notify's arithmetic, one table entry per call, host and device alike: md_notify.cu
// computes every entry with these, and tests/cpu/test_internode_tables.cpp checks them against the
// host specification (md_plan.hpp) and the placements against the CPU reference.
//
// Rank (d, i) of D domains of G ranks, C channels, T tokens, nle local experts per rank:
//   scan_rows [C][R]: its tokens of channel c reaching rank r
//   scan_domains [C][D]: its tokens of channel c reaching domain d
//   count record for domain d (MdCountRecord) from the scan and num_tokens_per_expert [E]
//   fwd_prefix [D][C + 1][G], fwd_len [D][C]: forwarder i's placement of stream (s, i) (md_args.hpp)
//   domain record for rank (d, j) (MdDomainRecord) from fwd_prefix and the records received
#pragma once

#include <cstdint>

#include "internode/md_route.hpp"
#include "internode/md_slot.hpp"

namespace epcomm {

// Tokens of channel c whose is_token_in_rank row ([T, R]) has rank r set.
EPCOMM_HD inline std::int32_t md_scan_rank(const bool* in, std::int64_t T, int R, int C, int c, int r) {
  std::int32_t n = 0;
  for (std::int64_t t = md_channel_begin(T, c, C); t < md_channel_begin(T, c + 1, C); ++t)
    n += in[t * R + r] ? 1 : 0;
  return n;
}

// Tokens of channel c reaching any rank of domain d.
EPCOMM_HD inline std::int32_t md_scan_domain(const bool* in, std::int64_t T, int R, int G, int C, int c,
                                             int d) {
  std::int32_t n = 0;
  for (std::int64_t t = md_channel_begin(T, c, C); t < md_channel_begin(T, c + 1, C); ++t) {
    bool any = false;
    for (int j = 0; j < G && !any; ++j) any = in[t * R + d * G + j];
    n += any ? 1 : 0;
  }
  return n;
}

// Entry q of the count record this rank sends to domain d.
EPCOMM_HD inline std::int32_t md_record_entry(const MdCountRecord& f, int q, int R, int D, int d,
                                              const std::int32_t* scan_rows, const std::int32_t* scan_domains,
                                              const std::int32_t* num_tokens_per_expert) {
  const int C = f.num_channels, G = f.ranks_per_domain, nle = f.num_local_experts;
  if (q < C) return scan_domains[q * D + d];
  q -= C;
  if (q < C * G) return scan_rows[(q / G) * R + d * G + q % G];
  q -= C * G;
  return num_tokens_per_expert[(d * G + q / nle) * nle + q % nle];
}

// Rows the stream of (s, i) (s != me: `record` received from it; s == me: null, this rank's own
// scan) brings rank (me, j) in channel c.
EPCOMM_HD inline std::int32_t md_stream_rows(const MdCountRecord& f, const std::int32_t* record,
                                             const std::int32_t* scan_rows, int R, int me_domain, int c,
                                             int j) {
  return record != nullptr ? record[f.to_rank(c, j)] : scan_rows[c * R + me_domain * f.ranks_per_domain + j];
}

// fwd_prefix[s][c][j] for c = 0..C (c = C: the stream's rows to j in all), into `prefix` (stride G).
EPCOMM_HD inline void md_fill_prefix(const MdCountRecord& f, const std::int32_t* record,
                                     const std::int32_t* scan_rows, int R, int me_domain, int j,
                                     std::int32_t* prefix) {
  const int G = f.ranks_per_domain;
  std::int32_t sum = 0;
  for (int c = 0; c < f.num_channels; ++c) {
    prefix[c * G + j] = sum;
    sum += md_stream_rows(f, record, scan_rows, R, me_domain, c, j);
  }
  prefix[f.num_channels * G + j] = sum;
}

// The first row of a stream's rows on rank (me, j): where the single-domain order puts source
// rank src_rank's first row there, plus the rows of its earlier channels.
EPCOMM_HD inline std::int64_t md_stream_first_row(const std::int32_t* count_matrix,
                                                  const std::int32_t* fwd_prefix, int G, int C, int src_rank,
                                                  int c, int j) {
  const int s = src_rank / G;
  return md_first_row(count_matrix, G, src_rank, j) +
         fwd_prefix[(static_cast<std::int64_t>(s) * (C + 1) + c) * G + j];
}

// Entry k of the domain record forwarder (me, i) writes to rank (me, j): per source domain s and
// rank j', the rows of stream (s, i) to j' (fwd_prefix's totals); per local expert of j, the
// selections of every (s, i). record_of(s): the count record received from (s, i); null for s = me.
template <typename RecordOf>
EPCOMM_HD std::int32_t md_domain_record_entry(const MdCountRecord& f, const MdDomainRecord& out, int k,
                                              int me_domain, int j, const std::int32_t* fwd_prefix,
                                              const std::int32_t* num_tokens_per_expert, RecordOf record_of) {
  const int G = f.ranks_per_domain, C = f.num_channels, nle = f.num_local_experts;
  if (k < out.num_domains * G)
    return fwd_prefix[(static_cast<std::int64_t>(k / G) * (C + 1) + C) * G + k % G];
  const int e = k - out.num_domains * G;
  std::int32_t n = 0;
  for (int s = 0; s < out.num_domains; ++s) {
    const std::int32_t* record = record_of(s);
    n +=
        record != nullptr ? record[f.per_expert(j, e)] : num_tokens_per_expert[(me_domain * G + j) * nle + e];
  }
  return n;
}

}  // namespace epcomm
