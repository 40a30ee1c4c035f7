// BlockAllocator: the scheduler's book of free KV blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "runtime/paged_kv.h"

namespace tandem {
namespace {

TEST(BlockAllocator, HandsOutEachBlockOnceAndTakesThemBack) {
  BlockAllocator a(5);
  EXPECT_EQ(a.total_blocks(), 5);
  std::vector<int32_t> t1, t2;
  ASSERT_TRUE(a.allocate(2, t1).ok());
  EXPECT_EQ(t1, (std::vector<int32_t>{0, 1}));  // a fresh pool counts up
  ASSERT_TRUE(a.allocate(3, t2).ok());
  std::set<int32_t> all(t1.begin(), t1.end());
  all.insert(t2.begin(), t2.end());
  EXPECT_EQ(all.size(), 5u);
  EXPECT_EQ(a.free_blocks(), 0);
  EXPECT_EQ(a.used_blocks(), 5);
  // Nothing taken when the request cannot be met in full.
  std::vector<int32_t> t3 = {99};
  const Status s = a.allocate(1, t3);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("1 blocks wanted, 0 of 5 free"), std::string::npos) << s.message();
  EXPECT_EQ(t3, std::vector<int32_t>{99});
  a.release(t1);
  EXPECT_TRUE(t1.empty());
  EXPECT_EQ(a.free_blocks(), 2);
  // The most recently freed block comes back first.
  ASSERT_TRUE(a.allocate(1, t3).ok());
  EXPECT_EQ(t3, (std::vector<int32_t>{99, 1}));
  EXPECT_EQ(a.allocate(-1, t3).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(a.allocate(0, t3).ok());
  EXPECT_EQ(t3.size(), 2u);
}

TEST(BlockAllocator, ReleasingABlockTwiceIsABug) {
  BlockAllocator a(3);
  std::vector<int32_t> t;
  ASSERT_TRUE(a.allocate(2, t).ok());
  std::vector<int32_t> copy = t;
  a.release(t);
  EXPECT_DEATH(a.release(copy), "block 0 is not allocated");
  std::vector<int32_t> outside = {7};
  EXPECT_DEATH(a.release(outside), "block 7 is not allocated");
}

TEST(BlockAllocator, BlocksFor) {
  EXPECT_EQ(kv_blocks_for(0, 16), 0);
  EXPECT_EQ(kv_blocks_for(1, 16), 1);
  EXPECT_EQ(kv_blocks_for(16, 16), 1);
  EXPECT_EQ(kv_blocks_for(17, 16), 2);
}

}  // namespace
}  // namespace tandem
