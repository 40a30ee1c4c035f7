#include "runtime/model_files.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

namespace tandem {
namespace {

namespace fs = std::filesystem;

Result<std::vector<fs::path>> bin_files(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().extension() == ".bin") out.push_back(it->path());
  }
  if (ec) return NotFound("cannot list " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> find_tokenizer(const fs::path& dir) {
  TANDEM_ASSIGN_OR_RETURN(auto files, bin_files(dir));
  std::vector<fs::path> candidates;
  for (const auto& f : files) {
    if (f.filename() == "tokenizer.bin") return f.string();
    if (is_llama2c_tokenizer_name(f.filename().string())) candidates.push_back(f);
  }
  if (candidates.empty())
    return NotFound("no tokenizer (tokenizer.bin or tok*.bin) in " + dir.string() +
                    "; name one with --tokenizer");
  if (candidates.size() > 1)
    return InvalidArgument("several tokenizers in " + dir.string() + " (" +
                           candidates[0].filename().string() + ", " +
                           candidates[1].filename().string() + "); name one with --tokenizer");
  return candidates[0].string();
}

bool starts_with_gguf_magic(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

Result<std::vector<fs::path>> gguf_files(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec) && it->path().extension() == ".gguf") out.push_back(it->path());
  if (ec) return NotFound("cannot list " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

// A model whose tokenizer is its own (GGUF, Hugging Face): only an explicit
// llama2.c tokenizer replaces it.
Result<ModelFiles> self_contained(ModelFileFormat format, const std::string& checkpoint,
                                  const std::string& tokenizer) {
  std::error_code ec;
  if (!tokenizer.empty() && !fs::exists(tokenizer, ec))
    return NotFound("tokenizer " + tokenizer + " does not exist");
  return ModelFiles{format, checkpoint, tokenizer};
}

}  // namespace

bool is_llama2c_tokenizer_name(std::string_view name) {
  return name == "tokenizer.bin" ||
         (name.rfind("tok", 0) == 0 && name.size() > 7 && name.compare(name.size() - 4, 4, ".bin") == 0);
}

std::string_view to_string(ModelFileFormat format) {
  switch (format) {
    case ModelFileFormat::kLlama2c: return "llama2c";
    case ModelFileFormat::kGguf: return "gguf";
    case ModelFileFormat::kHuggingFace: return "safetensors";
  }
  return "?";
}

Result<ModelFiles> resolve_model_files(const std::string& path, const std::string& tokenizer, TokenizerUse use) {
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec)) return NotFound("model path " + path + " does not exist");
  ModelFiles files;
  fs::path dir;
  if (fs::is_directory(p, ec) && fs::exists(p / "config.json", ec))
    return self_contained(ModelFileFormat::kHuggingFace, path, tokenizer);
  if (!fs::is_directory(p, ec) && starts_with_gguf_magic(p))
    return self_contained(ModelFileFormat::kGguf, path, tokenizer);
  if (fs::is_directory(p, ec)) {
    TANDEM_ASSIGN_OR_RETURN(auto ggufs, gguf_files(p));
    if (ggufs.size() > 1)
      return InvalidArgument("several GGUF files in " + path + " (" + ggufs[0].filename().string() +
                             ", " + ggufs[1].filename().string() + "); name the file");
    if (ggufs.size() == 1) return self_contained(ModelFileFormat::kGguf, ggufs[0].string(), tokenizer);
  }
  if (fs::is_directory(p, ec)) {
    TANDEM_ASSIGN_OR_RETURN(auto bins, bin_files(p));
    std::vector<fs::path> checkpoints;
    for (const auto& f : bins)
      if (!is_llama2c_tokenizer_name(f.filename().string())) checkpoints.push_back(f);
    if (checkpoints.empty()) return NotFound("no model checkpoint (*.bin) in " + path);
    if (checkpoints.size() > 1)
      return InvalidArgument("several checkpoints in " + path + " (" +
                             checkpoints[0].filename().string() + ", " +
                             checkpoints[1].filename().string() + "); name the file");
    files.checkpoint = checkpoints[0].string();
    dir = p;
  } else {
    files.checkpoint = path;
    dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  }
  if (!tokenizer.empty()) {
    if (!fs::exists(tokenizer, ec)) return NotFound("tokenizer " + tokenizer + " does not exist");
    files.tokenizer = tokenizer;
  } else if (use != TokenizerUse::kUnused) {
    Result<std::string> found = find_tokenizer(dir);
    if (found.ok()) {
      files.tokenizer = std::move(found).value();
    } else if (use == TokenizerUse::kRequired || found.status().code() != StatusCode::kNotFound) {
      return found.status();
    }
  }
  return files;
}

}  // namespace tandem
