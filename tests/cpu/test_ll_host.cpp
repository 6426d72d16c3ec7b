// Host logic of low-latency mode, without a GPU: the region layout (low_latency/ll_layout.hpp) and
// every input check (low_latency/ll_checks.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "epcomm/error.hpp"
#include "epcomm/low_latency.hpp"
#include "expect_error.hpp"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_layout.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm {
namespace {

using test::expect_arg_error;

// Fake device addresses: nothing here dereferences them.
void* fake(std::uintptr_t address = 0x10000) {
  return reinterpret_cast<void*>(address);
}

struct Section {
  std::string name;
  std::size_t begin, bytes, alignment;
};

struct Geometry {
  int num_ranks;
  std::int64_t max_tokens, hidden;
  int num_experts, max_topk;
};

// Every section of the layout, with its size computed here independently of the layout code.
std::vector<Section> sections_of(const LlLayout& l, const Geometry& g) {
  const auto R = static_cast<std::size_t>(g.num_ranks), T = static_cast<std::size_t>(g.max_tokens),
             H = static_cast<std::size_t>(g.hidden), K = static_cast<std::size_t>(g.max_topk),
             nle = static_cast<std::size_t>(g.num_experts / g.num_ranks), cap = R * T, nb = H / 128,
             E = static_cast<std::size_t>(g.num_experts);
  std::vector<Section> s = {
      {"control", l.control, 2 * sizeof(LlControl), 128},
      {"dispatch_x", l.dispatch_x, 2 * R * T * H * 2, 4096},
      {"dispatch_scales", l.dispatch_scales, 2 * R * T * nb * 4, 128},
      {"dispatch_sel", l.dispatch_sel, 2 * R * E * T * 4, 128},
      {"dispatch_sel_count", l.dispatch_sel_count, 2 * R * E * 4, 128},
      {"dispatch_part_mask", l.dispatch_part_mask, 2 * R * T * ((H + 511) / 512) * 8, 128},
      {"dispatch_tagged_count", l.dispatch_tagged_count, 2 * R * E * 8, 128},
      {"dispatch_tagged_place", l.dispatch_tagged_place, 2 * R * T * K * 8, 128},
      {"dispatch_rows_done", l.dispatch_rows_done, 2 * R * kLlMaxBlocks * 8, 128},
      {"combine_weights", l.combine_weights, 2 * R * T * K * 8, 128},
      {"combine_partials_done", l.combine_partials_done, 2 * R * kLlMaxBlocks * 8, 128},
      {"combine_part", l.combine_part, 2 * T * R * H * 4, 4096},
      {"combine_stage", l.combine_stage, 2 * R * T * H * 4, 4096},
  };
  for (int h = 0; h < 2; ++h) {
    const std::string half = "[" + std::to_string(h) + "]";
    s.push_back({"combine_y" + half, l.combine_y[h], nle * cap * H * 2, 4096});
    const std::size_t o = l.outputs[h];
    s.push_back({"recv_x" + half, o + l.out_recv_x, nle * cap * H * 2, 4096});
    s.push_back({"recv_scales" + half, o + l.out_recv_scales, nle * nb * cap * 4, 128});
    s.push_back({"recv_count" + half, o + l.out_recv_count, nle * 4, 128});
    s.push_back({"layout_range" + half, o + l.out_layout_range, nle * R * 8, 128});
    s.push_back({"src_info" + half, o + l.out_src_info, nle * cap * 4, 128});
    s.push_back({"token_rows" + half, o + l.out_token_rows, R * T * K * 4, 128});
    s.push_back({"combine_out" + half, o + l.out_combine, T * H * 2, 128});
  }
  return s;
}

const std::vector<Geometry>& geometries() {
  static const std::vector<Geometry> all = [] {
    std::vector<Geometry> g;
    for (int R : {2, 4, 8, 16, 72}) {
      g.push_back({R, 128, 7168, 288, 8});  // ll-dsv3 (288 experts split over R ranks)
      g.push_back({R, 1, 128, R, 1});       // smallest
      g.push_back({R, 1024, 2048, 4 * R, 16});
      g.push_back({R, 33, 8192, 2 * R, 3});  // odd sizes
    }
    return g;
  }();
  return all;
}

TEST(LlLayout, SectionsAreDisjointAlignedAndInBounds) {
  for (const Geometry& g : geometries()) {
    SCOPED_TRACE("R=" + std::to_string(g.num_ranks) + " T=" + std::to_string(g.max_tokens) +
                 " hidden=" + std::to_string(g.hidden) + " E=" + std::to_string(g.num_experts) +
                 " K=" + std::to_string(g.max_topk));
    const LlLayout l = LlLayout::make(g.num_ranks, g.max_tokens, g.hidden, g.num_experts, g.max_topk);
    EXPECT_EQ(l.capacity, g.num_ranks * g.max_tokens);
    EXPECT_EQ(l.num_local_experts, g.num_experts / g.num_ranks);
    EXPECT_EQ(l.num_scales, g.hidden / 128);
    EXPECT_EQ(l.num_scale_words, (g.hidden / 128 + 3) / 4);
    // The kernels' divisors by the shape (set here, on the host).
    EXPECT_EQ(l.by_parts.divisor(), l.num_parts);
    EXPECT_EQ(l.num_parts, (g.hidden + kLlPartChannels - 1) / kLlPartChannels);
    EXPECT_EQ(l.by_combine_parts.divisor(), (g.hidden + kLlCombinePartChannels - 1) / kLlCombinePartChannels);
    EXPECT_EQ(l.by_local_experts.divisor(), g.num_experts / g.num_ranks);
    std::vector<Section> s = sections_of(l, g);
    for (const Section& sec : s) {
      EXPECT_EQ(sec.begin % sec.alignment, 0u) << sec.name;
      EXPECT_LE(sec.begin + sec.bytes, l.total_bytes) << sec.name;
    }
    std::sort(s.begin(), s.end(), [](const Section& a, const Section& b) { return a.begin < b.begin; });
    for (std::size_t i = 1; i < s.size(); ++i)
      EXPECT_LE(s[i - 1].begin + s[i - 1].bytes, s[i].begin) << s[i - 1].name << " overlaps " << s[i].name;
    // Each half's outputs lie inside its output block (the tests poison whole blocks).
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(l.outputs[h] % 4096, 0u);
      EXPECT_LE(l.out_combine + static_cast<std::size_t>(g.max_tokens * g.hidden * 2), l.output_bytes);
    }
    EXPECT_LE(l.outputs[0] + l.output_bytes, l.outputs[1]);
    EXPECT_EQ(l.total_bytes % 4096, 0u);
    EXPECT_EQ(ll_region_bytes_hint(g.max_tokens, g.hidden, g.num_ranks, g.num_experts, g.max_topk),
              static_cast<std::int64_t>(l.total_bytes));
  }
}

// The accessors kernels use land inside their sections, at their first and last elements.
TEST(LlLayout, AccessorsStayInsideTheirSections) {
  const auto base = reinterpret_cast<std::uintptr_t>(fake(0x1000000));  // accessors take the workspace
  auto at = [&](const void* p) { return reinterpret_cast<std::uintptr_t>(p) - base; };
  for (const Geometry& g : geometries()) {
    const LlLayout l = LlLayout::make(g.num_ranks, g.max_tokens, g.hidden, g.num_experts, g.max_topk);
    void* region = fake(0x1000000);
    const int R = g.num_ranks, K = g.max_topk;
    const std::int64_t T = g.max_tokens, H = g.hidden;
    EXPECT_EQ(at(l.control_of(region, kLlKindCombine)), l.control + sizeof(LlControl));
    EXPECT_EQ(at(l.staging_x(region, 0, 0, 0)), l.dispatch_x);
    EXPECT_EQ(at(l.staging_x(region, 1, R - 1, T - 1)) + static_cast<std::size_t>(H * 2),
              l.dispatch_x + 2u * R * T * H * 2);
    EXPECT_EQ(at(l.staging_scales(region, 1, R - 1, T - 1) + l.num_scales),
              l.dispatch_scales + 2u * R * T * (H / 128) * 4);
    const int E = g.num_experts;
    EXPECT_EQ(at(l.sel(region, 0, 0, 0)), l.dispatch_sel);
    EXPECT_EQ(at(l.sel(region, 1, R - 1, E - 1) + T), l.dispatch_sel + 2u * R * E * T * 4);
    EXPECT_EQ(at(l.sel(region, 0, 1 % R, 3 % E)), l.dispatch_sel + ((1u % R) * E + 3u % E) * T * 4);
    EXPECT_EQ(at(l.sel_count(region, 1, R - 1) + E), l.dispatch_sel_count + 2u * R * E * 4);
    const std::size_t parts = (static_cast<std::size_t>(H) + 511) / 512;
    EXPECT_EQ(at(l.part_mask(region, 1, R - 1, T - 1) + parts),
              l.dispatch_part_mask + 2u * R * T * parts * 8);
    EXPECT_EQ(at(l.tagged_count(region, 1, R - 1) + E), l.dispatch_tagged_count + 2u * R * E * 8);
    EXPECT_EQ(at(l.tagged_count(region, 0, 1 % R)), l.dispatch_tagged_count + (1u % R) * E * 8);
    EXPECT_EQ(at(l.tagged_place(region, 1, R - 1, T - 1) + K), l.dispatch_tagged_place + 2u * R * T * K * 8);
    EXPECT_EQ(at(l.tagged_place(region, 0, 1 % R, 2 % T)),
              l.dispatch_tagged_place + ((1u % R) * T + 2u % T) * K * 8);
    EXPECT_EQ(at(l.rows_done(region, 1, R - 1, kLlMaxBlocks - 1) + 1),
              l.dispatch_rows_done + 2u * R * kLlMaxBlocks * 8);
    EXPECT_EQ(at(l.rows_done(region, 0, 1 % R, 5)), l.dispatch_rows_done + ((1u % R) * kLlMaxBlocks + 5) * 8);
    // The range reset_ll_sequence clears: the part masks, the tagged lists and the per-block flags,
    // nothing else.
    EXPECT_EQ(l.dispatch_direct_end, l.dispatch_rows_done + 2u * R * kLlMaxBlocks * 8);
    EXPECT_EQ(l.dispatch_tagged_count, l.dispatch_part_mask + ((2u * R * T * parts * 8 + 127) / 128) * 128);
    EXPECT_EQ(l.dispatch_tagged_place, l.dispatch_tagged_count + ((2u * R * E * 8 + 127) / 128) * 128);
    EXPECT_EQ(l.dispatch_rows_done, l.dispatch_tagged_place + ((2u * R * T * K * 8 + 127) / 128) * 128);
    EXPECT_EQ(at(l.combine_weights_of(region, 1, R - 1) + T * K), l.combine_weights + 2u * R * T * K * 8);
    EXPECT_EQ(l.combine_weights_bytes(), 2u * R * T * K * 8);
    EXPECT_EQ(at(l.partials_done(region, 1, R - 1, kLlMaxBlocks - 1) + 1),
              l.combine_partials_done + 2u * R * kLlMaxBlocks * 8);
    EXPECT_EQ(at(l.partials_done(region, 0, 1 % R, 7)),
              l.combine_partials_done + ((1u % R) * kLlMaxBlocks + 7) * 8);
    // The combine's range reset_ll_sequence clears: the tagged weights and the per-block flags.
    EXPECT_EQ(l.combine_partials_done, l.combine_weights + ((2u * R * T * K * 8 + 127) / 128) * 128);
    EXPECT_EQ(l.combine_tagged_end, l.combine_partials_done + 2u * R * kLlMaxBlocks * 8);
    EXPECT_EQ(at(l.combine_partial(region, 1, T - 1, R - 1) + H), l.combine_part + 2u * T * R * H * 4);
    EXPECT_EQ(at(l.combine_partial(region, 0, 1 % T, 1 % R)),
              l.combine_part + ((1u % T) * R + 1u % R) * H * 4);
    EXPECT_EQ(at(l.combine_staged(region, 1, R - 1, T - 1) + H), l.combine_stage + 2u * R * T * H * 4);
    for (int h = 0; h < 2; ++h) {
      const std::size_t o = l.outputs[h];
      const auto nle = static_cast<std::size_t>(l.num_local_experts),
                 cap = static_cast<std::size_t>(l.capacity);
      EXPECT_EQ(at(l.recv_x(region, h)), o + l.out_recv_x);
      EXPECT_EQ(at(l.recv_scales(region, h) + nle * l.num_scales * cap),
                o + l.out_recv_scales + nle * (H / 128) * cap * 4);
      EXPECT_EQ(at(l.recv_count(region, h) + nle), o + l.out_recv_count + nle * 4);
      EXPECT_EQ(at(l.layout_range(region, h) + nle * R), o + l.out_layout_range + nle * R * 8);
      EXPECT_EQ(at(l.src_info(region, h) + nle * cap), o + l.out_src_info + nle * cap * 4);
      EXPECT_EQ(at(l.token_rows(region, h, R - 1) + T * K), o + l.out_token_rows + R * T * K * 4);
      EXPECT_EQ(at(l.combine_out(region, h) + T * H),
                o + l.out_combine + static_cast<std::size_t>(T * H * 2));
      EXPECT_EQ(at(l.zero_copy_y(region, h)), l.combine_y[h]);
    }
  }
}

// The credit bound counts, for operation seq, every earlier operation of the same parity (seq
// starts at 1), each with one credit per block.
TEST(LlProtocol, CreditsBeforeCountEveryEarlierOperationOfTheParity) {
  for (const std::uint64_t grid : {1u, 16u, 132u}) {
    for (std::uint64_t seq = 1; seq <= 64; ++seq) {
      std::uint64_t earlier = 0;
      for (std::uint64_t older = 1; older < seq; ++older) earlier += (older % 2 == seq % 2) ? 1 : 0;
      EXPECT_EQ(ll_credits_before(seq, grid), earlier * grid) << "seq " << seq << ", grid " << grid;
    }
  }
  EXPECT_EQ(ll_credits_before(1, 132), 0u);  // the first use of each parity waits for nothing
  EXPECT_EQ(ll_credits_before(2, 132), 0u);
}

// The completion bound counts, for operation seq, every block of it and of every earlier operation
// of the same parity: each block of each sender adds one done signal.
TEST(LlProtocol, DoneAfterCountsThisAndEveryEarlierOperationOfTheParity) {
  for (const std::uint64_t grid : {1u, 16u, 132u}) {
    for (std::uint64_t seq = 1; seq <= 64; ++seq) {
      std::uint64_t operations = 0;
      for (std::uint64_t older = 1; older <= seq; ++older) operations += (older % 2 == seq % 2) ? 1 : 0;
      EXPECT_EQ(ll_done_after(seq, grid), operations * grid) << "seq " << seq << ", grid " << grid;
      // What a sender's receivers were owed before this operation is exactly its credit bound plus
      // this operation's blocks: credits and completions count the same operations.
      EXPECT_EQ(ll_done_after(seq, grid), ll_credits_before(seq, grid) + grid);
    }
  }
}

TEST(LlLayout, SelectionEntryRoundTripsEveryTokenAndSlot) {
  for (std::int32_t token : {0, 1, 255, 256, 4095, static_cast<int>(kLlMaxTokensPerRank) - 1})
    for (int slot = 0; slot < kLlMaxTopk; ++slot) {
      const std::int32_t entry = ll_pack_selection(token, slot);
      EXPECT_EQ(ll_selection_token(entry), token);
      EXPECT_EQ(ll_selection_slot(entry), slot);
    }
}

// A combine weight's tag (ll_tag_word): the weight's bits come back whole; the word is this
// operation's and no other operation's of the same parity, nor a zeroed entry's.
TEST(LlLayout, TaggedWeightsMatchOnlyTheirOperation) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(0.3125f);
  for (std::uint64_t seq :
       {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{3}, std::uint64_t{1000},
        (std::uint64_t{1} << 32) - 1, std::uint64_t{1} << 32, (std::uint64_t{1} << 32) + 7}) {
    const std::uint64_t word = ll_tag_word(bits, seq);
    EXPECT_EQ(ll_word_bits(word), bits) << seq;
    EXPECT_TRUE(ll_word_is_of(word, seq)) << seq;
    EXPECT_FALSE(ll_word_is_of(0, seq)) << seq;  // never written since a reset
    for (std::uint64_t older = seq % 2 == 0 ? 2 : 1; older + 2 <= seq && older + 64 > seq; older += 2)
      EXPECT_FALSE(ll_word_is_of(ll_tag_word(bits, older), seq)) << seq << " after " << older;
    EXPECT_FALSE(ll_word_is_of(word, seq + 2)) << seq;
  }
}

TEST(LlLayout, Dsv3RegionSize) {
  // ll-dsv3 on 2 ranks: two halves of BF16-capable recv_x and of zero-copy y dominate (4 x 528 MB).
  const std::int64_t bytes = ll_region_bytes_hint(128, 7168, 2, 288, 8);
  EXPECT_GT(bytes, std::int64_t{4} * 144 * 256 * 7168 * 2);
  EXPECT_LT(bytes, std::int64_t{5} * 144 * 256 * 7168 * 2);
  // Smaller top-k bound, smaller combine staging.
  EXPECT_LT(ll_region_bytes_hint(128, 7168, 2, 288, 8), ll_region_bytes_hint(128, 7168, 2, 288, 16));
}

// ---- checks -----------------------------------------------------------------------------------

constexpr LowLatencyOptions kOptions{
    .max_tokens_per_rank = 128, .hidden = 7168, .num_experts = 288, .max_topk = 8};

TEST(LlChecks, Options) {
  EXPECT_NO_THROW(checks::check_ll_options(kOptions, 2));
  EXPECT_NO_THROW(checks::check_ll_options(kOptions, 72));
  auto with = [](auto change) {
    LowLatencyOptions o = kOptions;
    change(o);
    return o;
  };
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.max_tokens_per_rank = 0; }), 2); },
                   "max_tokens_per_rank: expected >= 1, got 0");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.hidden = 7000; }), 2); },
                   "hidden: expected a multiple of 128 in [128, 8192]");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.hidden = 8192 + 128; }), 2); },
                   "got 8320");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.hidden = 0; }), 2); }, "hidden");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.num_experts = 289; }), 2); },
                   "num_experts: expected a multiple of the number of ranks (2), got 289");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.num_experts = 0; }), 2); },
                   "num_experts");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.max_topk = 17; }), 2); },
                   "max_topk: expected 1 to 16, got 17");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.max_topk = 0; }), 2); }, "max_topk");
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.num_blocks = -1; }), 2); },
                   "num_blocks: expected >= 0");
  // Across NVLink domains a low-latency Buffer may hold more ranks than one domain (72).
  EXPECT_NO_THROW(checks::check_ll_options(with([](auto& o) { o.num_experts = 256; }), 128));
  expect_arg_error(
      [&] { checks::check_ll_options(kOptions, 129); },
      "num_ranks: low-latency mode serves 1 to 128 ranks (at most 72 in one NVLink domain), got 129",
      ErrorCategory::kUnsupported);
  expect_arg_error([&] { checks::check_ll_options(kOptions, 0); }, "num_ranks: expected >= 1, got 0");
  expect_arg_error(
      [&] { checks::check_ll_options(with([](auto& o) { o.max_tokens_per_rank = 1 << 20; }), 8); },
      "max_tokens_per_rank: at most", ErrorCategory::kUnsupported);
  // The dispatch's receive layout must fit shared memory: 2 ranks x 8192 local experts do not.
  expect_arg_error([&] { checks::check_ll_options(with([](auto& o) { o.num_experts = 2 * 8192; }), 2); },
                   "num_experts: at most 16382 experts supported with 2 ranks", ErrorCategory::kUnsupported);
  EXPECT_NO_THROW(checks::check_ll_options(with([](auto& o) { o.num_experts = 16382; }), 2));
  EXPECT_EQ(ll_dispatch_smem_bytes(2, 144), 4u * (2u * 144u + 1u + 144u + 1u));
  // The hint validates too.
  expect_arg_error([&] { ll_region_bytes_hint(128, 100, 2, 288); }, "hidden");
}

TEST(LlChecks, BufferNeedsLowLatencyModeAndRoom) {
  const std::int64_t needed = ll_region_bytes_hint(128, 7168, 2, 288, 8);
  EXPECT_NO_THROW(
      checks::check_ll_buffer({.num_nvl_bytes = needed, .low_latency_mode = true}, kOptions, 2, 1));
  expect_arg_error([&] { checks::check_ll_buffer({.num_nvl_bytes = needed}, kOptions, 2, 1); },
                   "low_latency_mode: expected true");
  expect_arg_error(
      [&] {
        checks::check_ll_buffer({.num_nvl_bytes = needed - 1, .low_latency_mode = true}, kOptions, 2, 1);
      },
      "num_nvl_bytes: low-latency mode with max_tokens_per_rank=128, hidden=7168, 2 ranks, num_experts=288, "
      "max_topk=8 needs at least " +
          std::to_string(needed));
  // With NVSHMEM the workspace is symmetric memory: the NVLink region needs no room for it.
  EXPECT_NO_THROW(checks::check_ll_buffer(
      {.num_nvl_bytes = 0, .low_latency_mode = true, .ll_transport = LlTransport::kNvshmem}, kOptions, 2, 1));
  // Nor across NVLink domains (the hybrid path's workspace is symmetric memory too).
  EXPECT_NO_THROW(checks::check_ll_buffer({.num_nvl_bytes = 0, .low_latency_mode = true}, kOptions, 2, 2));
  expect_arg_error([&] { checks::require_ll_state(nullptr, "low_latency_dispatch"); },
                   "low_latency_dispatch: this Buffer was not made for low-latency mode");
}

TEST(LlChecks, DispatchArguments) {
  const Tensor x = Tensor::contiguous(fake(), DType::kBF16, {100, 7168});
  const Tensor topk = Tensor::contiguous(fake(), DType::kI64, {100, 8});
  const LlDispatchOptions fp8{};
  const checks::LlDispatchShape shape = checks::check_ll_dispatch_args(x, topk, fp8, kOptions, 2);
  EXPECT_EQ(shape.num_tokens, 100);
  EXPECT_EQ(shape.num_topk, 8);
  EXPECT_EQ(shape.idx_bytes, 8);
  const Tensor topk32 = Tensor::contiguous(fake(), DType::kI32, {100, 5});
  EXPECT_EQ(checks::check_ll_dispatch_args(x, topk32, fp8, kOptions, 2).idx_bytes, 4);
  // A rank with no tokens is fine.
  EXPECT_NO_THROW(checks::check_ll_dispatch_args(Tensor::contiguous(nullptr, DType::kBF16, {0, 7168}),
                                                 Tensor::contiguous(nullptr, DType::kI64, {0, 8}), fp8,
                                                 kOptions, 2));

  auto dispatch = [&](const Tensor& xx, const Tensor& tt, const LlDispatchOptions& o = {}) {
    checks::check_ll_dispatch_args(xx, tt, o, kOptions, 2);
  };
  expect_arg_error(
      [&] {
        dispatch(Tensor::contiguous(fake(), DType::kBF16, {129, 7168}), topk);
      },
      "x: expected at most max_tokens_per_rank=128 tokens, got 129");
  expect_arg_error(
      [&] {
        dispatch(Tensor::contiguous(fake(), DType::kBF16, {100, 4096}), topk);
      },
      "x: expected shape [*, 7168], got [100, 4096] bfloat16");
  expect_arg_error(
      [&] {
        dispatch(Tensor::contiguous(fake(), DType::kF32, {100, 7168}), topk);
      },
      "x: expected dtype bfloat16, got float32");
  expect_arg_error(
      [&] {
        dispatch(Tensor::strided(fake(), DType::kBF16, {100, 7168}, {1, 100}), topk);
      },
      "x: expected a contiguous tensor");
  expect_arg_error(
      [&] {
        dispatch(Tensor::contiguous(fake(0x10008), DType::kBF16, {100, 7168}), topk);
      },
      "x: expected data aligned to 16 bytes");
  expect_arg_error(
      [&] {
        dispatch(x, Tensor::contiguous(fake(), DType::kI64, {99, 8}));
      },
      "topk_idx: expected shape [100, *], got [99, 8] int64");
  expect_arg_error(
      [&] {
        dispatch(x, Tensor::contiguous(fake(), DType::kI64, {100, 9}));
      },
      "topk_idx: expected 1 to max_topk=8 columns, got 9");
  expect_arg_error(
      [&] {
        dispatch(x, Tensor::contiguous(fake(), DType::kF32, {100, 8}));
      },
      "topk_idx: expected dtype int64 or int32, got float32");
  expect_arg_error(
      [&] {
        dispatch(x, Tensor::strided(fake(), DType::kI64, {100, 8}, {1, 100}));
      },
      "topk_idx: expected a contiguous tensor");
  expect_arg_error([&] { dispatch(x, topk, {.round_scale = false, .use_ue8m0 = true}); },
                   "use_ue8m0: expected round_scale=true with use_ue8m0=true");
  expect_arg_error([&] { dispatch(x, topk, {.use_fp8 = false, .round_scale = true}); },
                   "round_scale: applies to FP8 scales, expected use_fp8=true");
  EXPECT_NO_THROW(dispatch(x, topk, {.round_scale = true, .use_ue8m0 = true}));
  EXPECT_NO_THROW(dispatch(x, topk, {.use_fp8 = false}));
  LlDispatchOptions stats{};
  stats.cumulative_local_expert_recv_stats = Tensor::contiguous(fake(), DType::kI32, {144});
  EXPECT_NO_THROW(dispatch(x, topk, stats));
  stats.cumulative_local_expert_recv_stats = Tensor::contiguous(fake(), DType::kI32, {288});
  expect_arg_error([&] { dispatch(x, topk, stats); },
                   "cumulative_local_expert_recv_stats: expected shape [144]");
  stats.cumulative_local_expert_recv_stats = Tensor::contiguous(fake(), DType::kI64, {144});
  expect_arg_error([&] { dispatch(x, topk, stats); },
                   "cumulative_local_expert_recv_stats: expected dtype int32");
}

// A state and a handle as low_latency_dispatch leaves them.
struct CombineFixture {
  LlState state;
  LlHandle::State handle_state;
  LlHandle handle;
  CombineFixture() {
    state.options = kOptions;
    state.layout = LlLayout::make(2, 128, 7168, 288, 8);
    state.num_dispatches = 5;
    handle_state.num_ranks = 2;
    handle_state.num_local_experts = 144;
    handle_state.num_tokens = 100;
    handle_state.num_topk = 8;
    handle_state.max_tokens_per_rank = 128;
    handle_state.hidden = 7168;
    handle_state.owner = &state;
    handle_state.dispatch_index = 5;
    handle_state.half = 0;
    handle = with(handle_state);
  }
  static LlHandle with(const LlHandle::State& s) {
    return HandleAccess::make(std::make_shared<const LlHandle::State>(s));
  }
  // The fixture's handle with one field of its state changed.
  template <typename Change>
  LlHandle changed(Change change) const {
    LlHandle::State s = handle_state;
    change(s);
    return with(s);
  }
};

TEST(LlChecks, CombineArguments) {
  CombineFixture f;
  void* const next_y = fake(0x200000);
  const Tensor y = Tensor::contiguous(fake(), DType::kBF16, {144, 256, 7168});
  const Tensor topk = Tensor::contiguous(fake(), DType::kI64, {100, 8});
  const Tensor w = Tensor::contiguous(fake(), DType::kF32, {100, 8});
  auto combine = [&](const Tensor& yy, const Tensor& tt, const Tensor& ww, const LlHandle& h,
                     const LlCombineOptions& o = {}) {
    checks::check_ll_combine_args(yy, tt, ww, h, o, f.state, 2, next_y);
  };
  EXPECT_NO_THROW(combine(y, topk, w, f.handle));
  const Tensor zero_copy_y = Tensor::contiguous(next_y, DType::kBF16, {144, 256, 7168});
  EXPECT_NO_THROW(combine(zero_copy_y, topk, w, f.handle, {.zero_copy = true}));
  expect_arg_error([&] { combine(y, topk, w, f.handle, {.zero_copy = true}); },
                   "y: with zero_copy, expected the buffer get_next_low_latency_combine_buffer returned");

  expect_arg_error([&] { combine(y, topk, w, LlHandle{}); },
                   "handle: expected the handle of a low_latency_dispatch");
  LlState other_state;
  const LlHandle other = f.changed([&](LlHandle::State& s) { s.owner = &other_state; });
  expect_arg_error([&] { combine(y, topk, w, other); }, "handle: made by another Buffer");
  const LlHandle previous = f.changed([](LlHandle::State& s) { s.dispatch_index = 4; });  // the other half
  EXPECT_NO_THROW(combine(y, topk, w, previous));
  const LlHandle stale = f.changed([](LlHandle::State& s) { s.dispatch_index = 3; });
  expect_arg_error([&] { combine(y, topk, w, stale); },
                   "handle: the outputs of dispatch #3 were overwritten by dispatch #5");
  const LlHandle future = f.changed([](LlHandle::State& s) { s.dispatch_index = 6; });
  expect_arg_error([&] { combine(y, topk, w, future); }, "handle: not from a dispatch of this buffer");
  const auto received = std::make_shared<bool>(false);
  const LlHandle split = f.changed([&](LlHandle::State& s) { s.received = received; });
  expect_arg_error([&] { combine(y, topk, w, split); }, "receive() has not run yet");
  *received = true;
  EXPECT_NO_THROW(combine(y, topk, w, split));

  expect_arg_error(
      [&] {
        combine(Tensor::contiguous(fake(), DType::kBF16, {144, 128, 7168}), topk, w, f.handle);
      },
      "y: expected shape [144, 256, 7168]");
  expect_arg_error(
      [&] {
        combine(Tensor::contiguous(fake(), DType::kFP8E4M3, {144, 256, 7168}), topk, w, f.handle);
      },
      "y: expected dtype bfloat16");
  expect_arg_error(
      [&] {
        combine(y, Tensor::contiguous(fake(), DType::kI64, {99, 8}), w, f.handle);
      },
      "topk_idx: expected shape [100, 8]");
  expect_arg_error(
      [&] {
        combine(y, topk, Tensor::contiguous(fake(), DType::kF32, {100, 7}), f.handle);
      },
      "topk_weights: expected shape [100, 8]");
  expect_arg_error(
      [&] {
        combine(y, topk, Tensor::contiguous(fake(), DType::kBF16, {100, 8}), f.handle);
      },
      "topk_weights: expected dtype float32");
  expect_arg_error([&] { combine(y, topk, Tensor{}, f.handle); },
                   "topk_weights: expected a tensor, got none");
}

// The caller's output tensor (LlCombineOptions::out): [tokens, hidden] bf16, contiguous, aligned,
// clear of y; anything else is refused by name before a launch.
TEST(LlChecks, CombineOutput) {
  CombineFixture f;
  void* const next_y = fake(0x200000);
  const Tensor y = Tensor::contiguous(fake(0x10000000), DType::kBF16, {144, 256, 7168});
  const Tensor topk = Tensor::contiguous(fake(), DType::kI64, {100, 8});
  const Tensor w = Tensor::contiguous(fake(), DType::kF32, {100, 8});
  auto combine_into = [&](const Tensor& out) {
    checks::check_ll_combine_args(y, topk, w, f.handle, {.out = out}, f.state, 2, next_y);
  };
  EXPECT_NO_THROW(combine_into(Tensor::contiguous(fake(0x1000), DType::kBF16, {100, 7168})));
  expect_arg_error(
      [&] {
        combine_into(Tensor::contiguous(fake(0x1000), DType::kBF16, {99, 7168}));
      },
      "out: expected shape [100, 7168]");
  expect_arg_error(
      [&] {
        combine_into(Tensor::contiguous(fake(0x1000), DType::kF32, {100, 7168}));
      },
      "out: expected dtype bfloat16");
  expect_arg_error(
      [&] {
        combine_into(Tensor::strided(fake(0x1000), DType::kBF16, {100, 7168}, {8192, 1}));
      },
      "out");
  expect_arg_error(
      [&] {
        combine_into(Tensor::contiguous(static_cast<char*>(fake(0x1000)) + 2, DType::kBF16, {100, 7168}));
      },
      "out");
  expect_arg_error(
      [&] {
        combine_into(Tensor::contiguous(static_cast<char*>(y.data) + 4096, DType::kBF16, {100, 7168}));
      },
      "out: overlaps y");
}

TEST(LlChecks, AtMostTwoSplitCallsInFlight) {
  LlState state;
  EXPECT_NO_THROW(checks::check_not_in_flight(state, kLlKindDispatch, 0));
  state.pending[kLlKindDispatch][0] = std::make_shared<bool>(false);
  expect_arg_error(
      [&] { checks::check_not_in_flight(state, kLlKindDispatch, 0); },
      "return_recv_hook: the low-latency dispatch two calls ago was split and its receive() has not "
      "run yet; at most two low-latency dispatches may be in flight");
  EXPECT_NO_THROW(checks::check_not_in_flight(state, kLlKindDispatch, 1));
  EXPECT_NO_THROW(checks::check_not_in_flight(state, kLlKindCombine, 0));
  *state.pending[kLlKindDispatch][0] = true;
  EXPECT_NO_THROW(checks::check_not_in_flight(state, kLlKindDispatch, 0));
  state.pending[kLlKindCombine][1] = std::make_shared<bool>(false);
  expect_arg_error([&] { checks::check_not_in_flight(state, kLlKindCombine, 1); }, "low-latency combines");
}

// A split zero-copy combine keeps its dispatch's outputs (half 1 here) until its receive runs.
TEST(LlChecks, SplitZeroCopyCombineHoldsItsDispatchOutputs) {
  LlState state;
  EXPECT_NO_THROW(checks::check_dispatch_outputs_free(state, 1));
  state.zero_copy_reads[1] = std::make_shared<bool>(false);
  expect_arg_error([&] { checks::check_dispatch_outputs_free(state, 1); },
                   "low_latency_dispatch: a zero-copy combine of the dispatch two calls ago was split "
                   "(return_recv_hook) and its receive() has not run yet");
  EXPECT_NO_THROW(checks::check_dispatch_outputs_free(state, 0));
  *state.zero_copy_reads[1] = true;
  EXPECT_NO_THROW(checks::check_dispatch_outputs_free(state, 1));
}

// The direct dispatch's encodings: a place keeps its expert and row; a part mask names its slots
// only to the operation that wrote it.
TEST(LlProtocol, DirectPlacesAndPartMasksRoundTrip) {
  for (int e : {0, 1, 287, 12287})
    for (std::int32_t place : {0, 1, 127, 65535}) {
      const std::int32_t entry = ll_pack_place(e, place);
      EXPECT_GE(entry, 0);
      EXPECT_EQ(ll_place_expert(entry), e);
      EXPECT_EQ(ll_place_row(entry), place);
    }
  EXPECT_LT(kLlDroppedPlace, 0);
  for (std::uint64_t seq : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{1} << 40, kLlMaskSeqBits})
    for (unsigned slots : {0u, 1u, 0x8001u, 0xffffu}) {
      const std::uint64_t mask = ll_pack_part_mask(seq, slots);
      EXPECT_EQ(ll_part_slots(mask, seq), slots);
      EXPECT_EQ(ll_part_slots(mask, seq + 2), 0u);  // the next operation of the same parity
      EXPECT_EQ(ll_part_slots(0, seq), 0u);         // a fresh or reset workspace
    }
}

// The combine's send items (ll_combine.cuh, first_partial_item): warp w of block b takes warp slot
// ll_partial_warp_slot(b, w) = w * ll_partial_blocks + ll_partial_slot_block(b). With a grid of more
// than one block, block 0 (which sends the weights) takes none and blocks 1.. take every slot exactly
// once (block b the slots of place b - 1); a grid of one block takes them all; consecutive slots (a
// token's consecutive parts) go to different blocks.
TEST(LlProtocol, PartialWarpSlotsTakeEverySlotOnceSpreadOverBlocks) {
  constexpr int kWarps = 16;
  for (int grid : {1, 2, 3, 5, 64, 132, kLlMaxBlocks}) {
    SCOPED_TRACE("grid " + std::to_string(grid));
    const int partial_blocks = ll_partial_blocks(grid);
    EXPECT_EQ(partial_blocks, grid > 1 ? grid - 1 : 1);
    std::vector<int> taken(static_cast<std::size_t>(partial_blocks) * kWarps, 0);
    std::vector<int> block_of(taken.size(), -1);
    for (int b = 0; b < grid; ++b) {
      const int slot_block = ll_partial_slot_block(b, grid);
      EXPECT_EQ(slot_block, grid > 1 ? b - 1 : 0);
      for (int w = 0; w < kWarps; ++w) {
        const int slot = ll_partial_warp_slot(b, w, grid);
        if (slot_block < 0) {
          EXPECT_EQ(slot, -1) << "block 0 of a grid of " << grid << " takes no item";
          continue;
        }
        ASSERT_GE(slot, 0);
        ASSERT_LT(slot, partial_blocks * kWarps);
        EXPECT_EQ(slot % partial_blocks, slot_block);
        ++taken[static_cast<std::size_t>(slot)];
        block_of[static_cast<std::size_t>(slot)] = b;
      }
    }
    EXPECT_EQ(std::count(taken.begin(), taken.end(), 1),
              static_cast<std::ptrdiff_t>(partial_blocks) * kWarps);
    if (partial_blocks > 1)
      for (std::size_t slot = 0; slot + 1 < block_of.size(); ++slot)
        EXPECT_NE(block_of[slot], block_of[slot + 1]) << "slot " << slot;
    EXPECT_EQ(std::count(block_of.begin(), block_of.end(), 0), grid > 1 ? 0 : kWarps);
  }
}

// The dispatch's row items (ll_dispatch_send.cuh): warp w of row block b first takes
// ll_row_warp_slot(b, w) = w * row_blocks + b. The row blocks' warps take every slot exactly once,
// block b's slots are those congruent to b (what its flag covers), and a token's consecutive parts
// go to different blocks.
TEST(LlProtocol, RowWarpSlotsTakeEverySlotOnceSpreadOverBlocks) {
  constexpr int kWarps = 16;
  for (int row_blocks : {1, 2, 3, 7, 112, 127, kLlMaxBlocks}) {
    SCOPED_TRACE("row_blocks " + std::to_string(row_blocks));
    std::vector<int> block_of(static_cast<std::size_t>(row_blocks) * kWarps, -1);
    for (int b = 0; b < row_blocks; ++b)
      for (int w = 0; w < kWarps; ++w) {
        const int slot = ll_row_warp_slot(b, w, row_blocks);
        ASSERT_GE(slot, 0);
        ASSERT_LT(slot, row_blocks * kWarps);
        EXPECT_EQ(block_of[static_cast<std::size_t>(slot)], -1) << "slot " << slot << " taken twice";
        EXPECT_EQ(slot % row_blocks, b);
        block_of[static_cast<std::size_t>(slot)] = b;
      }
    EXPECT_EQ(std::count(block_of.begin(), block_of.end(), -1), 0);
    if (row_blocks > 1)
      for (std::size_t slot = 0; slot + 1 < block_of.size(); ++slot)
        EXPECT_NE(block_of[slot], block_of[slot + 1]) << "slot " << slot;
  }
}

// The direct dispatch's roles: row and list blocks cover the grid once (a grid of one block does
// both), rows keep at least 7/8 of a grid of 8 or more, no more list blocks than 64-expert shares,
// and the list blocks' experts (j, j + L, ...) cover every expert exactly once.
TEST(LlProtocol, DirectRolesSplitTheGridAndCoverEveryExpertOnce) {
  for (int E : {1, 2, 7, 63, 64, 65, 128, 256, 288, 1024, 4096}) {
    for (int grid = 1; grid <= kLlMaxBlocks; ++grid) {
      const LlDirectRoles r = ll_direct_roles(E, grid);
      SCOPED_TRACE("E " + std::to_string(E) + ", grid " + std::to_string(grid));
      ASSERT_GE(r.list_blocks, 1);
      ASSERT_GE(r.row_blocks, 1);
      if (grid == 1) {
        EXPECT_EQ(r.list_blocks, 1);
        EXPECT_EQ(r.row_blocks, 1);
      } else {
        EXPECT_EQ(r.list_blocks + r.row_blocks, grid);
      }
      EXPECT_LE(r.list_blocks, std::max(1, grid / 8));
      EXPECT_LE(r.list_blocks, (E + 63) / 64);
      std::vector<int> owners(static_cast<std::size_t>(E), 0);
      for (int j = 0; j < r.list_blocks; ++j)
        for (int e = j; e < E; e += r.list_blocks) ++owners[static_cast<std::size_t>(e)];
      EXPECT_EQ(std::count(owners.begin(), owners.end(), 1), E);
    }
  }
  // ll-dsv3 on one H100 (NOTES 11.20): 5 list blocks of at most 58 experts, 127 row blocks.
  EXPECT_EQ(ll_direct_roles(288, 132).list_blocks, 5);
  EXPECT_EQ(ll_direct_roles(288, 132).row_blocks, 127);
}

}  // namespace
}  // namespace epcomm
