// The HTTP server's own metrics, rendered in Prometheus' text exposition
// format (version 0.0.4): a few fixed series, so a hand-written registry of
// atomics and one mutex beats a dependency.
//
//   tandem_requests_total{status="200"}         counter, per HTTP status answered
//   tandem_prompt_tokens_total                  counter, prompt tokens of finished requests
//   tandem_generation_tokens_total              counter, tokens generated
//   tandem_time_to_first_token_seconds          histogram, submit -> first token
//   tandem_time_per_output_token_seconds        histogram, per request: (last - first token) / (n - 1)
//   tandem_queue_depth, tandem_running_sequences,
//   tandem_kv_cache_blocks_used, tandem_kv_cache_blocks_free   gauges from Engine::metrics()
//   tandem_engine_steps_total, tandem_engine_decode_tokens_total,
//   tandem_engine_prefill_tokens_total,
//   tandem_engine_argmax_steps_total            counters from Engine::metrics()
//   tandem_engine_step_seconds                  histogram from Engine::metrics(), per step
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/serving/engine.h"

namespace tandem::serving {

// The series `name`_bucket{le=...} (cumulative), `name`_sum, `name`_count,
// after their # HELP / # TYPE lines.
void render_histogram(const std::string& name, const std::string& help, const HistogramCounts& h, std::string& out);

// HistogramCounts under a lock.
class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, increasing; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  mutable std::mutex mu_;
  HistogramCounts counts_;
};

class HttpMetrics {
 public:
  HttpMetrics();
  void count_request(int http_status);
  void add_tokens(int64_t prompt_tokens, int64_t generated_tokens);
  void observe_ttft(double seconds) { ttft_.observe(seconds); }
  void observe_tpot(double seconds) { tpot_.observe(seconds); }
  std::string render(const EngineMetrics& engine) const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> requests_;  // by HTTP status
  uint64_t prompt_tokens_ = 0;
  uint64_t generated_tokens_ = 0;
  Histogram ttft_;
  Histogram tpot_;
};

// A Prometheus sample value: integers without a fraction, +Inf/-Inf/NaN spelt
// as the format wants, otherwise the shortest text that reads back exactly.
std::string prometheus_number(double value);

}  // namespace tandem::serving
