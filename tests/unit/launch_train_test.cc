// `tandem launch` of a training job with two local workers (data-parallel):
// the Shakespeare recipe, shortened, learns and leaves its loss curve and a
// model `tandem generate` runs; a worker SIGKILLed mid-run (and once while
// writing a checkpoint) ends the job with an error, and resuming from the
// last checkpoint repeats the uninterrupted run's losses exactly.
#include <gtest/gtest.h>

#include <cmath>

#include "launcher/loss_curve.h"
#include "tests/unit/launch_test_util.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// `tandem launch <config> ...`: LaunchRun's argv with the config file named.
// The text by its absolute path: ctest runs tests from the build tree.
std::vector<std::string> train_argv(const LaunchRun& run, const std::string& config, std::vector<std::string> sets) {
  sets.insert(sets.begin(), "train.data=" + source_dir() + "/data/tinyshakespeare.txt");
  std::vector<std::string> argv = run.argv(sets);
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "launch") {
      argv.insert(argv.begin() + static_cast<std::ptrdiff_t>(i) + 1, config);
      break;
    }
  }
  return argv;
}

// The run's loss.csv as the launcher's own reader sees it.
std::vector<launcher::LossPoint> read_loss_rows(const std::string& path) {
  auto rows = launcher::read_loss_csv(path);
  EXPECT_TRUE(rows.ok()) << rows.status().to_string();
  return rows.ok() ? *rows : std::vector<launcher::LossPoint>{};
}

std::string recipe() { return source_dir() + "/configs/train-shakespeare.yaml"; }

// A quick model for the crash tests: a step takes milliseconds.
std::vector<std::string> small_model(const std::string& out_dir) {
  return {"train.out_dir=" + out_dir, "train.dim=32", "train.layers=2", "train.heads=2", "train.kv_heads=2",
          "train.hidden_dim=64", "train.block_size=32", "train.batch_size=8", "train.iters=60",
          "train.lr_decay_iters=60", "train.warmup_iters=5", "train.log_interval=1", "train.eval_interval=0",
          "train.eval_batches=2", "train.checkpoint_interval=10"};
}

TEST(LaunchTrain, ShortShakespeareRecipeLearnsAndExportsAModel) {
  LaunchRun run("train-short");
  const std::string out = run.dir.file("out");
  Child launcher = Child::spawn(train_argv(
      run, recipe(),
      {"train.out_dir=" + out, "train.iters=200", "train.lr_decay_iters=200", "train.eval_interval=100",
       "train.eval_batches=4", "train.checkpoint_interval=100"}));
  const ChildExit e = launcher.wait(600s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  EXPECT_TRUE(contains(launcher.out(), "dp=2 tp=1")) << launcher.out();
  EXPECT_TRUE(contains(launcher.out(), "step 200/200 | loss ")) << launcher.out();

  const std::vector<launcher::LossPoint> rows = read_loss_rows(run.run_dir() + "/loss.csv");
  ASSERT_EQ(rows.size(), 20u) << "a row every 10 steps";
  EXPECT_EQ(rows.back().step, 200);
  // ln(68) = 4.22 is a uniform guess; nanoGPT's model of this size is near
  // 2.5 after 200 steps. The bound leaves room for the seed.
  EXPECT_GT(rows.front().train_loss, 3.0);
  ASSERT_FALSE(std::isnan(rows.back().val_loss));
  EXPECT_LT(rows.back().val_loss, 2.7);
  const std::string png = read_file(run.run_dir() + "/loss.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");

  // The exported model runs in the inference engine and speaks Shakespeare's alphabet.
  CommandResult g = run_command({tandem_binary(), "generate", "--model", out + "/model", "--prompt", "ROMEO:", "--steps", "40"}, 60s);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_TRUE(contains(g.out, "ROMEO:")) << g.out;
}

// Fault injection (launcher/train_job.h): rank 1 SIGKILLs itself at a chosen
// point, so the crash lands at the same step every run.
std::vector<std::string> with_fault(std::vector<std::string> sets, const std::string& fault) {
  sets.push_back("env.TANDEM_FAULT_INJECT=" + fault);
  return sets;
}

// Job ids are unique per test: ctest runs tests side by side, and a test
// finds its workers by the job id.
void expect_resume_repeats(const std::string& name, const std::string& fault, int64_t resumed_from) {
  LaunchRun whole(name + "-whole"), crashed(name + "-crashed"), resumed(name + "-resumed");
  const std::string out_whole = whole.dir.file("out"), out = crashed.dir.file("out");
  CommandResult a = run_command(train_argv(whole, recipe(), small_model(out_whole)), 300s);
  ASSERT_EQ(a.exit_code, 0) << a.err;

  CommandResult b = run_command(train_argv(crashed, recipe(), with_fault(small_model(out), fault)), 300s);
  EXPECT_EQ(b.exit_code, 1) << b.err;
  EXPECT_TRUE(contains(b.err, "job " + name + "-crashed failed: rank 1 (localhost): killed by SIGKILL")) << b.err;
  EXPECT_TRUE(crashed.worker_pids().empty());

  std::vector<std::string> again = small_model(out);
  again.push_back("train.resume=true");
  CommandResult c = run_command(train_argv(resumed, recipe(), again), 300s);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(contains(c.out, "resumed at step " + std::to_string(resumed_from))) << c.out;

  const auto expected = read_loss_rows(whole.run_dir() + "/loss.csv");
  const auto got = read_loss_rows(resumed.run_dir() + "/loss.csv");
  ASSERT_EQ(expected.size(), 60u);
  ASSERT_EQ(got.size(), static_cast<size_t>(60 - resumed_from));
  for (size_t i = 0; i < got.size(); ++i) {
    const launcher::LossPoint& want = expected[static_cast<size_t>(resumed_from) + i];
    EXPECT_EQ(got[i].step, want.step);
    EXPECT_EQ(got[i].train_loss, want.train_loss) << "step " << want.step;  // bit for bit (printed with %.17g)
  }
  EXPECT_EQ(got.back().val_loss, expected.back().val_loss);
  EXPECT_EQ(read_file(out + "/model/model.bin"), read_file(out_whole + "/model/model.bin"));
}

TEST(LaunchTrain, AWorkerKilledMidRunResumesOnTheUninterruptedTrajectory) {
  expect_resume_repeats("killed-mid-run", "kill:1:after-step:25", 20);
}

TEST(LaunchTrain, AWorkerKilledWhileWritingACheckpointLeavesThePreviousOne) {
  expect_resume_repeats("killed-in-checkpoint", "kill:1:in-checkpoint:30", 20);
}

// The window the two kept shards exist for: rank 0 commits step 30, rank 1
// dies before it does. The ranks resume from 20, which both still hold.
TEST(LaunchTrain, AWorkerKilledBetweenTheRanksCommitsResumesFromTheCheckpointBoth) {
  expect_resume_repeats("killed-before-commit", "kill:1:before-commit:30", 20);
}

// Ctrl-C mid-training: both ranks stop cleanly and promptly (between steps,
// or by the stop aborting an exchange a rank waits in), not at the step
// deadline or by the launcher's SIGKILL.
TEST(LaunchTrain, SigintStopsTrainingWorkersPromptly) {
  LaunchRun run("train-interrupted");
  std::vector<std::string> sets = small_model(run.dir.file("out"));
  sets.insert(sets.end(), {"train.iters=1000000", "train.lr_decay_iters=1000000", "launch.step_timeout_s=120"});
  Child launcher = Child::spawn(train_argv(run, recipe(), sets));
  ASSERT_TRUE(run.wait_for_log("rank 1 (localhost) is ready", 60s)) << launcher.err();
  ASSERT_TRUE(run.wait_for_log("rank 0 (localhost) is ready", 60s)) << launcher.err();
  launcher.kill(SIGINT);
  const ChildExit e = launcher.wait(15s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 130);
  EXPECT_LT(e.seconds, 60) << "a rank waited out its step deadline";
  EXPECT_TRUE(contains(launcher.err(), "rank 0 (localhost) exited: exit 0")) << launcher.err();
  EXPECT_TRUE(contains(launcher.err(), "rank 1 (localhost) exited: exit 0")) << launcher.err();
  EXPECT_FALSE(contains(launcher.err(), "SIGKILL")) << launcher.err();
  EXPECT_TRUE(run.worker_pids().empty());
}

TEST(LaunchTrain, ConfigMistakesAreNamedBeforeAnythingStarts) {
  LaunchRun run("train-refused");
  CommandResult r = run_command(train_argv(run, recipe(), {"train.batch_size=7"}), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "train.batch_size")) << r.err;
  r = run_command(train_argv(run, recipe(), {"train.data=" + run.dir.file("missing.txt")}), 60s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "train.data: " + run.dir.file("missing.txt"))) << r.err;
}

}  // namespace
}  // namespace tandem::testing
