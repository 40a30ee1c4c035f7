// Internal to the config library: the schema, once. Each struct lists its
// keys in YAML order through visit_fields, and each enum its names, so the
// decoder, the override paths, the unknown-key suggestions and to_yaml can
// never disagree about what a key is called.
#pragma once

#include <array>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "launcher/config.h"

namespace tandem::launcher::detail {

// Names indexed by the enum's value (the enums are 0..n-1).
inline std::span<const std::string_view> enum_names(JobKind) {
  static constexpr std::array<std::string_view, 4> k = {"generate", "serve", "train", "bench"};
  return k;
}
inline std::span<const std::string_view> enum_names(ModelFormat) {
  static constexpr std::array<std::string_view, 4> k = {"llama2c", "gguf", "safetensors", "auto"};
  return k;
}
inline std::span<const std::string_view> enum_names(DType) {
  static constexpr std::array<std::string_view, 7> k = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "auto"};
  return k;
}
inline std::span<const std::string_view> enum_names(ComputeBackend) {
  static constexpr std::array<std::string_view, 2> k = {"cpu", "cuda"};
  return k;
}
inline std::span<const std::string_view> enum_names(Overlap) {
  static constexpr std::array<std::string_view, 3> k = {"auto", "on", "off"};
  return k;
}
inline std::span<const std::string_view> enum_names(KvDType) {
  static constexpr std::array<std::string_view, 2> k = {"f32", "f16"};
  return k;
}
inline std::span<const std::string_view> enum_names(CommBackend) {
  static constexpr std::array<std::string_view, 2> k = {"ucx", "nccl"};
  return k;
}

// visit(name, member) for every key of a section, in the order to_yaml writes.
template <class V> void visit_fields(V& v, SshConfig& s) {
  v("user", s.user);
  v("port", s.port);
  v("identity_file", s.identity_file);
  v("options", s.options);
}
template <class V> void visit_fields(V& v, NodeConfig& s) {
  v("host", s.host);
  v("ssh", s.ssh);
  v("data_address", s.data_address);
  v("data_interface", s.data_interface);
  v("tandem", s.tandem);
  v("workdir", s.workdir);
  v("cpu_affinity", s.cpu_affinity);
}
template <class V> void visit_fields(V& v, ClusterConfig& s) { v("nodes", s.nodes); }
template <class V> void visit_fields(V& v, ModelConfig& s) {
  v("path", s.path);
  v("format", s.format);
  v("dtype", s.dtype);
  v("context", s.context);
}
template <class V> void visit_fields(V& v, ParallelConfig& s) {
  v("tp", s.tp);
  v("pp", s.pp);
  v("dp", s.dp);
}
template <class V> void visit_fields(V& v, BackendConfig& s) {
  v("compute", s.compute);
  v("comm", s.comm);
  v("threads", s.threads);
}
template <class V> void visit_fields(V& v, TlsConfig& s) {
  v("cert", s.cert);
  v("key", s.key);
  v("client_ca", s.client_ca);
}
template <class V> void visit_fields(V& v, ControlConfig& s) {
  v("address", s.address);
  v("port", s.port);
  v("tls", s.tls);
  v("write_timeout_s", s.write_timeout_s);
}
template <class V> void visit_fields(V& v, HttpConfig& s) {
  v("enabled", s.enabled);
  v("address", s.address);
  v("port", s.port);
  v("api_keys", s.api_keys);
  v("model_name", s.model_name);
  v("chat_template", s.chat_template);
  v("max_request_bytes", s.max_request_bytes);
  v("default_max_tokens", s.default_max_tokens);
  v("max_tokens", s.max_tokens);
  v("max_queued", s.max_queued);
  v("read_timeout_s", s.read_timeout_s);
  v("idle_timeout_s", s.idle_timeout_s);
  v("write_timeout_s", s.write_timeout_s);
  v("threads", s.threads);
}
template <class V> void visit_fields(V& v, GenerateConfig& s) {
  v("prompt", s.prompt);
  v("steps", s.steps);
  v("temperature", s.temperature);
  v("top_p", s.top_p);
  v("top_k", s.top_k);
  v("seed", s.seed);
  v("dump_logits", s.dump_logits);
}
template <class V> void visit_fields(V& v, EngineConfig& s) {
  v("kv_block_size", s.kv_block_size);
  v("kv_blocks", s.kv_blocks);
  v("kv_dtype", s.kv_dtype);
  v("max_running", s.max_running);
  v("max_batch_tokens", s.max_batch_tokens);
  v("max_prefill_tokens", s.max_prefill_tokens);
  v("max_queued", s.max_queued);
}
template <class V> void visit_fields(V& v, TrainConfig& s) {
  v("data", s.data);
  v("tokenizer", s.tokenizer);
  v("out_dir", s.out_dir);
  v("resume", s.resume);
  v("seed", s.seed);
  v("dim", s.dim);
  v("layers", s.layers);
  v("heads", s.heads);
  v("kv_heads", s.kv_heads);
  v("hidden_dim", s.hidden_dim);
  v("block_size", s.block_size);
  v("batch_size", s.batch_size);
  v("micro_batch", s.micro_batch);
  v("iters", s.iters);
  v("lr", s.lr);
  v("min_lr", s.min_lr);
  v("warmup_iters", s.warmup_iters);
  v("lr_decay_iters", s.lr_decay_iters);
  v("beta1", s.beta1);
  v("beta2", s.beta2);
  v("weight_decay", s.weight_decay);
  v("grad_clip", s.grad_clip);
  v("log_interval", s.log_interval);
  v("eval_interval", s.eval_interval);
  v("eval_batches", s.eval_batches);
  v("checkpoint_interval", s.checkpoint_interval);
  v("hash_check_interval", s.hash_check_interval);
  v("bucket_mb", s.bucket_mb);
  v("overlap", s.overlap);
}
template <class V> void visit_fields(V& v, LaunchConfig& s) {
  v("heartbeat_interval_s", s.heartbeat_interval_s);
  v("heartbeat_timeout_s", s.heartbeat_timeout_s);
  v("startup_timeout_s", s.startup_timeout_s);
  v("step_timeout_s", s.step_timeout_s);
  v("stop_grace_s", s.stop_grace_s);
  v("preflight_timeout_s", s.preflight_timeout_s);
}
template <class V> void visit_fields(V& v, RunConfig& s) {
  v("cluster", s.cluster);
  v("job", s.job);
  v("model", s.model);
  v("parallel", s.parallel);
  v("backend", s.backend);
  v("control", s.control);
  v("http", s.http);
  v("env", s.env);
  v("run_dir", s.run_dir);
  v("generate", s.generate);
  v("engine", s.engine);
  v("train", s.train);
  v("launch", s.launch);
}

template <class T> struct IsVector : std::false_type {};
template <class T> struct IsVector<std::vector<T>> : std::true_type {};
using StringMap = std::map<std::string, std::string>;

// Calls fn(member) for the key named `name`; false if the section has none.
template <class S, class Fn> bool with_field(S& section, std::string_view name, Fn&& fn) {
  bool found = false;
  auto visit = [&](std::string_view key, auto& member) {
    if (!found && key == name) {
      found = true;
      fn(member);
    }
  };
  visit_fields(visit, section);
  return found;
}

template <class S> std::vector<std::string_view> field_names(S& section) {
  std::vector<std::string_view> names;
  auto visit = [&](std::string_view key, auto&) { names.push_back(key); };
  visit_fields(visit, section);
  return names;
}

}  // namespace tandem::launcher::detail
