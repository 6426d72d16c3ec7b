// The call signature every rank publishes beside its counts (core/call_signature.hpp): its
// packing, the comparison the kernels run, and the message a mismatch becomes.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/call_signature.hpp"
#include "core/device_status.hpp"
#include "core/status_message.hpp"

namespace epcomm {
namespace {

SignatureFields ht_fields() {
  return {.op = static_cast<std::int32_t>(OpId::kDispatch),
          .hidden = 7168,
          .num_topk = 8,
          .num_blocks = 24,
          .max_tokens = 0,
          .num_experts = 256,
          .flags = kSigFp8};
}

TEST(CallSignature, PacksEveryFieldInItsPlaceAndLeavesTheSpareWordZero) {
  const CallSignature s = make_signature(ht_fields());
  EXPECT_EQ(s.get(SigField::kOp), static_cast<std::int32_t>(OpId::kDispatch));
  EXPECT_EQ(s.get(SigField::kHidden), 7168);
  EXPECT_EQ(s.get(SigField::kNumTopk), 8);
  EXPECT_EQ(s.get(SigField::kNumBlocks), 24);
  EXPECT_EQ(s.get(SigField::kMaxTokens), 0);
  EXPECT_EQ(s.get(SigField::kNumExperts), 256);
  EXPECT_EQ(s.get(SigField::kFlags), kSigFp8);
  // The stored order is the wire format peers read: field i at word i.
  EXPECT_EQ(s.field[1], 7168);
  EXPECT_EQ(s.field[5], 256);
  EXPECT_EQ(s.field[7], 0);
}

TEST(CallSignature, EqualCallsAgree) {
  EXPECT_EQ(first_difference(make_signature(ht_fields()), make_signature(ht_fields())), -1);
}

TEST(CallSignature, NamesTheFirstFieldThatDiffers) {
  const CallSignature here = make_signature(ht_fields());
  for (int f = 0; f < kSigFields; ++f) {
    CallSignature peer = here;
    peer.field[f] += 1;
    EXPECT_EQ(first_difference(here, peer), f) << "field " << f;
  }
  SignatureFields two = ht_fields();
  two.num_topk = 4;
  two.num_blocks = 20;
  EXPECT_EQ(first_difference(here, make_signature(two)), static_cast<int>(SigField::kNumTopk));
}

// A cached call leaves the fields it does not use at zero (num_experts, num_worst_tokens): that
// the call is cached is the difference named, not those zeros; the operation still comes first.
TEST(CallSignature, CachedBeforeTheFieldsItLeavesZero) {
  SignatureFields fresh = ht_fields();
  fresh.max_tokens = 512;
  SignatureFields cached = fresh;
  cached.max_tokens = 0;
  cached.num_experts = 0;
  cached.flags |= kSigCached;
  EXPECT_EQ(first_difference(make_signature(fresh), make_signature(cached)),
            static_cast<int>(SigField::kFlags));
  cached.op = static_cast<std::int32_t>(OpId::kCombine);
  EXPECT_EQ(first_difference(make_signature(fresh), make_signature(cached)), static_cast<int>(SigField::kOp));
}

DeviceStatus mismatch(SigField field, std::int64_t here, std::int64_t peer) {
  DeviceStatus s{};
  s.code = static_cast<std::int32_t>(StatusCode::kPeerMismatch);
  s.op = static_cast<std::int32_t>(OpId::kDispatch);
  s.rank = 0;
  s.peer = 1;
  s.detail = static_cast<std::int32_t>(field);
  s.expected = here;
  s.observed = peer;
  return s;
}

TEST(CallSignature, MismatchMessageNamesFieldBothValuesAndThePeer) {
  const Error e = status_error(mismatch(SigField::kHidden, 7168, 4096), 5000, "f.cpp", 3);
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
  const std::string m = e.message();
  EXPECT_NE(m.find("peer mismatch"), std::string::npos) << m;
  EXPECT_NE(m.find("rank 0: dispatch"), std::string::npos) << m;
  EXPECT_NE(m.find("hidden is 7168 here but 4096 at rank 1"), std::string::npos) << m;
  EXPECT_EQ(m.find("timed out"), std::string::npos) << m;
}

TEST(CallSignature, MismatchOfFlagsAndOperationIsSpelledOut) {
  const std::string flags = status_error(mismatch(SigField::kFlags, kSigFp8, 0), 5000, "f.cpp", 3).message();
  EXPECT_NE(
      flags.find("use_fp8=1 round_scale=0 use_ue8m0=0 cached=0 pull=0 copy_engine=0 here but use_fp8=0"),
      std::string::npos)
      << flags;
  const std::string schedule =
      status_error(mismatch(SigField::kFlags, kSigPull, kSigCopyEngine), 5000, "f.cpp", 3).message();
  EXPECT_NE(schedule.find("pull=1 copy_engine=0 here but use_fp8=0 round_scale=0 use_ue8m0=0 cached=0 pull=0 "
                          "copy_engine=1 at rank 1"),
            std::string::npos)
      << schedule;
  const std::string op = status_error(mismatch(SigField::kOp, static_cast<std::int32_t>(OpId::kLlDispatch),
                                               static_cast<std::int32_t>(OpId::kLlCombine)),
                                      5000, "f.cpp", 3)
                             .message();
  EXPECT_NE(op.find("operation is low-latency dispatch here but low-latency combine at rank 1"),
            std::string::npos)
      << op;
  // A barrier whose peer came from another operation (its call record is not of this epoch).
  const std::string other =
      status_error(mismatch(SigField::kOp, static_cast<std::int32_t>(OpId::kCombine), 0), 5000, "f.cpp", 3)
          .message();
  EXPECT_NE(other.find("operation is combine here but unknown operation at rank 1"), std::string::npos)
      << other;
  const std::string sms = status_error(mismatch(SigField::kNumBlocks, 24, 20), 5000, "f.cpp", 3).message();
  EXPECT_NE(sms.find("num_sms (blocks) is 24 here but 20 at rank 1"), std::string::npos) << sms;
}

// A multi-domain rank that stopped its exchange (a peer in another domain made another call) tells
// its domain's ranks so; their error says that, not that it made a different call.
TEST(CallSignature, StoppedPeerIsNamedAsStopped) {
  const std::string m =
      status_error(mismatch(SigField::kOp, static_cast<std::int32_t>(OpId::kDispatch), kSigOpStopped), 5000,
                   "f.cpp", 3)
          .message();
  EXPECT_NE(
      m.find("rank 0: dispatch: rank 1 stopped its count exchange: a rank of another NVLink domain made a "
             "different call from it"),
      std::string::npos)
      << m;
  EXPECT_EQ(m.find("every rank must pass the same"), std::string::npos) << m;
  EXPECT_NE(describe_signature_value(SigField::kOp, kSigOpStopped).find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace epcomm
