// One scheduling step: cancellations, the running batch (decode tokens and
// prefill chunks, preempting when the pool runs dry), admissions, the batched
// forward, sampling and streaming.
#include <algorithm>
#include <span>
#include <string>
#include <utility>

#include "runtime/serving/scheduler.h"
#include "runtime/serving/sequence.h"

namespace tandem::serving {

void Scheduler::apply_cancellations() {
  for (const RequestId id : cancels_taken_) {
    auto match = [id](const std::unique_ptr<Sequence>& s) { return s->id == id; };
    if (auto it = std::find_if(running_.begin(), running_.end(), match); it != running_.end()) {
      (*it)->client_gone = true;
    } else if (auto w = std::find_if(waiting_.begin(), waiting_.end(), match); w != waiting_.end()) {
      (*w)->client_gone = true;
    }
  }
  cancels_taken_.clear();
  // The cancelled give their blocks back before anything is scheduled.
  retire_finished();
}

// The newest running sequence gives up its blocks and waits again at the
// front of the queue, ahead of everything never admitted. Its tokens stay:
// readmitted, it recomputes their keys and values and samples on.
void Scheduler::preempt_last() {
  std::unique_ptr<Sequence> seq = std::move(running_.back());
  running_.pop_back();
  allocator_.release(seq->blocks);
  seq->computed = 0;
  ++preemptions_;
  waiting_.push_front(std::move(seq));
}

Scheduler::Budget Scheduler::step_budget() const {
  const int64_t all = limits_.max_tokens_per_step;
  int64_t decoding = 0;
  for (const auto& seq : running_) decoding += seq->decoding() ? 1 : 0;
  if (decoding == 0) return {all, all};  // nothing to stall: a prompt may take the whole step
  // The decode rows' room is kept for them wherever they stand in the
  // running order (a recomputing sequence may be older than a decoding one).
  return {all, std::clamp<int64_t>(all - decoding, 0, limits_.max_prefill_tokens)};
}

void Scheduler::schedule_running(std::vector<Scheduled>& batch, Budget& budget) {
  // Oldest first, so preemption takes the newest. A decoding sequence takes
  // one token from what step_budget() kept for the decodes; one still
  // prefilling (usually the newest) takes the next chunk the prefill budget
  // allows, or waits for a later step.
  size_t i = 0;
  while (i < running_.size() && budget.tokens > 0) {
    Sequence& seq = *running_[i];
    const bool decode = seq.decoding();
    const int64_t left = static_cast<int64_t>(seq.tokens.size()) - seq.computed;
    const int64_t n = decode ? 1 : std::min({left, budget.tokens, budget.prefill});
    if (n == 0) {  // a prompt chunk waiting for a step with prefill budget left
      ++i;
      continue;
    }
    const int64_t need = std::max<int64_t>(
        0, kv_blocks_for(seq.computed + n, kv_.block_size) - static_cast<int64_t>(seq.blocks.size()));
    while (need > allocator_.free_blocks() && running_.size() > i + 1) preempt_last();
    if (need > allocator_.free_blocks()) {
      if (i == 0) {
        // Alone in the pool and still short: the whole pool cannot hold it.
        // It ends now, so its blocks serve the sequences after it.
        seq.finish_reason = FinishReason::kLength;
        finish(seq, FinishReason::kLength);
        ++i;
        continue;
      }
      preempt_last();  // this sequence itself, the newest left
      continue;
    }
    if (!allocator_.allocate(need, seq.blocks).ok()) std::abort();  // checked just above
    batch.push_back({&seq, n});
    budget.tokens -= n;
    if (!decode) budget.prefill -= n;
    ++i;
  }
}

void Scheduler::admit_waiting(std::vector<Scheduled>& batch, Budget& budget) {
  while (!waiting_.empty() && std::min(budget.tokens, budget.prefill) > 0 &&
         static_cast<int64_t>(running_.size()) < limits_.max_running) {
    Sequence& seq = *waiting_.front();
    const int64_t need = kv_blocks_for(static_cast<int64_t>(seq.tokens.size()), kv_.block_size);
    if (need > allocator_.total_blocks()) {
      // A preempted sequence grown past the pool: it could never come back.
      finish(seq, FinishReason::kLength);
      waiting_.pop_front();
      continue;
    }
    // Headroom: a block per running sequence, so the batch can grow a while
    // before anything must be preempted.
    if (allocator_.free_blocks() - need < static_cast<int64_t>(running_.size())) break;
    if (!allocator_.allocate(need, seq.blocks).ok()) std::abort();  // checked just above
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    if (!seq.started) {
      seq.started = true;
      ServingEvent started;
      started.kind = ServingEvent::Kind::kStarted;
      emit(seq, started);
    }
    // Never decoding yet: its whole uncomputed part is prompt (or recomputation).
    const int64_t n = std::min({static_cast<int64_t>(seq.tokens.size()), budget.tokens, budget.prefill});
    batch.push_back({&seq, n});
    budget.tokens -= n;
    budget.prefill -= n;
  }
}

void Scheduler::accept_token(Sequence& seq, int token) {
  if (seq.stop_at_eos && (token == tokenizer_.bos_id() || tokenizer_.is_end_of_generation(token))) {
    seq.finish_reason = FinishReason::kStop;
    seq.at_eos = true;
    return;
  }
  const int prev = seq.tokens.back();
  seq.tokens.push_back(token);
  ++generated_tokens_;
  const Clock::time_point now = Clock::now();
  if (seq.generated() == 1) seq.first_token = now;
  seq.last_token = now;
  ServingEvent piece;
  piece.kind = ServingEvent::Kind::kPiece;
  piece.token = token;
  piece.text = seq.filter.push(tokenizer_.decode_piece(prev, token));
  emit(seq, piece);
  if (seq.filter.stopped()) {
    seq.finish_reason = FinishReason::kStop;
  } else if (seq.generated() >= seq.max_tokens || static_cast<int64_t>(seq.tokens.size()) >= limits_.context) {
    seq.finish_reason = FinishReason::kLength;
  }
}

void Scheduler::retire_finished() {
  auto done = [](const std::unique_ptr<Sequence>& s) { return s->client_gone || s->finish_reason.has_value(); };
  auto retire = [&](auto& list) {
    for (auto& seq : list) {
      if (!done(seq)) continue;
      finish(*seq, seq->client_gone ? FinishReason::kCancelled : *seq->finish_reason);
    }
    std::erase_if(list, done);
  };
  retire(running_);
  retire(waiting_);
}

Status Scheduler::forward_and_sample(std::span<const Scheduled> batch, int64_t rows) {
  next_tokens_.resize(static_cast<size_t>(rows));
  // A sequence that ended (cancelled, or its client gone) still has its row,
  // but nothing reads its token: it does not decide the path.
  bool greedy = static_cast<bool>(argmax_);
  for (size_t b = 0; b < batch.size() && greedy; ++b) {
    const Sequence& seq = *batch[b].seq;
    if (steps_[b].want_logits && !seq.client_gone && !seq.finish_reason && !seq.sampler.greedy()) greedy = false;
  }
  if (greedy) {
    TANDEM_RETURN_IF_ERROR(argmax_(steps_, next_tokens_));
    ++argmax_steps_;
    for (const int32_t token : next_tokens_)
      if (token < 0 || token >= vocab_size_)
        return DataLoss("the model's greedy token " + std::to_string(token) + " is outside the vocabulary");
    return Status::Ok();
  }
  logits_.resize(static_cast<size_t>(rows) * static_cast<size_t>(vocab_size_));
  TANDEM_RETURN_IF_ERROR(forward_(steps_, logits_));
  int64_t row = 0;
  for (size_t b = 0; b < batch.size(); ++b) {
    if (!steps_[b].want_logits) continue;
    Sequence& seq = *batch[b].seq;
    const float* logits = logits_.data() + static_cast<size_t>(row) * static_cast<size_t>(vocab_size_);
    // An ended sequence's sampler is not advanced: its token is never read.
    next_tokens_[static_cast<size_t>(row++)] = seq.client_gone || seq.finish_reason ? -1 : seq.sampler.sample(logits);
  }
  return Status::Ok();
}

Status Scheduler::step() {
  const Clock::time_point start = Clock::now();
  take_incoming();
  apply_cancellations();

  std::vector<Scheduled> batch;
  Budget budget = step_budget();
  schedule_running(batch, budget);
  admit_waiting(batch, budget);
  if (batch.empty()) {
    retire_finished();
    publish_metrics();
    return Status::Ok();
  }

  steps_.clear();
  int64_t rows = 0;
  for (const Scheduled& s : batch) {
    Sequence& seq = *s.seq;
    SequenceStep st;
    st.tokens = std::span<const int>(seq.tokens).subspan(static_cast<size_t>(seq.computed),
                                                         static_cast<size_t>(s.tokens));
    st.start_pos = seq.computed;
    st.block_table = seq.blocks;
    // Only a chunk that reaches the last known token yields a next token.
    st.want_logits = seq.computed + s.tokens == static_cast<int64_t>(seq.tokens.size());
    rows += st.want_logits ? 1 : 0;
    steps_.push_back(st);
  }
  const Status status = forward_and_sample(batch, rows);
  if (!status.ok()) {
    const Status why = status.with_context("batched forward");
    shutdown(why);
    return why;
  }
  ++steps_run_;

  int64_t row = 0;
  for (size_t b = 0; b < batch.size(); ++b) {
    Sequence& seq = *batch[b].seq;
    (seq.decoding() ? decode_tokens_ : prefill_tokens_) += batch[b].tokens;
    seq.computed += batch[b].tokens;
    if (!steps_[b].want_logits) continue;
    const int token = next_tokens_[static_cast<size_t>(row++)];
    if (seq.client_gone || seq.finish_reason) continue;
    accept_token(seq, token);
  }
  retire_finished();
  step_seconds_.observe(std::chrono::duration<double>(Clock::now() - start).count());
  publish_metrics();
  return Status::Ok();
}

}  // namespace tandem::serving
