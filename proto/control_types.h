// The control plane's plain structs, shared by the server (control_server.h),
// the client (control_client.h) and the worker that implements JobHandler.
// They mirror tandem.proto's messages (tandem.v1) without pulling protobuf
// into every includer; proto/convert.h maps one onto the other.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/stop_filter.h"

namespace tandem::control {

// One Generate request. Defaults are the proto's defaults for unset fields.
struct GenerateParams {
  std::string request_id;          // empty on the client: the server assigns one
  std::string prompt;              // text, used when has_prompt_tokens is false
  std::vector<int> prompt_tokens;  // token ids, used when has_prompt_tokens is true
  bool has_prompt_tokens = false;
  int64_t max_tokens = 256;  // >= 1, prompt not counted
  float temperature = 0;     // >= 0; 0 is greedy
  float top_p = 1;           // (0, 1]; 1 is off
  int top_k = 0;             // >= 0; 0 is off
  int64_t seed = -1;         // -1: the server draws one; otherwise >= 0
  std::vector<std::string> stop;  // at most 16, each 1..256 bytes
};

// One generated token and its text (possibly part of a UTF-8 character).
struct GeneratedPiece {
  int token = 0;
  std::string text;
};

enum class FinishReason { kLength, kStop, kEos, kCancelled };
// "length", "stop", "eos", "cancelled".
std::string_view to_string(FinishReason reason);

struct GenerateSummary {
  FinishReason finish = FinishReason::kLength;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
};

struct RankInfo {
  int rank = 0;
  std::string host;
  uint64_t memory_bytes = 0;
};

struct JobStatus {
  std::vector<RankInfo> ranks;
  std::string model;        // path as the workers see it
  std::string model_shape;  // in words: "dim 64, 5 layers, ..."
  int tp = 1;
  int pp = 1;
  double uptime_s = 0;
  int64_t tokens_served = 0;
  int64_t requests_served = 0;
  std::string state;  // "loading", "serving", "shutting_down"
};

// The limits the server enforces on a GenerateRequest before the handler sees
// it (the handler checks what depends on the model: vocabulary, context);
// a stop string's bytes are bounded by tandem::kMaxStopBytes (stop_filter.h).
inline constexpr size_t kMaxRequestIdBytes = 128;
inline constexpr size_t kMaxStopStrings = 16;
inline constexpr int64_t kDefaultMaxTokens = 256;

}  // namespace tandem::control
