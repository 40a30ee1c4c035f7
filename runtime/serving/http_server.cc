// The listener and the server's lifecycle; the per-request helpers the
// connections share (tokenizing, the token budget, the API-key check).
#include "runtime/serving/http_server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <cstdio>

#include "runtime/constant_time.h"
#include "runtime/serving/http_internal.h"

namespace tandem::serving {

EventSink make_sink(std::shared_ptr<Exchange> exchange, std::shared_ptr<HttpMetrics> metrics) {
  return [ex = std::move(exchange), metrics = std::move(metrics)](const ServingEvent& event) {
    if (event.kind == ServingEvent::Kind::kFinished) {
      // Here, not on the connection: a client that left (its session gone,
      // the exchange abandoned) still had its tokens computed. The engine
      // timed the request (submit -> first token, then per token).
      metrics->add_tokens(event.prompt_tokens, event.completion_tokens);
      if (event.completion_tokens > 0) metrics->observe_ttft(event.ttft_s);
      if (event.completion_tokens > 1) metrics->observe_tpot(event.tpot_s);
    }
    std::lock_guard lock(ex->mu);
    if (ex->abandoned) return false;
    const bool terminal = event.kind == ServingEvent::Kind::kFinished || event.kind == ServingEvent::Kind::kError;
    bool keep_going = true;
    // The last event is always taken, so the connection learns the end.
    if (!terminal && ex->events.size() >= ex->max_events) {
      ex->overflow = true;
      keep_going = false;
    } else {
      ex->events.push_back(event);
    }
    if (!ex->wake_posted && ex->wake) {
      ex->wake_posted = true;
      ex->wake();
    }
    return keep_going;
  };
}

bool authorized(std::string_view header, const std::vector<std::string>& keys) {
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() < kBearer.size() || header.substr(0, kBearer.size()) != kBearer) return false;
  const std::string_view presented = header.substr(kBearer.size());
  // Every key is compared whole, whatever matched earlier: the time taken
  // says how many keys there are, never which one or how much of it matched.
  bool match = false;
  for (const std::string& key : keys) match = equal_constant_time(presented, key) || match;
  return match;
}

Result<std::vector<int>> tokenize_request(const ApiRequest& request, const Tokenizer& tokenizer,
                                          const HttpServerOptions& options, ApiError* error) {
  std::vector<int> tokens;
  if (request.kind == ApiKind::kChat) {
    if (!options.chat_template) {
      *error = invalid_request("this model cannot serve /v1/chat/completions: " + options.no_chat_template_reason +
                                   " (use /v1/completions, or name a template family in http.chat_template)",
                               "messages", "no_chat_template");
      return InvalidArgument(error->message);
    }
    auto text = options.chat_template->render(request.messages, /*add_generation_prompt=*/true);
    if (!text.ok()) {
      *error = invalid_request(text.status().message(), "messages");
      return text.status();
    }
    // The template's markers are control tokens; the user's text inside it
    // could spell them too, a limitation shared with every template renderer
    // that tokenizes the rendered string.
    tokens = tokenizer.encode(*text, tokenizer.adds_bos(), false, /*parse_special=*/true);
  } else if (request.prompt_is_tokens) {
    tokens = request.prompt_tokens;
  } else {
    tokens = tokenizer.encode(request.prompt, tokenizer.adds_bos(), false, /*parse_special=*/false);
  }
  if (tokens.empty()) {
    *error = invalid_request("the prompt is empty (and this tokenizer adds no BOS)", "prompt");
    return InvalidArgument(error->message);
  }
  return tokens;
}

Result<int64_t> budget_tokens(const ApiRequest& request, int64_t prompt_tokens, int64_t context,
                              int64_t default_max_tokens, ApiError* error) {
  const int64_t room = context - prompt_tokens;
  const int64_t wanted = request.max_tokens.value_or(std::min<int64_t>(default_max_tokens, room));
  if (room < 1 || wanted > room) {
    // OpenAI's wording, so clients that parse it keep working.
    *error = invalid_request("This model's maximum context length is " + std::to_string(context) +
                                 " tokens. However, you requested " + std::to_string(prompt_tokens + std::max<int64_t>(wanted, 1)) +
                                 " tokens (" + std::to_string(prompt_tokens) + " in the prompt, " +
                                 std::to_string(std::max<int64_t>(wanted, 1)) +
                                 " for the completion). Please reduce the prompt or the completion length.",
                             request.kind == ApiKind::kChat ? "messages" : "prompt", "context_length_exceeded");
    return OutOfRange(error->message);
  }
  return wanted;
}

HttpServer::Impl::Impl(Engine& e, const Tokenizer& t, HttpServerOptions o)
    : engine(e),
      tokenizer(t),
      options(std::move(o)),
      limits{options.model_id, options.default_max_tokens, options.max_tokens, t.vocab_size()},
      created(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                  .count()) {}

Status HttpServer::Impl::listen() {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) return InvalidArgument("http.address '" + options.address + "' is not an IP address: " + ec.message());
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(options.port));
  const std::string where = options.address + ":" + std::to_string(options.port);
  if (acceptor_.open(endpoint.protocol(), ec); ec) return Unavailable("http: open " + where + ": " + ec.message());
  if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec); ec) {
    return Unavailable("http: SO_REUSEADDR on " + where + ": " + ec.message());
  }
  if (acceptor_.bind(endpoint, ec); ec) return Unavailable("http: bind " + where + ": " + ec.message());
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unavailable("http: listen on " + where + ": " + ec.message());
  }
  port = acceptor_.local_endpoint().port();
  accept();
  return Status::Ok();
}

void HttpServer::Impl::accept() {
  // Each connection gets its own strand: its reads, writes and engine events
  // run one at a time, whichever I/O thread picks them up.
  acceptor_.async_accept(asio::make_strand(io_), [this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      start_session(*this, std::move(socket));
      return accept();
    }
    // Out of descriptors (EMFILE) and the like: keep accepting, the next
    // connection may fit once others close, but not in a busy loop.
    accept_retry_.expires_after(std::chrono::milliseconds(100));
    accept_retry_.async_wait([this](boost::system::error_code wait_ec) {
      if (!wait_ec && acceptor_.is_open()) accept();
    });
  });
}

void HttpServer::Impl::run_threads() {
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    threads_.emplace_back([this] {
      // A handler's exception would be a bug here (the connections catch
      // Beast's and nlohmann's at their calls); log it and keep serving.
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "tandem: http: unexpected exception in a handler: %s\n", e.what());
        }
      }
    });
  }
}

Status HttpServer::Impl::add_active(const std::shared_ptr<Exchange>& exchange) {
  std::lock_guard lock(mu_);
  // Checked under the lock stop() takes, so no request slips in after stop()
  // collected the ones to cancel.
  if (stopped_) return Unavailable("the server is shutting down");
  if (static_cast<int64_t>(active_.size()) >= options.max_queued) {
    return ResourceExhausted("too many requests in flight (http.max_queued = " + std::to_string(options.max_queued) +
                             "); retry later");
  }
  active_.insert(exchange);
  return Status::Ok();
}

void HttpServer::Impl::remove_active(const std::shared_ptr<Exchange>& exchange) {
  std::lock_guard lock(mu_);
  active_.erase(exchange);
  cv_.notify_all();
}

size_t HttpServer::Impl::active_count() {
  std::lock_guard lock(mu_);
  return active_.size();
}

Status HttpServer::Impl::stop(Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return Status::Ok();
    stopped_ = true;
  }
  stopping = true;
  asio::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  });
  std::vector<RequestId> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& ex : active_) {
      std::lock_guard ex_lock(ex->mu);
      ids.push_back(ex->id);
    }
  }
  for (RequestId id : ids) engine.cancel(id);
  Status status;
  {
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, deadline, [&] { return active_.empty(); })) {
      status = DeadlineExceeded("http: " + std::to_string(active_.size()) +
                                " requests still in flight at the stop deadline; abandoned");
    }
    for (const auto& ex : active_) {
      std::lock_guard ex_lock(ex->mu);
      ex->abandoned = true;
      ex->wake = nullptr;
    }
  }
  // Give the connections a moment to flush what the cancellations wrote.
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(remaining_ms(deadline), 50)));
  io_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  return status;
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  if (impl_) (void)impl_->stop(deadline_after(std::chrono::seconds(5)));
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(Engine& engine, const Tokenizer& tokenizer,
                                                      HttpServerOptions options) {
  if (options.port < 0 || options.port > 65535) return InvalidArgument("http: port outside 0..65535");
  if (options.max_request_bytes < 1024) return InvalidArgument("http: max_request_bytes must be at least 1024");
  if (options.max_tokens < 1 || options.default_max_tokens < 1 || options.default_max_tokens > options.max_tokens) {
    return InvalidArgument("http: needs 1 <= default_max_tokens <= max_tokens");
  }
  if (options.max_queued < 1 || options.max_pending_events < 16) {
    return InvalidArgument("http: max_queued must be >= 1 and max_pending_events >= 16");
  }
  if (options.model_id.empty()) return InvalidArgument("http: the model id must not be empty");
  auto impl = std::make_unique<Impl>(engine, tokenizer, std::move(options));
  TANDEM_RETURN_IF_ERROR(impl->listen());
  impl->run_threads();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }

std::string HttpServer::endpoint() const {
  const std::string& a = impl_->options.address;
  const bool v6 = a.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + a + "]" : a) + ":" + std::to_string(impl_->port);
}

Status HttpServer::stop(Deadline deadline) { return impl_->stop(deadline); }

}  // namespace tandem::serving
