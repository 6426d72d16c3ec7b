// The layout launchers' divisions by the shape (src/intranode/layout_args.hpp, with_divisors): the
// kernels divide by these instead of dividing per thread, so a wrong one would route every token
// to a wrong rank.
#include <gtest/gtest.h>

#include "intranode/layout_args.hpp"

namespace epcomm {
namespace {

TEST(LayoutArgs, WithDivisorsDividesByTheShape) {
  struct Shape {
    int ranks, per_domain, experts;
  };
  for (const Shape& s : {Shape{1, 1, 8}, Shape{8, 8, 256}, Shape{8, 4, 64}, Shape{64, 8, 256}, Shape{72, 8, 288},
                         Shape{3, 1, 9}}) {
    LayoutArgs in;
    in.num_ranks = s.ranks;
    in.ranks_per_domain = s.per_domain;
    in.num_experts = s.experts;
    const LayoutArgs out = with_divisors(in);
    EXPECT_EQ(out.num_domains, s.ranks / s.per_domain);
    EXPECT_EQ(out.rank_of_expert.divisor(), s.experts / s.ranks);
    EXPECT_EQ(out.domain_of_rank.divisor(), s.per_domain);
    // Every expert's rank and every rank's domain, as the kernels take them.
    for (int e = 0; e < s.experts; ++e) {
      const int r = out.rank_of_expert.divide(e);
      EXPECT_EQ(r, e / (s.experts / s.ranks)) << "expert " << e;
      EXPECT_EQ(out.domain_of_rank.divide(r), r / s.per_domain) << "rank " << r;
    }
    // The other fields pass through.
    EXPECT_EQ(out.num_ranks, s.ranks);
    EXPECT_EQ(out.num_experts, s.experts);
  }
}

}  // namespace
}  // namespace epcomm
