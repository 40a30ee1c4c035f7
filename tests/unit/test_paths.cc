#include "tests/unit/test_paths.h"


#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tandem::testing {

std::string source_dir() { return TANDEM_SOURCE_DIR; }
std::string bundled_model_dir() { return source_dir() + "/models/stories260K"; }
std::string bundled_checkpoint() { return bundled_model_dir() + "/stories260K.bin"; }
std::string bundled_tokenizer() { return bundled_model_dir() + "/tok512.bin"; }
std::string tandem_binary() { return TANDEM_BINARY; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string published_story() {
  const std::string readme = read_file(bundled_model_dir() + "/README.md");
  const size_t open = readme.find("```\n");
  const size_t close = readme.find("\n```", open + 4);
  if (open == std::string::npos || close == std::string::npos)
    throw std::runtime_error("no ``` block in the bundled README");
  return readme.substr(open + 4, close - (open + 4));
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tandem-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace tandem::testing
