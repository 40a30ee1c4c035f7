#include "runtime/serving/http_metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

namespace tandem::serving {
namespace {

// Time to first token spans a queue wait and a prompt's forward: 5 ms to
// 2 minutes. Per output token: a decode step, 1 ms to 5 s.
std::vector<double> ttft_bounds() {
  return {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 120};
}
std::vector<double> tpot_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5};
}

void header(const std::string& name, const char* type, const std::string& help, std::string& out) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(const std::string& name, double value, std::string& out) {
  out += name + " " + prometheus_number(value) + "\n";
}

}  // namespace

std::string prometheus_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[40];
  const auto r = std::to_chars(text, text + sizeof text, value);
  return std::string(text, r.ptr);
}

void render_histogram(const std::string& name, const std::string& help, const HistogramCounts& h, std::string& out) {
  header(name, "histogram", help, out);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le = i < h.bounds.size() ? prometheus_number(h.bounds[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  sample(name + "_sum", h.sum, out);
  out += name + "_count " + std::to_string(h.count) + "\n";
}

Histogram::Histogram(std::vector<double> bounds) : counts_(std::move(bounds)) {}

void Histogram::observe(double value) {
  std::lock_guard lock(mu_);
  counts_.observe(value);
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard lock(mu_);
  render_histogram(name, help, counts_, out);
}

HttpMetrics::HttpMetrics() : ttft_(ttft_bounds()), tpot_(tpot_bounds()) {}

void HttpMetrics::count_request(int http_status) {
  std::lock_guard lock(mu_);
  ++requests_[http_status];
}

void HttpMetrics::add_tokens(int64_t prompt_tokens, int64_t generated_tokens) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += static_cast<uint64_t>(std::max<int64_t>(prompt_tokens, 0));
  generated_tokens_ += static_cast<uint64_t>(std::max<int64_t>(generated_tokens, 0));
}

std::string HttpMetrics::render(const EngineMetrics& engine) const {
  std::string out;
  {
    std::lock_guard lock(mu_);
    header("tandem_requests_total", "counter", "HTTP requests answered, by status code.", out);
    for (const auto& [status, n] : requests_) {
      out += "tandem_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
    header("tandem_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", out);
    out += "tandem_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
    header("tandem_generation_tokens_total", "counter", "Tokens generated.", out);
    out += "tandem_generation_tokens_total " + std::to_string(generated_tokens_) + "\n";
  }
  ttft_.render("tandem_time_to_first_token_seconds", "Seconds from a request's submission to its first token.",
               out);
  tpot_.render("tandem_time_per_output_token_seconds",
               "Seconds per generated token after the first, one observation per request.", out);
  const std::pair<const char*, std::pair<const char*, int64_t>> gauges[] = {
      {"tandem_queue_depth", {"Requests submitted and waiting to be admitted.", engine.queued}},
      {"tandem_running_sequences", {"Sequences in the running batch.", engine.running}},
      {"tandem_kv_cache_blocks_used", {"KV cache blocks in use.", engine.kv_blocks_used}},
      {"tandem_kv_cache_blocks_free",
       {"KV cache blocks free.", std::max<int64_t>(engine.kv_blocks_total - engine.kv_blocks_used, 0)}},
  };
  for (const auto& [name, help_value] : gauges) {
    header(name, "gauge", help_value.first, out);
    out += std::string(name) + " " + std::to_string(help_value.second) + "\n";
  }
  const std::pair<const char*, std::pair<const char*, int64_t>> counters[] = {
      {"tandem_engine_steps_total", {"Engine steps that ran a batched forward.", engine.steps}},
      {"tandem_engine_decode_tokens_total",
       {"Rows of those forwards that decoded a running sequence's next token.", engine.decode_tokens}},
      {"tandem_engine_prefill_tokens_total",
       {"Rows of those forwards that were prompt chunks or a preempted sequence's recomputation.",
        engine.prefill_tokens}},
      {"tandem_engine_argmax_steps_total",
       {"Steps whose sequences all decoded greedily, so the model returned tokens instead of logits.",
        engine.argmax_steps}},
  };
  for (const auto& [name, help_value] : counters) {
    header(name, "counter", help_value.first, out);
    out += std::string(name) + " " + std::to_string(help_value.second) + "\n";
  }
  render_histogram("tandem_engine_step_seconds",
                   "Seconds per engine step that ran a forward: scheduling, the batched forward and sampling.",
                   engine.step_seconds, out);
  return out;
}

}  // namespace tandem::serving
