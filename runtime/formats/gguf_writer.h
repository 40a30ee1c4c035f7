// Writes GGUF version 3 files (what gguf::parse() and llama.cpp read):
// metadata key/values, tensor infos, then each tensor's bytes at an aligned
// offset. For the tests, the fuzz seed corpus and `tandem quantize`.
//
//   GgufWriter w;
//   w.add_string("general.architecture", "llama");
//   w.add_u32("llama.block_count", 2);
//   w.add_tensor("token_embd.weight", gguf::GgmlType::kF32, {dim, vocab}, bytes);
//   TANDEM_RETURN_IF_ERROR(w.write(path));
//
// The add_* calls record the first mistake (a duplicate key or tensor, bytes
// that do not match a tensor's shape) and write()/to_bytes() return it, so a
// chain of calls needs one check.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/formats/gguf.h"
#include "runtime/status.h"

namespace tandem {

class GgufWriter {
 public:
  // `alignment` (a power of two) is written as general.alignment when it is
  // not GGUF's default 32.
  explicit GgufWriter(uint64_t alignment = gguf::kDefaultAlignment);

  void add_u8(std::string_view key, uint8_t v);
  void add_i32(std::string_view key, int32_t v);
  void add_u32(std::string_view key, uint32_t v);
  void add_u64(std::string_view key, uint64_t v);
  void add_f32(std::string_view key, float v);
  void add_f64(std::string_view key, double v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, const std::vector<std::string>& v);
  void add_f32_array(std::string_view key, std::span<const float> v);
  void add_i32_array(std::string_view key, std::span<const int32_t> v);
  // A value copied as it lies in another file (gguf::parse()'s Value), of any
  // type: how a converter carries over keys it does not interpret.
  void add_value(std::string_view key, const gguf::Value& v);

  // `ne` in ggml order (innermost first). `data` must hold exactly the bytes
  // the shape and type imply, and stay valid until write()/to_bytes().
  void add_tensor(std::string_view name, gguf::GgmlType type, std::vector<int64_t> ne,
                  std::span<const uint8_t> data);

  // A tensor whose bytes are made while the file is written: write() calls
  // `produce` once, in tensor order, and it hands the bytes to the sink in
  // as many pieces as it likes. A model larger than memory can so be written
  // a block of rows at a time (`tandem model synth --format gguf`). Emitting
  // other than exactly the bytes the shape and type need fails the write.
  using TensorSink = std::function<Status(std::span<const uint8_t> piece)>;
  using TensorProducer = std::function<Status(const TensorSink& sink)>;
  void add_tensor(std::string_view name, gguf::GgmlType type, std::vector<int64_t> ne, TensorProducer produce);

  // The whole file, written to PATH.tmp and renamed (runtime/atomic_file.h).
  Status write(const std::string& path) const;
  // The whole file in memory (small files: tests, fuzz seeds).
  Result<std::string> to_bytes() const;

 private:
  struct Tensor {
    std::string name;
    gguf::GgmlType type;
    std::vector<int64_t> ne;
    std::span<const uint8_t> data;
    uint64_t offset;
    uint64_t bytes;
    TensorProducer produce;  // set: the bytes come from it, not `data`
  };
  // The tensor's byte count, or 0 after recording why it is refused.
  uint64_t check_tensor(const std::string& name, gguf::GgmlType type, const std::vector<int64_t>& ne);
  // Tensor t's bytes through `out`, checked against its size.
  static Status emit(const Tensor& t, const TensorSink& out);
  void begin_key(std::string_view key, gguf::ValueType type);
  void fail(Status status);
  // Everything before the data section, padding included.
  std::string header() const;

  uint64_t alignment_;
  Status status_;
  uint64_t n_kv_ = 0;
  std::string kv_bytes_;
  std::set<std::string, std::less<>> keys_;
  std::vector<Tensor> tensors_;
  std::set<std::string, std::less<>> tensor_names_;
  uint64_t data_bytes_ = 0;  // the data section so far, padding included
};

}  // namespace tandem
