// Training checkpoints (runtime/train/checkpoint.h): bit-exact round trips,
// the commit protocol (latest, two shards kept), survival of a process killed
// mid-write, and hostile files refused with an error naming the file.
#include "runtime/train/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/crc32c.h"
#include "runtime/train/checkpoint_format.h"
#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem::train {
namespace {

namespace fs = std::filesystem;

// RFC 3720 (iSCSI), appendix B.4, and the catalogue's "123456789" check value.
TEST(Crc32c, MatchesPublishedVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::vector<unsigned char> bytes(32, 0);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x8A9136AAu);
  std::fill(bytes.begin(), bytes.end(), 0xFF);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) bytes[static_cast<size_t>(i)] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) bytes[static_cast<size_t>(i)] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x113FDB5Cu);
  // In pieces of every split, as checkpoints checksum arrays one by one.
  const std::string text = "The quick brown fox jumps over the lazy dog, again and again.";
  for (size_t cut = 0; cut <= text.size(); ++cut)
    ASSERT_EQ(crc32c_extend(crc32c(text.data(), cut), text.data() + cut, text.size() - cut), crc32c(text.data(), text.size()));
}

ShardMeta meta_for(int64_t step, int rank = 1, int tp = 2, int dp = 1) {
  ShardMeta m;
  m.step = step;
  m.rank = rank;
  m.world = tp * dp;
  m.tp = tp;
  m.dp = dp;
  m.job_hash = 0xC0FFEE1234ull;
  m.seed = 1337;
  m.tokens_seen = step * 4096;
  return m;
}

// Deterministic contents per step, so a reader can check a shard it did not write.
struct Arrays {
  std::vector<float> params, m, v;
};
Arrays arrays_for(int64_t step, size_t n) {
  Arrays a{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n)};
  for (size_t i = 0; i < n; ++i) {
    a.params[i] = static_cast<float>((static_cast<uint64_t>(step) * 7919 + i) % 100003) * 0.001f;
    a.m[i] = a.params[i] * -0.5f;
    a.v[i] = a.params[i] * a.params[i];
  }
  return a;
}

Status write(const std::string& dir, const ShardMeta& meta, const Arrays& a) {
  return write_shard(dir, meta, a.params, a.m, a.v);
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

TEST(Checkpoint, PathsFollowTheLayout) {
  EXPECT_EQ(rank_directory("out", 1), "out/rank-1");
  EXPECT_EQ(shard_path("out", 1, 500), "out/rank-1/step-00000500.ckpt");
}

TEST(Checkpoint, RoundTripIsBitExact) {
  testing::TempDir dir;
  Arrays a = arrays_for(3, 1000);
  // Values a text or lossy format would not carry.
  a.params[0] = -0.0f;
  a.params[1] = std::numeric_limits<float>::denorm_min();
  a.params[2] = std::numeric_limits<float>::infinity();
  a.m[3] = std::numeric_limits<float>::quiet_NaN();
  a.v[4] = 1.0f + std::numeric_limits<float>::epsilon();
  const ShardMeta meta = meta_for(500);
  ASSERT_TRUE(write(dir.path(), meta, a).ok());
  Result<ShardState> s = read_shard(dir.path(), meta, 1000);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(same_bits(s->params, a.params));
  EXPECT_TRUE(same_bits(s->adam_m, a.m));
  EXPECT_TRUE(same_bits(s->adam_v, a.v));
  EXPECT_EQ(s->meta.step, 500);
  EXPECT_EQ(s->meta.rank, 1);
  EXPECT_EQ(s->meta.world, 2);
  EXPECT_EQ(s->meta.tp, 2);
  EXPECT_EQ(s->meta.dp, 1);
  EXPECT_EQ(s->meta.job_hash, meta.job_hash);
  EXPECT_EQ(s->meta.seed, 1337u);
  EXPECT_EQ(s->meta.tokens_seen, 500 * 4096);
  // Header then the three arrays, nothing else.
  EXPECT_EQ(fs::file_size(shard_path(dir.path(), 1, 500)), sizeof(ShardFileHeader) + 3 * 1000 * sizeof(float));
  // An empty shard (a rank holding no parameters) is legal too.
  ASSERT_TRUE(write_shard(dir.path(), meta_for(7), {}, {}, {}).ok());
  EXPECT_TRUE(read_shard(dir.path(), meta_for(7), 0).ok());
}

TEST(Checkpoint, WriteRefusesInconsistentMeta) {
  testing::TempDir dir;
  const Arrays a = arrays_for(1, 10);
  ShardMeta m = meta_for(1);
  m.world = 3;  // not tp * dp
  EXPECT_EQ(write(dir.path(), m, a).code(), StatusCode::kInvalidArgument);
  m = meta_for(1, /*rank=*/2);
  EXPECT_EQ(write(dir.path(), m, a).code(), StatusCode::kInvalidArgument);
  std::vector<float> short_m(9);
  EXPECT_EQ(write_shard(dir.path(), meta_for(1), a.params, short_m, a.v).code(), StatusCode::kInvalidArgument);
}

TEST(Checkpoint, MissingLatestMeansAFreshRun) {
  testing::TempDir dir;
  Result<std::optional<int64_t>> l = latest_step(dir.path(), 0);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_FALSE(l->has_value());
  l = latest_step(dir.file("never-created"), 3);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_FALSE(l->has_value());
}

TEST(Checkpoint, CommitKeepsExactlyTheTwoNewestShards) {
  testing::TempDir dir;
  const std::string rank_dir = rank_directory(dir.path(), 1);
  for (int64_t step = 100; step <= 500; step += 100) {
    ASSERT_TRUE(write(dir.path(), meta_for(step), arrays_for(step, 64)).ok());
    ASSERT_TRUE(commit_checkpoint(dir.path(), 1, step).ok());
    Result<std::optional<int64_t>> l = latest_step(dir.path(), 1);
    ASSERT_TRUE(l.ok() && l->has_value()) << l.status().to_string();
    EXPECT_EQ(**l, step);
  }
  EXPECT_EQ(names_in(rank_dir), (std::set<std::string>{"latest", "step-00000400.ckpt", "step-00000500.ckpt"}));

  // What a crash leaves: a temp file, and a shard written but never committed
  // (`latest` cannot name it; the resumed run writes it again). Both go at the
  // next commit; the previous checkpoint stays.
  testing::write_file(rank_dir + "/step-00000600.ckpt.tmp", "partial");
  ASSERT_TRUE(write(dir.path(), meta_for(900), arrays_for(900, 64)).ok());
  ASSERT_TRUE(write(dir.path(), meta_for(600), arrays_for(600, 64)).ok());
  ASSERT_TRUE(commit_checkpoint(dir.path(), 1, 600).ok());
  EXPECT_EQ(names_in(rank_dir), (std::set<std::string>{"latest", "step-00000500.ckpt", "step-00000600.ckpt"}));
  EXPECT_TRUE(read_shard(dir.path(), meta_for(500), 64).ok());

  const Status no_shard = commit_checkpoint(dir.path(), 1, 700);
  EXPECT_EQ(no_shard.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_shard.message().find("step-00000700.ckpt"), std::string::npos) << no_shard.message();
  EXPECT_EQ(**latest_step(dir.path(), 1), 600);
}

// A crashed run wrote step 400 and never committed it; the resumed run
// commits 500. The checkpoint kept beside 500 is 200, which `latest` named
// and every rank holds, not the newer 400, which a peer may never have written.
TEST(Checkpoint, CommitKeepsTheCheckpointLatestNamedNotANewerUncommittedOne) {
  testing::TempDir dir;
  ASSERT_TRUE(write(dir.path(), meta_for(200), arrays_for(200, 64)).ok());
  ASSERT_TRUE(commit_checkpoint(dir.path(), 1, 200).ok());
  ASSERT_TRUE(write(dir.path(), meta_for(400), arrays_for(400, 64)).ok());
  ASSERT_TRUE(write(dir.path(), meta_for(500), arrays_for(500, 64)).ok());
  ASSERT_TRUE(commit_checkpoint(dir.path(), 1, 500).ok());
  EXPECT_EQ(names_in(rank_directory(dir.path(), 1)),
            (std::set<std::string>{"latest", "step-00000200.ckpt", "step-00000500.ckpt"}));
}

TEST(Checkpoint, MalformedLatestIsAnErrorNamingIt) {
  testing::TempDir dir;
  fs::create_directories(rank_directory(dir.path(), 0));
  const std::string path = rank_directory(dir.path(), 0) + "/latest";
  for (const std::string& bad : std::vector<std::string>{"", "\n", "abc\n", "-5\n", "12x\n", "99999999999999999999999\n", "1\n2\n",
                                std::string(100, '7')}) {
    testing::write_file(path, bad);
    Result<std::optional<int64_t>> l = latest_step(dir.path(), 0);
    EXPECT_EQ(l.status().code(), StatusCode::kDataLoss) << "\"" << bad << "\"";
    EXPECT_NE(l.status().message().find(path), std::string::npos) << l.status().message();
  }
  testing::write_file(path, "42");  // no newline: still one step number
  EXPECT_EQ(**latest_step(dir.path(), 0), 42);
}

// Hostile files: each edit of a valid shard must be refused naming the file.
class HostileShard : public ::testing::Test {
 protected:
  static constexpr int64_t kParams = 256;
  void SetUp() override {
    ASSERT_TRUE(write(dir_.path(), meta_for(500), arrays_for(500, kParams)).ok());
    path_ = shard_path(dir_.path(), 1, 500);
    bytes_ = testing::read_file(path_);
  }
  ShardFileHeader header() const {
    ShardFileHeader h;
    std::memcpy(&h, bytes_.data(), sizeof h);
    return h;
  }
  // Replaces the header, re-sealed with a valid header checksum unless asked
  // not to: a forged file, not merely a damaged one.
  void put_header(ShardFileHeader h, bool reseal = true) {
    if (reseal) h.header_crc32c = shard_header_checksum(h);
    std::memcpy(bytes_.data(), &h, sizeof h);
    testing::write_file(path_, bytes_);
  }
  Status read(const ShardMeta& want = meta_for(500), int64_t n = kParams) {
    return read_shard(dir_.path(), want, n).status();
  }
  void expect_error(const Status& s, StatusCode code, const std::string& words) {
    EXPECT_EQ(s.code(), code) << s.to_string();
    EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  }
  testing::TempDir dir_;
  std::string path_, bytes_;
};

TEST_F(HostileShard, ValidFileLoads) { EXPECT_TRUE(read().ok()) << read().to_string(); }

TEST_F(HostileShard, MissingFile) {
  fs::remove(path_);
  expect_error(read(), StatusCode::kNotFound, "does not exist");
}

TEST_F(HostileShard, TruncatedInTheHeader) {
  testing::write_file(path_, bytes_.substr(0, 50));
  expect_error(read(), StatusCode::kDataLoss, "truncated: 50 bytes");
}

TEST_F(HostileShard, TruncatedInThePayload) {
  testing::write_file(path_, bytes_.substr(0, bytes_.size() - 4));
  expect_error(read(), StatusCode::kDataLoss, "truncated");
}

TEST_F(HostileShard, TrailingBytes) {
  testing::write_file(path_, bytes_ + "junk");
  expect_error(read(), StatusCode::kDataLoss, "corrupt");
}

TEST_F(HostileShard, FlippedPayloadByteFailsTheChecksum) {
  for (size_t at : {sizeof(ShardFileHeader), bytes_.size() / 2, bytes_.size() - 1}) {
    std::string flipped = bytes_;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    testing::write_file(path_, flipped);
    expect_error(read(), StatusCode::kDataLoss, "payload checksum");
  }
}

TEST_F(HostileShard, FlippedHeaderByteIsCorruptionNotAnotherJob) {
  ShardFileHeader h = header();
  h.tp ^= 4;
  put_header(h, /*reseal=*/false);
  expect_error(read(), StatusCode::kDataLoss, "header checksum");
}

TEST_F(HostileShard, WrongMagic) {
  ShardFileHeader h = header();
  std::memcpy(h.magic, "GGUF\0\0\0\0", 8);
  put_header(h);
  expect_error(read(), StatusCode::kDataLoss, "not a tandem checkpoint");
}

TEST_F(HostileShard, WrongVersion) {
  ShardFileHeader h = header();
  h.version = kCheckpointVersion + 1;
  put_header(h, /*reseal=*/false);  // a future layout: its checksum may mean anything
  expect_error(read(), StatusCode::kDataLoss, "format version 2, this build reads version 1");
}

TEST_F(HostileShard, AbsurdLengthsAreRefusedBeforeAllocating) {
  for (uint64_t n : {uint64_t{1} << 62, std::numeric_limits<uint64_t>::max(), uint64_t{kParams + 1}}) {
    ShardFileHeader h = header();
    h.n_params = h.n_adam_m = h.n_adam_v = n;
    put_header(h);
    expect_error(read(), StatusCode::kDataLoss, "truncated");
  }
  ShardFileHeader h = header();
  h.n_adam_v = 7;
  put_header(h);
  expect_error(read(), StatusCode::kDataLoss, "AdamW moments");
}

TEST_F(HostileShard, AnotherJobsShapeIsNamed) {
  // This job has tp=1 (world 1, rank 0), but finds the shard of a tp=2 job
  // where its own would be.
  const ShardMeta other = meta_for(500, /*rank=*/0, /*tp=*/1);
  ASSERT_TRUE(write(dir_.path(), meta_for(500, 1, 2), arrays_for(500, kParams)).ok());
  fs::create_directories(rank_directory(dir_.path(), 0));
  fs::copy_file(path_, shard_path(dir_.path(), 0, 500));
  path_ = shard_path(dir_.path(), 0, 500);
  expect_error(read(other), StatusCode::kFailedPrecondition,
               "was written by a job with rank=1, world=2, tp=2, this job has rank=0, world=1, tp=1");

  path_ = shard_path(dir_.path(), 1, 500);
  ShardMeta want = meta_for(500);
  want.dp = 2;
  want.world = 4;
  expect_error(read(want), StatusCode::kFailedPrecondition, "world=2, dp=1, this job has world=4, dp=2");
  want = meta_for(500);
  want.job_hash = 99;
  expect_error(read(want), StatusCode::kFailedPrecondition, "this job has job_hash=99");
  expect_error(read(meta_for(500), kParams * 2), StatusCode::kFailedPrecondition,
               "params=256, this job has params=512");
  // A shard renamed to another step's name.
  fs::copy_file(path_, shard_path(dir_.path(), 1, 600));
  path_ = shard_path(dir_.path(), 1, 600);
  expect_error(read(meta_for(600)), StatusCode::kFailedPrecondition, "step=500, this job has step=600");
}

// Fault injection: a process writing and committing large checkpoints in a
// loop is killed with SIGKILL at arbitrary moments. Whatever it was doing,
// `latest` and the shard it names (and the one before) load whole.
TEST(CheckpointCrash, KillMidWriteLeavesTheCommittedCheckpointsLoadable) {
  testing::TempDir dir;
  constexpr size_t kParams = 1 << 20;  // 12 MiB a shard: the kill lands mid-write
  ASSERT_TRUE(write(dir.path(), meta_for(0), arrays_for(0, kParams)).ok());
  ASSERT_TRUE(commit_checkpoint(dir.path(), 1, 0).ok());

  int kills_mid_write = 0;
  for (int round = 0; round < 6; ++round) {
    const int64_t resume = **latest_step(dir.path(), 1);
    testing::Child writer = testing::Child::fork_call([&]() -> std::string {
      for (int64_t step = resume + 1;; ++step) {
        if (Status s = write(dir.path(), meta_for(step), arrays_for(step, kParams)); !s.ok()) return s.to_string();
        if (Status s = commit_checkpoint(dir.path(), 1, step); !s.ok()) return s.to_string();
      }
    });
    if (round % 2 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150 + 70 * round));
    } else {
      // Odd rounds wait for a write in progress, so at least some kills land
      // inside one however slow this machine (or a sanitizer) makes the child.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      auto writing = [&] {
        for (const auto& name : names_in(rank_directory(dir.path(), 1))) {
          if (name.ends_with(".tmp")) return true;
        }
        return false;
      };
      while (!writing() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    writer.kill(SIGKILL);
    const testing::ChildExit exit = writer.wait(std::chrono::seconds(30));
    ASSERT_EQ(exit.signal, SIGKILL) << testing::describe(exit) << ": " << writer.message();

    for (const auto& name : names_in(rank_directory(dir.path(), 1))) kills_mid_write += name.ends_with(".tmp");
    Result<std::optional<int64_t>> latest = latest_step(dir.path(), 1);
    ASSERT_TRUE(latest.ok() && latest->has_value()) << latest.status().to_string();
    const int64_t step = **latest;
    for (int64_t s : {step, step - 1}) {
      if (s < 0) continue;
      Result<ShardState> shard = read_shard(dir.path(), meta_for(s), kParams);
      ASSERT_TRUE(shard.ok()) << "round " << round << ": " << shard.status().to_string();
      const Arrays want = arrays_for(s, kParams);
      ASSERT_TRUE(same_bits(shard->params, want.params) && same_bits(shard->adam_m, want.m) &&
                  same_bits(shard->adam_v, want.v))
          << "step " << s;
    }
  }
  // Evidence that the kills hit a write in progress (a temp file left behind)
  // rather than only the gaps between writes.
  EXPECT_GT(kills_mid_write, 0);

  // The run goes on: the next commit clears the debris and keeps two shards.
  const int64_t next = **latest_step(dir.path(), 1) + 1;
  ASSERT_TRUE(write(dir.path(), meta_for(next), arrays_for(next, 16)).ok());
  ASSERT_TRUE(commit_checkpoint(dir.path(), 1, next).ok());
  std::set<std::string> names = names_in(rank_directory(dir.path(), 1));
  EXPECT_EQ(names.size(), 3u);
  EXPECT_TRUE(names.count("latest"));
  for (const std::string& n : names) EXPECT_FALSE(n.ends_with(".tmp")) << n;
}

// write_shard alone: a process rewriting one step's shard over and over (as
// a resumed run rewrites steps it had written before crashing) is killed at
// arbitrary moments; the file is always one of the versions whole, never a
// torn mix or a truncated one.
TEST(CheckpointCrash, KillDuringRewriteLeavesOneWholeVersion) {
  testing::TempDir dir;
  constexpr size_t kParams = 1 << 20;
  auto version_meta = [](int64_t version) {
    ShardMeta m = meta_for(100);
    m.tokens_seen = version;  // which version the arrays are
    return m;
  };
  ASSERT_TRUE(write(dir.path(), version_meta(0), arrays_for(0, kParams)).ok());
  for (int round = 0; round < 6; ++round) {
    testing::Child writer = testing::Child::fork_call([&]() -> std::string {
      for (int64_t version = 1;; ++version) {
        if (Status s = write(dir.path(), version_meta(version), arrays_for(version, kParams)); !s.ok())
          return s.to_string();
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + 45 * round));
    writer.kill(SIGKILL);
    const testing::ChildExit exit = writer.wait(std::chrono::seconds(30));
    ASSERT_EQ(exit.signal, SIGKILL) << testing::describe(exit) << ": " << writer.message();

    Result<ShardState> shard = read_shard(dir.path(), meta_for(100), kParams);
    ASSERT_TRUE(shard.ok()) << "round " << round << ": " << shard.status().to_string();
    const Arrays want = arrays_for(shard->meta.tokens_seen, kParams);
    ASSERT_TRUE(same_bits(shard->params, want.params) && same_bits(shard->adam_m, want.m) &&
                same_bits(shard->adam_v, want.v))
        << "round " << round << ": version " << shard->meta.tokens_seen << " is not whole";
  }
}

}  // namespace
}  // namespace tandem::train
