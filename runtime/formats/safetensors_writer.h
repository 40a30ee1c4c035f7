// Writes safetensors files: for tests (hand-made checkpoints, stories260K
// converted to a Hugging Face directory) and for converting models. The
// header is padded with spaces to a multiple of 8 bytes, as the reference
// writer pads it, so the data section starts 8-aligned; tensors follow in the
// order given. The file is written atomically (runtime/atomic_file.h).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem {

struct SafetensorsWriteTensor {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", "F8_E4M3", "I64", ...
  std::vector<int64_t> shape;
  std::string_view bytes;       // row-major, little-endian; not owned
};

// InvalidArgument naming the tensor when its byte count disagrees with its
// shape and dtype, a dtype is unknown, or a name repeats.
Status write_safetensors(const std::string& path, const std::vector<SafetensorsWriteTensor>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace tandem
