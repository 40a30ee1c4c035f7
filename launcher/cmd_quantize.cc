// `tandem quantize IN OUT --type q8_0|q4_0|q4_k`: any model load_model reads
// -> a GGUF file in that type (runtime/quantize_model.h says what is written
// and which matrices fall back to another type).
#include <cstdio>
#include <memory>
#include <optional>

#include "launcher/commands.h"
#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/loaded_model.h"
#include "runtime/quantize_model.h"

namespace tandem::cli {
namespace {

struct QuantizeFlags {
  std::string in, out, type;
};

Result<DType> parse_type(const std::string& name) {
  for (DType d : {DType::kQ8_0, DType::kQ4_0, DType::kQ4K})
    if (name == dtype_name(d)) return d;
  return InvalidArgument("--type " + name + ": unknown (known: q8_0, q4_0, q4_k)");
}

int run_quantize(const QuantizeFlags& f) {
  const Result<DType> type = parse_type(f.type);
  if (!type.ok()) return report_error(type.status());
  const Result<ModelFiles> files = resolve_model_files(f.in);
  if (!files.ok()) return report_error(files.status());
  const Result<ModelSource> source = open_model_source(*files);
  if (!source.ok()) return report_error(source.status());
  // A llama2.c tokenizer.bin travels into the file as a GGUF "llama" tokenizer.
  std::optional<TokenizerSpec> spec;
  if (!source->has_tokenizer && !files->tokenizer.empty()) {
    const Result<Tokenizer> tokenizer = load_model_tokenizer(*files, *source);
    if (!tokenizer.ok()) return report_error(tokenizer.status());
    Result<TokenizerSpec> exported = tokenizer_spec_from_llama2c(*tokenizer);
    if (!exported.ok()) return report_error(exported.status().with_context(files->tokenizer));
    spec = std::move(exported).value();
  }
  const Result<QuantizeReport> report = write_quantized_gguf(*source, *type, f.out, spec ? &*spec : nullptr);
  if (!report.ok()) return report_error(report.status());
  std::fprintf(stderr, "tandem: wrote %s: %s from %s (%s), %.1fM parameters in %.1f MB\n", f.out.c_str(),
               f.type.c_str(), f.in.c_str(), source->format.c_str(), static_cast<double>(report->parameters) / 1e6,
               static_cast<double>(report->bytes_written) / 1e6);
  for (const std::string& note : report->notes) std::fprintf(stderr, "tandem: note: %s\n", note.c_str());
  if (spec) std::fprintf(stderr, "tandem: note: %s embedded as its tokenizer\n", files->tokenizer.c_str());
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto flags = std::make_shared<QuantizeFlags>();
  CLI::App* cmd = app.add_subcommand("quantize", "Write a model as a quantized GGUF file");
  cmd->add_option("IN", flags->in, "Model: GGUF file, Hugging Face directory, llama2.c directory or checkpoint")
      ->required();
  cmd->add_option("OUT", flags->out, "The GGUF file to write")->required();
  cmd->add_option("--type", flags->type, "q8_0, q4_0 or q4_k")->required();
  cmd->callback([flags] { set_exit_code(run_quantize(*flags)); });
}

}  // namespace tandem::cli
