#include "runtime/formats/safetensors_writer.h"

#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/atomic_file.h"

namespace tandem {
namespace {

int64_t element_bytes(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "F8_E4M3" || dtype == "F8_E5M2" || dtype == "I8" || dtype == "U8" || dtype == "BOOL")
    return 1;
  return 0;
}

Result<std::string> header_json(const std::vector<SafetensorsWriteTensor>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const SafetensorsWriteTensor& t : tensors) {
    const int64_t size = element_bytes(t.dtype);
    if (size == 0) return InvalidArgument("tensor " + t.name + ": the writer does not know dtype " + t.dtype);
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      return InvalidArgument("tensor " + t.name + ": the name is reserved or repeated");
    uint64_t expected = static_cast<uint64_t>(size);
    for (const int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(expected, static_cast<uint64_t>(d), &expected))
        return InvalidArgument("tensor " + t.name + ": a negative or overflowing shape");
    }
    if (expected != t.bytes.size())
      return InvalidArgument("tensor " + t.name + ": " + std::to_string(t.bytes.size()) +
                             " bytes given, its shape and dtype take " + std::to_string(expected));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + expected}}};
    offset += expected;
  }
  try {
    return header.dump();
  } catch (const std::exception& e) {  // names that are not UTF-8
    return InvalidArgument(std::string("the header cannot be written as JSON: ") + e.what());
  }
}

}  // namespace

Status write_safetensors(const std::string& path, const std::vector<SafetensorsWriteTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  Result<std::string> header = header_json(tensors, metadata);
  if (!header.ok()) return header.status().with_context(path);
  std::string text = std::move(header).value();
  text.append((8 - text.size() % 8) % 8, ' ');
  return write_file_atomically(path, [&](FileWriter& out) -> Status {
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(text.size() >> (8 * i));
    TANDEM_RETURN_IF_ERROR(out.write(length, sizeof length));
    TANDEM_RETURN_IF_ERROR(out.write(text));
    for (const SafetensorsWriteTensor& t : tensors) TANDEM_RETURN_IF_ERROR(out.write(t.bytes));
    return Status::Ok();
  });
}

}  // namespace tandem
