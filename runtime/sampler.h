// Chooses the next token from a row of logits: greedy (temperature 0), or
// sampling at a temperature restricted to the top-k tokens and/or the smallest
// set whose probability reaches top-p. Seeded: the same seed and logits give
// the same tokens on every machine (the generator is specified, not std::).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/status.h"

namespace tandem {

struct SamplerConfig {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;        // in (0, 1]; 1: off
  int top_k = 0;             // 0: off
  uint64_t seed = 0;
};

// Rejects negative or non-finite temperature, top_p outside (0, 1], top_k < 0.
Status validate(const SamplerConfig& config);

// The config a request's flags or fields make; a seed of -1 (unset) is drawn
// from the clock, and the caller reports it so the run can be repeated.
SamplerConfig make_sampler_config(float temperature, float top_p, int top_k, int64_t seed);

// A token and its logit: what a vocab-parallel model returns instead of the
// whole vocabulary when the sampler needs only the best candidates.
struct TokenLogit {
  float logit;
  int32_t id;
};

// The order every top-k choice uses, shard-local or global: larger logit
// first, ties to the smaller id; a NaN counts as the lowest finite value and an
// infinity as the largest finite one, so the order is total and a candidate
// list merged from shards equals the list taken over the whole vocabulary.
float canonical_logit(float logit);
inline bool better_candidate(const TokenLogit& a, const TokenLogit& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// The k best of logits[0, n) by better_candidate(), best first, their ids
// offset by first_id and their logits canonical: a vocab-parallel shard's
// candidates (or the whole vocabulary's). `out` is reused, not reallocated
// once it has grown.
void best_candidates(const float* logits, int64_t n, int64_t first_id, size_t k, std::vector<TokenLogit>& out);

class Sampler {
 public:
  // `config` must pass validate().
  Sampler(int vocab_size, SamplerConfig config);

  // Picks a token from logits[0, vocab_size). Modifies nothing it is given.
  int sample(const float* logits);
  // Temperature 0 or top_k 1: sample() is argmax() and draws no random
  // number, so a caller may take the argmax elsewhere (on the model's side)
  // and skip sample() without changing this sampler's later choices.
  bool greedy() const { return config_.temperature == 0.0f || config_.top_k == 1; }
  // The same choice from the vocabulary's best min(top_k, vocab) candidates
  // (in any order, canonical logits), as a vocab-parallel model returns them:
  // for a config with 0 < top_k < vocab_size the result equals sample() of
  // the full logits. Temperature 0 or top_k 1 pick the best candidate.
  int sample(std::span<const TokenLogit> candidates);

  // The index of the largest logit (the first one on ties; a NaN never wins
  // unless every logit is NaN).
  static int argmax(const float* logits, int n);

 private:
  float next_uniform();  // in [0, 1)
  // Samples from candidates_ (sorted most probable first when `sorted`).
  int choose(bool sorted);

  // A token with its logit, later its unnormalised probability. Sorting the
  // pairs themselves (not indices into a probability array) keeps the
  // comparisons cache-friendly at a 128k vocabulary.
  struct Candidate {
    float p;
    int id;
  };

  int vocab_size_;
  SamplerConfig config_;
  uint64_t rng_state_;
  std::vector<Candidate> candidates_;  // scratch for one sample()
};

}  // namespace tandem
