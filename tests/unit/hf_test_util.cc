#include "tests/unit/hf_test_util.h"

#include <cstring>

#include "runtime/atomic_file.h"
#include "runtime/formats/safetensors_writer.h"
#include "runtime/llama2c_loader.h"
#include "runtime/quant_blocks.h"

namespace tandem::testing {

int64_t hf_to_interleaved_row(int64_t hf_row, int64_t head_dim) {
  const int64_t head = hf_row / head_dim, r = hf_row % head_dim, half = head_dim / 2;
  const int64_t p = r / half, j = r % half;
  return head * head_dim + 2 * j + p;
}

namespace {

// transformers' permute(): view(heads, head_dim / 2, 2, cols).transpose(1, 2).
std::vector<float> to_rotate_half(const Tensor& t, int64_t head_dim) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(&out[r * cols], t.f32() + hf_to_interleaved_row(r, head_dim) * cols, cols * sizeof(float));
  return out;
}

std::string encode(const float* x, int64_t n, SourceDType dtype) {
  std::string bytes;
  if (dtype == SourceDType::kF32) return std::string(reinterpret_cast<const char*>(x), n * sizeof(float));
  bytes.resize(static_cast<size_t>(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = dtype == SourceDType::kBF16 ? quant::bf16_from_f32(x[i]) : quant::f16_from_f32(x[i]);
    bytes[2 * i] = static_cast<char>(h & 0xff);
    bytes[2 * i + 1] = static_cast<char>(h >> 8);
  }
  return bytes;
}

}  // namespace

Status write_hf_dir_from_llama2c(const std::string& llama2c_path, const std::string& out_dir,
                                 SourceDType dtype) {
  const char* st_dtype = dtype == SourceDType::kF32 ? "F32" : dtype == SourceDType::kF16 ? "F16"
                         : dtype == SourceDType::kBF16 ? "BF16" : nullptr;
  if (st_dtype == nullptr) return InvalidArgument("write_hf_dir_from_llama2c: F32, F16 or BF16 only");
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, load_llama2c(llama2c_path));
  const LlamaConfig& c = w.config;
  std::vector<std::string> storage;  // the encoded bytes the write list views
  std::vector<SafetensorsWriteTensor> tensors;
  storage.reserve(3 + 9 * w.layers.size());
  auto add = [&](const std::string& name, const float* x, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (const int64_t d : shape) n *= d;
    storage.push_back(encode(x, n, dtype));
    tensors.push_back({name, st_dtype, std::move(shape), storage.back()});
  };
  auto add_t = [&](const std::string& name, const Tensor& t) {
    add(name, t.f32(), t.rank == 1 ? std::vector<int64_t>{t.dim(0)} : std::vector<int64_t>{t.dim(0), t.dim(1)});
  };
  add_t("model.embed_tokens.weight", w.embedding);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LlamaLayerWeights& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add_t(p + "input_layernorm.weight", L.attn_norm);
    const std::vector<float> q = to_rotate_half(L.wq, c.head_dim());
    const std::vector<float> k = to_rotate_half(L.wk, c.head_dim());
    add(p + "self_attn.q_proj.weight", q.data(), {L.wq.dim(0), L.wq.dim(1)});
    add(p + "self_attn.k_proj.weight", k.data(), {L.wk.dim(0), L.wk.dim(1)});
    add_t(p + "self_attn.v_proj.weight", L.wv);
    add_t(p + "self_attn.o_proj.weight", L.wo);
    add_t(p + "post_attention_layernorm.weight", L.ffn_norm);
    add_t(p + "mlp.gate_proj.weight", L.w_gate);
    add_t(p + "mlp.up_proj.weight", L.w_up);
    add_t(p + "mlp.down_proj.weight", L.w_down);
  }
  add_t("model.norm.weight", w.final_norm);
  if (!c.shared_classifier) add_t("lm_head.weight", w.classifier);
  TANDEM_RETURN_IF_ERROR(write_safetensors(out_dir + "/model.safetensors", tensors, {{"format", "pt"}}));
  const std::string config =
      std::string("{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n") +
      "  \"hidden_size\": " + std::to_string(c.dim) + ",\n  \"intermediate_size\": " +
      std::to_string(c.hidden_dim) + ",\n  \"num_hidden_layers\": " + std::to_string(c.n_layers) +
      ",\n  \"num_attention_heads\": " + std::to_string(c.n_heads) + ",\n  \"num_key_value_heads\": " +
      std::to_string(c.n_kv_heads) + ",\n  \"vocab_size\": " + std::to_string(c.vocab_size) +
      ",\n  \"max_position_embeddings\": " + std::to_string(c.max_seq_len) +
      ",\n  \"rope_theta\": 10000.0,\n  \"rms_norm_eps\": 1e-05,\n  \"tie_word_embeddings\": " +
      (c.shared_classifier ? "true" : "false") + ",\n  \"torch_dtype\": \"" +
      (dtype == SourceDType::kF32 ? "float32" : dtype == SourceDType::kF16 ? "float16" : "bfloat16") +
      "\"\n}\n";
  return write_file_atomically(out_dir + "/config.json", config);
}

}  // namespace tandem::testing
