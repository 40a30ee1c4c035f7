// A Hugging Face checkpoint's weights: DIR/model.safetensors, or the shards
// that DIR/model.safetensors.index.json's "weight_map" names (tensor name ->
// shard file name). Each file is mapped once; the tensors point into the
// mappings, which the checkpoint keeps alive.
//
// Shard names must be plain file names in DIR (no '/', no ".."), so an index
// cannot make the loader open files elsewhere. A shard that is missing is
// NotFound naming it; a tensor the index places in a shard that lacks it is
// DataLoss. Tensors a shard holds but the index does not name are ignored,
// as Hugging Face's loader ignores them.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/formats/safetensors.h"

namespace tandem {

struct SafetensorsCheckpoint {
  struct Entry {
    std::string file;  // the path of the file holding it, for errors
    SafetensorsTensor tensor;
  };
  std::map<std::string, Entry, std::less<>> tensors;
  std::vector<std::shared_ptr<const MappedFile>> mappings;
};

inline constexpr const char* kSafetensorsSingleFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";

// Reads DIR's checkpoint, preferring model.safetensors when both exist (as
// transformers does). NotFound when DIR has neither.
Result<SafetensorsCheckpoint> read_safetensors_checkpoint(const std::string& dir);

// The files read_safetensors_checkpoint reads, by the same choice, without
// mapping them: model.safetensors, or the index and the shards it names
// (whether they exist is the caller's to find out).
Result<std::vector<std::string>> safetensors_checkpoint_files(const std::string& dir);

}  // namespace tandem
