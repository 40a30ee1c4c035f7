// What `tandem plan` prints (launcher/cmd_plan.cc): a MemoryPlan as a table
// with a column per node, and a LayoutSearch as a ranked list. GB are 10^9
// bytes throughout, as sharding/memory_plan.h counts them.
#pragma once

#include <string>

#include "sharding/memory_plan.h"

namespace tandem::cli {

// The model's shape, the layout and options, one row per term (weights, KV
// cache, activations, overhead, headroom, total, free or short) with a column
// per node, then "fits: yes|no ...", "largest context: N (...)" and the notes.
std::string format_memory_plan(const sharding::MemoryPlan& plan, const std::string& model_label);

// One line per planned layout, best first, then the refused ones with why.
std::string format_layout_search(const sharding::LayoutSearch& search);

}  // namespace tandem::cli
