#include "runtime/model_assembly.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "runtime/backend_dtypes.h"
#include "runtime/cpu/kernels.h"
#include "runtime/panel_layout.h"
#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"
#include "runtime/source_dtypes.h"

namespace tandem {
namespace {

constexpr size_t kAlign = 64;  // as backend allocations: the SIMD kernels see one alignment

std::string str(int64_t v) { return std::to_string(v); }

// The mappings the views point into and the memory the copies were made in,
// released together when the last tensor is gone.
struct AssembledStorage {
  std::vector<std::shared_ptr<const void>> source;
  std::vector<void*> owned;
  AssembledStorage() = default;
  AssembledStorage(const AssembledStorage&) = delete;
  AssembledStorage& operator=(const AssembledStorage&) = delete;
  ~AssembledStorage() {
    for (void* p : owned) std::free(p);
  }
};

// After a slice was copied out of the file's mapping, the pages it was read
// from stay mapped (a column slice reads every page of its rows: a Q4_0 row
// half of 16384 columns is 4.5 KB), so the rank's RSS would count the other
// ranks' halves too. Asks the kernel to reclaim them; only a hint: memory
// that is no file mapping (a test's buffer) keeps its bytes, and a page
// touched again is read back.
void release_pages(const uint8_t* begin, uint64_t bytes) {
#ifdef MADV_PAGEOUT
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(begin) + bytes) / page * page;
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);  // a hint
#else
  (void)begin;
  (void)bytes;
#endif
}

// Rows that a copy would start on kAlign boundaries but the mapping does not.
bool misaligned_rows(const uint8_t* first_row, uint64_t row_bytes) {
  return row_bytes % kAlign == 0 && reinterpret_cast<uintptr_t>(first_row) % kAlign != 0;
}

bool accepts(const std::vector<DType>& dtypes, DType d) {
  return d == DType::kF32 || std::find(dtypes.begin(), dtypes.end(), d) != dtypes.end();
}

class Assembler {
 public:
  Assembler(const ModelSource& source, const AssemblyOptions& options, AssemblyReport& report,
            AssembledStorage& storage)
      : source_(source), options_(options), report_(report), storage_(storage) {}

  // Rows [row_begin, + rows) and columns [col_begin, + cols) of matrix `name`.
  // head_dim > 0 reorders rotate-half rows within each head of head_dim rows.
  Result<Tensor> matrix(const std::string& name, int64_t row_begin, int64_t rows, int64_t col_begin,
                        int64_t cols, int64_t head_dim) {
    TANDEM_ASSIGN_OR_RETURN(const SourceTensor* t, find_tensor(source_, name));
    const int64_t full_cols = t->shape.back();
    const int64_t block = source_block_elems(t->dtype);
    if (col_begin % block != 0 || cols % block != 0)
      return InvalidArgument(source_.path + ": this part takes columns [" + str(col_begin) + ", " +
                             str(col_begin + cols) + ") of " + name + ", which the file stores in " +
                             std::string(source_dtype_name(t->dtype)) + " blocks of " + str(block) +
                             " columns; a block cannot be split between ranks (choose a tp whose "
                             "column slices are multiples of " + str(block) + ")");
    const DType target = target_dtype(t->dtype, cols);
    if (options_.weight_dtype && target != *options_.weight_dtype) note_kept(target, cols);
    const uint64_t src_row_bytes =
        static_cast<uint64_t>(full_cols / block * source_block_bytes(t->dtype));
    const bool reorder = head_dim > 0 && source_.rope_layout == RopeLayout::kRotateHalf;
    const bool same = same_layout_dtype(t->dtype) == target;
    const uint8_t* first_row = t->data + row_begin * src_row_bytes;
    const bool panels = options_.f32_panels && target == DType::kF32;
    if (same && !reorder && col_begin == 0 && cols == full_cols && !panels) {
      if (!(options_.align_f32_rows && target == DType::kF32 && misaligned_rows(first_row, src_row_bytes))) {
        Tensor view = Tensor::view(const_cast<uint8_t*>(first_row), target, {rows, cols});
        report_.mapped_bytes += view.bytes();
        return view;
      }
      ++realigned_;
    }
    if (!same) note_conversion(t->dtype, target);
    if (panels) ++in_panels_;
    Tensor out = Tensor::view(nullptr, panels ? DType::kF32Panels : target, {rows, cols});
    TANDEM_ASSIGN_OR_RETURN(out.data, allocate(out.bytes(), name));
    const uint64_t dst_row_bytes = out.bytes() / static_cast<uint64_t>(rows);
    std::vector<float> decoded(same && !panels ? 0 : static_cast<size_t>(cols));
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t r = interleaved_source_index(row_begin + i, head_dim);
      const uint8_t* src_row = t->data + static_cast<uint64_t>(r) * src_row_bytes;
      auto* dst = static_cast<uint8_t*>(out.data) + static_cast<uint64_t>(i) * dst_row_bytes;
      const uint8_t* src = src_row + col_begin / block * source_block_bytes(t->dtype);
      if (same && !panels) {
        std::memcpy(dst, src, dst_row_bytes);
        continue;
      }
      if (same) {
        std::memcpy(decoded.data(), src, dst_row_bytes);
      } else {
        decode_source_row(t->dtype, src_row, col_begin, cols, decoded.data());
        if (t->fp8_scales != nullptr) apply_fp8_scales(*t, r, col_begin, decoded);
      }
      if (panels) {
        store_panel_row(static_cast<float*>(out.data), rows, cols, i, decoded.data());
      } else {
        quantize_row(target, decoded.data(), cols, dst);
      }
    }
    if (!reorder) release_pages(t->data + static_cast<uint64_t>(row_begin) * src_row_bytes, rows * src_row_bytes);
    report_.converted_bytes += out.bytes();
    return out;
  }

  // A norm or bias, always f32: entries [begin, + count) (count -1: all).
  // head_dim > 0 reorders rotate-half entries within each head of head_dim,
  // as matrix() reorders rows.
  Result<Tensor> vector(const std::string& name, int64_t begin = 0, int64_t count = -1, int64_t head_dim = 0) {
    TANDEM_ASSIGN_OR_RETURN(const SourceTensor* t, find_tensor(source_, name));
    const int64_t n = t->shape.back();
    if (count < 0) count = n;
    const bool reorder = head_dim > 0 && source_.rope_layout == RopeLayout::kRotateHalf;
    // An f32 slice in file order is a view; 4-byte alignment is all f32 needs.
    if (t->dtype == SourceDType::kF32 && !reorder && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      const Tensor view = Tensor::view(const_cast<uint8_t*>(t->data) + begin * sizeof(float), DType::kF32, {count});
      report_.mapped_bytes += view.bytes();
      return view;
    }
    std::vector<float> all(static_cast<size_t>(n));
    decode_source_row(t->dtype, t->data, 0, n, all.data());
    Tensor out = Tensor::view(nullptr, DType::kF32, {count});
    TANDEM_ASSIGN_OR_RETURN(out.data, allocate(out.bytes(), name));
    for (int64_t i = 0; i < count; ++i) out.f32()[i] = all[static_cast<size_t>(interleaved_source_index(begin + i, head_dim))];
    report_.converted_bytes += out.bytes();
    return out;
  }

  void finish_notes() {
    for (const auto& [what, count] : conversions_)
      report_.notes.push_back(str(count) + " matrices stored as " + what);
    for (const auto& [what, count] : kept_) report_.notes.push_back(str(count) + " matrices stored as " + what);
    if (realigned_ > 0)
      report_.notes.push_back(str(realigned_) + " f32 matrices copied to 64-byte-aligned rows (the file's "
                              "are not)");
    if (in_panels_ > 0)
      report_.notes.push_back(str(in_panels_) + " f32 matrices stored in 32-row panels for the CPU's matmul");
  }

 private:
  // The file's row (or entry) that interleaved index r takes: within a head,
  // interleaved position k holds rotate-half row k/2 (+ d/2 if k is odd).
  int64_t interleaved_source_index(int64_t r, int64_t head_dim) const {
    if (head_dim <= 0 || source_.rope_layout != RopeLayout::kRotateHalf) return r;
    const int64_t k = r % head_dim;
    return r + (k % 2 == 0 ? k / 2 : k / 2 + head_dim / 2) - k;
  }

  DType target_dtype(SourceDType stored, int64_t cols) const {
    if (options_.weight_dtype && storable_as(*options_.weight_dtype, cols)) return *options_.weight_dtype;
    const DType chosen = choose_weight_dtype(stored, options_.backend_dtypes);
    return storable_as(chosen, cols) || same_layout_dtype(stored) == chosen ? chosen : DType::kF32;
  }

  void apply_fp8_scales(const SourceTensor& t, int64_t row, int64_t col_begin, std::vector<float>& v) const {
    const int64_t tile_cols = (t.shape.back() + t.fp8_block_cols - 1) / t.fp8_block_cols;
    const float* scales = t.fp8_scales + (row / t.fp8_block_rows) * tile_cols;
    for (size_t i = 0; i < v.size(); ++i)
      v[i] *= scales[(col_begin + static_cast<int64_t>(i)) / t.fp8_block_cols];
  }

  // A matrix the asked-for weight_dtype cannot hold: said, as the user asked for it.
  void note_kept(DType target, int64_t cols) {
    const DType wanted = *options_.weight_dtype;
    ++kept_[std::string(dtype_name(target)) + ", not " + std::string(dtype_name(wanted)) + ": rows of " + str(cols) +
            " are not whole " + std::string(dtype_name(wanted)) + " blocks of " + str(dtype_block_elems(wanted))];
  }

  void note_conversion(SourceDType from, DType to) {
    ++conversions_[std::string(source_dtype_name(from)) + " converted to " + std::string(dtype_name(to))];
  }

  Result<void*> allocate(uint64_t bytes, const std::string& name) {
    void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    if (p == nullptr)
      return ResourceExhausted(source_.path + ": cannot allocate " + std::to_string(bytes) +
                               " bytes for " + name);
    storage_.owned.push_back(p);
    return p;
  }

  const ModelSource& source_;
  const AssemblyOptions& options_;
  AssemblyReport& report_;
  AssembledStorage& storage_;
  std::map<std::string, int> conversions_;
  std::map<std::string, int> kept_;  // not in options_.weight_dtype, by why
  int realigned_ = 0;
  int in_panels_ = 0;
};

Status check_part(const ModelSource& source, const ModelPart& p) {
  const LlamaConfig& c = source.config;
  const LlamaShard& s = p.shard;
  const auto outside = [&](const char* what, int64_t begin, int64_t count, int64_t total) -> Status {
    if (begin >= 0 && count >= 1 && begin + count <= total) return Status::Ok();
    return InvalidArgument(source.path + ": the part's " + what + " [" + str(begin) + ", " +
                           str(begin + count) + ") are not within the model's " + str(total));
  };
  TANDEM_RETURN_IF_ERROR(outside("layers", s.first_layer, p.n_layers, c.n_layers));
  TANDEM_RETURN_IF_ERROR(outside("query heads", p.q_head_begin, s.n_heads, c.n_heads));
  TANDEM_RETURN_IF_ERROR(outside("KV heads", p.kv_head_begin, s.n_kv_heads, c.n_kv_heads));
  TANDEM_RETURN_IF_ERROR(outside("MLP columns", p.hidden_begin, s.hidden_dim, c.hidden_dim));
  if (s.has_embedding || s.has_classifier)
    TANDEM_RETURN_IF_ERROR(outside("vocab rows", s.vocab_begin, s.vocab_end - s.vocab_begin, c.vocab_size));
  return Status::Ok();
}

}  // namespace

ModelPart whole_model_part(const LlamaConfig& c) {
  ModelPart p;
  p.n_layers = c.n_layers;
  p.shard.n_heads = c.n_heads;
  p.shard.n_kv_heads = c.n_kv_heads;
  p.shard.hidden_dim = c.hidden_dim;
  p.shard.vocab_end = c.vocab_size;
  return p;
}

AssemblyOptions assembly_options_for(BackendKind kind) {
  AssemblyOptions options;
  options.backend_dtypes = backend_weight_dtypes(kind);
  options.align_f32_rows = kind == BackendKind::kCpu;
  options.f32_panels = kind == BackendKind::kCpu && cpu::panels_pay();
  return options;
}

DType choose_weight_dtype(SourceDType stored, const std::vector<DType>& backend_dtypes) {
  std::vector<DType> preferred;
  switch (stored) {
    case SourceDType::kF32: break;
    case SourceDType::kF16: preferred = {DType::kF16}; break;
    case SourceDType::kBF16: preferred = {DType::kBF16}; break;
    case SourceDType::kQ8_0: preferred = {DType::kQ8_0}; break;
    case SourceDType::kQ4_0: preferred = {DType::kQ4_0}; break;
    // Without Q4_K (cuda) or any Q6_K kernels: 8 bits per weight keep what 4
    // and 6 bits said.
    case SourceDType::kQ4_K: preferred = {DType::kQ4K, DType::kQ8_0}; break;
    case SourceDType::kQ6_K: preferred = {DType::kQ8_0}; break;
    case SourceDType::kF8E4M3: preferred = {DType::kBF16}; break;
  }
  for (const DType d : preferred)
    if (accepts(backend_dtypes, d)) return d;
  return DType::kF32;
}

Result<LlamaWeights> assemble_weights(const ModelSource& source, const ModelPart& part,
                                      const AssemblyOptions& options, AssemblyReport* report) {
  TANDEM_RETURN_IF_ERROR(check_part(source, part));
  if (options.weight_dtype && !storable_as(*options.weight_dtype, dtype_block_elems(*options.weight_dtype)))
    return InvalidArgument("weights cannot be stored as " + std::string(dtype_name(*options.weight_dtype)));
  const LlamaConfig& c = source.config;
  const LlamaShard& s = part.shard;
  const int64_t hd = c.head_dim();

  AssemblyReport local_report;
  AssemblyReport& r = report != nullptr ? *report : local_report;
  r = AssemblyReport{};
  auto storage = std::make_shared<AssembledStorage>();
  storage->source = source.storage;
  Assembler a(source, options, r, *storage);

  LlamaWeights w;
  w.config = c;
  w.shard = s;
  const int64_t vocab_rows = s.vocab_end - s.vocab_begin;
  if (s.has_embedding) {
    TANDEM_ASSIGN_OR_RETURN(w.embedding, a.matrix("embedding", s.vocab_begin, vocab_rows, 0, c.dim, 0));
  }
  w.layers.resize(static_cast<size_t>(part.n_layers));
  for (int64_t i = 0; i < part.n_layers; ++i) {
    const std::string p = "layers." + str(s.first_layer + i) + ".";
    LlamaLayerWeights& l = w.layers[static_cast<size_t>(i)];
    const int64_t q0 = part.q_head_begin * hd, qn = s.n_heads * hd;
    const int64_t kv0 = part.kv_head_begin * hd, kvn = s.n_kv_heads * hd;
    TANDEM_ASSIGN_OR_RETURN(l.attn_norm, a.vector(p + "attn_norm"));
    TANDEM_ASSIGN_OR_RETURN(l.wq, a.matrix(p + "wq", q0, qn, 0, c.dim, hd));
    TANDEM_ASSIGN_OR_RETURN(l.wk, a.matrix(p + "wk", kv0, kvn, 0, c.dim, hd));
    TANDEM_ASSIGN_OR_RETURN(l.wv, a.matrix(p + "wv", kv0, kvn, 0, c.dim, 0));
    if (c.attention_bias) {  // each bias entry goes with its matrix row
      TANDEM_ASSIGN_OR_RETURN(l.bq, a.vector(p + "bq", q0, qn, hd));
      TANDEM_ASSIGN_OR_RETURN(l.bk, a.vector(p + "bk", kv0, kvn, hd));
      TANDEM_ASSIGN_OR_RETURN(l.bv, a.vector(p + "bv", kv0, kvn, 0));
    }
    if (c.qk_norm) {  // one head's weights, in the order its q and k rows have
      TANDEM_ASSIGN_OR_RETURN(l.q_norm, a.vector(p + "q_norm", 0, hd, hd));
      TANDEM_ASSIGN_OR_RETURN(l.k_norm, a.vector(p + "k_norm", 0, hd, hd));
    }
    TANDEM_ASSIGN_OR_RETURN(l.wo, a.matrix(p + "wo", 0, c.dim, q0, qn, 0));
    TANDEM_ASSIGN_OR_RETURN(l.ffn_norm, a.vector(p + "ffn_norm"));
    TANDEM_ASSIGN_OR_RETURN(l.w_gate, a.matrix(p + "w_gate", part.hidden_begin, s.hidden_dim, 0, c.dim, 0));
    TANDEM_ASSIGN_OR_RETURN(l.w_down, a.matrix(p + "w_down", 0, c.dim, part.hidden_begin, s.hidden_dim, 0));
    TANDEM_ASSIGN_OR_RETURN(l.w_up, a.matrix(p + "w_up", part.hidden_begin, s.hidden_dim, 0, c.dim, 0));
  }
  if (s.has_classifier) {
    TANDEM_ASSIGN_OR_RETURN(w.final_norm, a.vector("final_norm"));
    if (c.shared_classifier && s.has_embedding) {
      w.classifier = w.embedding;
    } else {
      const char* table = c.shared_classifier ? "embedding" : "classifier";
      TANDEM_ASSIGN_OR_RETURN(w.classifier, a.matrix(table, s.vocab_begin, vocab_rows, 0, c.dim, 0));
    }
  }
  a.finish_notes();
  w.storage = std::move(storage);
  return w;
}

}  // namespace tandem
