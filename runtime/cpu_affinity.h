// Which CPUs a process runs on: the list syntax of Linux's cpuset files and
// taskset ("0-9,12"), pinning a whole process to such a set, and counting the
// CPUs it may use. A DGX Spark's GB10 has ten Cortex-X925 and ten Cortex-A725
// cores: a worker's compute belongs on the X925s, and two workers sharing one
// host each want their own cores (cluster.nodes[i].cpu_affinity).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem {

// The CPUs "0-3,8,10-11" names, ascending, without repeats. InvalidArgument
// naming the offending item for an empty list, a malformed item, a range
// that runs backwards, or a CPU beyond kMaxCpu.
inline constexpr int kMaxCpu = 4095;
Result<std::vector<int>> parse_cpu_list(std::string_view text);

// The list syntax for `cpus` (ascending): {0, 1, 2, 5} -> "0-2,5".
std::string format_cpu_list(const std::vector<int>& cpus);

// Restricts every thread of this process (and the threads it starts later)
// to `cpus` (ascending, as parse_cpu_list returns them). InvalidArgument
// naming the CPUs that are missing when one of `cpus` is absent, offline or
// outside the container's cpuset (nothing changed then), or `cpus` is empty;
// Internal with errno's text otherwise. A thread exiting meanwhile is skipped.
Status pin_process_to_cpus(const std::vector<int>& cpus);

// The CPUs this thread may run on now (sched_getaffinity); empty if unknown.
std::vector<int> allowed_cpus();

// How many CPUs this thread may run on: what a "one thread per CPU" default
// should use (std::thread::hardware_concurrency counts the host's). At least 1.
int usable_cpu_count();

}  // namespace tandem
