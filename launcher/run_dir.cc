// run_dir/<run id>/: where a run leaves its resolved config (and, from the
// launcher, its logs and summary), so any run can be inspected and repeated.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>

#include "launcher/config.h"

namespace tandem::launcher {
namespace {

// Like TANDEM_ERRNO, but errno is read before the message is built: building
// it allocates, and an allocation may change errno.
#define SYSCALL_ERROR(what) \
  ([&, saved_errno = errno] { return errno_status((what), saved_errno, __FILE__, __LINE__); }())

// temp file + fsync + rename + fsync of the directory: a crash leaves either
// no config.yaml or a complete one, never a torn one.
Status write_file_atomically(const std::string& dir, const std::string& name, std::string_view bytes) {
  const std::string path = dir + "/" + name;
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return SYSCALL_ERROR("creating " + temp);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = SYSCALL_ERROR("writing " + temp);
      ::close(fd);
      return s;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) {
    Status s = SYSCALL_ERROR("fsync " + temp);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return SYSCALL_ERROR("closing " + temp);
  if (::rename(temp.c_str(), path.c_str()) != 0) return SYSCALL_ERROR("renaming " + temp);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return SYSCALL_ERROR("opening " + dir);
  if (::fsync(dir_fd) != 0) {
    Status s = SYSCALL_ERROR("fsync " + dir);
    ::close(dir_fd);
    return s;
  }
  ::close(dir_fd);
  return Status::Ok();
}

}  // namespace

std::string make_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  std::random_device random;
  char id[48];
  std::snprintf(id, sizeof id, "%s-%06x", stamp, static_cast<unsigned>(random() & 0xffffff));
  return id;
}

Result<std::string> create_run_directory(const RunConfig& config, std::string_view run_id) {
  const std::string id = run_id.empty() ? make_run_id() : std::string(run_id);
  if (id == "." || id == ".." || id.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
    return InvalidArgument("run id '" + id + "': must be a single path component");
  }
  if (config.run_dir.empty()) return InvalidArgument("run_dir: must not be empty");
  std::error_code ec;
  std::filesystem::create_directories(config.run_dir, ec);
  if (ec) return Internal("creating run_dir '" + config.run_dir + "': " + ec.message());
  const std::string dir = (std::filesystem::path(config.run_dir) / id).string();
  // mkdir, not create_directories: an existing run directory is never reused,
  // or two runs' logs would mix.
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno == EEXIST) return FailedPrecondition("run directory " + dir + " already exists");
    return SYSCALL_ERROR("creating " + dir);
  }
  TANDEM_RETURN_IF_ERROR(write_file_atomically(dir, "config.yaml", to_yaml(config)));
  return dir;
}

#undef SYSCALL_ERROR

}  // namespace tandem::launcher
