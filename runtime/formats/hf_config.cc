// config.json -> HfConfig (runtime/formats/hf_model.h).
#include <cmath>

#include "runtime/formats/hf_model.h"
#include "runtime/formats/json_file.h"

namespace tandem {
namespace {

using json_file::Json;

constexpr uint64_t kMaxConfigBytes = 16ull << 20;

Result<std::string> architecture_of(const Json& doc, const std::string& path) {
  static constexpr std::pair<std::string_view, std::string_view> kKnown[] = {
      {"LlamaForCausalLM", "llama"},
      {"MistralForCausalLM", "mistral"},
      {"Qwen2ForCausalLM", "qwen2"},
      {"Qwen3ForCausalLM", "qwen3"}};
  const Json* archs = json_file::get(doc, "architectures");
  if (archs == nullptr) return InvalidArgument(path + ": \"architectures\" is missing");
  if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    return InvalidArgument(path + ": \"architectures\" must be a non-empty list of strings");
  const std::string name = (*archs)[0].get<std::string>();
  for (const auto& [hf, ours] : kKnown)
    if (name == hf) return std::string(ours);
  return Unimplemented(path + ": architecture " + name +
                       " is not supported (LlamaForCausalLM, MistralForCausalLM, "
                       "Qwen2ForCausalLM, Qwen3ForCausalLM are)");
}

Result<int64_t> required_int(const Json& doc, std::string_view key, const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> v, json_file::get_int(doc, key, path));
  if (!v) return InvalidArgument(path + ": \"" + std::string(key) + "\" is missing");
  return *v;
}

Result<RopeScaling> rope_scaling_of(const Json& doc, const std::string& path) {
  RopeScaling scaling;
  const Json* rs = json_file::get(doc, "rope_scaling");
  if (rs == nullptr) return scaling;
  if (!rs->is_object()) return InvalidArgument(path + ": \"rope_scaling\" must be an object");
  // Newer configs say "rope_type", older ones "type".
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> type, json_file::get_string(*rs, "rope_type", path));
  if (!type) {
    TANDEM_ASSIGN_OR_RETURN(type, json_file::get_string(*rs, "type", path));
  }
  if (!type) return InvalidArgument(path + ": \"rope_scaling\" names no rope_type");
  if (*type == "default") return scaling;
  if (*type != "llama3")
    return Unimplemented(path + ": rope_scaling type " + *type + " is not supported (llama3 is)");
  const std::string where = path + " (rope_scaling)";
  auto number = [&](std::string_view key) -> Result<double> {
    TANDEM_ASSIGN_OR_RETURN(std::optional<double> v, json_file::get_number(*rs, key, where));
    if (!v) return InvalidArgument(where + ": \"" + std::string(key) + "\" is missing");
    if (!std::isfinite(*v) || *v <= 0)
      return InvalidArgument(where + ": \"" + std::string(key) + "\" must be positive");
    return *v;
  };
  TANDEM_ASSIGN_OR_RETURN(const double factor, number("factor"));
  TANDEM_ASSIGN_OR_RETURN(const double low, number("low_freq_factor"));
  TANDEM_ASSIGN_OR_RETURN(const double high, number("high_freq_factor"));
  TANDEM_ASSIGN_OR_RETURN(const double original, number("original_max_position_embeddings"));
  // Llama 3's smoothing divides by high - low: equal factors are no band.
  if (high <= low) return InvalidArgument(where + ": high_freq_factor must exceed low_freq_factor");
  if (original > static_cast<double>(kMaxSeqLen) || original != std::floor(original))
    return InvalidArgument(where + ": original_max_position_embeddings must be a whole number up to " +
                           std::to_string(kMaxSeqLen));
  scaling.factor = static_cast<float>(factor);
  scaling.low_freq_factor = static_cast<float>(low);
  scaling.high_freq_factor = static_cast<float>(high);
  scaling.original_context = static_cast<int64_t>(original);
  return scaling;
}

Status read_quantization(const Json& doc, const std::string& path, HfConfig& out) {
  const Json* q = json_file::get(doc, "quantization_config");
  if (q == nullptr) return Status::Ok();
  if (!q->is_object()) return InvalidArgument(path + ": \"quantization_config\" must be an object");
  const std::string where = path + " (quantization_config)";
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> method, json_file::get_string(*q, "quant_method", where));
  const std::string m = method.value_or("");
  if (m != "fp8" && m != "fbgemm_fp8" && m != "compressed-tensors")
    return Unimplemented(where + ": quant_method \"" + m +
                         "\" is not supported (FP8 checkpoints are: fp8, fbgemm_fp8, compressed-tensors)");
  const Json* block = json_file::get(*q, "weight_block_size");
  if (block == nullptr) return Status::Ok();
  if (!block->is_array() || block->size() != 2 || !(*block)[0].is_number_unsigned() ||
      !(*block)[1].is_number_unsigned())
    return InvalidArgument(where + ": \"weight_block_size\" must be two positive integers");
  const uint64_t rows = (*block)[0].get<uint64_t>(), cols = (*block)[1].get<uint64_t>();
  if (rows == 0 || cols == 0 || rows > (1u << 20) || cols > (1u << 20))
    return InvalidArgument(where + ": \"weight_block_size\" must be two integers in [1, 2^20]");
  out.fp8_block_rows = static_cast<int64_t>(rows);
  out.fp8_block_cols = static_cast<int64_t>(cols);
  return Status::Ok();
}

}  // namespace

Result<HfConfig> read_hf_config(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(const Json doc, json_file::read(path, kMaxConfigBytes));
  if (!doc.is_object()) return InvalidArgument(path + ": not a JSON object");
  HfConfig out;
  TANDEM_ASSIGN_OR_RETURN(out.architecture, architecture_of(doc, path));
  LlamaConfig& c = out.config;
  TANDEM_ASSIGN_OR_RETURN(c.dim, required_int(doc, "hidden_size", path));
  TANDEM_ASSIGN_OR_RETURN(c.hidden_dim, required_int(doc, "intermediate_size", path));
  TANDEM_ASSIGN_OR_RETURN(c.n_layers, required_int(doc, "num_hidden_layers", path));
  TANDEM_ASSIGN_OR_RETURN(c.n_heads, required_int(doc, "num_attention_heads", path));
  TANDEM_ASSIGN_OR_RETURN(c.vocab_size, required_int(doc, "vocab_size", path));
  // Defaults are transformers' LlamaConfig defaults.
  TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> kv, json_file::get_int(doc, "num_key_value_heads", path));
  c.n_kv_heads = kv.value_or(c.n_heads);
  TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> ctx, json_file::get_int(doc, "max_position_embeddings", path));
  c.max_seq_len = ctx.value_or(2048);
  TANDEM_ASSIGN_OR_RETURN(std::optional<double> theta, json_file::get_number(doc, "rope_theta", path));
  TANDEM_ASSIGN_OR_RETURN(std::optional<double> eps, json_file::get_number(doc, "rms_norm_eps", path));
  if (theta && !(*theta > 0 && std::isfinite(*theta)))
    return InvalidArgument(path + ": \"rope_theta\" must be positive");
  if (eps && !(*eps > 0 && *eps < 1))
    return InvalidArgument(path + ": \"rms_norm_eps\" must be in (0, 1)");
  c.rope_theta = static_cast<float>(theta.value_or(10000.0));
  c.norm_eps = static_cast<float>(eps.value_or(1e-6));
  TANDEM_ASSIGN_OR_RETURN(std::optional<bool> tie, json_file::get_bool(doc, "tie_word_embeddings", path));
  out.tie_word_embeddings = tie.value_or(false);
  TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, json_file::get_int(doc, "head_dim", path));
  // Qwen3 states head_dim (128 for every size, whatever hidden_size says);
  // others state it equal to hidden_size / num_attention_heads, or not at all.
  if (head_dim && c.n_heads > 0 && (c.dim % c.n_heads != 0 || *head_dim != c.dim / c.n_heads)) {
    if (*head_dim <= 0) return InvalidArgument(path + ": \"head_dim\" must be positive");
    c.explicit_head_dim = *head_dim;
  }
  TANDEM_ASSIGN_OR_RETURN(c.rope_scaling, rope_scaling_of(doc, path));
  // Mistral states its window (null from v0.2 on); Qwen2 configs carry one
  // that only counts with use_sliding_window, which their releases leave off.
  TANDEM_ASSIGN_OR_RETURN(std::optional<bool> use_window, json_file::get_bool(doc, "use_sliding_window", path));
  if (out.architecture == "mistral" || use_window.value_or(false)) {
    TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> window, json_file::get_int(doc, "sliding_window", path));
    if (window && *window <= 0) return InvalidArgument(path + ": \"sliding_window\" must be positive");
    // A window as long as the context changes nothing.
    if (window && *window < c.max_seq_len) c.sliding_window = *window;
  }
  TANDEM_RETURN_IF_ERROR(read_quantization(doc, path, out));
  return out;
}

}  // namespace tandem
