#include "runtime/formats/safetensors_checkpoint.h"

#include <filesystem>
#include <set>

#include "runtime/formats/json_file.h"
#include "runtime/mapped_file.h"

namespace tandem {
namespace {

// An index lists a few hundred shards at most and is kilobytes long.
constexpr uint64_t kMaxIndexBytes = 64ull << 20;

void add_file(SafetensorsCheckpoint& checkpoint, SafetensorsFile file) {
  for (auto& [name, tensor] : file.tensors)
    checkpoint.tensors.emplace(name, SafetensorsCheckpoint::Entry{file.path, std::move(tensor)});
  checkpoint.mappings.push_back(std::move(file.mapping));
}

Status check_shard_name(const std::string& index_path, const std::string& tensor,
                        const std::string& shard) {
  if (shard.empty() || shard.find('/') != std::string::npos ||
      shard.find("..") != std::string::npos || shard.find('\0') != std::string::npos)
    return InvalidArgument(index_path + ": tensor " + tensor + " is placed in \"" + shard +
                           "\", which is not a plain file name in the checkpoint's directory");
  return Status::Ok();
}

// The index's weight_map as shard -> the tensors it places there.
Result<std::map<std::string, std::vector<std::string>>> read_index(const std::string& index_path) {
  TANDEM_ASSIGN_OR_RETURN(json_file::Json index, json_file::read(index_path, kMaxIndexBytes));
  const json_file::Json* weight_map = json_file::get(index, "weight_map");
  if (weight_map == nullptr || !weight_map->is_object())
    return InvalidArgument(index_path + ": \"weight_map\" must be an object of tensor -> file name");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string())
      return InvalidArgument(index_path + ": weight_map[\"" + tensor + "\"] must be a file name string");
    const std::string name = shard.get<std::string>();
    TANDEM_RETURN_IF_ERROR(check_shard_name(index_path, tensor, name));
    by_shard[name].push_back(tensor);
  }
  return by_shard;
}

// The file a checkpoint directory is read from: model.safetensors when it
// is there (as transformers prefers it), else the index of the shards.
struct CheckpointEntry {
  std::string path;
  bool sharded = false;
};

Result<CheckpointEntry> checkpoint_entry(const std::string& dir) {
  const std::string single = dir + "/" + kSafetensorsSingleFile;
  const std::string index = dir + "/" + kSafetensorsIndexFile;
  std::error_code ec;
  if (std::filesystem::exists(single, ec)) return CheckpointEntry{single, false};
  if (std::filesystem::exists(index, ec)) return CheckpointEntry{index, true};
  return NotFound(dir + ": holds neither " + kSafetensorsSingleFile + " nor " + kSafetensorsIndexFile);
}

Result<SafetensorsCheckpoint> read_sharded(const std::string& dir, const std::string& index_path) {
  TANDEM_ASSIGN_OR_RETURN(const auto by_shard, read_index(index_path));
  SafetensorsCheckpoint checkpoint;
  for (const auto& [shard, tensors] : by_shard) {
    const std::string path = dir + "/" + shard;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      return NotFound(index_path + ": shard " + shard + " (holding " + tensors.front() +
                      ") is missing from " + dir);
    TANDEM_ASSIGN_OR_RETURN(SafetensorsFile file, read_safetensors(path));
    SafetensorsFile wanted;
    wanted.path = file.path;
    wanted.mapping = file.mapping;
    for (const std::string& tensor : tensors) {
      const auto it = file.tensors.find(tensor);
      if (it == file.tensors.end())
        return DataLoss(index_path + ": places tensor " + tensor + " in " + shard +
                        ", which does not hold it");
      wanted.tensors.emplace(tensor, it->second);
    }
    add_file(checkpoint, std::move(wanted));
  }
  return checkpoint;
}

}  // namespace

Result<SafetensorsCheckpoint> read_safetensors_checkpoint(const std::string& dir) {
  TANDEM_ASSIGN_OR_RETURN(const CheckpointEntry entry, checkpoint_entry(dir));
  if (entry.sharded) return read_sharded(dir, entry.path);
  TANDEM_ASSIGN_OR_RETURN(SafetensorsFile file, read_safetensors(entry.path));
  SafetensorsCheckpoint checkpoint;
  add_file(checkpoint, std::move(file));
  return checkpoint;
}

Result<std::vector<std::string>> safetensors_checkpoint_files(const std::string& dir) {
  TANDEM_ASSIGN_OR_RETURN(const CheckpointEntry entry, checkpoint_entry(dir));
  std::vector<std::string> files = {entry.path};
  if (!entry.sharded) return files;
  TANDEM_ASSIGN_OR_RETURN(const auto by_shard, read_index(entry.path));
  for (const auto& shard : by_shard) files.push_back(dir + "/" + shard.first);
  return files;
}

}  // namespace tandem
