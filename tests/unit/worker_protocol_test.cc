// The launcher <-> worker channel's pieces, without processes: the output
// splitter, the header, the ssh command line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

#include "launcher/fd_io.h"
#include "launcher/launch.h"
#include "launcher/worker_protocol.h"

namespace tandem::launcher {
namespace {

struct Collected {
  std::vector<std::string> lines;
  std::vector<WorkerRecord> records;
  WorkerOutputSplitter splitter{[this](std::string_view l) { lines.emplace_back(l); },
                                [this](const WorkerRecord& r) { records.push_back(r); }};
};

TEST(WorkerProtocol, SplitsLinesAndRecordsFedByteByByte) {
  const std::string stream = "Once upon" + encode_record("hb", {"7"}) + " a time\nsecond line\n" +
                             encode_record("control", {"127.0.0.1:5000"}) + "tail without newline";
  Collected c;
  for (const char ch : stream) c.splitter.feed(std::string_view(&ch, 1));
  c.splitter.finish();
  EXPECT_EQ(c.lines, (std::vector<std::string>{"Once upon a time", "second line", "tail without newline"}));
  ASSERT_EQ(c.records.size(), 2u);
  EXPECT_EQ(c.records[0].kind, "hb");
  EXPECT_EQ(c.records[0].args, std::vector<std::string>{"7"});
  EXPECT_EQ(c.records[1].kind, "control");
  EXPECT_EQ(c.records[1].args, std::vector<std::string>{"127.0.0.1:5000"});
}

TEST(WorkerProtocol, AMarkWithoutOurPrefixIsText) {
  Collected c;
  c.splitter.feed("a\x1e" "b c\nd\n");
  c.splitter.finish();
  EXPECT_EQ(c.lines, (std::vector<std::string>{"ab cd"}));  // the mark's line ran into the next
  EXPECT_TRUE(c.records.empty());
}

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe(fds_), 0); }
  ~Pipe() { ::close(fds_[0]), close_write(); }
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

TEST(WorkerProtocol, HeaderRoundTripsAndLeavesTheRestUnread) {
  Pipe pipe;
  const WorkerHeader sent{"00ff", "job: serve\nrun_dir: \"x\"\n"};
  ASSERT_TRUE(write_all(pipe.write_end(), encode_worker_header(sent) + "ping\n", "pipe").ok());
  LineReader reader(pipe.read_end(), "pipe");
  auto got = read_worker_header(reader);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->token, sent.token);
  EXPECT_EQ(got->config_yaml, sent.config_yaml);
  auto next = reader.read_line(deadline_after(std::chrono::seconds(5)));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, "ping");
}

TEST(WorkerProtocol, HeaderErrorsNameTheProblem) {
  for (const auto& [bytes, expected] : std::vector<std::pair<std::string, std::string>>{
           {"TANDEM-WORKER 9\n", "this worker speaks 'TANDEM-WORKER 1'"},
           {"TANDEM-WORKER 1\nnope\n", "expected 'token <hex>'"},
           {"TANDEM-WORKER 1\ntoken ab\nconfig 99999999999\n", "expected 'config <bytes>'"},
           {"TANDEM-WORKER 1\ntoken ab\nconfig 5\nabc", "closed"},
       }) {
    Pipe pipe;
    ASSERT_TRUE(write_all(pipe.write_end(), bytes, "pipe").ok());
    pipe.close_write();
    LineReader reader(pipe.read_end(), "pipe");
    auto got = read_worker_header(reader);
    ASSERT_FALSE(got.ok()) << bytes;
    EXPECT_NE(got.status().message().find(expected), std::string::npos) << got.status().to_string();
  }
}

TEST(WorkerProtocol, ReaderHonoursItsDeadline) {
  Pipe pipe;
  LineReader reader(pipe.read_end(), "pipe");
  const auto start = Clock::now();
  auto line = reader.read_line(deadline_after(std::chrono::milliseconds(100)));
  EXPECT_EQ(line.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(NodeCommand, ShellQuotingSurvivesQuotes) {
  EXPECT_EQ(shell_quote("plain"), "'plain'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
}

TEST(NodeCommand, RemoteNodesGoThroughBatchModeSsh) {
  RunConfig config;
  config.cluster.nodes[1] = NodeConfig{"spark-b", {"me", 2222, "/k", {"StrictHostKeyChecking=yes"}}, "", "", "/opt/t", "/w d", "4-7"};
  const ProcessSpec local = node_command(config, 0, {"/bin/tandem", "/here"}, {"worker", "--rank", "0"});
  EXPECT_EQ(local.argv, (std::vector<std::string>{"/bin/tandem", "worker", "--rank", "0"}));
  EXPECT_EQ(local.cwd, "/here");
  const ProcessSpec remote = node_command(config, 1, {"/bin/tandem", "/here"}, {"worker", "--rank", "1"});
  const std::vector<std::string>& a = remote.argv;
  ASSERT_GE(a.size(), 4u);
  EXPECT_EQ(a.front(), "ssh");
  auto has = [&](const std::string& x, const std::string& y) {
    for (size_t i = 0; i + 1 < a.size(); ++i) {
      if (a[i] == x && a[i + 1] == y) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("-o", "BatchMode=yes"));
  EXPECT_TRUE(has("-p", "2222"));
  EXPECT_TRUE(has("-i", "/k"));
  EXPECT_TRUE(has("-l", "me"));
  EXPECT_TRUE(has("-o", "StrictHostKeyChecking=yes"));
  EXPECT_EQ(a[a.size() - 3], "spark-b");
  EXPECT_EQ(a.back(), "cd '/w d' && exec '/opt/t' 'worker' '--rank' '1'");
}

// "~/" in a node's workdir or tandem path is the user's home there: bare
// for the remote shell to expand (the rest still quoted), expanded here for
// a local worker, where no shell runs.
TEST(NodeCommand, AHomeRelativePathIsTheHomeOfTheNodeItRunsOn) {
  RunConfig config;
  config.cluster.nodes[1] = NodeConfig{"spark-b", {}, "", "", "~/bin/tandem", "~/runs/it's here", ""};
  const ProcessSpec remote = node_command(config, 1, {"/bin/tandem", "/here"}, {"worker"});
  EXPECT_EQ(remote.argv.back(), "cd ~/'runs/it'\\''s here' && exec ~/'bin/tandem' 'worker'");
  config.cluster.nodes[0].workdir = "~/runs";
  config.cluster.nodes[0].tandem = "~";
  const ProcessSpec local = node_command(config, 0, {"/bin/tandem", "/here"}, {"worker"});
  const std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
  ASSERT_FALSE(home.empty()) << "the test needs HOME";
  EXPECT_EQ(local.cwd, home + "/runs");
  EXPECT_EQ(local.argv.front(), home);
}

// No port in the config: no -p, which would override a Port the user's
// ~/.ssh/config gives the host (as would any -o Port= after it).
TEST(NodeCommand, AnUnsetPortIsLeftToTheUsersSshConfig) {
  RunConfig config;
  config.cluster.nodes[1].host = "spark-b";
  ASSERT_EQ(config.cluster.nodes[1].ssh.port, 0);
  const ProcessSpec remote = node_command(config, 1, {"/bin/tandem", "/here"}, {"worker"});
  for (const std::string& arg : remote.argv) EXPECT_NE(arg, "-p");
}

TEST(NodeCommand, EnvReachesWorkersFromTheirFirstInstruction) {
  RunConfig config;
  config.env = {{"UCX_TLS", "tcp,self"}, {"ODD", "it's"}};
  config.cluster.nodes[1].host = "spark-b";
  const ProcessSpec local = node_command(config, 0, {"/bin/tandem", "/here"}, {"worker"});
  EXPECT_EQ(local.env, (std::vector<std::string>{"ODD=it's", "UCX_TLS=tcp,self"}));
  const ProcessSpec remote = node_command(config, 1, {"/bin/tandem", "/here"}, {"worker"});
  EXPECT_EQ(remote.argv.back(), "cd '/here' && exec env 'ODD=it'\\''s' 'UCX_TLS=tcp,self' '/bin/tandem' 'worker'");
}

}  // namespace
}  // namespace tandem::launcher
