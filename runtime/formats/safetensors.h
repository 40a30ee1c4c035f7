// Reads safetensors files (Hugging Face's tensor container): an 8-byte
// little-endian header length N, N bytes of JSON, then the data section. The
// JSON is an object mapping each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end)} (offsets relative to the data section), plus
// an optional "__metadata__" object of string values.
//
// The file is treated as hostile: the header is bounded (by the file and by
// 100 MB, as the reference implementation bounds it), parsed as a stream so
// nothing larger than the header itself is ever allocated, and every tensor's
// bytes must lie inside the data section, match its shape and dtype, and not
// overlap another tensor's. Errors start with the file's path and name the
// tensor: DataLoss for a malformed or truncated file, Unimplemented for a
// dtype this reader does not know.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model_source.h"
#include "runtime/status.h"

namespace tandem {

class MappedFile;

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct SafetensorsTensor {
  std::string dtype;           // as the header spells it: "F32", "BF16", "F8_E4M3", "I64", ...
  std::vector<int64_t> shape;  // row-major, outermost first; [] is a scalar
  const uint8_t* data = nullptr;  // inside the parsed bytes (not aligned in general)
  uint64_t bytes = 0;
};

struct SafetensorsFile {
  std::string path;
  std::map<std::string, SafetensorsTensor, std::less<>> tensors;
  std::map<std::string, std::string, std::less<>> metadata;  // "__metadata__"
  // The mapping the tensors point into; null when parsed from caller's bytes.
  std::shared_ptr<const MappedFile> mapping;
};

// Parses `size` bytes of a safetensors file held by the caller (the tensors
// point into them). `path` only names the file in errors.
Result<SafetensorsFile> parse_safetensors(const std::string& path, const uint8_t* data, size_t size);

// Maps the file at `path` and parses it; the result keeps the mapping alive.
Result<SafetensorsFile> read_safetensors(const std::string& path);

// The ModelSource storage type of a safetensors dtype: F32, F16, BF16 and
// F8_E4M3. Other dtypes the format defines (F64, I64, I8, U8, BOOL,
// F8_E5M2, ...) are Unimplemented, naming `what` (a path and tensor name).
Result<SourceDType> safetensors_source_dtype(std::string_view dtype, std::string_view what);

}  // namespace tandem
