#include "sharding/shard_loader.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/llama2c_loader.h"
#include "runtime/mapped_file.h"
#include "sharding/weight_slices.h"

namespace tandem::sharding {
namespace {

// Copied tensors start on a cache line, as backend allocations do, so the
// SIMD kernels see the same alignment whichever way a tensor was loaded.
constexpr uint64_t kAlign = 64;
uint64_t round_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

// The weights' one `storage` pointer: the mapping the views point into and
// the memory the strided slices were copied to, released together.
struct ShardStorage {
  std::shared_ptr<MappedFile> file;
  std::unique_ptr<char, FreeDeleter> copies;
};

std::string shape_of(const LlamaConfig& c) {
  return "dim=" + std::to_string(c.dim) + " hidden_dim=" + std::to_string(c.hidden_dim) +
         " n_layers=" + std::to_string(c.n_layers) + " n_heads=" + std::to_string(c.n_heads) +
         " n_kv_heads=" + std::to_string(c.n_kv_heads) +
         " vocab_size=" + std::to_string(c.vocab_size) +
         " seq_len=" + std::to_string(c.max_seq_len) +
         (c.shared_classifier ? " shared classifier" : " separate classifier");
}

// What a llama2.c header says; rope_theta and norm_eps it cannot say.
bool same_shape(const LlamaConfig& a, const LlamaConfig& b) {
  return a.dim == b.dim && a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers &&
         a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads &&
         a.vocab_size == b.vocab_size && a.max_seq_len == b.max_seq_len &&
         a.shared_classifier == b.shared_classifier;
}

struct Target {
  Tensor* tensor = nullptr;  // null: a name this loader does not know
  bool vector = false;       // a norm: one-dimensional [dim], as load_llama2c makes it
};

// The tensor a slice fills, by the slicer's names (weight_slices.h).
Target target_of(LlamaWeights& w, const WeightSlice& slice, int64_t first_layer) {
  if (slice.layer < 0) {
    if (slice.tensor == "embedding") return {&w.embedding, false};
    if (slice.tensor == "classifier") return {&w.classifier, false};
    if (slice.tensor == "final_norm") return {&w.final_norm, true};
    return {};
  }
  const int64_t i = slice.layer - first_layer;
  if (i < 0 || i >= static_cast<int64_t>(w.layers.size())) return {};
  LlamaLayerWeights& l = w.layers[i];
  const std::string_view kind = std::string_view(slice.tensor).substr(slice.tensor.rfind('.') + 1);
  if (kind == "attn_norm") return {&l.attn_norm, true};
  if (kind == "ffn_norm") return {&l.ffn_norm, true};
  if (kind == "wq") return {&l.wq, false};
  if (kind == "wk") return {&l.wk, false};
  if (kind == "wv") return {&l.wv, false};
  if (kind == "wo") return {&l.wo, false};
  if (kind == "w1") return {&l.w_gate, false};
  if (kind == "w2") return {&l.w_down, false};
  if (kind == "w3") return {&l.w_up, false};
  return {};
}

std::string human_bytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 1000000000ull)
    std::snprintf(buf, sizeof(buf), "%.2f MB", static_cast<double>(bytes) / 1e6);
  else
    std::snprintf(buf, sizeof(buf), "%.2f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

}  // namespace

std::string ShardLoadReport::describe() const {
  const double percent = model_weight_bytes == 0 ? 0.0
                                                 : 100.0 * static_cast<double>(held_bytes()) /
                                                       static_cast<double>(model_weight_bytes);
  char pct[32];
  std::snprintf(pct, sizeof(pct), "%.1f%%", percent);
  return "rank " + std::to_string(rank) + " holds " + pct + " of the weights (" +
         human_bytes(held_bytes()) + " of " + human_bytes(model_weight_bytes) + "; file " +
         human_bytes(file_bytes) + "): " + human_bytes(mapped_bytes) + " mapped in place, " +
         human_bytes(copied_bytes) + " copied";
}

Result<LlamaWeights> load_llama2c_shard(const std::string& path, const ShardPlan& plan, int rank,
                                        ShardLoadReport* report) {
  // The plan first: a rank outside it, or a plan whose ranges do not fit its
  // model, is refused before any file is opened.
  TANDEM_ASSIGN_OR_RETURN(const std::vector<WeightSlice> slices, llama2c_weight_slices(plan, rank));
  const RankShard& me = plan.ranks[rank];

  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  TANDEM_ASSIGN_OR_RETURN(const LlamaConfig config, read_llama2c_header(*file));
  // The slices' offsets are the plan's model's layout: in a file of another
  // shape they would point at the wrong weights.
  if (!same_shape(config, plan.model))
    return FailedPrecondition(path + " holds a model of shape (" + shape_of(config) +
                              ") but the plan is for (" + shape_of(plan.model) + ")");

  auto storage = std::make_shared<ShardStorage>();
  storage->file = file;
  uint64_t copy_capacity = 0;
  for (const WeightSlice& slice : slices)
    if (!slice.contiguous()) copy_capacity += round_up(slice.bytes());
  if (copy_capacity > 0) {
    // One allocation for every strided slice: one free, and no per-tensor
    // allocator overhead on models with hundreds of layers.
    storage->copies.reset(static_cast<char*>(std::aligned_alloc(kAlign, copy_capacity)));
    if (!storage->copies)
      return ResourceExhausted(path + ": cannot allocate " + std::to_string(copy_capacity) +
                               " bytes for rank " + std::to_string(rank) + "'s column slices");
  }

  LlamaWeights w;
  w.config = config;
  w.shard.tp = plan.tp;
  w.shard.tp_rank = me.tp_rank;
  w.shard.pp = plan.pp;
  w.shard.stage = me.stage;
  w.shard.first_layer = me.layers.begin;
  w.shard.n_heads = me.q_heads.size();
  w.shard.n_kv_heads = me.kv_heads.size();
  w.shard.hidden_dim = me.hidden.size();
  w.shard.vocab_begin = me.vocab.begin;
  w.shard.vocab_end = me.vocab.end;
  w.shard.has_embedding = me.holds_embedding;
  w.shard.has_classifier = me.holds_classifier;
  w.layers.resize(static_cast<size_t>(me.layers.size()));

  ShardLoadReport r;
  r.rank = rank;
  r.file_bytes = file->size();
  r.model_weight_bytes = plan.total_weight_bytes;
  // The mapping is read-only; the views, like load_llama2c's, are only read.
  char* const base = const_cast<char*>(file->data());
  char* next_copy = storage->copies.get();
  for (const WeightSlice& slice : slices) {
    const Target t = target_of(w, slice, me.layers.begin);
    // The slicer and this loader disagreeing is a bug, but one that would
    // leave a tensor unset or read past the mapping: refuse, naming it.
    if (t.tensor == nullptr || t.tensor->data != nullptr)
      return Internal("rank " + std::to_string(rank) + ": slice " + slice.tensor +
                      " has no place, or a second one, in the loaded weights");
    if (slice.rows == 0 ||
        slice.offset + (slice.rows - 1) * slice.row_stride + slice.bytes_per_row > file->size())
      return Internal(path + ": slice " + slice.tensor + " lies outside the file");
    char* data = nullptr;
    if (slice.contiguous()) {
      data = base + slice.offset;
      r.mapped_bytes += slice.bytes();
    } else {
      data = next_copy;
      for (uint64_t row = 0; row < slice.rows; ++row)
        std::memcpy(data + row * slice.bytes_per_row, base + slice.offset + row * slice.row_stride,
                    slice.bytes_per_row);
      next_copy += round_up(slice.bytes());
      r.copied_bytes += slice.bytes();
    }
    *t.tensor = t.vector ? Tensor::view(data, DType::kF32, {slice.col_range.size()})
                         : Tensor::view(data, DType::kF32,
                                        {slice.row_range.size(), slice.col_range.size()});
  }
  // With one rank holding both ends of a shared table, the slicer lists it
  // once (as the embedding); the classifier is the same view.
  if (config.shared_classifier && me.holds_classifier && me.holds_embedding)
    w.classifier = w.embedding;
  // Every tensor the rank holds got its slice: a model with a hole would fail
  // far from here, on a null pointer.
  bool complete = (w.embedding.data != nullptr) == me.holds_embedding &&
                  (w.final_norm.data != nullptr) == me.holds_classifier &&
                  (w.classifier.data != nullptr) == me.holds_classifier;
  for (const LlamaLayerWeights& l : w.layers)
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate,
                            &l.w_down, &l.w_up})
      complete = complete && t->data != nullptr;
  if (!complete)
    return Internal("rank " + std::to_string(rank) + ": the slices left a tensor unset");
  w.storage = std::move(storage);
  if (report != nullptr) *report = r;
  return w;
}

}  // namespace tandem::sharding
