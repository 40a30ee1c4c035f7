#include "runtime/atomic_file.h"

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

Status FileWriter::close() {
  const int rc = std::fclose(file_);
  file_ = nullptr;
  return rc == 0 ? Status::Ok() : TANDEM_ERRNO("closing " + path_);
}

Status write_file_atomically(const std::string& path, const std::function<Status(FileWriter&)>& write) {
  const std::string temp = path + ".tmp";
  Status s;
  {
    FileWriter out(temp);
    s = out.open_status();
    if (!s.ok()) return s;
    s = write(out);
    if (s.ok()) s = out.close();
  }
  if (s.ok() && std::rename(temp.c_str(), path.c_str()) != 0) s = TANDEM_ERRNO("renaming " + temp);
  if (!s.ok()) std::remove(temp.c_str());
  return s;
}

Status write_file_atomically(const std::string& path, std::string_view bytes) {
  return write_file_atomically(path, [bytes](FileWriter& out) { return out.write(bytes); });
}

}  // namespace tandem
