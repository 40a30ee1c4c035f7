// GGUF's type tables and the typed metadata accessors. Values stay as bytes
// in the file until asked for; each accessor decodes (and range-checks) what
// parse() already bounded.
#include <cstring>
#include <limits>

#include "runtime/formats/gguf.h"

namespace tandem::gguf {

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "?";
}

std::string_view ggml_type_name(uint32_t type_id) {
  // ggml's type ids (ggml.h); 4 and 5 (Q4_2, Q4_3) were removed long ago.
  static constexpr std::string_view kNames[] = {
      "F32",     "F16",   "Q4_0",   "Q4_1",    "?",     "?",     "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",  "Q2_K",   "Q3_K",    "Q4_K",  "Q5_K",  "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
      "I8",      "I16",   "I32",    "I64",     "F64",   "IQ1_M", "BF16",  "?",
      "?",       "?",     "TQ1_0",  "TQ2_0",   "?",     "?",     "?",     "MXFP4"};
  if (type_id >= std::size(kNames)) return "?";
  return kNames[type_id];
}

bool is_supported_ggml_type(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kQ4_0: case GgmlType::kQ8_0:
    case GgmlType::kQ4_K: case GgmlType::kQ6_K: case GgmlType::kBF16: return true;
  }
  return false;
}

int64_t ggml_block_elems(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0: case GgmlType::kQ8_0: return 32;
    case GgmlType::kQ4_K: case GgmlType::kQ6_K: return 256;
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kBF16: return 1;
  }
  return 1;
}

int64_t ggml_block_bytes(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return 4;
    case GgmlType::kF16: case GgmlType::kBF16: return 2;
    case GgmlType::kQ4_0: return 18;   // f16 scale + 32 nibbles
    case GgmlType::kQ8_0: return 34;   // f16 scale + 32 int8
    case GgmlType::kQ4_K: return 144;  // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 of nibbles
    case GgmlType::kQ6_K: return 210;  // 128 low nibbles, 64 high bit pairs, 16 int8 scales, f16 d
  }
  return 0;
}

const Value* File::find(std::string_view key) const {
  const auto it = key_index.find(key);
  return it == key_index.end() ? nullptr : &metadata[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = tensor_index.find(name);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// One integer element of `type` at `p`; false for a non-integer type or a
// u64 beyond int64.
bool integer_at(ValueType type, const uint8_t* p, int64_t* out) {
  switch (type) {
    case ValueType::kU8: *out = load<uint8_t>(p); return true;
    case ValueType::kI8: *out = load<int8_t>(p); return true;
    case ValueType::kU16: *out = load<uint16_t>(p); return true;
    case ValueType::kI16: *out = load<int16_t>(p); return true;
    case ValueType::kU32: *out = load<uint32_t>(p); return true;
    case ValueType::kI32: *out = load<int32_t>(p); return true;
    case ValueType::kI64: *out = load<int64_t>(p); return true;
    case ValueType::kU64: {
      const auto v = load<uint64_t>(p);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
      *out = static_cast<int64_t>(v);
      return true;
    }
    default: return false;
  }
}

bool is_integer(ValueType t) {
  int64_t unused;
  const uint8_t zeros[8] = {};
  return integer_at(t, zeros, &unused);
}

uint64_t element_bytes(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    default: return 8;
  }
}

}  // namespace

#define TANDEM_GGUF_LOOKUP(v, key)                                          \
  const Value* v = find(key);                                               \
  if (v == nullptr) return NotFound(source + ": metadata key " + std::string(key) + " is absent")

namespace {
Status wrong_type(const std::string& source, std::string_view key, const Value& v,
                  std::string_view wanted) {
  std::string has(value_type_name(v.type));
  if (v.type == ValueType::kArray) has += " of " + std::string(value_type_name(v.element_type));
  return InvalidArgument(source + ": metadata key " + std::string(key) + " holds " + has + ", not " +
                         std::string(wanted));
}
}  // namespace

Result<std::string> File::get_string(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kString) return wrong_type(source, key, *v, "a string");
  return std::string(reinterpret_cast<const char*>(v->raw.data()), v->raw.size());
}

Result<int64_t> File::get_int(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  int64_t out = 0;
  if (!is_integer(v->type)) return wrong_type(source, key, *v, "an integer");
  if (!integer_at(v->type, v->raw.data(), &out))
    return InvalidArgument(source + ": metadata key " + std::string(key) + " holds " +
                           std::to_string(load<uint64_t>(v->raw.data())) + ", beyond int64");
  return out;
}

Result<float> File::get_f32(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  if (v->type == ValueType::kF32) return load<float>(v->raw.data());
  if (v->type == ValueType::kF64) return static_cast<float>(load<double>(v->raw.data()));
  return wrong_type(source, key, *v, "a float");
}

Result<bool> File::get_bool(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kBool) return wrong_type(source, key, *v, "a bool");
  return v->raw[0] != 0;
}

Result<std::vector<std::string>> File::get_string_array(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kArray || v->element_type != ValueType::kString)
    return wrong_type(source, key, *v, "an array of strings");
  // parse() checked that the count's strings fill `raw` exactly; the lengths
  // are read again from the mapping, so they are bounded again: a file
  // rewritten in place since must not make this read past `raw`.
  std::vector<std::string> out;
  out.reserve(v->count);
  const uint8_t* p = v->raw.data();
  const uint8_t* const end = p + v->raw.size();
  for (uint64_t i = 0; i < v->count; ++i) {
    if (end - p < 8 || load<uint64_t>(p) > static_cast<uint64_t>(end - p - 8))
      return DataLoss(source + ": " + std::string(key) + " changed since it was read");
    const auto n = load<uint64_t>(p);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), n);
    p += 8 + n;
  }
  return out;
}

Result<std::vector<float>> File::get_f32_array(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kArray || v->element_type != ValueType::kF32)
    return wrong_type(source, key, *v, "an array of f32");
  std::vector<float> out(v->count);
  if (!out.empty()) std::memcpy(out.data(), v->raw.data(), v->count * sizeof(float));
  return out;
}

Result<std::vector<int32_t>> File::get_i32_array(std::string_view key) const {
  TANDEM_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kArray || !is_integer(v->element_type))
    return wrong_type(source, key, *v, "an array of integers");
  std::vector<int32_t> out;
  out.reserve(v->count);
  const uint64_t stride = element_bytes(v->element_type);
  for (uint64_t i = 0; i < v->count; ++i) {
    int64_t x = 0;
    const bool fits = integer_at(v->element_type, v->raw.data() + i * stride, &x) &&
                      x >= std::numeric_limits<int32_t>::min() &&
                      x <= std::numeric_limits<int32_t>::max();
    if (!fits)
      return InvalidArgument(source + ": metadata key " + std::string(key) + " element " +
                             std::to_string(i) + " does not fit in int32");
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

#undef TANDEM_GGUF_LOOKUP

}  // namespace tandem::gguf
