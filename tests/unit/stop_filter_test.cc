// StopFilter on its own: text is released as soon as no stop string can
// start in it, cut where one appears, and held-back text comes out at the end.
#include <gtest/gtest.h>

#include "runtime/stop_filter.h"

namespace tandem {
namespace {

TEST(StopFilter, PassesTextThroughWithoutStopStrings) {
  StopFilter f({"", ""});
  EXPECT_EQ(f.push("abc"), "abc");
  EXPECT_FALSE(f.holding());
  EXPECT_EQ(f.flush(), "");
  EXPECT_FALSE(f.stopped());
}

TEST(StopFilter, HoldsBackAPossibleStartAndCutsAcrossPushes) {
  StopFilter f({"END", "xyz"});
  EXPECT_EQ(f.push("hello E"), "hello ");  // "E" could start END
  EXPECT_TRUE(f.holding());
  EXPECT_EQ(f.push("x"), "E");  // "Ex" starts neither; "x" could start xyz
  EXPECT_EQ(f.push("yz and more"), "");
  EXPECT_TRUE(f.stopped());
}

TEST(StopFilter, TheEarliestStopStringWins) {
  StopFilter f({"cd", "b"});
  EXPECT_EQ(f.push("abcd"), "a");
  EXPECT_TRUE(f.stopped());
}

TEST(StopFilter, HeldBackTextThatIsNoStopStringIsFlushed) {
  StopFilter f({"the end"});
  EXPECT_EQ(f.push("and then the"), "and then ");
  EXPECT_EQ(f.push(" e"), "");
  EXPECT_EQ(f.flush(), "the e");
  EXPECT_FALSE(f.stopped());
  EXPECT_FALSE(f.holding());
}

}  // namespace
}  // namespace tandem
