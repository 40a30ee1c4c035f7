#include "runtime/synthetic_gguf.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/hash.h"
#include "runtime/quantize.h"
#include "runtime/thread_pool.h"

namespace tandem {
namespace {

// Values in [-1, 1) from splitmix64 of a row's seed and the element index:
// any row can be made alone, on any thread.
float uniform_pm1(uint64_t row_seed, int64_t i) {
  return static_cast<float>(splitmix64(row_seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull) >> 40) *
             (2.0f / 16777216.0f) -
         1.0f;
}

struct TensorPlan {
  std::string canonical;
  int64_t rows, cols;
  bool norm;
};

// Rows of one tensor made a block at a time: the block's f32 values are
// drawn and stored in `dtype` on the pool's threads, then handed on.
class RowWriter {
 public:
  RowWriter(ThreadPool& pool, DType dtype) : pool_(pool), dtype_(dtype) {}

  Status write(const TensorPlan& t, uint64_t tensor_seed, const GgufWriter::TensorSink& sink) {
    const DType type = t.norm ? DType::kF32 : dtype_;
    const auto row_bytes = static_cast<size_t>(t.cols / dtype_block_elems(type) * dtype_block_bytes(type));
    // About 64 MiB of output per block: big writes, bounded memory.
    const int64_t block_rows = std::max<int64_t>(1, static_cast<int64_t>((64u << 20) / row_bytes));
    out_.resize(static_cast<size_t>(std::min(block_rows, t.rows)) * row_bytes);
    const float scale = t.norm ? 0.1f : 1.0f / std::sqrt(static_cast<float>(t.cols));
    const float offset = t.norm ? 1.0f : 0.0f;
    for (int64_t first = 0; first < t.rows; first += block_rows) {
      const int64_t n = std::min(block_rows, t.rows - first);
      pool_.parallel_for(n, 16, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(t.cols));
        for (int64_t r = begin; r < end; ++r) {
          const uint64_t row_seed = splitmix64(tensor_seed ^ static_cast<uint64_t>(first + r) * 0xD1B54A32D192ED03ull);
          for (int64_t i = 0; i < t.cols; ++i) row[i] = offset + scale * uniform_pm1(row_seed, i);
          quantize_row(type, row.data(), t.cols, out_.data() + static_cast<size_t>(r) * row_bytes);
        }
      });
      TANDEM_RETURN_IF_ERROR(sink(std::span<const uint8_t>(out_.data(), static_cast<size_t>(n) * row_bytes)));
    }
    return Status::Ok();
  }

 private:
  ThreadPool& pool_;
  DType dtype_;
  std::vector<uint8_t> out_;
};

std::vector<TensorPlan> tensors_of(const LlamaConfig& c) {
  const int64_t q_dim = c.n_heads * c.head_dim();
  std::vector<TensorPlan> t = {{"embedding", c.vocab_size, c.dim, false}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm", 1, c.dim, true});
    t.push_back({p + "wq", q_dim, c.dim, false});
    t.push_back({p + "wk", c.kv_dim(), c.dim, false});
    t.push_back({p + "wv", c.kv_dim(), c.dim, false});
    t.push_back({p + "wo", c.dim, q_dim, false});
    t.push_back({p + "ffn_norm", 1, c.dim, true});
    t.push_back({p + "w_gate", c.hidden_dim, c.dim, false});
    t.push_back({p + "w_down", c.dim, c.hidden_dim, false});
    t.push_back({p + "w_up", c.hidden_dim, c.dim, false});
  }
  t.push_back({"final_norm", 1, c.dim, true});
  if (!c.shared_classifier) t.push_back({"classifier", c.vocab_size, c.dim, false});
  return t;
}

}  // namespace

Status write_synthetic_gguf(const LlamaConfig& c, const SyntheticGgufOptions& options, const std::string& path) {
  TANDEM_RETURN_IF_ERROR(validate(c, "synthetic model"));
  // Q4_K has a GGUF type but no synthetic row writer (its encoder's search is
  // what `tandem quantize` runs).
  const std::optional<gguf::GgmlType> matrix_type =
      options.dtype == DType::kQ4K ? std::nullopt : ggml_type_of(options.dtype);
  if (!matrix_type) return InvalidArgument("synthetic GGUF: " + std::string(dtype_name(options.dtype)) +
                                           " is no weight dtype (f32, f16, bf16, q8_0, q4_0)");
  for (int64_t width : {c.dim, c.n_heads * c.head_dim(), c.hidden_dim})
    if (!storable_as(options.dtype, width))
      return InvalidArgument("synthetic GGUF: rows of " + std::to_string(width) + " cannot be stored as " +
                             std::string(dtype_name(options.dtype)));
  const int threads = options.threads > 0 ? options.threads
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  RowWriter rows(pool, options.dtype);

  GgufWriter w;
  add_gguf_llama_config(w, c);
  w.add_u64("tandem.synthetic.seed", options.seed);
  if (options.tokenizer != nullptr) add_gguf_tokenizer(w, *options.tokenizer);
  uint64_t tensor_seed = options.seed;
  for (const TensorPlan& t : tensors_of(c)) {
    // A tensor's seed follows from the model's and the tensor's place in the
    // list: each is splitmix64 of the previous one (a chain, unlike
    // make_synthetic_weights_on's counter; the files' bytes depend on it).
    tensor_seed = splitmix64(tensor_seed + 0x9E3779B97F4A7C15ull);
    std::vector<int64_t> ne = {t.cols};
    if (!t.norm) ne.push_back(t.rows);
    w.add_tensor(gguf_tensor_name(t.canonical), t.norm ? gguf::GgmlType::kF32 : *matrix_type, std::move(ne),
                 [&rows, t, seed = tensor_seed](const GgufWriter::TensorSink& sink) { return rows.write(t, seed, sink); });
  }
  return w.write(path);
}

}  // namespace tandem
