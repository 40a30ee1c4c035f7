// The OpenAI-compatible API's wire shapes, as pure functions with no I/O, so
// every rule the HTTP server applies to a request body is unit-testable:
// JSON -> a validated ApiRequest (or an ApiError in OpenAI's error shape),
// and the response bodies, stream chunks and SSE framing back.
//
// Validation follows OpenAI's rules where they are stated: unknown fields are
// ignored; a known field of the wrong type, a missing `prompt`/`messages`,
// n != 1 or a sampling value out of range is 400 naming the field (`param`).
// A JSON null counts as the field being absent (the OpenAI SDKs send nulls).
// Nothing here throws: nlohmann's exceptions stay inside openai_api.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/sampler.h"
#include "runtime/serving/engine.h"
#include "runtime/status.h"

namespace tandem::serving {

// {"error": {"message", "type", "param", "code"}}, sent with `http_status`.
struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};
std::string error_body(const ApiError& error);
ApiError invalid_request(std::string message, std::string param = {}, std::string code = {});
// The HTTP status and error a Status from the engine (or tokenization) maps
// to: InvalidArgument 400, OutOfRange 400 context_length_exceeded,
// ResourceExhausted 429, Unavailable 503, anything else 500.
ApiError error_from_status(const Status& status);

enum class ApiKind { kCompletion, kChat };

struct ApiLimits {
  std::string model_id;            // the one model served
  int64_t default_max_tokens = 256;  // when the request names none (then capped by the context)
  int64_t max_tokens = 4096;         // the most a request may ask for
  int vocab_size = 0;                // token-id prompts are checked against it
};

struct ApiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;  // as sent (empty: not sent, the served model is meant)
  // kCompletion: a text prompt, or token ids used as given (no BOS added).
  std::string prompt;
  std::vector<int> prompt_tokens;
  bool prompt_is_tokens = false;
  // kChat
  std::vector<ChatMessage> messages;
  std::optional<int64_t> max_tokens;  // unset: ApiLimits::default_max_tokens, capped by the context
  SamplerConfig sampler;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Parses and validates a body. `limits.model_id` is what `model` must name
// (404 model_not_found otherwise).
Result<ApiRequest> parse_api_request(ApiKind kind, std::string_view body, const ApiLimits& limits,
                                     ApiError* error);

// The length of the longest prefix of `text` that does not end inside a
// UTF-8 sequence: pieces may split a character, JSON needs whole ones.
size_t utf8_complete_prefix(std::string_view text);

// "data: <payload>\n\n"; payload must not contain a newline (dumped JSON does not).
std::string sse_event(std::string_view payload);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// What a response needs besides the text.
struct ResponseMeta {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};
std::string make_response_id(ApiKind kind);
std::string_view finish_reason_text(FinishReason reason);  // "stop" / "length"

// A non-streaming response body.
std::string response_body(const ResponseMeta& meta, std::string_view text, FinishReason finish,
                          int64_t prompt_tokens, int64_t completion_tokens);
// Stream chunks. chat: the first chunk carries delta.role; text chunks carry
// delta.content (chat) or text (completion); the last carries finish_reason.
// With include_usage every chunk has "usage": null and usage_chunk() follows
// the last one (empty choices), as OpenAI does.
std::string role_chunk(const ResponseMeta& meta, bool include_usage);
std::string text_chunk(const ResponseMeta& meta, std::string_view text, bool include_usage);
std::string finish_chunk(const ResponseMeta& meta, FinishReason finish, bool include_usage);
std::string usage_chunk(const ResponseMeta& meta, int64_t prompt_tokens, int64_t completion_tokens);

// GET /v1/models and /v1/models/{id}.
std::string models_body(const std::string& model_id, int64_t created);
std::string model_body(const std::string& model_id, int64_t created);

}  // namespace tandem::serving
