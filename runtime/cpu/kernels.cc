// ISA detection and dispatch. Each public kernel is one relaxed atomic load
// of the active table and one indirect call; the ISA is chosen once, on first
// use, from the CPU's features and TANDEM_ISA.
#include "runtime/cpu/kernels.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "runtime/cpu/kernels_internal.h"
#include "runtime/status.h"

namespace tandem::cpu {
namespace {

struct KernelTable {
  Isa isa;
  decltype(&scalar::dot) dot;
  decltype(&scalar::matmul_rows) matmul_rows;
  decltype(&scalar::matmul_panels) matmul_panels;
  decltype(&scalar::axpy) axpy;
  decltype(&scalar::rmsnorm) rmsnorm;
  decltype(&scalar::softmax) softmax;
  decltype(&scalar::rope_interleaved) rope_interleaved;
  decltype(&scalar::swiglu) swiglu;
  decltype(&scalar::add) add;
  decltype(&scalar::attention_heads) attention_heads;
  decltype(&scalar::attention_heads_paged) attention_heads_paged;
  decltype(&scalar::attention_heads_paged_f16) attention_heads_paged_f16;
  decltype(&scalar::f16_from_f32_row) f16_from_f32_row;
  decltype(&scalar::fma_loop) fma_loop;
};

constexpr KernelTable kScalarTable = {
    .isa = Isa::kScalar,
    .dot = &scalar::dot,
    .matmul_rows = &scalar::matmul_rows,
    .matmul_panels = &scalar::matmul_panels,
    .axpy = &scalar::axpy,
    .rmsnorm = &scalar::rmsnorm,
    .softmax = &scalar::softmax,
    .rope_interleaved = &scalar::rope_interleaved,
    .swiglu = &scalar::swiglu,
    .add = &scalar::add,
    .attention_heads = &scalar::attention_heads,
    .attention_heads_paged = &scalar::attention_heads_paged,
    .attention_heads_paged_f16 = &scalar::attention_heads_paged_f16,
    .f16_from_f32_row = &scalar::f16_from_f32_row,
    .fma_loop = &scalar::fma_loop,
};

#if defined(TANDEM_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
#define TANDEM_CAN_DETECT_AVX2 1
constexpr KernelTable kAvx2Table = {
    .isa = Isa::kAvx2,
    .dot = &avx2::dot,
    .matmul_rows = &avx2::matmul_rows,
    .matmul_panels = &scalar::matmul_panels,  // correct but slow; no model is stored so here (panels_pay())
    .axpy = &avx2::axpy,
    .rmsnorm = &avx2::rmsnorm,
    .softmax = &avx2::softmax,
    .rope_interleaved = &scalar::rope_interleaved,  // see kernels_internal.h
    .swiglu = &avx2::swiglu,
    .add = &avx2::add,
    .attention_heads = &avx2::attention_heads,
    .attention_heads_paged = &avx2::attention_heads_paged,
    .attention_heads_paged_f16 = &avx2::attention_heads_paged_f16,
    .f16_from_f32_row = &avx2::f16_from_f32_row,
    .fma_loop = &avx2::fma_loop,
};
// The f32 kernels of kAvx512 are kAvx2's but the matmuls, whose several-token
// tiles are compute-bound and fit 32 zmm registers, and fma_loop (the zmm
// roof); the quantized kernels differ too (runtime/cpu/kernels_quant.cc
// picks those from active_isa()).
constexpr KernelTable kAvx512Table = [] {
  KernelTable table = kAvx2Table;
  table.isa = Isa::kAvx512;
  table.matmul_rows = &avx512::matmul_rows;
  table.matmul_panels = &avx512::matmul_panels;
  table.fma_loop = &avx512::fma_loop;
  return table;
}();
#endif

#if defined(TANDEM_HAVE_NEON_KERNELS) && defined(__aarch64__)
// Advanced SIMD is mandatory in AArch64, so compiling for it is detection
// enough. The dot-product and i8mm extensions of the quantized kernels, when
// those exist, will need a real check (getauxval: HWCAP_ASIMDDP, HWCAP2_I8MM).
#define TANDEM_HAS_NEON 1
constexpr KernelTable kNeonTable = {
    .isa = Isa::kNeon,
    .dot = &neon::dot,
    .matmul_rows = &neon::matmul_rows,
    .matmul_panels = &scalar::matmul_panels,  // correct but slow; no model is stored so here (panels_pay())
    .axpy = &neon::axpy,
    .rmsnorm = &neon::rmsnorm,
    .softmax = &neon::softmax,
    .rope_interleaved = &scalar::rope_interleaved,  // see kernels_internal.h
    .swiglu = &neon::swiglu,
    .add = &neon::add,
    .attention_heads = &neon::attention_heads,
    .attention_heads_paged = &neon::attention_heads_paged,
    .attention_heads_paged_f16 = &neon::attention_heads_paged_f16,
    .f16_from_f32_row = &neon::f16_from_f32_row,
    .fma_loop = &neon::fma_loop,
};
#endif

const KernelTable* table_for(Isa isa) {
#ifdef TANDEM_CAN_DETECT_AVX2
  if (isa == Isa::kAvx2) return &kAvx2Table;
  if (isa == Isa::kAvx512) return &kAvx512Table;
#endif
#ifdef TANDEM_HAS_NEON
  if (isa == Isa::kNeon) return &kNeonTable;
#endif
  (void)isa;
  return &kScalarTable;
}

Isa initial_isa_from_environment() {
  const char* env = std::getenv("TANDEM_ISA");
  const Isa chosen = choose_initial_isa(env);
  // A mistyped or unusable TANDEM_ISA must not pass silently: it decides
  // which code every benchmark and comparison runs.
  if (env != nullptr && (!parse_isa_name(env) || *parse_isa_name(env) != chosen)) {
    std::fprintf(stderr, "tandem: TANDEM_ISA=\"%s\" is not a supported ISA here; using %s\n", env,
                 isa_name(chosen).data());
  }
  return chosen;
}

// Function-local so kernels called during another file's static
// initialisation still find a table; atomic so a set_active_isa racing a
// kernel is a documented misuse, not undefined behaviour. Relaxed is enough:
// the tables are constants.
std::atomic<const KernelTable*>& active_table_slot() {
  static std::atomic<const KernelTable*> slot{table_for(initial_isa_from_environment())};
  return slot;
}

const KernelTable& active() { return *active_table_slot().load(std::memory_order_relaxed); }

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kNeon: return "neon";
  }
  return "unknown";
}

std::optional<Isa> parse_isa_name(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (name == isa_name(isa)) return isa;
  }
  return std::nullopt;
}

Isa best_isa() {
#ifdef TANDEM_CAN_DETECT_AVX2
  __builtin_cpu_init();  // needed if we run before libgcc's own constructor
  // F16C (f16 weights) came with the same CPUs as AVX2; checked all the same.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
#endif
#ifdef TANDEM_HAS_NEON
  return Isa::kNeon;
#endif
  return Isa::kScalar;
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return best_isa() == Isa::kAvx2 || best_isa() == Isa::kAvx512;
    case Isa::kAvx512: return best_isa() == Isa::kAvx512;
    case Isa::kNeon: return best_isa() == Isa::kNeon;
  }
  return false;
}

Isa choose_initial_isa(const char* tandem_isa_env) {
  if (tandem_isa_env != nullptr) {
    const std::optional<Isa> named = parse_isa_name(tandem_isa_env);
    if (named && isa_supported(*named)) return *named;
  }
  return best_isa();
}

Isa active_isa() { return active().isa; }

bool set_active_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  active_table_slot().store(table_for(isa), std::memory_order_relaxed);
  return true;
}

float dot(const float* a, const float* b, int64_t n) { return active().dot(a, b, n); }

void matmul_rows(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in,
                 int64_t n_out, int64_t row_begin, int64_t row_end) {
  TANDEM_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= n_out);
  active().matmul_rows(y, x, w, n_tokens, n_in, n_out, row_begin, row_end);
}

void matmul_panels(float* y, const float* x, const float* w, int64_t n_tokens, int64_t n_in, int64_t n_out,
                   int64_t row_begin, int64_t row_end) {
  TANDEM_CHECK(n_tokens >= 0 && n_in >= 0 && 0 <= row_begin && row_begin <= row_end && row_end <= n_out);
  active().matmul_panels(y, x, w, n_tokens, n_in, n_out, row_begin, row_end);
}

bool panels_pay() { return active().isa == Isa::kAvx512; }

double fma_loop(int64_t iterations) { return active().fma_loop(iterations); }

void axpy(float* y, float a, const float* x, int64_t n) { active().axpy(y, a, x, n); }

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  active().rmsnorm(out, x, w, n, eps);
}

void softmax(float* x, int64_t n) {
  TANDEM_CHECK(n >= 1);
  active().softmax(x, n);
}

void rope_angles(float* cos, float* sin, int64_t pos, int64_t pairs, const double* inv_freq) {
  TANDEM_CHECK(pairs >= 0);
  scalar::rope_angles(cos, sin, pos, pairs, inv_freq);
}

void rope_rotate(float* v, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin) {
  TANDEM_CHECK(head_dim % 2 == 0);
  scalar::rope_rotate(v, n_heads, head_dim, cos, sin);
}

void rope_interleaved(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, const double* inv_freq) {
  TANDEM_CHECK(head_dim % 2 == 0);
  active().rope_interleaved(v, n_heads, head_dim, pos, inv_freq);
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  active().swiglu(out, gate, up, n);
}

void add(float* y, const float* x, int64_t n) { active().add(y, x, n); }

void attention_heads(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n_pos,
                     const AttentionHeads& heads, float* scratch) {
  TANDEM_CHECK(n_pos >= 1 && heads.n_heads >= 1 && heads.group >= 1);
  active().attention_heads(out, q, k_cache, v_cache, n_pos, heads, scratch);
}

void attention_heads_paged(float* out, const float* q, const float* k_pool, const float* v_pool, int64_t n_pos,
                           const int32_t* block_table, int64_t block_size, const AttentionHeads& heads,
                           float* scratch) {
  TANDEM_CHECK(n_pos >= 1 && block_size >= 1 && heads.n_heads >= 1 && heads.group >= 1);
  active().attention_heads_paged(out, q, k_pool, v_pool, n_pos, block_table, block_size, heads, scratch);
}

void attention_heads_paged_f16(float* out, const float* q, const uint16_t* k_pool, const uint16_t* v_pool,
                               int64_t n_pos, const int32_t* block_table, int64_t block_size,
                               const AttentionHeads& heads, float* scratch) {
  TANDEM_CHECK(n_pos >= 1 && block_size >= 1 && heads.n_heads >= 1 && heads.group >= 1);
  active().attention_heads_paged_f16(out, q, k_pool, v_pool, n_pos, block_table, block_size, heads, scratch);
}

void f16_from_f32_row(uint16_t* out, const float* in, int64_t n) { active().f16_from_f32_row(out, in, n); }

}  // namespace tandem::cpu
