// `tandem bench kernels`: one rank's compute thread against the two roofs
// that bound it, both measured in the same run: the f32 FMA rate of a
// register-only loop (cpu::fma_loop) and one thread's copy bandwidth. Two
// figures a serving step is made of, on the active ISA:
//  - the matmuls over the matrices one tensor-parallel rank of a model shape
//    holds (sharding::make_shard_plan, rank 0), for several tokens a pass:
//    1 token streams every weight once (memory-bound), a concurrency-16 step
//    of ~23 rows is compute-bound. Also on a slice that stays in L2, the
//    kernel's own ceiling without DRAM.
//  - paged attention of S sequences at C positions over 12 layers' pools, f32
//    and f16, blocks in shuffled order as a long-running pool hands them
//    out. Between two layers one layer's weight bytes are read (not timed),
//    as a step's matmuls do, so the next pool starts from DRAM as it does
//    in a step.
// Single-threaded on purpose: `job: serve` runs one compute thread a rank on
// the 2-core dev VM (docs/benchmarks.md).
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "launcher/bench_stats.h"
#include "launcher/commands.h"
#include "runtime/cpu/kernels.h"
#include "runtime/deadline.h"
#include "runtime/memory_bandwidth.h"
#include "runtime/panel_layout.h"
#include "runtime/synthetic.h"
#include "runtime/thread_pool.h"
#include "sharding/shard_plan.h"

namespace tandem::cli {
namespace {

struct KernelsFlags {
  std::string shape = "stories110M";
  int tp = 2;
  std::string tokens = "1,8,16,23,48";
  std::string f32_layout = "auto";
  int repeat = 5;
  int64_t sequences = 16;
  int64_t context = 64;
  int bandwidth_mib = 256;
  uint64_t seed = 1;
};

struct Matrix {
  int64_t n_out = 0, n_in = 0;
  std::vector<float> w;  // row-major or panels, as the bench's layout says
};

Matrix random_matrix(int64_t n_out, int64_t n_in, bool panels, std::mt19937& rng) {
  std::uniform_real_distribution<float> value(-0.05f, 0.05f);
  Matrix m{n_out, n_in, std::vector<float>(static_cast<size_t>(n_out * n_in))};
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    for (float& v : row) v = value(rng);
    if (panels) {
      store_panel_row(m.w.data(), n_out, n_in, r, row.data());
    } else {
      std::copy(row.begin(), row.end(), m.w.begin() + r * n_in);
    }
  }
  return m;
}

// Rank 0's matrices, in the order a forward runs them.
std::vector<Matrix> rank_matrices(const LlamaConfig& c, const sharding::RankShard& r, bool panels, std::mt19937& rng) {
  const int64_t hd = c.head_dim(), q = r.q_heads.size() * hd, kv = r.kv_heads.size() * hd, h = r.hidden.size();
  std::vector<Matrix> out;
  for (int64_t l = r.layers.begin; l < r.layers.end; ++l) {
    for (const auto& [n_out, n_in] : {std::pair{q, c.dim}, {kv, c.dim}, {kv, c.dim}, {c.dim, q}, {h, c.dim},
                                     {h, c.dim}, {c.dim, h}})
      out.push_back(random_matrix(n_out, n_in, panels, rng));
  }
  if (r.holds_classifier) out.push_back(random_matrix(r.vocab.size(), c.dim, panels, rng));
  return out;
}

void matmul(const Matrix& m, float* y, const float* x, int64_t tokens, bool panels) {
  if (panels) {
    cpu::matmul_panels(y, x, m.w.data(), tokens, m.n_in, m.n_out, 0, m.n_out);
  } else {
    cpu::matmul_rows(y, x, m.w.data(), tokens, m.n_in, m.n_out, 0, m.n_out);
  }
}

// Seconds of one pass over `ms` at `tokens`, the median of `repeat` after a warm-up.
double time_passes(const std::vector<Matrix>& ms, int64_t tokens, bool panels, int repeat, std::vector<float>& x,
                   std::vector<float>& y) {
  std::vector<double> seconds;
  for (int r = 0; r <= repeat; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (const Matrix& m : ms) matmul(m, y.data(), x.data(), tokens, panels);
    if (r > 0) seconds.push_back(seconds_since(start));
  }
  return median(seconds);
}

double fma_rate() {
  std::vector<double> rates;
  for (int r = 0; r < 3; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const double flops = cpu::fma_loop(int64_t{1} << 23);
    rates.push_back(flops / seconds_since(start));
  }
  return *std::max_element(rates.begin(), rates.end());
}

struct AttentionRun {
  double seconds = 0;  // a step: every layer's pool, every sequence
  double kv_bytes = 0;
};

AttentionRun time_attention(const LlamaConfig& c, const sharding::RankShard& r, const KernelsFlags& f, bool f16,
                            double layer_weight_bytes, std::mt19937& rng) {
  constexpr int64_t kBlock = 16;  // engine.kv_block_size's default
  const int64_t hd = c.head_dim(), width = r.kv_heads.size() * hd, layers = r.layers.size();
  const int64_t blocks_per_seq = (f.context + kBlock - 1) / kBlock, pool_blocks = 2 * f.sequences * blocks_per_seq;
  const int64_t pool_values = pool_blocks * kBlock * width;
  cpu::AttentionHeads heads;
  heads.n_heads = r.q_heads.size();
  heads.group = std::max<int64_t>(1, heads.n_heads / std::max<int64_t>(1, r.kv_heads.size()));
  heads.head_dim = hd;
  heads.kv_stride = width;
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<std::vector<float>> k32(layers), v32(layers);
  std::vector<std::vector<uint16_t>> k16(layers), v16(layers);
  for (int64_t l = 0; l < layers; ++l) {
    for (std::vector<float>* pool : {&k32[l], &v32[l]}) {
      pool->resize(static_cast<size_t>(pool_values));
      for (float& v : *pool) v = value(rng);
    }
    if (!f16) continue;
    for (const auto& [from, to] : {std::pair{&k32[l], &k16[l]}, {&v32[l], &v16[l]}}) {
      to->resize(from->size());
      cpu::f16_from_f32_row(to->data(), from->data(), pool_values);
      std::vector<float>().swap(*from);
    }
  }
  // Half the pool's blocks, shuffled: sequences own scattered blocks.
  std::vector<int32_t> order(static_cast<size_t>(pool_blocks));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<float> q(static_cast<size_t>(f.sequences * heads.n_heads * hd));
  for (float& v : q) v = value(rng);
  std::vector<float> out(q.size()), scratch(static_cast<size_t>(cpu::attention_scratch_floats(f.context, heads)));
  std::vector<float> evict(static_cast<size_t>(layer_weight_bytes / sizeof(float)), 1.0f);
  float evicted = 0;  // the eviction's sum, kept so that its reads happen
  std::vector<double> seconds;
  for (int rep = 0; rep <= f.repeat; ++rep) {
    double step = 0;
    for (int64_t l = 0; l < layers; ++l) {
      evicted += std::accumulate(evict.begin(), evict.end(), 0.0f);
      const auto start = std::chrono::steady_clock::now();
      for (int64_t s = 0; s < f.sequences; ++s) {
        const int64_t at = s * heads.n_heads * hd;
        const int32_t* table = order.data() + s * blocks_per_seq;
        if (f16) {
          cpu::attention_heads_paged_f16(out.data() + at, q.data() + at, k16[l].data(), v16[l].data(), f.context,
                                         table, kBlock, heads, scratch.data());
        } else {
          cpu::attention_heads_paged(out.data() + at, q.data() + at, k32[l].data(), v32[l].data(), f.context, table,
                                     kBlock, heads, scratch.data());
        }
      }
      step += seconds_since(start);
    }
    if (rep > 0) seconds.push_back(step);
  }
  volatile float kept = evicted;
  (void)kept;
  const double kv_bytes = 2.0 * f.sequences * f.context * width * layers * (f16 ? 2 : 4);
  return {median(seconds), kv_bytes};
}

Status run_bench_kernels(const KernelsFlags& f) {
  if (f.repeat < 1 || f.sequences < 1 || f.context < 1 || f.bandwidth_mib < 8)
    return InvalidArgument("--repeat, --sequences and --context must be at least 1, --bandwidth-mib at least 8");
  TANDEM_ASSIGN_OR_RETURN(const std::vector<int64_t> tokens, parse_count_list("--tokens", f.tokens, 1, 256));
  const std::optional<LlamaConfig> config = synthetic_shape(f.shape);
  if (!config)
    return InvalidArgument("unknown --shape " + f.shape + " (known: " + std::string(synthetic_shape_names()) + ")");
  TANDEM_ASSIGN_OR_RETURN(const sharding::ShardPlan plan, sharding::make_shard_plan(*config, f.tp, 1, {}));
  const sharding::RankShard& rank = plan.ranks[0];
  const bool panels = f.f32_layout == "auto" ? cpu::panels_pay() : f.f32_layout == "panels";

  ThreadPool one_thread(1);
  TANDEM_ASSIGN_OR_RETURN(const Bandwidth bw, measure_copy_bandwidth(one_thread, size_t(f.bandwidth_mib) << 20, 5));
  const double peak = fma_rate();
  fmt::print("roofs        fma_loop {:.1f} GFLOP/s ({}, 1 thread, best of 3); copy {:.2f} GB/s (read+write, 2 x {} "
             "MiB, 1 thread, median of 5)\n",
             peak / 1e9, cpu::isa_name(cpu::active_isa()), bw.bytes_per_second / 1e9, f.bandwidth_mib);

  std::mt19937 rng(static_cast<uint32_t>(f.seed));
  const std::vector<Matrix> ms = rank_matrices(*config, rank, panels, rng);
  double weights = 0;
  int64_t widest_in = 0, widest_out = 0;
  for (const Matrix& m : ms) {
    weights += static_cast<double>(m.n_out * m.n_in);
    widest_in = std::max(widest_in, m.n_in);
    widest_out = std::max(widest_out, m.n_out);
  }
  const int64_t most = *std::max_element(tokens.begin(), tokens.end());
  std::vector<float> x(static_cast<size_t>(most * widest_in)), y(static_cast<size_t>(most * widest_out));
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (float& v : x) v = value(rng);
  // The L2 figure: a matrix of the first one's width and at most 128 rows
  // (384 KB for stories110M), which stays in L2 from one pass to the next.
  const Matrix small = random_matrix(std::min<int64_t>(128, ms[0].n_out), ms[0].n_in, panels, rng);
  fmt::print("matmul       {}, rank 0 of tp={}: {:.1f} M weights ({:.1f} MB) in {} matrices, f32 {}; median of {}\n",
             f.shape, f.tp, weights / 1e6, weights * 4 / 1e6, ms.size(), panels ? "panels" : "rows", f.repeat);
  fmt::print("tokens  ms a pass   GFLOP/s  of fma   weights GB/s  of copy    in L2: GFLOP/s  of fma\n");
  for (const int64_t t : tokens) {
    const double s = time_passes(ms, t, panels, f.repeat, x, y);
    std::vector<double> l2;
    for (int r = 0; r < 8; ++r) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 4; ++i) matmul(small, y.data(), x.data(), t, panels);
      l2.push_back(seconds_since(start) / 4);
    }
    const double flops = 2.0 * weights * t / s, l2_flops = 2.0 * small.n_out * small.n_in * t / median(l2);
    fmt::print("{:>6}  {:9.3f}  {:8.1f}  {:6.0f}%  {:13.2f}  {:6.0f}%  {:15.1f}  {:6.0f}%\n", t, s * 1e3, flops / 1e9,
               100 * flops / peak, weights * 4 / s / 1e9, 100 * weights * 4 / s / bw.bytes_per_second,
               l2_flops / 1e9, 100 * l2_flops / peak);
  }

  const double layer_bytes = weights * 4 / std::max<int64_t>(1, rank.layers.size());
  fmt::print("attention    {} sequences x {} positions, {} heads of {} ({} KV), {} layers, blocks of 16 shuffled; "
             "median of {}\n",
             f.sequences, f.context, rank.q_heads.size(), config->head_dim(), rank.kv_heads.size(),
             rank.layers.size(), f.repeat);
  fmt::print("kv     ms a step   KV MB   KV GB/s  of copy   GFLOP/s  of fma\n");
  for (const bool f16 : {false, true}) {
    const AttentionRun a = time_attention(*config, rank, f, f16, layer_bytes, rng);
    // q.k and p.v: 2 FLOPs per value of every query head at every position.
    const double flops = 4.0 * f.sequences * f.context * rank.q_heads.size() * config->head_dim() *
                         rank.layers.size() / a.seconds;
    fmt::print("{:<5}  {:9.3f}  {:6.1f}  {:8.2f}  {:6.0f}%  {:8.2f}  {:6.1f}%\n", f16 ? "f16" : "f32",
               a.seconds * 1e3, a.kv_bytes / 1e6, a.kv_bytes / a.seconds / 1e9,
               100 * a.kv_bytes / a.seconds / bw.bytes_per_second, flops / 1e9, 100 * flops / peak);
  }
  return Status::Ok();
}

}  // namespace

void add_bench_kernels_command(CLI::App& bench) {
  auto flags = std::make_shared<KernelsFlags>();
  CLI::App* cmd = bench.add_subcommand("kernels", "One rank's matmuls and paged attention against the FMA and "
                                                  "memory roofs (cpu, 1 thread)");
  cmd->add_option("--shape", flags->shape, "Synthetic shape: " + std::string(synthetic_shape_names()))
      ->capture_default_str();
  cmd->add_option("--tp", flags->tp, "Tensor-parallel ranks the shape is split over (rank 0's part is timed)")
      ->capture_default_str();
  cmd->add_option("--tokens", flags->tokens, "Comma-separated tokens a matmul pass")->capture_default_str();
  cmd->add_option("--f32-layout", flags->f32_layout, "panels, rows, or auto (what the assembler picks here)")
      ->check(CLI::IsMember({"auto", "panels", "rows"}))
      ->capture_default_str();
  cmd->add_option("--repeat", flags->repeat, "Timed passes (after one warm-up)")->capture_default_str();
  cmd->add_option("--sequences", flags->sequences, "Sequences attending per step")->capture_default_str();
  cmd->add_option("--context", flags->context, "Positions each sequence attends over")->capture_default_str();
  cmd->add_option("--bandwidth-mib", flags->bandwidth_mib, "Copy-bandwidth probe buffer")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Seed of the random weights, cache and activations")->capture_default_str();
  cmd->callback([flags] {
    Status s = run_bench_kernels(*flags);
    set_exit_code(s.ok() ? 0 : report_error(s));
  });
}

}  // namespace tandem::cli
