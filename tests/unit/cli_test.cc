// The tandem binary as a user runs it: the story on stdout, and for bad input
// a message naming the cause on stderr with a non-zero exit code.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using testing::run_command;
using testing::TempDir;

testing::CommandResult tandem(std::vector<std::string> args) {
  args.insert(args.begin(), testing::tandem_binary());
  return run_command(args);
}

TEST(Cli, GenerateGreedyPrintsThePublishedStory) {
  auto r = tandem({"generate", "--model", testing::bundled_model_dir(), "--temperature", "0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, testing::published_story() + "\n");
  EXPECT_NE(r.err.find("256 generated"), std::string::npos) << r.err;
}

TEST(Cli, GenerateWithPromptAndSeedIsRepeatable) {
  const std::vector<std::string> args = {"generate", "--model", testing::bundled_checkpoint(),
                                         "--prompt", "Once upon a time", "--steps", "40",
                                         "--temperature", "0.9", "--seed", "42"};
  auto a = tandem(args), b = tandem(args);
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("Once upon a time", 0), 0u) << a.out;
  EXPECT_NE(a.err.find("seed 42"), std::string::npos);
}

struct BadModelCase {
  std::string name;
  std::function<std::string(const TempDir&)> make;  // returns the --model path
  std::string expected_in_stderr;
  friend void PrintTo(const BadModelCase& c, std::ostream* os) { *os << c.name; }
};

class CliBadModel : public ::testing::TestWithParam<BadModelCase> {};

TEST_P(CliBadModel, FailsWithTheCause) {
  TempDir dir;
  const std::string model = GetParam().make(dir);
  auto r = tandem({"generate", "--model", model, "--steps", "8"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("tandem: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(GetParam().expected_in_stderr), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty() || r.out == "\n") << r.out;
}

std::string copy_tokenizer(const TempDir& dir) {
  std::filesystem::copy_file(testing::bundled_tokenizer(), dir.file("tok512.bin"));
  return dir.file("model.bin");
}

INSTANTIATE_TEST_SUITE_P(
    Files, CliBadModel,
    ::testing::Values(
        BadModelCase{"missing", [](const TempDir& d) { return d.file("absent.bin"); }, "absent.bin"},
        BadModelCase{"empty",
                     [](const TempDir& d) {
                       testing::write_file(d.file("model.bin"), "");
                       return copy_tokenizer(d);
                     },
                     "shorter than the 28-byte llama2.c header"},
        BadModelCase{"truncated",
                     [](const TempDir& d) {
                       const auto bytes = testing::read_file(testing::bundled_checkpoint());
                       testing::write_file(d.file("model.bin"), bytes.substr(0, bytes.size() / 2));
                       return copy_tokenizer(d);
                     },
                     "truncated"},
        BadModelCase{"no_tokenizer",
                     [](const TempDir& d) {
                       std::filesystem::copy_file(testing::bundled_checkpoint(), d.file("model.bin"));
                       return d.path();
                     },
                     "no tokenizer"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(Cli, BadFlagsAreRefused) {
  auto r = tandem({"generate", "--model", testing::bundled_model_dir(), "--temperature", "-1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("temperature"), std::string::npos) << r.err;
  r = tandem({"generate", "--model", testing::bundled_model_dir(), "--steps", "600"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("steps=600"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");  // no text, so not even a line break
  r = tandem({"generate", "--model", testing::bundled_model_dir(), "--steps", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--steps"), std::string::npos) << r.err;
  // Only the default seed means "from the clock": a negative one is a mistake.
  r = tandem({"generate", "--model", testing::bundled_model_dir(), "--seed", "-7"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  r = tandem({"generate", "--no-such-flag"});
  EXPECT_NE(r.exit_code, 0);
  r = tandem({});
  EXPECT_NE(r.exit_code, 0);
}

TEST(Cli, BenchGeneratePrintsTheRoofline) {
  auto r = tandem({"bench", "generate", "--shape", "stories260K", "--prompt-tokens", "8",
                   "--decode-tokens", "8", "--repeat", "1", "--bandwidth-mib", "8"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* field : {"memory bw", "prefill", "decode", "roofline", "peak rss"})
    EXPECT_NE(r.out.find(field), std::string::npos) << field << " missing in:\n" << r.out;
  r = tandem({"bench", "generate", "--shape", "no-such-shape"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no-such-shape"), std::string::npos);
}

// --model runs the checkpoint as `job: serve` loads it: the bundled llama2.c
// file's rows are 28 bytes off a cache line, so its matrices are copies.
TEST(Cli, BenchBatchRunsACheckpointOrASyntheticShape) {
  auto r = tandem({"bench", "batch", "--model", testing::bundled_model_dir(), "--batches", "1,3",
                   "--prompt-tokens", "4", "--decode-tokens", "2", "--repeat", "1", "--threads", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stories260K.bin"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(" 0.00 MB copied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batch    3"), std::string::npos) << r.out;
  r = tandem({"bench", "batch", "--shape", "stories260K", "--batches", "2", "--prompt-tokens", "4",
              "--decode-tokens", "2", "--repeat", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stories260K (synthetic)"), std::string::npos) << r.out;
  for (const char* bad : {"4x", "", "1,,2", " 4"}) {
    r = tandem({"bench", "batch", "--shape", "stories260K", "--batches", bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--batches"), std::string::npos) << bad << ": " << r.err;
  }
  r = tandem({"bench", "batch", "--model", "/no/such/model"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/no/such/model"), std::string::npos) << r.err;
  r = tandem({"bench", "batch", "--model", testing::bundled_model_dir(), "--prompt-tokens", "600"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("exceed the context"), std::string::npos) << r.err;
}

// The kernels bench prints both roofs and a row per token count and per KV
// dtype, each figure held against them.
TEST(Cli, BenchKernelsPrintsTheRoofsAndEachFigureAgainstThem) {
  auto r = tandem({"bench", "kernels", "--shape", "stories260K", "--tokens", "1,3", "--sequences", "2", "--context",
                   "20", "--repeat", "1", "--bandwidth-mib", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* field : {"roofs        fma_loop", "GFLOP/s", "copy", "stories260K, rank 0 of tp=2",
                            "\n     1 ", "\n     3 ", "\nf32 ", "\nf16 ", "2 sequences x 20 positions"})
    EXPECT_NE(r.out.find(field), std::string::npos) << field << " missing in:\n" << r.out;
  for (const char* bad : {"0", "x", "1,,2"}) {
    r = tandem({"bench", "kernels", "--shape", "stories260K", "--tokens", bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--tokens"), std::string::npos) << bad << ": " << r.err;
  }
  r = tandem({"bench", "kernels", "--shape", "stories260K", "--tp", "3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tp"), std::string::npos) << r.err;
}

TEST(Cli, InfoDescribesTheBuild) {
  auto r = tandem({"info"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kernels"), std::string::npos);
  EXPECT_NE(r.out.find("cuda"), std::string::npos);
}

}  // namespace
}  // namespace tandem
