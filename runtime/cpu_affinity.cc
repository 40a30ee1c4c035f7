#include "runtime/cpu_affinity.h"

#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <thread>

namespace tandem {
namespace {

Result<int> parse_cpu(std::string_view item, std::string_view text) {
  int cpu = -1;
  const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), cpu);
  if (item.empty() || ec != std::errc() || end != item.data() + item.size() || cpu < 0) {
    return InvalidArgument("CPU list \"" + std::string(text) + "\": \"" + std::string(item) +
                           "\" is not a CPU number (write a list like 0-3,8)");
  }
  if (cpu > kMaxCpu) {
    return InvalidArgument("CPU list \"" + std::string(text) + "\": CPU " + std::to_string(cpu) +
                           " is beyond " + std::to_string(kMaxCpu));
  }
  return cpu;
}

// CPUs 0..kMaxCpu: glibc's cpu_set_t stops at 1023, so four of them, used
// through the _S macros with their total size.
class LargeCpuSet {
 public:
  LargeCpuSet() { CPU_ZERO_S(bytes(), get()); }
  size_t bytes() const { return sizeof(sets_); }
  cpu_set_t* get() { return sets_; }

 private:
  static_assert(sizeof(cpu_set_t) * 8 * 4 == kMaxCpu + 1);
  cpu_set_t sets_[4];
};

struct CloseDir {
  void operator()(DIR* d) const { closedir(d); }
};

}  // namespace

Result<std::vector<int>> parse_cpu_list(std::string_view text) {
  std::vector<int> cpus;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    TANDEM_ASSIGN_OR_RETURN(const int first, parse_cpu(item.substr(0, dash), text));
    int last = first;
    if (dash != std::string_view::npos) {
      TANDEM_ASSIGN_OR_RETURN(last, parse_cpu(item.substr(dash + 1), text));
      if (last < first) {
        return InvalidArgument("CPU list \"" + std::string(text) + "\": the range " + std::string(item) +
                               " runs backwards");
      }
    }
    for (int c = first; c <= last; ++c) cpus.push_back(c);
    start = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> allowed_cpus() {
  LargeCpuSet s;
  std::vector<int> cpus;
  if (sched_getaffinity(0, s.bytes(), s.get()) != 0) return cpus;
  for (int c = 0; c <= kMaxCpu; ++c)
    if (CPU_ISSET_S(c, s.bytes(), s.get())) cpus.push_back(c);
  return cpus;
}

int usable_cpu_count() {
  const size_t n = allowed_cpus().size();
  if (n > 0) return static_cast<int>(n);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

Status pin_process_to_cpus(const std::vector<int>& cpus) {
  if (cpus.empty()) return InvalidArgument("no CPU named to run on");
  LargeCpuSet s;
  for (int c : cpus) CPU_SET_S(c, s.bytes(), s.get());
  // The kernel keeps only CPUs that are online and in the process's cpuset
  // (EINVAL when none is): this thread first, to see what it kept.
  const std::vector<int> before = allowed_cpus();
  if (sched_setaffinity(0, s.bytes(), s.get()) != 0) {
    const int err = errno;
    return err == EINVAL ? InvalidArgument("CPUs " + format_cpu_list(cpus) + ": none is online and permitted here")
                         : Internal("sched_setaffinity(" + format_cpu_list(cpus) + "): " + std::strerror(err));
  }
  const std::vector<int> kept = allowed_cpus();
  if (kept != cpus) {
    LargeCpuSet old;
    for (int c : before) CPU_SET_S(c, old.bytes(), old.get());
    (void)sched_setaffinity(0, old.bytes(), old.get());  // back as it was; the refusal is what matters
    std::vector<int> missing;
    std::set_difference(cpus.begin(), cpus.end(), kept.begin(), kept.end(), std::back_inserter(missing));
    return InvalidArgument("CPUs " + format_cpu_list(cpus) + ": CPU " + format_cpu_list(missing) +
                           " is not online or not permitted here (of the list, only " + format_cpu_list(kept) +
                           " is)");
  }
  // sched_setaffinity(0) pinned one thread; every thread of the process is
  // listed under /proc/self/task.
  std::unique_ptr<DIR, CloseDir> tasks(opendir("/proc/self/task"));
  if (!tasks) return Internal(std::string("cannot list /proc/self/task to pin every thread: ") + std::strerror(errno));
  while (const dirent* entry = readdir(tasks.get())) {
    if (entry->d_name[0] == '.') continue;
    const auto tid = static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10));
    if (sched_setaffinity(tid, s.bytes(), s.get()) != 0 && errno != ESRCH)
      return Internal("sched_setaffinity(" + format_cpu_list(cpus) + ") on thread " + entry->d_name + ": " +
                      std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace tandem
