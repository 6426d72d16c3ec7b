// The steps of a high-throughput case run that both GPU programs take (test_ht.cpp within one
// NVLink domain, test_md.cpp across domains): the reference of every rank, the inputs on the
// device, the zero-copy poison, and the checks of dispatch, cached dispatch and combine outputs
// against the reference, every element. Each program composes them in its own run_case.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "checks.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/reference.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"

namespace epcomm::test {

// Dispatch arguments without the layout tensors, with num_experts instead: the dispatch derives
// the layout (DispatchArgs::num_experts).
inline void leave_layout_to_dispatch(DispatchArgs& a, int num_experts) {
  a.num_tokens_per_rank = {};
  a.is_token_in_rank = {};
  a.num_tokens_per_expert = {};
  a.num_experts = num_experts;
}

// How a case is run (the case's data is its HtCase).
struct HtMode {
  bool async_finish = false;    // wait on the returned events
  bool previous_event = false;  // order after an event instead of the stream (test_ht.cpp)
  bool cached = true;           // also run a cached dispatch with new payloads
  bool combine = true;          // combine the dispatch's rows back
  bool zero_copy = false;       // dispatch outputs are views of the region (DispatchArgs::zero_copy)
  int combine_calls = 1;        // combines issued back to back (no wait between), the last checked
  bool derive_layout = false;   // dispatch given topk_idx and num_experts, no layout tensors
};

// Every rank's inputs of a case and what the reference dispatch gives each rank.
struct HtExpected {
  ref::Geometry geometry;
  ref::HtDispatchOptions options;
  std::vector<ref::HtRankInput> inputs;    // [R]
  std::vector<ref::HtRankOutput> outputs;  // [R]

  const ref::HtRankInput& input(int rank_idx) const { return inputs[static_cast<std::size_t>(rank_idx)]; }
  const ref::HtRankOutput& output(int rank_idx) const { return outputs[static_cast<std::size_t>(rank_idx)]; }
};
// Case `c` on `num_ranks` ranks in domains of `ranks_per_domain`; `salt` makes new payloads on the
// same routes (a cached dispatch's inputs).
HtExpected ht_expected(const HtCase& c, int num_ranks, int ranks_per_domain, std::uint64_t salt = 0);

// x (and FP8 scales, as the strided view the case's layout gives) of one rank on the device.
struct HtPayload {
  DeviceTensor x, scales;
  Tensor scales_view;  // none without FP8
};

// One rank's dispatch inputs on the device, their layout (get_dispatch_layout called with
// `layout_options`), and the dispatch arguments naming them as case `c` says (num_worst_tokens
// and zero_copy are left to the caller).
struct HtDeviceInputs {
  HtPayload payload;
  DeviceTensor topk, weights;
  DispatchLayout layout;
  DispatchArgs args;
};
HtDeviceInputs upload_inputs(Buffer& buffer, const HtCase& c, const ref::HtRankInput& in, int num_experts,
                             const CallOptions& layout_options);

// Waits for a call's result the way `async_finish` says: on its event (which must be valid), or
// not at all (then it must have none).
void wait_for(const EventHandle& event, bool async_finish);
// wait_for, then the stream drained and the Buffer's device status checked.
void finish(Buffer& buffer, const EventHandle& event, bool async_finish);

// A zero-copy dispatch of `args` whose outputs are then poisoned (they live in the region, which no
// allocator poisons): the next call with the same routes must rewrite every one of those rows.
void dispatch_and_poison(Buffer& buffer, const DispatchArgs& args, const CallOptions& options);

// Exactly equal in the first `count` elements (bit for bit).
template <typename T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, std::size_t count, const char* what) {
  ASSERT_GE(got.size(), count) << what;
  ASSERT_GE(want.size(), count) << what;
  const Mismatches m = bitwise_mismatches(got, want, count);
  EXPECT_EQ(m.count, 0u) << what << ": " << m.count << " of " << count << " differ, first at " << m.first;
}

// A dispatch's outputs on this rank (`want` from `in`) against the reference, every element.
void expect_dispatch_outputs(const DispatchResult& got, const HtCase& c, const ref::HtRankInput& in,
                             const ref::HtRankOutput& want);

// A cached dispatch from `got`'s handle (same routes, new payloads: no layout, no count exchange,
// no host wait) of case `c` on ranks in domains of `ranks_per_domain`, checked against the
// reference: x and FP8 scales, every received row. With `zero_copy` it rewrites `got`'s rows.
void run_cached_dispatch(Buffer& buffer, const HtCase& c, int ranks_per_domain, const DispatchResult& got,
                         bool zero_copy, const CallOptions& options);

// Combines random expert outputs of `got`'s rows (padding rows too: they must be ignored) with the
// case's biases and the received weights, and checks the result against ref::ht_combine (x within
// the BF16 tolerance, weights within float32 rounding, NaN-aware). `recv_weights`: the weights to
// pass, or none to pass a copy of the reference's (zero-copy outputs live in the region, which
// combine refuses as input).
// `calls` combines of the same inputs are issued back to back, with no wait between them (a rank may
// begin the next while a peer still reduces the last); the last one's outputs are checked.
void run_combine(Buffer& buffer, const HtCase& c, const HtExpected& expected, const DispatchResult& got,
                 const Tensor& recv_weights, const CallOptions& options, int calls = 1);

}  // namespace epcomm::test
