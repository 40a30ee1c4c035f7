// TLS on the control endpoint with a throwaway CA made by `openssl` for each
// test run (skipped, saying so, where openssl is not installed).
#include <gtest/gtest.h>

#include <array>

#include "tests/unit/control_test_util.h"
#include "tests/unit/process_util.h"

namespace tandem::control {
namespace {

using std::chrono::seconds;
using testing::run_command;
using testing::TempDir;

bool have_openssl() { return run_command({"openssl", "version"}, std::chrono::seconds(30)).exit_code == 0; }

// Makes <name>.key and <name>.pem in dir signed by ca (or self-signed as a CA
// when ca is empty). Returns "" or what failed.
std::string make_cert(const TempDir& dir, const std::string& name, const std::string& ca, const std::string& ext) {
  const std::string key = dir.file(name + ".key"), pem = dir.file(name + ".pem");
  auto run = [](const std::vector<std::string>& argv) {
    auto r = run_command(argv, std::chrono::seconds(60));
    return r.exit_code == 0 ? std::string() : argv[1] + " failed: " + r.err;
  };
  const std::vector<std::string> newkey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                           "-keyout", key};
  if (ca.empty()) {
    std::vector<std::string> argv = {"openssl", "req", "-x509", "-days", "1", "-subj", "/CN=" + name, "-out", pem,
                                     "-addext", "basicConstraints=critical,CA:TRUE",
                                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"};
    argv.insert(argv.end(), newkey.begin(), newkey.end());
    return run(argv);
  }
  std::vector<std::string> req = {"openssl", "req", "-subj", "/CN=" + name, "-out", dir.file(name + ".csr")};
  req.insert(req.end(), newkey.begin(), newkey.end());
  if (auto e = run(req); !e.empty()) return e;
  testing::write_file(dir.file(name + ".ext"), ext + "\n");
  return run({"openssl", "x509", "-req", "-days", "1", "-in", dir.file(name + ".csr"), "-CA", dir.file(ca + ".pem"),
              "-CAkey", dir.file(ca + ".key"), "-CAcreateserial", "-out", pem, "-extfile", dir.file(name + ".ext")});
}

class ControlTls : public testing::ControlServerTest {
 protected:
  void SetUp() override {
    if (!have_openssl()) GTEST_SKIP() << "openssl is not installed: TLS tests skipped (scripts/setup.sh installs it)";
    testing::ControlServerTest::SetUp();  // a plaintext server, until a test starts a TLS one
    for (auto [name, ca, ext] : std::vector<std::array<std::string, 3>>{
             {"ca", "", ""},
             {"server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"},
             {"client", "ca", "extendedKeyUsage=clientAuth"},
             {"other-ca", "", ""}}) {
      const std::string error = make_cert(dir, name, ca, ext);
      ASSERT_TRUE(error.empty()) << error;
    }
  }

  void start_tls(bool require_client_cert) {
    ControlServerOptions o;
    o.tls_cert_file = dir.file("server.pem");
    o.tls_key_file = dir.file("server.key");
    if (require_client_cert) o.tls_client_ca_file = dir.file("ca.pem");
    start_server(o);
  }

  Status health_with(const ClientTlsOptions& tls) {
    auto c = ControlClient::connect(server->endpoint(), token, tls);
    if (!c.ok()) return c.status();
    return (*c)->health(deadline_after(seconds(10)));
  }

  TempDir dir;
};

TEST_F(ControlTls, ClientTrustingTheCaConnects) {
  start_tls(false);
  Status s = health_with({dir.file("ca.pem"), "", "", ""});
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST_F(ControlTls, PlaintextClientFails) {
  start_tls(false);
  Status s = health_with({});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_EQ(handler.generate_calls, 0);
}

TEST_F(ControlTls, ClientTrustingAnotherCaFails) {
  start_tls(false);
  Status s = health_with({dir.file("other-ca.pem"), "", "", ""});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
}

TEST_F(ControlTls, ServerNameMustMatchTheCertificate) {
  start_tls(false);
  Status s = health_with({dir.file("ca.pem"), "", "", "not-the-server.example"});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
}

TEST_F(ControlTls, TlsClientAgainstAPlaintextServerFails) {
  Status s = health_with({dir.file("ca.pem"), "", "", ""});  // SetUp's server is plaintext
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
}

TEST_F(ControlTls, ClientCaDemandsAClientCertificate) {
  start_tls(true);
  Status without = health_with({dir.file("ca.pem"), "", "", ""});
  EXPECT_EQ(without.code(), StatusCode::kUnavailable) << without.to_string();
  Status with = health_with({dir.file("ca.pem"), dir.file("client.pem"), dir.file("client.key"), ""});
  EXPECT_TRUE(with.ok()) << with.to_string();
  // A client certificate from another CA is refused as well.
  ASSERT_TRUE(make_cert(dir, "stranger", "other-ca", "extendedKeyUsage=clientAuth").empty());
  Status stranger = health_with({dir.file("ca.pem"), dir.file("stranger.pem"), dir.file("stranger.key"), ""});
  EXPECT_EQ(stranger.code(), StatusCode::kUnavailable) << stranger.to_string();
}

TEST_F(ControlTls, TheTokenIsStillRequiredOverTls) {
  start_tls(false);
  auto c = ControlClient::connect(server->endpoint(), "wrong", {dir.file("ca.pem"), "", "", ""});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->health(deadline_after(seconds(10))).code(), StatusCode::kUnauthenticated);
}

TEST_F(ControlTls, ClientTlsFilesAreChecked) {
  auto c = ControlClient::connect("127.0.0.1:1", token, {dir.file("absent.pem"), "", "", ""});
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("absent.pem"), std::string::npos) << c.status().message();
  c = ControlClient::connect("127.0.0.1:1", token, {dir.file("ca.pem"), dir.file("client.pem"), "", ""});
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::control
