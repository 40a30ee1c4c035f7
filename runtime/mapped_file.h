// A read-only memory map of a whole file. Model weights are read through it in
// place, so a worker touches (and the OS pages in) only the bytes it uses.
// The map follows the file on disk: one truncated or rewritten in place while
// a model is loaded (`cp new.gguf model.gguf` opens it with O_TRUNC) faults
// with SIGBUS at the next page read. Replace model files by rename (`mv`, or
// `cp` to a new name first), which leaves the mapped inode alone.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace tandem {

class MappedFile {
 public:
  // NotFound for a missing file, a Status naming the path for other failures.
  // An empty file maps to size 0 and data() == nullptr.
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const char* data() const { return static_cast<const char*>(data_); }
  size_t size() const { return size_; }

 private:
  MappedFile(std::string path, void* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  void* data_;
  size_t size_;
};

}  // namespace tandem
