// Two "hosts": rank 0 in one network namespace, rank 1 in another, joined by
// a veth pair (scripts/netns.sh), UCX pinned to tcp,self on the veth (two
// namespaces share memory, so UCX would otherwise use shared memory). Needs
// root and `ip netns`; skips with the reason otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/unit/bench_test_util.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using testing::Child;
using testing::ChildExit;

class NetnsPair : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "two-namespace tests need root (ip netns); skipped";
    static std::atomic<int> counter{0};
    // Unique per process and test, so parallel test runs never share a pair.
    suffix_ = std::to_string(getpid());  // appended piecewise: g++ 12 warns falsely on "u" + to_string()
    suffix_ += '-';
    suffix_ += std::to_string(counter++);
    const auto r = netns({"up", suffix_});
    if (r.exit_code != 0) GTEST_SKIP() << "no network namespaces here (scripts/netns.sh up failed): " << r.err;
    up_ = true;
  }
  void TearDown() override {
    if (up_) netns({"down", suffix_});
  }

  static testing::CommandResult netns(std::vector<std::string> args) {
    args.insert(args.begin(), testing::source_dir() + "/scripts/netns.sh");
    return testing::run_command(args);
  }
  std::string ns(int rank) const { return (rank == 0 ? "tandem-a-" : "tandem-b-") + suffix_; }

  Child start(int rank, std::vector<std::string> args) const {
    for (const char* a : {"--coordinator", "10.231.0.1:29500", "--ucx-tls", "tcp,self", "--ucx-net-devices"})
      args.push_back(a);
    args.push_back(rank == 0 ? "veth-a" : "veth-b");
    return Child::spawn(testing::bench_rank_argv({"ip", "netns", "exec", ns(rank)}, rank, args));
  }

  std::string suffix_;
  bool up_ = false;
};

TEST_F(NetnsPair, EveryCollectiveIsCorrectAcrossTheVeth) {
  const std::vector<std::string> args = {"--check", "--counts", "0,1,7,4097,300007", "--chunk-bytes", "65536",
                                         "--small-bytes", "4096", "--dtype", "float,bf16,int64", "--redop",
                                         "sum,max", "--iters", "1", "--warmup", "0", "--timeout", "30"};
  Child r0 = start(0, args), r1 = start(1, args);
  const ChildExit e0 = r0.wait(120s), e1 = r1.wait(30s);
  ASSERT_TRUE(e0.exited && e0.code == 0) << testing::describe(e0) << "\n" << r0.err() << r1.err();
  ASSERT_TRUE(e1.exited && e1.code == 0) << testing::describe(e1) << "\n" << r1.err();
  const auto t = testing::read_table(r0.out());
  EXPECT_EQ(t.rows, 3u * (2 * 2 + 3) * 5) << r0.out();
  EXPECT_EQ(t.wrong_rows, 0u) << t.first_wrong;
  // The header names the transports, so a run that left the veth shows it.
  EXPECT_NE(r0.out().find("UCX_TLS=tcp,self"), std::string::npos) << r0.out();
}

const std::vector<std::string> kLongLoop = {"--ops", "all_reduce", "--counts", "262144", "--iters", "1000000",
                                            "--warmup", "0", "--timeout", "3"};

TEST_F(NetnsPair, KilledPeerFailsTheSurvivorByItsDeadline) {
  Child r0 = start(0, kLongLoop), r1 = start(1, kLongLoop);
  ASSERT_TRUE(r0.wait_for_output("# all_reduce", 30s)) << r0.err() << r1.err();
  std::this_thread::sleep_for(300ms);
  r1.kill(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const ChildExit e = r0.wait(30s);
  const double after = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_TRUE(e.exited && e.code == 1) << testing::describe(e) << "\n" << r0.err();
  EXPECT_LT(after, 3.0 + 2.0) << r0.err();
  EXPECT_NE(r0.err().find("rank 0: all_reduce"), std::string::npos) << r0.err();
}

// No RST, no FIN: the peer simply stops answering. Only the deadline can
// tell, and it must, on both sides.
TEST_F(NetnsPair, LinkSetDownFailsBothRanksByTheirDeadline) {
  Child r0 = start(0, kLongLoop), r1 = start(1, kLongLoop);
  ASSERT_TRUE(r0.wait_for_output("# all_reduce", 30s)) << r0.err() << r1.err();
  std::this_thread::sleep_for(300ms);
  Child ip = Child::spawn({"ip", "-n", ns(1), "link", "set", "veth-b", "down"});
  const ChildExit ip_exit = ip.wait(10s);
  ASSERT_TRUE(ip_exit.exited && ip_exit.code == 0) << ip.err();
  const auto down = std::chrono::steady_clock::now();
  const ChildExit e0 = r0.wait(30s), e1 = r1.wait(30s);
  const double after = std::chrono::duration<double>(std::chrono::steady_clock::now() - down).count();
  EXPECT_TRUE(e0.exited && e0.code == 1) << testing::describe(e0) << "\n" << r0.err();
  EXPECT_TRUE(e1.exited && e1.code == 1) << testing::describe(e1) << "\n" << r1.err();
  EXPECT_LT(after, 3.0 + 3.0) << r0.err() << r1.err();
  EXPECT_NE(r0.err().find("rank 0: all_reduce"), std::string::npos) << r0.err();
  EXPECT_NE(r1.err().find("rank 1: all_reduce"), std::string::npos) << r1.err();
}

TEST_F(NetnsPair, PeerThatNeverArrivesFailsRankZeroByItsDeadline) {
  Child r0 = start(0, {"--timeout", "2"});
  const ChildExit e = r0.wait(30s);
  EXPECT_TRUE(e.exited && e.code == 1) << testing::describe(e) << "\n" << r0.err();
  EXPECT_LT(e.seconds, 2.0 + 3.0) << r0.err();
  EXPECT_NE(r0.err().find("rank 1"), std::string::npos) << r0.err();
}

}  // namespace
}  // namespace tandem
