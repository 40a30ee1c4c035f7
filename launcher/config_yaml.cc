// RunConfig -> YAML, every key, in the order configs/local.yaml documents them.
#include <yaml-cpp/yaml.h>

#include <charconv>

#include "launcher/config.h"
#include "launcher/config_fields.h"

namespace tandem::launcher {
namespace {

class Encoder {
 public:
  explicit Encoder(YAML::Emitter& out) : out_(out) {}

  template <class T> void operator()(std::string_view key, const T& value) {
    out_ << YAML::Key << std::string(key) << YAML::Value;
    emit(value);
  }

  template <class T> void emit(const T& value) {
    if constexpr (std::is_same_v<T, std::string>) {
      out_ << value;  // the emitter quotes what would not read back as this string
    } else if constexpr (std::is_same_v<T, bool>) {
      out_ << YAML::TrueFalseBool << YAML::LowerCase << value;
    } else if constexpr (std::is_floating_point_v<T>) {
      // The shortest text that reads back as the same float, so 0.9 stays
      // "0.9" and the config round-trips exactly.
      char text[32];
      const auto result = std::to_chars(text, text + sizeof text, value);
      out_ << std::string(text, result.ptr);
    } else if constexpr (std::is_integral_v<T>) {
      out_ << value;
    } else if constexpr (std::is_enum_v<T>) {
      out_ << std::string(detail::enum_names(value)[static_cast<size_t>(value)]);
    } else if constexpr (detail::IsVector<T>::value) {
      if (value.empty()) out_ << YAML::Flow;
      out_ << YAML::BeginSeq;
      for (const auto& item : value) emit(item);
      out_ << YAML::EndSeq;
    } else if constexpr (std::is_same_v<T, detail::StringMap>) {
      if (value.empty()) out_ << YAML::Flow;
      out_ << YAML::BeginMap;
      for (const auto& [k, v] : value) out_ << YAML::Key << k << YAML::Value << v;
      out_ << YAML::EndMap;
    } else {
      out_ << YAML::BeginMap;
      // visit_fields takes a mutable section so one schema serves decoding
      // too; the encoder only reads it.
      detail::visit_fields(*this, const_cast<T&>(value));
      out_ << YAML::EndMap;
    }
  }

 private:
  YAML::Emitter& out_;
};

}  // namespace

std::string to_yaml(const RunConfig& config) {
  YAML::Emitter out;
  Encoder(out).emit(config);
  TANDEM_CHECK_MSG(out.good(), out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

}  // namespace tandem::launcher
