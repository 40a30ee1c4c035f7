// libFuzzer target: read_hf_tokenizer on an arbitrary tokenizer.json must
// return a Status or a spec whose ids all index its vocabulary, never crash,
// recurse off the stack or allocate beyond what the input can justify.
// (The reader takes a directory, so each input is written to one first.)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/formats/hf_model.h"

namespace {

// One directory for the whole run (mkdtemp's template), removed when the
// fuzzer exits normally; a crash leaves it beside its artifact.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char name[] = "/tmp/tandem-hf-fuzz-XXXXXX";
    if (::mkdtemp(name) == nullptr) std::abort();
    path = name;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = scratch_dir();
  std::FILE* f = std::fopen((dir + "/tokenizer.json").c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  auto spec = tandem::read_hf_tokenizer(dir);
  if (!spec.ok() || !spec->has_value()) return 0;
  const tandem::TokenizerSpec& s = **spec;
  const auto vocab = static_cast<int64_t>(s.tokens.size());
  if (s.token_types.size() != s.tokens.size()) std::abort();
  for (int32_t id : {s.bos, s.eos, s.unk, s.pad})
    if (id < -1 || id >= vocab) std::abort();
  return 0;
}
