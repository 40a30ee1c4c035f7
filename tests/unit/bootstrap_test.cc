// The bootstrap: its frame format (pure, no sockets), then real TCP on
// 127.0.0.1 with ranks as threads (and once as two processes), including
// every way a peer can be wrong or absent. Failures must name their cause and
// come by the deadline.
#include "collectives/bootstrap/bootstrap.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "collectives/bootstrap/wire.h"
#include "tests/unit/bootstrap_test_util.h"

namespace tandem::collectives {
namespace {

using namespace std::chrono_literals;
using namespace bootstrap_testing;  // NOLINT: this test's helpers
using wire::FrameType;

// Generous: the CI machine is shared and sanitizers slow everything down.
constexpr auto kSlack = 1500ms;
constexpr auto kShort = 500ms;  // deadline of a call that is meant to fail
constexpr auto kLong = 20s;     // deadline of a call that is meant to succeed

#define EXPECT_HAS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "\"" << (text) << "\" lacks \"" << (part) << "\""

std::string frame(FrameType t, std::string_view payload, uint16_t version = kBootstrapProtocolVersion) {
  return wire::encode_frame(version, t, payload);
}

// ---- wire -------------------------------------------------------------------

TEST(BootstrapWire, HeaderIsPinnedLittleEndian) {
  const std::string f = frame(FrameType::kGather, "xyz", 0x0102);
  ASSERT_EQ(f.size(), wire::kHeaderBytes + 3);
  EXPECT_EQ(f.substr(0, 4), "TNDB");
  EXPECT_EQ(f.substr(4, 8), std::string("\x02\x01\x04\x00\x03\x00\x00\x00", 8));
  auto h = wire::decode_header(f);
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_EQ(h->version, 0x0102);
  EXPECT_EQ(h->type, static_cast<uint16_t>(FrameType::kGather));
  EXPECT_EQ(h->length, 3u);
}

TEST(BootstrapWire, EveryFrameRoundTrips) {
  auto hello = wire::decode_hello(wire::encode_payload(wire::Hello{3, 4, "job\0x"}));
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(hello->rank, 3u);
  EXPECT_EQ(hello->world_size, 4u);
  EXPECT_EQ(hello->job_id, "job");  // a C string literal: stops at its NUL
  auto rej = wire::decode_reject(wire::encode_payload(wire::Reject{StatusCode::kInvalidArgument, "because"}));
  ASSERT_TRUE(rej.ok());
  EXPECT_EQ(rej->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(rej->reason, "because");
  const std::string binary("\0\xff\x01", 3);
  auto g = wire::decode_gather(wire::encode_payload(wire::Gather{1ull << 40, binary}));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->round, 1ull << 40);
  EXPECT_EQ(g->blob, binary);
  const std::vector<std::string> blobs{"", binary, std::string(wire::kMaxBlobBytes, 'b')};
  auto gd = wire::decode_gathered(wire::encode_payload(wire::Gathered{7, blobs}));
  ASSERT_TRUE(gd.ok()) << gd.status().to_string();
  EXPECT_EQ(gd->round, 7u);
  EXPECT_EQ(gd->blobs, blobs);
  auto f = wire::decode_frame(frame(FrameType::kWelcome, ""));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->header.type, static_cast<uint16_t>(FrameType::kWelcome));
  EXPECT_TRUE(f->payload.empty());
  EXPECT_EQ(*wire::peek_hello_rank(wire::encode_payload(wire::Hello{5, 9, "j"})), 5u);
}

void expect_data_loss(const Status& s, std::string_view text) {
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.to_string();
  EXPECT_HAS(s.message(), std::string(text));
}

TEST(BootstrapWire, MalformedHeaders) {
  expect_data_loss(wire::decode_header("TNDB\x01").status(), "truncated header");
  expect_data_loss(wire::decode_header("GET / HTTP/1.1\r\n").status(), "bad magic");
  std::string big = frame(FrameType::kGather, "");
  big[8] = 1, big[9] = 0, big[10] = 0, big[11] = 1;  // 16 MiB + 1
  expect_data_loss(wire::decode_header(big).status(), "exceeds the 16 MiB limit");
  big[8] = 0;  // exactly 16 MiB: allowed
  EXPECT_TRUE(wire::decode_header(big).ok());
  // Another version decodes: the caller must be able to say which one it was.
  auto other = wire::decode_header(frame(FrameType::kHello, "", 9));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->version, 9);
  std::string unknown = frame(FrameType::kHello, "");
  unknown[6] = 42;
  auto h = wire::decode_header(unknown);
  ASSERT_TRUE(h.ok());
  expect_data_loss(wire::check_type(*h), "unknown type 42");
  EXPECT_TRUE(wire::check_type(*wire::decode_header(frame(FrameType::kGathered, ""))).ok());
}

TEST(BootstrapWire, MalformedFrames) {
  const std::string f = frame(FrameType::kGather, "abcdef");
  expect_data_loss(wire::decode_frame(f.substr(0, f.size() - 2)).status(), "truncated payload (4 of 6 bytes)");
  expect_data_loss(wire::decode_frame(f + "zz").status(), "2 bytes after the payload");
}

TEST(BootstrapWire, MalformedPayloads) {
  const std::string hello = wire::encode_payload(wire::Hello{1, 2, "job"});
  expect_data_loss(wire::decode_hello(hello.substr(0, 6)).status(), "truncated at world size");
  expect_data_loss(wire::decode_hello(hello.substr(0, hello.size() - 1)).status(), "job id length 3 exceeds");
  expect_data_loss(wire::decode_hello(hello + "!").status(), "1 unexpected bytes");
  expect_data_loss(wire::decode_hello(wire::encode_payload(wire::Hello{1, 2, std::string(2000, 'j')})).status(),
                   "exceeds its limit");
  expect_data_loss(wire::peek_hello_rank("ab").status(), "truncated at rank");

  const std::string huge_blob(wire::kMaxBlobBytes + 1, 'x');
  expect_data_loss(wire::decode_gather(wire::encode_payload(wire::Gather{0, huge_blob})).status(),
                   "blob of 1048577 bytes exceeds its limit");
  expect_data_loss(wire::decode_gather("\0\0\0").status(), "truncated at round");

  std::string gathered = wire::encode_payload(wire::Gathered{1, {"a", "b"}});
  expect_data_loss(wire::decode_gathered(gathered.substr(0, gathered.size() - 1)).status(), "blob length 1 exceeds");
  gathered[8] = '\xff', gathered[9] = '\xff', gathered[10] = '\xff', gathered[11] = '\x7f';  // 2^31 blobs
  expect_data_loss(wire::decode_gathered(gathered).status(), "cannot fit");

  const std::string reject = wire::encode_payload(wire::Reject{StatusCode::kAborted, "why"});
  expect_data_loss(wire::decode_reject(reject.substr(0, 9)).status(), "reason length 3 exceeds");
  // A code this build does not know (a newer peer's), or OK, still rejects.
  for (uint32_t code : {0u, 999u}) {
    std::string r = reject;
    r[0] = static_cast<char>(code & 0xff), r[1] = static_cast<char>(code >> 8);
    auto d = wire::decode_reject(r);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->code, StatusCode::kFailedPrecondition);
  }
}

// ---- bootstrap: success --------------------------------------------------------

TEST(Bootstrap, SingleRankNeedsNoPeers) {
  auto b = Bootstrap::connect(config(0, 1, 0), deadline_after(kShort));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  auto got = (*b)->all_gather("solo", deadline_after(kShort));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::vector<std::string>{"solo"});
  EXPECT_TRUE((*b)->barrier(deadline_after(kShort)).ok());
}

TEST(Bootstrap, TwoRanksGatherInRankOrder) {
  const uint16_t port = free_port();
  auto ranks = form(2, port);
  ASSERT_EQ(ranks.size(), 2u);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(ranks[r]->rank(), r);
    EXPECT_EQ(ranks[r]->size(), 2);
  }
  EXPECT_EQ(ranks[0]->port(), port);
  gather_rounds(ranks, 10);
}

TEST(Bootstrap, FourRanksGatherLargestBlobs) {
  auto ranks = form(4, free_port());
  ASSERT_EQ(ranks.size(), 4u);
  gather_rounds(ranks, 5);
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&, r] {
      auto got =
          ranks[r]->all_gather(std::string(wire::kMaxBlobBytes, static_cast<char>('a' + r)), deadline_after(kLong));
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      for (int q = 0; q < 4; ++q) EXPECT_EQ((*got)[q], std::string(wire::kMaxBlobBytes, static_cast<char>('a' + q)));
    });
  }
  for (auto& t : threads) t.join();
}

TEST(Bootstrap, BlobAboveOneMiBIsInvalidArgument) {
  auto b = Bootstrap::connect(config(0, 1, 0), deadline_after(kShort));
  ASSERT_TRUE(b.ok());
  auto got = (*b)->all_gather(std::string(wire::kMaxBlobBytes + 1, 'x'), deadline_after(kShort));
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_HAS(got.status().message(), "1 MiB");
}

TEST(Bootstrap, InvalidConfigs) {
  for (auto c :
       {config(0, 0, 1), config(2, 2, 1), config(-1, 2, 1), config(1, 2, 0), config(0, 2, 1, std::string(2000, 'j'))}) {
    auto b = Bootstrap::connect(c, deadline_after(kShort));
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status().to_string();
  }
}

TEST(Bootstrap, TwoProcesses) {
  const uint16_t port = free_port();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // rank 1: no gtest assertions here, only an exit code
    auto b = Bootstrap::connect(config(1, 2, port), deadline_after(kLong));
    if (!b.ok()) ::_exit(2);
    auto got = (*b)->all_gather("from child", deadline_after(kLong));
    const bool good = got.ok() && *got == std::vector<std::string>{"from parent", "from child"} &&
                      (*b)->barrier(deadline_after(kLong)).ok();
    ::_exit(good ? 0 : 3);
  }
  auto b = Bootstrap::connect(config(0, 2, port), deadline_after(kLong));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  auto got = (*b)->all_gather("from parent", deadline_after(kLong));
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, (std::vector<std::string>{"from parent", "from child"}));
  EXPECT_TRUE((*b)->barrier(deadline_after(kLong)).ok());
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
}

// ---- bootstrap: failures -------------------------------------------------------

// A failure must come by the deadline, give or take the slack.
void expect_failed_in_time(const Joined& j, StatusCode code, std::string_view text,
                           std::chrono::milliseconds deadline = kShort) {
  ASSERT_FALSE(j.result.ok()) << "expected " << text;
  EXPECT_EQ(j.result.status().code(), code) << j.result.status().to_string();
  EXPECT_HAS(j.result.status().message(), std::string(text));
  EXPECT_LT(j.elapsed, deadline + kSlack) << j.result.status().to_string();
}

// Host names resolve (the launcher passes a node's host when no data
// address is set); one that does not resolve fails by the deadline, naming
// it, whether the lookup answers at once or hangs.
TEST(BootstrapFailure, AHostNameResolvesAndAnUnknownOneFailsByTheDeadline) {
  const uint16_t port = free_port();
  BootstrapConfig c0 = config(0, 2, port), c1 = config(1, 2, port);
  c0.coordinator_host = c1.coordinator_host = "localhost";
  auto coordinator = start(c0, kLong);
  auto joiner = start(c1, kLong).get();
  EXPECT_TRUE(joiner.result.ok()) << joiner.result.status().to_string();
  EXPECT_TRUE(coordinator.get().result.ok());
  BootstrapConfig lost = config(1, 2, free_port());
  lost.coordinator_host = "tandem-test.invalid";
  const Joined j = start(lost, kShort).get();
  ASSERT_FALSE(j.result.ok());
  EXPECT_HAS(j.result.status().message(), "cannot resolve host 'tandem-test.invalid'");
  EXPECT_LT(j.elapsed, kShort + kSlack) << j.result.status().to_string();
}

TEST(BootstrapFailure, ProtocolVersionMismatchNamesBothVersions) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kLong);
  auto c1 = config(1, 2, port);
  c1.protocol_version = 2;
  auto joiner = start(c1, kLong).get();
  auto coord = coordinator.get();
  // Refused at once, not at the deadline.
  expect_failed_in_time(coord, StatusCode::kFailedPrecondition,
                        "rank 0: bootstrap: rank 1 speaks protocol 2, this build speaks 1", 0ms);
  expect_failed_in_time(joiner, StatusCode::kFailedPrecondition, "rank 1 speaks protocol 2, the coordinator speaks 1",
                        0ms);
  EXPECT_HAS(joiner.result.status().message(),
             "rank 1: bootstrap: rejected by coordinator 127.0.0.1:" + std::to_string(port));
}

// The coordinator refuses a joiner whose HELLO disagrees, and fails itself.
void expect_refused(const BootstrapConfig& joiner_config, StatusCode code, const std::string& text) {
  auto coordinator = start(config(0, 2, joiner_config.coordinator_port), kLong);
  auto joiner = start(joiner_config, kLong).get();
  auto coord = coordinator.get();
  expect_failed_in_time(coord, code, text, 0ms);
  expect_failed_in_time(
      joiner, code, "rejected by coordinator 127.0.0.1:" + std::to_string(joiner_config.coordinator_port) + ": " + text,
      0ms);
}

// A HELLO of another job is turned away at once, but cannot fail this job
// (nothing without its id may): its own rank 1 still joins.
TEST(BootstrapFailure, AnotherJobsRankIsTurnedAwayAndTheJobStillForms) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kLong);
  auto stranger = start(config(1, 2, port, "job-b"), kLong).get();
  expect_failed_in_time(stranger, StatusCode::kInvalidArgument,
                        "rejected by coordinator 127.0.0.1:" + std::to_string(port) +
                            ": rank 1 belongs to another job (its job id differs from this job's)",
                        0ms);
  auto joiner = start(config(1, 2, port), kLong).get();
  EXPECT_TRUE(joiner.result.ok()) << joiner.result.status().to_string();
  EXPECT_TRUE(coordinator.get().result.ok());
}

// 64 connections that never speak (the most the coordinator holds) must not
// lock the real rank out: the oldest silent one makes room.
TEST(BootstrapFailure, AFloodOfSilentConnectionsDoesNotLockARankOut) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kLong);
  std::vector<std::unique_ptr<RawClient>> flood;
  for (int i = 0; i < 70; ++i) {
    flood.push_back(std::make_unique<RawClient>(port));
    ASSERT_TRUE(flood.back()->connected()) << i;
  }
  auto joiner = start(config(1, 2, port), kLong).get();
  EXPECT_TRUE(joiner.result.ok()) << joiner.result.status().to_string();
  EXPECT_TRUE(coordinator.get().result.ok());
}

// A coordinator that closes the connection before answering (one shedding
// a flood, or restarting) is dialled again, not given up on.
TEST(BootstrapFailure, AJoinerReconnectsWhenClosedBeforeAnAnswer) {
  const uint16_t port = free_port();
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(listener, 4), 0);
  auto joiner = start(config(1, 2, port), kLong);
  const int first = ::accept(listener, nullptr, nullptr);  // the joiner's first connection: closed unanswered
  ASSERT_GE(first, 0);
  ::close(first);
  ::close(listener);
  auto coord = start(config(0, 2, port), kLong).get();
  EXPECT_TRUE(coord.result.ok()) << coord.result.status().to_string();
  EXPECT_TRUE(joiner.get().result.ok());
}

TEST(BootstrapFailure, WrongWorldSizeIsRefused) {
  expect_refused(config(2, 3, free_port()), StatusCode::kInvalidArgument,
                 "rank 2 expects world size 3, this job has 2");
}

TEST(BootstrapFailure, DuplicateRankIsRefused) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 3, port), kLong);
  auto first = start(config(1, 3, port), kLong);
  auto second = start(config(1, 3, port), kLong);
  auto coord = coordinator.get();
  expect_failed_in_time(coord, StatusCode::kInvalidArgument, "rank 0: bootstrap: rank 1 joined twice", 0ms);
  // One is refused, the other admitted but then told the job failed.
  for (auto* j : {&first, &second})
    expect_failed_in_time(j->get(), StatusCode::kInvalidArgument, "rank 1 joined twice", 0ms);
}

TEST(BootstrapFailure, RankOutOfRangeIsRefused) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kLong);
  RawClient client(port);
  ASSERT_TRUE(client.connected());
  client.send(frame(FrameType::kHello, wire::encode_payload(wire::Hello{7, 2, "job-a"})));
  expect_failed_in_time(coordinator.get(), StatusCode::kInvalidArgument, "rank 7 is out of range", 0ms);
  bool eof = false;
  auto answer = wire::decode_frame(client.read_all(kLong, &eof));
  EXPECT_TRUE(eof);
  ASSERT_TRUE(answer.ok()) << answer.status().to_string();
  EXPECT_EQ(answer->header.type, static_cast<uint16_t>(FrameType::kReject));
  EXPECT_HAS(wire::decode_reject(answer->payload)->reason, "rank 7 is out of range");
}

TEST(BootstrapFailure, MissingRankIsNamedAtTheDeadline) {
  expect_failed_in_time(start(config(0, 2, free_port()), kShort).get(), StatusCode::kDeadlineExceeded,
                        "rank 0: bootstrap: rank 1 never arrived (1 of 2 ranks joined)");
}

TEST(BootstrapFailure, JoinedRanksLearnWhoIsMissing) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 4, port), 1s);
  auto joiner = start(config(2, 4, port), kLong);
  expect_failed_in_time(coordinator.get(), StatusCode::kDeadlineExceeded,
                        "ranks 1, 3 never arrived (2 of 4 ranks joined)", 1s);
  // Told by the coordinator at its deadline, long before the joiner's own.
  expect_failed_in_time(joiner.get(), StatusCode::kDeadlineExceeded, "ranks 1, 3 never arrived", 1s);
}

TEST(BootstrapFailure, AbsentCoordinatorTimesOutNamingIt) {
  const uint16_t port = free_port();
  expect_failed_in_time(start(config(1, 2, port), kShort).get(), StatusCode::kDeadlineExceeded,
                        "rank 1: bootstrap: coordinator 127.0.0.1:" + std::to_string(port) +
                            " not reachable by deadline (Connection refused)");
}

TEST(BootstrapFailure, SilentCoordinatorDoesNotHangJoiner) {
  SilentListener listener;
  expect_failed_in_time(start(config(1, 2, listener.port()), kShort).get(), StatusCode::kDeadlineExceeded,
                        "did not admit this rank by deadline");
}

TEST(BootstrapFailure, GarbageClientsAreDroppedAndTheJobStillForms) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kLong);
  const std::string big_header = frame(FrameType::kHello, "").substr(0, 8) + std::string("\0\0\xa0\0", 4);
  const std::pair<std::string, std::string> cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad magic"},
      {big_header, "exceeds the 65536 bytes allowed here"},
      {frame(FrameType::kGather, wire::encode_payload(wire::Gather{0, "x"})), "sent GATHER before HELLO"},
      {frame(FrameType::kHello, std::string("\1\0\0\0\2\0", 6)), "truncated at world size"},
  };
  for (const auto& [bytes, why] : cases) {
    RawClient garbage(port);
    ASSERT_TRUE(garbage.connected());
    garbage.send(bytes);
    bool eof = false;
    auto rej = wire::decode_frame(garbage.read_all(kLong, &eof));
    EXPECT_TRUE(eof);  // dropped, with a REJECT saying why
    ASSERT_TRUE(rej.ok()) << rej.status().to_string();
    EXPECT_HAS(wire::decode_reject(rej->payload)->reason, why);
  }
  auto joiner = start(config(1, 2, port), kLong).get();
  auto coord = coordinator.get();
  ASSERT_TRUE(coord.result.ok()) << coord.result.status().to_string();
  ASSERT_TRUE(joiner.result.ok()) << joiner.result.status().to_string();
}

TEST(BootstrapFailure, JoinerWaitsForALateCoordinator) {
  const uint16_t port = free_port();
  auto joiner = start(config(1, 2, port), kLong);
  std::this_thread::sleep_for(300ms);  // refused meanwhile: the joiner retries
  auto coord = start(config(0, 2, port), kLong).get();
  EXPECT_TRUE(coord.result.ok()) << coord.result.status().to_string();
  EXPECT_TRUE(joiner.get().result.ok());
}

TEST(BootstrapFailure, SilentClientDoesNotHangCoordinator) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kShort);
  RawClient silent(port);
  ASSERT_TRUE(silent.connected());
  auto coord = coordinator.get();
  expect_failed_in_time(coord, StatusCode::kDeadlineExceeded, "rank 1 never arrived (1 of 2 ranks joined");
  EXPECT_HAS(coord.result.status().message(), "connected but sent no HELLO");
}

TEST(BootstrapFailure, SilentClientDoesNotBlockRealRanks) {
  const uint16_t port = free_port();
  auto coordinator = start(config(0, 2, port), kLong);
  RawClient silent(port);
  ASSERT_TRUE(silent.connected());
  auto joiner = start(config(1, 2, port), kLong).get();
  EXPECT_TRUE(joiner.result.ok()) << joiner.result.status().to_string();
  EXPECT_TRUE(coordinator.get().result.ok());
}

TEST(BootstrapFailure, JoinerLostMidGatherIsUnavailableNamingIt) {
  auto ranks = form(3, free_port());
  ASSERT_EQ(ranks.size(), 3u);
  ranks[2].reset();  // rank 2 drops out
  auto other = std::async(std::launch::async, [&] { return ranks[1]->all_gather("b", deadline_after(kLong)); });
  const auto t0 = Clock::now();
  auto got = ranks[0]->all_gather("a", deadline_after(kLong));
  EXPECT_LT(Clock::now() - t0, kSlack);
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_HAS(got.status().message(), "rank 0: bootstrap: peer 2: connection lost (");
  // Rank 1 hears the cause from the coordinator instead of timing out.
  auto r1 = other.get();
  EXPECT_EQ(r1.status().code(), StatusCode::kUnavailable);
  EXPECT_HAS(r1.status().message(), "peer 2: connection lost");
  // Broken for good: the same error again, at once.
  EXPECT_EQ(ranks[0]->barrier(deadline_after(kLong)).message(), got.status().message());
}

TEST(BootstrapFailure, CoordinatorLostMidGatherIsUnavailable) {
  auto ranks = form(2, free_port());
  ASSERT_EQ(ranks.size(), 2u);
  ranks[0].reset();
  auto got = ranks[1]->all_gather("b", deadline_after(kLong));
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_HAS(got.status().message(), "rank 1: bootstrap: peer 0: connection lost (");
}

TEST(BootstrapFailure, GatherDeadlineNamesTheLateRank) {
  auto ranks = form(2, free_port());
  ASSERT_EQ(ranks.size(), 2u);
  const auto t0 = Clock::now();
  auto got = ranks[0]->all_gather("a", deadline_after(kShort));
  EXPECT_LT(Clock::now() - t0, kShort + kSlack);
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_HAS(got.status().message(), "all_gather: nothing from rank 1 by deadline");
  // The late rank then learns why, without waiting out its deadline.
  auto late = ranks[1]->all_gather("b", deadline_after(kLong));
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_HAS(late.status().message(), "nothing from rank 1");
}

}  // namespace
}  // namespace tandem::collectives
