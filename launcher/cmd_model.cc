// `tandem model synth`: a llama2.c checkpoint of any Llama shape with seeded
// random weights, for tests and benchmarks of shapes no bundled model has
// (the same seed writes the same bytes on every machine).
#include <cstdio>
#include <memory>
#include <optional>

#include "launcher/commands.h"
#include "runtime/llama2c_writer.h"
#include "runtime/synthetic.h"

namespace tandem::cli {
namespace {

struct SynthFlags {
  std::string shape;
  int64_t dim = 0, hidden_dim = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq_len = 0;
  bool untied = false;
  uint64_t seed = 1;
  std::string out;
};

int run_synth(const SynthFlags& f) {
  LlamaConfig config;
  if (!f.shape.empty()) {
    const std::optional<LlamaConfig> named = synthetic_shape(f.shape);
    if (!named) {
      return report_error(InvalidArgument("--shape " + f.shape + ": unknown (known: " +
                                          std::string(synthetic_shape_names()) + ")"));
    }
    config = *named;
  }
  // Explicit dims override the shape's (or give the whole shape without one).
  auto set = [](int64_t flag, int64_t& field) {
    if (flag > 0) field = flag;
  };
  set(f.dim, config.dim);
  set(f.hidden_dim, config.hidden_dim);
  set(f.layers, config.n_layers);
  set(f.heads, config.n_heads);
  set(f.kv_heads, config.n_kv_heads);
  set(f.vocab, config.vocab_size);
  set(f.seq_len, config.max_seq_len);
  if (f.untied) config.shared_classifier = false;
  if (Status s = validate(config, "the requested shape"); !s.ok()) return report_error(s);
  auto weights = make_synthetic_weights(config, f.seed);
  if (!weights.ok()) return report_error(weights.status());
  if (Status s = write_llama2c(*weights, f.out); !s.ok()) return report_error(s);
  std::fprintf(stderr, "tandem: wrote %s: dim %lld, %lld layers, %lld heads (%lld KV), hidden %lld, vocab %lld, "
               "context %lld, %.1f M parameters, seed %llu\n",
               f.out.c_str(), static_cast<long long>(config.dim), static_cast<long long>(config.n_layers),
               static_cast<long long>(config.n_heads), static_cast<long long>(config.n_kv_heads),
               static_cast<long long>(config.hidden_dim), static_cast<long long>(config.vocab_size),
               static_cast<long long>(config.max_seq_len), config.parameter_count() / 1e6,
               static_cast<unsigned long long>(f.seed));
  return 0;
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto f = std::make_shared<SynthFlags>();
  CLI::App* model = app.add_subcommand("model", "Model files");
  model->require_subcommand(1);
  CLI::App* synth = model->add_subcommand("synth", "Write a llama2.c checkpoint of any shape with seeded weights");
  synth->add_option("--shape", f->shape, "Start from a named shape: " + std::string(synthetic_shape_names()));
  synth->add_option("--dim", f->dim, "Model width");
  synth->add_option("--hidden-dim", f->hidden_dim, "MLP width");
  synth->add_option("--layers", f->layers, "Layers");
  synth->add_option("--heads", f->heads, "Query heads");
  synth->add_option("--kv-heads", f->kv_heads, "Key/value heads");
  synth->add_option("--vocab", f->vocab, "Vocabulary size");
  synth->add_option("--seq-len", f->seq_len, "Context length");
  synth->add_flag("--untied", f->untied, "A classifier of its own (not the embedding)");
  synth->add_option("--seed", f->seed, "Weights' seed")->capture_default_str();
  synth->add_option("out", f->out, "Checkpoint to write")->required();
  synth->callback([f] { set_exit_code(run_synth(*f)); });
}

}  // namespace tandem::cli
