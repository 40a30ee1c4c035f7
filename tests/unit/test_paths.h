// Shared test support: where the bundled data is, temporary files, the
// kernels' instruction set. Child processes: process_util.h.
#pragma once

#include <string>
#include <vector>

#include "runtime/cpu/kernels.h"

namespace tandem::testing {

std::string source_dir();
std::string bundled_model_dir();  // models/stories260K in the source tree
std::string bundled_checkpoint();
std::string bundled_tokenizer();
std::string tandem_binary();

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// The greedy story published in the bundled model's README (the text inside
// its ``` block, without the final newline).
std::string published_story();

// A fresh directory under the system's temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};


// Sets the kernels' instruction set for a scope and restores it on leaving,
// failed assertion or not.
class ScopedIsa {
 public:
  explicit ScopedIsa(cpu::Isa isa) : ok_(cpu::set_active_isa(isa)) {}
  ~ScopedIsa() { cpu::set_active_isa(saved_); }
  bool ok() const { return ok_; }

 private:
  cpu::Isa saved_ = cpu::active_isa();
  bool ok_;
};

}  // namespace tandem::testing
