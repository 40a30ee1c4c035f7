// libFuzzer target: any bytes through gguf::parse(), every typed accessor on
// every key, and the GGUF -> ModelSource mapping; an accepted model's tensor
// views are read end to end, so a view past the input is an ASan report.
#include <cstddef>
#include <cstdint>
#include <span>

#include "runtime/formats/gguf.h"
#include "runtime/formats/gguf_model.h"

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
  volatile uint8_t sink = 0;
  for (const gguf::TensorInfo& t : file->tensors)
    for (uint64_t i = 0; i < t.bytes; ++i) sink = sink ^ t.data[i];
  auto source = gguf_model_source(*file);
  if (!source.ok()) return 0;
  for (const auto& [name, t] : source->tensors)
    for (uint64_t i = 0; i < t.bytes; ++i) sink = sink ^ t.data[i];
  return 0;
}
