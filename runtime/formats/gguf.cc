// The GGUF parser: a bounds-checked cursor over the file's bytes. Every
// count is checked against the bytes left before anything is sized from it.
#include "runtime/formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace tandem::gguf {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF is read in place as little-endian");

// Keys and tensor names are short in practice (ggml caps names at 64 bytes);
// a generous cap keeps an error message from quoting megabytes.
constexpr uint64_t kMaxNameBytes = 1 << 16;
// The least bytes one tensor info or key/value can take, to refuse a count
// the file cannot hold before walking it: a tensor info is a u64 name length,
// u32 n_dims, one u64 dim, u32 type, u64 offset; a key/value is a u64 key
// length, one key byte, u32 type and a one-byte value.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;

// Bytes of one scalar element; 0 for strings and arrays (variable size).
uint64_t scalar_bytes(ValueType type) {
  switch (type) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

bool known_value_type(uint32_t id) { return id <= static_cast<uint32_t>(ValueType::kF64); }

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, std::string source)
      : bytes_(bytes), source_(std::move(source)) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const std::string& source() const { return source_; }

  // What an error talks about: "the string value of" + " " + subject. The
  // two are joined only for an error, not for every value read.
  static std::string describe(std::string_view what, std::string_view subject) {
    std::string d(what);
    if (!subject.empty()) d.append(" ").append(subject);
    return d;
  }

  Status truncated(uint64_t need, std::string_view what, std::string_view subject) const {
    return DataLoss(source_ + ": truncated: " + describe(what, subject) + " at byte " +
                    std::to_string(pos_) + " needs " + std::to_string(need) + " bytes, " +
                    std::to_string(remaining()) + " remain in the file");
  }

  Result<std::span<const uint8_t>> take(uint64_t n, std::string_view what, std::string_view subject = {}) {
    if (n > remaining()) return truncated(n, what, subject);
    auto out = bytes_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

  template <typename T>
  Result<T> read(std::string_view what, std::string_view subject = {}) {
    TANDEM_ASSIGN_OR_RETURN(auto raw, take(sizeof(T), what, subject));
    T v;
    std::memcpy(&v, raw.data(), sizeof(T));
    return v;
  }

  // A GGUF string: u64 length, then the bytes (no terminator).
  Result<std::span<const uint8_t>> read_string(std::string_view what, std::string_view subject = {}) {
    TANDEM_ASSIGN_OR_RETURN(const uint64_t n, read<uint64_t>(what, subject));
    if (n > remaining())
      return DataLoss(source_ + ": " + describe(what, subject) + " at byte " + std::to_string(pos_ - 8) +
                      " claims " + std::to_string(n) + " bytes, past the end of the file (" +
                      std::to_string(remaining()) + " bytes remain)");
    return take(n, what, subject);
  }

  Result<std::string> read_name(std::string_view what) {
    TANDEM_ASSIGN_OR_RETURN(auto raw, read_string(what));
    if (raw.empty())
      return DataLoss(source_ + ": " + std::string(what) + " at byte " + std::to_string(pos_ - 8) + " is empty");
    if (raw.size() > kMaxNameBytes)
      return OutOfRange(source_ + ": " + std::string(what) + " of " + std::to_string(raw.size()) +
                        " bytes is longer than " + std::to_string(kMaxNameBytes));
    return std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string source_;
  uint64_t pos_ = 0;
};

// Walks one value of `type` (its bytes only, the type id already read).
// `depth` counts enclosing arrays: an array of arrays is read, deeper nesting
// is refused (no known writer emits it).
Status skip_value(Reader& r, ValueType type, int depth, const std::string& key) {
  if (type == ValueType::kString) return r.read_string("the string value of", key).status();
  if (type != ValueType::kArray) return r.take(scalar_bytes(type), "the value of", key).status();
  if (depth >= 2)
    return Unimplemented(r.source() + ": metadata " + key + " nests arrays more than two deep");
  TANDEM_ASSIGN_OR_RETURN(const uint32_t elem_id, r.read<uint32_t>("the array type of", key));
  if (!known_value_type(elem_id))
    return DataLoss(r.source() + ": metadata " + key + " is an array of unknown value type " +
                    std::to_string(elem_id));
  const auto elem = static_cast<ValueType>(elem_id);
  TANDEM_ASSIGN_OR_RETURN(const uint64_t count, r.read<uint64_t>("the array length of", key));
  // Strings take at least their u64 length, arrays their type and length.
  const uint64_t min_elem = elem == ValueType::kString ? 8 : elem == ValueType::kArray ? 12 : scalar_bytes(elem);
  if (count > r.remaining() / min_elem)
    return DataLoss(r.source() + ": metadata " + key + " claims " + std::to_string(count) + " " +
                    std::string(value_type_name(elem)) + " elements, more than the " +
                    std::to_string(r.remaining()) + " bytes left in the file can hold");
  if (elem != ValueType::kString && elem != ValueType::kArray)
    return r.take(count * min_elem, "the elements of", key).status();
  for (uint64_t i = 0; i < count; ++i) TANDEM_RETURN_IF_ERROR(skip_value(r, elem, depth + 1, key));
  return Status::Ok();
}

Result<Value> read_value(Reader& r, std::span<const uint8_t> bytes, const std::string& key) {
  TANDEM_ASSIGN_OR_RETURN(const uint32_t type_id, r.read<uint32_t>("the value type of", key));
  if (!known_value_type(type_id))
    return DataLoss(r.source() + ": metadata " + key + " has unknown value type " + std::to_string(type_id));
  Value v;
  v.type = static_cast<ValueType>(type_id);
  if (v.type == ValueType::kString) {
    TANDEM_ASSIGN_OR_RETURN(v.raw, r.read_string("the string value of", key));
    return v;
  }
  if (v.type != ValueType::kArray) {
    TANDEM_ASSIGN_OR_RETURN(v.raw, r.take(scalar_bytes(v.type), "the value of", key));
    return v;
  }
  // Walk the whole array (checking it), then take its header from where it began.
  const uint64_t start = r.pos();
  TANDEM_RETURN_IF_ERROR(skip_value(r, ValueType::kArray, 0, key));
  uint32_t elem_id;
  std::memcpy(&elem_id, bytes.data() + start, 4);
  std::memcpy(&v.count, bytes.data() + start + 4, 8);
  v.element_type = static_cast<ValueType>(elem_id);
  v.raw = bytes.subspan(start + 12, r.pos() - start - 12);
  return v;
}

Result<TensorInfo> read_tensor_info(Reader& r) {
  TensorInfo t;
  TANDEM_ASSIGN_OR_RETURN(t.name, r.read_name("a tensor name"));
  const std::string& src = r.source();
  TANDEM_ASSIGN_OR_RETURN(const uint32_t n_dims, r.read<uint32_t>("the dimensions of", t.name));
  if (n_dims == 0 || n_dims > kMaxDims)
    return OutOfRange(src + ": tensor " + t.name + " has " + std::to_string(n_dims) +
                      " dimensions; GGUF tensors have 1 to " + std::to_string(kMaxDims));
  uint64_t elems = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    TANDEM_ASSIGN_OR_RETURN(const uint64_t d, r.read<uint64_t>("the dimensions of", t.name));
    if (d == 0 || d > static_cast<uint64_t>(INT64_MAX))
      return OutOfRange(src + ": tensor " + t.name + " has dimension ne[" + std::to_string(i) +
                        "] = " + std::to_string(d) + ", outside [1, 2^63)");
    if (__builtin_mul_overflow(elems, d, &elems) || elems > static_cast<uint64_t>(INT64_MAX))
      return OutOfRange(src + ": tensor " + t.name + "'s dimensions multiply past 2^63 elements");
    t.ne.push_back(static_cast<int64_t>(d));
  }
  TANDEM_ASSIGN_OR_RETURN(const uint32_t type_id, r.read<uint32_t>("the type of", t.name));
  if (!is_supported_ggml_type(type_id))
    return Unimplemented(src + ": tensor " + t.name + " has ggml type " + std::to_string(type_id) +
                         " (" + std::string(ggml_type_name(type_id)) +
                         "); tandem reads F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K");
  t.type = static_cast<GgmlType>(type_id);
  const auto block = static_cast<uint64_t>(ggml_block_elems(t.type));
  if (t.ne[0] % static_cast<int64_t>(block) != 0)
    return DataLoss(src + ": tensor " + t.name + " (" + std::string(ggml_type_name(type_id)) +
                    ") has rows of " + std::to_string(t.ne[0]) +
                    " elements, not a whole number of its " + std::to_string(block) + "-element blocks");
  // elems < 2^63 and block bytes / block elems <= 4, so this stays below 2^65
  // only in theory: divide first, then check the multiplication.
  if (__builtin_mul_overflow(elems / block, static_cast<uint64_t>(ggml_block_bytes(t.type)), &t.bytes))
    return OutOfRange(src + ": tensor " + t.name + "'s byte size overflows");
  TANDEM_ASSIGN_OR_RETURN(t.offset, r.read<uint64_t>("the offset of", t.name));
  return t;
}

Status check_alignment(File& f) {
  const auto it = f.key_index.find("general.alignment");
  if (it == f.key_index.end()) return Status::Ok();
  TANDEM_ASSIGN_OR_RETURN(const int64_t a, f.get_int("general.alignment"));
  if (a <= 0 || a > static_cast<int64_t>(kMaxAlignment) || (a & (a - 1)) != 0)
    return OutOfRange(f.source + ": general.alignment = " + std::to_string(a) +
                      " is not a power of two in [1, " + std::to_string(kMaxAlignment) + "]");
  f.alignment = static_cast<uint64_t>(a);
  return Status::Ok();
}

// Tensors must lie inside the data section, at aligned offsets, without
// sharing bytes.
Status place_tensors(File& f, std::span<const uint8_t> bytes) {
  if (f.tensors.empty()) return Status::Ok();
  if (f.data_offset > bytes.size())
    return DataLoss(f.source + ": truncated: the data section would start at byte " +
                    std::to_string(f.data_offset) + ", past the end of the " +
                    std::to_string(bytes.size()) + "-byte file");
  const uint64_t data_size = bytes.size() - f.data_offset;
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(f.tensors.size());
  for (TensorInfo& t : f.tensors) {
    if (t.offset % f.alignment != 0)
      return DataLoss(f.source + ": tensor " + t.name + " starts at data offset " +
                      std::to_string(t.offset) + ", not a multiple of the alignment " +
                      std::to_string(f.alignment));
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      return DataLoss(f.source + ": tensor " + t.name + " (" + std::to_string(t.bytes) +
                      " bytes at data offset " + std::to_string(t.offset) +
                      ") runs past the end of the file (the data section holds " +
                      std::to_string(data_size) + " bytes; truncated?)");
    t.data = bytes.data() + f.data_offset + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (a.offset + a.bytes > b.offset)
      return DataLoss(f.source + ": tensors " + a.name + " and " + b.name +
                      " overlap (data offsets " + std::to_string(a.offset) + "+" +
                      std::to_string(a.bytes) + " and " + std::to_string(b.offset) + ")");
  }
  return Status::Ok();
}

}  // namespace

Result<File> parse(std::span<const uint8_t> bytes, std::string_view source) {
  File f;
  f.source = std::string(source);
  Reader r(bytes, f.source);
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0)
    return DataLoss(f.source + ": not a GGUF file (it does not start with the magic \"GGUF\")");
  TANDEM_RETURN_IF_ERROR(r.take(4, "the magic").status());
  TANDEM_ASSIGN_OR_RETURN(f.version, r.read<uint32_t>("the version"));
  if (f.version == 1)
    return Unimplemented(f.source + ": GGUF version 1 (32-bit lengths, before August 2023) is "
                         "not supported; convert the model again with a current llama.cpp");
  if (f.version != 2 && f.version != 3) {
    const bool big_endian = f.version > 0xFFFF && __builtin_bswap32(f.version) <= 3;
    return Unimplemented(f.source + ": GGUF version " + std::to_string(f.version) +
                         (big_endian ? " (a big-endian file?)" : "") +
                         " is not supported; tandem reads versions 2 and 3");
  }
  TANDEM_ASSIGN_OR_RETURN(const uint64_t n_tensors, r.read<uint64_t>("the tensor count"));
  TANDEM_ASSIGN_OR_RETURN(const uint64_t n_kv, r.read<uint64_t>("the metadata count"));
  if (n_kv > r.remaining() / kMinKeyValueBytes)
    return DataLoss(f.source + ": the header claims " + std::to_string(n_kv) +
                    " metadata entries, more than the " + std::to_string(r.remaining()) +
                    " bytes left in the file can hold");
  if (n_tensors > r.remaining() / kMinTensorInfoBytes)
    return DataLoss(f.source + ": the header claims " + std::to_string(n_tensors) +
                    " tensors, more than the " + std::to_string(r.remaining()) +
                    " bytes left in the file can hold");

  // No reserve() from the counts: the vectors grow with the entries really
  // read, so memory follows the file's bytes, not its header's claims.
  for (uint64_t i = 0; i < n_kv; ++i) {
    TANDEM_ASSIGN_OR_RETURN(std::string key, r.read_name("a metadata key"));
    TANDEM_ASSIGN_OR_RETURN(Value value, read_value(r, bytes, key));
    if (!f.key_index.emplace(key, f.metadata.size()).second)
      return DataLoss(f.source + ": metadata key " + key + " appears twice");
    f.metadata.push_back({std::move(key), value});
  }
  TANDEM_RETURN_IF_ERROR(check_alignment(f));

  for (uint64_t i = 0; i < n_tensors; ++i) {
    TANDEM_ASSIGN_OR_RETURN(TensorInfo t, read_tensor_info(r));
    if (!f.tensor_index.emplace(t.name, f.tensors.size()).second)
      return DataLoss(f.source + ": tensor " + t.name + " appears twice");
    f.tensors.push_back(std::move(t));
  }
  // r.pos() <= bytes.size() < 2^63, so rounding up cannot overflow.
  f.data_offset = (r.pos() + f.alignment - 1) / f.alignment * f.alignment;
  TANDEM_RETURN_IF_ERROR(place_tensors(f, bytes));
  return f;
}

}  // namespace tandem::gguf
