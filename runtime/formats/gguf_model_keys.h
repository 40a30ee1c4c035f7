// Internal to runtime/formats/gguf_model*.cc: optional metadata and the
// pieces of the GGUF -> ModelSource mapping that live in their own files.
#pragma once

#include <string>
#include <string_view>

#include "runtime/formats/gguf.h"
#include "runtime/model_source.h"

namespace tandem {

// `fallback` when `key` is absent; the key's value (or its type error) otherwise.
template <typename T>
Result<T> gguf_optional(const gguf::File& f, std::string_view key, T fallback,
                        Result<T> (gguf::File::*get)(std::string_view) const) {
  if (f.find(key) == nullptr) return fallback;
  return (f.*get)(key);
}

// Llama 3.1's frequency scaling into source.config.rope_scaling (gguf_rope.cc).
Status read_gguf_rope_scaling(const gguf::File& f, const std::string& arch, ModelSource& source);

}  // namespace tandem
