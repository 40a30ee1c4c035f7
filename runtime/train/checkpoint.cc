// Writing and committing checkpoint shards (checkpoint.h); reading them is in
// checkpoint_read.cc.
#include "runtime/train/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "runtime/atomic_file.h"
#include "runtime/crc32c.h"
#include "runtime/train/checkpoint_format.h"

namespace tandem::train {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kShardPrefix = "step-";
constexpr std::string_view kShardSuffix = ".ckpt";
constexpr std::string_view kTempSuffix = ".tmp";  // write_file_atomically's
constexpr char kLatestName[] = "latest";
// "9223372036854775807\n" is 20 bytes; a longer manifest is not one of ours.
constexpr size_t kMaxLatestBytes = 32;

Status validate_meta(const ShardMeta& m) {
  std::string why;
  if (m.step < 0) why = "step " + std::to_string(m.step) + " is negative";
  else if (m.tp < 1 || m.dp < 1) why = "tp=" + std::to_string(m.tp) + " dp=" + std::to_string(m.dp) + " must be >= 1";
  else if (static_cast<int64_t>(m.tp) * m.dp != m.world)
    why = "world=" + std::to_string(m.world) + " is not tp*dp=" + std::to_string(int64_t{m.tp} * m.dp);
  else if (m.rank < 0 || m.rank >= m.world)
    why = "rank " + std::to_string(m.rank) + " is outside a world of " + std::to_string(m.world);
  return why.empty() ? Status::Ok() : InvalidArgument("checkpoint meta: " + why);
}

// The step a shard's file name stands for, or -1 for any other name.
int64_t step_of_shard_name(std::string_view name) {
  if (name.size() <= kShardPrefix.size() + kShardSuffix.size() || !name.starts_with(kShardPrefix) ||
      !name.ends_with(kShardSuffix))
    return -1;
  const std::string_view digits = name.substr(kShardPrefix.size(), name.size() - kShardPrefix.size() - kShardSuffix.size());
  int64_t step = -1;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  return (ec == std::errc() && end == digits.data() + digits.size() && step >= 0) ? step : -1;
}

Status remove_file(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);  // a file already gone is not an error: false, no ec
  if (ec) return Internal("removing old checkpoint file " + path.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

uint32_t shard_header_checksum(const ShardFileHeader& header) {
  return crc32c(&header, offsetof(ShardFileHeader, header_crc32c));
}

std::string rank_directory(const std::string& out_dir, int rank) { return out_dir + "/rank-" + std::to_string(rank); }

Result<CheckpointDirLock> CheckpointDirLock::acquire(const std::string& out_dir, int rank) {
  const std::string dir = rank_directory(out_dir, rank);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("creating checkpoint directory " + dir + ": " + ec.message());
  const std::string path = dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return TANDEM_ERRNO("opening " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == ENOLCK) return CheckpointDirLock(fd);  // no flock there (some network file systems): unlocked
    ::close(fd);
    if (err == EWOULDBLOCK)
      return FailedPrecondition(dir + " is in use by another run (it holds " + path +
                                "); wait for it to end, or name another train.out_dir");
    return errno_status("locking " + path, err, __FILE__, __LINE__);
  }
  return CheckpointDirLock(fd);
}

CheckpointDirLock::~CheckpointDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

std::string shard_path(const std::string& out_dir, int rank, int64_t step) {
  char name[40];
  std::snprintf(name, sizeof name, "step-%08lld.ckpt", static_cast<long long>(step));
  return rank_directory(out_dir, rank) + "/" + name;
}

Status write_shard(const std::string& out_dir, const ShardMeta& meta, std::span<const float> params,
                   std::span<const float> adam_m, std::span<const float> adam_v) {
  TANDEM_RETURN_IF_ERROR(validate_meta(meta));
  if (adam_m.size() != params.size() || adam_v.size() != params.size()) {
    return InvalidArgument("checkpoint: AdamW moments of " + std::to_string(adam_m.size()) + " and " +
                           std::to_string(adam_v.size()) + " values for " + std::to_string(params.size()) +
                           " parameters");
  }
  const std::string dir = rank_directory(out_dir, meta.rank);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("creating checkpoint directory " + dir + ": " + ec.message());

  ShardFileHeader h{};
  std::memcpy(h.magic, kShardMagic, sizeof h.magic);
  h.version = kCheckpointVersion;
  h.header_bytes = sizeof(ShardFileHeader);
  h.step = meta.step;
  h.rank = meta.rank;
  h.world = meta.world;
  h.tp = meta.tp;
  h.dp = meta.dp;
  h.job_hash = meta.job_hash;
  h.seed = meta.seed;
  h.tokens_seen = meta.tokens_seen;
  h.n_params = params.size();
  h.n_adam_m = adam_m.size();
  h.n_adam_v = adam_v.size();
  // The checksum leads the payload in the file, so it takes a pass over the
  // arrays before writing: cheaper than buffering a copy of them.
  uint32_t crc = 0;
  for (std::span<const float> a : {params, adam_m, adam_v}) crc = crc32c_extend(crc, a.data(), a.size_bytes());
  h.payload_crc32c = crc;
  h.header_crc32c = shard_header_checksum(h);

  // The arrays go straight from the caller's memory to the file, with no
  // serialized copy of the shard in between.
  return write_file_atomically(shard_path(out_dir, meta.rank, meta.step), [&](FileWriter& out) {
    TANDEM_RETURN_IF_ERROR(out.write(&h, sizeof h));
    for (std::span<const float> a : {params, adam_m, adam_v}) TANDEM_RETURN_IF_ERROR(out.write(a.data(), a.size_bytes()));
    return Status::Ok();
  });
}

Status commit_checkpoint(const std::string& out_dir, int rank, int64_t step) {
  const std::string shard = shard_path(out_dir, rank, step);
  std::error_code ec;
  if (!fs::is_regular_file(shard, ec)) {
    return FailedPrecondition("cannot commit checkpoint step " + std::to_string(step) + ": " + shard +
                              (ec ? " cannot be read: " + ec.message() : " does not exist"));
  }
  const std::string dir = rank_directory(out_dir, rank);
  // Keep `step` and the checkpoint `latest` named until now, when older: the
  // one every rank holds should this rank's peers crash before committing
  // `step`. Not "the newest shard before step": that may be one a crashed run
  // wrote and never committed, which a peer may not hold. Every other shard
  // goes: newer ones were never committed (`latest` can never name them and
  // a resumed run writes them again), older ones are superseded. Temp files
  // are what a crash mid-write leaves.
  TANDEM_ASSIGN_OR_RETURN(const std::optional<int64_t> committed, latest_step(out_dir, rank));
  const int64_t previous = committed.value_or(-1) < step ? committed.value_or(-1) : -1;
  TANDEM_RETURN_IF_ERROR(write_file_atomically(dir + "/" + kLatestName, std::to_string(step) + "\n"));

  std::vector<std::pair<int64_t, fs::path>> shards;
  std::vector<fs::path> temps;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.ends_with(kTempSuffix)) {
      temps.push_back(it->path());
    } else if (const int64_t s = step_of_shard_name(name); s >= 0) {
      shards.emplace_back(s, it->path());
    }
  }
  if (ec) return Internal("listing checkpoint directory " + dir + ": " + ec.message());
  for (const auto& [s, path] : shards) {
    if (s != step && s != previous) TANDEM_RETURN_IF_ERROR(remove_file(path));
  }
  for (const fs::path& path : temps) TANDEM_RETURN_IF_ERROR(remove_file(path));
  return sync_directory(dir);
}

Result<std::optional<int64_t>> latest_step(const std::string& out_dir, int rank) {
  const std::string path = rank_directory(out_dir, rank) + "/" + kLatestName;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    if (errno == ENOENT) return std::optional<int64_t>();  // no checkpoint yet: a fresh run
    return TANDEM_ERRNO("opening checkpoint manifest " + path);
  }
  char buf[kMaxLatestBytes + 1];
  const size_t n = std::fread(buf, 1, sizeof buf, f);
  const bool read_failed = std::ferror(f) != 0;
  std::fclose(f);
  if (read_failed) return Internal("reading checkpoint manifest " + path + " failed");

  std::string_view text(buf, n);
  auto malformed = [&](const std::string& why) {
    return DataLoss("checkpoint manifest " + path + " is malformed (" + why + "); it should hold one step number");
  };
  if (n > kMaxLatestBytes) return malformed("longer than " + std::to_string(kMaxLatestBytes) + " bytes");
  if (text.ends_with('\n')) text.remove_suffix(1);
  int64_t step = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), step);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || step < 0) {
    // Appended rather than "\"" + std::string(...): GCC 12 -Wrestrict misfires on the latter.
    std::string why = "\"";
    why.append(text);
    why += "\" is not a non-negative integer";
    return malformed(why);
  }
  return std::optional<int64_t>(step);
}

}  // namespace tandem::train
