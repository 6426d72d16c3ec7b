#include "bench/ht_check.hpp"

namespace epcomm::bench {

Verdict check_ht_dispatch(const HtDispatchOutputs& got, const ref::HtRankOutput& want,
                          const HtDispatchCheck& how) {
  Verdict v;
  if (got.num_recv_tokens != want.num_recv_tokens)
    v.fail(how.impl + " dispatch: received " + std::to_string(got.num_recv_tokens) + " rows, the reference " +
           std::to_string(want.num_recv_tokens));
  const std::string x = how.impl + " recv_x";
  v.add(compare_bytes(x.c_str(), want.recv_x, got.recv_x));
  if (how.fp8) {
    const std::string scales = how.impl + " recv_x_scales";
    v.add(compare_floats_exact(scales.c_str(), want.recv_scales, got.recv_x_scales));
  }
  if (how.with_topk) {
    const std::string idx = how.impl + " recv_topk_idx";
    const std::string weights = how.impl + " recv_topk_weights";
    v.add(compare_ints_exact(idx.c_str(), want.recv_topk_idx, got.recv_topk_idx));
    v.add(compare_floats_exact(weights.c_str(), want.recv_topk_weights, got.recv_topk_weights));
  }
  return v;
}

Verdict check_ht_combine(const HtCombineOutputs& got, const ExpectedHt& want, bool with_topk_weights,
                         const std::string& impl) {
  Verdict v;
  const std::string x = impl + " combine out";
  v.add(compare_bf16(x.c_str(), want.combine_out, got.x));
  if (with_topk_weights) {
    const std::string weights = impl + " combine topk_weights";
    v.add(compare_floats_close(weights.c_str(), want.combine_topk_weights, got.topk_weights,
                               kCombineWeightRtol, kCombineWeightAtol));
  }
  return v;
}

}  // namespace epcomm::bench
