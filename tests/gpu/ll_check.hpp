// The low-latency GPU tests' comparisons with the CPU reference (every element of the dispatch's
// outputs, the kernels' internal state in memory, the combine's output with a diagnosis of what
// went wrong) and run_pair, which runs one dispatch and combine and checks both.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ll_case.hpp"
#include "low_latency/ll_handle.hpp"

namespace epcomm::test {

// ---- dispatch outputs ---------------------------------------------------------------------------

struct GotDispatch {
  std::vector<std::int32_t> recv_count, src_info;
  std::vector<std::int64_t> layout_range;
  std::vector<std::uint8_t> recv_x;
  std::vector<std::uint32_t> scales;  // physical [nle][words][capacity]
};
inline GotDispatch download_dispatch(const LlDispatchResult& r) {
  GotDispatch g;
  g.recv_count = download<std::int32_t>(r.recv_count);
  g.src_info = download<std::int32_t>(r.src_info);
  g.layout_range = download<std::int64_t>(r.layout_range);
  g.recv_x = download<std::uint8_t>(r.recv_x);
  if (r.recv_scales.defined()) g.scales = download<std::uint32_t>(r.recv_scales);
  return g;
}

inline std::uint32_t want_scale_word(const ref::LlRankOutput& want, const LlCase& c, std::size_t index) {
  if (c.use_ue8m0) return static_cast<std::uint32_t>(want.recv_scales_ue8m0[index]);
  std::uint32_t bits;
  std::memcpy(&bits, &want.recv_scales[index], 4);
  return bits;
}

// Canonical comparison: counts and ranges exactly; per (expert, source) the rows as a multiset of
// tokens, each row's bytes and scales bit-exactly against a reference row of the same token.
inline void expect_dispatch_matches(const GotDispatch& got, const ref::LlRankOutput& want, const LlCase& c,
                                    int R, const std::string& what) {
  SCOPED_TRACE(what);
  const int nle = c.experts_per_rank, words = c.scale_words();
  const std::int64_t cap = want.capacity, row_bytes = c.row_bytes();
  ASSERT_EQ(got.recv_count, want.recv_count) << "recv_count";
  std::size_t bad_range = 0, bad_token = 0, bad_payload = 0, bad_scale = 0;
  std::string first;
  auto note = [&](std::size_t& counter, const std::string& text) {
    if (counter++ == 0 && first.empty()) first = text;
  };
  for (int e = 0; e < nle; ++e) {
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;  // (begin, count) of non-empty sources
    for (int s = 0; s < R; ++s) {
      const std::int64_t g = got.layout_range[static_cast<std::size_t>(e * R + s)];
      const std::int64_t w = want.layout_range[static_cast<std::size_t>(e * R + s)];
      const std::int64_t gb = g >> 32, gc = g & 0xffffffff, wb = w >> 32, wc = w & 0xffffffff;
      if (gc != wc || gb < 0 || gb + gc > cap) {
        note(bad_range, "expert " + std::to_string(e) + " source " + std::to_string(s) + ": range (" +
                            std::to_string(gb) + ", " + std::to_string(gc) + "), want count " +
                            std::to_string(wc));
        continue;
      }
      if (gc > 0) ranges.emplace_back(gb, gc);
      std::map<std::int32_t, std::vector<std::int64_t>> want_rows;  // token -> reference rows
      for (std::int64_t i = wb; i < wb + wc; ++i) want_rows[want.src_info[e * cap + i]].push_back(i);
      for (std::int64_t i = gb; i < gb + gc; ++i) {
        const std::int32_t t = got.src_info[static_cast<std::size_t>(e * cap + i)];
        auto it = want_rows.find(t);
        if (it == want_rows.end() || it->second.empty()) {
          note(bad_token, "expert " + std::to_string(e) + " row " + std::to_string(i) + ": token " +
                              std::to_string(t) + " not expected from source " + std::to_string(s));
          continue;
        }
        const std::int64_t j = it->second.back();
        it->second.pop_back();
        if (std::memcmp(&got.recv_x[static_cast<std::size_t>((e * cap + i) * row_bytes)],
                        &want.recv_x[static_cast<std::size_t>((e * cap + j) * row_bytes)],
                        static_cast<std::size_t>(row_bytes)) != 0)
          note(bad_payload, "expert " + std::to_string(e) + " row " + std::to_string(i) + " (token " +
                                std::to_string(t) + "): payload differs");
        for (int k = 0; k < words; ++k) {
          const auto gi = static_cast<std::size_t>((e * words + k) * cap + i);
          const auto wi = static_cast<std::size_t>((e * words + k) * cap + j);
          if (got.scales[gi] != want_scale_word(want, c, wi))
            note(bad_scale, "expert " + std::to_string(e) + " row " + std::to_string(i) + " scale " +
                                std::to_string(k) + " differs");
        }
      }
    }
    // The non-empty ranges tile [0, recv_count).
    std::sort(ranges.begin(), ranges.end());
    std::int64_t next = 0;
    for (const auto& [b, n] : ranges) {
      if (b != next) note(bad_range, "expert " + std::to_string(e) + ": ranges do not tile the rows");
      next = b + n;
    }
    if (next != want.recv_count[static_cast<std::size_t>(e)])
      note(bad_range, "expert " + std::to_string(e) + ": ranges cover " + std::to_string(next) + " rows");
  }
  EXPECT_EQ(bad_range + bad_token + bad_payload + bad_scale, 0u)
      << "ranges " << bad_range << ", tokens " << bad_token << ", payloads " << bad_payload << ", scales "
      << bad_scale << "; first: " << first;
}

// The kernels' internal state a combine relies on, checked in memory: token_rows of the dispatch's
// half (every valid selection of an expert here maps to a row of that expert whose src_info is the
// token; every other entry is -1) and, with `combine_parity` >= 0, the owners' weights in this
// holder's combine_weights of that parity. Counts and names the first few wrong entries.
inline void expect_ll_state(Buffer& buffer, const LlHandle& handle, const LlCase& c, int R,
                            const std::vector<RankData>& inputs, const GotDispatch& got, int combine_parity,
                            const std::string& what) {
  SCOPED_TRACE(what);
  const LlState* st = low_latency_state(buffer);
  const LlLayout& l = st->layout;
  const int me = gpu_env().rank, nle = c.experts_per_rank;
  const std::int64_t T = c.max_tokens, K = l.max_topk, cap = l.capacity;
  std::vector<std::int32_t> rows(static_cast<std::size_t>(R * T * K));
  EPCOMM_CUDA_CHECK(cudaMemcpy(rows.data(), l.token_rows(st->workspace, ll_handle_state(handle).half, 0),
                               rows.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost));
  std::size_t bad_rows = 0;
  std::string first;
  for (int s = 0; s < R; ++s) {
    const RankData& d = inputs[static_cast<std::size_t>(s)];
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t j = 0; j < K; ++j) {
        const std::int32_t r = rows[static_cast<std::size_t>((s * T + t) * K + j)];
        std::int64_t e = -1;
        if (t < d.in.num_tokens && j < d.in.num_topk)
          e = d.in.topk_idx[static_cast<std::size_t>(t * d.in.num_topk + j)];
        const bool here = e >= 0 && e / nle == me;
        bool ok = !here && r == -1;
        if (here) {
          const std::int64_t le = e % nle;
          ok = r >= le * cap && r < (le + 1) * cap && got.src_info[static_cast<std::size_t>(r)] == t;
        }
        if (!ok && bad_rows++ < 4)
          first += " [s " + std::to_string(s) + " t " + std::to_string(t) + " slot " + std::to_string(j) +
                   ": " + std::to_string(r) + (here ? ", expert here" : "") + "]";
      }
  }
  EXPECT_EQ(bad_rows, 0u) << bad_rows << " token_rows entries wrong:" << first;
  if (combine_parity < 0) return;
  std::size_t bad_weights = 0;
  first.clear();
  for (int s = 0; s < R; ++s) {
    const RankData& d = inputs[static_cast<std::size_t>(s)];
    std::vector<std::uint64_t> w(static_cast<std::size_t>(T * K));  // tagged (ll_tag_word)
    EPCOMM_CUDA_CHECK(cudaMemcpy(w.data(), l.combine_weights_of(st->workspace, combine_parity, s),
                                 w.size() * sizeof(std::uint64_t), cudaMemcpyDeviceToHost));
    for (std::int64_t t = 0; t < d.in.num_tokens; ++t)
      for (std::int64_t j = 0; j < d.in.num_topk; ++j)
        if (std::bit_cast<float>(ll_word_bits(w[static_cast<std::size_t>(t * K + j)])) !=
                d.weights[static_cast<std::size_t>(t * d.in.num_topk + j)] &&
            bad_weights++ < 4)
          first +=
              " [s " + std::to_string(s) + " t " + std::to_string(t) + " slot " + std::to_string(j) + "]";
  }
  EXPECT_EQ(bad_weights, 0u) << bad_weights << " combine weights wrong (parity " << combine_parity
                             << "):" << first;
}

// The combine parity of the last combine: its seq's low bit (the seq lives in the device control block).
inline int last_combine_parity(Buffer& buffer) {
  const LlState* st = low_latency_state(buffer);
  std::uint64_t seq = 0;
  EPCOMM_CUDA_CHECK(cudaMemcpy(&seq, &st->layout.control_of(st->workspace, kLlKindCombine)->seq, sizeof(seq),
                               cudaMemcpyDeviceToHost));
  return static_cast<int>(seq & 1u);
}

// Every rank's routing as the GPU produced it (layout_range, src_info), for ref::ll_combine.
inline std::vector<ref::LlRankOutput> gather_routing(const GotDispatch& mine, const LlCase& c, int R) {
  const std::size_t nle = static_cast<std::size_t>(c.experts_per_rank);
  const std::int64_t cap = R * c.max_tokens;
  std::vector<std::int64_t> ranges(nle * static_cast<std::size_t>(R * R));
  std::vector<std::int32_t> infos(nle * static_cast<std::size_t>(cap * R));
  gpu_env().bootstrap->all_gather(mine.layout_range.data(), ranges.data(), mine.layout_range.size() * 8);
  gpu_env().bootstrap->all_gather(mine.src_info.data(), infos.data(), mine.src_info.size() * 4);
  std::vector<ref::LlRankOutput> all(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) {
    auto& o = all[static_cast<std::size_t>(r)];
    o.capacity = cap;
    o.layout_range.assign(ranges.begin() + r * mine.layout_range.size(),
                          ranges.begin() + (r + 1) * mine.layout_range.size());
    o.src_info.assign(infos.begin() + r * mine.src_info.size(),
                      infos.begin() + (r + 1) * mine.src_info.size());
  }
  return all;
}

// After a combine mismatch: for the first few wrong tokens of this rank, which single fault the
// wrong row matches exactly, found by rerunning the reference with one change: one holder's partial
// left out, or one slot's weight zero. Names the token's holders (rank of each slot's expert) too.
inline std::string diagnose_combine(const std::vector<std::uint16_t>& got, const LlCase& c, int R,
                                    const std::vector<ref::LlRankOutput>& routing,
                                    const std::vector<std::vector<std::uint16_t>>& ys,
                                    const std::vector<ref::LlRankInput>& ins,
                                    const std::vector<std::vector<float>>& weights,
                                    const std::vector<std::uint16_t>& want) {
  const int me = gpu_env().rank;
  const std::int64_t H = c.hidden, k = ins[static_cast<std::size_t>(me)].num_topk;
  const int nle = c.experts_per_rank;
  std::string report;
  int shown = 0;
  const auto row_matches = [&](const std::vector<std::vector<std::uint16_t>>& alt, std::int64_t t) {
    const auto& a = alt[static_cast<std::size_t>(me)];
    return std::equal(got.begin() + t * H, got.begin() + (t + 1) * H, a.begin() + t * H);
  };
  for (std::int64_t t = 0; t < ins[static_cast<std::size_t>(me)].num_tokens && shown < 3; ++t) {
    if (std::equal(got.begin() + t * H, got.begin() + (t + 1) * H, want.begin() + t * H)) continue;
    ++shown;
    const auto& idx = ins[static_cast<std::size_t>(me)].topk_idx;
    report += "\n  token " + std::to_string(t) + ": slots->holder";
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t e = idx[static_cast<std::size_t>(t * k + j)];
      report += " " + (e < 0 ? std::string("-") : std::to_string(e / nle));
    }
    report += "; matches:";
    bool any = false;
    for (int d = 0; d < R; ++d) {  // holder d's partial missing
      auto alt_ins = ins;
      bool held = false;
      for (std::int64_t j = 0; j < k; ++j) {
        auto& e = alt_ins[static_cast<std::size_t>(me)].topk_idx[static_cast<std::size_t>(t * k + j)];
        if (e >= 0 && e / nle == d) {
          e = -1;
          held = true;
        }
      }
      if (held && row_matches(ref::ll_combine(geometry_of(c, R), H, routing, ys, alt_ins, weights), t)) {
        report += " partial of rank " + std::to_string(d) + " missing;";
        any = true;
      }
    }
    for (std::int64_t j = 0; j < k; ++j) {  // slot j's weight zero
      if (idx[static_cast<std::size_t>(t * k + j)] < 0) continue;
      auto alt_w = weights;
      alt_w[static_cast<std::size_t>(me)][static_cast<std::size_t>(t * k + j)] = 0.0f;
      if (row_matches(ref::ll_combine(geometry_of(c, R), H, routing, ys, ins, alt_w), t)) {
        report += " weight of slot " + std::to_string(j) + " zero;";
        any = true;
      }
    }
    if (!any) report += " none";
    report += " (channel 0: got " + std::to_string(ref::bf16_to_float(got[static_cast<std::size_t>(t * H)])) +
              ", want " + std::to_string(ref::bf16_to_float(want[static_cast<std::size_t>(t * H)])) + ")";
  }
  return report;
}

// Runs the reference combine on the GPU's routing and compares this rank's output bit-exactly.
inline void expect_combine_matches(const std::vector<std::uint16_t>& got, const LlCase& c, int R,
                                   const std::vector<ref::LlRankOutput>& routing,
                                   const std::vector<std::vector<std::uint16_t>>& ys,
                                   const std::vector<RankData>& inputs, const std::string& what) {
  SCOPED_TRACE(what);
  std::vector<ref::LlRankInput> ins;
  std::vector<std::vector<float>> weights;
  for (const auto& d : inputs) {
    ins.push_back(d.in);
    weights.push_back(d.weights);
  }
  std::vector<std::vector<std::uint16_t>> want;
  try {
    want = ref::ll_combine(geometry_of(c, R), c.hidden, routing, ys, ins, weights);
  } catch (const Error& e) {
    FAIL() << "the GPU's routing is inconsistent: " << e.what();
  }
  const auto& mine = want[static_cast<std::size_t>(gpu_env().rank)];
  ASSERT_EQ(got.size(), mine.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != mine[i] && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << bad << " of " << got.size() << " BF16 values differ, first at " << first << " (got "
                     << (bad ? ref::bf16_to_float(got[first]) : 0.0f) << ", want "
                     << (bad ? ref::bf16_to_float(mine[first]) : 0.0f) << ")"
                     << (bad ? diagnose_combine(got, c, R, routing, ys, ins, weights, mine) : std::string());
}

// ---- one dispatch + combine -------------------------------------------------------------------------

struct PairMode {
  bool hook = false;       // split phases (return_recv_hook) for both
  bool zero_copy = false;  // y written into get_next_low_latency_combine_buffer
  bool caller_out = false;  // combine writes into the test's own tensor (LlCombineOptions::out), poisoned first
  YMode y = YMode::kHash;
  std::uint64_t salt = 0;  // fresh inputs per call
};

inline void run_pair(Buffer& buffer, const LlCase& c, const PairMode& mode = {}) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const std::vector<RankData> inputs = make_inputs(c, R, mode.salt);
  std::vector<ref::LlRankInput> ref_in;
  for (const auto& d : inputs) ref_in.push_back(d.in);
  const auto expected = ref::ll_dispatch(geometry_of(c, R), c.hidden, c.max_tokens, ref_in, ref_options(c));
  const DeviceInputs di = upload_inputs(inputs[static_cast<std::size_t>(me)], c);
  const CallOptions call{.stream = env.stream};

  poison_outputs(buffer);
  LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(mode.hook), call);
  ASSERT_EQ(static_cast<bool>(d.receive), mode.hook);
  if (mode.hook) d.receive();
  finish(buffer, "dispatch");
  const GotDispatch got = download_dispatch(d);
  expect_dispatch_matches(got, expected[static_cast<std::size_t>(me)], c, R, "dispatch");
  expect_ll_state(buffer, d.handle, c, R, inputs, got, -1, "after dispatch");

  const auto routing = gather_routing(got, c, R);
  std::vector<std::vector<std::uint16_t>> ys;
  for (int r = 0; r < R; ++r)
    ys.push_back(make_y(mode.y, c, R, r, mode.salt, routing[static_cast<std::size_t>(r)], inputs));
  const auto& my_y = ys[static_cast<std::size_t>(me)];
  DeviceTensor y_owned;
  Tensor y;
  if (mode.zero_copy) {
    y = buffer.get_next_low_latency_combine_buffer(d.handle);
    copy_to_device(y.data, my_y.data(), y.nbytes());
  } else {
    y_owned = upload(my_y, DType::kBF16, {c.experts_per_rank, R * c.max_tokens, c.hidden});
    y = y_owned;
  }
  DeviceTensor out_owned;
  if (mode.caller_out) {  // all-ones bits: a NaN in every bfloat16 the kernel forgets to write
    const std::vector<std::uint16_t> poison(static_cast<std::size_t>(di.topk.size(0) * c.hidden), 0xFFFFu);
    out_owned = upload(poison, DType::kBF16, {di.topk.size(0), c.hidden});
  }
  const Tensor out = mode.caller_out ? static_cast<Tensor>(out_owned) : Tensor{};
  LlCombineResult cr = buffer.low_latency_combine(
      y, di.topk, di.weights, d.handle,
      {.zero_copy = mode.zero_copy, .return_recv_hook = mode.hook, .out = out}, call);
  if (mode.caller_out) EXPECT_EQ(cr.out.data, out.data) << "combine: out is the caller's tensor";
  if (mode.hook) cr.receive();
  finish(buffer, "combine");
  // A pulled combine (zero-copy with CUDA IPC) writes no weights into the holders: each owner
  // reads its own.
  const bool pulled = mode.zero_copy && low_latency_state(buffer)->pull_combine;
  expect_ll_state(buffer, d.handle, c, R, inputs, got, pulled ? -1 : last_combine_parity(buffer),
                  "after combine");
  expect_combine_matches(download<std::uint16_t>(cr.out), c, R, routing, ys, inputs, "combine");
}

}  // namespace epcomm::test
