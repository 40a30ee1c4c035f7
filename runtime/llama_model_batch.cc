// LlamaModel's batched forward over the paged KV cache (continuous
// batching): validation, the step's row layout and metadata, micro-batches
// for pipeline stages, and the wanted sequences' logits (or greedy tokens)
// brought to the leader. The per-token layer code is forward_chunk's; only
// the attention is per-sequence (Backend's paged kernels).
#include <algorithm>
#include <cstring>

#include "runtime/llama_model.h"
#include "runtime/sampler.h"

namespace tandem {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

}  // namespace

Status LlamaModel::plan_paged(const LlamaModelOptions& o) {
  if (o.kv_blocks == 0) {
    if (!o.contiguous_kv) return InvalidArgument("a model without a contiguous KV cache needs a paged pool (kv_blocks > 0)");
    return Status::Ok();
  }
  if (o.kv_blocks < 0 || o.kv_block_size < 1)
    return InvalidArgument("paged KV: " + str(o.kv_blocks) + " blocks of " + str(o.kv_block_size) + " positions");
  // Pool rows (slots) travel as i32.
  if (o.kv_blocks > INT32_MAX / o.kv_block_size)
    return InvalidArgument("paged KV: " + str(o.kv_blocks) + " blocks of " + str(o.kv_block_size) +
                           " positions exceed 2^31 rows");
  if (!backend_.supports_paged_kv()) return Unimplemented(backend_.name() + " has no paged KV kernels");
  if (o.kv_dtype != DType::kF32 && o.kv_dtype != DType::kF16)
    return InvalidArgument("paged KV: the pool holds f32 or f16, not " + std::string(dtype_name(o.kv_dtype)));
  if (!backend_.supports_kv_dtype(o.kv_dtype))
    return Unimplemented(backend_.name() + " has no paged attention over a " + std::string(dtype_name(o.kv_dtype)) +
                         " KV cache (f32 only)");
  const LlamaConfig& c = weights_.config;
  const LlamaShard& s = weights_.shard;
  paged_ = PagedKvConfig{o.kv_block_size, o.kv_blocks};
  max_blocks_per_seq_ = kv_blocks_for(context_, o.kv_block_size);
  const int64_t kv_dim = s.n_kv_heads * c.head_dim(), pool_rows = o.kv_blocks * o.kv_block_size;
  const int64_t layers = static_cast<int64_t>(weights_.layers.size());
  const auto pool_bytes = static_cast<size_t>(pool_rows * kv_dim * dtype_block_bytes(o.kv_dtype));
  TANDEM_ASSIGN_OR_RETURN(kv_pool_, backend_.allocate(2 * static_cast<size_t>(layers) * pool_bytes));
  auto* pool = static_cast<char*>(kv_pool_.data());
  for (int64_t l = 0; l < layers; ++l) {
    k_pool_.push_back(Tensor::view(pool + (2 * l) * pool_bytes, o.kv_dtype, {pool_rows, kv_dim}));
    v_pool_.push_back(Tensor::view(pool + (2 * l + 1) * pool_bytes, o.kv_dtype, {pool_rows, kv_dim}));
  }
  // One buffer: the logits rows (f32), then the argmax ids and the metadata (i32).
  const int64_t vocab = s.vocab_end - s.vocab_begin;
  const int64_t meta = 3 * max_batch_ + max_batch_ * max_blocks_per_seq_;
  TANDEM_ASSIGN_OR_RETURN(batch_buffer_, backend_.allocate((max_batch_ * vocab + max_batch_ + meta) * 4));
  float* logits = static_cast<float*>(batch_buffer_.data());
  batch_logits_ = Tensor::view(logits, DType::kF32, {max_batch_, vocab});
  auto* ids = reinterpret_cast<int32_t*>(logits + max_batch_ * vocab);
  batch_argmax_ = Tensor::view(ids, DType::kI32, {max_batch_, 1});
  batch_meta_ = Tensor::view(ids + max_batch_, DType::kI32, {meta, 1});
  host_meta_.assign(static_cast<size_t>(meta), 0);
  batch_tokens_.resize(static_cast<size_t>(max_batch_));
  const int64_t padded = (c.vocab_size + s.tp - 1) / s.tp;
  batch_local_.resize(static_cast<size_t>(max_batch_ * std::max(vocab, padded)));
  if (s.tp > 1) batch_gathered_.resize(static_cast<size_t>(max_batch_ * padded * s.tp));
  batch_best_.resize(static_cast<size_t>(max_batch_));
  batch_best_all_.resize(static_cast<size_t>(max_batch_ * s.tp));
  block_writer_.assign(static_cast<size_t>(o.kv_blocks), -1);
  return Status::Ok();
}

Status LlamaModel::check_batch(std::span<const SequenceStep> sequences, int64_t* wanted_out) {
  int64_t scratch = 0;
  int64_t& wanted = wanted_out != nullptr ? *wanted_out : scratch;
  const int64_t vocab = weights_.config.vocab_size, bs = paged_.block_size;
  if (paged_.num_blocks == 0)
    return FailedPrecondition("forward_batch: the model was created without a paged KV pool (kv_blocks = 0)");
  if (sequences.empty()) return InvalidArgument("forward_batch: no sequences");
  int64_t total = 0;
  wanted = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const SequenceStep& seq = sequences[i];
    // Built only on a refusal: this runs for every sequence of every step.
    const auto at = [i] { return "forward_batch: sequence " + str(static_cast<int64_t>(i)); };
    const int64_t n = static_cast<int64_t>(seq.tokens.size());
    if (n == 0) return InvalidArgument(at() + " has no tokens");
    total += n;
    if (total > max_batch_)
      return InvalidArgument("forward_batch: more than max_batch=" + str(max_batch_) + " tokens in one step");
    if (seq.start_pos < 0 || seq.start_pos > context_ - n)  // not start_pos + n: it can overflow
      return OutOfRange(at() + ": " + str(n) + " positions from " + str(seq.start_pos) +
                        " exceed the context of " + str(context_));
    for (const int t : seq.tokens)
      if (t < 0 || t >= vocab)
        return InvalidArgument(at() + ": token id " + str(t) + " is outside [0, " + str(vocab) + ")");
    const int64_t need = kv_blocks_for(seq.start_pos + n, bs);
    if (static_cast<int64_t>(seq.block_table.size()) < need)
      return InvalidArgument(at() + ": a block table of " + str(static_cast<int64_t>(seq.block_table.size())) +
                             " blocks cannot hold positions up to " + str(seq.start_pos + n - 1) + " (" +
                             str(need) + " blocks of " + str(bs) + ")");
    for (int64_t j = 0; j < need; ++j)
      if (seq.block_table[j] < 0 || seq.block_table[j] >= paged_.num_blocks)
        return InvalidArgument(at() + ": block id " + str(seq.block_table[j]) + " is outside the pool's [0, " +
                               str(paged_.num_blocks) + ")");
    if (seq.want_logits) ++wanted;
  }
  // A block written by one sequence and read or written by another (or twice
  // in one table) would mix their keys: a scheduler bug, refused rather than
  // computed. block_writer_ is all -1 between calls.
  Status status;
  for (size_t i = 0; i < sequences.size() && status.ok(); ++i) {
    const SequenceStep& seq = sequences[i];
    const int64_t need = kv_blocks_for(seq.start_pos + static_cast<int64_t>(seq.tokens.size()), bs);
    for (int64_t j = seq.start_pos / bs; j < need && status.ok(); ++j) {
      int32_t& writer = block_writer_[static_cast<size_t>(seq.block_table[j])];
      if (writer != -1)
        status = InvalidArgument("forward_batch: block " + str(seq.block_table[j]) + " is written by sequence " +
                                 str(static_cast<int64_t>(i)) + " and held twice in this step");
      else writer = static_cast<int32_t>(i);
    }
  }
  for (size_t i = 0; i < sequences.size() && status.ok(); ++i) {
    const SequenceStep& seq = sequences[i];
    for (int64_t j = 0; j < seq.start_pos / paged_.block_size && status.ok(); ++j) {
      const int32_t writer = block_writer_[static_cast<size_t>(seq.block_table[j])];
      if (writer != -1)
        status = InvalidArgument("forward_batch: sequence " + str(static_cast<int64_t>(i)) + " reads block " +
                                 str(seq.block_table[j]) + ", which sequence " + str(writer) + " writes");
    }
  }
  for (const SequenceStep& seq : sequences) {
    const int64_t need = kv_blocks_for(seq.start_pos + static_cast<int64_t>(seq.tokens.size()), bs);
    for (int64_t j = 0; j < need; ++j) block_writer_[static_cast<size_t>(seq.block_table[j])] = -1;
  }
  return status;
}

Status LlamaModel::run_batch(std::span<const SequenceStep> sequences, int64_t wanted) {
  const LlamaConfig& c = weights_.config;
  const LlamaShard& s = weights_.shard;
  const int64_t bs = paged_.block_size, n_seq = static_cast<int64_t>(sequences.size());
  int32_t* pos = host_meta_.data();
  int32_t* slot = pos + max_batch_;
  int32_t* seq_of = slot + max_batch_;
  int32_t* tables = seq_of + max_batch_;
  // Row order: each sequence's tokens in position order, except that the
  // last token of every sequence that wants logits goes to the tail (in
  // sequence order), so the classifier reads one block of rows; each
  // sequence's tokens stay in position order, which micro-batches rely on.
  int64_t total = 0;
  for (const SequenceStep& seq : sequences) total += static_cast<int64_t>(seq.tokens.size());
  int64_t row = 0, tail = total - wanted, max_pos = 0;
  for (int64_t i = 0; i < n_seq; ++i) {
    const SequenceStep& seq = sequences[i];
    const int64_t n = static_cast<int64_t>(seq.tokens.size());
    for (int64_t t = 0; t < n; ++t) {
      const int64_t r = seq.want_logits && t == n - 1 ? tail++ : row++;
      const int64_t p = seq.start_pos + t;
      pos[r] = static_cast<int32_t>(p);
      seq_of[r] = static_cast<int32_t>(i);
      slot[r] = static_cast<int32_t>(seq.block_table[p / bs] * bs + p % bs);
      batch_tokens_[r] = seq.tokens[t];
    }
    max_pos = std::max(max_pos, seq.start_pos + n);
    std::copy_n(seq.block_table.begin(), kv_blocks_for(seq.start_pos + n, bs), tables + i * max_blocks_per_seq_);
  }
  TANDEM_RETURN_IF_ERROR(backend_.copy_from_host(batch_meta_, host_meta_.data(),
                                                 (3 * max_batch_ + n_seq * max_blocks_per_seq_) * sizeof(int32_t)));
  auto meta = [&](int64_t part, int64_t rows, int64_t width) {
    return Tensor::view(static_cast<int32_t*>(batch_meta_.data) + part * max_batch_, DType::kI32, {rows, width});
  };
  const Tensor positions = meta(0, total, 1), slots = meta(1, total, 1), token_seq = meta(2, total, 1);
  const Tensor block_tables = meta(3, n_seq, max_blocks_per_seq_);
  // Pipeline stages work on micro-batches: stage 1 runs part i while stage 0
  // runs part i + 1 (a part's keys are stored before a later part's tokens
  // of the same sequence attend to them).
  const int64_t parts = std::min<int64_t>(s.pp, total);
  for (int64_t part = 0; part < parts; ++part) {
    const int64_t begin = total * part / parts, count = total * (part + 1) / parts - begin;
    PagedRows rows;
    rows.first_row = begin;
    rows.slots = slots.row_slice(begin, count);
    PagedAttention& a = rows.attention;
    a.n_heads = s.n_heads;
    a.n_kv_heads = s.n_kv_heads;
    a.head_dim = c.head_dim();
    a.block_size = bs;
    a.positions = positions.row_slice(begin, count);
    a.token_seq = token_seq.row_slice(begin, count);
    a.block_tables = block_tables;
    a.max_positions = max_pos;
    a.reduced_precision = weights_.layers[0].wq.dtype != DType::kF32;
    TANDEM_RETURN_IF_ERROR(forward_chunk(std::span<const int>(batch_tokens_).subspan(begin, count), 0,
                                         /*last_chunk=*/false, &rows));
  }
  if (!s.last_stage() || wanted == 0) return Status::Ok();
  const Tensor last = x_.row_slice(total - wanted, wanted), last_normed = xb_.row_slice(total - wanted, wanted);
  const MatmulTarget classifier[] = {{batch_logits_.row_slice(0, wanted), weights_.classifier}};
  backend_.norm_matmul(last_normed, last, weights_.final_norm, c.norm_eps, classifier);
  return Status::Ok();
}

Status LlamaModel::check_logits_room(int64_t wanted, size_t floats) const {
  const int64_t vocab = weights_.config.vocab_size;
  if (static_cast<int64_t>(floats) != wanted * vocab)
    return InvalidArgument("forward_batch: logits hold " + str(static_cast<int64_t>(floats)) + " floats, " +
                           str(wanted) + " sequences want " + str(wanted * vocab));
  return Status::Ok();
}

Status LlamaModel::check_token_room(int64_t wanted, size_t ids) const {
  if (static_cast<int64_t>(ids) != wanted)
    return InvalidArgument("forward_batch_argmax: room for " + str(static_cast<int64_t>(ids)) + " tokens, " +
                           str(wanted) + " sequences want one");
  return Status::Ok();
}

Status LlamaModel::forward_batch(std::span<const SequenceStep> sequences, std::span<float> logits) {
  int64_t wanted = 0;
  TANDEM_RETURN_IF_ERROR(check_batch(sequences, &wanted));
  const int64_t vocab = weights_.config.vocab_size;
  if (leader()) TANDEM_RETURN_IF_ERROR(check_logits_room(wanted, logits.size()));
  TANDEM_RETURN_IF_ERROR(run_batch(sequences, wanted));
  if (wanted == 0) return Status::Ok();
  if (!sharded()) return backend_.copy_to_host(logits.data(), batch_logits_, wanted * vocab * sizeof(float));
  return timed([&] { return gather_batch_logits(wanted, logits); });
}

Status LlamaModel::forward_batch_argmax(std::span<const SequenceStep> sequences, std::span<int32_t> tokens) {
  int64_t wanted = 0;
  TANDEM_RETURN_IF_ERROR(check_batch(sequences, &wanted));
  if (leader()) TANDEM_RETURN_IF_ERROR(check_token_room(wanted, tokens.size()));
  TANDEM_RETURN_IF_ERROR(run_batch(sequences, wanted));
  if (wanted == 0) return Status::Ok();
  if (sharded()) return timed([&] { return gather_batch_argmax(wanted, tokens); });
  const Tensor ids = batch_argmax_.row_slice(0, wanted);
  backend_.argmax(ids, batch_logits_.row_slice(0, wanted));
  return backend_.copy_to_host(tokens.data(), ids, wanted * sizeof(int32_t));
}

// tp > 1 with pp > 1 is refused by check_shard, so a tp gather ends on the
// leader, and a pp hand-off comes from a last stage that is tp rank 0 alone.
Status LlamaModel::gather_batch_logits(int64_t wanted, std::span<float> logits) {
  const LlamaShard& s = weights_.shard;
  const int64_t vocab = weights_.config.vocab_size, local = s.vocab_end - s.vocab_begin;
  if (s.last_stage()) {
    float* mine = batch_local_.data();
    TANDEM_RETURN_IF_ERROR(backend_.copy_to_host(mine, batch_logits_, wanted * local * sizeof(float)));
    if (s.tp == 1) {
      if (leader()) std::memcpy(logits.data(), mine, wanted * vocab * sizeof(float));
    } else {
      // Each row padded to the largest shard's width (backwards: rows only
      // move up), so every rank sends one size.
      const int64_t padded = (vocab + s.tp - 1) / s.tp;
      for (int64_t r = wanted - 1; r >= 0; --r) {
        std::memmove(mine + r * padded, mine + r * local, local * sizeof(float));
        std::fill(mine + r * padded + local, mine + (r + 1) * padded, 0.0f);
      }
      float* all = batch_gathered_.data();  // [tp][wanted][padded]
      TANDEM_RETURN_IF_ERROR(comm_->all_gather_host(mine, all, wanted * padded * sizeof(float)));
      if (leader()) {
        for (int rank = 0; rank < s.tp; ++rank) {
          const auto [b, e] = even_split(vocab, s.tp, rank);
          for (int64_t r = 0; r < wanted; ++r)
            std::memcpy(logits.data() + r * vocab + b, all + (rank * wanted + r) * padded, (e - b) * sizeof(float));
        }
      }
    }
  }
  if (s.pp == 1) return Status::Ok();
  const size_t bytes = wanted * vocab * sizeof(float);
  if (leader()) return comm_->recv_from_last_stage(logits.data(), bytes);
  if (s.last_stage() && s.tp_rank == 0) return comm_->send_to_leader(batch_local_.data(), bytes);
  return Status::Ok();
}

Status LlamaModel::gather_batch_argmax(int64_t wanted, std::span<int32_t> tokens) {
  const LlamaShard& s = weights_.shard;
  const int64_t local = s.vocab_end - s.vocab_begin;
  std::vector<TokenLogit>& best = batch_best_;
  if (s.last_stage()) {
    float* mine = batch_local_.data();
    TANDEM_RETURN_IF_ERROR(backend_.copy_to_host(mine, batch_logits_, wanted * local * sizeof(float)));
    for (int64_t r = 0; r < wanted; ++r) {
      // The first of equal largest logits, a NaN never winning: the sampler's rule.
      const int64_t i = Sampler::argmax(mine + r * local, static_cast<int>(local));
      best[r] = TokenLogit{mine[r * local + i], static_cast<int32_t>(s.vocab_begin + i)};
    }
    if (s.tp > 1) {
      // Each shard's best of each row; the best of those is the row's (ties:
      // the lower id, i.e. the first, as better_candidate orders them).
      TANDEM_RETURN_IF_ERROR(
          comm_->all_gather_host(best.data(), batch_best_all_.data(), wanted * sizeof(TokenLogit)));
      for (int64_t r = 0; r < wanted; ++r) {
        best[r] = batch_best_all_[r];
        for (int rank = 1; rank < s.tp; ++rank) {
          const TokenLogit& other = batch_best_all_[rank * wanted + r];
          // A NaN row on one shard loses to any number on another.
          if (better_candidate(other, best[r]) || (best[r].logit != best[r].logit && other.logit == other.logit))
            best[r] = other;
        }
      }
    }
  }
  if (s.pp > 1) {
    const size_t bytes = wanted * sizeof(TokenLogit);
    if (leader()) {
      TANDEM_RETURN_IF_ERROR(comm_->recv_from_last_stage(best.data(), bytes));
    } else if (s.last_stage() && s.tp_rank == 0) {
      return comm_->send_to_leader(best.data(), bytes);
    }
  }
  if (leader())
    for (int64_t r = 0; r < wanted; ++r) tokens[r] = best[r].id;
  return Status::Ok();
}

}  // namespace tandem
