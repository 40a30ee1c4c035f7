// `tandem model synth`: a llama2.c checkpoint of any Llama shape with seeded
// random weights, for tests and benchmarks of shapes no bundled model has
// (the same seed writes the same bytes on every machine). Beside it goes a
// synthetic tokenizer.bin of the same vocabulary, so `tandem generate --model
// DIR` and `tandem launch` can run it as they find it.
//
// `--format gguf` writes a GGUF file instead, its matrices in `--dtype`,
// made and written a block of rows at a time (runtime/synthetic_gguf.h), with
// the synthetic tokenizer embedded: how a model too big for memory in f32
// (llama3-405b-2layer) is written.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>

#include "launcher/commands.h"
#include "runtime/atomic_file.h"
#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/llama2c_writer.h"
#include "runtime/model_files.h"
#include "runtime/synthetic.h"
#include "runtime/synthetic_gguf.h"
#include "runtime/tokenizer_writer.h"

namespace tandem::cli {
namespace {

struct SynthFlags {
  std::string shape;
  int64_t dim = 0, hidden_dim = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq_len = 0;
  bool untied = false;
  bool no_tokenizer = false;
  uint64_t seed = 1;
  std::string format = "llama2c";
  std::string dtype = "f32";
  int threads = 0;
  std::string out;
};

Result<DType> parse_synth_dtype(const std::string& name) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0})
    if (name == dtype_name(d)) return d;
  return InvalidArgument("--dtype " + name + ": unknown (known: f32, f16, bf16, q8_0, q4_0)");
}

// The synthetic tokenizer as the spec a GGUF file embeds. It is built as a
// llama2.c file (one definition of the synthetic vocabulary), read back from
// a temporary file beside the output, and that file removed.
Result<TokenizerSpec> synthetic_tokenizer_spec(int vocab_size, const std::string& out) {
  TANDEM_ASSIGN_OR_RETURN(std::string bytes, synthetic_llama2c_tokenizer(vocab_size));
  const std::string tmp = out + ".tokenizer.tmp";
  TANDEM_RETURN_IF_ERROR(write_file_atomically(tmp, bytes));
  Result<Tokenizer> tokenizer = Tokenizer::load_llama2c(tmp, vocab_size);
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  if (!tokenizer.ok()) return tokenizer.status();
  return tokenizer_spec_from_llama2c(*tokenizer);
}

Status write_gguf(const LlamaConfig& config, const SynthFlags& f) {
  SyntheticGgufOptions options;
  options.seed = f.seed;
  options.threads = f.threads;
  TANDEM_ASSIGN_OR_RETURN(options.dtype, parse_synth_dtype(f.dtype));
  TokenizerSpec spec;
  if (!f.no_tokenizer) {
    TANDEM_ASSIGN_OR_RETURN(spec, synthetic_tokenizer_spec(static_cast<int>(config.vocab_size), f.out));
    options.tokenizer = &spec;
  }
  return write_synthetic_gguf(config, options, f.out);
}

// Where the tokenizer goes: tokenizer.bin in the checkpoint's directory, the
// name resolve_model_files() looks for first.
std::string tokenizer_path_for(const std::string& checkpoint) {
  const std::filesystem::path dir = std::filesystem::path(checkpoint).parent_path();
  return (dir.empty() ? std::filesystem::path("tokenizer.bin") : dir / "tokenizer.bin").string();
}

// The file's bytes, or nullopt when it cannot be read.
std::optional<std::string> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// What writing `bytes` to `path` does to a file already there, for the log:
// overwriting is allowed, but a user should learn that a tokenizer changed.
std::string replacing_note(const std::string& path, const std::string& bytes) {
  const std::optional<std::string> old = read_whole(path);
  if (!old) return "";
  return *old == bytes ? " (the same as the one it replaced)" : " (replacing a different tokenizer.bin)";
}

// A tokenizer.bin is what every llama2.c checkpoint beside it resolves to
// first (runtime/model_files.h), so writing one next to another model's
// checkpoint would swap that model's tokenizer: refused unless it is the
// tokenizer that checkpoint already has.
Status check_no_other_model_uses(const std::string& path, const std::string& bytes, const std::string& out) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& f = it->path();
    if (f.extension() != ".bin" || is_llama2c_tokenizer_name(f.filename().string())) continue;
    if (!it->is_regular_file(ec) || fs::equivalent(f, out, ec)) continue;
    const Result<ModelFiles> files = resolve_model_files(f.string());
    if (files.ok() && files->format != ModelFileFormat::kLlama2c) continue;  // a GGUF named .bin: its own tokenizer
    // Every llama2.c checkpoint here resolves to the same tokenizer: the first decides.
    if (files.ok() && read_whole(files->tokenizer) == bytes) return Status::Ok();
    return FailedPrecondition(dir.string() + " holds another checkpoint, " + f.filename().string() +
                              ", which a synthetic tokenizer.bin there would become the tokenizer of; write "
                              "the model into a directory of its own, or pass --no-tokenizer");
  }
  return Status::Ok();
}

Status write_tokenizer(const std::string& bytes, int vocab_size, const std::string& path) {
  const std::string note = replacing_note(path, bytes);
  TANDEM_RETURN_IF_ERROR(write_file_atomically(path, bytes));
  std::fprintf(stderr, "tandem: wrote %s: synthetic tokenizer, %d tokens%s\n", path.c_str(), vocab_size,
               note.c_str());
  return Status::Ok();
}

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
  const bool gguf = f.format == "gguf";
  if (!gguf && f.format != "llama2c")
    return report_error(InvalidArgument("--format " + f.format + ": unknown (known: llama2c, gguf)"));
  if (!gguf && f.dtype != "f32")
    return report_error(InvalidArgument("--dtype " + f.dtype + ": a llama2.c checkpoint holds f32 only; "
                                        "pass --format gguf for other dtypes"));
  // Checked before anything is written, so a refused run leaves no checkpoint
  // without its tokenizer. A GGUF file embeds its own.
  const std::string tokenizer = f.no_tokenizer || gguf ? "" : tokenizer_path_for(f.out);
  if (!f.no_tokenizer) {
    if (config.vocab_size < kMinSyntheticVocab) {
      return report_error(InvalidArgument("the vocabulary of " + std::to_string(config.vocab_size) + " is below " +
                                          std::to_string(kMinSyntheticVocab) +
                                          ", the smallest synthetic tokenizer (<unk>, BOS, EOS, 256 byte "
                                          "tokens and \" \"); pass --no-tokenizer to write the checkpoint "
                                          "alone"));
    }
    if (!gguf && std::filesystem::path(f.out).filename() == "tokenizer.bin") {
      return report_error(InvalidArgument(f.out + ": the tokenizer would overwrite the checkpoint; name the "
                                          "checkpoint otherwise or pass --no-tokenizer"));
    }
  }
  std::string tokenizer_bytes;
  if (!tokenizer.empty()) {
    Result<std::string> bytes = synthetic_llama2c_tokenizer(static_cast<int>(config.vocab_size));
    if (!bytes.ok()) return report_error(bytes.status());
    tokenizer_bytes = std::move(bytes).value();
    if (Status s = check_no_other_model_uses(tokenizer, tokenizer_bytes, f.out); !s.ok()) return report_error(s);
  }
  // A fresh directory per synthetic model keeps its tokenizer.bin from
  // clobbering another model's, so make one on request.
  if (const std::filesystem::path dir = std::filesystem::path(f.out).parent_path(); !dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return report_error(errno_status("creating " + dir.string(), ec.value(), __FILE__, __LINE__));
  }
  if (gguf) {
    if (Status s = write_gguf(config, f); !s.ok()) return report_error(s);
  } else {
    auto weights = make_synthetic_weights(config, f.seed);
    if (!weights.ok()) return report_error(weights.status());
    if (Status s = write_llama2c(*weights, f.out); !s.ok()) return report_error(s);
  }
  std::fprintf(stderr, "tandem: wrote %s (%s %s): dim %lld, %lld layers, %lld heads (%lld KV), hidden %lld, vocab %lld, "
               "context %lld, %.1f M parameters, seed %llu\n",
               f.out.c_str(), f.format.c_str(), f.dtype.c_str(), static_cast<long long>(config.dim), static_cast<long long>(config.n_layers),
               static_cast<long long>(config.n_heads), static_cast<long long>(config.n_kv_heads),
               static_cast<long long>(config.hidden_dim), static_cast<long long>(config.vocab_size),
               static_cast<long long>(config.max_seq_len), config.parameter_count() / 1e6,
               static_cast<unsigned long long>(f.seed));
  if (!tokenizer.empty()) {
    if (Status s = write_tokenizer(tokenizer_bytes, static_cast<int>(config.vocab_size), tokenizer); !s.ok())
      return report_error(s);
  }
  return 0;
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto f = std::make_shared<SynthFlags>();
  CLI::App* model = app.add_subcommand("model", "Model files");
  model->require_subcommand(1);
  CLI::App* synth = model->add_subcommand(
      "synth", "Write a llama2.c checkpoint (or GGUF file) of any shape with seeded weights and a synthetic tokenizer");
  synth->add_option("--shape", f->shape, "Start from a named shape: " + std::string(synthetic_shape_names()));
  // Positive when given (0 in the flags means "the shape's").
  synth->add_option("--dim", f->dim, "Model width")->check(CLI::PositiveNumber);
  synth->add_option("--hidden-dim", f->hidden_dim, "MLP width")->check(CLI::PositiveNumber);
  synth->add_option("--layers", f->layers, "Layers")->check(CLI::PositiveNumber);
  synth->add_option("--heads", f->heads, "Query heads")->check(CLI::PositiveNumber);
  synth->add_option("--kv-heads", f->kv_heads, "Key/value heads")->check(CLI::PositiveNumber);
  synth->add_option("--vocab", f->vocab, "Vocabulary size")->check(CLI::PositiveNumber);
  synth->add_option("--seq-len", f->seq_len, "Context length")->check(CLI::PositiveNumber);
  synth->add_flag("--untied", f->untied, "A classifier of its own (not the embedding)");
  synth->add_flag("--no-tokenizer", f->no_tokenizer, "Write no tokenizer.bin beside the checkpoint");
  synth->add_option("--seed", f->seed, "Weights' seed")->capture_default_str();
  synth->add_option("--format", f->format, "llama2c (f32, tokenizer.bin beside it) or gguf (tokenizer embedded)")
      ->capture_default_str();
  synth->add_option("--dtype", f->dtype, "Matrices' dtype, gguf only: f32, f16, bf16, q8_0, q4_0")
      ->capture_default_str();
  synth->add_option("--threads", f->threads, "Threads making the weights (gguf), 0 = all")->capture_default_str();
  synth->add_option("out", f->out, "Checkpoint to write")->required();
  synth->callback([f] { set_exit_code(run_synth(*f)); });
}

}  // namespace tandem::cli
