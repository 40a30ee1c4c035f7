// read_shard (checkpoint.h): every check a hostile or stale file needs before
// its arrays are trusted, each error naming the file and what is wrong.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/crc32c.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/checkpoint_format.h"

namespace tandem::train {
namespace {

// Large enough that syscalls cost nothing next to the copy, small enough to
// keep a partial read's retry loop simple.
constexpr size_t kReadChunkBytes = size_t{8} << 20;

class ReadOnlyFile {
 public:
  explicit ReadOnlyFile(const std::string& path)
      : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), open_errno_(fd_ < 0 ? errno : 0) {}
  ~ReadOnlyFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  Status open_status() const {
    if (fd_ >= 0) return Status::Ok();
    if (open_errno_ == ENOENT) return NotFound("checkpoint " + path_ + " does not exist");
    return errno_status("opening checkpoint " + path_, open_errno_, __FILE__, __LINE__);
  }
  Result<uint64_t> size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return TANDEM_ERRNO("fstat of checkpoint " + path_);
    return static_cast<uint64_t>(st.st_size);
  }
  // Exactly `bytes` bytes, extending `crc` over them; a short file is DataLoss.
  Status read(void* out, size_t bytes, uint32_t* crc) {
    auto* p = static_cast<char*>(out);
    while (bytes > 0) {
      const ssize_t n = ::read(fd_, p, std::min(bytes, kReadChunkBytes));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return TANDEM_ERRNO("reading checkpoint " + path_);
      if (n == 0) return DataLoss("checkpoint " + path_ + " ended early (truncated while being read?)");
      if (crc != nullptr) *crc = crc32c_extend(*crc, p, static_cast<size_t>(n));
      p += n;
      bytes -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
  int open_errno_;
};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The file's structure: magic, version, header checksum, lengths against the
// file's size. Anything failing here is a damaged or foreign file.
Status check_structure(const std::string& path, const ShardFileHeader& h, uint64_t file_bytes) {
  if (std::memcmp(h.magic, kShardMagic, sizeof h.magic) != 0)
    return DataLoss("checkpoint " + path + " is not a tandem checkpoint shard (wrong magic)");
  if (h.version != kCheckpointVersion) {
    return DataLoss("checkpoint " + path + " has format version " + std::to_string(h.version) +
                    ", this build reads version " + std::to_string(kCheckpointVersion));
  }
  if (const uint32_t want = shard_header_checksum(h); h.header_crc32c != want) {
    return DataLoss("checkpoint " + path + " is corrupt: header checksum " + hex32(h.header_crc32c) +
                    ", computed " + hex32(want));
  }
  if (h.header_bytes != sizeof(ShardFileHeader)) {
    return DataLoss("checkpoint " + path + " declares a " + std::to_string(h.header_bytes) +
                    "-byte header, version " + std::to_string(kCheckpointVersion) + " has " +
                    std::to_string(sizeof(ShardFileHeader)));
  }
  if (h.n_adam_m != h.n_params || h.n_adam_v != h.n_params) {
    return DataLoss("checkpoint " + path + " is corrupt: " + std::to_string(h.n_params) + " parameters but " +
                    std::to_string(h.n_adam_m) + " and " + std::to_string(h.n_adam_v) + " AdamW moments");
  }
  const uint64_t payload_bytes = file_bytes - sizeof(ShardFileHeader);
  // A length whose byte count overflows 64 bits is described, not computed.
  const bool sizeable = h.n_params <= UINT64_MAX / 12;
  const uint64_t expected = sizeable ? h.n_params * 12 : 0;
  if (!sizeable || expected != payload_bytes) {
    return DataLoss("checkpoint " + path + " is " + (!sizeable || expected > payload_bytes ? "truncated" : "corrupt") +
                    ": its header declares " + std::to_string(h.n_params) + " parameters (" +
                    (sizeable ? std::to_string(expected) + " bytes of arrays" : std::string("beyond any file size")) +
                    ") but the file holds " + std::to_string(payload_bytes) + " bytes after the header");
  }
  return Status::Ok();
}

// The resuming job against the one that wrote the file: every difference.
Status check_job(const std::string& path, const ShardFileHeader& h, const ShardMeta& want, int64_t n_params) {
  std::string theirs, ours;
  auto compare = [&](const char* name, auto in_file, auto in_job) {
    if (in_file == in_job) return;
    const std::string sep = theirs.empty() ? "" : ", ";
    theirs += sep + name + "=" + std::to_string(in_file);
    ours += sep + name + "=" + std::to_string(in_job);
  };
  compare("step", h.step, want.step);
  compare("rank", h.rank, want.rank);
  compare("world", h.world, want.world);
  compare("tp", h.tp, want.tp);
  compare("dp", h.dp, want.dp);
  compare("job_hash", h.job_hash, want.job_hash);
  compare("params", static_cast<int64_t>(h.n_params), n_params);
  if (theirs.empty()) return Status::Ok();
  return FailedPrecondition("checkpoint " + path + " was written by a job with " + theirs + ", this job has " + ours +
                            " (job_hash covers the model's shape, train.batch_size and the micro-batch, train.lr, "
                            "min_lr, warmup_iters and lr_decay_iters (train.iters when 0), beta1, beta2, weight_decay, "
                            "grad_clip, the seed and the training text: resume with none of them changed, or train "
                            "into a new train.out_dir)");
}

}  // namespace

Result<ShardMeta> read_shard_into(const std::string& out_dir, const ShardMeta& expected, std::span<float> params,
                                  std::span<float> adam_m, std::span<float> adam_v) {
  if (adam_m.size() != params.size() || adam_v.size() != params.size()) {
    return InvalidArgument("read_shard: AdamW moments of " + std::to_string(adam_m.size()) + " and " +
                           std::to_string(adam_v.size()) + " values for " + std::to_string(params.size()) +
                           " parameters");
  }
  const std::string path = shard_path(out_dir, expected.rank, expected.step);
  ReadOnlyFile file(path);
  TANDEM_RETURN_IF_ERROR(file.open_status());
  TANDEM_ASSIGN_OR_RETURN(const uint64_t file_bytes, file.size());
  if (file_bytes < sizeof(ShardFileHeader)) {
    return DataLoss("checkpoint " + path + " is truncated: " + std::to_string(file_bytes) + " bytes, shorter than its " +
                    std::to_string(sizeof(ShardFileHeader)) + "-byte header");
  }
  ShardFileHeader h{};
  TANDEM_RETURN_IF_ERROR(file.read(&h, sizeof h, nullptr));
  TANDEM_RETURN_IF_ERROR(check_structure(path, h, file_bytes));
  TANDEM_RETURN_IF_ERROR(check_job(path, h, expected, static_cast<int64_t>(params.size())));

  // check_job matched the file's count to the spans', so the file fills them exactly.
  uint32_t crc = 0;
  for (std::span<float> a : {params, adam_m, adam_v}) TANDEM_RETURN_IF_ERROR(file.read(a.data(), a.size_bytes(), &crc));
  if (crc != h.payload_crc32c) {
    return DataLoss("checkpoint " + path + " is corrupt: payload checksum " + hex32(crc) + ", header says " +
                    hex32(h.payload_crc32c));
  }
  return ShardMeta{h.step, h.rank, h.world, h.tp, h.dp, h.job_hash, h.seed, h.tokens_seen};
}

Result<ShardState> read_shard(const std::string& out_dir, const ShardMeta& expected, int64_t n_params) {
  if (n_params < 0) return InvalidArgument("read_shard: " + std::to_string(n_params) + " parameters");
  ShardState state;
  const size_t n = static_cast<size_t>(n_params);
  for (std::vector<float>* a : {&state.params, &state.adam_m, &state.adam_v}) a->resize(n);
  TANDEM_ASSIGN_OR_RETURN(state.meta, read_shard_into(out_dir, expected, state.params, state.adam_m, state.adam_v));
  return state;
}

}  // namespace tandem::train
