// tandem_fake_launcher: stands in for `tandem launch CONFIG --set job=serve
// --set control.port=PORT --run-id ID` in the tests of examples/orchestrate.py,
// with the same observable contract: it writes the job token to
// <run_dir>/<ID>/token, serves the control endpoint on 127.0.0.1:PORT (a fake
// job behind it, after a short start-up so clients must poll Health), and
// exits 0 once Shutdown is called. TANDEM_FAKE_LAUNCHER_FAIL=1 makes it exit 3
// before serving, as a launcher whose worker died would.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "proto/control_server.h"
#include "tests/unit/fake_job_handler.h"

namespace {

int fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "fake launcher: error: %s\n", message.c_str());
  return code;
}

std::string random_token() {
  std::random_device rd;
  std::string token;
  for (int i = 0; i < 32; ++i) token += "0123456789abcdef"[rd() % 16];
  return token;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "launch")
    return fail("usage: tandem_fake_launcher launch CONFIG [--set K=V]... --run-id ID", 2);
  const std::string config = argv[2];
  std::string run_id, run_dir = "runs", job = "generate";
  int port = -1;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return fail("flag " + arg + " wants a value", 2);
    const std::string value = argv[++i];
    if (arg == "--run-id") {
      run_id = value;
    } else if (arg == "--set") {
      const size_t eq = value.find('=');
      if (eq == std::string::npos) return fail("--set wants KEY=VALUE, got " + value, 2);
      const std::string key = value.substr(0, eq), v = value.substr(eq + 1);
      if (key == "job") job = v;
      else if (key == "control.port") port = std::atoi(v.c_str());
      else if (key == "run_dir") run_dir = v;
      else return fail("this fake knows only job, control.port and run_dir, got " + key, 2);
    } else {
      return fail("unknown flag " + arg, 2);
    }
  }
  if (!std::ifstream(config)) return fail("cannot read config " + config);
  if (run_id.empty() || port <= 0) return fail("--run-id and --set control.port=PORT are required", 2);
  if (job != "serve") return fail("this fake serves only job=serve, got " + job, 2);
  if (const char* f = std::getenv("TANDEM_FAKE_LAUNCHER_FAIL"); f && std::string(f) == "1")
    return fail("[rank 1] worker exited with code 1 (TANDEM_FAKE_LAUNCHER_FAIL)", 3);

  const std::filesystem::path dir = std::filesystem::path(run_dir) / run_id;
  std::error_code ec;
  if (std::filesystem::exists(dir) || !std::filesystem::create_directories(dir, ec))
    return fail("cannot create the run directory " + dir.string());
  const std::string token = random_token();
  {
    const std::string path = (dir / "token").string();
    std::ofstream out(path, std::ios::trunc);
    out << token << "\n";
    if (!out) return fail("cannot write " + path);
    ::chmod(path.c_str(), 0600);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // "loading the model"

  tandem::testing::FakeJobHandler handler;
  handler.piece_delay = std::chrono::milliseconds(20);
  tandem::control::ControlServerOptions options;
  options.port = port;
  options.token = token;
  auto server = tandem::control::ControlServer::start(options, &handler);
  if (!server.ok()) return fail(server.status().to_string());
  std::printf("[rank 0] control endpoint %s\n", (*server)->endpoint().c_str());
  std::fflush(stdout);
  const bool asked = handler.wait_for_shutdown_request(std::chrono::minutes(2));
  (*server)->shutdown(tandem::deadline_after(std::chrono::seconds(5)));
  if (!asked) return fail("no Shutdown within 2 minutes");
  std::printf("[rank 0] shut down\n");
  return 0;
}
