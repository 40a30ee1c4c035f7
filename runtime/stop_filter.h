// Stop strings over streamed text: holds back any tail that could still
// become a stop string, so a client never sees part of one, and cuts the
// text where one appears. Shared by the single-sequence generation loop
// (generator.h) and the serving scheduler (serving/scheduler.h), which both
// stream a token's text as soon as it is safe to.
//
// Not thread-safe: one per sequence, used by the thread generating it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// The longest stop string a request may name (HTTP and gRPC alike): while
// generated text keeps matching a stop string's start, every token re-reads
// what is held back, so this bounds a token's work on the engine's thread.
inline constexpr size_t kMaxStopBytes = 256;

class StopFilter {
 public:
  // Empty strings in `stop` are ignored (they would match everywhere).
  explicit StopFilter(std::vector<std::string> stop);

  // Appends a token's text and returns what may be streamed now. When a stop
  // string appears, stopped() turns true and the result is the text before
  // it; the stop string and everything after it are dropped. Call no more
  // after that.
  std::string push(std::string_view text);
  // At the end of generation: what was held back was no stop string after
  // all (empty when nothing is held back).
  std::string flush();
  bool stopped() const { return stopped_; }
  bool holding() const { return !pending_.empty(); }

 private:
  // Length of the longest prefix of pending_ no stop string can start in.
  size_t safe_prefix() const;

  std::vector<std::string> stop_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace tandem
