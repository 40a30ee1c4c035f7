// GGUF bytes built by hand from the spec (ggml docs/gguf.md), independently
// of runtime/formats/gguf_writer.h: little-endian integers, strings as a u64
// length and the bytes, value type ids 0..12, tensor infos, aligned data.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace tandem::testing {

class GgufBytes {
 public:
  std::string bytes;

  GgufBytes& u8(uint8_t v) { return raw(v); }
  GgufBytes& u32(uint32_t v) { return raw(v); }
  GgufBytes& i32(int32_t v) { return raw(v); }
  GgufBytes& u64(uint64_t v) { return raw(v); }
  GgufBytes& f32(float v) { return raw(v); }
  GgufBytes& str(const std::string& s) {
    u64(s.size());
    bytes += s;
    return *this;
  }
  // "GGUF", version, tensor count, key/value count.
  GgufBytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bytes += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  // A key and its value type id; the value follows.
  GgufBytes& key(const std::string& k, uint32_t type) { return str(k).u32(type); }
  GgufBytes& tensor(const std::string& name, std::initializer_list<uint64_t> ne, uint32_t type,
                    uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (const uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  GgufBytes& pad_to(size_t alignment) {
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
  std::span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
  }

 private:
  template <typename T>
  GgufBytes& raw(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes.append(b, sizeof(T));
    return *this;
  }
};

inline std::span<const uint8_t> as_span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace tandem::testing
