// libFuzzer target: any bytes through gguf::parse(), every typed accessor on
// every key, and the GGUF -> ModelSource mapping; an accepted model's tensor
// views are read end to end, so a view past the input is an ASan report.
// Every file the parser accepts must also survive a copy through GgufWriter
// (every key as raw value bytes, every tensor) and parse again to the same
// keys, tensors and bytes: the writer and the parser agree on the format.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "runtime/formats/gguf.h"
#include "runtime/formats/gguf_model.h"
#include "runtime/formats/gguf_writer.h"

namespace {

void fail(const char* what) {
  std::fprintf(stderr, "gguf_fuzz: %s\n", what);
  std::abort();
}

void check_copy(const tandem::gguf::File& file) {
  using namespace tandem;
  GgufWriter w(file.alignment);
  for (const gguf::KeyValue& kv : file.metadata)
    if (kv.key != "general.alignment") w.add_value(kv.key, kv.value);
  for (const gguf::TensorInfo& t : file.tensors) w.add_tensor(t.name, t.type, t.ne, {t.data, t.bytes});
  auto bytes = w.to_bytes();
  if (!bytes.ok()) fail(("the writer refused a parsed file: " + bytes.status().to_string()).c_str());
  auto again = gguf::parse({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()}, "copy.gguf");
  if (!again.ok()) fail(("the parser refused the writer's copy: " + again.status().to_string()).c_str());
  // The writer states general.alignment itself, only when it is not 32.
  const size_t keys = file.metadata.size() - (file.find("general.alignment") ? 1 : 0) +
                      (file.alignment != gguf::kDefaultAlignment ? 1 : 0);
  if (again->metadata.size() != keys || again->tensors.size() != file.tensors.size() ||
      again->alignment != file.alignment)
    fail("the copy has other counts or alignment");
  for (const gguf::KeyValue& kv : file.metadata) {
    if (kv.key == "general.alignment") continue;
    const gguf::Value* v = again->find(kv.key);
    if (v == nullptr || v->type != kv.value.type || v->count != kv.value.count ||
        v->raw.size() != kv.value.raw.size() ||
        (!v->raw.empty() && std::memcmp(v->raw.data(), kv.value.raw.data(), v->raw.size()) != 0))
      fail("a key differs in the copy");
  }
  for (const gguf::TensorInfo& t : file.tensors) {
    const gguf::TensorInfo* c = again->find_tensor(t.name);
    if (c == nullptr || c->type != t.type || c->ne != t.ne || c->bytes != t.bytes ||
        std::memcmp(c->data, t.data, t.bytes) != 0)
      fail("a tensor differs in the copy");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tandem;
  auto file = gguf::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.ok()) return 0;
  for (const gguf::KeyValue& kv : file->metadata) {
    (void)file->get_string(kv.key);
    (void)file->get_int(kv.key);
    (void)file->get_f32(kv.key);
    (void)file->get_bool(kv.key);
    (void)file->get_string_array(kv.key);
    (void)file->get_f32_array(kv.key);
    (void)file->get_i32_array(kv.key);
  }
  check_copy(*file);
  volatile uint8_t sink = 0;
  auto source = gguf_model_source(*file);
  if (!source.ok()) return 0;
  for (const auto& [name, t] : source->tensors)
    for (uint64_t i = 0; i < t.bytes; ++i) sink = sink ^ t.data[i];
  return 0;
}
