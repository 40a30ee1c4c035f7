// libFuzzer target: parse_safetensors on arbitrary bytes must return a Status
// or a file whose every tensor lies inside the input, never crash, hang or
// allocate beyond the input's size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "runtime/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tandem::parse_safetensors("fuzz.safetensors", data, size);
  if (!file.ok()) return 0;
  for (const auto& [name, t] : file->tensors) {
    if (t.data < data || t.data + t.bytes > data + size) std::abort();
    // Touch the first and last byte so ASan sees an out-of-bounds view.
    if (t.bytes > 0) {
      volatile uint8_t sink = t.data[0];
      sink = t.data[t.bytes - 1];
      (void)sink;
    }
    (void)tandem::safetensors_source_dtype(t.dtype, name);
  }
  return 0;
}
