// A run's configuration: one YAML file (configs/local.yaml is the embedded
// default) plus `--set key.path=value` overrides, resolved into RunConfig.
//
// Every key is optional; a missing key keeps the default below, which is what
// configs/local.yaml spells out: two local workers running the bundled model
// with tp=2 on the CPU. A section given as a mapping sets the keys it names
// and keeps the rest; a list (`cluster.nodes`) or `env` replaces the current
// one whole, and a new list entry starts from NodeConfig{}.
//
// Rejected, as InvalidArgument naming the source, line:column and key path:
// unknown keys (with a suggestion), duplicate keys, values of the wrong type,
// unknown enum names (listing the allowed ones), and impossible values
// (tp*pp must equal the number of nodes: one worker per node). No exception
// leaves these functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem::launcher {

enum class JobKind { kGenerate, kServe, kTrain, kBench };
// kAuto: what the files are (runtime/model_files.h); a named format is checked against them.
enum class ModelFormat { kLlama2c, kGguf, kSafetensors, kAuto };
// kAuto: the file's dtype where the backend computes with it (runtime/model_assembly.h).
enum class DType { kF32, kF16, kBf16, kQ8_0, kQ4_0, kQ4_K, kAuto };
enum class ComputeBackend { kCpu, kCuda };
enum class CommBackend { kUcx, kNccl };
// Whether data parallelism's gradient exchange runs beside the backward.
enum class Overlap { kAuto, kOn, kOff };
// What a serving engine's paged KV pool stores (LlamaModelOptions::kv_dtype).
enum class KvDType { kF32, kF16 };

// The names the YAML uses: "generate", "llama2c", "q8_0", "cuda", "nccl", ...
std::string_view to_string(JobKind v);
std::string_view to_string(ModelFormat v);
std::string_view to_string(DType v);
std::string_view to_string(ComputeBackend v);
std::string_view to_string(CommBackend v);
std::string_view to_string(Overlap v);
std::string_view to_string(KvDType v);

struct SshConfig {
  std::string user;           // empty: whatever the user's ssh config says
  int port = 0;               // 0: whatever the user's ssh config says (else 22)
  std::string identity_file;  // empty: ssh's own choice of key
  // Extra `-o` options, e.g. "StrictHostKeyChecking=accept-new" or
  // "UserKnownHostsFile=/path"; BatchMode=yes is always set.
  std::vector<std::string> options;
  bool operator==(const SshConfig&) const = default;
};

struct NodeConfig {
  // Where the launcher reaches the node: "localhost" / "127.0.0.1" run the
  // worker as a child process, anything else goes through ssh.
  std::string host;
  SshConfig ssh;
  // The data link (the ConnectX-7 port between two Sparks): the address peers
  // dial for collectives and the interface UCX/NCCL should use. Empty: the
  // host's address and the transports' own choice.
  std::string data_address;
  std::string data_interface;
  // The tandem binary on the node and the directory the worker starts in
  // (relative model paths resolve there). Empty: the launcher's own binary
  // path and working directory, as on a pair of identically set-up machines.
  // A leading "~/" is the home directory of the user on that node.
  std::string tandem;
  std::string workdir;
  // The CPUs the node's worker (all its threads) runs on, as taskset and
  // cpuset files write them: "0-9" keeps a DGX Spark's compute on its X925
  // cores; two workers on one host take one set each. Empty: where the OS puts them.
  std::string cpu_affinity;
  bool operator==(const NodeConfig&) const = default;
};

struct ClusterConfig {
  // Node i runs rank i. Defaults to two local workers.
  std::vector<NodeConfig> nodes = {NodeConfig{"localhost", {}, "", "", "", "", ""},
                                    NodeConfig{"localhost", {}, "", "", "", "", ""}};
  bool operator==(const ClusterConfig&) const = default;
};

struct ModelConfig {
  std::string path = "models/stories260K";  // as every node sees it
  ModelFormat format = ModelFormat::kAuto;
  DType dtype = DType::kAuto;  // the weights' type in memory
  // Positions of KV cache each worker plans (the longest prompt + generation);
  // 0: the model's trained context (or its sliding window) up to 8192
  // (default_context in runtime/llama_weights.h: 405B's own 131072 would not
  // fit two Sparks). `tandem plan` plans the same.
  int64_t context = 0;
  bool operator==(const ModelConfig&) const = default;
};

struct ParallelConfig {
  int tp = 2;  // tensor-parallel ranks
  int pp = 1;  // pipeline stages
  int dp = 1;  // data-parallel replicas (job: train)
  bool operator==(const ParallelConfig&) const = default;
};

struct BackendConfig {
  ComputeBackend compute = ComputeBackend::kCpu;
  CommBackend comm = CommBackend::kUcx;  // feeds collectives::CommConfig::backend
  int threads = 0;  // cpu: compute threads per worker; 0 = one per CPU the worker may run on
  bool operator==(const BackendConfig&) const = default;
};

struct TlsConfig {
  // All empty: plaintext. cert and key go together; client_ca also demands
  // client certificates.
  std::string cert;
  std::string key;
  std::string client_ca;
  bool operator==(const TlsConfig&) const = default;
};

struct ControlConfig {
  std::string address = "127.0.0.1";  // rank 0's control endpoint binds this
  int port = 0;                       // 0: the OS picks, the launcher reports it
  TlsConfig tls;
  double write_timeout_s = 30;        // a Generate client that takes no message this long is cancelled
  bool operator==(const ControlConfig&) const = default;
};

// Rank 0's OpenAI-compatible HTTP endpoint (runtime/serving/http_server.h,
// docs/serving.md) for `job: serve`.
struct HttpConfig {
  bool enabled = false;
  std::string address = "127.0.0.1";
  int port = 0;  // 0: the OS picks; the log and run_dir/<run>/http_endpoint say which
  // Bearer keys for /v1/*; empty: no authentication. They are part of the
  // resolved config, which the run directory keeps (config.yaml): pass them
  // with --set rather than in a shared file where that matters.
  std::vector<std::string> api_keys;
  std::string model_name;     // the id /v1/models lists; empty: model.path's last component
  std::string chat_template;  // empty: the model's own; else a family (runtime/chat_template.h: llama3, chatml, gemma, llama2, mistral, mistral-v3, zephyr)
  int64_t max_request_bytes = 1 << 20;
  int64_t default_max_tokens = 256;  // a request naming none (capped by the context)
  int64_t max_tokens = 4096;         // the most one request may ask for
  int64_t max_queued = 64;           // generation requests in flight beyond this: 429
  double read_timeout_s = 30;        // a request's headers and body
  double idle_timeout_s = 60;        // a keep-alive connection between requests
  double write_timeout_s = 30;       // each write to a client
  int threads = 1;                   // I/O threads
  bool operator==(const HttpConfig&) const = default;
};

// The request a `job: generate` run serves, as `tandem generate`'s flags.
struct GenerateConfig {
  std::string prompt;
  int64_t steps = 256;
  float temperature = 0.0f;  // 0: greedy, the bundled model's published story
  float top_p = 0.9f;
  int top_k = 0;
  int64_t seed = -1;  // -1: drawn from the clock and logged
  // Set: rank 0 saves the prompt's last logits there (generate's --dump-logits).
  std::string dump_logits;
  bool operator==(const GenerateConfig&) const = default;
};

// The serving engine of `job: serve` (runtime/serving/scheduler.h): the
// paged KV pool each rank plans and the continuous-batching limits, as
// vLLM's block_size, num_gpu_blocks, max_num_seqs and max_num_batched_tokens.
struct EngineConfig {
  int64_t kv_block_size = 16;     // positions per KV block
  int64_t kv_blocks = 0;          // blocks per rank; 0: max_running sequences of the full context
  // f16: half the pool's memory (twice the blocks in the same bytes) and half
  // the bytes attention reads, keys and values rounded to f16; cpu backend.
  KvDType kv_dtype = KvDType::kF32;
  int64_t max_running = 32;       // sequences in the running batch
  int64_t max_batch_tokens = 128; // tokens per batched forward (decode tokens + prefill chunks)
  // Prompt tokens a forward may take while other sequences decode (capped at
  // max_batch_tokens): 32 lets a typical prompt join in one step while a
  // step carrying it stays within ~3x a 16-sequence decode step, not 8x.
  int64_t max_prefill_tokens = 32;
  int64_t max_queued = 256;       // requests waiting for admission; more are refused
  bool operator==(const EngineConfig&) const = default;
};

// A `job: train` run: nanoGPT's knobs in Llama form (runtime/train/trainer.h).
// Paths are as every node sees them (relative: the worker's working directory).
struct TrainConfig {
  std::string data = "data/tinyshakespeare.txt";  // a text file
  std::string tokenizer = "char";  // "char": one token per character; else a llama2.c tokenizer.bin
  // Each rank's checkpoints (out_dir/rank-N/) and, at the end, rank 0's
  // exported model (out_dir/model/model.bin + tokenizer.bin).
  std::string out_dir = "out/train";
  bool resume = false;  // continue from out_dir's newest checkpoint (a fresh start if there is none)
  int64_t seed = 1337;
  // The model (Llama: RMSNorm, RoPE, SwiGLU, untied classifier).
  int64_t dim = 128;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t kv_heads = 4;
  int64_t hidden_dim = 352;
  int64_t block_size = 64;  // tokens per training window (and the exported context)
  // The optimisation.
  int64_t batch_size = 12;   // windows per step over all ranks
  int64_t micro_batch = 0;   // windows per forward/backward per rank; 0: batch_size / dp
  int64_t iters = 2000;
  double lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_iters = 100;
  int64_t lr_decay_iters = 0;  // 0: iters
  double beta1 = 0.9;
  double beta2 = 0.99;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0: off
  // What happens along the way.
  int64_t log_interval = 10;
  int64_t eval_interval = 250;  // 0: at the end only
  int64_t eval_batches = 20;
  int64_t checkpoint_interval = 250;  // 0: at the end only
  int64_t hash_check_interval = 100;  // ranks compare weight hashes; 0: never
  double bucket_mb = 1.0;  // data-parallel all-reduce bucket
  // All-reduce buckets on a thread of their own while the backward runs. auto:
  // only where the node has a core to spare for it (ranks on the host x
  // (compute threads + 1) <= its hardware threads); on a saturated host the
  // exchange thread slows the backward more than it hides.
  Overlap overlap = Overlap::kAuto;
  bool operator==(const TrainConfig&) const = default;
};

// How `tandem launch` supervises its workers (launcher/launch.h).
struct LaunchConfig {
  // Each worker and the launcher exchange a heartbeat every interval over the
  // worker's stdio (through ssh for remote nodes); silence for the timeout
  // ends the job (launcher side) or the worker (worker side).
  double heartbeat_interval_s = 1.0;
  double heartbeat_timeout_s = 5.0;
  double startup_timeout_s = 120.0;    // a worker's start: join, load the model, serve
  double step_timeout_s = 60.0;        // one collective step of the job (a token, a command)
  double stop_grace_s = 5.0;           // asked to stop, a worker gets this long before SIGKILL
  double preflight_timeout_s = 20.0;   // per node, all nodes checked at once
  bool operator==(const LaunchConfig&) const = default;
};

struct RunConfig {
  ClusterConfig cluster;
  JobKind job = JobKind::kGenerate;
  ModelConfig model;
  ParallelConfig parallel;
  BackendConfig backend;
  ControlConfig control;
  HttpConfig http;
  std::map<std::string, std::string> env;  // set on every worker
  std::string run_dir = "runs";  // each run writes run_dir/<run id>/ (relative: to the launcher's cwd)
  GenerateConfig generate;
  EngineConfig engine;
  TrainConfig train;
  LaunchConfig launch;
  bool operator==(const RunConfig&) const = default;
};

// The text of configs/local.yaml, compiled in; parses to RunConfig{}.
std::string_view default_config_yaml();

// Reads `path` (NotFound if it cannot be read) and resolves it as
// parse_config; an empty path resolves the embedded default.
Result<RunConfig> load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Decodes `yaml_text` over the defaults, applies `overrides` in order (each
// "key.path=value": `parallel.tp=2`, `cluster.nodes[1].host=10.0.0.2`,
// `env.NCCL_DEBUG=INFO`, `cluster.nodes=[{host: a}, {host: b}]`; the value is
// YAML; an index one past the end appends a node), then validates.
// `source_name` prefixes every message ("configs/x.yaml:12:3: ...").
Result<RunConfig> parse_config(std::string_view yaml_text, std::string_view source_name,
                               const std::vector<std::string>& overrides = {});

// The impossible-value checks parse_config runs last, for configs built in
// code (their messages name key paths but no lines).
Status validate_config(const RunConfig& config);

// The resolved config as YAML, every key present: parse_config(to_yaml(c))
// gives back c.
std::string to_yaml(const RunConfig& config);

// "20250131T120501Z-3fa9c2": UTC time, then a random suffix so two runs
// started within a second do not collide.
std::string make_run_id();

// Creates run_dir/<run_id>/ (a fresh id from make_run_id() if run_id is
// empty; an existing directory is an error, never reused) and writes the
// resolved config there as config.yaml, atomically. Returns the directory.
Result<std::string> create_run_directory(const RunConfig& config, std::string_view run_id = {});

}  // namespace tandem::launcher
