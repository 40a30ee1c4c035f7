#include "runtime/model_source.h"

#include <string>

namespace tandem {

std::string_view source_dtype_name(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kF32: return "f32";
    case SourceDType::kF16: return "f16";
    case SourceDType::kBF16: return "bf16";
    case SourceDType::kQ8_0: return "q8_0";
    case SourceDType::kQ4_0: return "q4_0";
    case SourceDType::kQ4_K: return "q4_k";
    case SourceDType::kQ6_K: return "q6_k";
    case SourceDType::kF8E4M3: return "f8_e4m3";
  }
  return "?";
}

int64_t source_block_elems(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kQ8_0:
    case SourceDType::kQ4_0: return 32;
    case SourceDType::kQ4_K:
    case SourceDType::kQ6_K: return 256;
    default: return 1;
  }
}

int64_t source_block_bytes(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kF32: return 4;
    case SourceDType::kF16:
    case SourceDType::kBF16: return 2;
    case SourceDType::kQ8_0: return 34;
    case SourceDType::kQ4_0: return 18;
    case SourceDType::kQ4_K: return 144;  // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 of nibbles
    case SourceDType::kQ6_K: return 210;  // 128 low nibbles, 64 high bit pairs, 16 int8 scales, f16 d
    case SourceDType::kF8E4M3: return 1;
  }
  return 0;
}

Result<const SourceTensor*> find_tensor(const ModelSource& source, std::string_view name) {
  const auto it = source.tensors.find(name);
  if (it == source.tensors.end())
    return NotFound(source.path + ": the model has no tensor " + std::string(name));
  return &it->second;
}

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status check_tensor(const ModelSource& source, const std::string& name,
                    const std::vector<int64_t>& expected, bool required) {
  const auto it = source.tensors.find(name);
  if (it == source.tensors.end()) {
    if (!required) return Status::Ok();
    return NotFound(source.path + ": the model has no tensor " + name);
  }
  const SourceTensor& t = it->second;
  if (t.shape != expected)
    return InvalidArgument(source.path + ": tensor " + name + " has shape " + shape_text(t.shape) +
                           ", the model's shape needs " + shape_text(expected));
  const int64_t row = expected.back();
  const int64_t block = source_block_elems(t.dtype);
  if (row % block != 0)
    return InvalidArgument(source.path + ": tensor " + name + " (" +
                           std::string(source_dtype_name(t.dtype)) + ") has rows of " +
                           std::to_string(row) + " elements, not a multiple of its block of " +
                           std::to_string(block));
  uint64_t elems = 1;
  for (const int64_t d : expected) elems *= static_cast<uint64_t>(d);  // bounded by validate()
  const uint64_t bytes = elems / block * static_cast<uint64_t>(source_block_bytes(t.dtype));
  if (t.bytes != bytes || t.data == nullptr)
    return DataLoss(source.path + ": tensor " + name + " holds " + std::to_string(t.bytes) +
                    " bytes; " + shape_text(expected) + " in " +
                    std::string(source_dtype_name(t.dtype)) + " is " + std::to_string(bytes));
  return Status::Ok();
}

}  // namespace

void note_optional_tensors(ModelSource& source) {
  source.config.attention_bias = source.tensors.count("layers.0.bq") != 0;
  source.config.qk_norm = source.tensors.count("layers.0.q_norm") != 0;
}

Status validate_source(const ModelSource& source) {
  const LlamaConfig& c = source.config;
  TANDEM_RETURN_IF_ERROR(validate(c, source.path));
  const int64_t q_dim = c.q_dim();
  const int64_t kv_dim = c.kv_dim();
  TANDEM_RETURN_IF_ERROR(check_tensor(source, "embedding", {c.vocab_size, c.dim}, true));
  TANDEM_RETURN_IF_ERROR(check_tensor(source, "final_norm", {c.dim}, true));
  TANDEM_RETURN_IF_ERROR(
      check_tensor(source, "classifier", {c.vocab_size, c.dim}, !c.shared_classifier));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const bool bias = c.attention_bias, norm = c.qk_norm;
    const struct {
      const char* part;
      std::vector<int64_t> shape;
      bool required;
    } parts[] = {
        {"attn_norm", {c.dim}, true},        {"wq", {q_dim, c.dim}, true},
        {"wk", {kv_dim, c.dim}, true},       {"wv", {kv_dim, c.dim}, true},
        {"wo", {c.dim, q_dim}, true},        {"ffn_norm", {c.dim}, true},
        {"w_gate", {c.hidden_dim, c.dim}, true}, {"w_down", {c.dim, c.hidden_dim}, true},
        {"w_up", {c.hidden_dim, c.dim}, true},   {"bq", {q_dim}, bias},
        {"bk", {kv_dim}, bias},              {"bv", {kv_dim}, bias},
        {"q_norm", {c.head_dim()}, norm},    {"k_norm", {c.head_dim()}, norm},
    };
    for (const auto& part : parts) {
      TANDEM_RETURN_IF_ERROR(check_tensor(source, p + part.part, part.shape, part.required));
      // An optional tensor the config does not run would be silently ignored.
      if (!part.required && source.tensors.count(p + part.part) != 0)
        return InvalidArgument(source.path + ": the model has tensor " + p + part.part + ", but its config (" +
                               (part.part[0] == 'b' ? "attention_bias" : "qk_norm") + ") says its layers have none");
    }
  }
  return Status::Ok();
}

}  // namespace tandem
