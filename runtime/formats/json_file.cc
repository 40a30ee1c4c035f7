#include "runtime/formats/json_file.h"

#include "runtime/mapped_file.h"

namespace tandem::json_file {

int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

Result<Json> read(const std::string& path, uint64_t max_bytes) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  if (file->size() > max_bytes)
    return InvalidArgument(path + ": " + std::to_string(file->size()) + " bytes, more than the " +
                           std::to_string(max_bytes) + " such a file may hold");
  const char* first = file->data();
  // nlohmann parses and frees iteratively but dumps recursively, and so do
  // readers that walk a document: depth is refused before anything is built.
  if (nesting_depth(std::string_view(first, file->size())) > kMaxDepth)
    return InvalidArgument(path + ": nests deeper than " + std::to_string(kMaxDepth) +
                           " levels of arrays and objects");
  // Without exceptions a malformed document comes back as a discarded value.
  Json doc = Json::parse(first, first + file->size(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return DataLoss(path + ": not valid JSON");
  return doc;
}

const Json* get(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

namespace {

Status wrong_type(std::string_view key, const std::string& path, const char* wanted, const Json& v) {
  return InvalidArgument(path + ": \"" + std::string(key) + "\" must be " + wanted + ", not " +
                         v.type_name());
}

}  // namespace

Result<std::optional<int64_t>> get_int(const Json& obj, std::string_view key, const std::string& path) {
  const Json* v = get(obj, key);
  if (v == nullptr) return std::optional<int64_t>();
  // nlohmann keeps non-negative integers unsigned: one above INT64_MAX is no size.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return InvalidArgument(path + ": \"" + std::string(key) + "\" is out of range");
  if (v->is_number_integer()) return std::optional<int64_t>(v->get<int64_t>());
  return wrong_type(key, path, "an integer", *v);
}

Result<std::optional<double>> get_number(const Json& obj, std::string_view key, const std::string& path) {
  const Json* v = get(obj, key);
  if (v == nullptr) return std::optional<double>();
  if (v->is_number()) return std::optional<double>(v->get<double>());
  return wrong_type(key, path, "a number", *v);
}

Result<std::optional<bool>> get_bool(const Json& obj, std::string_view key, const std::string& path) {
  const Json* v = get(obj, key);
  if (v == nullptr) return std::optional<bool>();
  if (v->is_boolean()) return std::optional<bool>(v->get<bool>());
  return wrong_type(key, path, "true or false", *v);
}

Result<std::optional<std::string>> get_string(const Json& obj, std::string_view key,
                                              const std::string& path) {
  const Json* v = get(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->is_string()) return std::optional<std::string>(v->get<std::string>());
  return wrong_type(key, path, "a string", *v);
}

}  // namespace tandem::json_file
