// The run config's http section: defaults, round trip, overrides, and the
// checks that name each impossible value.
#include <gtest/gtest.h>

#include "launcher/config.h"
#include "launcher/http_options.h"

namespace tandem::launcher {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  auto r = parse_config(yaml, "x.yaml", overrides);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  return r.status().message();
}

TEST(ConfigHttp, DefaultsAreOffOnLoopback) {
  const HttpConfig h = RunConfig{}.http;
  EXPECT_FALSE(h.enabled);
  EXPECT_EQ(h.address, "127.0.0.1");
  EXPECT_EQ(h.port, 0);
  EXPECT_TRUE(h.api_keys.empty());
  auto embedded = parse_config(default_config_yaml(), "local.yaml");
  ASSERT_TRUE(embedded.ok()) << embedded.status().to_string();
  EXPECT_EQ(embedded->http, h);  // configs/local.yaml spells out the same defaults
}

TEST(ConfigHttp, RoundTripsAndOverrides) {
  RunConfig c;
  c.job = JobKind::kServe;
  c.http = {true, "0.0.0.0", 8000, {"k1", "007", "true"}, "llama: 3", "chatml", 4096, 16, 512, 8, 1.5, 2.5, 3.5, 2};
  const std::string yaml = to_yaml(c);
  auto back = parse_config(yaml, "x.yaml");
  ASSERT_TRUE(back.ok()) << back.status().to_string() << "\n" << yaml;
  EXPECT_EQ(back->http, c.http) << yaml;
  auto set = parse_config("job: serve\n", "x.yaml",
                          {"http.enabled=true", "http.port=8080", "http.api_keys=[a, b]", "http.api_keys[2]=c"});
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_TRUE(set->http.enabled);
  EXPECT_EQ(set->http.port, 8080);
  EXPECT_EQ(set->http.api_keys, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ConfigHttp, ImpossibleValuesNameTheKey) {
  EXPECT_EQ(error_of("http:\n  port: 70000\n"), "x.yaml:2:9: http.port: 70000 is outside 0..65535");
  EXPECT_EQ(error_of("http:\n  prot: 1\n"), "x.yaml:2:3: unknown key 'http.prot' (did you mean 'http.port'?)");
  EXPECT_EQ(error_of("http:\n  api_keys: key\n"), "x.yaml:2:13: http.api_keys: expected a list, got 'key'");
  EXPECT_EQ(error_of("http:\n  api_keys: ['']\n"), "x.yaml:2:14: http.api_keys[0]: must not be empty");
  EXPECT_EQ(error_of("", {"http.max_request_bytes=10"}),
            "--set http.max_request_bytes=10: http.max_request_bytes: 10 is outside 1024..1073741824");
  EXPECT_EQ(error_of("http:\n  default_max_tokens: 10\n  max_tokens: 5\n"),
            "x.yaml:2:23: http.default_max_tokens: must be in [1, http.max_tokens]");
  EXPECT_EQ(error_of("http:\n  read_timeout_s: 0\n"),
            "x.yaml:2:19: http.read_timeout_s: must be a number of seconds in [0.001, 86400]");
  EXPECT_NE(error_of("http:\n  chat_template: jinja\n").find("http.chat_template: unknown family 'jinja'"),
            std::string::npos);
  EXPECT_EQ(error_of("http:\n  enabled: true\n"),
            "x.yaml:2:12: http.enabled: the HTTP endpoint serves `job: serve` runs");
  EXPECT_EQ(error_of("job: serve\nhttp:\n  enabled: true\n  max_queued: 0\n"),
            "x.yaml:4:15: http.max_queued: 0 is outside 1..100000");
}

// The serving engine's keys sit beside http's: the embedded default spells
// them out, and the prefill budget is checked on its own (above
// max_batch_tokens the scheduler caps it, so it is not refused).
TEST(ConfigHttp, EngineKeysDefaultsAndPrefillBudget) {
  auto embedded = parse_config(default_config_yaml(), "local.yaml");
  ASSERT_TRUE(embedded.ok()) << embedded.status().to_string();
  EXPECT_EQ(embedded->engine, EngineConfig{});
  EXPECT_EQ(EngineConfig{}.max_prefill_tokens, 32);
  auto set = parse_config("job: serve\n", "x.yaml", {"engine.max_prefill_tokens=200", "engine.max_batch_tokens=64"});
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ(set->engine.max_prefill_tokens, 200);
  EXPECT_EQ(error_of("engine:\n  max_prefill_tokens: 0\n"),
            "x.yaml:2:23: engine.max_prefill_tokens: 0 is outside 1..65536");
}

// engine.kv_dtype: f32 by default, f16 on the cpu backend only (the cuda
// backend's paged attention reads f32 pools), any other name refused.
TEST(ConfigHttp, KvDtypeIsF32OrF16OnTheCpuBackend) {
  EXPECT_EQ(EngineConfig{}.kv_dtype, KvDType::kF32);
  auto set = parse_config("job: serve\n", "x.yaml", {"engine.kv_dtype=f16"});
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ(set->engine.kv_dtype, KvDType::kF16);
  auto back = parse_config(to_yaml(*set), "x.yaml");
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->engine.kv_dtype, KvDType::kF16);
  EXPECT_NE(error_of("engine:\n  kv_dtype: bf16\n").find("engine.kv_dtype"), std::string::npos);
  EXPECT_EQ(error_of("backend:\n  compute: cuda\n  comm: nccl\nengine:\n  kv_dtype: f16\n"),
            "x.yaml:5:13: engine.kv_dtype: f16 needs backend.compute: cpu (the cuda backend's paged attention "
            "reads f32 pools)");
}

TEST(ConfigHttp, ServerOptionsFromTheConfig) {
  RunConfig c;
  c.model.path = "models/stories260K/";
  LoadedModel model;  // no files: the model's own template cannot be read
  serving::HttpServerOptions o = http_options(c, model);
  EXPECT_EQ(o.model_id, "stories260K");
  EXPECT_FALSE(o.chat_template.has_value());
  EXPECT_NE(o.no_chat_template_reason.find("http.chat_template"), std::string::npos);
  c.http.chat_template = "zephyr";
  c.http.model_name = "tiny";
  c.http.read_timeout_s = 0.25;
  o = http_options(c, model);
  ASSERT_TRUE(o.chat_template.has_value());
  EXPECT_EQ(o.chat_template->family(), ChatFamily::kZephyr);
  EXPECT_EQ(o.model_id, "tiny");
  EXPECT_EQ(o.read_timeout, std::chrono::milliseconds(250));
}

}  // namespace
}  // namespace tandem::launcher
