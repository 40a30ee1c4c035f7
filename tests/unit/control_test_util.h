// The control-plane tests' fixture: a ControlServer on 127.0.0.1:0 serving a
// FakeJobHandler, and a ControlClient holding the right token.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "proto/control_client.h"
#include "proto/control_server.h"
#include "proto/tandem.grpc.pb.h"
#include "tests/unit/fake_job_handler.h"

namespace tandem::testing {

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start_server({}); }
  void TearDown() override {
    if (server) server->shutdown(deadline_after(std::chrono::seconds(10)));
  }

  // (Re)starts the server with `options` (the token is filled in).
  void start_server(control::ControlServerOptions options) {
    if (server) server->shutdown(deadline_after(std::chrono::seconds(10)));
    options.token = token;
    auto s = control::ControlServer::start(options, &handler);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server = std::move(s).value();
    ASSERT_GT(server->port(), 0);
    auto c = control::ControlClient::connect(server->endpoint(), token);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    client = std::move(c).value();
  }

  std::unique_ptr<v1::Control::Stub> raw_stub() const {
    return v1::Control::NewStub(grpc::CreateChannel(server->endpoint(), grpc::InsecureChannelCredentials()));
  }

  const std::string token = "s3cret-token-0123456789abcdef";
  FakeJobHandler handler;
  std::unique_ptr<control::ControlServer> server;
  std::unique_ptr<control::ControlClient> client;
};

}  // namespace tandem::testing
