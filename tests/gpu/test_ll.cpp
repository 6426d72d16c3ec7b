// Low-latency dispatch and combine on the GPUs against the CPU reference, every element. Dispatch:
// per local expert and source rank, the set of rows (token, payload bytes, scales) must equal the
// reference's, compared through layout_range and src_info (the GPU may order rows differently);
// payloads and scales bit-exactly. Combine: bit-exactly against ref::ll_combine run on the GPU's
// own routing (every rank's layout_range and src_info, gathered). Outputs are poisoned (0xAB)
// before every run, so anything a kernel forgets to write shows up.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "kernels/ll_layout.hpp"
#include "reference/reference.hpp"
#include "runtime/buffer_impl.hpp"
#include "runtime/ll_state.hpp"

namespace epcomm::test {
namespace {

struct LlCase {
  std::int64_t max_tokens = 128;      // T, fixed per buffer
  std::int64_t num_tokens = -1;       // tokens of every rank (-1: T)
  std::int64_t tokens_on_rank1 = -1;  // >= 0: rank 1 has this many instead
  std::int64_t hidden = 2048;
  int num_topk = 8;
  int max_topk = 8;
  int experts_per_rank = 16;
  double empty_fraction = 0.1;  // top-k slots set to -1 (and token 3 selects nothing)
  bool duplicates = false;      // every 7th token names its first expert in two slots
  bool use_fp8 = true, round_scale = false, use_ue8m0 = false;
  bool idx32 = false;
  std::uint64_t seed = 1;

  std::int64_t tokens_of(int rank) const {
    if (rank == 1 && tokens_on_rank1 >= 0) return tokens_on_rank1;
    return num_tokens >= 0 ? num_tokens : max_tokens;
  }
  int num_experts(int R) const { return experts_per_rank * R; }
  LowLatencyOptions buffer_options(int R) const { return {max_tokens, hidden, num_experts(R), max_topk}; }
  LlDispatchOptions options(bool hook) const {
    return {.use_fp8 = use_fp8, .round_scale = round_scale, .use_ue8m0 = use_ue8m0, .return_recv_hook = hook};
  }
  std::int64_t row_bytes() const { return use_fp8 ? hidden : hidden * 2; }
  int scale_words() const {
    return !use_fp8    ? 0
           : use_ue8m0 ? static_cast<int>((hidden / 128 + 3) / 4)
                       : static_cast<int>(hidden / 128);
  }
};

struct RankData {
  ref::LlRankInput in;
  std::vector<float> weights;  // [T_r, k]
};

// Every rank's inputs (each rank makes all of them, from fixed seeds).
std::vector<RankData> make_inputs(const LlCase& c, int R, std::uint64_t salt) {
  std::vector<RankData> all(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) {
    RankData& d = all[static_cast<std::size_t>(r)];
    const std::uint64_t seed = seed_for(c.seed * 7919 + salt, r);
    const std::int64_t T = c.tokens_of(r);
    d.in.num_tokens = T;
    d.in.num_topk = c.num_topk;
    d.in.topk_idx = random_topk(seed, T, c.num_topk, c.num_experts(R), c.empty_fraction);
    if (T > 3) std::fill_n(d.in.topk_idx.begin() + 3 * c.num_topk, c.num_topk, -1);  // routed nowhere
    if (c.duplicates && c.num_topk >= 2)
      for (std::int64_t t = 1; t < T; t += 7)
        d.in.topk_idx[t * c.num_topk + 1] = d.in.topk_idx[t * c.num_topk];
    d.in.x = random_bf16(seed + 1, static_cast<std::size_t>(T * c.hidden));
    std::mt19937_64 rng(seed + 2);
    std::uniform_real_distribution<float> weight(0.05f, 1.0f);
    d.weights.resize(d.in.topk_idx.size());
    for (auto& w : d.weights) w = weight(rng);
  }
  return all;
}

ref::Geometry geometry_of(const LlCase& c, int R) {
  return {R, c.num_experts(R), R};
}

ref::LlOptions ref_options(const LlCase& c) {
  return {.use_fp8 = c.use_fp8, .round_scale = c.round_scale, .use_ue8m0 = c.use_ue8m0};
}

// Device copies of one rank's inputs.
struct DeviceInputs {
  DeviceTensor x, topk, weights;
};
DeviceInputs upload_inputs(const RankData& d, const LlCase& c) {
  DeviceInputs di;
  const std::int64_t T = d.in.num_tokens;
  di.x = upload(d.in.x, DType::kBF16, {T, c.hidden});
  if (c.idx32) {
    std::vector<std::int32_t> narrow(d.in.topk_idx.begin(), d.in.topk_idx.end());
    di.topk = upload(narrow, DType::kI32, {T, c.num_topk});
  } else {
    di.topk = upload(d.in.topk_idx, DType::kI64, {T, c.num_topk});
  }
  di.weights = upload(d.weights, DType::kF32, {T, c.num_topk});
  return di;
}
// Copies new inputs into existing device tensors (the captured buffers of a CUDA graph).
void refill_inputs(const DeviceInputs& di, const RankData& d, const LlCase& c) {
  EPCOMM_CUDA_CHECK(cudaMemcpy(di.x.data(), d.in.x.data(), di.x.view().nbytes(), cudaMemcpyHostToDevice));
  if (c.idx32) {
    std::vector<std::int32_t> narrow(d.in.topk_idx.begin(), d.in.topk_idx.end());
    EPCOMM_CUDA_CHECK(
        cudaMemcpy(di.topk.data(), narrow.data(), di.topk.view().nbytes(), cudaMemcpyHostToDevice));
  } else {
    EPCOMM_CUDA_CHECK(
        cudaMemcpy(di.topk.data(), d.in.topk_idx.data(), di.topk.view().nbytes(), cudaMemcpyHostToDevice));
  }
  EPCOMM_CUDA_CHECK(
      cudaMemcpy(di.weights.data(), d.weights.data(), di.weights.view().nbytes(), cudaMemcpyHostToDevice));
}

// Fills both halves of the buffer's output area with 0xAB.
void poison_outputs(Buffer& buffer) {
  const Buffer::LlState* st = buffer.low_latency_state();
  void* region = buffer.internal().region.get();
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  for (int h = 0; h < 2; ++h)
    EPCOMM_CUDA_CHECK(cudaMemset(st->layout.output_block(region, h), 0xAB, st->layout.output_bytes));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
}

void finish(Buffer& buffer) {
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  buffer.check_status();
}

// ---- dispatch outputs ---------------------------------------------------------------------------

struct GotDispatch {
  std::vector<std::int32_t> recv_count, src_info;
  std::vector<std::int64_t> layout_range;
  std::vector<std::uint8_t> recv_x;
  std::vector<std::uint32_t> scales;  // physical [nle][words][capacity]
};
GotDispatch download_dispatch(const LlDispatchResult& r) {
  GotDispatch g;
  g.recv_count = download<std::int32_t>(r.recv_count);
  g.src_info = download<std::int32_t>(r.src_info);
  g.layout_range = download<std::int64_t>(r.layout_range);
  g.recv_x = download<std::uint8_t>(r.recv_x);
  if (r.recv_scales.defined()) g.scales = download<std::uint32_t>(r.recv_scales);
  return g;
}

std::uint32_t want_scale_word(const ref::LlRankOutput& want, const LlCase& c, std::size_t index) {
  if (c.use_ue8m0) return static_cast<std::uint32_t>(want.recv_scales_ue8m0[index]);
  std::uint32_t bits;
  std::memcpy(&bits, &want.recv_scales[index], 4);
  return bits;
}

// Canonical comparison: counts and ranges exactly; per (expert, source) the rows as a multiset of
// tokens, each row's bytes and scales bit-exactly against a reference row of the same token.
void expect_dispatch_matches(const GotDispatch& got, const ref::LlRankOutput& want, const LlCase& c, int R,
                             const std::string& what) {
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

// Every rank's routing as the GPU produced it (layout_range, src_info), for ref::ll_combine.
std::vector<ref::LlRankOutput> gather_routing(const GotDispatch& mine, const LlCase& c, int R) {
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

// ---- combine inputs and checks --------------------------------------------------------------------

enum class YMode { kHash, kEcho };  // hashed values in every row, or each row's dispatched BF16 token

std::uint16_t hashed_bf16(std::uint64_t key) {
  key += 0x9e3779b97f4a7c15ull;
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebull;
  key ^= key >> 31;
  return ref::float_to_bf16(static_cast<float>(key >> 40) / static_cast<float>(1 << 24) * 4.0f - 2.0f);
}

// y of rank r: [nle, capacity, hidden].
std::vector<std::uint16_t> make_y(YMode mode, const LlCase& c, int R, int r, std::uint64_t salt,
                                  const ref::LlRankOutput& routing, const std::vector<RankData>& inputs) {
  const std::int64_t nle = c.experts_per_rank, cap = R * c.max_tokens, H = c.hidden;
  std::vector<std::uint16_t> y(static_cast<std::size_t>(nle * cap * H), 0);
  for (std::int64_t e = 0; e < nle; ++e) {
    if (mode == YMode::kHash) {
      const std::uint64_t base = (seed_for(c.seed * 131 + salt, r) * 4099 + static_cast<std::uint64_t>(e))
                                 << 32;
      for (std::int64_t i = 0; i < cap * H; ++i)
        y[static_cast<std::size_t>(e * cap * H + i)] = hashed_bf16(base + static_cast<std::uint64_t>(i));
      continue;
    }
    for (int s = 0; s < R; ++s) {
      const std::int64_t range = routing.layout_range[static_cast<std::size_t>(e * R + s)];
      for (std::int64_t i = range >> 32; i < (range >> 32) + (range & 0xffffffff); ++i) {
        const std::int32_t t = routing.src_info[static_cast<std::size_t>(e * cap + i)];
        const auto& x = inputs[static_cast<std::size_t>(s)].in.x;
        std::copy_n(x.begin() + t * H, H, y.begin() + (e * cap + i) * H);
      }
    }
  }
  return y;
}

// Runs the reference combine on the GPU's routing and compares this rank's output bit-exactly.
void expect_combine_matches(const std::vector<std::uint16_t>& got, const LlCase& c, int R,
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
                     << (bad ? ref::bf16_to_float(mine[first]) : 0.0f) << ")";
}

// ---- one dispatch + combine -------------------------------------------------------------------------

struct PairMode {
  bool hook = false;       // split phases (return_recv_hook) for both
  bool zero_copy = false;  // y written into get_next_low_latency_combine_buffer
  YMode y = YMode::kHash;
  std::uint64_t salt = 0;  // fresh inputs per call
};

void run_pair(Buffer& buffer, const LlCase& c, const PairMode& mode = {}) {
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
  finish(buffer);
  const GotDispatch got = download_dispatch(d);
  expect_dispatch_matches(got, expected[static_cast<std::size_t>(me)], c, R, "dispatch");

  const auto routing = gather_routing(got, c, R);
  std::vector<std::vector<std::uint16_t>> ys;
  for (int r = 0; r < R; ++r)
    ys.push_back(make_y(mode.y, c, R, r, mode.salt, routing[static_cast<std::size_t>(r)], inputs));
  const auto& my_y = ys[static_cast<std::size_t>(me)];
  DeviceTensor y_owned;
  Tensor y;
  if (mode.zero_copy) {
    y = buffer.get_next_low_latency_combine_buffer(d.handle);
    EPCOMM_CUDA_CHECK(cudaMemcpy(y.data, my_y.data(), y.nbytes(), cudaMemcpyHostToDevice));
  } else {
    y_owned = upload(my_y, DType::kBF16, {c.experts_per_rank, R * c.max_tokens, c.hidden});
    y = y_owned;
  }
  LlCombineResult cr = buffer.low_latency_combine(
      y, di.topk, di.weights, d.handle, {.zero_copy = mode.zero_copy, .return_recv_hook = mode.hook}, call);
  if (mode.hook) cr.receive();
  finish(buffer);
  expect_combine_matches(download<std::uint16_t>(cr.out), c, R, routing, ys, inputs, "combine");
}

// ---- fixture: one buffer per low-latency configuration ---------------------------------------------

class Ll : public ::testing::Test {
 protected:
  // The buffer for c (made collectively; the previous one is destroyed when the options differ).
  static Buffer& buffer_for(const LlCase& c) {
    const LowLatencyOptions o = c.buffer_options(gpu_env().world);
    if (!buffer_ || o.max_tokens_per_rank != options_.max_tokens_per_rank || o.hidden != options_.hidden ||
        o.num_experts != options_.num_experts || o.max_topk != options_.max_topk) {
      buffer_.reset();
      const std::int64_t bytes =
          ll_region_bytes_hint(o.max_tokens_per_rank, o.hidden, gpu_env().world, o.num_experts, o.max_topk);
      buffer_ = std::make_unique<Buffer>(gpu_env().bootstrap,
                                         BufferOptions{.num_nvl_bytes = bytes, .low_latency_mode = true}, o);
      options_ = o;
    }
    return *buffer_;
  }
  static void TearDownTestSuite() { buffer_.reset(); }
  static std::unique_ptr<Buffer> buffer_;
  static LowLatencyOptions options_;
};
std::unique_ptr<Buffer> Ll::buffer_;
LowLatencyOptions Ll::options_;

TEST_F(Ll, Fp8) {
  const LlCase c{.seed = 1};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Fp8RoundScale) {
  const LlCase c{.round_scale = true, .seed = 2};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Fp8Ue8m0) {
  const LlCase c{.round_scale = true, .use_ue8m0 = true, .seed = 3};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Ue8m0HiddenNotAMultipleOf512) {
  const LlCase c{.hidden = 640, .round_scale = true, .use_ue8m0 = true, .seed = 4};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Bf16) {
  const LlCase c{.use_fp8 = false, .seed = 5};
  run_pair(buffer_for(c), c, {.y = YMode::kEcho});
}
TEST_F(Ll, SplitPhases) {
  for (const bool fp8 : {true, false}) {
    const LlCase c{.use_fp8 = fp8, .seed = 6};
    run_pair(buffer_for(c), c, {.hook = true, .salt = fp8 ? 1u : 2u});
  }
}
TEST_F(Ll, ZeroCopyCombine) {
  const LlCase c{.seed = 7};
  run_pair(buffer_for(c), c, {.zero_copy = true});
  run_pair(buffer_for(c), c, {.hook = true, .zero_copy = true, .salt = 1});
}
TEST_F(Ll, Int32IndicesDuplicatesAndEmptySlots) {
  const LlCase c{.empty_fraction = 0.3, .duplicates = true, .idx32 = true, .seed = 8};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, RankWithNoTokens) {
  const LlCase c{.tokens_on_rank1 = 0, .seed = 9};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c), c, {.hook = true, .salt = 1});
}
TEST_F(Ll, FewerTokensThanTheBound) {
  const LlCase c{.num_tokens = 77, .tokens_on_rank1 = 5, .seed = 10};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, OneTokenPerRank) {
  const LlCase c{.max_tokens = 1, .seed = 11};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c), c, {.hook = true, .salt = 1});
}
TEST_F(Ll, TopkBound16) {
  const LlCase c{.num_topk = 16, .max_topk = 16, .experts_per_rank = 32, .seed = 12};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, ThousandTokensPerRank) {
  const LlCase c{.max_tokens = 1024, .hidden = 1024, .experts_per_rank = 8, .seed = 13};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c),
           LlCase{.max_tokens = 1024, .hidden = 1024, .experts_per_rank = 8, .use_fp8 = false, .seed = 14},
           {.hook = true, .y = YMode::kEcho});
}
TEST_F(Ll, MoreBlocksThanExperts) {  // several blocks share each expert's rows
  const LlCase c{
      .max_tokens = 256, .hidden = 1024, .num_topk = 4, .max_topk = 4, .experts_per_rank = 2, .seed = 15};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, FullSizeDsv3) {  // ll-dsv3: 128 tokens, hidden 7168, top-8 of 288 experts
  const LlCase c{.hidden = 7168, .experts_per_rank = 288 / gpu_env().world, .seed = 16};
  if (288 % gpu_env().world != 0)
    GTEST_SKIP() << "288 experts do not split over " << gpu_env().world << " ranks";
  run_pair(buffer_for(c), c);
}

// 1, 3 and 64 alternating dispatch/combine pairs on one buffer, varying every option per call; the
// cumulative statistics add up.
TEST_F(Ll, AlternatingPairs) {
  const LlCase base{.max_tokens = 64, .hidden = 1024, .seed = 20};
  Buffer& buffer = buffer_for(base);
  for (const int pairs : {1, 3, 64}) {
    for (int i = 0; i < pairs; ++i) {
      LlCase c = base;
      c.use_fp8 = i % 4 != 3;
      c.round_scale = c.use_fp8 && i % 3 == 1;
      c.use_ue8m0 = c.round_scale && i % 2 == 0;
      c.num_tokens = 64 - (i % 5) * 13;
      c.idx32 = i % 2 == 1;
      c.seed = 1000u + static_cast<std::uint64_t>(pairs * 100 + i);
      run_pair(buffer, c,
               {.hook = i % 3 == 2, .zero_copy = i % 4 == 1, .y = c.use_fp8 ? YMode::kHash : YMode::kEcho});
    }
  }
  // Statistics: each dispatch adds its recv_count.
  const GpuEnv& env = gpu_env();
  DeviceTensor stats = upload(std::vector<std::int32_t>(static_cast<std::size_t>(base.experts_per_rank), 0),
                              DType::kI32, {base.experts_per_rank});
  std::vector<std::int32_t> sum(static_cast<std::size_t>(base.experts_per_rank), 0);
  for (int i = 0; i < 3; ++i) {
    const std::vector<RankData> inputs = make_inputs(base, env.world, 500u + static_cast<std::uint64_t>(i));
    const DeviceInputs di = upload_inputs(inputs[static_cast<std::size_t>(env.rank)], base);
    LlDispatchOptions o = base.options(i == 1);
    o.cumulative_local_expert_recv_stats = stats;
    LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, o, {.stream = env.stream});
    if (d.receive) d.receive();
    finish(buffer);
    const auto counts = download<std::int32_t>(d.recv_count);
    for (std::size_t e = 0; e < sum.size(); ++e) sum[e] += counts[e];
  }
  EXPECT_EQ(download<std::int32_t>(stats), sum);
}

// Two micro-batches in flight (the overlap pattern): both sends, both receives, both combines;
// every result of both stays valid until the end.
TEST_F(Ll, TwoOperationsInFlight) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const LlCase c{.seed = 30};
  Buffer& buffer = buffer_for(c);
  const CallOptions call{.stream = env.stream};
  std::vector<RankData> inputs[2];
  std::vector<ref::LlRankOutput> expected[2];
  DeviceInputs di[2];
  for (int b = 0; b < 2; ++b) {
    inputs[b] = make_inputs(c, R, 40u + static_cast<std::uint64_t>(b));
    std::vector<ref::LlRankInput> ref_in;
    for (const auto& d : inputs[b]) ref_in.push_back(d.in);
    expected[b] = ref::ll_dispatch(geometry_of(c, R), c.hidden, c.max_tokens, ref_in, ref_options(c));
    di[b] = upload_inputs(inputs[b][static_cast<std::size_t>(me)], c);
  }
  poison_outputs(buffer);
  LlDispatchResult d0 = buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(true), call);
  LlDispatchResult d1 = buffer.low_latency_dispatch(di[1].x, di[1].topk, c.options(true), call);
  // A third split dispatch before the first is received is refused before any launch.
  EXPECT_THROW(buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(true), call), Error);
  d0.receive();
  d1.receive();
  finish(buffer);
  const GotDispatch got[2] = {download_dispatch(d0), download_dispatch(d1)};
  std::vector<ref::LlRankOutput> routing[2];
  std::vector<std::vector<std::uint16_t>> ys[2];
  DeviceTensor y[2];
  for (int b = 0; b < 2; ++b) {
    expect_dispatch_matches(got[b], expected[b][static_cast<std::size_t>(me)], c, R,
                            "dispatch " + std::to_string(b));
    routing[b] = gather_routing(got[b], c, R);
    for (int r = 0; r < R; ++r)
      ys[b].push_back(
          make_y(YMode::kHash, c, R, r, 60u + b, routing[b][static_cast<std::size_t>(r)], inputs[b]));
    y[b] = upload(ys[b][static_cast<std::size_t>(me)], DType::kBF16,
                  {c.experts_per_rank, R * c.max_tokens, c.hidden});
  }
  LlCombineResult c0 = buffer.low_latency_combine(y[0], di[0].topk, di[0].weights, d0.handle,
                                                  {.return_recv_hook = true}, call);
  LlCombineResult c1 = buffer.low_latency_combine(y[1], di[1].topk, di[1].weights, d1.handle,
                                                  {.return_recv_hook = true}, call);
  c0.receive();
  c1.receive();
  finish(buffer);
  expect_combine_matches(download<std::uint16_t>(c0.out), c, R, routing[0], ys[0], inputs[0], "combine 0");
  expect_combine_matches(download<std::uint16_t>(c1.out), c, R, routing[1], ys[1], inputs[1], "combine 1");
  // A third dispatch reuses the first one's memory: its handle is refused before any launch.
  LlDispatchResult d2 = buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(false), call);
  EXPECT_THROW(buffer.low_latency_combine(y[0], di[0].topk, di[0].weights, d0.handle, {}, call), Error);
  buffer.low_latency_combine(y[0], di[0].topk, di[0].weights, d2.handle, {}, call);
  finish(buffer);
}

// Dispatch + combine captured in a CUDA graph, replayed with fresh inputs copied into the
// captured buffers before each replay; every replay checked in full.
void run_graph(const LlCase& c, Buffer& buffer, bool hook, int replays) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const CallOptions call{.stream = env.stream};
  const DeviceInputs di = upload_inputs(make_inputs(c, R, 0)[static_cast<std::size_t>(me)], c);
  finish(buffer);
  cudaGraph_t graph = nullptr;
  EPCOMM_CUDA_CHECK(cudaStreamBeginCapture(env.stream, cudaStreamCaptureModeRelaxed));
  LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(hook), call);
  if (hook) d.receive();
  // BF16: y is recv_x itself (each row echoes its token); FP8: y is the zero-copy buffer, refilled
  // with hashed values before each replay.
  const bool echo = !c.use_fp8;
  const Tensor y = echo ? d.recv_x : buffer.get_next_low_latency_combine_buffer(d.handle);
  LlCombineResult cr = buffer.low_latency_combine(y, di.topk, di.weights, d.handle,
                                                  {.zero_copy = !echo, .return_recv_hook = hook}, call);
  if (hook) cr.receive();
  EPCOMM_CUDA_CHECK(cudaStreamEndCapture(env.stream, &graph));
  cudaGraphExec_t exec = nullptr;
  EPCOMM_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));

  for (int i = 0; i < replays; ++i) {
    SCOPED_TRACE("replay " + std::to_string(i));
    const std::uint64_t salt = 100u + static_cast<std::uint64_t>(i);
    const std::vector<RankData> inputs = make_inputs(c, R, salt);
    std::vector<ref::LlRankInput> ref_in;
    for (const auto& rd : inputs) ref_in.push_back(rd.in);
    const auto expected = ref::ll_dispatch(geometry_of(c, R), c.hidden, c.max_tokens, ref_in, ref_options(c));
    refill_inputs(di, inputs[static_cast<std::size_t>(me)], c);
    std::vector<std::vector<std::uint16_t>> ys(static_cast<std::size_t>(R));
    if (!echo) {  // hashed y does not depend on the routing: made before the replay
      for (int r = 0; r < R; ++r)
        ys[static_cast<std::size_t>(r)] = make_y(YMode::kHash, c, R, r, salt, {}, inputs);
      EPCOMM_CUDA_CHECK(
          cudaMemcpy(y.data, ys[static_cast<std::size_t>(me)].data(), y.nbytes(), cudaMemcpyHostToDevice));
    }
    poison_outputs(buffer);
    EPCOMM_CUDA_CHECK(cudaGraphLaunch(exec, env.stream));
    finish(buffer);
    const GotDispatch got = download_dispatch(d);
    expect_dispatch_matches(got, expected[static_cast<std::size_t>(me)], c, R, "dispatch");
    const auto routing = gather_routing(got, c, R);
    if (echo)
      for (int r = 0; r < R; ++r)
        ys[static_cast<std::size_t>(r)] =
            make_y(YMode::kEcho, c, R, r, salt, routing[static_cast<std::size_t>(r)], inputs);
    expect_combine_matches(download<std::uint16_t>(cr.out), c, R, routing, ys, inputs, "combine");
    if (::testing::Test::HasFatalFailure()) break;
  }
  EPCOMM_CUDA_CHECK(cudaGraphExecDestroy(exec));
  EPCOMM_CUDA_CHECK(cudaGraphDestroy(graph));
}

TEST_F(Ll, CudaGraphBf16) {
  const LlCase c{.use_fp8 = false, .seed = 50};
  run_graph(c, buffer_for(c), /*hook=*/false, 50);
  run_pair(buffer_for(c), c, {.y = YMode::kEcho, .salt = 7});  // eager calls after replays still agree
}
TEST_F(Ll, CudaGraphSplitPhasesFp8ZeroCopy) {
  const LlCase c{.round_scale = true, .use_ue8m0 = true, .seed = 51};
  run_graph(c, buffer_for(c), /*hook=*/true, 50);
  run_pair(buffer_for(c), c, {.salt = 7});
}

// An expert index outside [-1, E) is reported by check_status (only the device sees it); the call
// skips it and the buffer stays usable.
TEST_F(Ll, InvalidExpertIsReported) {
  const GpuEnv& env = gpu_env();
  const LlCase c{.seed = 70};
  Buffer& buffer = buffer_for(c);
  std::vector<RankData> inputs = make_inputs(c, env.world, 0);
  RankData& mine = inputs[static_cast<std::size_t>(env.rank)];
  if (env.rank == 0) mine.in.topk_idx[5 * c.num_topk + 2] = c.num_experts(env.world) + 3;
  const DeviceInputs di = upload_inputs(mine, c);
  LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  if (env.rank == 0) {
    try {
      buffer.check_status();
      ADD_FAILURE() << "expected the invalid expert to be reported";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
      EXPECT_NE(e.message().find("low-latency dispatch"), std::string::npos) << e.what();
      EXPECT_NE(e.message().find("token 5"), std::string::npos) << e.what();
    }
  }
  const DeviceTensor y =
      upload(std::vector<std::uint16_t>(
                 static_cast<std::size_t>(c.experts_per_rank * env.world * c.max_tokens * c.hidden), 0),
             DType::kBF16, {c.experts_per_rank, env.world * c.max_tokens, c.hidden});
  buffer.low_latency_combine(y, di.topk, di.weights, d.handle, {}, {.stream = env.stream});
  finish(buffer);
  run_pair(buffer, c, {.salt = 1});
}

// A peer that never calls is reported within the timeout, naming the operation, the peer and the
// counter; the process does not hang.
TEST_F(Ll, PeerThatNeverArrivesTimesOut) {
  const GpuEnv& env = gpu_env();
  buffer_.reset();
  const LlCase c{.max_tokens = 8, .hidden = 256, .experts_per_rank = 4, .seed = 80};
  const LowLatencyOptions o = c.buffer_options(env.world);
  {
    Buffer buffer(
        env.bootstrap,
        BufferOptions{.num_nvl_bytes = ll_region_bytes_hint(8, 256, env.world, o.num_experts, o.max_topk),
                      .low_latency_mode = true,
                      .timeout_ms = 2000},
        o);
    if (env.rank == 0) {
      const DeviceInputs di = upload_inputs(make_inputs(c, env.world, 0)[0], c);
      buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
      EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
      try {
        buffer.check_status();
        ADD_FAILURE() << "expected a timeout";
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kTimeout);
        EXPECT_NE(e.message().find("low-latency dispatch timed out"), std::string::npos) << e.what();
        EXPECT_NE(e.message().find("waiting for rank"), std::string::npos) << e.what();
      }
    }
  }  // both ranks meet in the destructor
}

}  // namespace
}  // namespace epcomm::test
