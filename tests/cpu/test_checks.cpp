// Every input check of the host API raises epcomm::Error naming the argument, before any launch.
// These run without a GPU: the checks read only shapes, dtypes, strides and addresses.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "expect_error.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/op_checks.hpp"
#include "core/tensor_checks.hpp"

namespace epcomm {
namespace {

using test::expect_arg_error;

// Fake device addresses: the checks never dereference them.
void* fake(std::uintptr_t address = 0x10000) {
  return reinterpret_cast<void*>(address);
}

TEST(TensorChecks, DtypeShapeContiguityAlignment) {
  const Tensor t = Tensor::contiguous(fake(), DType::kI64, {4, 8});
  EXPECT_NO_THROW(checks::expect_dtype(t, "topk_idx", {DType::kI64, DType::kI32}));
  expect_arg_error([&] { checks::expect_dtype(t, "topk_idx", {DType::kF32}); },
                   "topk_idx: expected dtype float32, got int64");
  expect_arg_error(
      [&] {
        checks::expect_shape(t, "topk_idx", {4, 7});
      },
      "expected shape [4, 7], got [4, 8] int64");
  expect_arg_error([&] { checks::expect_shape(t, "topk_idx", {4}); }, "topk_idx");
  EXPECT_NO_THROW(checks::expect_shape(t, "topk_idx", {checks::kAny, 8}));
  const Tensor col_major = Tensor::strided(fake(), DType::kF32, {4, 8}, {1, 4});
  expect_arg_error([&] { checks::expect_contiguous(col_major, "x"); }, "x: expected a contiguous tensor");
  const Tensor misaligned = Tensor::contiguous(fake(0x10004), DType::kBF16, {2, 64});
  expect_arg_error([&] { checks::expect_aligned(misaligned, "x", 16); },
                   "x: expected data aligned to 16 bytes");
  expect_arg_error([&] { checks::expect_defined(Tensor{}, "bias0"); }, "bias0: expected a tensor");
}

TEST(OpChecks, LayoutArguments) {
  const Tensor topk = Tensor::contiguous(fake(), DType::kI64, {16, 8});
  EXPECT_NO_THROW(checks::check_layout_args(topk, 256, 2));
  expect_arg_error([&] { checks::check_layout_args(topk, 255, 2); },
                   "num_experts: expected a multiple of the number of ranks (2), got 255");
  expect_arg_error([&] { checks::check_layout_args(topk, 0, 2); }, "num_experts");
  const Tensor wide = Tensor::contiguous(fake(), DType::kI64, {16, 33});
  expect_arg_error([&] { checks::check_layout_args(wide, 256, 2); }, "topk_idx: expected 1 to 32 columns");
  const Tensor floats = Tensor::contiguous(fake(), DType::kF32, {16, 8});
  expect_arg_error([&] { checks::check_layout_args(floats, 256, 2); },
                   "topk_idx: expected dtype int64 or int32");
  const Tensor strided = Tensor::strided(fake(), DType::kI64, {16, 8}, {1, 16});
  expect_arg_error([&] { checks::check_layout_args(strided, 256, 2); },
                   "topk_idx: expected a contiguous tensor");
}

TEST(OpChecks, HiddenMustFillWhole16ByteVectors) {
  EXPECT_NO_THROW(checks::check_hidden(7168, DType::kBF16, "x"));
  EXPECT_NO_THROW(checks::check_hidden(16, DType::kFP8E4M3, "x"));
  expect_arg_error([] { checks::check_hidden(7164, DType::kBF16, "x"); },
                   "multiple of 16 bytes, got hidden 7164");
  expect_arg_error([] { checks::check_hidden(8, DType::kFP8E4M3, "x"); }, "x:");
}

TEST(OpChecks, HiddenHasAnUpperBound) {
  EXPECT_NO_THROW(checks::check_hidden(checks::kMaxHidden, DType::kBF16, "x"));
  expect_arg_error([] { checks::check_hidden(checks::kMaxHidden + 8, DType::kBF16, "x"); },
                   "x: expected a hidden size of 1 to 131072, got 131080");
  // Catches the row size overflowing before the bound was checked (found by fuzz_checks).
  expect_arg_error([] { checks::check_hidden(std::int64_t{1} << 62, DType::kF32, "x"); },
                   "x: expected a hidden size of 1 to 131072");
}

// Views the fuzzer found: more dimensions than a Tensor holds, negative sizes, sizes whose byte
// count overflows, strides that wrap the address space. Each is refused by name, never read past.
TEST(TensorChecks, MalformedViewsAreRefusedByName) {
  Tensor five = Tensor::contiguous(fake(), DType::kBF16, {4, 4, 1, 1});
  five.ndim = 5;
  EXPECT_EQ(five.numel(), 16);  // reads at most kMaxDims dimensions
  expect_arg_error([&] { checks::expect_shape(five, "x", {checks::kAny, checks::kAny}); },
                   "x: expected at most 4 dimensions, got 5");
  const Tensor negative = Tensor::contiguous(fake(), DType::kBF16, {-3, 128});
  expect_arg_error([&] { checks::expect_dtype(negative, "x", {DType::kBF16}); },
                   "x: expected non-negative sizes, got -3 in dimension 0");
  const Tensor huge = Tensor::contiguous(fake(), DType::kF32, {std::int64_t{1} << 40, std::int64_t{1} << 40});
  EXPECT_FALSE(huge.is_contiguous() && huge.numel() < 0);
  expect_arg_error([&] { checks::expect_shape(huge, "x", {checks::kAny, checks::kAny}); },
                   "x: its size overflows 64-bit byte counts");
}


// A valid dispatch on R ranks: BF16 x [T, 7168], top-8 of 16 experts per rank.
struct DispatchFixture {
  int R = 4;
  std::int64_t T = 32, hidden = 7168;
  DispatchArgs args;
  DispatchFixture() {
    args.x = Tensor::contiguous(fake(), DType::kBF16, {T, hidden});
    args.topk_idx = Tensor::contiguous(fake(), DType::kI64, {T, 8});
    args.topk_weights = Tensor::contiguous(fake(), DType::kF32, {T, 8});
    args.num_tokens_per_rank = Tensor::contiguous(fake(), DType::kI32, {R});
    args.is_token_in_rank = Tensor::contiguous(fake(), DType::kBool, {T, R});
    args.num_tokens_per_expert = Tensor::contiguous(fake(), DType::kI32, {16 * R});
  }
};

TEST(OpChecks, DispatchAcceptsValidArguments) {
  DispatchFixture f;
  const checks::DispatchShape shape = checks::check_dispatch_args(f.args, f.R);
  EXPECT_EQ(shape.row_bytes, 7168 * 2);
  EXPECT_EQ(shape.num_topk, 8);
  EXPECT_EQ(shape.num_experts, 64);
  f.args.x = Tensor::contiguous(fake(), DType::kFP8E4M3, {f.T, f.hidden});
  f.args.x_scales = Tensor::strided(fake(), DType::kF32, {f.T, 56}, {1, f.T});  // column-major
  EXPECT_EQ(checks::check_dispatch_args(f.args, f.R).num_scales, 56);
}

TEST(OpChecks, DispatchRejectsEachBadArgument) {
  DispatchFixture f;
  {
    DispatchArgs a = f.args;
    a.x = Tensor::contiguous(fake(), DType::kF32, {f.T, f.hidden});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                     "x: expected dtype bfloat16 or float8_e4m3");
  }
  {
    DispatchArgs a = f.args;
    a.x = Tensor::contiguous(fake(), DType::kBF16, {f.T, 100});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "x: expected a hidden size");
  }
  {
    DispatchArgs a = f.args;
    a.x = Tensor::strided(fake(), DType::kBF16, {f.T, f.hidden}, {1, f.T});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "x: expected a contiguous tensor");
  }
  {
    DispatchArgs a = f.args;
    a.x = Tensor::contiguous(fake(), DType::kFP8E4M3, {f.T, f.hidden});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "x_scales: expected a tensor");
    a.x_scales = Tensor::contiguous(fake(), DType::kF32, {f.T, 55});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "x_scales: expected shape [32, 56]");
  }
  {
    DispatchArgs a = f.args;
    a.x_scales = Tensor::contiguous(fake(), DType::kF32, {f.T, 56});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "x_scales: only FP8 x carries scales");
  }
  {
    DispatchArgs a = f.args;
    a.topk_idx = Tensor::contiguous(fake(), DType::kI64, {f.T + 1, 8});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "topk_idx: expected shape [32, *]");
  }
  {
    DispatchArgs a = f.args;
    a.topk_weights = Tensor{};
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "topk_weights: expected a tensor");
  }
  {
    DispatchArgs a = f.args;
    a.topk_idx = Tensor{};
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "topk_weights: given without topk_idx");
  }
  {
    DispatchArgs a = f.args;
    a.is_token_in_rank = Tensor::contiguous(fake(), DType::kBool, {f.T, f.R + 1});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                     "is_token_in_rank: expected shape [32, 4]");
  }
  {
    DispatchArgs a = f.args;
    a.num_tokens_per_expert = Tensor::contiguous(fake(), DType::kI32, {63});
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                     "num_experts: expected a multiple of the number of ranks (4), got 63");
  }
  {
    DispatchArgs a = f.args;
    a.expert_alignment = 0;
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "expert_alignment");
    a.expert_alignment = 1;
    a.num_worst_tokens = -5;
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "num_worst_tokens");
  }
  {
    DispatchArgs a = f.args;
    DispatchHandle h;
    a.handle = &h;
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                     "handle: expected the handle of a previous dispatch");
    DispatchHandle::State st;
    st.num_ranks = f.R;
    st.num_tokens = f.T + 3;
    h = HandleAccess::make(std::make_shared<const DispatchHandle::State>(st));
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                     "x: the handle routes 35 tokens, x has 32");
    st.num_ranks = 8;
    h = HandleAccess::make(std::make_shared<const DispatchHandle::State>(st));
    expect_arg_error([&] { checks::check_dispatch_args(a, f.R); }, "handle: made for 8 ranks");
  }
}

// Without the three layout tensors dispatch derives them from topk_idx: it needs num_experts.
TEST(OpChecks, DispatchDerivesTheLayoutFromTopkIdxAndNumExperts) {
  DispatchFixture f;
  DispatchArgs a = f.args;
  a.num_tokens_per_rank = Tensor{};
  a.is_token_in_rank = Tensor{};
  a.num_tokens_per_expert = Tensor{};
  expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                   "num_experts: expected 1 to 2^30 when the layout tensors are not given, got 0");
  a.num_experts = 62;
  expect_arg_error([&] { checks::check_dispatch_args(a, f.R); },
                   "num_experts: expected a multiple of the number of ranks (4), got 62");
  a.num_experts = 64;
  const checks::DispatchShape shape = checks::check_dispatch_args(a, f.R);
  EXPECT_TRUE(shape.derive_layout);
  EXPECT_EQ(shape.num_experts, 64);
  EXPECT_EQ(shape.num_topk, 8);
  EXPECT_FALSE(checks::check_dispatch_args(f.args, f.R).derive_layout);
  {
    DispatchArgs b = a;
    b.topk_idx = Tensor{};
    b.topk_weights = Tensor{};
    expect_arg_error([&] { checks::check_dispatch_args(b, f.R); }, "topk_idx: required without a handle");
  }
  {
    DispatchArgs b = a;  // one layout tensor of three
    b.is_token_in_rank = f.args.is_token_in_rank;
    expect_arg_error([&] { checks::check_dispatch_args(b, f.R); }, "num_tokens_per_rank: expected a tensor");
  }
  {
    DispatchArgs b = f.args;  // the layout tensors, and a num_experts that disagrees with them
    b.num_experts = 128;
    expect_arg_error([&] { checks::check_dispatch_args(b, f.R); },
                     "num_experts: 128, but num_tokens_per_expert has 64 entries");
  }
}

TEST(OpChecks, CombineRejectsEachBadArgument) {
  DispatchHandle::State st;
  st.num_ranks = 2;
  st.num_tokens = 10;
  st.num_rows = 17;
  const DispatchHandle h = HandleAccess::make(std::make_shared<const DispatchHandle::State>(st));
  CombineArgs a;
  a.x = Tensor::contiguous(fake(), DType::kBF16, {17, 2048});
  expect_arg_error([&] { checks::check_combine_args(a, 2); }, "handle: combine needs the handle");
  a.handle = &h;
  EXPECT_EQ(checks::check_combine_args(a, 2).hidden, 2048);
  a.x = Tensor::contiguous(fake(), DType::kBF16, {16, 2048});
  expect_arg_error([&] { checks::check_combine_args(a, 2); }, "x: expected shape [17, *]");
  a.x = Tensor::contiguous(fake(), DType::kFP8E4M3, {17, 2048});
  expect_arg_error([&] { checks::check_combine_args(a, 2); }, "x: expected dtype bfloat16");
  a.x = Tensor::contiguous(fake(), DType::kBF16, {17, 2048});
  a.bias1 = Tensor::contiguous(fake(), DType::kBF16, {10, 1024});
  expect_arg_error([&] { checks::check_combine_args(a, 2); }, "bias1: expected shape [10, 2048]");
  a.bias1 = Tensor{};
  a.topk_weights = Tensor::contiguous(fake(), DType::kF32, {17, 40});
  expect_arg_error([&] { checks::check_combine_args(a, 2); }, "topk_weights: expected 1 to 32 columns");
}

TEST(OpChecks, InputsInTheRegionAreRefused) {
  // A region of 1 MiB at 0x100000; a 4096-byte BF16 row is 2048 values.
  void* region = fake(0x100000);
  const std::size_t bytes = 1 << 20;
  CombineArgs c;
  c.x = Tensor::contiguous(fake(0x100000 + 4096), DType::kBF16, {4, 2048});  // a zero-copy output
  expect_arg_error([&] { checks::check_inputs_outside_region(c, region, bytes); },
                   "x: lies in this Buffer's NVLink region");
  c.x = Tensor::contiguous(fake(0x100000 - 4 * 4096), DType::kBF16, {4, 2048});  // ends where it starts
  EXPECT_NO_THROW(checks::check_inputs_outside_region(c, region, bytes));
  c.x = Tensor::contiguous(fake(0x100000 - 4 * 4096), DType::kBF16, {5, 2048});  // one row into it
  expect_arg_error([&] { checks::check_inputs_outside_region(c, region, bytes); }, "x: lies in");
  c.x = Tensor::contiguous(fake(0x100000 + bytes), DType::kBF16, {4, 2048});  // right after it
  EXPECT_NO_THROW(checks::check_inputs_outside_region(c, region, bytes));
  c.bias0 = Tensor::contiguous(fake(0x100000 + bytes - 2), DType::kBF16, {1, 8});  // its last bytes
  expect_arg_error([&] { checks::check_inputs_outside_region(c, region, bytes); }, "bias0: lies in");

  DispatchArgs d;
  d.x = Tensor::contiguous(fake(0x10), DType::kFP8E4M3, {4, 2048});
  // Column-major scales whose last column reaches into the region.
  d.x_scales = Tensor::strided(fake(0x100000 - 64), DType::kF32, {32, 16}, {1, 32});
  expect_arg_error([&] { checks::check_inputs_outside_region(d, region, bytes); }, "x_scales: lies in");
  d.x_scales = Tensor::strided(fake(0x100000 - 2048), DType::kF32, {32, 16}, {1, 32});  // 2048 bytes
  EXPECT_NO_THROW(checks::check_inputs_outside_region(d, region, bytes));
}

// A low-latency Buffer's workspace holds its low-latency state: dispatch and combine are refused
// there with kUnsupported naming the call, not run over that state.
TEST(OpChecks, HighThroughputCallsRefusedOnALowLatencyBuffer) {
  EXPECT_NO_THROW(checks::require_high_throughput_buffer(false, "dispatch"));
  try {
    checks::require_high_throughput_buffer(true, "combine");
    FAIL() << "expected epcomm::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    EXPECT_NE(e.message().find("combine: this Buffer was made for low-latency mode"), std::string::npos);
  }
}

}  // namespace
}  // namespace epcomm
