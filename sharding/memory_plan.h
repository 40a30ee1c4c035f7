// MemoryPlan: the bytes each node needs to run a Llama-family model split tp
// ways by tensor and pp ways by pipeline parallelism (sharding/shard_plan.h),
// whether that fits the node's memory, and the longest context that would.
// A pure function of the model's shape and the options: no files, no network.
//
// Per node (= per rank), for a context of C positions per sequence and B
// concurrent sequences, all in bytes:
//
//   weights      make_shard_plan's weight_bytes in the weight dtype.
//   KV cache     B * C * kv_per_position, kv_per_position =
//                layers held * 2 (K and V) * KV heads held * head_dim * KV
//                dtype bytes (q8_0: 34 bytes per 32). A KV head replicated
//                over tp ranks (tp > n_kv_heads) counts on every rank.
//   activations  what LlamaModel::plan_memory allocates plus the CUDA
//                backend's scratch (the Sparks run CUDA; the CPU backend
//                needs less), with T = max(max_batch_tokens, B) tokens per
//                forward and q, kv, hidden the rank's local widths:
//                  buffers   4 * T * (2 dim + 2 q + 2 kv + 2 hidden)
//                  logits    4 * B * (vocab held + padded vocab
//                            + gathered padded vocab * tp when split)
//                  gemm      cuBLAS' 32 MiB workspace; when T > 16 (prefill
//                            runs as GEMMs): input widened to bf16,
//                            2 * T * max(dim, q, hidden), unless f32
//                            weights; the largest local matrix widened to
//                            bf16, 2 * max(q, hidden) * dim, for quantized
//                            (f16, q8_0, q4_0) weights
//                  attention split-K partials 4 * 16 * heads * ceil(C / 64)
//                            * (head_dim + 2); prefill scores
//                            4 * heads * T * C when T > 16
//   overhead     a constant per node: CUDA context, cuBLAS handles, NCCL/UCX
//                buffers (an estimate, a field to override).
//   headroom     headroom_bytes + headroom_fraction * node memory: the OS,
//                the launcher, what no formula here counts.
//
// So total(C) = fixed + per_position * C + per_chunk * ceil(C / 64), which
// largest_context solves in closed form (no search over C).
//
// Refused with InvalidArgument naming the reason: whatever make_shard_plan
// refuses, no node memory or a count other than tp * pp, a context beyond
// the model's max_seq_len or sliding window (context_limit), a KV dtype that is not f32/f16/bf16/q8_0 (or q8_0
// whose 32-blocks a head would cut), batch / tokens / memory out of range.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/llama_weights.h"
#include "runtime/status.h"
#include "runtime/tensor.h"
#include "sharding/shard_plan.h"

namespace tandem::sharding {

// The planner prints GB (10^9 bytes), as memory is sold.
inline constexpr uint64_t kGB = 1000000000;
// A DGX Spark: 128 GB of unified LPDDR5X shared by CPU and GPU.
inline constexpr uint64_t kDefaultNodeMemoryBytes = 128 * kGB;
// CUDA context and cuBLAS (~0.5-1 GiB on recent GPUs), NCCL/UCX buffers and
// the process itself: an estimate until measured on a Spark.
inline constexpr uint64_t kDefaultOverheadBytes = uint64_t{3} << 29;  // 1.5 GiB
// The OS and everything else on the node (DGX OS runs a desktop).
inline constexpr uint64_t kDefaultHeadroomBytes = 4 * kGB;
// Bounds on the inputs that keep every product below 2^63.
inline constexpr uint64_t kMaxNodeMemoryBytes = uint64_t{1} << 50;  // ~1.1 PB
inline constexpr int64_t kMaxPlanBatch = 4096;
inline constexpr int64_t kMaxPlanBatchTokens = 65536;

struct MemoryPlanOptions {
  int tp = 1;
  int pp = 1;
  DType weight_dtype = DType::kF32;
  // What the run keeps: `tandem plan` passes a serve job's engine.kv_dtype,
  // f32 for other jobs. f16, what GPU runtimes keep, is the default of a
  // plan made without a run (the plan notes which jobs keep it).
  DType kv_dtype = DType::kF16;
  int64_t context = 0;             // positions per sequence; 0: default_context(model)
  int64_t batch = 1;               // concurrent sequences, each with its own KV cache
  int64_t max_batch_tokens = 64;   // tokens per forward: LlamaModelOptions::max_batch
  std::vector<uint64_t> node_memory_bytes;  // one per node, node i runs rank i
  uint64_t overhead_bytes = kDefaultOverheadBytes;
  uint64_t headroom_bytes = kDefaultHeadroomBytes;
  double headroom_fraction = 0.0;  // of each node's memory, added to headroom_bytes; [0, 1)
};

struct NodeMemory {
  int rank = 0;
  uint64_t memory_bytes = 0;
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes = 0;          // at the plan's context and batch
  uint64_t activation_bytes = 0;  // buffers + logits + gemm + attention, below
  uint64_t buffer_bytes = 0;
  uint64_t logit_bytes = 0;
  uint64_t gemm_bytes = 0;
  uint64_t attention_bytes = 0;
  uint64_t overhead_bytes = 0;
  uint64_t headroom_bytes = 0;
  uint64_t total_bytes = 0;
  bool fits = false;              // total_bytes <= memory_bytes
  uint64_t free_bytes = 0;        // memory - total when it fits
  uint64_t short_bytes = 0;       // total - memory when it does not
  // total(C) = fixed_bytes + per_position_bytes * C + per_chunk_bytes * ceil(C / 64)
  uint64_t fixed_bytes = 0;
  uint64_t per_position_bytes = 0;  // KV (all B sequences) + prefill scores
  uint64_t per_chunk_bytes = 0;     // split-K partials
  uint64_t kv_bytes_per_position = 0;  // one sequence's KV cache per position
  // The largest C with total(C) <= memory (not capped by the model's
  // context); 0 when not even one position fits.
  int64_t largest_context = 0;
};

struct MemoryPlan {
  ShardPlan shard;             // the weights' split
  MemoryPlanOptions options;   // context resolved (never 0)
  std::vector<NodeMemory> nodes;  // nodes[i].rank == i
  bool fits = false;           // every node fits at options.context
  uint64_t short_bytes = 0;    // the largest shortfall over nodes (0 when it fits)
  // The longest context every node holds with options.batch sequences,
  // capped at context_limit(model); 0 when even the weights do not fit.
  int64_t largest_context = 0;
  bool model_limit_binds = false;  // memory would hold more than context_limit(model)
  int binding_node = -1;           // the node whose memory sets largest_context, else -1
  // For ranking layouts (search_layouts): weight bytes one decoded token
  // reads one after another (tp ranks read in parallel, pp stages in turn),
  // and activation bytes one token sends over the links, all ranks together
  // (tp: ring all-reduces of dim f32 per layer twice plus the embedding's;
  // pp: dim f32 per stage boundary).
  uint64_t decode_read_bytes = 0;
  uint64_t link_bytes_per_token = 0;
  std::vector<std::string> notes;  // the shard plan's, then the planner's
};

Result<MemoryPlan> make_memory_plan(const LlamaConfig& model, const MemoryPlanOptions& options);

// The largest C with fixed + per_position * C + per_chunk * ceil(C / 64) <= memory,
// solved in closed form; 0 when C = 1 does not fit. per_position must be > 0.
int64_t largest_context_for(uint64_t memory, uint64_t fixed, uint64_t per_position, uint64_t per_chunk);

// Every tp x pp with tp * pp == the number of nodes (options.tp and .pp are
// ignored), planned with the other options. The runtime runs tp or pp alone
// today (LlamaModel refuses both > 1), so layouts with both > 1 are listed
// as refused with that reason, as are splits make_shard_plan refuses.
struct RefusedLayout {
  int tp = 1;
  int pp = 1;
  std::string reason;
};
struct LayoutSearch {
  std::vector<MemoryPlan> ranked;  // best first (better_layout)
  std::vector<RefusedLayout> refused;
};
Result<LayoutSearch> search_layouts(const LlamaConfig& model, const MemoryPlanOptions& options);

// The ranking rule: a layout that fits beats one that does not; then the
// longer largest context (what the planner is asked for); then, on a tie
// (both reach the model's limit), fewer decode_read_bytes: decode is bound
// by memory bandwidth, and tp ranks read their halves at once while pp
// stages read theirs in turn (one sequence: nothing overlaps the stages), so
// tp=2 decodes up to ~2x faster than pp=2 although it sends ~500x the link
// bytes (405B: 33 MB a token over both directions against 64 KB; under 1 ms
// at a Spark pair's ~25 GB/s per direction plus 253 all-reduces' latency,
// beside ~0.4 s reading 114 GB of q4_0 at ~273 GB/s); then fewer link bytes;
// then fewer pipeline stages.
bool better_layout(const MemoryPlan& a, const MemoryPlan& b);

}  // namespace tandem::sharding
