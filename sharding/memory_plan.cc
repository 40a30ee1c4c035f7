#include "sharding/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tandem::sharding {
namespace {

// The CUDA backend's constants (runtime/cuda/cuda_kernels.h, cuda_backend.cc),
// repeated because the planner must not depend on a CUDA build.
constexpr int64_t kAttentionChunk = 64;   // positions per split-K split of decode attention
constexpr int64_t kMatvecMaxTokens = 16;  // more tokens per forward run as GEMMs (prefill)
constexpr uint64_t kCublasWorkspace = uint64_t{32} << 20;

std::string str(int64_t v) { return std::to_string(v); }
uint64_t u(int64_t v) { return static_cast<uint64_t>(v); }

std::string gb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / static_cast<double>(kGB));
  return buf;
}

bool is_kv_dtype(DType d) {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kQ8_0;
}

// The options that do not depend on tp and pp (search_layouts checks them
// once, before trying layouts). `model` has been validate()d.
Status check_options(const LlamaConfig& m, const MemoryPlanOptions& o) {
  if (o.node_memory_bytes.empty())
    return InvalidArgument("no node memory given: one entry per node");
  for (uint64_t bytes : o.node_memory_bytes)
    if (bytes == 0 || bytes > kMaxNodeMemoryBytes)
      return InvalidArgument("node memory of " + std::to_string(bytes) + " bytes is outside [1, " +
                             std::to_string(kMaxNodeMemoryBytes) + "]");
  if (o.context != 0) TANDEM_RETURN_IF_ERROR(check_context(m, o.context));  // 0: default_context
  if (o.batch < 1 || o.batch > kMaxPlanBatch)
    return InvalidArgument("batch " + str(o.batch) + " is outside [1, " + str(kMaxPlanBatch) + "]");
  if (o.max_batch_tokens < 1 || o.max_batch_tokens > kMaxPlanBatchTokens)
    return InvalidArgument("max_batch_tokens " + str(o.max_batch_tokens) + " is outside [1, " +
                           str(kMaxPlanBatchTokens) + "]");
  if (o.overhead_bytes > kMaxNodeMemoryBytes || o.headroom_bytes > kMaxNodeMemoryBytes)
    return InvalidArgument("overhead and headroom must be at most " + gb(kMaxNodeMemoryBytes));
  if (!(o.headroom_fraction >= 0.0 && o.headroom_fraction < 1.0))
    return InvalidArgument("headroom_fraction " + std::to_string(o.headroom_fraction) +
                           " is outside [0, 1)");
  if (!is_kv_dtype(o.kv_dtype))
    return InvalidArgument("KV dtype " + std::string(dtype_name(o.kv_dtype)) +
                           " is not a KV cache type (f32, f16, bf16, q8_0)");
  // Blocks run along each head's vector, as llama.cpp's q8_0 cache does.
  const int64_t block = dtype_block_elems(o.kv_dtype);
  if (m.head_dim() % block != 0)
    return InvalidArgument(std::string(dtype_name(o.kv_dtype)) + " KV cache stores blocks of " +
                           str(block) + " along head_dim, but head_dim is " + str(m.head_dim()));
  return Status::Ok();
}

// The cost model of one rank (memory_plan.h spells out each term).
NodeMemory cost_rank(const ShardPlan& p, const RankShard& r, const MemoryPlanOptions& o) {
  const LlamaConfig& m = p.model;
  const int64_t tp = p.tp;
  NodeMemory n;
  n.rank = r.rank;
  n.memory_bytes = o.node_memory_bytes[r.rank];
  n.weight_bytes = r.weight_bytes;
  const int64_t hd = m.head_dim(), heads = r.q_heads.size(), q = heads * hd;
  const int64_t kv = r.kv_heads.size() * hd, hidden = r.hidden.size();
  const int64_t tokens = std::max(o.max_batch_tokens, o.batch);
  const bool gemm = tokens > kMatvecMaxTokens;
  n.kv_bytes_per_position = u(r.layers.size()) * 2 * matrix_bytes(1, kv, o.kv_dtype);
  n.buffer_bytes = 4 * u(tokens) * u(2 * m.dim + 2 * q + 2 * kv + 2 * hidden);
  const int64_t vocab = r.vocab.size(), padded = (m.vocab_size + tp - 1) / tp;
  // LlamaModel gathers a split model's logits on the host, padded per shard.
  const bool split = p.tp > 1 || p.pp > 1;
  n.logit_bytes = 4 * u(o.batch) *
                  u(vocab + std::max(vocab, padded) + (split ? std::max(padded * tp, m.vocab_size) : 0));
  n.gemm_bytes = kCublasWorkspace;
  if (gemm && o.weight_dtype != DType::kF32)
    n.gemm_bytes += 2 * u(tokens) * u(std::max({m.dim, q, hidden}));
  if (gemm && o.weight_dtype != DType::kF32 && o.weight_dtype != DType::kBF16)
    n.gemm_bytes += 2 * u(std::max(q, hidden)) * u(m.dim);
  n.overhead_bytes = o.overhead_bytes;
  n.headroom_bytes = o.headroom_bytes +
                     static_cast<uint64_t>(o.headroom_fraction * static_cast<double>(n.memory_bytes));
  n.fixed_bytes = n.weight_bytes + n.buffer_bytes + n.logit_bytes + n.gemm_bytes + n.overhead_bytes +
                  n.headroom_bytes;
  n.per_position_bytes = u(o.batch) * n.kv_bytes_per_position + (gemm ? 4 * u(heads) * u(tokens) : 0);
  n.per_chunk_bytes = 4 * u(kMatvecMaxTokens) * u(heads) * u(hd + 2);

  const uint64_t c = u(o.context), chunks = (c + kAttentionChunk - 1) / kAttentionChunk;
  n.kv_bytes = u(o.batch) * n.kv_bytes_per_position * c;
  n.attention_bytes = (n.per_position_bytes * c - n.kv_bytes) + n.per_chunk_bytes * chunks;
  n.activation_bytes = n.buffer_bytes + n.logit_bytes + n.gemm_bytes + n.attention_bytes;
  n.total_bytes = n.fixed_bytes + n.per_position_bytes * c + n.per_chunk_bytes * chunks;
  n.fits = n.total_bytes <= n.memory_bytes;
  n.free_bytes = n.fits ? n.memory_bytes - n.total_bytes : 0;
  n.short_bytes = n.fits ? 0 : n.total_bytes - n.memory_bytes;
  n.largest_context =
      largest_context_for(n.memory_bytes, n.fixed_bytes, n.per_position_bytes, n.per_chunk_bytes);
  return n;
}

// Ring all-reduce: each of n ranks sends 2 (n - 1) / n of the buffer.
uint64_t link_bytes(const LlamaConfig& m, const ShardPlan& p) {
  const uint64_t row = 4 * u(m.dim);
  uint64_t bytes = u(p.pp - 1) * row * u(p.tp);  // each stage hands a token's activations on
  if (p.tp > 1)
    for (int s = 0; s < p.pp; ++s)
      bytes += u(2 * p.at(s, 0).layers.size() + (s == 0 ? 1 : 0)) * 2 * u(p.tp - 1) * row;
  return bytes;
}

uint64_t decode_read(const ShardPlan& p) {
  uint64_t bytes = 0;
  for (int s = 0; s < p.pp; ++s) {
    uint64_t stage = 0;
    for (int t = 0; t < p.tp; ++t) stage = std::max(stage, p.at(s, t).weight_bytes);
    bytes += stage;
  }
  return bytes;
}

void add_notes(MemoryPlan& p) {
  const MemoryPlanOptions& o = p.options;
  const LlamaConfig& m = p.shard.model;
  if (o.kv_dtype == DType::kF16)
    p.notes.push_back("KV cache planned in f16, as a serve job keeps it with engine.kv_dtype: f16 (generate's "
                      "one-sequence cache is f32)");
  else if (o.kv_dtype != DType::kF32)
    p.notes.push_back("KV cache planned in " + std::string(dtype_name(o.kv_dtype)) +
                      "; the runtime keeps f32 or f16 (engine.kv_dtype) today");
  if (o.batch > 1)
    p.notes.push_back("batch " + str(o.batch) + ": the runtime runs one sequence at a time today; "
                      "the plan holds a KV cache for each");
  if (o.tp > 1 && o.pp > 1)
    p.notes.push_back("tp=" + str(o.tp) + " with pp=" + str(o.pp) +
                      ": the runtime runs tp or pp alone today");
  if (p.largest_context == 0) {
    for (const NodeMemory& n : p.nodes)
      if (n.largest_context == 0)
        p.notes.push_back("node " + str(n.rank) + ": weights and fixed costs alone (" +
                          gb(n.fixed_bytes) + ") exceed its " + gb(n.memory_bytes));
  } else if (p.model_limit_binds) {
    const bool windowed = context_limit(m) < m.max_seq_len;
    p.notes.push_back(std::string(windowed ? "the model's sliding window (" : "the model's own context (") +
                      str(context_limit(m)) + ") binds before memory does");
  }
}

}  // namespace

int64_t largest_context_for(uint64_t memory, uint64_t fixed, uint64_t per_position, uint64_t per_chunk) {
  TANDEM_CHECK(per_position > 0);
  if (fixed >= memory) return 0;
  const uint64_t avail = memory - fixed, a = per_position, b = per_chunk, chunk = kAttentionChunk;
  // C in chunk k (64 (k - 1) < C <= 64 k) costs a C + b k. The last chunk
  // whose first position fits is k = floor((avail + 63 a) / (64 a + b)); no
  // position of a later chunk fits, and within chunk k C is bounded by both
  // the chunk's end and (avail - b k) / a.
  const uint64_t k = (avail + (chunk - 1) * a) / (chunk * a + b);
  if (k == 0) return 0;
  return static_cast<int64_t>(std::min(chunk * k, (avail - b * k) / a));
}

Result<MemoryPlan> make_memory_plan(const LlamaConfig& model, const MemoryPlanOptions& options) {
  // The shard plan validates the model and the split; node memory is
  // checked here, in GB, rather than by its GiB weights-only notes.
  TANDEM_ASSIGN_OR_RETURN(ShardPlan shard,
                          make_shard_plan(model, options.tp, options.pp, {}, options.weight_dtype));
  TANDEM_RETURN_IF_ERROR(check_options(model, options));
  const int64_t world = static_cast<int64_t>(options.tp) * options.pp;
  if (static_cast<int64_t>(options.node_memory_bytes.size()) != world)
    return InvalidArgument("tp*pp=" + str(world) + " but " + str(options.node_memory_bytes.size()) +
                           " nodes: one rank runs on each node");

  MemoryPlan p;
  p.options = options;
  if (p.options.context == 0) p.options.context = default_context(model);
  p.fits = true;
  p.largest_context = INT64_MAX;
  for (const RankShard& r : shard.ranks) {
    NodeMemory n = cost_rank(shard, r, p.options);
    p.fits = p.fits && n.fits;
    p.short_bytes = std::max(p.short_bytes, n.short_bytes);
    if (n.largest_context < p.largest_context) {
      p.largest_context = n.largest_context;
      p.binding_node = n.rank;
    }
    p.nodes.push_back(n);
  }
  if (p.largest_context > context_limit(model)) {
    p.largest_context = context_limit(model);
    p.model_limit_binds = true;
    p.binding_node = -1;
  }
  p.decode_read_bytes = decode_read(shard);
  p.link_bytes_per_token = link_bytes(model, shard);
  p.notes = shard.notes;
  p.shard = std::move(shard);
  add_notes(p);
  return p;
}

bool better_layout(const MemoryPlan& a, const MemoryPlan& b) {
  if (a.fits != b.fits) return a.fits;
  if (a.largest_context != b.largest_context) return a.largest_context > b.largest_context;
  if (a.decode_read_bytes != b.decode_read_bytes) return a.decode_read_bytes < b.decode_read_bytes;
  if (a.link_bytes_per_token != b.link_bytes_per_token)
    return a.link_bytes_per_token < b.link_bytes_per_token;
  return a.shard.pp < b.shard.pp;
}

Result<LayoutSearch> search_layouts(const LlamaConfig& model, const MemoryPlanOptions& options) {
  // Problems every layout would share are the caller's error, not refusals.
  if (Status s = validate(model, "model"); !s.ok()) return InvalidArgument(s.message());
  TANDEM_RETURN_IF_ERROR(check_options(model, options));
  const int nodes = static_cast<int>(options.node_memory_bytes.size());
  LayoutSearch search;
  for (int tp = 1; tp <= nodes; ++tp) {
    if (nodes % tp != 0) continue;
    const int pp = nodes / tp;
    if (tp > 1 && pp > 1) {
      search.refused.push_back({tp, pp, "the runtime runs tp or pp alone today (LlamaModel refuses "
                                        "tp > 1 with pp > 1)"});
      continue;
    }
    MemoryPlanOptions o = options;
    o.tp = tp;
    o.pp = pp;
    Result<MemoryPlan> plan = make_memory_plan(model, o);
    if (plan.ok())
      search.ranked.push_back(std::move(plan).value());
    else
      search.refused.push_back({tp, pp, plan.status().message()});
  }
  std::stable_sort(search.ranked.begin(), search.ranked.end(), better_layout);
  return search;
}

}  // namespace tandem::sharding
