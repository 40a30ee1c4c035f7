#include "tests/unit/scheduler_test_util.h"

#include "tests/unit/test_paths.h"

namespace tandem::serving::testing {
namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool is_final(const ServingEvent& e) {
  return e.kind == ServingEvent::Kind::kFinished || e.kind == ServingEvent::Kind::kError;
}

}  // namespace

void fake_logits(std::span<const int> history, int vocab, int eos_id, int64_t eos_at_length, float* out) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the history
  for (const int t : history) h = (h ^ static_cast<uint64_t>(t)) * 0x100000001b3ull;
  for (int t = 0; t < vocab; ++t) out[t] = static_cast<float>(mix(h ^ (static_cast<uint64_t>(t) << 32)) % 1000) / 250.0f;
  out[3 + mix(h) % static_cast<uint64_t>(vocab - 3)] += 6.0f;
  if (static_cast<int64_t>(history.size()) == eos_at_length) out[eos_id] += 100.0f;
}

Status FakeForward::run(std::span<const SequenceStep> seqs, std::span<float> logits) {
  if (fail_at_call == calls++) return Internal("injected forward failure");
  int64_t tokens = 0, rows = 0;
  std::set<int32_t> seen;
  chunks.emplace_back();
  for (const SequenceStep& s : seqs) {
    tokens += static_cast<int64_t>(s.tokens.size());
    chunks.back().push_back(static_cast<int64_t>(s.tokens.size()));
    rows += s.want_logits ? 1 : 0;
    if (!s.want_logits) ++partial_chunks;
    for (const int32_t b : s.block_table) {
      if (!seen.insert(b).second) errors.push_back("block " + std::to_string(b) + " in two tables");
      if (b < 0 || b >= kv_.num_blocks) errors.push_back("block " + std::to_string(b) + " outside the pool");
    }
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    if (s.tokens.empty() || kv_blocks_for(end, kv_.block_size) > static_cast<int64_t>(s.block_table.size())) {
      errors.push_back("block table too short or no tokens");
      return Internal("bad sequence step");
    }
  }
  max_tokens_in_call = std::max(max_tokens_in_call, tokens);
  max_sequences_in_call = std::max(max_sequences_in_call, static_cast<int64_t>(seqs.size()));
  if (static_cast<int64_t>(logits.size()) != rows * vocab_) errors.push_back("logits size");
  auto slot = [&](const SequenceStep& s, int64_t pos) -> int& {
    const int64_t block = s.block_table[static_cast<size_t>(pos / kv_.block_size)];
    return cache_[static_cast<size_t>(block * kv_.block_size + pos % kv_.block_size)];
  };
  // Keys and values first (every sequence), then attention reads them back.
  for (const SequenceStep& s : seqs) {
    for (size_t i = 0; i < s.tokens.size(); ++i) slot(s, s.start_pos + static_cast<int64_t>(i)) = s.tokens[i];
  }
  int64_t row = 0;
  for (const SequenceStep& s : seqs) {
    if (!s.want_logits) continue;
    std::vector<int> history;
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    for (int64_t p = 0; p < end; ++p) {
      history.push_back(slot(s, p));
      if (history.back() < 0) errors.push_back("position " + std::to_string(p) + " read before written");
    }
    if (logits.size() >= static_cast<size_t>((row + 1) * vocab_)) {
      fake_logits(history, vocab_, eos_id_, eos_at_length, logits.data() + row * vocab_);
    }
    ++row;
  }
  return Status::Ok();
}

Status FakeForward::run_argmax(std::span<const SequenceStep> seqs, std::span<int32_t> tokens) {
  ++argmax_calls;
  size_t rows = 0;
  for (const SequenceStep& s : seqs) rows += s.want_logits ? 1 : 0;
  if (tokens.size() != rows) errors.push_back("argmax tokens size");
  std::vector<float> logits(rows * static_cast<size_t>(vocab_));
  TANDEM_RETURN_IF_ERROR(run(seqs, logits));
  for (size_t r = 0; r < rows && r < tokens.size(); ++r) {
    const float* row = logits.data() + r * static_cast<size_t>(vocab_);
    int32_t best = 0;
    for (int32_t t = 1; t < vocab_; ++t)
      if (row[t] > row[best]) best = t;
    tokens[r] = best;
  }
  return Status::Ok();
}

ReferenceOutput fake_reference(const Tokenizer& tokenizer, const ServingRequest& request, int64_t eos_at_length) {
  ReferenceOutput out;
  std::vector<int> history = request.prompt_tokens;
  std::vector<float> logits(static_cast<size_t>(tokenizer.vocab_size()));
  Sampler sampler(tokenizer.vocab_size(), request.sampler);
  while (static_cast<int64_t>(out.tokens.size()) < request.max_tokens) {
    fake_logits(history, tokenizer.vocab_size(), tokenizer.eos_id(), eos_at_length, logits.data());
    const int t = sampler.sample(logits.data());
    if (request.stop_at_eos && (t == tokenizer.bos_id() || tokenizer.is_end_of_generation(t))) {
      out.reason = FinishReason::kStop;
      break;
    }
    out.text += tokenizer.decode_piece(history.back(), t);
    out.tokens.push_back(t);
    history.push_back(t);
  }
  return out;
}

EventSink Recorder::sink() {
  return [this](const ServingEvent& e) {
    std::lock_guard lock(mu_);
    events_.push_back(e);
    if (e.kind == ServingEvent::Kind::kPiece) ++pieces_;
    cv_.notify_all();
    return cancel_after_pieces < 0 || pieces_ < cancel_after_pieces;
  };
}

std::vector<ServingEvent> Recorder::events() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::string Recorder::text() const {
  std::string text;
  for (const ServingEvent& e : events()) {
    if (e.kind == ServingEvent::Kind::kPiece) text += e.text;
  }
  return text;
}

std::vector<int> Recorder::tokens() const {
  std::vector<int> tokens;
  for (const ServingEvent& e : events()) {
    if (e.kind == ServingEvent::Kind::kPiece && e.token >= 0) tokens.push_back(e.token);
  }
  return tokens;
}

std::optional<ServingEvent> Recorder::final_event() const {
  const std::vector<ServingEvent> all = events();
  for (const ServingEvent& e : all) {
    if (is_final(e)) return e;
  }
  return std::nullopt;
}

std::string Recorder::check_sequence() const {
  const std::vector<ServingEvent> all = events();
  if (all.empty()) return "no events";
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].kind == ServingEvent::Kind::kStarted && i != 0) return "kStarted at " + std::to_string(i);
    if (is_final(all[i]) && i + 1 != all.size()) return "events after the final one";
  }
  if (!is_final(all.back())) return "no final event";
  return "";
}

bool Recorder::wait_final(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return !events_.empty() && is_final(events_.back()); });
}

bool drain(Scheduler& scheduler, int max_steps) {
  for (int i = 0; i < max_steps; ++i) {
    if (!scheduler.busy()) return true;
    if (!scheduler.step().ok()) return false;
  }
  return !scheduler.busy();
}

const Tokenizer& bundled_tokenizer_512() {
  static const Tokenizer tokenizer = [] {
    auto t = Tokenizer::load_llama2c(tandem::testing::bundled_tokenizer(), 512);
    if (!t.ok()) std::abort();
    return std::move(t).value();
  }();
  return tokenizer;
}

}  // namespace tandem::serving::testing
