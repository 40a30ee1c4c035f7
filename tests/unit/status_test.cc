#include <gtest/gtest.h>

#include <cerrno>

#include "runtime/status.h"

namespace tandem {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return InvalidArgument("v=" + std::to_string(v) + " is not positive");
  return v;
}

Result<int> doubled(int v) {
  TANDEM_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check(int v) {
  TANDEM_RETURN_IF_ERROR(parse_positive(v).status());
  return Status::Ok();
}

TEST(Status, CarriesCodeAndMessage) {
  Status s = DataLoss("file.bin: truncated");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.to_string(), "DATA_LOSS: file.bin: truncated");
  EXPECT_EQ(s.with_context("loading").message(), "loading: file.bin: truncated");
  EXPECT_EQ(Status::Ok().to_string(), "OK");
  EXPECT_TRUE(Status::Ok().with_context("x").ok());
}

TEST(Status, MacrosPropagate) {
  EXPECT_EQ(*doubled(4), 8);
  EXPECT_EQ(doubled(-1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(check(1).ok());
  EXPECT_EQ(check(0).message(), "v=0 is not positive");
}

TEST(Status, ErrnoNamesTheCallSite) {
  Status s = errno_status("open x", ENOENT, "/a/b/file.cc", 42);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("open x: No such file or directory (file.cc:42)"), std::string::npos)
      << s.message();
}

TEST(StatusDeathTest, ReadingTheValueOfAnErrorAborts) {
  Result<int> r = InvalidArgument("no");
  EXPECT_DEATH((void)r.value(), "");
}

}  // namespace
}  // namespace tandem
