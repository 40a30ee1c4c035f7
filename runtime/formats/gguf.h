// GGUF (ggml's model file, versions 2 and 3; ggml docs/gguf.md): a header,
// typed metadata key/values, tensor infos, then the aligned tensor data.
// gguf::parse() reads a whole file already in memory (a mapping) and checks
// every count, length and offset against the bytes that are really there
// before trusting it, so a hostile file gives an error, never a crash, and
// nothing is allocated from a claimed size: what parse() allocates grows
// with the bytes that back it. Little-endian files only (big-endian GGUF is
// refused by its version field).
//
// The result views the bytes it was given; keep them alive while using it.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kVersion = 3;
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr uint64_t kMaxAlignment = 1 << 20;
inline constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// Metadata value types, with the ids the file stores.
enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
std::string_view value_type_name(ValueType type);

// The ggml tensor types tandem reads, with ggml's ids. Files holding any
// other type are refused (Unimplemented, naming it).
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14, kBF16 = 30,
};
// "Q4_K"; for an id outside GgmlType, ggml's name when known ("Q5_K"), else "?".
std::string_view ggml_type_name(uint32_t type_id);
bool is_supported_ggml_type(uint32_t type_id);
// Elements per block (1, 32 or 256) and bytes per block, as ggml lays them out.
int64_t ggml_block_elems(GgmlType type);
int64_t ggml_block_bytes(GgmlType type);

// A metadata value as it lies in the file. Scalars: `raw` is its bytes.
// Strings: `raw` is the characters. Arrays: `element_type`, `count`, and
// `raw` spans the elements as stored (for string elements, each one's u64
// length and characters; for nested arrays, each one's header and elements).
struct Value {
  ValueType type = ValueType::kU8;
  ValueType element_type = ValueType::kU8;
  uint64_t count = 0;
  std::span<const uint8_t> raw;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;      // from the start of the data section, as stored
  uint64_t bytes = 0;       // from ne and the type's block size
  const uint8_t* data = nullptr;  // inside the parsed bytes
};

struct File {
  std::string source;  // the path errors start with
  uint32_t version = kVersion;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;  // where the data section starts in the file
  std::vector<KeyValue> metadata;  // in file order
  std::vector<TensorInfo> tensors; // in file order

  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed metadata. NotFound when the key is absent, InvalidArgument when it
  // holds another type (or a value that does not fit); both name the key.
  Result<std::string> get_string(std::string_view key) const;
  // Any integer type whose value fits in int64.
  Result<int64_t> get_int(std::string_view key) const;
  // f32, or f64 (narrowed).
  Result<float> get_f32(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_f32_array(std::string_view key) const;
  // Arrays of any integer type whose values fit in int32.
  Result<std::vector<int32_t>> get_i32_array(std::string_view key) const;

  std::map<std::string, size_t, std::less<>> key_index;     // key -> metadata[i]
  std::map<std::string, size_t, std::less<>> tensor_index;  // name -> tensors[i]
};

// Parses a whole GGUF file. Errors start with `source`: DataLoss for
// truncated or inconsistent bytes (lengths past the end, misaligned or
// overlapping tensors, duplicate names), OutOfRange for values outside what
// the format allows (dims, alignment), Unimplemented for versions and tensor
// types tandem does not read.
Result<File> parse(std::span<const uint8_t> bytes, std::string_view source);

}  // namespace tandem::gguf
