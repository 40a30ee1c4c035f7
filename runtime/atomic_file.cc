#include "runtime/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

namespace tandem {

FileWriter::FileWriter(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "wb")) {}

FileWriter::~FileWriter() {
  if (file_) std::fclose(file_);
}

Status FileWriter::open_status() const { return file_ ? Status::Ok() : TANDEM_ERRNO("creating " + path_); }

Status FileWriter::write(const void* data, size_t bytes) {
  if (bytes != 0 && std::fwrite(data, 1, bytes, file_) != bytes) return TANDEM_ERRNO("writing " + path_);
  return Status::Ok();
}

Status FileWriter::sync() {
  if (std::fflush(file_) != 0) return TANDEM_ERRNO("flushing " + path_);
  if (::fsync(::fileno(file_)) != 0) return TANDEM_ERRNO("fsync of " + path_);
  return Status::Ok();
}

Status FileWriter::close() {
  const int rc = std::fclose(file_);
  file_ = nullptr;
  return rc == 0 ? Status::Ok() : TANDEM_ERRNO("closing " + path_);
}

Status write_file_atomically(const std::string& path, const std::function<Status(FileWriter&)>& write) {
  // Said up front: the rename below would fail with EISDIR only after the
  // whole file was written, and as an internal error.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return InvalidArgument(path + " is a directory, not a file to write");
  const std::string temp = path + ".tmp";
  Status s;
  {
    FileWriter out(temp);
    s = out.open_status();
    if (!s.ok()) return s.with_context("writing " + path);  // the user named path, not its .tmp
    s = write(out);
    if (s.ok()) s = out.sync();
    if (s.ok()) s = out.close();
  }
  if (s.ok() && std::rename(temp.c_str(), path.c_str()) != 0) s = TANDEM_ERRNO("renaming " + temp + " to " + path);
  if (!s.ok()) {
    std::remove(temp.c_str());
    return s;
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return sync_directory(dir.empty() ? "." : dir);
}

Status write_file_atomically(const std::string& path, std::string_view bytes) {
  return write_file_atomically(path, [bytes](FileWriter& out) { return out.write(bytes); });
}

Status sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return TANDEM_ERRNO("opening directory " + dir + " to fsync it");
  Status s;
  if (::fsync(fd) != 0) s = TANDEM_ERRNO("fsync of directory " + dir);
  ::close(fd);
  return s;
}

}  // namespace tandem
