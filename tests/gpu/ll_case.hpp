// Helpers of the low-latency GPU tests (tests/gpu/test_ll.cpp): the transport under test, the
// cases, their inputs on every rank (expert outputs y included) and output poisoning. The
// comparisons with the CPU reference are in ll_check.hpp.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "ll_progress.hpp"
#include "low_latency/ll_layout.hpp"
#include "epcomm/reference.hpp"
#include "buffer/buffer_impl.hpp"
#include "low_latency/ll_domains.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm::test {

// test_ll.cpp is built three times: gpu_test_ll (peers through CUDA IPC) and, with
// EPCOMM_WITH_NVSHMEM, gpu_test_ll_nvshmem (every peer through NVSHMEM puts and signals, NVLink
// peer-to-peer underneath) and gpu_test_ll_md (LlTransport::kAuto with the NVSHMEM library linked:
// across NVLink domains, EPCOMM_RANKS_PER_DOMAIN, the hybrid path of transport/hybrid_ll_peers.cuh).
#if defined(EPCOMM_TEST_LL_NVSHMEM)
inline constexpr LlTransport kTestLlTransport = LlTransport::kNvshmem;
#else
inline constexpr LlTransport kTestLlTransport = LlTransport::kAuto;
#endif

// The NVLink domains `num_ranks` ranks form as EPCOMM_RANKS_PER_DOMAIN asks (1 when it is unset).
inline int ll_test_domains(int num_ranks) {
  const int known = ll_requested_num_domains(num_ranks, requested_ranks_per_domain({}));
  return known > 0 ? known : 1;
}

// Options of a low-latency Buffer for `o` on `num_ranks` ranks, over the transport under test.
// With NVSHMEM (or across domains) the workspace is symmetric memory and the NVLink region gets
// none, so a kernel that still wrote through the IPC mappings would fault instead of passing unnoticed.
inline BufferOptions ll_buffer_options(const LowLatencyOptions& o, int num_ranks,
                                       std::int64_t timeout_ms = -1) {
  const bool symmetric = kTestLlTransport == LlTransport::kNvshmem || ll_test_domains(num_ranks) > 1;
  return {.num_nvl_bytes = symmetric ? 0
                                     : ll_region_bytes_hint(o.max_tokens_per_rank, o.hidden, num_ranks,
                                                            o.num_experts, o.max_topk),
          .low_latency_mode = true,
          .timeout_ms = timeout_ms,
          .ll_transport = kTestLlTransport};
}

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
  int num_blocks = 0;  // the grid of every launch (LowLatencyOptions::num_blocks; 0: one per SM)
  std::uint64_t seed = 1;

  std::int64_t tokens_of(int rank) const {
    if (rank == 1 && tokens_on_rank1 >= 0) return tokens_on_rank1;
    return num_tokens >= 0 ? num_tokens : max_tokens;
  }
  int num_experts(int R) const { return experts_per_rank * R; }
  LowLatencyOptions buffer_options(int R) const {
    return {max_tokens, hidden, num_experts(R), max_topk, num_blocks};
  }
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
inline std::vector<RankData> make_inputs(const LlCase& c, int R, std::uint64_t salt) {
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

inline ref::Geometry geometry_of(const LlCase& c, int R) {
  return {R, c.num_experts(R), R};
}

inline ref::LlOptions ref_options(const LlCase& c) {
  return {.use_fp8 = c.use_fp8, .round_scale = c.round_scale, .use_ue8m0 = c.use_ue8m0};
}

// Device copies of one rank's inputs.
struct DeviceInputs {
  DeviceTensor x, topk, weights;
};
inline DeviceInputs upload_inputs(const RankData& d, const LlCase& c) {
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
inline void refill_inputs(const DeviceInputs& di, const RankData& d, const LlCase& c) {
  copy_to_device(di.x.data(), d.in.x.data(), di.x.view().nbytes());
  if (c.idx32) {
    std::vector<std::int32_t> narrow(d.in.topk_idx.begin(), d.in.topk_idx.end());
    copy_to_device(di.topk.data(), narrow.data(), di.topk.view().nbytes());
  } else {
    copy_to_device(di.topk.data(), d.in.topk_idx.data(), di.topk.view().nbytes());
  }
  copy_to_device(di.weights.data(), d.weights.data(), di.weights.view().nbytes());
}

// Poisons both halves of the buffer's output area (fill_poison: NaN for floats, impossible indices).
inline void poison_outputs(Buffer& buffer) {
  const LlState* st = low_latency_state(buffer);
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  for (int h = 0; h < 2; ++h)
    fill_poison(st->layout.output_block(st->workspace, h), st->layout.output_bytes, gpu_env().stream);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
}

// Waits for everything queued (`what`: the calls, named in progress lines, ll_progress.hpp), then
// reports the device's status.
inline void finish(Buffer& buffer, const char* what = "the calls") {
  ll_wait_device(buffer.comm_stream(), what);
  buffer.check_status();
}

// ---- combine inputs and checks --------------------------------------------------------------------

enum class YMode { kHash, kEcho };  // hashed values in every row, or each row's dispatched BF16 token

inline std::uint16_t hashed_bf16(std::uint64_t key) {
  key += 0x9e3779b97f4a7c15ull;
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebull;
  key ^= key >> 31;
  return ref::float_to_bf16(static_cast<float>(key >> 40) / static_cast<float>(1 << 24) * 4.0f - 2.0f);
}

// y of rank r: [nle, capacity, hidden].
inline std::vector<std::uint16_t> make_y(YMode mode, const LlCase& c, int R, int r, std::uint64_t salt,
                                         const ref::LlRankOutput& routing,
                                         const std::vector<RankData>& inputs) {
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

}  // namespace epcomm::test
