#include "runtime/stop_filter.h"

#include <algorithm>
#include <utility>

namespace tandem {

StopFilter::StopFilter(std::vector<std::string> stop) : stop_(std::move(stop)) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

std::string StopFilter::push(std::string_view text) {
  if (stop_.empty()) return std::string(text);
  pending_ += text;
  size_t first = std::string::npos;
  for (const std::string& s : stop_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  const size_t safe = safe_prefix();
  std::string out = pending_.substr(0, safe);
  pending_.erase(0, safe);
  return out;
}

std::string StopFilter::flush() { return std::exchange(pending_, {}); }

size_t StopFilter::safe_prefix() const {
  for (size_t i = 0; i < pending_.size(); ++i) {
    const std::string_view tail = std::string_view(pending_).substr(i);
    for (const std::string& s : stop_) {
      if (std::string_view(s).substr(0, tail.size()) == tail) return i;
    }
  }
  return pending_.size();
}

}  // namespace tandem
