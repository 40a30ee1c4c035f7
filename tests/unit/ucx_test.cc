// The UCX transport on its own, in two forked processes joined by a
// socketpair bootstrap: delivery of every size, tag matching, the size
// contract, deadlines, abort from another thread and a killed peer. The test
// process itself never initialises UCX; only its forked children do.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "collectives/ucx/ucx_transport.h"
#include "tests/unit/pair_bootstrap.h"
#include "tests/unit/process_util.h"

namespace tandem {
namespace {

using collectives::RequestId;
using collectives::Transport;
using collectives::UcxOptions;
using testing::Child;
using namespace std::chrono_literals;

using Body = std::function<std::string(int rank, Transport& t)>;

// Over TCP unless the test says otherwise: the path two hosts take.
UcxOptions tcp_options() {
  UcxOptions o;
  o.config = {{"TLS", "tcp,self"}};
  return o;
}

std::string run_rank(int rank, int size, int fd, const UcxOptions& options, const Body& body) {
  testing::PairBootstrap bootstrap(rank, size, fd);
  auto t = collectives::make_ucx_transport(bootstrap, options, deadline_after(20s));
  if (!t.ok()) return "setup: " + t.status().to_string();
  return body(rank, **t);
}

struct RankOutcome {
  testing::ChildExit exit;
  std::string message;  // the body's error text, empty when it passed
};

// Forks one child per rank (1 or 2) and waits for all.
std::vector<RankOutcome> fork_group(int size, const UcxOptions& options, const Body& body,
                                    std::chrono::seconds timeout = 30s) {
  int fds[2] = {-1, -1};
  if (size == 2 && socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return {};
  std::vector<Child> ranks;
  for (int r = 0; r < size; ++r)
    ranks.push_back(Child::fork_call([&, r] {
      if (size == 2) close(fds[1 - r]);
      return run_rank(r, size, size == 2 ? fds[r] : -1, options, body);
    }));
  for (int fd : fds)
    if (fd >= 0) close(fd);
  std::vector<RankOutcome> outcomes;
  for (Child& c : ranks) {
    const testing::ChildExit e = c.wait(timeout);
    outcomes.push_back({e, c.message()});
  }
  return outcomes;
}

void run_group(int size, const UcxOptions& options, const Body& body, std::chrono::seconds timeout = 30s) {
  const auto outcomes = fork_group(size, options, body, timeout);
  ASSERT_EQ(outcomes.size(), static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) {
    const RankOutcome& o = outcomes[static_cast<size_t>(r)];
    EXPECT_TRUE(o.exit.exited && o.exit.code == 0) << "rank " << r << ": " << testing::describe(o.exit) << ": "
                                                   << o.message;
  }
}

std::vector<uint8_t> pattern(size_t n, unsigned seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 131 + seed * 7 + (i >> 9));
  return v;
}

#define REQUIRE_OK(expr)                                                          \
  do {                                                                            \
    const Status s_ = (expr);                                                     \
    if (!s_.ok()) return std::string(#expr) + " at line " + std::to_string(__LINE__) + ": " + s_.to_string(); \
  } while (0)

class UcxTransportSizes : public ::testing::TestWithParam<std::string> {};

TEST_P(UcxTransportSizes, EverySizeArrivesIntactBothWays) {
  UcxOptions options;
  if (!GetParam().empty()) options.config["TLS"] = GetParam();
  run_group(2, options, [](int rank, Transport& t) -> std::string {
    const int peer = 1 - rank;
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{4097}, size_t{65539}, size_t{(3 << 20) + 5}}) {
      const std::vector<uint8_t> out = pattern(n, static_cast<unsigned>(rank));
      std::vector<uint8_t> in(n, 0xEE);
      auto r = t.post_recv(peer, n, in.data(), n);
      auto s = t.post_send(peer, n, out.data(), n);
      if (!r.ok() || !s.ok()) return "post: " + r.status().to_string() + " " + s.status().to_string();
      const RequestId ids[] = {*r, *s};
      REQUIRE_OK(t.wait(ids, deadline_after(10s)));
      if (in != pattern(n, static_cast<unsigned>(peer))) return "corrupt message of " + std::to_string(n) + " B";
    }
    return "";
  });
}

INSTANTIATE_TEST_SUITE_P(Tls, UcxTransportSizes, ::testing::Values("tcp,self", ""),
                         [](const auto& p) { return p.param.empty() ? std::string("UcxChooses") : "TcpSelf"; });

TEST(UcxTransport, ReceivesMatchTheirTagAndPostingOrder) {
  run_group(2, tcp_options(), [](int rank, Transport& t) -> std::string {
    if (rank == 0) {
      const uint32_t a = 1, b = 2, c = 3;  // tag 9, then tag 5 twice
      std::vector<RequestId> ids;
      for (auto [tag, v] : {std::pair{9u, &a}, std::pair{5u, &b}, std::pair{5u, &c}}) {
        auto s = t.post_send(1, tag, v, sizeof *v);
        if (!s.ok()) return s.status().to_string();
        ids.push_back(*s);
      }
      REQUIRE_OK(t.wait(ids, deadline_after(10s)));
      return "";
    }
    uint32_t first5 = 0, second5 = 0, nine = 0;
    auto r1 = t.post_recv(0, 5, &first5, 4);
    auto r2 = t.post_recv(0, 5, &second5, 4);
    auto r3 = t.post_recv(0, 9, &nine, 4);
    if (!r1.ok() || !r2.ok() || !r3.ok()) return "post failed";
    const RequestId ids[] = {*r1, *r2, *r3};
    REQUIRE_OK(t.wait(ids, deadline_after(10s)));
    if (nine != 1 || first5 != 2 || second5 != 3)
      return "mismatched: tag 9 got " + std::to_string(nine) + ", tag 5 got " + std::to_string(first5) + " then " +
             std::to_string(second5);
    return "";
  });
}

// The receiver's wait must fail with `code` and a message containing `text`,
// and every later call must fail too.
Body size_mismatch(size_t sent, size_t posted, const std::string& text) {
  return [=](int rank, Transport& t) -> std::string {
    std::vector<uint8_t> buf(std::max(sent, posted));
    if (rank == 0) {
      auto s = t.post_send(1, 7, buf.data(), sent);
      if (!s.ok()) return s.status().to_string();
      (void)t.wait(std::span<const RequestId>(&*s, 1), deadline_after(10s));  // the peer may be gone by now
      return "";
    }
    auto r = t.post_recv(0, 7, buf.data(), posted);
    if (!r.ok()) return r.status().to_string();
    const Status w = t.wait(std::span<const RequestId>(&*r, 1), deadline_after(10s));
    if (w.code() != StatusCode::kDataLoss || w.message().find(text) == std::string::npos)
      return "expected DATA_LOSS with '" + text + "', got " + w.to_string();
    auto again = t.post_recv(0, 8, buf.data(), posted);
    if (again.ok() || again.status().code() != StatusCode::kAborted)
      return "a call after DATA_LOSS must be ABORTED, got " + again.status().to_string();
    return "";
  };
}

TEST(UcxTransport, LargerMessageThanTheBufferIsDataLoss) {
  run_group(2, tcp_options(), size_mismatch(64, 32, "larger than the buffer"));
}

TEST(UcxTransport, SmallerMessageThanTheBufferIsDataLoss) {
  run_group(2, tcp_options(), size_mismatch(16, 32, "got a message of 16 B"));
}

TEST(UcxTransport, DeadlineNamesThePendingPeerAndPoisonsTheTransport) {
  run_group(2, tcp_options(), [](int rank, Transport& t) -> std::string {
    if (rank == 0) {
      std::this_thread::sleep_for(1500ms);  // never sends
      return "";
    }
    uint64_t v = 0;
    auto r = t.post_recv(0, 1, &v, sizeof v);
    if (!r.ok()) return r.status().to_string();
    const auto start = Clock::now();
    const Status w = t.wait(std::span<const RequestId>(&*r, 1), deadline_after(300ms));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (w.code() != StatusCode::kDeadlineExceeded || w.message().find("peer 0") == std::string::npos)
      return "expected DEADLINE_EXCEEDED naming peer 0, got " + w.to_string();
    if (s < 0.29 || s > 1.3) return "deadline of 0.3 s returned after " + std::to_string(s) + " s";
    auto again = t.post_send(0, 1, &v, sizeof v);
    if (again.ok() || again.status().code() != StatusCode::kAborted)
      return "a call after a deadline must be ABORTED, got " + again.status().to_string();
    // The failure destroyed the UCX worker (it must not be progressed once its
    // endpoints are dropped); a stop arriving now must not signal it.
    t.abort("stop after the failure");
    const Status late = t.wait(std::span<const RequestId>(&*r, 1), deadline_after(300ms));
    if (late.code() != StatusCode::kAborted) return "a wait after abort must be ABORTED, got " + late.to_string();
    return "";
  });
}

TEST(UcxTransport, AbortFromAnotherThreadEndsAWaitPromptly) {
  run_group(2, tcp_options(), [](int rank, Transport& t) -> std::string {
    if (rank == 0) {
      std::this_thread::sleep_for(1500ms);
      return "";
    }
    uint64_t v = 0;
    auto r = t.post_recv(0, 1, &v, sizeof v);
    if (!r.ok()) return r.status().to_string();
    std::thread aborter([&t] {
      std::this_thread::sleep_for(200ms);
      t.abort("operator said stop");
    });
    const auto start = Clock::now();
    const Status w = t.wait(std::span<const RequestId>(&*r, 1), deadline_after(20s));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    aborter.join();
    if (w.code() != StatusCode::kAborted || w.message().find("operator said stop") == std::string::npos)
      return "expected ABORTED with the reason, got " + w.to_string();
    if (s > 1.5) return "abort took " + std::to_string(s) + " s to end the wait";
    return "";
  });
}

TEST(UcxTransport, KilledPeerIsAnErrorNotAHang) {
  const auto outcomes = fork_group(2, tcp_options(), [](int rank, Transport& t) -> std::string {
    if (rank == 0) {
      std::this_thread::sleep_for(300ms);
      raise(SIGKILL);
    }
    std::vector<uint8_t> buf(1 << 20);
    auto r = t.post_recv(0, 1, buf.data(), buf.size());
    if (!r.ok()) return r.status().to_string();
    const auto start = Clock::now();
    const Status w = t.wait(std::span<const RequestId>(&*r, 1), deadline_after(8s));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (w.ok()) return "a wait on a killed peer succeeded";
    // UCX notices the closed socket at once; the deadline is the backstop.
    if (w.code() != StatusCode::kUnavailable || w.message().find("peer 0") == std::string::npos)
      return "expected UNAVAILABLE naming peer 0, got " + w.to_string() + " after " + std::to_string(s) + " s";
    return "";
  });
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].exit.signal, SIGKILL) << testing::describe(outcomes[0].exit);
  EXPECT_TRUE(outcomes[1].exit.exited && outcomes[1].exit.code == 0)
      << testing::describe(outcomes[1].exit) << ": " << outcomes[1].message;
  EXPECT_LT(outcomes[1].exit.seconds, 15.0);  // setup + 0.3 s + the 8 s deadline at worst, plus teardown
}

TEST(UcxTransport, SelfGroupAndTagLimits) {
  run_group(1, tcp_options(), [](int, Transport& t) -> std::string {
    const uint64_t out = 42;
    uint64_t in = 0;
    auto r = t.post_recv(0, 3, &in, sizeof in);
    auto s = t.post_send(0, 3, &out, sizeof out);
    if (!r.ok() || !s.ok()) return "post to self failed";
    const RequestId ids[] = {*r, *s};
    REQUIRE_OK(t.wait(ids, deadline_after(5s)));
    if (in != 42) return "self message corrupted";
    auto big = t.post_send(0, uint64_t{1} << 61, &out, sizeof out);
    auto top = t.post_send(0, uint64_t{1} << 63, &out, sizeof out);  // bit 63 is the caller's
    if (!top.ok()) return "bit 63 refused: " + top.status().to_string();
    uint64_t back = 0;
    auto top_r = t.post_recv(0, uint64_t{1} << 63, &back, sizeof back);
    if (!top_r.ok()) return top_r.status().to_string();
    const RequestId top_ids[] = {*top, *top_r};
    REQUIRE_OK(t.wait(top_ids, deadline_after(5s)));
    if (big.ok() || big.status().code() != StatusCode::kInvalidArgument)
      return "a tag using the rank bits must be INVALID_ARGUMENT, got " + big.status().to_string();
    auto bad_peer = t.post_send(1, 0, &out, sizeof out);
    if (bad_peer.ok() || bad_peer.status().code() != StatusCode::kInvalidArgument) return "peer 1 of 1 accepted";
    return "";
  });
}

TEST(UcxTransport, BadUcxSettingIsInvalidArgument) {
  UcxOptions options;
  options.config = {{"UCX_RNDV_THRESH", "not-a-size"}};
  Child c = Child::fork_call([&] {
    testing::PairBootstrap b(0, 1, -1);
    auto t = collectives::make_ucx_transport(b, options, deadline_after(5s));
    if (t.ok()) return std::string("setup succeeded");
    if (t.status().code() != StatusCode::kInvalidArgument ||
        t.status().message().find("RNDV_THRESH=not-a-size") == std::string::npos)
      return "expected INVALID_ARGUMENT naming the setting, got " + t.status().to_string();
    return std::string();
  });
  const auto e = c.wait(20s);
  EXPECT_TRUE(e.exited && e.code == 0) << testing::describe(e) << ": " << c.message();
}

}  // namespace
}  // namespace tandem
