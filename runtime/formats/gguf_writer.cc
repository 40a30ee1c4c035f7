#include "runtime/formats/gguf_writer.h"

#include <bit>
#include <cstring>

#include "runtime/atomic_file.h"

namespace tandem {
namespace {

using gguf::ValueType;

static_assert(std::endian::native == std::endian::little, "GGUF is written little-endian");

template <typename T>
void append(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void append_string(std::string& out, std::string_view s) {
  append<uint64_t>(out, s.size());
  out.append(s);
}

uint64_t round_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || alignment > gguf::kMaxAlignment || (alignment & (alignment - 1)) != 0) {
    fail(InvalidArgument("a GGUF alignment must be a power of two up to " +
                         std::to_string(gguf::kMaxAlignment) + ", got " + std::to_string(alignment)));
    alignment_ = gguf::kDefaultAlignment;
  }
  if (alignment_ != gguf::kDefaultAlignment) add_u32("general.alignment", static_cast<uint32_t>(alignment_));
}

void GgufWriter::fail(Status status) {
  if (status_.ok()) status_ = std::move(status);
}

void GgufWriter::begin_key(std::string_view key, ValueType type) {
  if (key.empty()) fail(InvalidArgument("a GGUF metadata key must not be empty"));
  if (!keys_.emplace(key).second) fail(InvalidArgument("GGUF metadata key " + std::string(key) + " added twice"));
  ++n_kv_;
  append_string(kv_bytes_, key);
  append<uint32_t>(kv_bytes_, static_cast<uint32_t>(type));
}

void GgufWriter::add_u8(std::string_view key, uint8_t v) { begin_key(key, ValueType::kU8); append(kv_bytes_, v); }
void GgufWriter::add_i32(std::string_view key, int32_t v) { begin_key(key, ValueType::kI32); append(kv_bytes_, v); }
void GgufWriter::add_u32(std::string_view key, uint32_t v) { begin_key(key, ValueType::kU32); append(kv_bytes_, v); }
void GgufWriter::add_u64(std::string_view key, uint64_t v) { begin_key(key, ValueType::kU64); append(kv_bytes_, v); }
void GgufWriter::add_f32(std::string_view key, float v) { begin_key(key, ValueType::kF32); append(kv_bytes_, v); }
void GgufWriter::add_f64(std::string_view key, double v) { begin_key(key, ValueType::kF64); append(kv_bytes_, v); }

void GgufWriter::add_bool(std::string_view key, bool v) {
  begin_key(key, ValueType::kBool);
  append<uint8_t>(kv_bytes_, v ? 1 : 0);
}

void GgufWriter::add_string(std::string_view key, std::string_view v) {
  begin_key(key, ValueType::kString);
  append_string(kv_bytes_, v);
}

void GgufWriter::add_string_array(std::string_view key, const std::vector<std::string>& v) {
  begin_key(key, ValueType::kArray);
  append<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::kString));
  append<uint64_t>(kv_bytes_, v.size());
  for (const std::string& s : v) append_string(kv_bytes_, s);
}

void GgufWriter::add_f32_array(std::string_view key, std::span<const float> v) {
  begin_key(key, ValueType::kArray);
  append<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::kF32));
  append<uint64_t>(kv_bytes_, v.size());
  for (const float x : v) append(kv_bytes_, x);
}

void GgufWriter::add_i32_array(std::string_view key, std::span<const int32_t> v) {
  begin_key(key, ValueType::kArray);
  append<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::kI32));
  append<uint64_t>(kv_bytes_, v.size());
  for (const int32_t x : v) append(kv_bytes_, x);
}

void GgufWriter::add_value(std::string_view key, const gguf::Value& v) {
  begin_key(key, v.type);
  if (v.type == ValueType::kString) append<uint64_t>(kv_bytes_, v.raw.size());
  if (v.type == ValueType::kArray) {
    append<uint32_t>(kv_bytes_, static_cast<uint32_t>(v.element_type));
    append<uint64_t>(kv_bytes_, v.count);
  }
  kv_bytes_.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
}

uint64_t GgufWriter::check_tensor(const std::string& n, gguf::GgmlType type, const std::vector<int64_t>& ne) {
  const auto refuse = [this](Status s) -> uint64_t {
    fail(std::move(s));
    return 0;
  };
  if (n.empty()) return refuse(InvalidArgument("a GGUF tensor name must not be empty"));
  if (!tensor_names_.emplace(n).second) return refuse(InvalidArgument("GGUF tensor " + n + " added twice"));
  if (ne.empty() || ne.size() > static_cast<size_t>(gguf::kMaxDims))
    return refuse(InvalidArgument("GGUF tensor " + n + " needs 1 to 4 dimensions"));
  uint64_t elems = 1;
  for (const int64_t d : ne) {
    if (d <= 0 || __builtin_mul_overflow(elems, static_cast<uint64_t>(d), &elems))
      return refuse(InvalidArgument("GGUF tensor " + n + " has a dimension out of range"));
  }
  const auto block = static_cast<uint64_t>(gguf::ggml_block_elems(type));
  if (ne[0] % static_cast<int64_t>(block) != 0)
    return refuse(InvalidArgument("GGUF tensor " + n + ": rows of " + std::to_string(ne[0]) +
                                " are not whole " + std::to_string(block) + "-element blocks"));
  return elems / block * static_cast<uint64_t>(gguf::ggml_block_bytes(type));
}

void GgufWriter::add_tensor(std::string_view name, gguf::GgmlType type, std::vector<int64_t> ne,
                            std::span<const uint8_t> data) {
  const std::string n(name);
  const uint64_t bytes = check_tensor(n, type, ne);
  if (bytes == 0) return;
  if (data.size() != bytes)
    return fail(InvalidArgument("GGUF tensor " + n + " is given " + std::to_string(data.size()) +
                                " bytes; its shape and type need " + std::to_string(bytes)));
  tensors_.push_back({n, type, std::move(ne), data, data_bytes_, bytes, nullptr});
  data_bytes_ = round_up(data_bytes_ + bytes, alignment_);
}

void GgufWriter::add_tensor(std::string_view name, gguf::GgmlType type, std::vector<int64_t> ne,
                            TensorProducer produce) {
  const std::string n(name);
  const uint64_t bytes = check_tensor(n, type, ne);
  if (bytes == 0) return;
  if (!produce) return fail(InvalidArgument("GGUF tensor " + n + " has no producer"));
  tensors_.push_back({n, type, std::move(ne), {}, data_bytes_, bytes, std::move(produce)});
  data_bytes_ = round_up(data_bytes_ + bytes, alignment_);
}

Status GgufWriter::emit(const Tensor& t, const TensorSink& out) {
  if (!t.produce) return out(t.data);
  uint64_t emitted = 0;
  TANDEM_RETURN_IF_ERROR(t.produce([&](std::span<const uint8_t> piece) -> Status {
    if (piece.size() > t.bytes - emitted)
      return InvalidArgument("GGUF tensor " + t.name + ": its producer emitted more than its " +
                             std::to_string(t.bytes) + " bytes");
    emitted += piece.size();
    return out(piece);
  }));
  if (emitted != t.bytes)
    return InvalidArgument("GGUF tensor " + t.name + ": its producer emitted " + std::to_string(emitted) + " of its " +
                           std::to_string(t.bytes) + " bytes");
  return Status::Ok();
}

std::string GgufWriter::header() const {
  std::string out;
  out.append("GGUF", 4);
  append<uint32_t>(out, gguf::kVersion);
  append<uint64_t>(out, tensors_.size());
  append<uint64_t>(out, n_kv_);
  out += kv_bytes_;
  for (const Tensor& t : tensors_) {
    append_string(out, t.name);
    append<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (const int64_t d : t.ne) append<uint64_t>(out, static_cast<uint64_t>(d));
    append<uint32_t>(out, static_cast<uint32_t>(t.type));
    append<uint64_t>(out, t.offset);
  }
  out.resize(round_up(out.size(), alignment_), '\0');
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  if (!status_.ok()) return status_.with_context(path);
  const std::string head = header();
  return write_file_atomically(path, [&](FileWriter& out) -> Status {
    TANDEM_RETURN_IF_ERROR(out.write(head));
    const std::string padding(alignment_, '\0');
    for (const Tensor& t : tensors_) {
      TANDEM_RETURN_IF_ERROR(emit(t, [&](std::span<const uint8_t> piece) { return out.write(piece.data(), piece.size()); }));
      TANDEM_RETURN_IF_ERROR(out.write(padding.data(), round_up(t.bytes, alignment_) - t.bytes));
    }
    return Status::Ok();
  });
}

Result<std::string> GgufWriter::to_bytes() const {
  if (!status_.ok()) return status_;
  std::string out = header();
  for (const Tensor& t : tensors_) {
    TANDEM_RETURN_IF_ERROR(emit(t, [&](std::span<const uint8_t> piece) {
      out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
      return Status::Ok();
    }));
    out.resize(round_up(out.size(), alignment_), '\0');
  }
  return out;
}

}  // namespace tandem
