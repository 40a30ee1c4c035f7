// Writing a file so that a reader sees either its previous content or the
// whole new one: the bytes go to PATH.tmp, which is renamed over PATH only
// when every write and the close succeeded (a failure removes it).
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
  // fclose can report a deferred write error, so it is checked too.
  Status close();

 private:
  std::string path_;
  std::FILE* file_;
};

Status write_file_atomically(const std::string& path, const std::function<Status(FileWriter&)>& write);
Status write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace tandem
