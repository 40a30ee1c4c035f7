// Internal to the HTTP server: the state the listener and the connections
// share, and the hand-off of one request's engine events to its connection.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/deadline.h"
#include "runtime/serving/http_metrics.h"
#include "runtime/serving/http_server.h"
#include "runtime/serving/openai_api.h"

namespace tandem::serving {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// One generation's events on their way from the engine's thread to the
// connection's strand. The sink only queues (bounded) and posts a wake-up;
// it never waits on the client.
struct Exchange {
  std::mutex mu;
  std::deque<ServingEvent> events;
  bool wake_posted = false;
  bool abandoned = false;  // the connection or server is gone: the sink returns false
  bool overflow = false;   // the client fell max_pending_events behind
  size_t max_events = 0;
  std::function<void()> wake;  // posts a drain to the connection's strand (under mu)
  RequestId id = 0;
};

// The engine's sink for `exchange`. It records every finished request's
// tokens and latencies in `metrics`, a client that left included.
EventSink make_sink(std::shared_ptr<Exchange> exchange, std::shared_ptr<HttpMetrics> metrics);

class HttpServer::Impl {
 public:
  Impl(Engine& e, const Tokenizer& t, HttpServerOptions o);

  Status listen();
  void run_threads();
  Status stop(Deadline deadline);

  // The in-flight generations (for max_queued and stop()).
  // Unavailable when stopping, ResourceExhausted beyond max_queued.
  Status add_active(const std::shared_ptr<Exchange>& exchange);
  void remove_active(const std::shared_ptr<Exchange>& exchange);
  size_t active_count();

  Engine& engine;
  const Tokenizer& tokenizer;
  const HttpServerOptions options;
  const ApiLimits limits;
  const int64_t created;  // unix seconds, for /v1/models
  // Shared with every request's sink: the engine reports a request's end
  // after its client, and possibly this server, has gone.
  const std::shared_ptr<HttpMetrics> metrics = std::make_shared<HttpMetrics>();
  std::atomic<bool> stopping{false};
  int port = 0;

 private:
  void accept();

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::shared_ptr<Exchange>> active_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
  // Declared last, destroyed first: the connections its handlers still hold
  // reach into the members above when they go.
  asio::io_context io_;
  // On a strand of its own: stop() posts the close there, so it never races
  // an accept handler on another I/O thread.
  tcp::acceptor acceptor_{asio::make_strand(io_)};
  // After a failed accept (out of descriptors: EMFILE), a pause before the
  // next: the connection left pending keeps the listener readable, and
  // retrying at once would spin an I/O thread until descriptors free up.
  asio::steady_timer accept_retry_{acceptor_.get_executor()};
};

// Starts a connection on `socket` (http_session.cc).
void start_session(HttpServer::Impl& server, tcp::socket socket);

// The prompt's tokens for a parsed request: the chat template (chat), the
// tokenizer (text) or the ids as given. ApiError on failure.
Result<std::vector<int>> tokenize_request(const ApiRequest& request, const Tokenizer& tokenizer,
                                          const HttpServerOptions& options, ApiError* error);

// max_tokens for the engine: the request's own, or the default capped by the
// room the context leaves; context_length_exceeded (400) when it cannot fit.
Result<int64_t> budget_tokens(const ApiRequest& request, int64_t prompt_tokens, int64_t context,
                              int64_t default_max_tokens, ApiError* error);

// Whether `header` (an Authorization value) presents one of `keys`, each
// compared in constant time in its content.
bool authorized(std::string_view header, const std::vector<std::string>& keys);

}  // namespace tandem::serving
