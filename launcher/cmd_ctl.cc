// `tandem ctl`: talk to a running job's control endpoint (proto/tandem.proto)
// from the shell. Exit codes: 0 done, 1 the call failed (the message names the
// gRPC code and the cause), 2 the command line is wrong.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "proto/control_client.h"
#include "runtime/deadline.h"

namespace tandem::cli {
namespace {

constexpr int kUsage = 2;

struct CtlFlags {
  std::string endpoint;
  std::string token_file;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  std::optional<double> timeout_s;  // not given: 30 s, 600 s for generate
  bool json = false;
  // generate
  std::string prompt, tokens;
  std::string request_id;
  int64_t max_tokens = control::kDefaultMaxTokens;
  float temperature = 0, top_p = 1;
  int top_k = 0;
  int64_t seed = -1;
  std::vector<std::string> stop;
  // cancel
  std::string cancel_id;
};

int usage(const std::string& message) {
  std::fprintf(stderr, "tandem ctl: usage error: %s\n", message.c_str());
  return kUsage;
}

// The token as written by the launcher: one line, its newline not part of it.
Result<std::string> read_token(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read token file " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) return InvalidArgument("token file " + path + " is empty");
  return token;
}

// "1,2,3" -> {1, 2, 3}; false on anything that is not a comma-separated
// list of integers (the server checks their range).
bool parse_tokens(const std::string& csv, std::vector<int>* out) {
  std::stringstream in(csv);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    try {
      const long v = std::stol(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) return false;
      out->push_back(static_cast<int>(v));
    } catch (const std::exception&) {
      return false;
    }
  }
  return !out->empty();
}

std::string megabytes(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

int print_status(const control::JobStatus& s, bool json) {
  if (json) {
    nlohmann::json ranks = nlohmann::json::array();
    for (const auto& r : s.ranks) ranks.push_back({{"rank", r.rank}, {"host", r.host}, {"memory_bytes", r.memory_bytes}});
    const nlohmann::json j = {{"state", s.state},          {"model", s.model},
                              {"model_shape", s.model_shape}, {"tp", s.tp},
                              {"pp", s.pp},                {"uptime_s", s.uptime_s},
                              {"tokens_served", s.tokens_served}, {"requests_served", s.requests_served},
                              {"ranks", ranks}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("state     %s\n", s.state.c_str());
  std::printf("model     %s (%s)\n", s.model.c_str(), s.model_shape.c_str());
  std::printf("parallel  tp=%d pp=%d\n", s.tp, s.pp);
  std::printf("uptime    %.1f s\n", s.uptime_s);
  std::printf("served    %lld requests, %lld tokens\n", static_cast<long long>(s.requests_served),
              static_cast<long long>(s.tokens_served));
  for (const auto& r : s.ranks)
    std::printf("rank %-4d %s, %s in use\n", r.rank, r.host.c_str(), megabytes(r.memory_bytes).c_str());
  return 0;
}

int run_generate(control::ControlClient& client, const CtlFlags& f, Deadline deadline) {
  control::GenerateParams p;
  p.request_id = f.request_id;
  if (!f.tokens.empty()) {
    if (!f.prompt.empty()) return usage("--prompt and --tokens exclude each other");
    if (!parse_tokens(f.tokens, &p.prompt_tokens))
      return usage("--tokens wants comma-separated token ids like 1,2,3, got '" + f.tokens + "'");
    p.has_prompt_tokens = true;
  }
  p.prompt = f.prompt;
  p.max_tokens = f.max_tokens;
  p.temperature = f.temperature;
  p.top_p = f.top_p;
  p.top_k = f.top_k;
  p.seed = f.seed;
  p.stop = f.stop;
  std::string id;
  auto summary = client.generate(
      p,
      [](const control::GeneratedPiece& piece) {
        std::fwrite(piece.text.data(), 1, piece.text.size(), stdout);
        std::fflush(stdout);
        return true;
      },
      deadline, [&](const std::string& started) { id = started; });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!summary.ok()) return report_error(summary.status());
  std::fprintf(stderr, "tandem ctl: request %s: %lld prompt tokens, %lld generated, finish %s\n", id.c_str(),
               static_cast<long long>(summary->prompt_tokens), static_cast<long long>(summary->generated_tokens),
               std::string(control::to_string(summary->finish)).c_str());
  return 0;
}

int run_ctl(const std::string& action, const CtlFlags& f) {
  if (f.timeout_s && !(*f.timeout_s > 0 && *f.timeout_s <= 86400))  // NaN fails too
    return usage("--timeout must be in (0, 86400] seconds");
  const double timeout_s = f.timeout_s.value_or(action == "generate" ? 600 : 30);
  const Deadline deadline = deadline_after(seconds_to_ms(timeout_s));
  auto token = read_token(f.token_file);
  if (!token.ok()) return report_error(token.status());
  auto client = control::ControlClient::connect(f.endpoint, *token, {f.tls_ca, f.tls_cert, f.tls_key, f.tls_server_name});
  if (!client.ok()) return report_error(client.status());
  control::ControlClient& c = **client;
  if (action == "health") {
    if (Status s = c.health(deadline); !s.ok()) return report_error(s);
    std::printf("ok\n");
    return 0;
  }
  if (action == "status") {
    auto s = c.status(deadline);
    if (!s.ok()) return report_error(s.status());
    return print_status(*s, f.json);
  }
  if (action == "generate") return run_generate(c, f, deadline);
  if (action == "cancel") {
    if (Status s = c.cancel(f.cancel_id, deadline); !s.ok()) return report_error(s);
    std::printf("cancelled %s\n", f.cancel_id.c_str());
    return 0;
  }
  if (Status s = c.shutdown(deadline); !s.ok()) return report_error(s);
  std::printf("shutdown requested\n");
  return 0;
}

}  // namespace

void add_ctl_command(CLI::App& app) {
  auto f = std::make_shared<CtlFlags>();
  CLI::App* ctl = app.add_subcommand("ctl", "Talk to a running job's control endpoint (gRPC, tandem.v1)");
  // Usage errors exit 2, so scripts tell a wrong command line from a failed call.
  ctl->preparse_callback([](size_t) { set_usage_exit_code(kUsage); });
  ctl->require_subcommand(1);
  ctl->add_option("--endpoint", f->endpoint, "HOST:PORT of rank 0's control endpoint")->required();
  ctl->add_option("--token-file", f->token_file, "File holding the job token (<run_dir>/<run id>/token)")
      ->required();
  ctl->add_option("--tls-ca", f->tls_ca, "CA certificate (PEM) the server's must chain to; turns TLS on");
  ctl->add_option("--tls-cert", f->tls_cert, "Client certificate (PEM), for servers that demand one");
  ctl->add_option("--tls-key", f->tls_key, "The client certificate's key (PEM)");
  ctl->add_option("--tls-server-name", f->tls_server_name, "Name to check the server's certificate against");
  ctl->add_option("--timeout", f->timeout_s, "Seconds the call may take, in (0, 86400] (default 30; generate 600)");

  auto action = [&](const char* name, const char* help) {
    CLI::App* sub = ctl->add_subcommand(name, help);
    sub->fallthrough();  // --endpoint and friends may follow the action too
    sub->callback([f, name] { set_exit_code(run_ctl(name, *f)); });
    return sub;
  };
  action("health", "Exit 0 when the job can serve");
  CLI::App* status = action("status", "Ranks, memory, model, layout, counters");
  status->add_flag("--json", f->json, "Print JSON instead of text");
  CLI::App* gen = action("generate", "Stream a completion to stdout");
  gen->add_option("--prompt", f->prompt, "Prompt text");
  gen->add_option("--tokens", f->tokens, "Prompt as token ids: 1,2,3 (instead of --prompt)");
  gen->add_option("--request-id", f->request_id, "Id for cancel (default: the server assigns one)");
  gen->add_option("--max-tokens", f->max_tokens, "Tokens to generate at most")->capture_default_str();
  gen->add_option("--temperature", f->temperature, "0 = greedy")->capture_default_str();
  gen->add_option("--top-p", f->top_p, "Nucleus sampling threshold, 1 = off")->capture_default_str();
  gen->add_option("--top-k", f->top_k, "Sample among the k most likely, 0 = off")->capture_default_str();
  gen->add_option("--seed", f->seed, "Sampling seed (default: the server draws one)");
  gen->add_option("--stop", f->stop, "Stop string (repeatable)");
  CLI::App* cancel = action("cancel", "Stop a running generate");
  cancel->add_option("request_id", f->cancel_id, "The request's id")->required();
  action("shutdown", "Ask the job to wind down");
}

}  // namespace tandem::cli
