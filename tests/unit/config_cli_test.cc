// `tandem config show` as a user runs it: the resolved YAML on stdout, and
// for a bad config the key and line on stderr with exit code 1.
#include <gtest/gtest.h>

#include "launcher/config.h"
#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

testing::CommandResult tandem(std::vector<std::string> args) {
  args.insert(args.begin(), testing::tandem_binary());
  return testing::run_command(args, std::chrono::seconds(60));
}

TEST(ConfigCli, ShowPrintsTheEmbeddedDefault) {
  auto r = tandem({"config", "show"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, launcher::to_yaml(launcher::RunConfig{}));
  EXPECT_NE(r.out.find("tp: 2"), std::string::npos) << r.out;
}

TEST(ConfigCli, ShowAppliesOverridesToAFile) {
  testing::TempDir dir;
  testing::write_file(dir.file("c.yaml"), "cluster:\n  nodes: [{host: a}]\nparallel: {tp: 1}\n");
  auto r = tandem({"config", "show", "--set", "env.NCCL_DEBUG=INFO", dir.file("c.yaml"), "--set",
                   "cluster.nodes[0].host=10.0.0.2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto shown = launcher::parse_config(r.out, "stdout", {});
  ASSERT_TRUE(shown.ok()) << shown.status().to_string() << "\n" << r.out;
  EXPECT_EQ(shown->cluster.nodes.size(), 1u);
  EXPECT_EQ(shown->cluster.nodes[0].host, "10.0.0.2");
  EXPECT_EQ(shown->env.at("NCCL_DEBUG"), "INFO");
}

TEST(ConfigCli, BadKeyExitsOneNamingKeyAndLine) {
  testing::TempDir dir;
  testing::write_file(dir.file("bad.yaml"), "job: generate\nparallel:\n  tpp: 2\n");
  auto r = tandem({"config", "show", dir.file("bad.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("tandem: error: INVALID_ARGUMENT: " + dir.file("bad.yaml") +
                       ":3:3: unknown key 'parallel.tpp' (did you mean 'parallel.tp'?)"),
            std::string::npos)
      << r.err;
}

// A stdout that cannot take the YAML (a full disk) fails with the cause.
TEST(ConfigCli, AFailedWriteExitsOneSayingSo) {
  auto r = testing::run_command({"/bin/sh", "-c", testing::tandem_binary() + " config show > /dev/full"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("writing the config to stdout"), std::string::npos) << r.err;
}

TEST(ConfigCli, BadOverrideAndMissingFileExitOne) {
  auto r = tandem({"config", "show", "--set", "parallel.tp=two"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("parallel.tp: expected an integer, got 'two'"), std::string::npos) << r.err;
  r = tandem({"config", "show", "/nonexistent/x.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND: /nonexistent/x.yaml"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tandem
