#include "launcher/plan_report.h"

#include <fmt/core.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace tandem::cli {
namespace {

using sharding::kGB;
using sharding::MemoryPlan;
using sharding::NodeMemory;

std::string gb(uint64_t bytes) { return fmt::format("{:.2f} GB", static_cast<double>(bytes) / kGB); }

// Link traffic spans 64 KB (a pp hand-off) to tens of MB (tp all-reduces).
std::string link(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  return b < 1e6 ? fmt::format("{:.1f} KB", b / 1e3) : fmt::format("{:.1f} MB", b / 1e6);
}

std::string describe_model(const LlamaConfig& m, const std::string& label) {
  const double params = static_cast<double>(m.parameter_count());
  return fmt::format("{}: dim {}, {} layers, {} heads ({} KV), hidden {}, vocab {}, context {}, "
                     "{}{}",
                     label, m.dim, m.n_layers, m.n_heads, m.n_kv_heads, m.hidden_dim, m.vocab_size,
                     m.max_seq_len,
                     params >= 1e9 ? fmt::format("{:.2f} B parameters", params / 1e9)
                                   : fmt::format("{:.2f} M parameters", params / 1e6),
                     m.shared_classifier ? "" : ", untied classifier");
}

// One line of the table: a label, then a cell per node.
std::string row(const std::string& name, const std::vector<NodeMemory>& nodes,
                const std::function<std::string(const NodeMemory&)>& cell) {
  std::string line = fmt::format("{:<13}", name);
  for (const NodeMemory& n : nodes) line += fmt::format("{:>13}", cell(n));
  return line + "\n";
}

std::string largest_context_line(const MemoryPlan& p) {
  const int64_t limit = context_limit(p.shard.model);
  const char* what = limit < p.shard.model.max_seq_len ? "sliding window" : "own limit";
  if (p.largest_context == 0) return "largest context: 0 (not even one position fits)\n";
  if (p.model_limit_binds)
    return fmt::format("largest context: {} (the model's {} binds; memory holds more)\n", limit, what);
  return fmt::format("largest context: {} (node {}'s memory binds; the model's {} is {})\n", p.largest_context,
                     p.binding_node, what, limit);
}

}  // namespace

std::string format_memory_plan(const MemoryPlan& p, const std::string& model_label) {
  const sharding::MemoryPlanOptions& o = p.options;
  std::string out = "model        " + describe_model(p.shard.model, model_label) + "\n";
  out += fmt::format("layout       tp={} pp={} on {} node(s); weights {}, KV cache {}, context {}, batch {}, "
                     "{} tokens per forward\n\n",
                     o.tp, o.pp, p.nodes.size(), dtype_name(o.weight_dtype), dtype_name(o.kv_dtype), o.context,
                     o.batch, std::max(o.max_batch_tokens, o.batch));
  out += row("", p.nodes, [](const NodeMemory& n) { return fmt::format("node {}", n.rank); });
  out += row("memory", p.nodes, [](const NodeMemory& n) { return gb(n.memory_bytes); });
  out += row("weights", p.nodes, [](const NodeMemory& n) { return gb(n.weight_bytes); });
  out += row("KV cache", p.nodes, [](const NodeMemory& n) { return gb(n.kv_bytes); });
  out += row("activations", p.nodes, [](const NodeMemory& n) { return gb(n.activation_bytes); });
  out += row("overhead", p.nodes, [](const NodeMemory& n) { return gb(n.overhead_bytes); });
  out += row("headroom", p.nodes, [](const NodeMemory& n) { return gb(n.headroom_bytes); });
  out += row("total", p.nodes, [](const NodeMemory& n) { return gb(n.total_bytes); });
  out += row("free/short", p.nodes, [](const NodeMemory& n) {
    return n.fits ? gb(n.free_bytes) : fmt::format("-{}", gb(n.short_bytes));
  });
  out += "\n";
  if (p.fits) {
    out += fmt::format("fits: yes (context {}, batch {})\n", o.context, o.batch);
  } else {
    out += fmt::format("fits: no (context {}, batch {}): short by {} on the tightest node\n", o.context,
                       o.batch, gb(p.short_bytes));
  }
  out += largest_context_line(p);
  for (const std::string& note : p.notes) out += "note: " + note + "\n";
  return out;
}

std::string format_layout_search(const sharding::LayoutSearch& search) {
  std::string out =
      "layouts, best first (fits, then the longest context, then the fewest weight bytes a decoded "
      "token reads in turn, then the fewest link bytes):\n";
  for (const MemoryPlan& p : search.ranked) {
    out += fmt::format("  tp={} pp={}  fits: {:<3}  largest context {:>7}  decode reads {:>10}  "
                       "link {}/token\n",
                       p.options.tp, p.options.pp, p.fits ? "yes" : "no", p.largest_context,
                       gb(p.decode_read_bytes), link(p.link_bytes_per_token));
  }
  for (const sharding::RefusedLayout& r : search.refused)
    out += fmt::format("  tp={} pp={}  refused: {}\n", r.tp, r.pp, r.reason);
  return out;
}

}  // namespace tandem::cli
