// Resolving a run's config: decode the file over the defaults, apply the
// overrides, then check the values that are each well-typed but impossible
// together or alone.
#include "launcher/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "launcher/config_decode.h"
#include "runtime/chat_template.h"
#include "runtime/cpu_affinity.h"

namespace tandem::launcher {

std::string_view to_string(JobKind v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }
std::string_view to_string(ModelFormat v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }
std::string_view to_string(DType v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }
std::string_view to_string(ComputeBackend v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }
std::string_view to_string(CommBackend v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }
std::string_view to_string(Overlap v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }
std::string_view to_string(KvDType v) { return detail::enum_names(v)[static_cast<size_t>(v)]; }

namespace detail {

std::string join_path(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string unknown_key_message(const std::string& path, std::string_view key,
                                const std::vector<std::string_view>& allowed) {
  std::string message = "unknown key '" + join_path(path, key) + "'";
  std::string_view best;
  size_t best_distance = 3;  // more edits than this is a different word, not a typo
  for (std::string_view name : allowed) {
    const size_t d = edit_distance(key, name);
    if (d < best_distance && d < std::max(key.size(), name.size())) {
      best = name;
      best_distance = d;
    }
  }
  if (!best.empty()) return message + " (did you mean '" + join_path(path, best) + "'?)";
  std::string list;
  for (std::string_view name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
  return message + " (allowed here: " + list + ")";
}

std::string describe_value(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  return "nothing";
}

}  // namespace detail

namespace {

using detail::Origins;

// Impossible values, each reported at the line (or --set) that chose it.
class Checker {
 public:
  Checker(const Origins& origins, std::string fallback) : origins_(origins), fallback_(std::move(fallback)) {}

  Status fail(const std::string& path, const std::string& problem) const {
    std::string where = fallback_;
    // A value set as part of a larger one (a node list from --set) is
    // reported where its enclosing value was.
    for (std::string p = path;;) {
      if (auto it = origins_.find(p); it != origins_.end()) {
        where = it->second;
        break;
      }
      const size_t cut = p.find_last_of(".[");
      if (cut == std::string::npos) break;
      p.resize(cut);
    }
    return InvalidArgument((where.empty() ? "" : where + ": ") + path + ": " + problem);
  }

 private:
  const Origins& origins_;
  std::string fallback_;
};

bool is_env_name(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::string outside(int64_t value, int64_t lo, int64_t hi) {
  return std::to_string(value) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi);
}

// Timeouts and intervals: a finite, positive number of seconds, a day at most.
Status check_seconds(const Checker& at, std::initializer_list<std::pair<const char*, double>> durations) {
  // At least a millisecond: deadlines and intervals count whole
  // milliseconds (runtime/deadline.h), and 0.0004 s would be 0 ms: every
  // exchange timed out at once, a heartbeat thread that never sleeps.
  for (const auto& [key, seconds] : durations) {
    if (!(std::isfinite(seconds) && seconds >= 0.001 && seconds <= 86400)) {
      return at.fail(key, "must be a number of seconds in [0.001, 86400]");
    }
  }
  return Status::Ok();
}

// The train section's own limits; the trainer re-checks the combinations
// (runtime/train/trainer.h) with the same words.
Status check_train(const TrainConfig& t, const ParallelConfig& p, const Checker& at) {
  if (t.data.empty()) return at.fail("train.data", "must name a text file");
  if (t.tokenizer.empty()) return at.fail("train.tokenizer", "must be \"char\" or a llama2.c tokenizer file");
  if (t.out_dir.empty()) return at.fail("train.out_dir", "must not be empty");
  if (t.seed < 0) return at.fail("train.seed", "must be >= 0");
  const std::pair<const char*, int64_t> positive[] = {
      {"train.dim", t.dim},       {"train.layers", t.layers},         {"train.heads", t.heads},
      {"train.kv_heads", t.kv_heads}, {"train.hidden_dim", t.hidden_dim}, {"train.block_size", t.block_size},
      {"train.batch_size", t.batch_size}, {"train.iters", t.iters}, {"train.log_interval", t.log_interval},
      {"train.eval_batches", t.eval_batches}};
  for (const auto& [key, value] : positive) {
    if (value < 1) return at.fail(key, "must be at least 1, got " + std::to_string(value));
  }
  const std::pair<const char*, int64_t> non_negative[] = {
      {"train.micro_batch", t.micro_batch}, {"train.warmup_iters", t.warmup_iters},
      {"train.lr_decay_iters", t.lr_decay_iters}, {"train.eval_interval", t.eval_interval},
      {"train.checkpoint_interval", t.checkpoint_interval}, {"train.hash_check_interval", t.hash_check_interval}};
  for (const auto& [key, value] : non_negative) {
    if (value < 0) return at.fail(key, "must be >= 0, got " + std::to_string(value));
  }
  if (t.dim % t.heads != 0 || (t.dim / t.heads) % 2 != 0) {
    return at.fail("train.heads", "dim " + std::to_string(t.dim) + " must split into " + std::to_string(t.heads) +
                                      " heads of an even size (RoPE rotates pairs)");
  }
  if (t.heads % t.kv_heads != 0) {
    return at.fail("train.kv_heads", std::to_string(t.kv_heads) + " KV heads do not divide " +
                                         std::to_string(t.heads) + " query heads");
  }
  const int64_t micro = t.micro_batch > 0 ? t.micro_batch : t.batch_size / p.dp;
  if (micro < 1 || t.batch_size % (p.dp * micro) != 0) {
    return at.fail("train.batch_size", std::to_string(t.batch_size) + " windows do not split into dp=" +
                                           std::to_string(p.dp) + " ranks of micro_batch " + std::to_string(micro));
  }
  if (p.tp > 1 && (t.heads % p.tp != 0 || t.kv_heads % p.tp != 0)) {
    return at.fail("parallel.tp", "tp=" + std::to_string(p.tp) + " must divide train.heads (" +
                                      std::to_string(t.heads) + ") and train.kv_heads (" + std::to_string(t.kv_heads) + ")");
  }
  if (!(t.lr > 0) || t.min_lr < 0 || t.min_lr > t.lr) {
    return at.fail("train.min_lr", "needs 0 <= min_lr <= lr and lr > 0");
  }
  const int64_t decay = t.lr_decay_iters > 0 ? t.lr_decay_iters : t.iters;
  if (t.warmup_iters > decay) return at.fail("train.warmup_iters", "must not exceed lr_decay_iters");
  if (!(t.beta1 >= 0 && t.beta1 < 1)) return at.fail("train.beta1", "must be in [0, 1)");
  if (!(t.beta2 >= 0 && t.beta2 < 1)) return at.fail("train.beta2", "must be in [0, 1)");
  if (t.weight_decay < 0) return at.fail("train.weight_decay", "must be >= 0");
  if (t.grad_clip < 0) return at.fail("train.grad_clip", "must be >= 0 (0: off)");
  if (!(t.bucket_mb >= 1.0 / 1024 && t.bucket_mb <= 1024)) {
    return at.fail("train.bucket_mb", "must be in [1/1024, 1024] (1 KiB to 1 GiB)");
  }
  return Status::Ok();
}

Status check_http(const HttpConfig& h, const Checker& at) {
  if (h.address.empty()) return at.fail("http.address", "must not be empty");
  if (h.port < 0 || h.port > 65535) return at.fail("http.port", outside(h.port, 0, 65535));
  for (size_t i = 0; i < h.api_keys.size(); ++i) {
    if (h.api_keys[i].empty()) return at.fail("http.api_keys[" + std::to_string(i) + "]", "must not be empty");
  }
  if (h.max_request_bytes < 1024 || h.max_request_bytes > (int64_t{1} << 30)) {
    return at.fail("http.max_request_bytes", outside(h.max_request_bytes, 1024, int64_t{1} << 30));
  }
  if (h.max_tokens < 1) return at.fail("http.max_tokens", "must be at least 1");
  if (h.default_max_tokens < 1 || h.default_max_tokens > h.max_tokens) {
    return at.fail("http.default_max_tokens", "must be in [1, http.max_tokens]");
  }
  if (h.max_queued < 1 || h.max_queued > 100000) return at.fail("http.max_queued", outside(h.max_queued, 1, 100000));
  if (h.threads < 1 || h.threads > 64) return at.fail("http.threads", outside(h.threads, 1, 64));
  TANDEM_RETURN_IF_ERROR(check_seconds(at, {{"http.read_timeout_s", h.read_timeout_s},
                                             {"http.idle_timeout_s", h.idle_timeout_s},
                                             {"http.write_timeout_s", h.write_timeout_s}}));
  if (!h.chat_template.empty() && !ChatTemplate::from_name(h.chat_template, "", "").ok()) {
    return at.fail("http.chat_template", "unknown family '" + h.chat_template + "' (allowed: " +
                                             chat_family_names() + "; empty: the model's own)");
  }
  return Status::Ok();
}

Status check(const RunConfig& c, const Checker& at) {
  const auto& nodes = c.cluster.nodes;
  if (nodes.empty()) return at.fail("cluster.nodes", "needs at least one node");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string node = "cluster.nodes[" + std::to_string(i) + "]";
    if (nodes[i].host.empty()) return at.fail(node + ".host", "must not be empty");
    const int port = nodes[i].ssh.port;
    if (port < 0 || port > 65535) return at.fail(node + ".ssh.port", outside(port, 0, 65535));
    if (!nodes[i].cpu_affinity.empty()) {
      // Which CPUs the node has is the worker's to check, on the node.
      if (auto cpus = parse_cpu_list(nodes[i].cpu_affinity); !cpus.ok())
        return at.fail(node + ".cpu_affinity", cpus.status().message());
    }
  }
  if (c.model.path.empty()) return at.fail("model.path", "must not be empty");
  if (c.model.context < 0 || c.model.context > (int64_t{1} << 22)) {
    return at.fail("model.context", "must be in [0, 4194304] (0: the model's own context), got " +
                                        std::to_string(c.model.context));
  }
  const ParallelConfig& p = c.parallel;
  if (p.tp < 1) return at.fail("parallel.tp", "must be at least 1, got " + std::to_string(p.tp));
  if (p.pp < 1) return at.fail("parallel.pp", "must be at least 1, got " + std::to_string(p.pp));
  if (p.dp < 1) return at.fail("parallel.dp", "must be at least 1, got " + std::to_string(p.dp));
  const int64_t ranks = static_cast<int64_t>(p.tp) * p.pp * p.dp;
  if (ranks != static_cast<int64_t>(nodes.size())) {
    const std::string product = p.dp == 1 ? "tp * pp = " : "dp * tp * pp = " + std::to_string(p.dp) + " * ";
    return at.fail("parallel.tp", product + std::to_string(p.tp) + " * " + std::to_string(p.pp) + " = " +
                                      std::to_string(ranks) + " ranks, but cluster.nodes lists " +
                                      std::to_string(nodes.size()) + " nodes (one rank per node)");
  }
  if (p.tp > 1 && p.pp > 1) {
    return at.fail("parallel.pp", "tp=" + std::to_string(p.tp) + " with pp=" + std::to_string(p.pp) +
                                      ": a job is tensor- or pipeline-parallel, not both yet (two DGX Sparks: "
                                      "tp=2 or pp=2)");
  }
  if (p.dp > 1 && c.job != JobKind::kTrain) {
    return at.fail("parallel.dp", "data parallelism (dp=" + std::to_string(p.dp) +
                                      ") is for job: train; inference shards with tp or pp");
  }
  if (c.job == JobKind::kTrain) {
    if (p.pp > 1) return at.fail("parallel.pp", "training is data- or tensor-parallel; pipeline training is not implemented");
    if (p.dp > 1 && p.tp > 1) {
      return at.fail("parallel.dp", "dp=" + std::to_string(p.dp) + " with tp=" + std::to_string(p.tp) +
                                        ": a training job is data- or tensor-parallel, not both yet");
    }
    if (c.backend.compute != ComputeBackend::kCpu) {
      return at.fail("backend.compute", "training runs on the cpu backend in this version");
    }
    TANDEM_RETURN_IF_ERROR(check_train(c.train, p, at));
  }
  if (c.backend.threads < 0 || c.backend.threads > 1024) {
    return at.fail("backend.threads", outside(c.backend.threads, 0, 1024));
  }
  if (c.backend.compute == ComputeBackend::kCuda && c.backend.comm != CommBackend::kNccl && ranks > 1) {
    return at.fail("backend.comm", "backend.compute: cuda keeps the activations in GPU memory: with more than one "
                                   "rank they move through backend.comm: nccl");
  }
  if (c.backend.comm == CommBackend::kNccl && c.backend.compute != ComputeBackend::kCuda) {
    return at.fail("backend.comm", "nccl moves GPU buffers, so it needs backend.compute: cuda");
  }
  if (c.control.address.empty()) return at.fail("control.address", "must not be empty");
  if (c.control.port < 0 || c.control.port > 65535) return at.fail("control.port", outside(c.control.port, 0, 65535));
  TANDEM_RETURN_IF_ERROR(check_seconds(at, {{"control.write_timeout_s", c.control.write_timeout_s}}));
  const TlsConfig& tls = c.control.tls;
  if (tls.cert.empty() != tls.key.empty()) {
    return at.fail(tls.cert.empty() ? "control.tls.cert" : "control.tls.key",
                   "control.tls.cert and control.tls.key go together: set both or neither");
  }
  if (!tls.client_ca.empty() && tls.cert.empty()) {
    return at.fail("control.tls.client_ca", "checking client certificates needs a server cert and key too");
  }
  TANDEM_RETURN_IF_ERROR(check_http(c.http, at));
  if (c.http.enabled && c.job != JobKind::kServe) {
    return at.fail("http.enabled", "the HTTP endpoint serves `job: serve` runs");
  }
  for (const auto& [name, value] : c.env) {
    if (!is_env_name(name)) {
      return at.fail("env." + name, "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
  }
  if (c.run_dir.empty()) return at.fail("run_dir", "must not be empty");
  const GenerateConfig& g = c.generate;
  if (g.steps < 1) return at.fail("generate.steps", "must be at least 1, got " + std::to_string(g.steps));
  if (!(std::isfinite(g.temperature) && g.temperature >= 0)) {
    return at.fail("generate.temperature", "must be finite and >= 0 (0 is greedy)");
  }
  if (!(g.top_p > 0 && g.top_p <= 1)) return at.fail("generate.top_p", "must be in (0, 1] (1 is off)");
  if (g.top_k < 0) return at.fail("generate.top_k", "must be >= 0 (0 is off), got " + std::to_string(g.top_k));
  if (g.seed < -1) return at.fail("generate.seed", "must be >= 0, or -1 for a seed from the clock");
  const EngineConfig& e = c.engine;
  if (e.kv_block_size < 1 || e.kv_block_size > 4096) {
    return at.fail("engine.kv_block_size", outside(e.kv_block_size, 1, 4096));
  }
  if (e.kv_blocks < 0 || e.kv_blocks > (int64_t{1} << 31) - 1) {
    return at.fail("engine.kv_blocks", "must be >= 0 (0: max_running sequences of the full context), got " +
                                           std::to_string(e.kv_blocks));
  }
  if (e.kv_dtype == KvDType::kF16 && c.backend.compute != ComputeBackend::kCpu) {
    const std::string backend(to_string(c.backend.compute));
    return at.fail("engine.kv_dtype",
                   "f16 needs backend.compute: cpu (the " + backend + " backend's paged attention reads f32 pools)");
  }
  if (e.max_running < 1 || e.max_running > 4096) return at.fail("engine.max_running", outside(e.max_running, 1, 4096));
  if (e.max_batch_tokens < 1 || e.max_batch_tokens > 65536) {
    return at.fail("engine.max_batch_tokens", outside(e.max_batch_tokens, 1, 65536));
  }
  // Above max_batch_tokens it is simply capped there (so lowering max_batch_tokens alone stays valid).
  if (e.max_prefill_tokens < 1 || e.max_prefill_tokens > 65536) {
    return at.fail("engine.max_prefill_tokens", outside(e.max_prefill_tokens, 1, 65536));
  }
  if (e.max_queued < 1 || e.max_queued > 1000000) return at.fail("engine.max_queued", outside(e.max_queued, 1, 1000000));
  const LaunchConfig& l = c.launch;
  TANDEM_RETURN_IF_ERROR(check_seconds(at, {{"launch.heartbeat_interval_s", l.heartbeat_interval_s},
                                             {"launch.heartbeat_timeout_s", l.heartbeat_timeout_s},
                                             {"launch.startup_timeout_s", l.startup_timeout_s},
                                             {"launch.step_timeout_s", l.step_timeout_s},
                                             {"launch.stop_grace_s", l.stop_grace_s},
                                             {"launch.preflight_timeout_s", l.preflight_timeout_s}}));
  if (l.heartbeat_timeout_s < 2 * l.heartbeat_interval_s) {
    return at.fail("launch.heartbeat_timeout_s",
                   "must be at least twice launch.heartbeat_interval_s, or one late beat ends the job");
  }
  // An idle rank 0 sends its followers a no-op every heartbeat interval, and
  // they wait for each command at most step_timeout_s.
  if (l.step_timeout_s < 2 * l.heartbeat_interval_s) {
    return at.fail("launch.step_timeout_s",
                   "must be at least twice launch.heartbeat_interval_s, or an idle job's followers time out waiting "
                   "for rank 0's keep-alive");
  }
  return Status::Ok();
}

// Where a quoted scalar starting text[0] ends (one past its closing quote;
// npos when it does not close): '' is a quote inside single quotes, a
// backslash escapes inside double ones.
size_t quoted_end(std::string_view text) {
  const char q = text[0];
  for (size_t i = 1; i < text.size(); ++i) {
    if (q == '"' && text[i] == '\\') {
      ++i;
    } else if (text[i] == q) {
      if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;
      } else {
        return i + 1;
      }
    }
  }
  return std::string_view::npos;
}

// Whether YAML took all of `text` (trimmed, not empty) as `value`: a plain
// scalar's text is exactly what was written, a quoted one ends at its
// closing quote, a flow list or map at its closing bracket.
bool yaml_took_all_of(const YAML::Node& value, std::string_view text) {
  if (text.find_first_of("\n\r") != std::string_view::npos) return false;
  if (text[0] == '"' || text[0] == '\'') return quoted_end(text) == text.size();
  if (text[0] == '[' || text[0] == '{') return text.back() == (text[0] == '[' ? ']' : '}');
  return !value.IsScalar() || value.Scalar() == text;
}

Status apply_override(RunConfig& config, const std::string& text, Origins& origins) {
  const std::string source = "--set " + text;
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return InvalidArgument(source + ": expected KEY.PATH=VALUE");
  const std::string raw = text.substr(eq + 1);
  const size_t first = raw.find_first_not_of(" \t"), last = raw.find_last_not_of(" \t");
  // An empty value would silently empty a string or a list (`--set
  // http.api_keys=$KEYS` with KEYS unset: authentication off).
  if (first == std::string::npos)
    return InvalidArgument(source + ": empty value (write [] for an empty list, '\"\"' for an empty string)");
  const std::string trimmed = raw.substr(first, last - first + 1);
  YAML::Node value;
  try {
    value = YAML::Load(raw);
  } catch (const YAML::ParserException& e) {
    return InvalidArgument(source + ": the value is not valid YAML: " + e.msg);
  }
  // Text YAML reads as null without saying null: a '#' comment, a bare tag
  // or anchor. Taken as given, it would empty the key just the same.
  static constexpr std::string_view kNulls[] = {"~", "null", "Null", "NULL"};
  if (value.IsNull() && std::find(std::begin(kNulls), std::end(kNulls), trimmed) == std::end(kNulls))
    return InvalidArgument(source + ": YAML reads the value as null (a '#' starts a comment); quote it, e.g. " +
                           text.substr(0, eq) + "='\"" + raw + "\"'");
  // Text YAML reads as less than was written: " #..." a comment, "!x " a
  // tag, "&x " an anchor, "|" or ">" a block scalar, text after a closing
  // quote or bracket, a folded line break. `prompt=Tell me about #hashtags`
  // would quietly become "Tell me about", `client_ca=|` empty.
  if (!yaml_took_all_of(value, trimmed)) {
    const std::string read = value.IsScalar() ? "as \"" + value.Scalar() + "\", not all of what was written"
                                              : "only in part";
    return InvalidArgument(source + ": YAML reads the value " + read + " (' #' starts a comment, '!' a tag, '&' an " +
                           "anchor, '|' and '>' a block, a line break folds); quote it, e.g. " + text.substr(0, eq) +
                           "='\"" + trimmed + "\"'");
  }
  detail::Decoder decoder(source, /*has_lines=*/false, origins);
  return decoder.set(config, std::string_view(text).substr(0, eq), "", value);
}

}  // namespace

Result<RunConfig> parse_config(std::string_view yaml_text, std::string_view source_name,
                               const std::vector<std::string>& overrides) {
  const std::string source = source_name.empty() ? "<config>" : std::string(source_name);
  RunConfig config;
  Origins origins;
  try {
    // One document: YAML::Load would read the first and ignore everything
    // after a '---', unknown keys and syntax errors included.
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml_text));
    if (documents.size() > 1)
      return InvalidArgument(source + ": holds " + std::to_string(documents.size()) +
                             " YAML documents (separated by '---'); a config is one");
    const YAML::Node root = documents.empty() ? YAML::Node() : documents[0];
    detail::Decoder decoder(source, /*has_lines=*/true, origins);
    TANDEM_RETURN_IF_ERROR(decoder.decode(root, root.Mark(), "", config));
    for (const std::string& text : overrides) TANDEM_RETURN_IF_ERROR(apply_override(config, text, origins));
  } catch (const YAML::ParserException& e) {
    return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                           ": invalid YAML: " + e.msg);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ": " + e.what());
  }
  TANDEM_RETURN_IF_ERROR(check(config, Checker(origins, source)));
  return config;
}

Result<RunConfig> load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return parse_config(default_config_yaml(), "<embedded configs/local.yaml>", overrides);
  std::error_code ec;
  // An ifstream opens a directory and reads it as empty: the defaults, silently.
  if (std::filesystem::is_directory(path, ec)) return InvalidArgument(path + ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Internal(path + ": read failed");
  return parse_config(text.str(), path, overrides);
}

Status validate_config(const RunConfig& config) { return check(config, Checker(Origins{}, "")); }

}  // namespace tandem::launcher
