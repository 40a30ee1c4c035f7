// Reading the small JSON files of a Hugging Face directory (config.json,
// tokenizer.json, the shard index) without letting nlohmann's exceptions or a
// wrong type escape: every accessor returns a Status naming the file and the
// key. Internal to runtime/formats, but for nesting_depth, which the HTTP
// front end checks its request bodies with too.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/status.h"

namespace tandem::json_file {

using Json = nlohmann::json;

// The deepest nesting of arrays/objects in `text` (brackets inside strings
// skipped): what a hostile document is refused on before it is parsed, so
// nothing recursive (a dump, a reader walking it) can exhaust the stack.
int nesting_depth(std::string_view text);
inline constexpr int kMaxDepth = 64;  // real config.json / tokenizer.json files nest under 10

// The parsed file; NotFound when missing, InvalidArgument past `max_bytes`
// (the files this reads are megabytes at most: a larger one is not what it
// claims to be) or deeper than kMaxDepth, DataLoss when it is not JSON.
Result<Json> read(const std::string& path, uint64_t max_bytes);

// The members of `obj` (a JSON object) by type. Absent (or null) keys give
// std::nullopt; a present key of another type is InvalidArgument naming
// `path` and the key.
Result<std::optional<int64_t>> get_int(const Json& obj, std::string_view key, const std::string& path);
Result<std::optional<double>> get_number(const Json& obj, std::string_view key, const std::string& path);
Result<std::optional<bool>> get_bool(const Json& obj, std::string_view key, const std::string& path);
Result<std::optional<std::string>> get_string(const Json& obj, std::string_view key,
                                              const std::string& path);
// The member itself (any type), or nullptr when absent or null.
const Json* get(const Json& obj, std::string_view key);

}  // namespace tandem::json_file
