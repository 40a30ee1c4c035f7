// Internal to the config library: YAML nodes -> RunConfig, for a file's tree
// and for `--set` overrides alike, so both accept exactly the same values and
// word their errors the same way.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>

#include "launcher/config_fields.h"

namespace tandem::launcher::detail {

// Where each key path got its value ("x.yaml:4:7", "--set parallel.tp=3"),
// so checks that run after decoding can still point at the line to fix.
using Origins = std::map<std::string, std::string>;

std::string join_path(const std::string& path, std::string_view key);
// "unknown key 'parallel.tpp' (did you mean 'parallel.tp'?)", or the allowed keys.
std::string unknown_key_message(const std::string& path, std::string_view key,
                                const std::vector<std::string_view>& allowed);
// "'two'", "a mapping", "a list", "nothing": what a value was instead.
std::string describe_value(const YAML::Node& node);

class Decoder {
 public:
  // `source`: a file name, whose marks become line:column, or an override
  // ("--set k=v"), whose marks would point into the value text and are dropped.
  Decoder(std::string source, bool has_lines, Origins& origins)
      : source_(std::move(source)), has_lines_(has_lines), origins_(origins) {}

  // Decodes `node` into `out`, a value at `path`; `mark` is where to point
  // (a null value's own mark is the line after its key, so callers pass the key's).
  template <class T>
  Status decode(const YAML::Node& node, const YAML::Mark& mark, const std::string& path, T& out) {
    origins_[path] = at(mark);
    if constexpr (std::is_same_v<T, std::string>) {
      if (node.IsNull()) {
        out.clear();  // `key:` with nothing: an empty string
      } else if (!node.IsScalar()) {
        return type_error(node, mark, path, "a string");
      } else {
        out = node.Scalar();
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      // YAML 1.2's core schema: true / false only (yes/no/on/off are strings).
      if (node.IsScalar() && (node.Scalar() == "true" || node.Scalar() == "false")) {
        out = node.Scalar() == "true";
      } else {
        return type_error(node, mark, path, "true or false");
      }
    } else if constexpr (std::is_arithmetic_v<T>) {
      return decode_number(node, mark, path, out);
    } else if constexpr (std::is_enum_v<T>) {
      const auto names = enum_names(T{});
      if (node.IsScalar()) {
        for (size_t i = 0; i < names.size(); ++i) {
          if (node.Scalar() == names[i]) {
            out = static_cast<T>(i);
            return Status::Ok();
          }
        }
      }
      std::string allowed;
      for (std::string_view n : names) allowed += (allowed.empty() ? "" : ", ") + std::string(n);
      return fail(mark, path + ": unknown value " + describe_value(node) + " (allowed: " + allowed + ")");
    } else if constexpr (IsVector<T>::value) {
      out.clear();
      if (node.IsNull()) return Status::Ok();
      if (!node.IsSequence()) return type_error(node, mark, path, "a list");
      for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node item = node[i];
        TANDEM_RETURN_IF_ERROR(decode(item, item.IsNull() ? mark : item.Mark(),
                                      path + "[" + std::to_string(i) + "]", out.emplace_back()));
      }
    } else if constexpr (std::is_same_v<T, StringMap>) {
      out.clear();
      return decode_map(node, mark, path, [&](const std::string& key, const YAML::Mark&,
                                              const YAML::Node& value, const YAML::Mark& value_mark) {
        return decode(value, value_mark, join_path(path, key), out[key]);
      });
    } else {
      return decode_map(node, mark, path, [&](const std::string& key, const YAML::Mark& key_mark,
                                              const YAML::Node& value, const YAML::Mark& value_mark) {
        Status status;
        if (!with_field(out, key, [&](auto& member) {
              status = decode(value, value_mark, join_path(path, key), member);
            })) {
          return fail(key_mark, unknown_key_message(path, key, field_names(out)));
        }
        return status;
      });
    }
    return Status::Ok();
  }

  // Sets the value at `rest` below `path` ("parallel.tp", "[1].host") in `out`
  // to `value`, as decode would.
  template <class T>
  Status set(T& out, std::string_view rest, const std::string& path, const YAML::Node& value) {
    if (rest.empty()) return decode(value, value.Mark(), path, out);
    if constexpr (IsVector<T>::value) {
      const size_t close = rest.find(']');
      size_t index = 0;
      const bool bracketed = rest[0] == '[' && close != rest.npos;
      const auto [end, ec] = bracketed ? std::from_chars(rest.data() + 1, rest.data() + close, index)
                                       : std::from_chars_result{rest.data(), std::errc::invalid_argument};
      if (!bracketed || ec != std::errc() || end != rest.data() + close) {
        return fail_path("bad key path '" + path + std::string(rest) + "' (a list takes [index])");
      }
      if (index > out.size()) {
        return fail_path(path + "[" + std::to_string(index) + "]: index out of range (" + path + " has " +
                         std::to_string(out.size()) + " entries; index " + std::to_string(out.size()) +
                         " appends one)");
      }
      if (index == out.size()) out.emplace_back();
      return set(out[index], rest.substr(close + 1), path + "[" + std::to_string(index) + "]", value);
    } else if constexpr (std::is_same_v<T, StringMap>) {
      if (rest[0] != '.' || rest.size() == 1) {
        return fail_path("bad key path '" + path + std::string(rest) + "'");
      }
      const std::string key(rest.substr(1));
      return decode(value, value.Mark(), join_path(path, key), out[key]);
    } else if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string>) {
      if (!path.empty()) {
        if (rest[0] != '.') return fail_path("bad key path '" + path + std::string(rest) + "'");
        rest.remove_prefix(1);
      }
      const std::string_view key = rest.substr(0, rest.find_first_of(".["));
      Status status;
      if (!with_field(out, key, [&](auto& member) {
            status = set(member, rest.substr(key.size()), join_path(path, key), value);
          })) {
        return fail_path(unknown_key_message(path, key, field_names(out)));
      }
      return status;
    } else {
      return fail_path("unknown key '" + path + std::string(rest) + "' ('" + path +
                       "' is a value, not a section)");
    }
  }

 private:
  std::string at(const YAML::Mark& mark) const {
    if (!has_lines_ || mark.is_null()) return source_;
    return source_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
  Status fail(const YAML::Mark& mark, const std::string& message) const {
    return InvalidArgument(at(mark) + ": " + message);
  }
  // An override's key path, which has no line.
  Status fail_path(const std::string& message) const { return InvalidArgument(source_ + ": " + message); }
  Status type_error(const YAML::Node& node, const YAML::Mark& mark, const std::string& path,
                    std::string_view expected) const {
    if (path.empty()) return fail(mark, "expected a mapping at the top level, got " + describe_value(node));
    return fail(mark, path + ": expected " + std::string(expected) + ", got " + describe_value(node));
  }

  template <class T>
  Status decode_number(const YAML::Node& node, const YAML::Mark& mark, const std::string& path, T& out) {
    constexpr std::string_view kind = std::is_integral_v<T> ? "an integer" : "a number";
    if (!node.IsScalar()) return type_error(node, mark, path, kind);
    std::string_view text = node.Scalar();
    // One '+' is YAML's; from_chars takes none, and a sign after it is garbage.
    if (text.starts_with('+') && !text.starts_with("+-") && !text.starts_with("++")) text.remove_prefix(1);
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range) {
      return fail(mark, path + ": " + describe_value(node) + " is out of range");
    }
    bool ok = ec == std::errc() && end == text.data() + text.size();
    if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(value);
    if (!ok) return type_error(node, mark, path, kind);
    out = value;
    return Status::Ok();
  }

  // Calls entry(key, key_mark, value, value_mark) for each key of a mapping, rejecting
  // duplicates (yaml-cpp keeps both) and non-scalar keys first. Null: none.
  template <class Fn>
  Status decode_map(const YAML::Node& node, const YAML::Mark& mark, const std::string& path, Fn&& entry) {
    if (node.IsNull()) return Status::Ok();
    if (!node.IsMap()) return type_error(node, mark, path, "a mapping");
    std::map<std::string, YAML::Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Mark key_mark = it->first.Mark();
      if (!it->first.IsScalar()) return fail(key_mark, "keys under '" + path + "' must be plain names");
      const std::string& key = it->first.Scalar();
      const auto [first, inserted] = seen.emplace(key, key_mark);
      if (!inserted) {
        return fail(key_mark, "duplicate key '" + join_path(path, key) + "' (first at line " +
                                      std::to_string(first->second.line + 1) + ")");
      }
      const YAML::Mark value_mark = it->second.IsNull() ? key_mark : it->second.Mark();
      TANDEM_RETURN_IF_ERROR(entry(key, key_mark, it->second, value_mark));
    }
    return Status::Ok();
  }

  std::string source_;
  bool has_lines_;
  Origins& origins_;
};

}  // namespace tandem::launcher::detail
