// The high-throughput cases both GPU programs run (test_ht.cpp within one NVLink domain,
// test_md.cpp across domains) with the same options and seeds (a table of named cases, and the
// cases of an SM-budget sweep), and what runs a table: a suite sharing one Buffer, each case
// registered as a plain test of it. The names stay those of TEST_F (Ht.Bf16, Md.Bf16), so gtest
// filters naming cases (tools/device_session.sh) keep working.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "epcomm/buffer.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "ht_run.hpp"

namespace epcomm::test {

// One row of a case table: the test's name, the case's data and how it is run.
struct NamedHtCase {
  std::string name;
  HtCase c;
  HtMode mode{};
};

// The cases of both programs; each adds its own (test_ht.cpp: WorstCaseFp8, PreviousEvent;
// test_md.cpp: WorstCaseFp8ZeroCopy, ZeroCopyBf16, LargestHidden). Seeds are unique per program.
inline std::vector<NamedHtCase> shared_ht_cases() {
  return {
      {"Bf16", {.seed = 1}},
      {"Fp8ColumnMajorScales", {.fp8 = true, .seed = 2}},
      {"Fp8RowMajorScalesInt32Index", {.fp8 = true, .idx32 = true, .col_major_scales = false, .seed = 3}},
      {"WithoutTopk", {.with_topk = false, .seed = 4}},
      {"SkewedRoutingWithEmptySlots", {.num_tokens = 1024, .skew = true, .seed = 5}},
      {"RankWithNoTokens", {.num_tokens = 300, .tokens_on_rank1 = 0, .seed = 6}},
      {"ExpertAlignment", {.expert_alignment = 128, .seed = 7}},
      {"WorstCaseBf16", {.worst_case = true, .seed = 8}},
      {"AsyncFinish", {.seed = 10}, {.async_finish = true}},
      {"NoBiases", {.biases = false, .seed = 12}},
      {"TopkUpTo32", {.num_tokens = 256, .num_topk = 32, .experts_per_rank = 64, .seed = 13}},
  };
}

// The SM budget a parameter names: itself, or with 0 every SM of this rank's GPU.
inline int sm_budget(int sms) {
  if (sms == 0)
    EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, gpu_env().device));
  return sms;
}

// The cases both programs run at each SM budget: skewed BF16 routing, then worst-case FP8. Small
// budgets make rings much shorter than a channel: senders wait for credits.
inline std::vector<HtCase> budget_cases(int num_sms) {
  return {{.num_tokens = 1500, .skew = true, .num_sms = num_sms, .seed = 30},
          {.num_tokens = 1500, .fp8 = true, .num_sms = num_sms, .worst_case = true, .seed = 31}};
}

// A suite whose cases share one Buffer made with `options()`: built before the first case (a
// Buffer is costly: regions, IPC mappings, NVSHMEM) and destroyed after the last.
template <BufferOptions (*options)()>
class SharedBufferSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { buffer_ = new Buffer(gpu_env().bootstrap, options()); }
  static void TearDownTestSuite() {
    delete buffer_;
    buffer_ = nullptr;
  }
  static inline Buffer* buffer_ = nullptr;
};

// A case of a table as a test of `Suite`, which runs it with its static run(case, mode).
template <typename Suite>
class TableCase : public Suite {
 public:
  explicit TableCase(NamedHtCase named) : named_(std::move(named)) {}
  void TestBody() override { Suite::run(named_.c, named_.mode); }

 private:
  NamedHtCase named_;
};

// Registers every case of `cases` as test `suite_name`.<name> of `Suite`, in order, beside the
// suite's TEST_F tests, declared at `file`:`line` (the factory returns a `Suite*`: gtest requires one fixture
// type a suite). Call before RUN_ALL_TESTS (a namespace-scope initializer does); returns true for that use.
// A program may call it more than once for a suite: the cases follow in order of the calls.
template <typename Suite>
bool register_cases(const char* suite_name, const std::vector<NamedHtCase>& cases, const char* file,
                    int line) {
  for (const NamedHtCase& named : cases)
    ::testing::RegisterTest(suite_name, named.name.c_str(), nullptr, nullptr, file, line,
                            [named]() -> Suite* { return new TableCase<Suite>(named); });
  return true;
}

}  // namespace epcomm::test
