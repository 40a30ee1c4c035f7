// The control server against a fake JobHandler on 127.0.0.1:0: authentication,
// validation, streaming, cancel, deadlines and shutdown, checked both through
// the raw generated stub (what any gRPC client sees) and ControlClient.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "proto/control_client.h"
#include "proto/tandem.grpc.pb.h"
#include "tests/unit/control_test_util.h"

namespace tandem::control {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ControlServerTest;

// Each RPC through the raw stub with the given authorization metadata (none
// when empty); returns their codes in the order Health, Status, Generate,
// Cancel, Shutdown.
std::vector<grpc::StatusCode> call_every_rpc(const std::string& endpoint, const std::string& authorization) {
  auto stub = v1::Control::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  auto prepare = [&](grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  };
  std::vector<grpc::StatusCode> codes;
  {
    grpc::ClientContext ctx;
    prepare(ctx);
    v1::HealthResponse r;
    codes.push_back(stub->Health(&ctx, {}, &r).error_code());
  }
  {
    grpc::ClientContext ctx;
    prepare(ctx);
    v1::StatusResponse r;
    codes.push_back(stub->Status(&ctx, {}, &r).error_code());
  }
  {
    grpc::ClientContext ctx;
    prepare(ctx);
    v1::GenerateRequest req;
    req.set_text("hi");
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse m;
    while (reader->Read(&m)) {
    }
    codes.push_back(reader->Finish().error_code());
  }
  {
    grpc::ClientContext ctx;
    prepare(ctx);
    v1::CancelRequest req;
    req.set_request_id("not-running");
    v1::CancelResponse r;
    codes.push_back(stub->Cancel(&ctx, req, &r).error_code());
  }
  {
    grpc::ClientContext ctx;
    prepare(ctx);
    v1::ShutdownResponse r;
    codes.push_back(stub->Shutdown(&ctx, {}, &r).error_code());
  }
  return codes;
}

TEST_F(ControlServerTest, EveryRpcWithoutTokenIsUnauthenticated) {
  const auto codes = call_every_rpc(server->endpoint(), "");
  for (size_t i = 0; i < codes.size(); ++i) EXPECT_EQ(codes[i], grpc::StatusCode::UNAUTHENTICATED) << "rpc " << i;
  EXPECT_EQ(handler.generate_calls, 0);
  EXPECT_EQ(handler.shutdown_requests, 0);
}

TEST_F(ControlServerTest, EveryRpcWithWrongTokenIsUnauthenticated) {
  for (const std::string& auth : std::vector<std::string>{"Bearer wrong", "Bearer " + token.substr(0, token.size() - 1),
                                  "Bearer " + token + "x", token, "Basic " + token, "bearer " + token}) {
    const auto codes = call_every_rpc(server->endpoint(), auth);
    for (size_t i = 0; i < codes.size(); ++i)
      EXPECT_EQ(codes[i], grpc::StatusCode::UNAUTHENTICATED) << "rpc " << i << " with '" << auth << "'";
  }
  EXPECT_EQ(handler.generate_calls, 0);
  EXPECT_EQ(handler.shutdown_requests, 0);
}

TEST_F(ControlServerTest, EveryRpcWithTheTokenIsServed) {
  const auto codes = call_every_rpc(server->endpoint(), "Bearer " + token);
  ASSERT_EQ(codes.size(), 5u);
  EXPECT_EQ(codes[0], grpc::StatusCode::OK);
  EXPECT_EQ(codes[1], grpc::StatusCode::OK);
  EXPECT_EQ(codes[2], grpc::StatusCode::OK);
  EXPECT_EQ(codes[3], grpc::StatusCode::NOT_FOUND);  // authenticated, then looked up
  EXPECT_EQ(codes[4], grpc::StatusCode::OK);
  EXPECT_EQ(handler.generate_calls, 1);
  EXPECT_EQ(handler.shutdown_requests, 1);
}

TEST_F(ControlServerTest, ClientWithWrongTokenGetsUnauthenticated) {
  auto c = ControlClient::connect(server->endpoint(), "not-the-token");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  Status s = (*c)->health(deadline_after(seconds(10)));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.to_string();
  EXPECT_NE(s.message().find("gRPC UNAUTHENTICATED"), std::string::npos) << s.message();
}

TEST_F(ControlServerTest, HealthStatusAndShutdownThroughTheClient) {
  EXPECT_TRUE(client->health(deadline_after(seconds(10))).ok());
  auto st = client->status(deadline_after(seconds(10)));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  ASSERT_EQ(st->ranks.size(), 2u);
  EXPECT_EQ(st->ranks[1].host, "node-b");
  EXPECT_EQ(st->ranks[1].memory_bytes, 2000u);
  EXPECT_EQ(st->tp, 2);
  EXPECT_EQ(st->model, "models/stories260K");
  EXPECT_DOUBLE_EQ(st->uptime_s, 12.5);
  EXPECT_EQ(st->state, "serving");
  EXPECT_EQ(handler.shutdown_requests, 0);
  EXPECT_TRUE(client->shutdown(deadline_after(seconds(10))).ok());
  EXPECT_EQ(handler.shutdown_requests, 1);
}

TEST_F(ControlServerTest, HandlerErrorsKeepTheirCode) {
  handler.health_status = Unavailable("still loading weights");
  Status s = client->health(deadline_after(seconds(10)));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("UNAVAILABLE: still loading weights"), std::string::npos) << s.message();

  handler.throw_in_status = true;
  auto st = client->status(deadline_after(seconds(10)));
  EXPECT_EQ(st.status().code(), StatusCode::kInternal);
  EXPECT_NE(st.status().message().find("status exploded"), std::string::npos) << st.status().message();
}

TEST_F(ControlServerTest, GenerateStreamsThePiecesInOrderThenTheFinish) {
  GenerateParams p;
  p.prompt = "Once";
  std::vector<GeneratedPiece> got;
  std::string started_id;
  auto r = client->generate(
      p, [&](const GeneratedPiece& piece) { got.push_back(piece); return true; }, deadline_after(seconds(10)),
      [&](const std::string& id) { started_id = id; });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(got.size(), handler.pieces.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token, handler.pieces[i].token);
    EXPECT_EQ(got[i].text, handler.pieces[i].text);
  }
  EXPECT_EQ(r->finish, FinishReason::kEos);
  EXPECT_EQ(r->generated_tokens, static_cast<int64_t>(got.size()));
  EXPECT_EQ(r->prompt_tokens, 4);
  // The server named the request, and told the client and the handler the same id.
  EXPECT_FALSE(started_id.empty());
  EXPECT_EQ(handler.last_params().request_id, started_id);
}

TEST_F(ControlServerTest, GenerateStopsAtMaxTokensAndAtStopStrings) {
  GenerateParams p;
  p.max_tokens = 3;
  std::string text;
  auto collect = [&](const GeneratedPiece& piece) { text += piece.text; return true; };
  auto r = client->generate(p, collect, deadline_after(seconds(10)));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->finish, FinishReason::kLength);
  EXPECT_EQ(text, "Once upon a");

  // The stop string is not streamed (OpenAI's rule, the engine's): the
  // pieces carry the text before it, one piece per token generated.
  text.clear();
  std::vector<int> ids;
  auto collect_ids = [&](const GeneratedPiece& piece) { text += piece.text; ids.push_back(piece.token); return true; };
  p.max_tokens = 100;
  p.stop = {"zzz", " time"};
  r = client->generate(p, collect_ids, deadline_after(seconds(10)));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->finish, FinishReason::kStop);
  EXPECT_EQ(text, "Once upon a");
  EXPECT_EQ(ids, (std::vector<int>{101, 102, 103, 104}));
  EXPECT_EQ(r->generated_tokens, 4);

  // Held back as a possible stop string (" L" of " Lily"), then released at
  // max_tokens by a last piece whose token id is -1.
  text.clear();
  ids.clear();
  p.max_tokens = 5;
  p.stop = {", Lily and"};
  r = client->generate(p, collect_ids, deadline_after(seconds(10)));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->finish, FinishReason::kLength);
  EXPECT_EQ(text, "Once upon a time,");
  EXPECT_EQ(ids, (std::vector<int>{101, 102, 103, 104, 105, -1}));
  EXPECT_EQ(r->generated_tokens, 5);
}

TEST_F(ControlServerTest, GenerateParamsReachTheHandler) {
  GenerateParams p;
  p.request_id = "my-req.1";
  p.prompt_tokens = {1, 7, 300};
  p.has_prompt_tokens = true;
  p.max_tokens = 5;
  p.temperature = 0.8f;
  p.top_p = 0.5f;
  p.top_k = 40;
  p.seed = 1234;
  p.stop = {"\n\n"};
  ASSERT_TRUE(client->generate(p, [](const GeneratedPiece&) { return true; }, deadline_after(seconds(10))).ok());
  const GenerateParams seen = handler.last_params();
  EXPECT_EQ(seen.request_id, "my-req.1");
  EXPECT_TRUE(seen.has_prompt_tokens);
  EXPECT_EQ(seen.prompt_tokens, p.prompt_tokens);
  EXPECT_EQ(seen.max_tokens, 5);
  EXPECT_FLOAT_EQ(seen.temperature, 0.8f);
  EXPECT_FLOAT_EQ(seen.top_p, 0.5f);
  EXPECT_EQ(seen.top_k, 40);
  EXPECT_EQ(seen.seed, 1234);
  EXPECT_EQ(seen.stop, p.stop);
}

TEST_F(ControlServerTest, UnsetFieldsTakeTheDocumentedDefaults) {
  auto stub = raw_stub();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  v1::GenerateRequest empty;
  auto reader = stub->Generate(&ctx, empty);
  v1::GenerateResponse m;
  while (reader->Read(&m)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  const GenerateParams seen = handler.last_params();
  EXPECT_FALSE(seen.has_prompt_tokens);
  EXPECT_EQ(seen.prompt, "");
  EXPECT_EQ(seen.max_tokens, 256);
  EXPECT_EQ(seen.temperature, 0.0f);
  EXPECT_EQ(seen.top_p, 1.0f);
  EXPECT_EQ(seen.top_k, 0);
  EXPECT_EQ(seen.seed, -1);
}

struct BadRequest {
  std::string name;
  std::function<void(GenerateParams&)> edit;
  std::string field;  // the message must name it
  friend void PrintTo(const BadRequest& r, std::ostream* os) { *os << r.name; }
};

class ControlBadRequest : public ControlServerTest, public ::testing::WithParamInterface<BadRequest> {};

TEST_P(ControlBadRequest, IsInvalidArgumentNamingTheField) {
  GenerateParams p;
  GetParam().edit(p);
  bool streamed = false;
  auto r = client->generate(p, [&](const GeneratedPiece&) { streamed = true; return true; },
                            deadline_after(seconds(10)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  EXPECT_NE(r.status().message().find("gRPC INVALID_ARGUMENT"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(GetParam().field), std::string::npos) << r.status().message();
  EXPECT_FALSE(streamed);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ControlBadRequest,
    ::testing::Values(
        BadRequest{"max_tokens_zero", [](GenerateParams& p) { p.max_tokens = 0; }, "max_tokens"},
        BadRequest{"max_tokens_negative", [](GenerateParams& p) { p.max_tokens = -3; }, "max_tokens"},
        BadRequest{"temperature_negative", [](GenerateParams& p) { p.temperature = -0.1f; }, "temperature"},
        BadRequest{"temperature_nan", [](GenerateParams& p) { p.temperature = std::nanf(""); }, "temperature"},
        BadRequest{"top_p_zero", [](GenerateParams& p) { p.top_p = 0; }, "top_p"},
        BadRequest{"top_p_above_one", [](GenerateParams& p) { p.top_p = 1.5f; }, "top_p"},
        BadRequest{"top_k_negative", [](GenerateParams& p) { p.top_k = -1; }, "top_k"},
        BadRequest{"seed_negative", [](GenerateParams& p) { p.seed = -7; }, "seed"},
        BadRequest{"token_negative",
                   [](GenerateParams& p) { p.has_prompt_tokens = true; p.prompt_tokens = {1, -2}; },
                   "tokens.ids[1]"},
        BadRequest{"token_beyond_vocab_from_the_handler",
                   [](GenerateParams& p) { p.has_prompt_tokens = true; p.prompt_tokens = {1, 2, 9999}; },
                   "tokens.ids[2]"},
        BadRequest{"request_id_chars", [](GenerateParams& p) { p.request_id = "bad id!"; }, "request_id"},
        BadRequest{"request_id_long", [](GenerateParams& p) { p.request_id = std::string(129, 'a'); },
                   "request_id"},
        BadRequest{"stop_empty", [](GenerateParams& p) { p.stop = {"ok", ""}; }, "stop[1]"},
        BadRequest{"stop_too_many", [](GenerateParams& p) { p.stop.assign(17, "x"); }, "stop"}),
    [](const auto& param_info) { return param_info.param.name; });

// proto3 strings must be UTF-8: protobuf would refuse to serialize the
// request and the caller would see a bare gRPC INTERNAL. The client names
// the field and the byte instead, and sends nothing.
TEST_F(ControlServerTest, TextThatIsNotUtf8IsRefusedNamingTheField) {
  GenerateParams p;
  p.prompt = "caf\xe9";
  auto call = [&] {
    return client->generate(p, [](const GeneratedPiece&) { return true; }, deadline_after(seconds(10)));
  };
  auto r = call();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  EXPECT_NE(r.status().message().find("prompt is not valid UTF-8 (byte 3 of 4)"), std::string::npos)
      << r.status().message();
  p.prompt = "caf\xc3\xa9";
  p.stop = {"ok", "\xff"};
  r = call();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("stop[1] is not valid UTF-8"), std::string::npos) << r.status().message();
  p.stop.clear();
  p.request_id = "id\xff";
  r = call();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("request_id is not valid UTF-8"), std::string::npos) << r.status().message();
  const Status cancel = client->cancel("id\xff", deadline_after(seconds(10)));
  EXPECT_NE(cancel.message().find("request_id is not valid UTF-8"), std::string::npos) << cancel.to_string();
  p.request_id.clear();
  EXPECT_TRUE(call().ok());
}

TEST_F(ControlServerTest, CancelWithABadIdIsInvalidArgument) {
  Status s = client->cancel("", deadline_after(seconds(10)));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("request_id"), std::string::npos);
}

}  // namespace
}  // namespace tandem::control
