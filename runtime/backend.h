// The backend interface: where tensors live and what runs on them. The model
// (runtime/llama_model.h) is written only against this interface and never
// dereferences a tensor itself, which is what lets a CUDA backend drop in:
//
//  - Memory. allocate() returns a Buffer in the backend's memory (host memory
//    for cpu; device memory from a pool for cuda). import_weights() makes
//    host-resident weights (a mapped model file) usable by the kernels: cpu uses
//    them in place; cuda copies them to the device once, in chunks through
//    pinned staging, or maps them in place where memory is unified (GB10).
//  - Ordering. Kernels are enqueued in call order on the backend's one stream:
//    cpu runs each at once (threaded), cuda launches it on a CUDA stream and
//    returns. copy_to_host() and synchronize() are the only points where the
//    host waits, so a cuda decode step can be captured as a CUDA graph (decode_step).
//    A device communicator may enqueue its exchanges on the same stream
//    (native_stream()) and have its errors checked during those waits
//    (set_wait_check()): a sharded step then needs no host wait either.
//  - Kernels take tensors (views) and check shapes; a mismatch is a
//    programmer bug and aborts. Host-side inputs (token ids, positions) are
//    passed by value or as host spans and copied by the backend as needed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace tandem {

class Backend;

// Move-only ownership of backend memory; frees it through its backend.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, void* data, size_t bytes) : owner_(owner), data_(data), bytes_(bytes) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  void reset();

 private:
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// One product of a matmul_shared_input(): out = x @ w^T.
struct MatmulTarget {
  Tensor out;
  Tensor w;
};

struct AttentionShape {
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // KV heads; query head h reads KV head h / (n_heads / n_kv_heads)
  int64_t head_dim = 0;
  int64_t start_pos = 0;   // position of the first query token
  // The model's weights are narrower than f32 (bf16, Q8_0, Q4_0, Q4_K): a backend
  // may then compute attention with matching precision (cuda prefill: TF32
  // tensor cores for the scores and the weighted sum).
  bool reduced_precision = false;
};

// A batched step over a paged KV cache (runtime/paged_kv.h): tokens of many
// sequences side by side in one activation, each with its own position and
// its sequence's block table. The tensors are i32 in backend memory, filled
// by the model once per step (copy_from_host), so that every layer's kernels
// read them where they run (cuda: no per-layer upload).
// A layer's pool is [num_blocks * block_size, n_kv_heads * head_dim]: block b
// holds rows [b * block_size, (b + 1) * block_size), position p of a sequence
// is row table[p / block_size] * block_size + p % block_size.
struct PagedAttention {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_size = 0;
  Tensor positions;     // [tokens] i32: each token's position in its sequence
  Tensor token_seq;     // [tokens] i32: each token's row of block_tables
  Tensor block_tables;  // [sequences, max_blocks] i32; only the blocks a token reaches are read
  int64_t max_positions = 0;  // 1 + the largest position of the step (scratch, split-K sizing)
  bool reduced_precision = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Zero-filled memory of `bytes`, aligned for any kernel. ResourceExhausted
  // when the backend cannot provide it.
  virtual Result<Buffer> allocate(size_t bytes) = 0;
  // Host weights -> weights the kernels can read. The returned view stays
  // valid while the backend lives (cuda) or while `host` does (cpu).
  virtual Result<Tensor> import_weights(const Tensor& host) = 0;
  // Copies `bytes` from the start of `src` to host memory; waits for the
  // kernels enqueued before it.
  virtual Status copy_to_host(void* dst, const Tensor& src, size_t bytes) = 0;
  virtual Status synchronize() = 0;

  // The stream this backend enqueues its kernels on, as an opaque handle so
  // that no CUDA type leaks into builds without CUDA: the cudaStream_t for
  // cuda, nullptr for cpu (which runs each kernel as it is called). A device
  // communicator (collectives/model_comm.h with NCCL) enqueues its exchanges
  // on it, ordered with the kernels, with no host wait, so decode_step can
  // record them too. Valid while the backend lives.
  virtual void* native_stream() const { return nullptr; }

  // A check run while the host waits for the backend's queued work
  // (copy_to_host, synchronize): on every poll with idle = false, and once
  // the work is done with idle = true. A non-OK Status ends the wait with it.
  // Work another component enqueued on native_stream() (a device
  // communicator's exchanges) never finishes by itself when a peer is gone:
  // its owner's check turns that into an error naming the peer, by its
  // deadline. Held weakly, since the owner may be destroyed first; one check
  // at a time, an empty pointer removes it. The cpu backend never waits.
  using WaitCheck = std::function<Status(bool idle)>;
  void set_wait_check(std::weak_ptr<const WaitCheck> check) { wait_check_ = std::move(check); }

  // ---- kernels; x, out: [tokens, width] activations in backend memory ----
  // out[t] = table[tokens[t] - first_row], or zeros where that row is not in
  // the table: a vocab-parallel shard holds rows [first_row, first_row +
  // table.rows()) and the shards' outputs sum to the embedding. Token ids must
  // be validated against the vocabulary by the caller.
  virtual void embed(const Tensor& out, const Tensor& table, std::span<const int> tokens,
                     int64_t first_row = 0) = 0;
  // out[t] = x[t] * w / rms(x[t]); out may be x.
  virtual void rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) = 0;
  // out[t, r] = dot(x[t], w[r]): w is [n_out, n_in] as checkpoints store it.
  virtual void matmul(const Tensor& out, const Tensor& x, const Tensor& w) = 0;
  // Several matmuls of the same x (q/k/v, gate/up) as one unit of work: one
  // parallel loop on cpu, one grouped launch on cuda. Same checks as matmul.
  virtual void matmul_shared_input(const Tensor& x, std::span<const MatmulTarget> targets) = 0;
  // llama2.c rotary embedding of q and k in place: token t is at position
  // start_pos + t, and pair (2j, 2j+1) of every head turns by position *
  // inv_freq[j] radians. inv_freq (head_dim / 2 entries, host memory, read
  // during the call) is the model's frequency table, scaling included
  // (runtime/rope_frequencies.h); a backend copies it as it needs.
  virtual void rope(const Tensor& q, const Tensor& k, const AttentionShape& shape,
                    std::span<const double> inv_freq) = 0;
  // Writes k, v ([tokens, n_kv_heads * head_dim]) to rows start_pos.. of the
  // caches ([max_seq, n_kv_heads * head_dim]).
  virtual void store_kv(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k,
                        const Tensor& v, int64_t start_pos) = 0;
  // Causal grouped-query attention: token t attends to cache rows
  // [0, start_pos + t]. out, q: [tokens, n_heads * head_dim].
  virtual void attention(const Tensor& out, const Tensor& q, const Tensor& k_cache,
                         const Tensor& v_cache, const AttentionShape& shape) = 0;
  // out = silu(gate) * up; out may be gate.
  virtual void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) = 0;
  // x += y
  virtual void add(const Tensor& x, const Tensor& y) = 0;
  // x[t] += bias for every row t of x: bias is [x's row length] (attention
  // biases, Qwen2).
  virtual void add_bias(const Tensor& x, const Tensor& bias) = 0;
  // ---- a layer's fused units: a backend may run each as one kernel (cuda,
  // one token); the defaults compose the kernels above ----
  // out_i = rmsnorm(x; norm_w, eps) @ w_i^T for every target. `normed`
  // (x's shape) is scratch: what it holds afterwards is unspecified.
  virtual void norm_matmul(const Tensor& normed, const Tensor& x, const Tensor& norm_w, float eps,
                           std::span<const MatmulTarget> targets);
  // out = silu(n @ w_gate^T) * (n @ w_up^T), n = rmsnorm(x; norm_w, eps).
  // `up` (out's shape) and `normed` (x's shape) are scratch.
  virtual void norm_matmul_swiglu(const Tensor& out, const Tensor& up, const Tensor& normed, const Tensor& x,
                                  const Tensor& norm_w, float eps, const Tensor& w_gate, const Tensor& w_up);
  // rope(q, k) then store_kv(k, v) at shape.start_pos.
  virtual void rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& k_cache,
                             const Tensor& v_cache, const AttentionShape& shape, std::span<const double> inv_freq);
  // x += a @ w^T (a residual connection). `scratch` (x's shape) is scratch.
  virtual void matmul_add(const Tensor& x, const Tensor& a, const Tensor& w, const Tensor& scratch);

  // ---- a batched step over a paged KV cache (PagedAttention above). A
  // backend without them says so with supports_paged_kv(); LlamaModel then
  // refuses a paged pool at create, so calling them is a programmer bug. ----
  virtual bool supports_paged_kv() const { return false; }
  // The element types a paged pool may hold (LlamaModelOptions::kv_dtype);
  // every backend with paged kernels reads f32 pools.
  virtual bool supports_kv_dtype(DType dtype) const { return dtype == DType::kF32; }
  // Host -> backend memory, ordered with the kernels (the host buffer may be
  // reused once it returns).
  virtual Status copy_from_host(const Tensor& dst, const void* src, size_t bytes);
  // rope() with token t at positions[t] (i32 [tokens] in backend memory).
  virtual void rope_at(const Tensor& q, const Tensor& k, const Tensor& positions, const AttentionShape& shape,
                       std::span<const double> inv_freq);
  // Rows slots[t] of the pools = k[t], v[t] (slots: i32 [tokens], rows of the
  // pool), converted to the pools' dtype (f16: rounded to nearest even).
  virtual void store_kv_paged(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                              const Tensor& slots);
  // Causal grouped-query attention of every token of the step in one unit of
  // work: token t attends to positions [0, positions[t]] of its sequence,
  // read through the sequence's block table. out, q: [tokens, n_heads * head_dim].
  virtual void paged_attention(const Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                               const PagedAttention& p);

  // out[r] = the index of the largest element of logits row r (the first of
  // equals), as i32; out is [rows] in backend memory. Greedy decoding on the
  // device reads back 4 bytes instead of the vocabulary's logits.
  virtual void argmax(const Tensor& out, const Tensor& logits) = 0;

  // Fills `t` (backend memory, any weight dtype the backend computes with)
  // with offset + scale * u_i, u_i = quant::synthetic_uniform(seed, i), stored
  // in t's dtype (quantized per block as quantize_row would). Synthetic 8B
  // weights are made where they live instead of on one host thread.
  // InvalidArgument for a dtype the backend cannot store.
  virtual Status fill_synthetic(const Tensor& t, uint64_t seed, float scale, float offset) = 0;

  // One decode step of `tokens` (at most kDecodeStepMaxTokens) at positions
  // pos.., whose kernels `enqueue` issues on this backend. A backend may
  // record them on an early call for `key` and replay the record afterwards
  // (cuda: a CUDA graph, saving the launches of a decode step's ~400 small
  // kernels: ~10% of an 8B step on an H100). So, for one key, `enqueue`
  // must issue the same kernels on the same tensors every time; the token
  // ids and positions the kernels are given may then be replaced by `tokens`
  // and `pos`. The default runs `enqueue` as it is.
  static constexpr size_t kDecodeStepMaxTokens = 16;
  virtual Status decode_step(uint64_t key, std::span<const int> tokens, int64_t pos,
                             const std::function<void()>& enqueue);
  // Drops what decode_step recorded for `key` (its tensors are going away).
  virtual void forget_decode_step(uint64_t /*key*/) {}

 protected:
  friend class Buffer;
  virtual void release(void* data, size_t bytes) = 0;
  // The wait check's answer (OK when there is none).
  Status run_wait_check(bool idle) const {
    const std::shared_ptr<const WaitCheck> check = wait_check_.lock();
    return check && *check ? (*check)(idle) : Status::Ok();
  }

 private:
  std::weak_ptr<const WaitCheck> wait_check_;
};

// cpu computes with f32, f16, bf16, q8_0, q4_0 and q4_k weights
// (runtime/cpu/kernels_quant.h); cuda with f32, bf16, q8_0 and q4_0
// (runtime/cuda/cuda_backend.h).
enum class BackendKind { kCpu, kCuda };

struct BackendOptions {
  BackendKind kind = BackendKind::kCpu;
  int threads = 0;  // cpu: worker threads, 0 = one per hardware thread
  int device = 0;   // cuda: device ordinal
};

// Fails with a clear Status when the kind is unavailable: cuda in a build
// without CUDA (FailedPrecondition) or on a machine without a usable GPU
// (Unavailable).
Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options);
// "cpu" / "cuda" -> the kind; InvalidArgument otherwise.
Result<BackendKind> parse_backend_kind(std::string_view name);

}  // namespace tandem
