// Stopping generations (Cancel, client deadlines, a client that leaves, the
// server's shutdown), concurrent calls, and the server's start-up errors.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/unit/control_test_util.h"
#include "tests/unit/process_util.h"

namespace tandem::control {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ControlServerTest;

auto keep_all = [](const GeneratedPiece&) { return true; };

TEST_F(ControlServerTest, CancelStopsARunningGenerate) {
  handler.use_many_pieces(500);
  handler.piece_delay = milliseconds(20);  // 10 s unless cancelled
  GenerateParams p;
  p.request_id = "to-cancel";
  std::atomic<int> pieces{0};
  auto running = std::async(std::launch::async, [&] {
    return client->generate(p, [&](const GeneratedPiece&) { ++pieces; return true; }, deadline_after(seconds(20)));
  });
  ASSERT_TRUE(handler.wait_for_generate_calls(1, seconds(10)));
  Status s = client->cancel("to-cancel", deadline_after(seconds(10)));
  EXPECT_TRUE(s.ok()) << s.to_string();
  ASSERT_EQ(running.wait_for(seconds(10)), std::future_status::ready);
  auto r = running.get();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->finish, FinishReason::kCancelled);
  EXPECT_LT(r->generated_tokens, static_cast<int64_t>(handler.pieces.size()));
  EXPECT_EQ(r->generated_tokens, pieces.load());
  EXPECT_EQ(handler.saw_cancelled, 1);
  // Finished: the id is free again, and unknown to Cancel.
  EXPECT_EQ(client->cancel("to-cancel", deadline_after(seconds(10))).code(), StatusCode::kNotFound);
}

// A client that stops reading (connected, no deadline) blocks the handler in
// Write once gRPC's flow-control window is full, where no Cancel reaches the
// engine: past the write timeout the call is cancelled, and the handler sees it.
TEST_F(ControlServerTest, AClientThatStopsReadingIsCancelledAfterTheWriteTimeout) {
  control::ControlServerOptions options;
  options.write_timeout = milliseconds(300);
  start_server(options);
  handler.pieces.clear();
  for (int i = 0; i < 400; ++i) handler.pieces.push_back({i, std::string(64 * 1024, 'x')});  // 25 MB: past what gRPC's windows take
  GenerateParams p;
  p.request_id = "stalled";
  p.max_tokens = 400;
  std::atomic<int> read{0};
  auto running = std::async(std::launch::async, [&] {
    return client->generate(p, [&](const GeneratedPiece&) {
      if (read++ == 0) std::this_thread::sleep_for(seconds(3));  // stops reading, stays connected
      // What is still buffered here can take long to read in a sanitized
      // build: once the server has given up, so does the client.
      return handler.saw_cancelled == 0;
    }, deadline_after(seconds(120)));
  });
  ASSERT_TRUE(handler.wait_for_cancelled(1, seconds(60))) << "the handler never saw its call cancelled";
  ASSERT_EQ(running.wait_for(seconds(60)), std::future_status::ready);
  const auto r = running.get();
  EXPECT_FALSE(r.ok() && r->finish != FinishReason::kCancelled) << "the generation ran to its end";
  EXPECT_LT(read.load(), 400);
}

TEST_F(ControlServerTest, CancelOfAnUnknownIdIsNotFound) {
  Status s = client->cancel("never-started", deadline_after(seconds(10)));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find("gRPC NOT_FOUND"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("never-started"), std::string::npos) << s.message();
}

TEST_F(ControlServerTest, ARunningIdCannotBeReused) {
  handler.hang = true;
  GenerateParams p;
  p.request_id = "dup";
  auto first = std::async(std::launch::async, [&] { return client->generate(p, keep_all, deadline_after(seconds(20))); });
  ASSERT_TRUE(handler.wait_for_generate_calls(1, seconds(10)));
  auto second = client->generate(p, keep_all, deadline_after(seconds(10)));
  EXPECT_EQ(second.status().code(), StatusCode::kInvalidArgument) << second.status().to_string();
  EXPECT_NE(second.status().message().find("ALREADY_EXISTS"), std::string::npos) << second.status().message();
  EXPECT_TRUE(client->cancel("dup", deadline_after(seconds(10))).ok());
  ASSERT_EQ(first.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_EQ(first.get()->finish, FinishReason::kCancelled);
}

// The handler never calls its sink: only the server's watcher can tell it.
TEST_F(ControlServerTest, ClientDeadlineStopsTheHandler) {
  handler.hang = true;
  const auto start = Clock::now();
  auto r = client->generate(GenerateParams{}, keep_all, deadline_after(milliseconds(300)));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().to_string();
  EXPECT_NE(r.status().message().find("DEADLINE_EXCEEDED"), std::string::npos) << r.status().message();
  EXPECT_LT(Clock::now() - start, seconds(5));
  EXPECT_TRUE(handler.wait_for_cancelled(1, seconds(5))) << "the handler never saw `cancelled`";
}

TEST_F(ControlServerTest, ClientDeadlineStopsAStreamingHandler) {
  handler.use_many_pieces(100);
  handler.piece_delay = milliseconds(50);  // 5 s, the deadline 1.5 s
  std::atomic<int> pieces{0};
  auto r = client->generate(GenerateParams{}, [&](const GeneratedPiece&) { ++pieces; return true; },
                            deadline_after(milliseconds(1500)));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().to_string();
  EXPECT_GE(pieces, 1);
  EXPECT_LT(pieces, static_cast<int>(handler.pieces.size()));
  EXPECT_TRUE(handler.wait_for_cancelled(1, seconds(5)));
}

TEST_F(ControlServerTest, ACallbackThatStopsCancelsTheCall) {
  handler.piece_delay = milliseconds(50);
  int pieces = 0;
  auto r = client->generate(GenerateParams{}, [&](const GeneratedPiece&) { return ++pieces < 2; },
                            deadline_after(seconds(20)));
  EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status().to_string();
  EXPECT_EQ(pieces, 2);
  EXPECT_TRUE(handler.wait_for_cancelled(1, seconds(5)));
}

TEST_F(ControlServerTest, ConcurrentGeneratesEachGetTheirStream) {
  handler.piece_delay = milliseconds(5);
  std::string expected;
  for (const auto& piece : handler.pieces) expected += piece.text;
  std::vector<std::future<std::string>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [&, i] {
      GenerateParams p;
      p.request_id = "c" + std::to_string(i);
      std::string text;
      auto r = client->generate(p, [&](const GeneratedPiece& piece) { text += piece.text; return true; },
                                deadline_after(seconds(20)));
      return r.ok() ? text : r.status().to_string();
    }));
  }
  for (auto& c : calls) {
    ASSERT_EQ(c.wait_for(seconds(20)), std::future_status::ready);
    EXPECT_EQ(c.get(), expected);
  }
  EXPECT_EQ(handler.generate_calls, 4);
}

TEST_F(ControlServerTest, ServerShutdownEndsRunningGenerationsWithinTheDeadline) {
  handler.hang = true;
  auto running = std::async(std::launch::async, [&] {
    return client->generate(GenerateParams{}, keep_all, deadline_after(seconds(30)));
  });
  ASSERT_TRUE(handler.wait_for_generate_calls(1, seconds(10)));
  const auto start = Clock::now();
  server->shutdown(deadline_after(seconds(5)));
  EXPECT_LT(Clock::now() - start, seconds(5));
  EXPECT_EQ(handler.saw_cancelled, 1);
  ASSERT_EQ(running.wait_for(seconds(10)), std::future_status::ready);
  auto r = running.get();
  // Either the cancelled finish made it out before the listener closed, or
  // the call was cut: both end the client's wait.
  if (r.ok()) {
    EXPECT_EQ(r->finish, FinishReason::kCancelled);
  }
  // After shutdown nothing answers.
  EXPECT_FALSE(client->health(deadline_after(seconds(2))).ok());
}

TEST_F(ControlServerTest, ABusyPortIsAnErrorNamingAddressAndPort) {
  ControlServerOptions o;
  o.port = server->port();
  o.token = "t";
  auto second = ControlServer::start(o, &handler);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("127.0.0.1:" + std::to_string(server->port())), std::string::npos)
      << second.status().message();
}

TEST(ControlServerStart, RefusesBadOptions) {
  testing::FakeJobHandler handler;
  ControlServerOptions o;
  auto r = ControlServer::start(o, &handler);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("token"), std::string::npos);

  o.token = "t";
  o.port = 70000;
  EXPECT_EQ(ControlServer::start(o, &handler).status().code(), StatusCode::kInvalidArgument);

  o.port = 0;
  o.tls_cert_file = "/nonexistent/server.pem";
  r = ControlServer::start(o, &handler);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "a cert without its key";

  o.tls_key_file = "/nonexistent/server.key";
  r = ControlServer::start(o, &handler);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/server.pem"), std::string::npos) << r.status().message();

  testing::TempDir dir;
  testing::write_file(dir.file("not.pem"), "hello");
  o.tls_cert_file = o.tls_key_file = dir.file("not.pem");
  r = ControlServer::start(o, &handler);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a PEM file"), std::string::npos) << r.status().message();
}

TEST(ControlClientConnect, NothingListeningIsUnavailableWithinTheDeadline) {
  const int port = testing::free_local_port();
  auto c = ControlClient::connect("127.0.0.1:" + std::to_string(port), "t");
  ASSERT_TRUE(c.ok());
  const auto start = Clock::now();
  Status s = (*c)->health(deadline_after(milliseconds(500)));
  EXPECT_TRUE(s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) << s.to_string();
  EXPECT_LT(Clock::now() - start, seconds(3));
  EXPECT_EQ(ControlClient::connect("", "t").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ControlClient::connect("127.0.0.1:1", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ControlClient::connect("127.0.0.1:1", "a\nb").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::control
