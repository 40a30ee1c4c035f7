// The whole stack over UCX as a user runs it: `tandem bench collectives`
// processes on 127.0.0.1 with UCX pinned to tcp,self. Correctness of every
// collective, dtype and reduction for awkward sizes, and the faults a
// survivor must turn into an error by its deadline: a killed peer, a peer
// that never arrives, a peer speaking another bootstrap protocol.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "tests/unit/bench_test_util.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using testing::Child;
using testing::ChildExit;

// 0, 1 and 7 elements, 4097 (past the 4 KiB small-message cut for floats and
// not a multiple of anything), and 300007: many 64 KiB chunks and a ragged tail.
const std::vector<std::string> kCheckArgs = {"--ucx-tls", "tcp,self", "--check", "--counts", "0,1,7,4097,300007",
                                             "--chunk-bytes", "65536", "--small-bytes", "4096", "--iters", "1",
                                             "--warmup", "0", "--timeout", "30"};

testing::CommandResult spawn_local(int ranks, std::vector<std::string> args) {
  std::vector<std::string> argv = {testing::tandem_binary(), "bench", "collectives", "--spawn-local",
                                   std::to_string(ranks)};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::run_command(argv);
}

TEST(UcxBench, EveryCollectiveDtypeAndOpIsCorrectOverTcp) {
  auto args = kCheckArgs;
  for (const char* a : {"--dtype", "float,half,bf16,int32,int64", "--redop", "sum,max,min"}) args.push_back(a);
  const auto r = spawn_local(2, args);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto t = testing::read_table(r.out);
  // 5 dtypes x (2 reducing collectives x 3 ops + 3 others) x 5 counts
  EXPECT_EQ(t.rows, 5u * (2 * 3 + 3) * 5) << r.out;
  EXPECT_EQ(t.wrong_rows, 0u) << t.first_wrong;
}

TEST(UcxBench, ThreeRanksRingIsCorrectOverTcp) {
  auto args = kCheckArgs;
  for (const char* a : {"--dtype", "float,int64", "--redop", "sum,min"}) args.push_back(a);
  const auto r = spawn_local(3, args);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto t = testing::read_table(r.out);
  EXPECT_EQ(t.rows, 2u * (2 * 2 + 3) * 5) << r.out;
  EXPECT_EQ(t.wrong_rows, 0u) << t.first_wrong;
}

std::vector<std::string> loopback(int port, std::vector<std::string> args) {
  for (const std::string& a : {std::string("--coordinator"), "127.0.0.1:" + std::to_string(port),
                               std::string("--ucx-tls"), std::string("tcp,self")})
    args.push_back(a);
  return args;
}

// The survivor exits by itself, with an error, within `limit` seconds.
void expect_clean_failure(Child& c, const ChildExit& e, double limit, const std::string& text) {
  EXPECT_TRUE(e.exited && e.code == 1) << testing::describe(e) << "\n" << c.err();
  EXPECT_LT(e.seconds, limit) << c.err();
  EXPECT_NE(c.err().find(text), std::string::npos) << c.err();
}

// A long all_reduce loop, each call bounded by 5 s.
const std::vector<std::string> kLongLoop = {"--ops", "all_reduce", "--counts", "262144", "--iters", "1000000",
                                            "--warmup", "0", "--timeout", "5"};

TEST(UcxBench, KilledPeerMidCollectiveFailsTheSurvivorByItsDeadline) {
  const int port = testing::free_local_port();
  Child r0 = Child::spawn(testing::bench_rank_argv({}, 0, loopback(port, kLongLoop)));
  Child r1 = Child::spawn(testing::bench_rank_argv({}, 1, loopback(port, kLongLoop)));
  ASSERT_TRUE(r0.wait_for_output("# all_reduce", 30s)) << r0.err() << r1.err();
  std::this_thread::sleep_for(300ms);  // well inside the loop
  r1.kill(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const ChildExit e = r0.wait(30s);
  const double after_kill = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_TRUE(e.exited && e.code == 1) << testing::describe(e) << "\n" << r0.err();
  EXPECT_LT(after_kill, 5.0 + 2.0) << r0.err();  // the call's deadline, plus teardown
  EXPECT_NE(r0.err().find("rank 0: all_reduce"), std::string::npos) << r0.err();
  EXPECT_EQ(r1.wait(5s).signal, SIGKILL);
}

TEST(UcxBench, PeerThatNeverArrivesFailsRankZeroByItsDeadline) {
  const int port = testing::free_local_port();
  Child r0 = Child::spawn(testing::bench_rank_argv({}, 0, loopback(port, {"--timeout", "2"})));
  expect_clean_failure(r0, r0.wait(30s), 2.0 + 3.0, "rank 1");
}

TEST(UcxBench, CoordinatorThatNeverArrivesFailsRankOneByItsDeadline) {
  const int port = testing::free_local_port();
  Child r1 = Child::spawn(testing::bench_rank_argv({}, 1, loopback(port, {"--timeout", "2"})));
  expect_clean_failure(r1, r1.wait(30s), 2.0 + 3.0, "rank 1");
}

TEST(UcxBench, PeerSpeakingAnotherProtocolVersionIsRefusedByName) {
  const int port = testing::free_local_port();
  Child r0 = Child::spawn(testing::bench_rank_argv({}, 0, loopback(port, {"--timeout", "5"})));
  Child r1 = Child::spawn(
      testing::bench_rank_argv({}, 1, loopback(port, {"--timeout", "5", "--bootstrap-protocol-version", "2"})));
  const ChildExit e0 = r0.wait(30s), e1 = r1.wait(30s);
  expect_clean_failure(r0, e0, 5.0 + 3.0, "protocol");
  expect_clean_failure(r1, e1, 5.0 + 3.0, "rank 1");
}

// make_communicator refuses a backend it cannot build before it bootstraps.
TEST(UcxBench, BackendIsCheckedBeforeConnecting) {
  const auto base = std::vector<std::string>{testing::tandem_binary(), "bench", "collectives", "--rank", "1",
                                             "--timeout", "30", "--backend"};
  auto unknown = base;
  unknown.push_back("carrier-pigeon");
  const auto u = testing::run_command(unknown);
  EXPECT_EQ(u.exit_code, 1);
  EXPECT_NE(u.err.find("INVALID_ARGUMENT: rank 1: unknown collectives backend 'carrier-pigeon'"), std::string::npos)
      << u.err;
#ifndef TANDEM_HAVE_NCCL
  auto nccl = base;
  nccl.push_back("nccl");
  const auto n = testing::run_command(nccl);
  EXPECT_EQ(n.exit_code, 1);
  EXPECT_NE(n.err.find("FAILED_PRECONDITION: rank 1: collectives backend nccl: this tandem was built without NCCL"),
            std::string::npos)
      << n.err;
#endif
}

}  // namespace
}  // namespace tandem
