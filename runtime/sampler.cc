#include "runtime/sampler.h"

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <string>

#include "runtime/hash.h"

namespace tandem {

SamplerConfig make_sampler_config(float temperature, float top_p, int top_k, int64_t seed) {
  SamplerConfig c;
  c.temperature = temperature;
  c.top_p = top_p;
  c.top_k = top_k;
  c.seed = seed >= 0 ? static_cast<uint64_t>(seed)
                     : static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return c;
}
namespace {

std::string format_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}

}  // namespace

Status validate(const SamplerConfig& config) {
  if (!std::isfinite(config.temperature) || config.temperature < 0.0f) {
    return InvalidArgument("temperature must be finite and >= 0 (0: greedy), got " +
                           format_float(config.temperature));
  }
  if (!(config.top_p > 0.0f && config.top_p <= 1.0f)) {  // also rejects NaN
    return InvalidArgument("top_p must be in (0, 1] (1: off), got " + format_float(config.top_p));
  }
  if (config.top_k < 0) {
    return InvalidArgument("top_k must be >= 0 (0: off), got " + std::to_string(config.top_k));
  }
  return Status::Ok();
}

Sampler::Sampler(int vocab_size, SamplerConfig config)
    : vocab_size_(vocab_size), config_(config), rng_state_(splitmix64(config.seed)) {
  TANDEM_CHECK(vocab_size > 0);
  TANDEM_CHECK_MSG(validate(config).ok(), validate(config).message());
  if (rng_state_ == 0) rng_state_ = 0x9E3779B97F4A7C15ULL;  // the one seed splitmix maps to 0
  candidates_.reserve(static_cast<size_t>(vocab_size));
}

// xorshift64* (Vigna), the generator llama2.c uses; the top 24 bits make an
// exact float in [0, 1).
float Sampler::next_uniform() {
  uint64_t x = rng_state_;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state_ = x;
  const uint64_t r = x * 0x2545F4914F6CDD1DULL;
  return static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
}

int Sampler::argmax(const float* logits, int n) {
  int best = 0;
  float best_v = logits[0];
  for (int i = 1; i < n; ++i) {
    const float v = logits[i];
    // (best_v != best_v) is NaN: the next real logit replaces it.
    if (v > best_v || (best_v != best_v && v == v)) {
      best = i;
      best_v = v;
    }
  }
  return best;
}

float canonical_logit(float logit) {
  return logit != logit ? -FLT_MAX : std::clamp(logit, -FLT_MAX, FLT_MAX);
}

namespace {

// Ties broken by id: a total order, so every standard library picks and
// orders the same candidates.
template <typename C>
bool more_probable(const C& a, const C& b) {
  return a.p > b.p || (a.p == b.p && a.id < b.id);
}

// One pass keeping a k-entry heap whose front is the least probable kept
// token: for real logits almost every token is one compare, far cheaper than
// nth_element over the whole vocabulary. Leaves c sorted, most probable first.
template <typename C, typename Better, typename Next>
void keep_top_k(std::vector<C>& c, size_t k, size_t n, Better better, Next next) {
  for (size_t i = 0; i < n; ++i) {
    const C x = next(i);
    if (c.size() < k) {
      c.push_back(x);
      std::push_heap(c.begin(), c.end(), better);
    } else if (better(x, c.front())) {
      std::pop_heap(c.begin(), c.end(), better);
      c.back() = x;
      std::push_heap(c.begin(), c.end(), better);
    }
  }
  std::sort_heap(c.begin(), c.end(), better);
}

}  // namespace

void best_candidates(const float* logits, int64_t n, int64_t first_id, size_t k, std::vector<TokenLogit>& out) {
  out.clear();
  keep_top_k(out, k, static_cast<size_t>(n), better_candidate, [&](size_t i) {
    return TokenLogit{canonical_logit(logits[i]), static_cast<int32_t>(first_id + static_cast<int64_t>(i))};
  });
}

int Sampler::sample(const float* logits) {
  const int n = vocab_size_;
  if (greedy()) return argmax(logits, n);

  // NaN sorts last and infinities become finite, so the order is strict weak
  // and (x - max) below is never inf - inf.
  auto candidate = [logits](size_t i) {
    return Candidate{canonical_logit(logits[i]), static_cast<int>(i)};
  };
  std::vector<Candidate>& c = candidates_;
  c.clear();
  if (config_.top_k > 0 && config_.top_k < n) {
    keep_top_k(c, static_cast<size_t>(config_.top_k), static_cast<size_t>(n), more_probable<Candidate>, candidate);
    return choose(/*sorted=*/true);
  }
  for (int i = 0; i < n; ++i) c.push_back(candidate(static_cast<size_t>(i)));
  return choose(/*sorted=*/false);
}

int Sampler::sample(std::span<const TokenLogit> candidates) {
  TANDEM_CHECK(!candidates.empty());
  std::vector<Candidate>& c = candidates_;
  c.clear();
  const size_t k = config_.temperature == 0.0f || config_.top_k <= 1
                       ? 1
                       : static_cast<size_t>(config_.top_k);
  keep_top_k(c, k, candidates.size(), more_probable<Candidate>, [&](size_t i) {
    return Candidate{canonical_logit(candidates[i].logit), candidates[i].id};
  });
  if (k == 1) return c[0].id;
  return choose(/*sorted=*/true);
}

int Sampler::choose(bool sorted) {
  std::vector<Candidate>& c = candidates_;
  float max_logit = -FLT_MAX;
  for (const Candidate& x : c) max_logit = std::max(max_logit, x.p);
  // Unnormalised softmax(logits / T): the largest is exp(0) = 1, so the total
  // is >= 1. Dividing the difference (not multiplying by 1/T) keeps a tiny T
  // from making 0 * inf.
  const float t = config_.temperature;
  double total = 0.0;
  for (Candidate& x : c) {
    x.p = std::exp((x.p - max_logit) / t);
    total += x.p;
  }

  size_t m = c.size();
  double mass = total;
  if (config_.top_p < 1.0f && m > 1) {
    size_t kept = m;
    if (!sorted) {
      // llama2.c's shortcut: tokens below (1-p)/(m-1) of the mass hold less
      // than 1-p together, so none of them is in the nucleus.
      const double cutoff = (1.0 - config_.top_p) / static_cast<double>(m - 1) * total;
      kept = 0;
      for (size_t j = 0; j < m; ++j) {
        if (c[j].p >= cutoff) c[kept++] = c[j];
      }
      if (kept == 0) {
        // Only when p < 1/m, and then the top token alone reaches p. Nothing
        // was overwritten, so c still holds every token.
        c[0] = *std::min_element(c.begin(), c.end(), more_probable<Candidate>);
        kept = 1;
      }
    }
    // The smallest prefix reaching p (every kept token if rounding falls
    // short). Unless top-k already sorted them, sort only as far as needed:
    // select the next, doubling, block of most probable tokens and sort just
    // that, as a nucleus is usually far smaller than what the cut keeps.
    const double target = static_cast<double>(config_.top_p) * total;
    double cumulative = 0.0;
    size_t last = kept - 1;
    for (size_t done = 0; done < kept;) {
      const size_t end = std::min(kept, std::max(2 * done, done + 256));
      if (!sorted) {
        const auto first = c.begin() + static_cast<std::ptrdiff_t>(done);
        const auto mid = c.begin() + static_cast<std::ptrdiff_t>(end);
        const auto stop = c.begin() + static_cast<std::ptrdiff_t>(kept);
        if (end < kept) std::nth_element(first, mid - 1, stop, more_probable<Candidate>);
        std::sort(first, mid, more_probable<Candidate>);
      }
      for (; done < end; ++done) {
        cumulative += c[done].p;
        if (cumulative >= target) break;
      }
      if (done < end) {
        last = done;
        break;
      }
    }
    m = last + 1;
    mass = cumulative;
  }

  const double r = static_cast<double>(next_uniform()) * mass;
  double cdf = 0.0;
  int last_positive = c[0].id;
  for (size_t j = 0; j < m; ++j) {
    if (c[j].p <= 0.0f) continue;  // an underflowed token is never picked
    cdf += c[j].p;
    if (r < cdf) return c[j].id;
    last_positive = c[j].id;
  }
  return last_positive;  // r rounded up to the full mass
}

}  // namespace tandem
