#include "runtime/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_quant.h"
#include "runtime/panel_layout.h"
#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"

namespace tandem {
namespace {

constexpr size_t kAlignment = 64;  // a cache line; enough for any SIMD load
// Below this many elements an elementwise kernel runs inline: waking threads
// costs more than it saves.
constexpr int64_t kElementwiseGrain = 1 << 14;

void check_same_shape(const Tensor& a, const Tensor& b) {
  TANDEM_CHECK_MSG(a.rows() == b.rows() && a.row_length() == b.row_length(),
                   a.shape_string() + " vs " + b.shape_string());
}

}  // namespace

CpuBackend::CpuBackend(int threads) : pool_(threads) {}

std::string CpuBackend::name() const {
  return "cpu (" + std::string(cpu::isa_name(cpu::active_isa())) + ", " +
         std::to_string(pool_.size()) + " threads)";
}

Result<Buffer> CpuBackend::allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr)
    return ResourceExhausted("cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, rounded);
  return Buffer(this, p, bytes);
}

void CpuBackend::release(void* data, size_t) { std::free(data); }

Result<Tensor> CpuBackend::import_weights(const Tensor& host) {
  if (!cpu::matmul_dtype_supported(host.dtype))
    return InvalidArgument("cpu backend computes with f32, f32_panels, f16, bf16, q8_0, q4_0 and q4_k weights, got " +
                           std::string(dtype_name(host.dtype)));
  if (host.row_length() % dtype_block_elems(host.dtype) != 0)
    return InvalidArgument("a " + host.shape_string() + " " + std::string(dtype_name(host.dtype)) +
                           " tensor: rows must be whole blocks of " +
                           std::to_string(dtype_block_elems(host.dtype)));
  // f16/bf16 kernels read whole uint16_t elements; a model file must have
  // put them at even addresses.
  if (dtype_block_bytes(host.dtype) == 2 && reinterpret_cast<uintptr_t>(host.data) % 2 != 0)
    return InvalidArgument("a " + std::string(dtype_name(host.dtype)) + " tensor at an odd address");
  return host;
}

Status CpuBackend::copy_to_host(void* dst, const Tensor& src, size_t bytes) {
  TANDEM_CHECK(bytes <= src.bytes());
  std::memcpy(dst, src.data, bytes);
  return Status::Ok();
}

void CpuBackend::embed(const Tensor& out, const Tensor& table, std::span<const int> tokens,
                       int64_t first_row) {
  TANDEM_CHECK(out.rows() == static_cast<int64_t>(tokens.size()));
  TANDEM_CHECK(out.row_length() == table.row_length());
  TANDEM_CHECK(first_row >= 0);
  TANDEM_CHECK_MSG(cpu::matmul_dtype_supported(table.dtype), std::string(dtype_name(table.dtype)));
  const int64_t width = table.row_length();
  for (size_t t = 0; t < tokens.size(); ++t) {
    TANDEM_CHECK(tokens[t] >= 0);
    const int64_t row = tokens[t] - first_row;
    float* o = out.f32() + t * width;
    if (row < 0 || row >= table.rows()) {
      std::fill(o, o + width, 0.0f);
    } else if (table.dtype == DType::kF32Panels) {
      load_panel_row(o, static_cast<const float*>(table.data), table.rows(), width, row);
    } else {
      dequantize_row(table.dtype, table.row_slice(row, 1).data, width, o);
    }
  }
}

void CpuBackend::rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) {
  check_same_shape(out, x);
  TANDEM_CHECK(w.numel() == x.row_length());
  const int64_t width = x.row_length();
  pool_.parallel_for(x.rows(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t)
      cpu::rmsnorm(out.f32() + t * width, x.f32() + t * width, w.f32(), width, eps);
  });
}

void CpuBackend::matmul(const Tensor& out, const Tensor& x, const Tensor& w) {
  const MatmulTarget target{out, w};
  matmul_shared_input(x, std::span<const MatmulTarget>(&target, 1));
}

void CpuBackend::matmul_shared_input(const Tensor& x, std::span<const MatmulTarget> targets) {
  const int64_t tokens = x.rows(), n_in = x.row_length();
  // The targets' rows, end to end: a decode step wakes the workers once for
  // q, k and v together instead of three times (~45 us each on the dev VM).
  int64_t total_rows = 0;
  bool quantize = false;
  for (const MatmulTarget& t : targets) {
    TANDEM_CHECK_MSG(t.w.row_length() == n_in, x.shape_string() + " x " + t.w.shape_string());
    TANDEM_CHECK(t.out.rows() == tokens && t.out.row_length() == t.w.rows());
    TANDEM_CHECK_MSG(cpu::matmul_dtype_supported(t.w.dtype), std::string(dtype_name(t.w.dtype)));
    quantize = quantize || cpu::needs_quantized_activations(t.w.dtype);
    total_rows += t.w.rows();
  }
  // Q8_0/Q4_0/Q4_K weights multiply 8-bit activations: quantized here, once per
  // token for all targets, before the threads split the rows.
  const cpu::ActivationBlock* xq = nullptr;
  if (quantize) {
    TANDEM_CHECK(n_in % cpu::kActivationBlock == 0);
    const int64_t blocks_per_token = n_in / cpu::kActivationBlock;
    if (quantized_x_.size() < static_cast<size_t>(tokens * blocks_per_token))
      quantized_x_.resize(tokens * blocks_per_token);
    pool_.parallel_for(tokens, 16, [&](int64_t begin, int64_t end) {  // ~1 us a token: decode stays inline
      for (int64_t t = begin; t < end; ++t)
        cpu::quantize_activations(quantized_x_.data() + t * blocks_per_token, x.f32() + t * n_in, n_in);
    });
    xq = quantized_x_.data();
  }
  // Grain: enough rows per chunk that a chunk reads tens of KiB of weights;
  // whole 32-row blocks where a target is in panels (a block cut between two
  // threads is computed by both).
  int64_t grain = std::max<int64_t>(4, 16384 / std::max<int64_t>(n_in, 1));
  for (const MatmulTarget& t : targets)
    if (t.w.dtype == DType::kF32Panels) grain = (grain + kPanelRows - 1) / kPanelRows * kPanelRows;
  pool_.parallel_for(total_rows, grain, [&](int64_t begin, int64_t end) {
    int64_t first = 0;  // global index of the current target's row 0
    for (const MatmulTarget& t : targets) {
      const int64_t n_out = t.w.rows();
      const int64_t lo = std::max(begin, first), hi = std::min(end, first + n_out);
      if (lo < hi)
        cpu::matmul_rows_typed(t.out.f32(), x.f32(), xq, t.w.data, t.w.dtype, tokens, n_in, n_out, lo - first,
                               hi - first);
      first += n_out;
    }
  });
}

void CpuBackend::rope(const Tensor& q, const Tensor& k, const AttentionShape& s, std::span<const double> inv_freq) {
  TANDEM_CHECK(s.start_pos >= 0 && s.start_pos + q.rows() <= std::numeric_limits<int32_t>::max());
  rope_positions_.resize(static_cast<size_t>(q.rows()));
  for (int64_t t = 0; t < q.rows(); ++t) rope_positions_[t] = static_cast<int32_t>(s.start_pos + t);
  rotate_at(q, k, rope_positions_, s, inv_freq);
}

void CpuBackend::rotate_at(const Tensor& q, const Tensor& k, std::span<const int32_t> positions,
                           const AttentionShape& s, std::span<const double> inv_freq) {
  TANDEM_CHECK(static_cast<int64_t>(inv_freq.size()) == s.head_dim / 2);
  TANDEM_CHECK(q.row_length() == s.n_heads * s.head_dim);
  TANDEM_CHECK(k.row_length() == s.n_kv_heads * s.head_dim && k.rows() == q.rows());
  TANDEM_CHECK(static_cast<int64_t>(positions.size()) == q.rows());
  const int64_t pairs = s.head_dim / 2, rows = q.rows();
  RopeAngles& a = rope_angles_;
  if (!std::ranges::equal(a.positions, positions) || !std::ranges::equal(a.inv_freq, inv_freq)) {
    a.inv_freq.assign(inv_freq.begin(), inv_freq.end());
    a.positions.assign(positions.begin(), positions.end());
    a.cos.resize(static_cast<size_t>(rows * pairs));
    a.sin.resize(static_cast<size_t>(rows * pairs));
    // ~1 us a token: threads pay off only for prefill.
    pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t)
        cpu::rope_angles(a.cos.data() + t * pairs, a.sin.data() + t * pairs, a.positions[t], pairs, inv_freq.data());
    });
  }
  pool_.parallel_for(rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* cos = a.cos.data() + t * pairs;
      const float* sin = a.sin.data() + t * pairs;
      cpu::rope_rotate(q.f32() + t * q.row_length(), s.n_heads, s.head_dim, cos, sin);
      cpu::rope_rotate(k.f32() + t * k.row_length(), s.n_kv_heads, s.head_dim, cos, sin);
    }
  });
}

void CpuBackend::store_kv(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k,
                          const Tensor& v, int64_t start_pos) {
  check_same_shape(k, v);
  check_same_shape(k_cache, v_cache);
  TANDEM_CHECK(k.row_length() == k_cache.row_length());
  TANDEM_CHECK(start_pos >= 0 && start_pos + k.rows() <= k_cache.rows());
  const size_t row_bytes = k.row_length() * sizeof(float);
  std::memcpy(k_cache.f32() + start_pos * k.row_length(), k.f32(), k.rows() * row_bytes);
  std::memcpy(v_cache.f32() + start_pos * v.row_length(), v.f32(), v.rows() * row_bytes);
}

int64_t CpuBackend::attention_pieces(int64_t tokens, int64_t n_heads, int64_t n_kv_heads) const {
  if (tokens <= 0) return 1;
  const int64_t wanted = (pool_.size() + tokens - 1) / tokens;
  if (wanted <= n_kv_heads) return std::max<int64_t>(wanted, 1);
  // Beyond one piece per KV head, each group splits into as many runs of
  // query heads (at most one head each): a long single-sequence decode on
  // many threads keeps them all.
  const int64_t group = n_heads / n_kv_heads;
  return n_kv_heads * std::min(group, (wanted + n_kv_heads - 1) / n_kv_heads);
}

// Whole GQA groups while pieces <= n_kv_heads, else a run of one group's
// query heads.
CpuBackend::HeadPiece CpuBackend::head_piece(int64_t piece, int64_t pieces, int64_t n_heads, int64_t n_kv_heads,
                                             int64_t head_dim, int64_t kv_stride) {
  const int64_t group = n_heads / n_kv_heads;
  if (pieces <= n_kv_heads) {
    const int64_t kv_begin = piece * n_kv_heads / pieces, kv_end = (piece + 1) * n_kv_heads / pieces;
    return {kv_begin * group * head_dim, kv_begin * head_dim,
            {(kv_end - kv_begin) * group, group, head_dim, kv_stride}};
  }
  const int64_t per_kv = pieces / n_kv_heads, kv = piece / per_kv, sub = piece % per_kv;
  const int64_t first = sub * group / per_kv, last = (sub + 1) * group / per_kv;
  // The run's heads all read KV head kv: a group as long as the run.
  return {(kv * group + first) * head_dim, kv * head_dim, {last - first, last - first, head_dim, kv_stride}};
}

float* CpuBackend::attention_scratch(int64_t n_pos, const cpu::AttentionHeads& heads) {
  thread_local std::vector<float> scratch;
  const auto need = static_cast<size_t>(cpu::attention_scratch_floats(n_pos, heads));
  if (scratch.size() < need) scratch.resize(need);
  return scratch.data();
}

void CpuBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k_cache,
                           const Tensor& v_cache, const AttentionShape& s) {
  check_same_shape(out, q);
  TANDEM_CHECK(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0);
  TANDEM_CHECK(q.row_length() == s.n_heads * s.head_dim);
  TANDEM_CHECK(k_cache.row_length() == s.n_kv_heads * s.head_dim);
  const int64_t tokens = q.rows();
  TANDEM_CHECK(s.start_pos + tokens <= k_cache.rows());
  const int64_t pieces = attention_pieces(tokens, s.n_heads, s.n_kv_heads);
  pool_.parallel_for(tokens * pieces, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / pieces, n_pos = s.start_pos + t + 1;
      const HeadPiece p = head_piece(i % pieces, pieces, s.n_heads, s.n_kv_heads, s.head_dim, k_cache.row_length());
      const int64_t row = t * q.row_length() + p.q_offset;
      cpu::attention_heads(out.f32() + row, q.f32() + row, k_cache.f32() + p.kv_offset, v_cache.f32() + p.kv_offset,
                           n_pos, p.heads, attention_scratch(n_pos, p.heads));
    }
  });
}

void CpuBackend::swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) {
  check_same_shape(out, gate);
  check_same_shape(gate, up);
  pool_.parallel_for(gate.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
    cpu::swiglu(out.f32() + begin, gate.f32() + begin, up.f32() + begin, end - begin);
  });
}

void CpuBackend::add(const Tensor& x, const Tensor& y) {
  check_same_shape(x, y);
  pool_.parallel_for(x.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
    cpu::add(x.f32() + begin, y.f32() + begin, end - begin);
  });
}

void CpuBackend::add_bias(const Tensor& x, const Tensor& bias) {
  const int64_t width = x.row_length();
  TANDEM_CHECK_MSG(bias.numel() == width, x.shape_string() + " + " + bias.shape_string());
  // Rows are short (a token's q, k or v): split by rows, inline for decode.
  pool_.parallel_for(x.rows(), std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(width, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t t = begin; t < end; ++t) cpu::add(x.f32() + t * width, bias.f32(), width);
                     });
}

void CpuBackend::argmax(const Tensor& out, const Tensor& logits) {
  TANDEM_CHECK(out.dtype == DType::kI32 && out.numel() == logits.rows());
  auto* result = static_cast<int32_t*>(out.data);
  const int64_t n = logits.row_length();
  for (int64_t r = 0; r < logits.rows(); ++r) {
    const float* row = logits.f32() + r * n;
    // As Sampler::argmax: the first of equal maxima; a NaN never wins.
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
      if (row[i] > row[best] || (row[best] != row[best] && row[i] == row[i])) best = i;
    result[r] = static_cast<int32_t>(best);
  }
}

Status CpuBackend::fill_synthetic(const Tensor& t, uint64_t seed, float scale, float offset) {
  if (!cpu::matmul_dtype_supported(t.dtype) || t.dtype == DType::kF32Panels)
    return InvalidArgument("cpu backend stores f32, f16, bf16, q8_0, q4_0 and q4_k weights, not " +
                           std::string(dtype_name(t.dtype)));
  if (t.numel() % dtype_block_elems(t.dtype) != 0)
    return InvalidArgument("a " + t.shape_string() + " " + std::string(dtype_name(t.dtype)) +
                           " tensor is not whole blocks");
  // Elements in groups of at least one storage block (32 elements for the
  // plain types, 256 for Q4_K), each stored as quantize_row stores it.
  constexpr int64_t kMaxGroup = 256;
  const int64_t n = t.numel(), group = std::max<int64_t>(quant::kBlock, dtype_block_elems(t.dtype));
  const int64_t groups = (n + group - 1) / group;
  TANDEM_CHECK(group <= kMaxGroup);
  auto* out = static_cast<uint8_t*>(t.data);
  pool_.parallel_for(groups, std::max<int64_t>(1, kElementwiseGrain / group), [&](int64_t begin, int64_t end) {
    float values[kMaxGroup];
    for (int64_t g = begin; g < end; ++g) {
      const int64_t first = g * group, count = std::min(group, n - first);
      for (int64_t i = 0; i < count; ++i)
        values[i] = quant::add_rn(offset, quant::mul_rn(scale, quant::synthetic_uniform(seed, first + i)));
      // first is a whole number of blocks for every dtype here.
      const int64_t at = first / dtype_block_elems(t.dtype) * dtype_block_bytes(t.dtype);
      quantize_row(t.dtype, values, count, out + at);
    }
  });
  return Status::Ok();
}

}  // namespace tandem
