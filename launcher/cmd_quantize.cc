// `tandem quantize IN OUT --type q8_0|q4_0|q4_k [--tokenizer FILE]`: any model load_model reads
// -> a GGUF file in that type (runtime/quantize_model.h says what is written
// and which matrices fall back to another type).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "launcher/commands.h"
#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/loaded_model.h"
#include "runtime/quantize_model.h"

namespace tandem::cli {
namespace {

struct QuantizeFlags {
  std::string in, out, type, tokenizer;
};

// The output replacing one of the files it is made from would lose the
// original (the writer renames over it once done): the checkpoint, the
// tokenizer, or any file in a Hugging Face input's directory.
Status check_not_an_input(const std::string& out, const ModelFiles& files) {
  std::error_code ec;
  // OUT.tmp too: the file is written there while the input is still being
  // read (runtime/atomic_file.h), which would truncate it under its mapping.
  for (const std::string& written : {out, out + ".tmp"}) {
    for (const std::string& input : {files.checkpoint, files.tokenizer}) {
      if (!input.empty() && std::filesystem::equivalent(written, input, ec))
        return InvalidArgument(written + " is the input " + input + "; write the quantized model to another file");
    }
  }
  const std::filesystem::path parent = std::filesystem::absolute(out, ec).parent_path();
  if (std::filesystem::is_directory(files.checkpoint, ec) && std::filesystem::equivalent(parent, files.checkpoint, ec))
    return InvalidArgument(out + " is inside the input directory " + files.checkpoint +
                           "; write the quantized model elsewhere");
  return Status::Ok();
}

Result<DType> parse_type(const std::string& name) {
  for (DType d : {DType::kQ8_0, DType::kQ4_0, DType::kQ4K})
    if (name == dtype_name(d)) return d;
  return InvalidArgument("--type " + name + ": unknown (known: q8_0, q4_0, q4_k)");
}

int run_quantize(const QuantizeFlags& f) {
  const Result<DType> type = parse_type(f.type);
  if (!type.ok()) return report_error(type.status());
  const Result<ModelFiles> files = resolve_model_files(f.in, f.tokenizer, TokenizerUse::kIfFound);
  if (!files.ok()) return report_error(files.status());
  if (Status s = check_not_an_input(f.out, *files); !s.ok()) return report_error(s);
  const Result<ModelSource> source = open_model_source(*files);
  if (!source.ok()) return report_error(source.status());
  // A llama2.c tokenizer (beside a llama2.c checkpoint, or named by
  // --tokenizer, which replaces a model's own) travels into the file as a
  // GGUF "llama" tokenizer.
  std::optional<TokenizerSpec> spec;
  if (!files->tokenizer.empty()) {  // only a llama2.c model's, or --tokenizer, is ever set
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
  cmd->add_option("--tokenizer", flags->tokenizer,
                  "llama2.c tokenizer to embed (default: the model's own, or tokenizer.bin / tok*.bin beside it)");
  cmd->callback([flags] { set_exit_code(run_quantize(*flags)); });
}

}  // namespace tandem::cli
