#include "runtime/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <set>
#include <nlohmann/json.hpp>

#include "runtime/mapped_file.h"

namespace tandem {
namespace {

using Json = nlohmann::json;

// Bits per element of every dtype the format defines; the sub-byte ones pack
// a tensor's elements into whole bytes.
int dtype_bits(std::string_view dtype) {
  static constexpr std::pair<std::string_view, int> kBits[] = {
      {"BOOL", 8},    {"U8", 8},   {"I8", 8},    {"F8_E5M2", 8}, {"F8_E4M3", 8},
      {"F8_E8M0", 8}, {"I16", 16}, {"U16", 16},  {"F16", 16},    {"BF16", 16},
      {"I32", 32},    {"U32", 32}, {"F32", 32},  {"F64", 64},    {"I64", 64},
      {"U64", 64},    {"C64", 64}, {"F4", 4},    {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  for (const auto& [name, bits] : kBits)
    if (name == dtype) return bits;
  return 0;
}

// A tensor as the header states it, before its offsets are checked.
struct HeaderEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint64_t> offsets;
  bool has_dtype = false, has_shape = false, has_offsets = false;
};

// Streams the header's JSON into HeaderEntry records, refusing any structure
// the format does not have as soon as it appears, so a hostile header can
// neither nest deeply nor make the parser build a large document.
class HeaderReader {
 public:
  explicit HeaderReader(const std::string& path) : path_(path) {}

  std::vector<HeaderEntry> entries;
  std::map<std::string, std::string, std::less<>> metadata;
  Status error;

  bool null() { return unexpected("null"); }
  bool boolean(bool) { return unexpected("a boolean"); }
  bool number_integer(Json::number_integer_t v) {
    return unexpected("the negative number " + std::to_string(v));
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (state_ == State::kShape) {
      if (v > static_cast<uint64_t>(INT64_MAX)) return fail("a dimension beyond 2^63");
      current_.shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (state_ == State::kOffsets) {
      if (current_.offsets.size() == 2) return fail("tensor " + current_.name + " has more than 2 data_offsets");
      current_.offsets.push_back(v);
      return true;
    }
    return unexpected("a number");
  }
  bool number_float(Json::number_float_t, const Json::string_t& text) {
    return unexpected("the number " + text);
  }
  bool binary(Json::binary_t&) { return unexpected("binary data"); }
  bool string(Json::string_t& s) {
    if (state_ == State::kMetadata) {
      metadata[key_] = s;
      return true;
    }
    if (state_ == State::kTensor && key_ == "dtype") {
      if (current_.has_dtype) return fail("tensor " + current_.name + " has two dtypes");
      current_.dtype = s;
      current_.has_dtype = true;
      return true;
    }
    return unexpected("a string");
  }
  bool key(Json::string_t& k) {
    if (state_ == State::kRoot) {
      if (k == "__metadata__") {
        if (seen_metadata_) return fail("two __metadata__ entries");
        seen_metadata_ = true;
      } else if (!names_.insert(k).second) {
        return fail("tensor " + k + " appears twice");
      }
    } else if (state_ == State::kMetadata) {
      if (metadata.count(k) != 0) return fail("__metadata__ key " + k + " appears twice");
    } else if (state_ == State::kTensor) {
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        return fail("tensor " + current_.name + " has an unknown field " + k);
    }
    key_ = k;
    return true;
  }
  bool start_object(std::size_t) {
    switch (state_) {
      case State::kStart: state_ = State::kRoot; return true;
      case State::kRoot:
        if (key_ == "__metadata__") {
          state_ = State::kMetadata;
        } else {
          current_ = HeaderEntry{};
          current_.name = key_;
          state_ = State::kTensor;
        }
        return true;
      default: return unexpected("an object");
    }
  }
  bool end_object() {
    if (state_ == State::kMetadata) {
      state_ = State::kRoot;
    } else if (state_ == State::kTensor) {
      if (!current_.has_dtype || !current_.has_shape || !current_.has_offsets)
        return fail("tensor " + current_.name + " lacks dtype, shape or data_offsets");
      if (current_.offsets.size() != 2)
        return fail("tensor " + current_.name + " has data_offsets without 2 numbers");
      entries.push_back(std::move(current_));
      state_ = State::kRoot;
    } else {
      state_ = State::kDone;
    }
    return true;
  }
  bool start_array(std::size_t) {
    if (state_ == State::kTensor && key_ == "shape" && !current_.has_shape) {
      current_.has_shape = true;
      state_ = State::kShape;
      return true;
    }
    if (state_ == State::kTensor && key_ == "data_offsets" && !current_.has_offsets) {
      current_.has_offsets = true;
      state_ = State::kOffsets;
      return true;
    }
    return unexpected("an array");
  }
  bool end_array() {
    state_ = State::kTensor;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (error.ok()) error = DataLoss(path_ + ": the header is not valid JSON (" + e.what() + ")");
    return false;
  }

 private:
  enum class State { kStart, kRoot, kMetadata, kTensor, kShape, kOffsets, kDone };

  bool fail(const std::string& what) {
    if (error.ok()) error = DataLoss(path_ + ": safetensors header: " + what);
    return false;
  }
  bool unexpected(const std::string& what) {
    switch (state_) {
      case State::kStart: return fail("is not a JSON object");
      case State::kRoot: return fail("tensor " + key_ + " is " + what + ", not an object");
      case State::kMetadata: return fail("__metadata__ " + key_ + " is " + what + ", not a string");
      case State::kShape: return fail("tensor " + current_.name + " has " + what + " in its shape");
      case State::kOffsets:
        return fail("tensor " + current_.name + " has " + what + " in its data_offsets");
      default: return fail("tensor " + current_.name + " field " + key_ + " is " + what);
    }
  }

  const std::string& path_;
  State state_ = State::kStart;
  std::string key_;
  HeaderEntry current_;
  std::set<std::string, std::less<>> names_;
  bool seen_metadata_ = false;
};

// Checks one entry against the data section and returns its tensor.
Result<SafetensorsTensor> check_entry(const std::string& path, const HeaderEntry& e,
                                      const uint8_t* data_section, uint64_t data_bytes) {
  const std::string where = path + ": tensor " + e.name;
  const int bits = dtype_bits(e.dtype);
  if (bits == 0) return Unimplemented(where + " has dtype " + e.dtype + ", unknown to this reader");
  uint64_t elems = 1;
  for (const int64_t d : e.shape) {
    if (__builtin_mul_overflow(elems, static_cast<uint64_t>(d), &elems))
      return DataLoss(where + ": the product of its dimensions overflows 64 bits");
  }
  uint64_t total_bits = 0;
  if (__builtin_mul_overflow(elems, static_cast<uint64_t>(bits), &total_bits))
    return DataLoss(where + ": its size in bytes overflows 64 bits");
  if (total_bits % 8 != 0)
    return DataLoss(where + ": " + std::to_string(elems) + " elements of " + e.dtype +
                    " do not fill whole bytes");
  const uint64_t begin = e.offsets[0], end = e.offsets[1];
  if (begin > end)
    return DataLoss(where + ": data_offsets [" + std::to_string(begin) + ", " +
                    std::to_string(end) + ") end before they begin");
  if (end > data_bytes)
    return DataLoss(where + ": data_offsets end at " + std::to_string(end) +
                    ", past the data section's " + std::to_string(data_bytes) +
                    " bytes (truncated file?)");
  if (end - begin != total_bits / 8)
    return DataLoss(where + ": holds " + std::to_string(end - begin) + " bytes, but " +
                    std::to_string(elems) + " elements of " + e.dtype + " take " +
                    std::to_string(total_bits / 8));
  SafetensorsTensor t;
  t.dtype = e.dtype;
  t.shape = e.shape;
  t.data = data_section + begin;
  t.bytes = end - begin;
  return t;
}

}  // namespace

Result<SafetensorsFile> parse_safetensors(const std::string& path, const uint8_t* data, size_t size) {
  if (size < 8)
    return DataLoss(path + ": " + std::to_string(size) +
                    " bytes, too short for the 8-byte safetensors header length");
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = header_bytes << 8 | data[i];  // little-endian
  if (header_bytes > size - 8)
    return DataLoss(path + ": the header length " + std::to_string(header_bytes) +
                    " runs past the end of the " + std::to_string(size) + "-byte file");
  if (header_bytes > kSafetensorsMaxHeaderBytes)
    return DataLoss(path + ": the header length " + std::to_string(header_bytes) +
                    " exceeds the format's limit of " + std::to_string(kSafetensorsMaxHeaderBytes));

  HeaderReader reader(path);
  bool parsed = false;
  try {
    const auto* first = reinterpret_cast<const char*>(data + 8);
    parsed = Json::sax_parse(first, first + header_bytes, &reader);
  } catch (const std::exception& e) {  // the SAX parser reports through parse_error; be sure
    return DataLoss(path + ": the header is not valid JSON (" + e.what() + ")");
  }
  if (!reader.error.ok()) return reader.error;
  if (!parsed) return DataLoss(path + ": the header is not valid JSON");

  const uint8_t* data_section = data + 8 + header_bytes;
  const uint64_t data_bytes = size - 8 - header_bytes;
  SafetensorsFile file;
  file.path = path;
  file.metadata = std::move(reader.metadata);
  // Sorted by where they begin, a tensor overlaps another exactly when it
  // begins before the previous non-empty one ends.
  std::vector<std::pair<uint64_t, const HeaderEntry*>> by_offset;
  for (const HeaderEntry& e : reader.entries) {
    TANDEM_ASSIGN_OR_RETURN(SafetensorsTensor t, check_entry(path, e, data_section, data_bytes));
    if (t.bytes > 0) by_offset.emplace_back(e.offsets[0], &e);
    file.tensors.emplace(e.name, std::move(t));
  }
  std::sort(by_offset.begin(), by_offset.end());
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const HeaderEntry& prev = *by_offset[i - 1].second;
    const HeaderEntry& cur = *by_offset[i].second;
    if (cur.offsets[0] < prev.offsets[1])
      return DataLoss(path + ": tensor " + cur.name + " overlaps tensor " + prev.name +
                      " in the data section");
  }
  return file;
}

Result<SafetensorsFile> read_safetensors(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapping, MappedFile::open(path));
  TANDEM_ASSIGN_OR_RETURN(
      SafetensorsFile file,
      parse_safetensors(path, reinterpret_cast<const uint8_t*>(mapping->data()), mapping->size()));
  file.mapping = std::move(mapping);
  return file;
}

Result<SourceDType> safetensors_source_dtype(std::string_view dtype, std::string_view what) {
  if (dtype == "F32") return SourceDType::kF32;
  if (dtype == "F16") return SourceDType::kF16;
  if (dtype == "BF16") return SourceDType::kBF16;
  if (dtype == "F8_E4M3") return SourceDType::kF8E4M3;
  return Unimplemented(std::string(what) + " has dtype " + std::string(dtype) +
                       "; model weights load from F32, F16, BF16 or F8_E4M3");
}

}  // namespace tandem
