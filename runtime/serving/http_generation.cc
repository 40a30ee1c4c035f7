// A generation on a connection: validate and tokenize the request, submit it
// to the engine, and turn its events into a whole response or an SSE stream.
#include <boost/asio/post.hpp>
#include <boost/beast/http.hpp>
#include <cstring>
#include <sstream>

#include "runtime/serving/http_session.h"

namespace tandem::serving {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void start_session(HttpServer::Impl& server, tcp::socket socket) {
  std::make_shared<HttpSession>(server, std::move(socket))->start();
}

void HttpSession::generate(ApiKind kind, const std::string& body) {
  if (server_.stopping) {
    return send_error(error_from_status(Unavailable("the server is shutting down")));
  }
  ApiError error;
  auto parsed = parse_api_request(kind, body, server_.limits, &error);
  if (!parsed.ok()) return send_error(error);
  api_ = std::move(*parsed);
  auto tokens = tokenize_request(api_, server_.tokenizer, server_.options, &error);
  if (!tokens.ok()) return send_error(error);
  const int64_t prompt_tokens = static_cast<int64_t>(tokens->size());
  auto budget = budget_tokens(api_, prompt_tokens, server_.engine.context(), server_.options.default_max_tokens,
                              &error);
  if (!budget.ok()) return send_error(error);

  ServingRequest request;
  request.prompt_tokens = std::move(*tokens);
  request.max_tokens = *budget;
  request.sampler = api_.sampler;
  request.stop = api_.stop;
  auto exchange = std::make_shared<Exchange>();
  exchange->max_events = static_cast<size_t>(server_.options.max_pending_events);
  if (Status s = server_.add_active(exchange); !s.ok()) return send_error(error_from_status(s));
  // The engine's thread only queues and posts; the strand drains.
  exchange->wake = [weak = weak_from_this(), executor = stream_.get_executor()] {
    asio::post(executor, [weak] {
      if (auto self = weak.lock()) self->drain();
    });
  };
  exchange_ = exchange;
  text_.clear();
  pending_utf8_.clear();
  headers_sent_ = false;
  client_gone_ = false;
  cancel_sent_ = false;
  meta_ = ResponseMeta{kind, make_response_id(kind), unix_now(), server_.options.model_id};
  auto id = server_.engine.submit(std::move(request), make_sink(exchange, server_.metrics));
  if (!id.ok()) {
    end_generation();
    return send_error(error_from_status(id.status()));
  }
  {
    std::lock_guard lock(exchange->mu);
    exchange->id = *id;
  }
  // stop() may have listed the active generations before this id was set
  // (it cancels what it lists): the flag is set before that listing.
  if (server_.stopping) server_.engine.cancel(*id);
  watch_client();
}

void HttpSession::watch_client() {
  if (watching_ || closed_) return;
  watching_ = true;
  // On the raw socket, outside tcp_stream's timers: the generation may take
  // longer than any read deadline; the socket's executor is the strand.
  stream_.socket().async_read_some(
      asio::buffer(watch_buf_), [self = shared_from_this()](error_code ec, size_t n) {
        self->watching_ = false;
        // More than one request's headers and body can be: not a pipelined
        // request but a flood, which would otherwise pile up here for as
        // long as the generation runs. Treated as a client gone bad.
        const size_t keep_at_most = static_cast<size_t>(self->server_.options.max_request_bytes) + kMaxHeaderBytes;
        const bool flood = !ec && self->buffer_.size() + n > keep_at_most;
        if (flood) {
          self->read_after_watch_ = false;
        } else if (!ec && n > 0) {
          // A pipelined request: keep it for the next read.
          auto space = self->buffer_.prepare(n);
          std::memcpy(space.data(), self->watch_buf_.data(), n);
          self->buffer_.commit(n);
        }
        if (self->read_after_watch_) {
          self->read_after_watch_ = false;
          if (!ec || ec == asio::error::operation_aborted) return self->read_request();
          return self->close();
        }
        if (ec || flood) {
          // EOF or reset mid-generation (the client left), or the flood.
          self->give_up_on_client();
          if (!self->writing_) self->close();
          return;
        }
        if (self->exchange_) self->watch_client();
      });
}

void HttpSession::give_up_on_client() {
  client_gone_ = true;
  close_after_ = true;
  cancel_generation();
}

void HttpSession::cancel_generation() {
  if (!exchange_ || cancel_sent_) return;
  cancel_sent_ = true;
  RequestId id;
  {
    std::lock_guard lock(exchange_->mu);
    id = exchange_->id;
  }
  server_.engine.cancel(id);
}

void HttpSession::end_generation() {
  if (!exchange_) return;
  {
    std::lock_guard lock(exchange_->mu);
    exchange_->abandoned = true;
    exchange_->wake = nullptr;
  }
  server_.remove_active(exchange_);
  exchange_.reset();
}

void HttpSession::drain() {
  if (!exchange_) return;
  std::deque<ServingEvent> events;
  bool overflow;
  {
    std::lock_guard lock(exchange_->mu);
    events.swap(exchange_->events);
    exchange_->wake_posted = false;
    overflow = exchange_->overflow;
  }
  if (overflow && !cancel_sent_) {
    // The client reads slower than the engine writes: it cannot keep up.
    give_up_on_client();
  }
  for (const ServingEvent& event : events) {
    if (!exchange_) break;
    on_event(event);
  }
}

void HttpSession::on_event(const ServingEvent& event) {
  switch (event.kind) {
    case ServingEvent::Kind::kStarted:
      if (api_.stream && !client_gone_ && !headers_sent_) start_stream();
      break;
    case ServingEvent::Kind::kPiece:
      if (client_gone_) break;
      if (!api_.stream) {
        text_ += event.text;
        break;
      }
      if (!headers_sent_) start_stream();
      pending_utf8_ += event.text;
      if (const size_t n = utf8_complete_prefix(pending_utf8_); n > 0) {
        send_chunk(sse_event(text_chunk(meta_, std::string_view(pending_utf8_).substr(0, n), api_.include_usage)));
        pending_utf8_.erase(0, n);
      }
      break;
    case ServingEvent::Kind::kFinished:
      on_finished(event);
      break;
    case ServingEvent::Kind::kError:
      on_failed(event.status);
      break;
  }
}

void HttpSession::on_finished(const ServingEvent& event) {
  end_generation();
  if (client_gone_) {
    if (!writing_) close();
    return;
  }
  if (event.finish_reason == FinishReason::kCancelled) {
    // Not the client's doing (that is client_gone_): the server is stopping.
    const ApiError e = error_from_status(Unavailable("the server is shutting down"));
    close_after_ = true;
    return api_.stream && headers_sent_ ? end_stream_with_error(e) : send_error(e);
  }
  if (!api_.stream) {
    return send_response(200, "application/json",
                         response_body(meta_, text_, event.finish_reason, event.prompt_tokens, event.completion_tokens));
  }
  if (!headers_sent_) start_stream();
  if (!pending_utf8_.empty()) {
    // Whatever is left is all there is: a broken sequence becomes U+FFFD.
    send_chunk(sse_event(text_chunk(meta_, pending_utf8_, api_.include_usage)));
    pending_utf8_.clear();
  }
  std::string tail = sse_event(finish_chunk(meta_, event.finish_reason, api_.include_usage));
  if (api_.include_usage) tail += sse_event(usage_chunk(meta_, event.prompt_tokens, event.completion_tokens));
  tail += kSseDone;
  send_chunk(tail);
  response_complete_ = true;
  send("0\r\n\r\n");  // the chunked body's end
}

void HttpSession::on_failed(const Status& status) {
  end_generation();
  if (client_gone_) {
    if (!writing_) close();
    return;
  }
  const ApiError e = error_from_status(status);
  if (api_.stream && headers_sent_) return end_stream_with_error(e);
  send_error(e);
}

void HttpSession::end_stream_with_error(const ApiError& error) {
  // Past the 200, an error can only travel in the stream, as vLLM sends it.
  send_chunk(sse_event(error_body(error)) + std::string(kSseDone));
  response_complete_ = true;
  send("0\r\n\r\n");
}

void HttpSession::start_stream() {
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::server, "tandem");
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(keep_alive_ && !close_after_);
  res.chunked(true);
  server_.metrics->count_request(200);
  std::ostringstream out;
  out << res.base();
  headers_sent_ = true;
  send(out.str());
  if (api_.kind == ApiKind::kChat) send_chunk(sse_event(role_chunk(meta_, api_.include_usage)));
}

void HttpSession::send_chunk(std::string_view data) {
  if (data.empty()) return;  // an empty chunk would end the body
  std::ostringstream size;
  size << std::hex << data.size();
  send(size.str() + "\r\n" + std::string(data) + "\r\n");
}

}  // namespace tandem::serving
