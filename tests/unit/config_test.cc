// The run config: the embedded default, round trips through to_yaml, every
// kind of error with the key path and line it must name, --set overrides,
// and run directories.
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>

#include "launcher/config.h"
#include "launcher/train_job.h"
#include "tests/unit/test_paths.h"

namespace tandem::launcher {
namespace {

using testing::TempDir;

// The error message of parsing `yaml` (as "x.yaml") with `overrides`; "" if it parsed.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  auto r = parse_config(yaml, "x.yaml", overrides);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  return r.status().message();
}

RunConfig parse_ok(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  auto r = parse_config(yaml, "x.yaml", overrides);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  RunConfig config;  // not `r.ok() ? *r : RunConfig{}`: GCC 12 warns falsely on that temporary
  if (r.ok()) config = std::move(r).value();
  return config;
}

TEST(Config, EmbeddedDefaultParsesToTheDefaults) {
  auto r = parse_config(default_config_yaml(), "local.yaml", {});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, RunConfig{});
  ASSERT_EQ(r->cluster.nodes.size(), 2u);
  EXPECT_EQ(r->cluster.nodes[1].host, "localhost");
  EXPECT_EQ(r->parallel.tp * r->parallel.pp, 2);
  EXPECT_EQ(r->model.path, "models/stories260K");
  EXPECT_EQ(r->control.address, "127.0.0.1");
  EXPECT_TRUE(validate_config(RunConfig{}).ok());
  RunConfig bad;
  bad.generate.temperature = std::numeric_limits<float>::infinity();
  EXPECT_EQ(validate_config(bad).message(), "generate.temperature: must be finite and >= 0 (0 is greedy)");
}

TEST(Config, LocalYamlIsTheEmbeddedDefault) {
  const std::string file = testing::read_file(testing::source_dir() + "/configs/local.yaml");
  EXPECT_EQ(file, default_config_yaml());
  auto loaded = load_config(testing::source_dir() + "/configs/local.yaml", {});
  auto embedded = load_config("", {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  ASSERT_TRUE(embedded.ok()) << embedded.status().to_string();
  EXPECT_EQ(*loaded, *embedded);
}

TEST(Config, RoundTripsThroughYaml) {
  EXPECT_EQ(parse_ok(to_yaml(RunConfig{})), RunConfig{});
  // Every key away from its default, with strings YAML would otherwise read
  // as something else.
  RunConfig c;
  c.cluster.nodes = {NodeConfig{"spark-a", {"ubuntu", 2222, "~/.ssh/id_ed25519", {"StrictHostKeyChecking=yes"}},
                                "10.0.0.1", "enp1s0f0np0", "/opt/tandem/bin/tandem", "/srv/work", "0-9"},
                     NodeConfig{"null", {"", 22, "", {}}, "10.0.0.2", "", "", "", "0-3,8"},
                     NodeConfig{"2", {}, "", "", "", "", ""},
                     NodeConfig{"true", {}, "", "", "", "", ""}};
  c.job = JobKind::kServe;
  c.model = {"/models/llama: 3 #1", ModelFormat::kSafetensors, DType::kQ4_0, 4096};
  c.parallel = {4, 1};
  c.backend = {ComputeBackend::kCuda, CommBackend::kNccl, 3};
  c.control = {"0.0.0.0", 50051, {"cert.pem", "key.pem", "ca.pem"}};
  c.env = {{"NCCL_DEBUG", "INFO"}, {"UCX_TLS", "tcp,self"}, {"EMPTY", ""}, {"NUM", "007"}};
  c.run_dir = "/tmp/runs";
  c.generate = {"Once upon a time\n\"quoted\" ~", 64, 0.7f, 0.95f, 40, 1234567890123, "out/logits.f32"};
  c.launch = {0.5, 2.5, 30, 10, 2, 7};
  const std::string yaml = to_yaml(c);
  EXPECT_EQ(parse_ok(yaml), c) << yaml;
  EXPECT_EQ(to_yaml(parse_ok(yaml)), yaml);
}

TEST(Config, MissingKeysKeepTheDefaults) {
  RunConfig c = parse_ok("parallel:\n  pp: 1\ngenerate:\nenv:\n");
  EXPECT_EQ(c, RunConfig{});
  EXPECT_EQ(parse_ok(""), RunConfig{});
}

TEST(Config, UnknownKeyNamesPathLineAndSuggestion) {
  EXPECT_EQ(error_of("job: generate\nparallel:\n  tp: 2\n  tpp: 1\n"),
            "x.yaml:4:3: unknown key 'parallel.tpp' (did you mean 'parallel.tp'?)");
  EXPECT_EQ(error_of("cluster:\n  nodes:\n    - host: a\n      ssh: {usr: me}\n"),
            "x.yaml:4:13: unknown key 'cluster.nodes[0].ssh.usr' (did you mean 'cluster.nodes[0].ssh.user'?)");
  EXPECT_EQ(error_of("model:\n  zebra: 1\n"),
            "x.yaml:2:3: unknown key 'model.zebra' (allowed here: path, format, dtype, context)");
  EXPECT_EQ(error_of("runn_dir: x\n"), "x.yaml:1:1: unknown key 'runn_dir' (did you mean 'run_dir'?)");
}

TEST(Config, WrongTypesNameTheKeyAndLine) {
  EXPECT_EQ(error_of("\nparallel:\n  tp: two\n"), "x.yaml:3:7: parallel.tp: expected an integer, got 'two'");
  EXPECT_EQ(error_of("parallel:\n  tp: 1.5\n"), "x.yaml:2:7: parallel.tp: expected an integer, got '1.5'");
  EXPECT_EQ(error_of("parallel:\n  tp: 99999999999\n"), "x.yaml:2:7: parallel.tp: '99999999999' is out of range");
  EXPECT_EQ(error_of("generate:\n  top_p: high\n"), "x.yaml:2:10: generate.top_p: expected a number, got 'high'");
  EXPECT_EQ(error_of("model:\n  path: [a, b]\n"), "x.yaml:2:9: model.path: expected a string, got a list");
  EXPECT_EQ(error_of("parallel: 2\n"), "x.yaml:1:11: parallel: expected a mapping, got '2'");
  EXPECT_EQ(error_of("cluster:\n  nodes: {host: a}\n"), "x.yaml:2:10: cluster.nodes: expected a list, got a mapping");
  EXPECT_EQ(error_of("env:\n  A: {b: c}\n"), "x.yaml:2:6: env.A: expected a string, got a mapping");
  EXPECT_EQ(error_of("- a\n"), "x.yaml:1:1: expected a mapping at the top level, got a list");
  // A key with no value points at the key, not the line after it.
  EXPECT_EQ(error_of("parallel:\n  tp:\n  pp: 1\n"), "x.yaml:2:3: parallel.tp: expected an integer, got nothing");
}

TEST(Config, UnknownEnumValuesListTheAllowedOnes) {
  EXPECT_EQ(error_of("job: infer\n"), "x.yaml:1:6: job: unknown value 'infer' (allowed: generate, serve, train, bench)");
  EXPECT_EQ(error_of("model:\n  dtype: fp16\n"),
            "x.yaml:2:10: model.dtype: unknown value 'fp16' (allowed: f32, f16, bf16, q8_0, q4_0, q4_k, auto)");
  EXPECT_EQ(error_of("backend:\n  comm: mpi\n"), "x.yaml:2:9: backend.comm: unknown value 'mpi' (allowed: ucx, nccl)");
}

TEST(Config, DuplicateKeysAreRejected) {
  EXPECT_EQ(error_of("parallel:\n  tp: 2\n  pp: 1\n  tp: 1\n"),
            "x.yaml:4:3: duplicate key 'parallel.tp' (first at line 2)");
  EXPECT_EQ(error_of("env:\n  A: 1\n  A: 2\n"), "x.yaml:3:3: duplicate key 'env.A' (first at line 2)");
}

TEST(Config, SyntaxErrorsNameTheLine) {
  const std::string e = error_of("parallel:\n  tp: [1,\n");
  EXPECT_EQ(e.rfind("x.yaml:3:1: invalid YAML: ", 0), 0u) << e;
}

TEST(Config, ImpossibleValuesNameTheKeyAndLine) {
  EXPECT_EQ(error_of("parallel:\n  tp: 0\n  pp: 2\n"), "x.yaml:2:7: parallel.tp: must be at least 1, got 0");
  EXPECT_EQ(error_of("parallel:\n  tp: 2\n  pp: -1\n"), "x.yaml:3:7: parallel.pp: must be at least 1, got -1");
  EXPECT_EQ(error_of("control:\n  port: 70000\n"), "x.yaml:2:9: control.port: 70000 is outside 0..65535");
  EXPECT_EQ(error_of("model:\n  context: -1\n"),
            "x.yaml:2:12: model.context: must be in [0, 4194304] (0: the model's own context), got -1");
  EXPECT_EQ(error_of("cluster:\n  nodes:\n    - host: a\n    - host: b\n      ssh: {port: -1}\n"),
            "x.yaml:5:19: cluster.nodes[1].ssh.port: -1 is outside 0..65535");
  EXPECT_EQ(error_of("cluster:\n  nodes:\n    - host: a\n    - ssh: {user: me}\n"),
            "x.yaml:4:7: cluster.nodes[1].host: must not be empty");
  EXPECT_EQ(error_of("generate:\n  steps: 0\n"), "x.yaml:2:10: generate.steps: must be at least 1, got 0");
  EXPECT_EQ(error_of("generate:\n  temperature: -0.5\n"),
            "x.yaml:2:16: generate.temperature: must be finite and >= 0 (0 is greedy)");
  EXPECT_EQ(error_of("generate:\n  top_p: 0\n"), "x.yaml:2:10: generate.top_p: must be in (0, 1] (1 is off)");
  EXPECT_EQ(error_of("generate:\n  top_p: 1.5\n"), "x.yaml:2:10: generate.top_p: must be in (0, 1] (1 is off)");
  EXPECT_EQ(error_of("backend:\n  comm: nccl\n"),
            "x.yaml:2:9: backend.comm: nccl moves GPU buffers, so it needs backend.compute: cuda");
  EXPECT_EQ(error_of("control:\n  tls: {cert: c.pem}\n"),
            "x.yaml:2:8: control.tls.key: control.tls.cert and control.tls.key go together: set both or neither");
  EXPECT_EQ(error_of("env: {1X: a}\n"),
            "x.yaml:1:11: env.1X: not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
}

TEST(Config, RanksMustMatchNodes) {
  EXPECT_EQ(error_of("parallel:\n  tp: 4\n"),
            "x.yaml:2:7: parallel.tp: tp * pp = 4 * 1 = 4 ranks, but cluster.nodes lists 2 nodes (one rank per node)");
  EXPECT_EQ(error_of("cluster:\n  nodes: []\n"), "x.yaml:2:10: cluster.nodes: needs at least one node");
  RunConfig c = parse_ok("cluster:\n  nodes: [{host: a}, {host: b}, {host: c}, {host: d}]\nparallel: {tp: 4, pp: 1}\n");
  EXPECT_EQ(c.cluster.nodes.size(), 4u);
  EXPECT_EQ(c.cluster.nodes[3].host, "d");
  EXPECT_EQ(c.cluster.nodes[3].ssh.port, 0);  // ssh's own choice
}

TEST(Config, OverridesSetScalarsNestedKeysNodesAndEnv) {
  RunConfig c = parse_ok("", {"job=bench", "control.tls.cert=/etc/c.pem", "control.tls.key=/etc/k.pem",
                              "cluster.nodes[1].host=10.0.0.2", "cluster.nodes[1].ssh.port=2222",
                              "env.NCCL_DEBUG=INFO", "env.UCX_TLS=tcp,self", "generate.temperature=0.8",
                              "generate.prompt=\"Once: upon\""});
  EXPECT_EQ(c.job, JobKind::kBench);
  EXPECT_EQ(c.control.tls.cert, "/etc/c.pem");
  EXPECT_EQ(c.cluster.nodes[1].host, "10.0.0.2");
  EXPECT_EQ(c.cluster.nodes[1].ssh.port, 2222);
  EXPECT_EQ(c.cluster.nodes[0].host, "localhost");
  EXPECT_EQ(c.env, (std::map<std::string, std::string>{{"NCCL_DEBUG", "INFO"}, {"UCX_TLS", "tcp,self"}}));
  EXPECT_FLOAT_EQ(c.generate.temperature, 0.8f);
  EXPECT_EQ(c.generate.prompt, "Once: upon");
}

TEST(Config, OverridesApplyInOrderOverTheFile) {
  RunConfig c = parse_ok("parallel:\n  tp: 2\n", {"parallel.tp=4", "parallel.tp=1", "parallel.pp=2"});
  EXPECT_EQ(c.parallel.tp, 1);
  EXPECT_EQ(c.parallel.pp, 2);
}

TEST(Config, OverridesReplaceWholeSectionsAndAppendNodes) {
  RunConfig c = parse_ok("", {"cluster.nodes=[{host: a}]", "parallel={tp: 1, pp: 1}"});
  ASSERT_EQ(c.cluster.nodes.size(), 1u);
  EXPECT_EQ(c.cluster.nodes[0].host, "a");
  // A mapping sets the keys it names and keeps the rest, as a file does over the defaults.
  c = parse_ok("", {"cluster.nodes[1]={ssh: {port: 2222}}"});
  EXPECT_EQ(c.cluster.nodes[1].host, "localhost");
  EXPECT_EQ(c.cluster.nodes[1].ssh.port, 2222);
  c = parse_ok("", {"cluster.nodes[2].host=c", "parallel.tp=3"});
  ASSERT_EQ(c.cluster.nodes.size(), 3u);
  EXPECT_EQ(c.cluster.nodes[2].host, "c");
}

TEST(Config, BadOverridesNameThePath) {
  EXPECT_EQ(error_of("", {"parallel.tpp=2"}),
            "--set parallel.tpp=2: unknown key 'parallel.tpp' (did you mean 'parallel.tp'?)");
  EXPECT_EQ(error_of("", {"paralel.tp=2"}), "--set paralel.tp=2: unknown key 'paralel' (did you mean 'parallel'?)");
  EXPECT_EQ(error_of("", {"parallel.tp.x=2"}),
            "--set parallel.tp.x=2: unknown key 'parallel.tp.x' ('parallel.tp' is a value, not a section)");
  EXPECT_EQ(error_of("", {"parallel.tp=two"}), "--set parallel.tp=two: parallel.tp: expected an integer, got 'two'");
  EXPECT_EQ(error_of("", {"cluster.nodes[5].host=x"}),
            "--set cluster.nodes[5].host=x: cluster.nodes[5]: index out of range (cluster.nodes has 2 entries; "
            "index 2 appends one)");
  EXPECT_EQ(error_of("", {"cluster.nodes.host=x"}),
            "--set cluster.nodes.host=x: bad key path 'cluster.nodes.host' (a list takes [index])");
  EXPECT_EQ(error_of("", {"parallel.tp"}), "--set parallel.tp: expected KEY.PATH=VALUE");
  EXPECT_EQ(error_of("", {"job=[serve"}).rfind("--set job=[serve: the value is not valid YAML: ", 0), 0u);
  // Checks after the overrides point at the override that broke them.
  EXPECT_EQ(error_of("parallel:\n  tp: 2\n", {"parallel.tp=1"}),
            "--set parallel.tp=1: parallel.tp: tp * pp = 1 * 1 = 1 ranks, but cluster.nodes lists 2 nodes (one rank "
            "per node)");
  EXPECT_EQ(error_of("", {"cluster.nodes[1].host=\"\""}),
            "--set cluster.nodes[1].host=\"\": cluster.nodes[1].host: must not be empty");
}

TEST(Config, LoadConfigReadsFilesAndNamesThem) {
  TempDir dir;
  testing::write_file(dir.file("a.yaml"), "parallel:\n  tp: 3\n");
  auto r = load_config(dir.file("a.yaml"), {"cluster.nodes[2].host=x"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->parallel.tp, 3);
  auto bad = load_config(dir.file("a.yaml"), {});
  EXPECT_EQ(bad.status().message(), dir.file("a.yaml") +
                                        ":2:7: parallel.tp: tp * pp = 3 * 1 = 3 ranks, but cluster.nodes lists 2 "
                                        "nodes (one rank per node)");
  EXPECT_EQ(load_config(dir.file("missing.yaml"), {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(load_config(dir.path(), {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(Config, RunDirectoryHoldsTheResolvedConfig) {
  TempDir dir;
  RunConfig c = parse_ok("", {"run_dir=" + dir.file("runs/nested"), "env.A=b", "generate.seed=7"});
  auto made = create_run_directory(c, "run-1");
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  EXPECT_EQ(*made, dir.file("runs/nested/run-1"));
  const std::string text = testing::read_file(*made + "/config.yaml");
  EXPECT_EQ(text, to_yaml(c));
  EXPECT_EQ(parse_ok(text), c);
  EXPECT_FALSE(std::filesystem::exists(*made + "/config.yaml.tmp"));
  // A run directory is never reused.
  EXPECT_EQ(create_run_directory(c, "run-1").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(create_run_directory(c, "../escape").status().code(), StatusCode::kInvalidArgument);
}

TEST(Config, RunDirectoryWithoutIdGetsAFreshOne) {
  TempDir dir;
  RunConfig c;
  c.run_dir = dir.path();
  auto a = create_run_directory(c);
  auto b = create_run_directory(c);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_NE(*a, *b);
  const std::string id = std::filesystem::path(*a).filename().string();
  // 20250131T120501Z-3fa9c2
  EXPECT_EQ(id.size(), 23u) << id;
  EXPECT_EQ(id[8], 'T');
  EXPECT_EQ(id[15], 'Z');
  EXPECT_TRUE(std::filesystem::exists(*b + "/config.yaml"));
}

}  // namespace
}  // namespace tandem::launcher

namespace tandem::launcher {
namespace {

TEST(Config, OneDocumentAndNoValueThatYamlEmptiesSilently) {
  EXPECT_EQ(error_of("job: serve\n---\nparallel: {tpp: 1}\n"),
            "x.yaml: holds 2 YAML documents (separated by '---'); a config is one");
  EXPECT_EQ(error_of("---\njob: serve\n"), "");  // a leading marker is still one document
  EXPECT_EQ(error_of("", {"http.api_keys="}),
            "--set http.api_keys=: empty value (write [] for an empty list, '\"\"' for an empty string)");
  EXPECT_EQ(error_of("", {"generate.prompt=#1 bestseller"}),
            "--set generate.prompt=#1 bestseller: YAML reads the value as null (a '#' starts a comment); quote "
            "it, e.g. generate.prompt='\"#1 bestseller\"'");
  EXPECT_EQ(parse_ok("", {"generate.prompt=\"#1 bestseller\""}).generate.prompt, "#1 bestseller");
  EXPECT_TRUE(parse_ok("http:\n  api_keys: [a]\n", {"http.api_keys=[]"}).http.api_keys.empty());
  EXPECT_EQ(parse_ok("", {"generate.prompt=\"\""}).generate.prompt, "");
  // Part of a value lost to YAML's syntax is refused too, not taken in part.
  EXPECT_EQ(error_of("", {"generate.prompt=Tell me about #hashtags"}),
            "--set generate.prompt=Tell me about #hashtags: YAML reads the value as \"Tell me about\", not all of "
            "what was written (' #' starts a comment, '!' a tag, '&' an anchor, '|' and '>' a block, a line break "
            "folds); quote it, e.g. generate.prompt='\"Tell me about #hashtags\"'");
  for (const char* lossy : {"generate.prompt=!foo bar", "generate.prompt=&a hi", "control.tls.client_ca=|",
                            "generate.prompt=\"Hello\" #1 fan", "generate.prompt='a' b", "generate.prompt=a\nb",
                            "http.api_keys=[k1, k2] #k3", "http.api_keys=[k1] &x"})
    EXPECT_NE(error_of("", {lossy}).find("YAML reads the value"), std::string::npos) << lossy;
  EXPECT_EQ(parse_ok("", {"generate.prompt='it''s \"#1\"'"}).generate.prompt, "it's \"#1\"");
  EXPECT_EQ(parse_ok("", {"generate.prompt=\"say \\\"hi\\\" #2\""}).generate.prompt, "say \"hi\" #2");
  EXPECT_EQ(parse_ok("", {"http.api_keys=[k1, \"k#2\"]"}).http.api_keys, (std::vector<std::string>{"k1", "k#2"}));
  EXPECT_EQ(parse_ok("", {"generate.prompt=C# is  fine "}).generate.prompt, "C# is  fine");
  EXPECT_EQ(parse_ok("", {"generate.prompt=\"#1\""}).generate.prompt, "#1");
}

TEST(Config, LaunchTimingsMustBeSane) {
  EXPECT_EQ(error_of("launch:\n  stop_grace_s: -1\n"),
            "x.yaml:2:17: launch.stop_grace_s: must be a number of seconds in [0.001, 86400]");
  // Under a millisecond would be a 0 ms deadline: every exchange timed out at once.
  EXPECT_EQ(error_of("launch:\n  step_timeout_s: 0.0009\n"),
            "x.yaml:2:19: launch.step_timeout_s: must be a number of seconds in [0.001, 86400]");
  EXPECT_EQ(error_of("launch:\n  heartbeat_interval_s: 2\n  heartbeat_timeout_s: 3\n"),
            "x.yaml:3:24: launch.heartbeat_timeout_s: must be at least twice launch.heartbeat_interval_s, or one "
            "late beat ends the job");
  EXPECT_EQ(error_of("launch:\n  step_timeout_s: 0.5\n"),
            "x.yaml:2:19: launch.step_timeout_s: must be at least twice launch.heartbeat_interval_s, or an idle job's "
            "followers time out waiting for rank 0's keep-alive");
  EXPECT_EQ(error_of("", {"launch.step_timeout_s=2"}), "");
  // One '+' is a sign; '+-' and '++' are not numbers.
  EXPECT_EQ(error_of("", {"generate.seed=+7"}), "");
  EXPECT_NE(error_of("", {"generate.seed=+-1"}).find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of("", {"launch.stop_grace_s=++2"}).find("expected a number"), std::string::npos);
  EXPECT_EQ(error_of("", {"launch.preflight_timeout_s=1e9"}),
            "--set launch.preflight_timeout_s=1e9: launch.preflight_timeout_s: must be a number of seconds in [0.001, 86400]");
  EXPECT_EQ(error_of("cluster:\n  nodes:\n    - host: a\n      ssh: {options: yes}\n"),
            "x.yaml:4:22: cluster.nodes[0].ssh.options: expected a list, got 'yes'");
}

TEST(Config, RefusesTensorAndPipelineParallelTogether) {
  const std::string yaml =
      "cluster:\n  nodes:\n    - host: a\n    - host: b\n    - host: c\n    - host: d\n"
      "parallel:\n  tp: 2\n  pp: 2\n";
  EXPECT_NE(error_of(yaml).find("parallel.pp: tp=2 with pp=2"), std::string::npos) << error_of(yaml);
}

// The shipped configs load, and say what their comments promise.
TEST(Config, ShippedConfigsLoad) {
  auto pp = load_config(testing::source_dir() + "/configs/local-pp.yaml", {});
  ASSERT_TRUE(pp.ok()) << pp.status().to_string();
  EXPECT_EQ(pp->parallel.tp, 1);
  EXPECT_EQ(pp->parallel.pp, 2);
  EXPECT_EQ(pp->cluster.nodes.size(), 2u);
  auto spark = load_config(testing::source_dir() + "/configs/two-spark.yaml", {});
  ASSERT_TRUE(spark.ok()) << spark.status().to_string();
  EXPECT_EQ(spark->backend.compute, ComputeBackend::kCuda);
  EXPECT_EQ(spark->backend.comm, CommBackend::kNccl);
  EXPECT_EQ(spark->parallel.tp, 2);
  ASSERT_EQ(spark->cluster.nodes.size(), 2u);
  EXPECT_EQ(spark->cluster.nodes[1].host, "spark-b");
  EXPECT_FALSE(spark->cluster.nodes[1].data_interface.empty());
  // nanoGPT's CPU Shakespeare recipe (its README), data-parallel over two workers.
  auto recipe = load_config(testing::source_dir() + "/configs/train-shakespeare.yaml", {});
  ASSERT_TRUE(recipe.ok()) << recipe.status().to_string();
  EXPECT_EQ(recipe->job, JobKind::kTrain);
  EXPECT_EQ(recipe->parallel.dp, 2);
  EXPECT_EQ(recipe->parallel.tp, 1);
  const TrainConfig& t = recipe->train;
  EXPECT_EQ(t.tokenizer, "char");
  EXPECT_EQ(t.data, "data/tinyshakespeare.txt");
  EXPECT_EQ(t.layers, 4);
  EXPECT_EQ(t.heads, 4);
  EXPECT_EQ(t.dim, 128);
  EXPECT_EQ(t.block_size, 64);
  EXPECT_EQ(t.batch_size, 12);
  EXPECT_EQ(t.iters, 2000);
  EXPECT_EQ(t.lr, 1e-3);
  EXPECT_EQ(t.min_lr, 1e-4);
  EXPECT_EQ(t.warmup_iters, 100);
  EXPECT_EQ(t.beta2, 0.99);
  EXPECT_EQ(t.eval_interval, 250);
  EXPECT_EQ(recipe->backend.threads, 1);
}

// job: train: parallel.dp, the train section's rules, booleans.
TEST(Config, TrainingJobsAreCheckedWithTheirKeys) {
  const std::string train = "job: train\nparallel:\n  tp: 1\n  dp: 2\n";
  auto ok = parse_config(train + "train:\n  resume: true\n  overlap: off\n", "x.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->train.resume);
  EXPECT_EQ(ok->train.overlap, Overlap::kOff);
  auto again = parse_config(to_yaml(*ok), "again.yaml");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(*again, *ok);
  EXPECT_EQ(error_of(train + "train:\n  resume: yes\n"),
            "x.yaml:6:11: train.resume: expected true or false, got 'yes'");
  EXPECT_EQ(error_of("parallel:\n  tp: 1\n  dp: 2\n"),
            "x.yaml:3:7: parallel.dp: data parallelism (dp=2) is for job: train; inference shards with tp or pp");
  EXPECT_NE(error_of(train + "train:\n  batch_size: 7\n").find("train.batch_size: 7 windows do not split into dp=2"),
            std::string::npos);
  EXPECT_NE(error_of("job: train\nparallel:\n  tp: 2\ntrain:\n  heads: 6\n  kv_heads: 3\n  dim: 120\n")
                .find("parallel.tp: tp=2 must divide train.heads (6) and train.kv_heads (3)"),
            std::string::npos);
  EXPECT_NE(error_of("job: train\nparallel:\n  tp: 1\n  pp: 2\n").find("pipeline training is not implemented"),
            std::string::npos);
  EXPECT_NE(error_of(train + "train:\n  heads: 3\n").find("train.heads: dim 128 must split into 3 heads"),
            std::string::npos);
  EXPECT_NE(error_of(train + "train:\n  min_lr: 0.01\n").find("train.min_lr"), std::string::npos);
  EXPECT_NE(error_of(train + "train:\n  itres: 5\n").find("did you mean 'train.iters'"), std::string::npos)
      << error_of(train + "train:\n  itres: 5\n");
}

// train.overlap: auto gives the exchange its own thread only where a
// hardware thread is spare beside every local rank's compute threads.
TEST(Config, OverlapAutoCountsTheRanksSharingAHost) {
  auto two_local = parse_config("job: train\nparallel:\n  tp: 1\n  dp: 2\nbackend:\n  threads: 1\n", "x.yaml");
  ASSERT_TRUE(two_local.ok()) << two_local.status().to_string();
  EXPECT_FALSE(overlap_exchange(*two_local, 0, 2));  // 2 ranks x (1 + 1) threads on 2
  EXPECT_TRUE(overlap_exchange(*two_local, 0, 4));
  RunConfig pinned = *two_local;  // each rank on CPUs of its own: the other rank's threads are not there
  pinned.cluster.nodes[0].cpu_affinity = "0-1";
  EXPECT_TRUE(overlap_exchange(pinned, 0, 2));
  EXPECT_FALSE(overlap_exchange(pinned, 0, 1));
  RunConfig two_hosts = *two_local;
  two_hosts.cluster.nodes[0].host = "spark-a";
  two_hosts.cluster.nodes[1].host = "spark-b";
  EXPECT_TRUE(overlap_exchange(two_hosts, 1, 2));
  two_hosts.backend.threads = 0;  // all of them compute
  EXPECT_FALSE(overlap_exchange(two_hosts, 1, 20));
  two_hosts.train.overlap = Overlap::kOn;
  EXPECT_TRUE(overlap_exchange(two_hosts, 1, 20));
  two_local->train.overlap = Overlap::kOff;
  EXPECT_FALSE(overlap_exchange(*two_local, 0, 64));
}

// A node's CPU list is checked where the config is read (its syntax) and
// by the worker on the node (whether the CPUs exist there).
TEST(Config, CpuAffinityIsACpuListNamedByItsNode) {
  auto ok = parse_config("cluster:\n  nodes:\n    - {host: localhost, cpu_affinity: \"0-3,8\"}\n"
                         "    - {host: localhost, cpu_affinity: \"4\"}\n", "x.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->cluster.nodes[0].cpu_affinity, "0-3,8");
  for (const char* bad : {"3-1", "a", "0,,1", "-1", "5000"}) {
    auto r = parse_config(std::string("cluster:\n  nodes:\n    - {host: localhost}\n    - {host: localhost, "
                                      "cpu_affinity: \"") + bad + "\"}\n", "x.yaml");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("cluster.nodes[1].cpu_affinity"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace tandem::launcher
