// Trained parameters out as a llama2.c checkpoint, the format inference loads.
#include <string>

#include "runtime/llama2c_writer.h"
#include "runtime/llama_weights.h"
#include "runtime/train/train_model_impl.h"

namespace tandem::train {

Status export_llama2c(const TrainShape& shape, std::span<const float> full_params, const std::string& path) {
  TANDEM_RETURN_IF_ERROR(validate_train_shape(shape));
  const std::vector<ParamTensor> layout = full_layout(shape);
  const int64_t expected = detail::total_numel(layout);
  if (static_cast<int64_t>(full_params.size()) != expected)
    return InvalidArgument("export " + path + ": " + std::to_string(full_params.size()) +
                           " parameters given, the tp=1 layout of this shape holds " + std::to_string(expected));
  LlamaConfig c;
  c.dim = shape.dim;
  c.hidden_dim = shape.hidden_dim;
  c.n_layers = shape.n_layers;
  c.n_heads = shape.n_heads;
  c.n_kv_heads = shape.n_kv_heads;
  c.vocab_size = shape.vocab_size;
  c.max_seq_len = shape.seq_len;
  c.shared_classifier = false;
  // llama2.c files carry neither; a model trained with others would load
  // with the defaults and silently compute something else.
  if (shape.norm_eps != c.norm_eps || shape.rope_theta != c.rope_theta)
    return InvalidArgument("export " + path + ": llama2.c checkpoints imply norm_eps=1e-5 and rope_theta=10000; "
                           "this model has norm_eps=" + std::to_string(shape.norm_eps) +
                           " rope_theta=" + std::to_string(shape.rope_theta));

  // The writer only reads through these views; Tensor has no const view.
  float* base = const_cast<float*>(full_params.data());
  auto view = [&](int64_t index) {
    const ParamTensor& t = layout[static_cast<size_t>(index)];
    if (t.full_rows == 1) return Tensor::view(base + t.offset, DType::kF32, {t.full_cols});
    return Tensor::view(base + t.offset, DType::kF32, {t.full_rows, t.full_cols});
  };
  LlamaWeights w;
  w.config = c;
  w.embedding = view(0);
  for (int64_t l = 0; l < shape.n_layers; ++l) {
    auto at = [&](detail::LayerTensor t) { return view(detail::layer_tensor_index(l, t)); };
    LlamaLayerWeights layer;
    layer.attn_norm = at(detail::kAttentionNorm);
    layer.wq = at(detail::kWq);
    layer.wk = at(detail::kWk);
    layer.wv = at(detail::kWv);
    layer.wo = at(detail::kWo);
    layer.ffn_norm = at(detail::kFfnNorm);
    layer.w_gate = at(detail::kW1);
    layer.w_down = at(detail::kW2);
    layer.w_up = at(detail::kW3);
    w.layers.push_back(layer);
  }
  w.final_norm = view(detail::final_norm_index(shape));
  w.classifier = view(detail::classifier_index(shape));
  return write_llama2c(w, path);
}

}  // namespace tandem::train
