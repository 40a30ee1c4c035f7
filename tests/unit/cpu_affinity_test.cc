// The CPU list syntax against hand-written sets, and pinning against what
// the kernel reports back (sched_getaffinity) from this process and from a
// thread it started before the pin.
#include "runtime/cpu_affinity.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tandem {
namespace {

TEST(CpuAffinity, ParsesListsAsTasksetWritesThem) {
  EXPECT_EQ(*parse_cpu_list("0"), (std::vector<int>{0}));
  EXPECT_EQ(*parse_cpu_list("0-3,8,10-11"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(*parse_cpu_list("5,1-2,2"), (std::vector<int>{1, 2, 5}));
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(format_cpu_list({}), "");
  for (const char* bad : {"", "a", "1,", ",1", "3-1", "1-", "-1", "1 2", "0x1", "4096", "99999999999"}) {
    auto r = parse_cpu_list(bad);
    ASSERT_FALSE(r.ok()) << '"' << bad << '"';
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(parse_cpu_list("3-1").status().message().find("backwards"), std::string::npos);
}

TEST(CpuAffinity, PinsEveryThreadOfTheProcessAndRefusesCpusItCannotUse) {
  const std::vector<int> before = allowed_cpus();
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(usable_cpu_count(), static_cast<int>(before.size()));
  // A thread that exists before the pin must be moved too.
  std::atomic<bool> pinned{false};
  std::vector<int> seen_by_thread;
  std::thread other([&] {
    while (!pinned.load()) std::this_thread::yield();
    seen_by_thread = allowed_cpus();
  });
  const std::vector<int> one = {before.back()};
  Status s = pin_process_to_cpus(one);
  pinned = true;
  other.join();
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(allowed_cpus(), one);
  EXPECT_EQ(seen_by_thread, one);
  EXPECT_EQ(usable_cpu_count(), 1);
  std::vector<int> later;
  std::thread([&] { later = allowed_cpus(); }).join();
  EXPECT_EQ(later, one);

  Status missing = pin_process_to_cpus({kMaxCpu});
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find(std::to_string(kMaxCpu)), std::string::npos) << missing.message();
  EXPECT_EQ(allowed_cpus(), one);  // a refused pin changes nothing
  EXPECT_EQ(pin_process_to_cpus({}).code(), StatusCode::kInvalidArgument);

  ASSERT_TRUE(pin_process_to_cpus(before).ok());  // the other tests get their CPUs back
  EXPECT_EQ(allowed_cpus(), before);
}

}  // namespace
}  // namespace tandem
