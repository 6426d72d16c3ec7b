// libFuzzer target: the host-side argument checks every operation runs before it launches anything
// (src/intranode/op_checks.hpp, src/low_latency/ll_checks.hpp, check_ht_options, and the public
// ll_region_bytes_hint), fed arbitrary tensor descriptors and options: any shape, stride, dtype byte,
// ndim (also outside [0, Tensor::kMaxDims]), data address (null, misaligned, anywhere; the checks
// never dereference it), rank count, handle; and the high-throughput plans (intranode/ht_plan.hpp).
//
// Input (fuzz_input.hpp: fields front to back, zero past the end): byte 0 picks the check, then its
// arguments. A tensor is 75 bytes: address kind, dtype, ndim + 1 (bit 7: strides made contiguous),
// 4 extents and 4 strides of 8 bytes, an address of 8 bytes (for address kind 3).
// Invariants: a check returns or throws epcomm::Error (anything else escaping, a crash or undefined
// behaviour is a finding); a shape a check returns is one the plans and kernels can use (counts >= 0,
// hidden within its bound, top-k within its bound).
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "fuzz_input.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/ht_plan.hpp"
#include "intranode/op_checks.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_handle.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm::fuzz {
namespace {

void require(bool invariant) {
  if (!invariant) std::abort();
}

// Fake addresses: the checks compare and align them, never read through them.
void* address(std::uint8_t kind, std::uint64_t any) {
  switch (kind % 4) {
    case 0:
      return nullptr;
    case 1:
      return reinterpret_cast<void*>(std::uintptr_t{1} << 32);  // 256-byte aligned
    case 2:
      return reinterpret_cast<void*>((std::uintptr_t{1} << 32) + 1);  // misaligned
    default:
      return reinterpret_cast<void*>(static_cast<std::uintptr_t>(any));
  }
}

Tensor tensor(Input& in) {
  Tensor t;
  const std::uint8_t kind = in.u8();
  t.dtype = static_cast<DType>(in.u8());
  const std::uint8_t ndim = in.u8();
  t.ndim = static_cast<int>(ndim & 0x7f) % (Tensor::kMaxDims + 3) - 1;  // -1 to kMaxDims + 1
  for (auto& extent : t.shape) extent = in.i64();
  for (auto& stride : t.stride) stride = in.i64();
  if ((ndim & 0x80) != 0 && t.ndim >= 1 && t.ndim <= Tensor::kMaxDims) {
    std::int64_t step = 1;  // contiguous strides, wrapping as the caller's arithmetic would
    for (int d = t.ndim - 1; d >= 0; --d) {
      t.stride[static_cast<std::size_t>(d)] = step;
      step = static_cast<std::int64_t>(static_cast<std::uint64_t>(step) *
                                       static_cast<std::uint64_t>(t.shape[static_cast<std::size_t>(d)]));
    }
  }
  t.data = address(kind, in.u64());
  return t;
}

// A rank count as a Buffer has one: 1 to 1024.
int num_ranks(Input& in) {
  return 1 + static_cast<int>(in.u32() % 1024);
}

// A dispatch handle as a dispatch leaves it (non-negative counts), or none.
std::shared_ptr<const DispatchHandle::State> dispatch_state(Input& in) {
  auto s = std::make_shared<DispatchHandle::State>();
  s->num_ranks = num_ranks(in);
  s->num_tokens = static_cast<std::int64_t>(in.u64() >> 1);
  s->num_rows = static_cast<std::int64_t>(in.u64() >> 1);
  s->num_local_experts = static_cast<int>(in.u32() >> 1);
  return s;
}

void dispatch_checks(Input& in, int which) {
  DispatchArgs a;
  a.x = tensor(in);
  a.x_scales = tensor(in);
  a.topk_idx = tensor(in);
  a.topk_weights = tensor(in);
  a.num_tokens_per_rank = tensor(in);
  a.is_token_in_rank = tensor(in);
  a.num_tokens_per_expert = tensor(in);
  a.expert_alignment = in.i32();
  a.num_worst_tokens = in.i64();
  const DispatchHandle handle = HandleAccess::make(dispatch_state(in));
  if (in.flag()) a.handle = &handle;
  const int ranks = num_ranks(in);
  if (which == 0) {
    const checks::DispatchShape shape = checks::check_dispatch_args(a, ranks);
    require(shape.num_tokens >= 0 && shape.hidden > 0 && shape.hidden <= checks::kMaxHidden);
    require(shape.row_bytes == shape.hidden * static_cast<std::int64_t>(dtype_size(a.x.dtype)));
    require(shape.num_topk >= 0 && shape.num_topk <= checks::kMaxTopk);
  }
  if (which == 1) checks::check_layout_args(a.topk_idx, in.i32(), ranks);
  if (which == 2) checks::check_inputs_outside_region(a, address(in.u8(), in.u64()), in.u64());
}

void combine_checks(Input& in, int which) {
  CombineArgs a;
  a.x = tensor(in);
  a.topk_weights = tensor(in);
  a.bias0 = tensor(in);
  a.bias1 = tensor(in);
  const DispatchHandle handle = HandleAccess::make(dispatch_state(in));
  if (in.flag()) a.handle = &handle;
  if (which == 0) {
    const checks::CombineShape shape = checks::check_combine_args(a, num_ranks(in));
    require(shape.num_tokens >= 0 && shape.hidden > 0 && shape.hidden <= checks::kMaxHidden);
    require(shape.num_topk >= 0 && shape.num_topk <= checks::kMaxTopk);
  }
  if (which == 1) checks::check_inputs_outside_region(a, address(in.u8(), in.u64()), in.u64());
}

LowLatencyOptions ll_options(Input& in) {
  LowLatencyOptions ll;
  ll.max_tokens_per_rank = in.i64();
  ll.hidden = in.i64();
  ll.num_experts = in.i32();
  ll.max_topk = in.i32();
  ll.num_blocks = in.i32();
  return ll;
}

BufferOptions buffer_options(Input& in) {
  BufferOptions o;
  o.num_nvl_bytes = in.i64();
  o.num_rdma_bytes = in.i64();
  o.low_latency_mode = in.flag();
  o.timeout_ms = in.i64();
  o.ll_transport = static_cast<LlTransport>(in.i32());
  o.ht.dispatch_copy_chunks = in.i32();
  o.ht.dispatch_straight = static_cast<StraightCopies>(in.i32());
  o.ht.combine = static_cast<CombineTransfer>(in.i32());
  o.ht.combine_copy_chunks = in.i32();
  return o;
}

// Options: any rank count here, since ll_region_bytes_hint is public and takes one from the caller.
void option_checks(Input& in) {
  const LowLatencyOptions ll = ll_options(in);
  const BufferOptions o = buffer_options(in);
  const int ranks = in.i32();
  switch (in.u8() % 5) {
    case 0:
      checks::check_ll_options(ll, ranks);
      break;
    case 1:
      ll_region_bytes_hint(ll.max_tokens_per_rank, ll.hidden, ranks, ll.num_experts, ll.max_topk);
      break;
    case 2:
      checks::check_ll_buffer(o, ll, ranks, in.i32());
      break;
    case 3:
      checks::check_ll_transport(o, nullptr);
      break;
    default:
      check_ht_options(o.ht);
      break;
  }
}

// The low-latency calls of a Buffer whose options passed check_ll_options (as its constructor
// ensures); the rest of their arguments anything.
void ll_call_checks(Input& in, int which) {
  const LowLatencyOptions ll = ll_options(in);
  const int ranks = 1 + static_cast<int>(in.u8() % kMaxDomainRanks);
  checks::check_ll_options(ll, ranks);
  const Tensor x = tensor(in);
  const Tensor topk_idx = tensor(in);
  if (which == 0) {
    LlDispatchOptions options;
    options.use_fp8 = in.flag();
    options.round_scale = in.flag();
    options.use_ue8m0 = in.flag();
    options.cumulative_local_expert_recv_stats = tensor(in);
    const checks::LlDispatchShape shape = checks::check_ll_dispatch_args(x, topk_idx, options, ll, ranks);
    require(shape.num_tokens >= 0 && shape.num_tokens <= ll.max_tokens_per_rank);
    require(shape.num_topk >= 1 && shape.num_topk <= ll.max_topk);
    return;
  }
  LlState state;
  state.options = ll;
  state.layout = LlLayout::make(ranks, ll.max_tokens_per_rank, ll.hidden, ll.num_experts, ll.max_topk);
  state.num_dispatches = in.u64();
  auto h = std::make_shared<LlHandle::State>();
  h->num_ranks = in.flag() ? ranks : in.i32();
  h->num_tokens = static_cast<std::int64_t>(in.u64() >> 1);
  h->num_topk = static_cast<int>(in.u32() >> 1);
  h->owner = in.flag() ? static_cast<const void*>(&state) : nullptr;
  h->dispatch_index = in.u64();
  if (in.flag()) h->received = std::make_shared<bool>(in.flag());
  const LlHandle handle = HandleAccess::make(std::shared_ptr<const LlHandle::State>(h));
  LlCombineOptions options;
  options.zero_copy = in.flag();
  const Tensor topk_weights = tensor(in);
  checks::check_ll_combine_args(x, topk_idx, topk_weights, handle, options, state, ranks,
                                address(in.u8(), in.u64()));
}

// The high-throughput plans, made once the checks passed: num_sms from the caller's Config, the
// device's SM count, a checked token count (>= 0), a handle's channels (or 0), copy chunks of checked
// options.
void plans(Input& in) {
  const int num_sms = in.i32();
  const int device_sms = 1 + static_cast<int>(in.u32() % 1024);
  const auto num_tokens = static_cast<std::int64_t>(in.u64() >> 1);
  const int num_channels = in.flag() ? 0 : in.i32();
  const int copy_chunks = static_cast<int>(in.u8() % (kMaxCopyChunks + 1));
  plan_ht_dispatch(num_sms, device_sms, num_tokens, num_channels, copy_chunks);
  plan_ht_combine(num_sms, device_sms);
}

}  // namespace
}  // namespace epcomm::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  epcomm::fuzz::Input in(data, size);
  const int which = in.u8() % 9;
  try {
    if (which <= 2) {
      epcomm::fuzz::dispatch_checks(in, which);
    } else if (which <= 4) {
      epcomm::fuzz::combine_checks(in, which - 3);
    } else if (which == 5) {
      epcomm::fuzz::option_checks(in);
    } else if (which == 8) {
      epcomm::fuzz::plans(in);
    } else {
      epcomm::fuzz::ll_call_checks(in, which - 6);
    }
  } catch (const epcomm::Error&) {
    // A refusal: what the checks are for.
  }
  return 0;
}
