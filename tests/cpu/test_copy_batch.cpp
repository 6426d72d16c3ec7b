// CopyBatch's bookkeeping (no GPU: an empty batch queues nothing).
#include <gtest/gtest.h>

#include "intranode/copy_batch.hpp"

namespace epcomm {
namespace {

TEST(CopyBatch, DropsEmptyCopiesAndAnEmptyFlushQueuesNothing) {
  CopyBatch batch;
  char a[8] = {}, b[8] = {};
  batch.add(a, b, 0);
  EXPECT_EQ(batch.size(), 0u);
  batch.flush(nullptr);  // nothing to queue: no CUDA call is made
  batch.add(a, b, sizeof a);
  batch.add(b, a, 4);
  EXPECT_EQ(batch.size(), 2u);
}

}  // namespace
}  // namespace epcomm
