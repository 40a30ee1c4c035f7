// The OpenAI-compatible HTTP front end (docs/serving.md, "HTTP API"): a
// Boost.Beast server over an Engine.
//
//   GET  /v1/models, /v1/models/{id}     the served model
//   POST /v1/completions                 prompt (text or token ids) -> text
//   POST /v1/chat/completions            messages -> the chat template -> text
//   GET  /health                         200 while serving, 503 otherwise
//   GET  /metrics                        Prometheus text (http_metrics.h)
//
// Threads: `threads` I/O threads run every connection, each connection on its
// own strand. The engine's events arrive on the engine's thread; they are
// queued per request (at most max_pending_events) and handed to the
// connection's strand, so a slow client never blocks the engine: a request
// whose client falls that far behind, disconnects mid-generation or stops
// reading for write_timeout is cancelled through Engine::cancel.
//
// Deadlines: a request's headers and body must arrive within read_timeout
// (slowloris), an idle keep-alive connection is closed after idle_timeout,
// each write must finish within write_timeout; stop() takes a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/deadline.h"
#include "runtime/serving/engine.h"
#include "runtime/status.h"
#include "runtime/tokenizer.h"

namespace tandem::serving {

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;  // 0: the OS picks; port() says which
  // Bearer keys for /v1/*; empty: no authentication. /health and /metrics are
  // always open (bind to loopback or firewall them if that matters).
  std::vector<std::string> api_keys;
  std::string model_id = "tandem";  // what /v1/models lists and `model` must name
  // The chat template for /v1/chat/completions; unset: that route answers 400
  // with `no_chat_template_reason`, and /v1/completions still works.
  std::optional<ChatTemplate> chat_template;
  std::string no_chat_template_reason = "the model has no chat template";
  int64_t max_request_bytes = 1 << 20;  // a body over this is 413
  int64_t default_max_tokens = 256;     // when a request names none (capped by the context)
  int64_t max_tokens = 4096;            // the most a request may ask for
  int64_t max_queued = 64;              // generation requests in flight beyond this: 429
  int64_t max_pending_events = 4096;    // per request, waiting for a slow client: beyond, cancelled
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
  int threads = 1;
};

class HttpServer {
 public:
  // Binds and starts serving. `engine` and `tokenizer` must outlive the
  // server. InvalidArgument for bad options, Unavailable when the address
  // cannot be bound (naming it and the cause).
  static Result<std::unique_ptr<HttpServer>> start(Engine& engine, const Tokenizer& tokenizer,
                                                   HttpServerOptions options);
  ~HttpServer();  // stop() with a 5 s deadline if not stopped
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;              // the bound port
  std::string endpoint() const;  // "http://127.0.0.1:PORT"

  // Stops accepting, answers new requests 503, cancels the requests in
  // flight and waits for them until `deadline`, then closes every connection
  // and joins the I/O threads. DeadlineExceeded if requests were still in
  // flight at the deadline (they were abandoned: their sinks return false).
  Status stop(Deadline deadline);

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::serving
