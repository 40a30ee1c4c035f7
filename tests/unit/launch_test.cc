// `tandem launch` with two local workers, end to end: the story, the run
// directory, and every way a job can end badly (a worker killed, a signal,
// a worker that fails, problems the preflight finds).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/cpu_affinity.h"
#include "tests/unit/launch_test_util.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

TEST(LaunchLocal, TwoWorkersTellThePublishedStory) {
  LaunchRun run("story");
  Child launcher = Child::spawn(run.argv({}));
  const ChildExit e = launcher.wait(120s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  EXPECT_EQ(rank_output(launcher.out(), 0), published_story() + "\n");
  EXPECT_EQ(rank_output(launcher.out(), 1), "");  // followers run the forwards, rank 0 talks

  // The run directory: resolved config, private token, one log per rank, the summary.
  EXPECT_TRUE(contains(read_file(run.run_dir() + "/config.yaml"), "tp: 2"));
  struct stat token {};
  ASSERT_EQ(::stat((run.run_dir() + "/token").c_str(), &token), 0);
  EXPECT_EQ(token.st_mode & 0777, 0600u);
  EXPECT_EQ(read_file(run.run_dir() + "/token").size(), 65u);  // 256 bits in hex + newline
  EXPECT_TRUE(contains(read_file(run.run_dir() + "/rank-0.log"), published_story()));
  EXPECT_TRUE(contains(read_file(run.run_dir() + "/launcher.log"), "preflight: rank 1"));
  const auto summary = nlohmann::json::parse(read_file(run.run_dir() + "/summary.json"));
  EXPECT_TRUE(summary["ok"].get<bool>());
  ASSERT_EQ(summary["ranks"].size(), 2u);
  for (const auto& rank : summary["ranks"]) EXPECT_EQ(rank["status"], "exit 0");
  EXPECT_GT(summary["wall_seconds"].get<double>(), 0);
  EXPECT_TRUE(run.worker_pids().empty());
}

// The config travels in each worker's header over its stdin, a pipe that
// holds 64 KiB; a bigger one (a long prompt, many settings) must arrive
// whole, the rest written as the worker reads.
TEST(LaunchLocal, AConfigLargerThanAPipeReachesEveryWorker) {
  LaunchRun run("bigconfig");
  const std::string padding(100 * 1024, 'p');
  std::vector<std::string> argv = run.argv({"env.TANDEM_TEST_PADDING=" + padding});
  argv.push_back(source_dir() + "/configs/local.yaml");  // the config file after the --set options: still the config
  Child launcher = Child::spawn(argv);
  const ChildExit e = launcher.wait(120s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  EXPECT_EQ(rank_output(launcher.out(), 0), published_story() + "\n");
  EXPECT_TRUE(contains(read_file(run.run_dir() + "/config.yaml"), padding));
}

// The share of the model's weights a rank's loader reported holding
// ("rank 1 holds 49.8% of the weights (...)"), or -1.
double held_percent(const std::string& log) {
  const size_t at = log.find(" holds ");
  if (at == std::string::npos) return -1;
  return std::stod(log.substr(at + 7));
}

// Every layout tells the same story: the published one, which the
// single-process `tandem generate` test (StoryTest) also checks.
TEST(LaunchLocal, PipelineParallelAndOneWorkerTellThePublishedStoryToo) {
  struct Layout {
    std::string name;
    std::vector<std::string> sets;
  };
  const Layout layouts[] = {
      {"pp2", {"parallel.tp=1", "parallel.pp=2"}},
      {"single", {"cluster.nodes=[{host: localhost}]", "parallel.tp=1"}},
  };
  for (const Layout& layout : layouts) {
    LaunchRun run("story-" + layout.name);
    Child launcher = Child::spawn(run.argv(layout.sets));
    const ChildExit e = launcher.wait(120s);
    ASSERT_TRUE(e.exited && e.code == 0) << layout.name << ": " << describe(e) << "\n" << launcher.err();
    EXPECT_EQ(rank_output(launcher.out(), 0), published_story() + "\n") << layout.name;
    const double held = held_percent(read_file(run.run_dir() + "/rank-0.log"));
    if (layout.name == "single") {
      EXPECT_EQ(held, 100.0);
    } else {
      // Five layers split 3 + 2, and each stage keeps its own copy of the shared
      // embedding/classifier table: the halves are uneven but near.
      for (int r = 0; r < 2; ++r) {
        const double p = held_percent(read_file(run.run_dir() + "/rank-" + std::to_string(r) + ".log"));
        EXPECT_GT(p, 35.0) << "rank " << r;
        EXPECT_LT(p, 70.0) << "rank " << r;
      }
    }
  }
}

// tp=2 (the default config): each rank holds about half of the weights, as
// its loader reported.
TEST(LaunchLocal, TensorParallelRanksEachHoldAboutHalfTheWeights) {
  LaunchRun run("halves");
  Child launcher = Child::spawn(run.argv({}));
  const ChildExit e = launcher.wait(120s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  for (int r = 0; r < 2; ++r) {
    const double p = held_percent(read_file(run.run_dir() + "/rank-" + std::to_string(r) + ".log"));
    EXPECT_NEAR(p, 50.0, 5.0) << "rank " << r;  // within 10% of half
  }
}

// SIGKILLs rank 1 `after` both ranks are ready; how the launcher then ended
// (not exited if it did not within `within`).
ChildExit kill_rank_1_once_ready(const LaunchRun& run, Child& launcher, std::chrono::milliseconds after,
                                 std::chrono::seconds within) {
  EXPECT_TRUE(run.wait_for_log("rank 0 (localhost) is ready", 60s)) << launcher.err();
  EXPECT_TRUE(run.wait_for_log("rank 1 (localhost) is ready", 60s)) << launcher.err();
  std::this_thread::sleep_for(after);
  const std::vector<int> victim = run.worker_pids(1);
  EXPECT_EQ(victim.size(), 1u);
  for (int pid : victim) ::kill(pid, SIGKILL);
  return launcher.wait(within);
}

// model.context sizes every worker's KV cache: enough for the story runs it,
// more than the model was trained for is refused naming the key.
TEST(LaunchLocal, ModelContextSizesTheKvCache) {
  LaunchRun fits("context-fits"), beyond("context-beyond");
  CommandResult r = run_command(fits.argv({"model.context=300"}), 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(rank_output(r.out, 0), published_story() + "\n");
  r = run_command(beyond.argv({"model.context=1000"}), 60s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "model.context 1000: context 1000 is outside [1, 512]")) << r.err;
}

TEST(LaunchLocal, AKilledWorkerEndsTheJobNamingIt) {
  LaunchRun run("killed");
  Child launcher = Child::spawn(run.argv({"job=serve"}));
  const ChildExit e = kill_rank_1_once_ready(run, launcher, 0ms, 10s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_NE(e.code, 0);
  // The cause ends there: rank 1's last log line (which rank holds what
  // share of the weights) says nothing about its death.
  EXPECT_TRUE(contains(launcher.err(), "job killed failed: rank 1 (localhost): killed by SIGKILL\n")) << launcher.err();
  EXPECT_TRUE(run.worker_pids().empty());
  const auto summary = nlohmann::json::parse(read_file(run.run_dir() + "/summary.json"));
  EXPECT_FALSE(summary["ok"].get<bool>());
  EXPECT_EQ(summary["ranks"][1]["status"], "killed by SIGKILL");
}

// A rank killed while the ranks are generating (not idle between requests):
// rank 0's next all-reduce fails instead of waiting for ever, and the
// launcher ends the job naming the killed rank. The model is a synthetic one
// big enough (~25M parameters) that its 1500 tokens take many seconds.
TEST(LaunchLocal, AWorkerKilledMidGenerationEndsTheJobWithAnError) {
  LaunchRun run("mid-generation");
  const std::string model = run.dir.file("slow/model.bin");
  CommandResult synth = run_command({tandem_binary(), "model", "synth", "--dim", "512", "--hidden-dim", "1536",
                                     "--layers", "8", "--heads", "8", "--kv-heads", "4", "--vocab", "512",
                                     "--seq-len", "2048", "--seed", "3", model},
                                    60s);
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  Child launcher = Child::spawn(run.argv({"model.path=" + run.dir.file("slow"), "generate.steps=1500",
                                          "backend.threads=1"}));
  // Once both are ready rank 0 starts the generation (its text is streamed
  // by lines, and a random model's text has few, so the output cannot tell).
  const ChildExit e = kill_rank_1_once_ready(run, launcher, 500ms, 20s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 1);
  EXPECT_TRUE(contains(launcher.err(), "job mid-generation failed: rank 1 (localhost): killed by SIGKILL")) << launcher.err();
  EXPECT_FALSE(contains(launcher.out() + launcher.err(), "generated (steps)")) << "the generation ended before the kill";
  EXPECT_TRUE(run.worker_pids().empty());
}

// A serve job stopped by `sig` to the launcher: every worker gone, exit 128 + sig.
void expect_signal_stops_the_job(const std::string& run_name, int sig) {
  LaunchRun run(run_name);
  Child launcher = Child::spawn(run.argv({"job=serve"}));
  ASSERT_TRUE(run.wait_for_log("rank 1 (localhost) is ready", 60s)) << launcher.err();
  launcher.kill(sig);
  const ChildExit e = launcher.wait(15s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 128 + sig);
  EXPECT_TRUE(contains(launcher.err(), std::string("interrupted by SIG") + sigabbrev_np(sig))) << launcher.err();
  EXPECT_TRUE(run.worker_pids().empty());
}

TEST(LaunchLocal, SigintStopsEveryWorkerAndExits130) { expect_signal_stops_the_job("interrupted", SIGINT); }

// The terminal or ssh session the launcher ran in closed: the job stops as
// for Ctrl-C, instead of the launcher dying (or, with UCX's handler
// installed, ignoring it) and leaving a headless job on both nodes.
TEST(LaunchLocal, SighupStopsEveryWorkerAndExits129) { expect_signal_stops_the_job("hung-up", SIGHUP); }

TEST(LaunchLocal, AFailingWorkerIsNamedWithItsError) {
  // Rank 1 starts in a directory where the relative model path does not
  // resolve; the preflight is skipped so the worker itself meets the error.
  TempDir elsewhere;
  LaunchRun run("failing");
  std::vector<std::string> argv = run.argv({"model.path=models/stories260K",
                                            "cluster.nodes[0].workdir=" + source_dir(),
                                            "cluster.nodes[1].workdir=" + elsewhere.path()});
  argv.push_back("--no-preflight");
  Child launcher = Child::spawn(argv);
  const ChildExit e = launcher.wait(60s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 1);
  EXPECT_TRUE(contains(launcher.err(), "job failing failed: rank 1 (localhost): exit 1: tandem: error:")) << launcher.err();
  EXPECT_TRUE(contains(launcher.err(), "loading the model")) << launcher.err();
  EXPECT_TRUE(run.worker_pids().empty());
}

// Launches (no preflight) with rank 1's tandem binary replaced by
// `binary`; the job must fail: the launcher's stderr.
std::string failed_launch_with_rank_1_as(const std::string& run_name, const std::string& binary) {
  LaunchRun run(run_name);
  std::vector<std::string> argv = run.argv({"cluster.nodes[1].tandem=" + binary});
  argv.push_back("--no-preflight");
  Child launcher = Child::spawn(argv);
  const ChildExit e = launcher.wait(60s);
  EXPECT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 1);
  EXPECT_TRUE(run.worker_pids().empty());
  return launcher.err();
}

// A "worker" that exits 0 without ever saying it is ready ran no job (here
// /bin/true stands for a wrapper or an rc file that exits 0): the job
// fails naming it, instead of "finished: 2 ranks exited 0".
TEST(LaunchLocal, AWorkerThatExitsZeroWithoutBeingReadyFailsTheJob) {
  const std::string err = failed_launch_with_rank_1_as("not-tandem", "/bin/true");
  EXPECT_TRUE(contains(err, "rank 1 (localhost): exit 0 without ever being ready (is cluster.nodes[1].tandem a "
                            "tandem binary?)"))
      << err;
}

// A worker that aborts (a failed internal check prints its line, then
// abort()) is named with that line, although it died of a signal.
TEST(LaunchLocal, AnAbortedWorkerIsNamedWithItsLastWords) {
  TempDir bin;
  const std::string script = bin.file("aborts.sh");
  write_file(script, "#!/bin/sh\necho 'tandem: internal check failed at x.cc:1: boom' >&2\nkill -ABRT $$\n");
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  const std::string err = failed_launch_with_rank_1_as("aborted", script);
  EXPECT_TRUE(contains(err, "rank 1 (localhost): killed by SIGABRT: tandem: internal check failed at x.cc:1: boom"))
      << err;
}

// A worker's error quotes whatever bytes it met (here a path that is not
// UTF-8): the job still ends with its exit code and a summary.json that
// parses, the bytes replaced, rather than the launcher aborting.
TEST(LaunchLocal, ACauseThatIsNotUtf8StillEndsTheJobWithItsSummary) {
  LaunchRun run("latin1");
  std::vector<std::string> argv = run.argv({"model.path=/nonexistent/caf\xe9"});
  argv.push_back("--no-preflight");
  Child launcher = Child::spawn(argv);
  const ChildExit e = launcher.wait(60s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 1) << launcher.err();
  const auto summary = nlohmann::json::parse(read_file(run.run_dir() + "/summary.json"), nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << read_file(run.run_dir() + "/summary.json");
  EXPECT_FALSE(summary["ok"].get<bool>());
  EXPECT_NE(summary["cause"].get<std::string>().find("/nonexistent/caf\xef\xbf\xbd"), std::string::npos)
      << summary["cause"];
}

TEST(LaunchLocal, PreflightReportsEveryProblemAtOnce) {
  TempDir elsewhere;
  LaunchRun run("preflight");
  Child launcher = Child::spawn(run.argv({"model.path=models/stories260K", "cluster.nodes[0].workdir=" + elsewhere.path(),
                                          "cluster.nodes[1].tandem=" + elsewhere.file("no-such-tandem")}));
  const ChildExit e = launcher.wait(60s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 1);
  const std::string err = launcher.err();
  EXPECT_TRUE(contains(err, "preflight found 2 problems")) << err;
  EXPECT_TRUE(contains(err, "rank 0 (localhost): model:")) << err;
  EXPECT_TRUE(contains(err, "rank 1 (localhost): cannot run the tandem binary")) << err;
  EXPECT_FALSE(contains(read_file(run.run_dir() + "/launcher.log"), "starting rank"));
}

// cluster.nodes[i].cpu_affinity pins each worker (what the kernel reports,
// logged by the worker); CPUs the host lacks are refused by the preflight,
// or by the worker itself without it, naming the key.
TEST(LaunchLocal, WorkersRunOnTheirConfiguredCpus) {
  const std::vector<int> mine = allowed_cpus();
  ASSERT_FALSE(mine.empty());
  const std::string first = std::to_string(mine.front()), last = std::to_string(mine.back());
  LaunchRun run("pinned");
  Child launcher = Child::spawn(run.argv({"cluster.nodes[0].cpu_affinity=" + first,
                                          "cluster.nodes[1].cpu_affinity=" + last}));
  const ChildExit e = launcher.wait(120s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  EXPECT_EQ(rank_output(launcher.out(), 0), published_story() + "\n");
  EXPECT_TRUE(contains(read_file(run.run_dir() + "/rank-0.log"), "rank 0 runs on CPUs " + first + "\n"));
  EXPECT_TRUE(contains(read_file(run.run_dir() + "/rank-1.log"), "rank 1 runs on CPUs " + last + "\n"));

  const std::string absent = "cluster.nodes[1].cpu_affinity=" + first + "," + std::to_string(kMaxCpu);
  LaunchRun refused("pinned-absent"), unchecked("pinned-unchecked");
  CommandResult r = run_command(refused.argv({absent}), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "preflight found 1 problem:\n  rank 1 (localhost): cluster.nodes[1].cpu_affinity: CPUs " +
                                  first + "," + std::to_string(kMaxCpu) + ": CPU " + std::to_string(kMaxCpu) +
                                  " is not online or not permitted here"))
      << r.err;
  std::vector<std::string> argv = unchecked.argv({absent});
  argv.push_back("--no-preflight");
  r = run_command(argv, 60s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "rank 1: cluster.nodes[1].cpu_affinity: CPUs")) << r.err;
}

TEST(LaunchLocal, UnsupportedJobsAndMixedClustersAreRefusedBeforeAnythingStarts) {
  LaunchRun run("refused");
  CommandResult r = run_command(run.argv({"job=bench"}), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "job: bench: this build launches generate, serve and train jobs")) << r.err;
  r = run_command(run.argv({"cluster.nodes[1].host=10.9.9.9"}), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "cluster.nodes[0].data_address")) << r.err;
  // A split the model cannot take is refused by the preflight, once, with
  // the reason, before any worker starts; without the preflight the workers
  // refuse it themselves.
  const std::vector<std::string> three = {"cluster.nodes=[{host: localhost}, {host: localhost}, {host: localhost}]",
                                          "parallel.tp=3"};
  LaunchRun split("refused-split"), unchecked_split("refused-unchecked");
  r = run_command(split.argv(three), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "preflight found 1 problem:\n  rank 0 (localhost): parallel: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "tp=3 divides neither the 8 query heads nor the 4 KV heads")) << r.err;
  EXPECT_FALSE(contains(r.err, "starting rank")) << r.err;
  std::vector<std::string> unchecked = unchecked_split.argv(three);
  unchecked.push_back("--no-preflight");
  r = run_command(unchecked, 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "loading the model: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "tp=3 divides neither the 8 query heads nor the 4 KV heads")) << r.err;
}

// The machines CI runs on have no GPU: a cuda job is refused by the preflight
// on every node, with the reason, before any worker starts.
TEST(LaunchLocal, ACudaJobWithoutAGpuIsRefusedByThePreflight) {
  if (std::getenv("TANDEM_TEST_HAS_GPU") != nullptr) GTEST_SKIP() << "TANDEM_TEST_HAS_GPU is set: this host has a GPU";
  LaunchRun run("no-gpu");
  CommandResult r = run_command(run.argv({"backend.compute=cuda", "backend.comm=nccl"}), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "preflight found 2 problems")) << r.err;
  EXPECT_TRUE(contains(r.err, "rank 1 (localhost): backend.compute cuda: ")) << r.err;
  EXPECT_TRUE(run.worker_pids().empty());
}

#ifdef TANDEM_HAVE_CONTROL
// A serve job answers rank 0's control endpoint: the story through Generate,
// strangers refused, a bad request refused without harm, Shutdown ends it.
TEST(LaunchLocal, ServeJobAnswersTheControlPlaneUntilShutdown) {
  LaunchRun run("serve");
  Child launcher = Child::spawn(run.argv({"job=serve"}));
  ASSERT_TRUE(run.wait_for_log("rank 0 (localhost) is ready", 60s)) << launcher.err();
  std::string endpoint = read_file(run.run_dir() + "/endpoint");
  endpoint.erase(endpoint.find_last_not_of("\n") + 1);
  auto ctl = [&](std::vector<std::string> args, const std::string& token_file = "") {
    std::vector<std::string> argv = {tandem_binary(), "ctl", "--endpoint", endpoint, "--token-file",
                                     token_file.empty() ? run.run_dir() + "/token" : token_file};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 60s);
  };
  TempDir other;
  write_file(other.file("token"), "not-the-token\n");
  CommandResult r = ctl({"health"}, other.file("token"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "UNAUTHENTICATED")) << r.err;

  r = ctl({"generate", "--max-tokens", "256", "--temperature", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, published_story().size()), published_story());

  r = ctl({"generate", "--tokens", "1,99999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "INVALID_ARGUMENT")) << r.err;
  EXPECT_TRUE(contains(r.err, "99999, outside the vocabulary")) << r.err;

  r = ctl({"status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto status = nlohmann::json::parse(r.out);
  EXPECT_EQ(status["requests_served"], 1);
  EXPECT_EQ(status["tokens_served"], 256);
  ASSERT_EQ(status["ranks"].size(), 2u);

  r = ctl({"shutdown"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ChildExit e = launcher.wait(30s);
  ASSERT_TRUE(e.exited) << describe(e);
  EXPECT_EQ(e.code, 0) << launcher.err();
  EXPECT_TRUE(run.worker_pids().empty());
}
#endif

}  // namespace
}  // namespace tandem::testing
