// Writing a file so that a reader sees either its previous content or the
// whole new one: the bytes go to PATH.tmp, which is renamed over PATH only
// when every write and the close succeeded (a failure removes it). The temp
// file is fsynced before the rename and the directory after it, so the same
// holds after a power loss or kernel crash, not only after a process crash
// (without the first fsync a crash can leave PATH renamed but empty).
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/status.h"

namespace tandem {

// An open file whose errors are Status values naming it.
class FileWriter {
 public:
  explicit FileWriter(const std::string& path);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  Status open_status() const;
  Status write(const void* data, size_t bytes);
  Status write(std::string_view bytes) { return write(bytes.data(), bytes.size()); }
  // Flushes the stdio buffer and fsyncs: the bytes written so far are on disk.
  Status sync();
  // fclose can report a deferred write error, so it is checked too.
  Status close();

 private:
  std::string path_;
  std::FILE* file_;
};

Status write_file_atomically(const std::string& path, const std::function<Status(FileWriter&)>& write);
Status write_file_atomically(const std::string& path, std::string_view bytes);

// fsync of a directory, so that renames and removals in it are durable.
Status sync_directory(const std::string& dir);

}  // namespace tandem
