// TrainModel: creation, the memory plan, input checks and gathering the
// shards. The forward and backward are in train_model_forward.cc and
// train_model_backward.cc.
#include "runtime/train/train_model.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "runtime/train/train_model_impl.h"

namespace tandem::train {
namespace detail {

Status plan_workspace(const TrainShape& s, const LocalDims& d, int64_t max_batch, Workspace* ws) {
  const int64_t rows = max_batch * s.seq_len;
  const int64_t prob_rows = max_batch * d.q_heads * s.seq_len;  // of seq_len scores each
  // The same sequence of slots twice: once to count, once to point. A slot
  // is `count` rows of `width` floats.
  auto carve = [&](auto&& slot) {
    ws->layers.resize(static_cast<size_t>(s.n_layers));
    for (LayerActivations& a : ws->layers) {
      slot(a.x_in, rows, s.dim);
      slot(a.attn_rstd, rows, 1);
      slot(a.attn_in, rows, s.dim);
      slot(a.q, rows, d.q_dim);
      slot(a.k, rows, d.kv_dim);
      slot(a.v, rows, d.kv_dim);
      slot(a.probs, prob_rows, s.seq_len);
      slot(a.att, rows, d.q_dim);
      slot(a.x_mid, rows, s.dim);
      slot(a.ffn_rstd, rows, 1);
      slot(a.ffn_in, rows, s.dim);
      slot(a.gate, rows, d.hidden);
      slot(a.up, rows, d.hidden);
      slot(a.act, rows, d.hidden);
    }
    slot(ws->x_final, rows, s.dim);
    slot(ws->final_rstd, rows, 1);
    slot(ws->final_out, rows, s.dim);
    slot(ws->logits, rows, d.vocab);
    slot(ws->dlogits, rows, d.vocab);
    slot(ws->row_max, rows, 1);
    slot(ws->row_sums, rows, 2);
    slot(ws->projection, rows, s.dim);
    slot(ws->d_resid, rows, s.dim);
    slot(ws->d_normed, rows, s.dim);
    slot(ws->d_norm_in, rows, s.dim);
    slot(ws->d_q, rows, d.q_dim);
    slot(ws->d_k, rows, d.kv_dim);
    slot(ws->d_v, rows, d.kv_dim);
    slot(ws->d_att, rows, d.q_dim);
    slot(ws->d_gate, rows, d.hidden);
    slot(ws->d_up, rows, d.hidden);
    slot(ws->d_act, rows, d.hidden);
  };
  // Counted in double: with create()'s bounds a row count fits in int64, but
  // a product of absurd sizes might not.
  double floats = 0;
  carve([&](float*&, int64_t count, int64_t width) { floats += static_cast<double>(count) * static_cast<double>(width); });
  constexpr double kMaxFloats = static_cast<double>(int64_t{1} << 38);  // 1 TiB: beyond any host this runs on
  if (floats > kMaxFloats)
    return ResourceExhausted("a training workspace of " + std::to_string(floats * 4 / (1 << 30)) +
                             " GiB for max_batch=" + std::to_string(max_batch) + " is beyond reason");
  const auto total = static_cast<size_t>(floats);
  try {
    ws->storage.assign(total, 0.0f);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("cannot allocate " + std::to_string(total * sizeof(float)) +
                             " bytes of training workspace");
  }
  float* cursor = ws->storage.data();
  carve([&](float*& p, int64_t count, int64_t width) {
    p = cursor;
    cursor += count * width;
  });
  return Status::Ok();
}

TrainModelImpl::TrainModelImpl(const TrainShape& shape, TensorParallelRank tp, TrainComm* comm, ThreadPool* pool,
                               int64_t max_batch)
    : shape_(shape),
      tp_(tp),
      comm_(tp.tp > 1 ? comm : nullptr),
      pool_(pool),
      max_batch_(max_batch),
      local_(local_dims(shape, tp)),
      tensors_(shard_layout(shape, tp)) {}

Status TrainModelImpl::allocate() {
  const size_t n = static_cast<size_t>(total_numel(tensors_));
  try {
    params_.assign(n, 0.0f);
    grads_.assign(n, 0.0f);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("cannot allocate " + std::to_string(2 * n * sizeof(float)) +
                             " bytes of parameters and gradients");
  }
  return plan_workspace(shape_, local_, max_batch_, &ws_);
}

void TrainModelImpl::init(uint64_t seed) { init_params(shape_, tensors_, seed, params_); }

void TrainModelImpl::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

Status TrainModelImpl::tp_sum(float* x, int64_t n) {
  if (comm_ == nullptr) return Status::Ok();
  return comm_->all_reduce_sum(std::span<float>(x, static_cast<size_t>(n)));
}

Status TrainModelImpl::check_batch(std::span<const int> inputs, std::span<const int> targets, int64_t batch) const {
  if (batch < 1 || batch > max_batch_)
    return InvalidArgument("batch " + std::to_string(batch) + " is outside [1, " + std::to_string(max_batch_) +
                           "] (max_batch planned at create)");
  const size_t tokens = static_cast<size_t>(batch * shape_.seq_len);
  for (const auto& [what, ids] : {std::pair{"inputs", inputs}, std::pair{"targets", targets}}) {
    if (ids.size() != tokens)
      return InvalidArgument(std::string(what) + " hold " + std::to_string(ids.size()) + " token ids, batch " +
                             std::to_string(batch) + " x seq_len " + std::to_string(shape_.seq_len) + " needs " +
                             std::to_string(tokens));
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= shape_.vocab_size)
        return InvalidArgument(std::string(what) + ": token id " + std::to_string(ids[i]) + " at index " +
                               std::to_string(i) + " is outside the vocabulary [0, " +
                               std::to_string(shape_.vocab_size) + ")");
  }
  return Status::Ok();
}

Result<double> TrainModelImpl::forward_backward(std::span<const int> inputs, std::span<const int> targets,
                                                int64_t batch, float grad_scale, const GradsFinalFn& on_grads_final) {
  TANDEM_RETURN_IF_ERROR(check_batch(inputs, targets, batch));
  TANDEM_RETURN_IF_ERROR(forward(inputs, batch));
  const int64_t rows = batch * shape_.seq_len;
  // The loss is a mean over tokens: each token's gradient carries 1 / rows.
  const float dlogits_scale = grad_scale / static_cast<float>(rows);
  TANDEM_ASSIGN_OR_RETURN(const double mean_loss, cross_entropy_loss(targets, rows, &dlogits_scale));
  TANDEM_RETURN_IF_ERROR(backward(inputs, batch, on_grads_final));
  return mean_loss;
}

Result<double> TrainModelImpl::loss(std::span<const int> inputs, std::span<const int> targets, int64_t batch) {
  TANDEM_RETURN_IF_ERROR(check_batch(inputs, targets, batch));
  TANDEM_RETURN_IF_ERROR(forward(inputs, batch));
  return cross_entropy_loss(targets, batch * shape_.seq_len, nullptr);
}

Status TrainModelImpl::gather_full(std::vector<float>* full) {
  const std::vector<ParamTensor> whole = full_layout(shape_);
  full->assign(static_cast<size_t>(total_numel(whole)), 0.0f);
  if (comm_ == nullptr) {
    std::copy(params_.begin(), params_.end(), full->begin());
    return Status::Ok();
  }
  // Shards differ in size (even_split), and all_gather moves equal blocks:
  // each rank's parameters travel padded to the largest rank's.
  std::vector<std::vector<ParamTensor>> layouts;
  int64_t stride = 0;
  for (int r = 0; r < tp_.tp; ++r) {
    layouts.push_back(shard_layout(shape_, {tp_.tp, r}));
    stride = std::max(stride, total_numel(layouts.back()));
  }
  std::vector<float> local(static_cast<size_t>(stride), 0.0f);
  std::copy(params_.begin(), params_.end(), local.begin());
  std::vector<float> gathered(static_cast<size_t>(stride * tp_.tp));
  TANDEM_RETURN_IF_ERROR(comm_->all_gather(local.data(), gathered.data(), local.size() * sizeof(float)));
  for (int r = 0; r < tp_.tp; ++r) {
    for (size_t i = 0; i < whole.size(); ++i) {
      const ParamTensor& t = layouts[static_cast<size_t>(r)][i];
      if (t.replicated && r > 0) continue;  // every rank holds the same copy
      const float* src = gathered.data() + r * stride + t.offset;
      float* dst = full->data() + whole[i].offset;
      for (int64_t row = 0; row < t.rows; ++row)
        std::memcpy(dst + (t.row_begin + row) * t.full_cols + t.col_begin, src + row * t.cols,
                    static_cast<size_t>(t.cols) * sizeof(float));
    }
  }
  return Status::Ok();
}

}  // namespace detail

Result<std::unique_ptr<TrainModel>> TrainModel::create(const TrainShape& shape, TensorParallelRank tp,
                                                       TrainComm* tp_comm, ThreadPool* pool, int64_t max_batch) {
  TANDEM_RETURN_IF_ERROR(validate_train_shape(shape));
  TANDEM_RETURN_IF_ERROR(check_tensor_parallel(shape, tp));
  if (max_batch < 1) return InvalidArgument("max_batch=" + std::to_string(max_batch) + " must be at least 1");
  if (max_batch > (int64_t{1} << 31) / shape.seq_len)
    return InvalidArgument("max_batch=" + std::to_string(max_batch) + " x seq_len=" + std::to_string(shape.seq_len) +
                           " exceeds 2^31 tokens per step");
  if (tp.tp > 1) {
    if (tp_comm == nullptr) return InvalidArgument("tp=" + std::to_string(tp.tp) + " needs a TrainComm");
    if (tp_comm->size() != tp.tp || tp_comm->rank() != tp.rank)
      return InvalidArgument("the TrainComm is rank " + std::to_string(tp_comm->rank()) + " of " +
                             std::to_string(tp_comm->size()) + ", the model rank " + std::to_string(tp.rank) +
                             " of tp=" + std::to_string(tp.tp));
  }
  auto model = std::make_unique<detail::TrainModelImpl>(shape, tp, tp_comm, pool, max_batch);
  TANDEM_RETURN_IF_ERROR(model->allocate());
  return std::unique_ptr<TrainModel>(std::move(model));
}

}  // namespace tandem::train
