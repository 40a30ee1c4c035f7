// `tandem launch` over real ssh: rank 0 runs in namespace A, rank 1 in
// namespace B behind a real sshd (Debian's openssh-server) that the test
// starts with a throwaway host key and client key. The launcher's way in is
// the user's: the OpenSSH client, BatchMode, a known_hosts file, strict host
// key checking. Needs root (ip netns) and sshd; skips with the reason otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "launcher/loss_curve.h"
#include "tests/unit/launch_test_util.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSshd = "/usr/sbin/sshd";

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

class SshLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "ssh launch tests need root (ip netns, sshd); skipped";
    if (!std::filesystem::exists(kSshd)) GTEST_SKIP() << "no " << kSshd << " (openssh-server); skipped";
    suffix_ = "ssh" + std::to_string(::getpid());
    const CommandResult up = netns({"up", suffix_});
    if (up.exit_code != 0) GTEST_SKIP() << "no network namespaces here (scripts/netns.sh up failed): " << up.err;
    up_ = true;
    for (const char* key : {"host_key", "client_key"}) {
      const CommandResult r = run_command({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keys_.file(key)}, 30s);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    write_file(keys_.file("authorized_keys"), read_file(keys_.file("client_key.pub")));
    const std::string host_pub = read_file(keys_.file("host_key.pub"));
    write_file(keys_.file("known_hosts"), "10.231.0.2 " + host_pub.substr(0, host_pub.rfind(' ')) + "\n");
    write_file(keys_.file("sshd_config"), "ListenAddress 10.231.0.2\nPort 22\nHostKey " + keys_.file("host_key") +
                                              "\nAuthorizedKeysFile " + keys_.file("authorized_keys") +
                                              "\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                                              "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                                              "PidFile none\n");
    std::filesystem::create_directories("/run/sshd");  // sshd's privilege separation directory
    sshd_.emplace(Child::spawn({"ip", "netns", "exec", ns('b'), kSshd, "-D", "-e", "-f", keys_.file("sshd_config")}));
    // Up when a real login works.
    const auto end = std::chrono::steady_clock::now() + 15s;
    for (;;) {
      std::vector<std::string> argv = {"ip", "netns", "exec", ns('a'), "ssh", "-o", "BatchMode=yes", "-o",
                                       "ConnectTimeout=2"};
      for (const std::string& o : client_options()) argv.insert(argv.end(), {"-o", o});
      argv.insert(argv.end(), {"-i", keys_.file("client_key"), "root@10.231.0.2", "true"});
      const CommandResult r = run_command(argv, 10s);
      if (r.exit_code == 0) break;
      ASSERT_LT(std::chrono::steady_clock::now(), end) << "sshd in " << ns('b') << " never accepted a login: " << r.err
                                                       << "\nsshd: " << sshd_->err();
      std::this_thread::sleep_for(200ms);
    }
  }
  void TearDown() override {
    sshd_.reset();  // kills sshd
    if (up_) netns({"down", suffix_});
  }

  std::string ns(char side) const { return std::string("tandem-") + side + "-" + suffix_; }
  std::vector<std::string> client_options() const {
    return {"UserKnownHostsFile=" + keys_.file("known_hosts"), "StrictHostKeyChecking=yes"};
  }
  // rank 0 here (namespace A), rank 1 over ssh in namespace B, UCX on the veth only.
  std::vector<std::string> launch_argv(const LaunchRun& run, std::vector<std::string> sets) const {
    const std::string nodes =
        "cluster.nodes=[{host: localhost, data_address: 10.231.0.1, data_interface: veth-a}, "
        "{host: 10.231.0.2, data_interface: veth-b, ssh: {user: root, identity_file: '" + keys_.file("client_key") +
        "', options: ['" + client_options()[0] + "', '" + client_options()[1] + "']}}]";
    sets.insert(sets.begin(), {nodes, "env.UCX_TLS=tcp,self"});
    // ssh carries no environment: what a sanitizer run needs goes through `env`.
    if (const char* hooks = std::getenv("UCX_MEM_MMAP_HOOK_MODE")) {
      sets.push_back(std::string("env.UCX_MEM_MMAP_HOOK_MODE=") + hooks);
    }
    if (const char* tsan = std::getenv("TSAN_OPTIONS")) sets.push_back(std::string("env.TSAN_OPTIONS='") + tsan + "'");
    return run.argv(sets, {"ip", "netns", "exec", ns('a')});
  }
  // The job's workers are gone from both namespaces (they share the pid space).
  bool workers_gone(const LaunchRun& run, std::chrono::milliseconds within) const {
    const auto end = std::chrono::steady_clock::now() + within;
    while (!run.worker_pids().empty()) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(100ms);
    }
    return true;
  }
  static CommandResult netns(std::vector<std::string> args) {
    args.insert(args.begin(), source_dir() + "/scripts/netns.sh");
    return run_command(args, 60s);
  }

  std::string suffix_;
  bool up_ = false;
  TempDir keys_;
  std::optional<Child> sshd_;
};

TEST_F(SshLaunch, TheStoryAcrossTwoHosts) {
  LaunchRun run("ssh-story");
  Child launcher = Child::spawn(launch_argv(run, {}));
  const ChildExit e = launcher.wait(120s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  EXPECT_EQ(rank_output(launcher.out(), 0), published_story() + "\n");
  EXPECT_TRUE(contains(launcher.err(), "starting rank 1 (10.231.0.2): ssh ")) << launcher.err();
  EXPECT_TRUE(contains(launcher.err(), "rank 1 (10.231.0.2) exited: exit 0")) << launcher.err();
}

// pp=2: rank 0 runs layers 0-2 here, rank 1 layers 3-4 over there, and the
// activations and the greedy token cross the veth pair every step.
TEST_F(SshLaunch, ThePipelineParallelStoryAcrossTwoHosts) {
  LaunchRun run("ssh-pp");
  Child launcher = Child::spawn(launch_argv(run, {"parallel.tp=1", "parallel.pp=2"}));
  const ChildExit e = launcher.wait(120s);
  ASSERT_TRUE(e.exited && e.code == 0) << describe(e) << "\n" << launcher.err();
  EXPECT_EQ(rank_output(launcher.out(), 0), published_story() + "\n");
  EXPECT_TRUE(contains(launcher.err(), "rank 1 holds ")) << launcher.err();
}

// Data-parallel training with rank 1 over ssh: the gradients cross the veth
// pair (UCX over TCP) every step, and the losses are those of one worker
// training the whole batch (to float rounding: the sum's order differs).
TEST_F(SshLaunch, DataParallelTrainingAcrossTwoHostsMatchesOneWorker) {
  LaunchRun two("ssh-train-dp2"), one("ssh-train-dp1");
  const std::vector<std::string> train = {
      "job=train", "train.data=" + source_dir() + "/data/tinyshakespeare.txt", "train.dim=32", "train.layers=2",
      "train.heads=2", "train.kv_heads=2", "train.hidden_dim=64", "train.block_size=32", "train.batch_size=8",
      "train.iters=30", "train.warmup_iters=5", "train.log_interval=1", "train.eval_interval=0",
      "train.eval_batches=2", "train.checkpoint_interval=0", "parallel.tp=1", "backend.threads=1",
      "train.overlap=on"};  // the exchange thread, over the network path
  auto with_config = [](std::vector<std::string> argv) {
    for (size_t i = 0; i < argv.size(); ++i) {
      if (argv[i] == "launch") {
        argv.insert(argv.begin() + static_cast<std::ptrdiff_t>(i) + 1, source_dir() + "/configs/train-shakespeare.yaml");
        break;
      }
    }
    return argv;
  };
  std::vector<std::string> sets = train;
  sets.insert(sets.end(), {"parallel.dp=2", "train.out_dir=" + two.dir.file("out")});
  CommandResult a = run_command(with_config(launch_argv(two, sets)), 180s);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_TRUE(contains(a.err, "rank 1 (10.231.0.2) exited: exit 0")) << a.err;

  sets = train;
  sets.insert(sets.end(), {"parallel.dp=1", "cluster.nodes=[{host: localhost}]", "train.out_dir=" + one.dir.file("out")});
  CommandResult b = run_command(with_config(one.argv(sets)), 180s);
  ASSERT_EQ(b.exit_code, 0) << b.err;

  auto losses = [](const std::string& path) {
    std::vector<double> v;
    auto rows = launcher::read_loss_csv(path);
    EXPECT_TRUE(rows.ok()) << rows.status().to_string();
    if (rows.ok()) {
      for (const launcher::LossPoint& p : *rows) v.push_back(p.train_loss);
    }
    return v;
  };
  const std::vector<double> dp2 = losses(two.run_dir() + "/loss.csv");
  const std::vector<double> dp1 = losses(one.run_dir() + "/loss.csv");
  ASSERT_EQ(dp2.size(), 30u);
  ASSERT_EQ(dp1.size(), 30u);
  for (size_t i = 0; i < dp1.size(); ++i) EXPECT_NEAR(dp2[i], dp1[i], 1e-4 * dp1[i]) << "step " << i + 1;
}

TEST_F(SshLaunch, ARemoteWorkerKilledEndsTheJobWithinTenSeconds) {
  LaunchRun run("ssh-killed");
  Child launcher = Child::spawn(launch_argv(run, {"job=serve"}));
  ASSERT_TRUE(run.wait_for_log("rank 1 (10.231.0.2) is ready", 60s)) << launcher.err();
  ASSERT_TRUE(run.wait_for_log("rank 0 (localhost) is ready", 60s)) << launcher.err();
  const std::vector<int> victim = run.worker_pids(1);
  ASSERT_EQ(victim.size(), 1u);
  ::kill(victim[0], SIGKILL);
  const ChildExit e = launcher.wait(10s);
  ASSERT_TRUE(e.exited) << describe(e) << "\n" << launcher.err();
  EXPECT_NE(e.code, 0);
  EXPECT_TRUE(contains(launcher.err(), "failed: rank 1 (10.231.0.2): the ssh session ended")) << launcher.err();
  EXPECT_TRUE(workers_gone(run, 2s));
}

TEST_F(SshLaunch, ACutLinkEndsTheJobWithinTenSecondsAndTheRemoteWorkerToo) {
  LaunchRun run("ssh-cut");
  Child launcher = Child::spawn(launch_argv(run, {"job=serve"}));
  ASSERT_TRUE(run.wait_for_log("rank 1 (10.231.0.2) is ready", 60s)) << launcher.err();
  ASSERT_TRUE(run.wait_for_log("rank 0 (localhost) is ready", 60s)) << launcher.err();
  const auto cut = std::chrono::steady_clock::now();
  ASSERT_EQ(run_command({"ip", "-n", ns('b'), "link", "set", "veth-b", "down"}, 10s).exit_code, 0);
  const ChildExit e = launcher.wait(10s);
  ASSERT_TRUE(e.exited) << describe(e) << "\n" << launcher.err();
  EXPECT_NE(e.code, 0);
  EXPECT_TRUE(contains(launcher.err(), "failed: rank 1 (10.231.0.2): no heartbeat for")) << launcher.err();
  // The remote worker hears no pings either and ends itself; nobody is left.
  EXPECT_TRUE(workers_gone(run, 10s - std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - cut)));
}

}  // namespace
}  // namespace tandem::testing
