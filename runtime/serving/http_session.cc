// One HTTP connection: read a request within its deadline, route it, answer,
// and keep the connection alive for the next. Everything here runs on the
// connection's strand; engine events reach it through its Exchange.
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sstream>

#include "runtime/serving/http_internal.h"
#include "runtime/serving/http_session.h"

namespace tandem::serving {

namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;

HttpSession::HttpSession(HttpServer::Impl& server, tcp::socket socket)
    : server_(server), stream_(std::move(socket)) {}

HttpSession::~HttpSession() {
  // The connection went away with a generation still running: nobody can
  // take its events any more.
  if (exchange_) {
    RequestId id;
    {
      std::lock_guard lock(exchange_->mu);
      exchange_->abandoned = true;
      exchange_->wake = nullptr;
      id = exchange_->id;
    }
    if (!cancel_sent_) server_.engine.cancel(id);
    server_.remove_active(exchange_);
  }
}

void HttpSession::read_request() {
  parser_.emplace();
  parser_->body_limit(static_cast<uint64_t>(server_.options.max_request_bytes));
  parser_->header_limit(kMaxHeaderBytes);
  if (buffer_.size() > 0) return read_header();
  // Idle keep-alive: wait for the next request's first bytes at most idle_timeout.
  stream_.expires_after(server_.options.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, size_t n) {
    if (ec) return self->close();
    self->buffer_.commit(n);
    self->read_header();
  });
}

void HttpSession::read_header() {
  // One deadline for the headers and the body: a client trickling bytes
  // (slowloris) cannot hold the connection past it.
  request_deadline_ = Clock::now() + server_.options.read_timeout;
  stream_.expires_at(request_deadline_);
  http::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](error_code ec, size_t) {
    if (ec) return self->on_read_error(ec);
    const auto& req = self->parser_->get();
    // curl sends this for bodies over 1 KiB and waits a second for the go-ahead.
    if (!self->parser_->is_done() && beast::iequals(req[http::field::expect], "100-continue")) {
      self->send("HTTP/1.1 100 Continue\r\n\r\n");
    }
    self->read_body();
  });
}

void HttpSession::read_body() {
  if (parser_->is_done()) return handle();
  stream_.expires_at(request_deadline_);
  http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](error_code ec, size_t) {
    if (ec) return self->on_read_error(ec);
    self->handle();
  });
}

void HttpSession::on_read_error(error_code ec) {
  close_after_ = true;
  keep_alive_ = false;
  if (ec == http::error::body_limit) {
    ApiError e = invalid_request("the request body exceeds http.max_request_bytes (" +
                                 std::to_string(server_.options.max_request_bytes) + " bytes)",
                                 "", "request_too_large");
    e.http_status = 413;
    return send_error(e);
  }
  if (ec == http::error::header_limit) {
    ApiError e = invalid_request("the request headers exceed " + std::to_string(kMaxHeaderBytes / 1024) + " KiB", "",
                                 "headers_too_large");
    e.http_status = 431;
    return send_error(e);
  }
  if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
    return close();  // a slow, silent or departed client: nobody to answer
  }
  send_error(invalid_request("malformed HTTP request: " + ec.message()));
}

void HttpSession::send(std::string bytes) {
  outbox_ += bytes;
  flush();
}

void HttpSession::flush() {
  if (writing_ || outbox_.empty() || closed_) return;
  writing_ = true;
  in_flight_.swap(outbox_);
  outbox_.clear();
  stream_.expires_after(server_.options.write_timeout);
  asio::async_write(stream_, asio::buffer(in_flight_), [self = shared_from_this()](error_code ec, size_t) {
    self->writing_ = false;
    self->in_flight_.clear();
    if (ec) {
      // Stopped reading for write_timeout, or gone.
      self->client_gone_ = true;
      self->cancel_generation();
      return self->close();
    }
    if (!self->outbox_.empty()) return self->flush();
    if (self->response_complete_) return self->response_done();
    // Given up on (it could not keep up, or flooded us) while this write was
    // out, and nothing more will be written: no response will complete.
    if (self->client_gone_ && !self->exchange_) self->close();
  });
}

void HttpSession::send_response(int status, std::string_view content_type, std::string body,
                                std::string_view allow) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::server, "tandem");
  // Beast 1.74 takes boost::string_view, not std::string_view.
  res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  if (!allow.empty()) res.set(http::field::allow, beast::string_view(allow.data(), allow.size()));
  res.keep_alive(keep_alive_ && !close_after_);
  res.body() = std::move(body);
  res.prepare_payload();
  server_.metrics->count_request(status);
  std::ostringstream out;
  out << res;
  response_complete_ = true;
  send(out.str());
}

void HttpSession::send_error(const ApiError& error, std::string_view allow) {
  send_response(error.http_status, "application/json", error_body(error), allow);
}

void HttpSession::response_done() {
  response_complete_ = false;
  headers_sent_ = false;
  if (close_after_ || !keep_alive_ || client_gone_) return close();
  if (watching_) {
    // The watch read ends with operation_aborted and starts the next read.
    read_after_watch_ = true;
    error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  read_request();
}

void HttpSession::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
  cancel_generation();
}

void HttpSession::handle() {
  const auto& req = parser_->get();
  keep_alive_ = req.keep_alive();
  std::string_view target(req.target().data(), req.target().size());
  target = target.substr(0, target.find('?'));
  const http::verb method = req.method();
  auto only = [&](http::verb allowed, std::string_view name) {
    if (method == allowed) return true;
    ApiError e = invalid_request("method " + std::string(req.method_string()) + " is not allowed on " +
                                     std::string(target) + " (use " + std::string(name) + ")",
                                 "", "method_not_allowed");
    e.http_status = 405;
    send_error(e, name);
    return false;
  };
  if (target == "/health") {
    if (!only(http::verb::get, "GET")) return;
    const bool up = !server_.stopping;
    return send_response(up ? 200 : 503, "application/json", up ? R"({"status":"ok"})" : R"({"status":"stopping"})");
  }
  if (target == "/metrics") {
    if (!only(http::verb::get, "GET")) return;
    return send_response(200, "text/plain; version=0.0.4; charset=utf-8",
                         server_.metrics->render(server_.engine.metrics()));
  }
  if (target.starts_with("/v1/") && !server_.options.api_keys.empty()) {
    const auto auth = req[http::field::authorization];
    if (!authorized(std::string_view(auth.data(), auth.size()), server_.options.api_keys)) {
      ApiError e = invalid_request(auth.empty() ? "missing API key (send `Authorization: Bearer KEY`)"
                                                : "incorrect API key provided",
                                   "", "invalid_api_key");
      e.http_status = 401;
      return send_error(e);
    }
  }
  const std::string& model = server_.options.model_id;
  if (target == "/v1/models") {
    if (!only(http::verb::get, "GET")) return;
    return send_response(200, "application/json", models_body(model, server_.created));
  }
  if (target.starts_with("/v1/models/")) {
    if (!only(http::verb::get, "GET")) return;
    if (target.substr(std::string_view("/v1/models/").size()) == model) {
      return send_response(200, "application/json", model_body(model, server_.created));
    }
    ApiError e = invalid_request("The model '" + std::string(target.substr(11)) + "' does not exist", "model",
                                 "model_not_found");
    e.http_status = 404;
    return send_error(e);
  }
  if (target == "/v1/completions" || target == "/v1/chat/completions") {
    if (!only(http::verb::post, "POST")) return;
    return generate(target == "/v1/completions" ? ApiKind::kCompletion : ApiKind::kChat, req.body());
  }
  ApiError e = invalid_request("unknown route " + std::string(req.method_string()) + " " + std::string(target), "",
                               "unknown_url");
  e.http_status = 404;
  send_error(e);
}

}  // namespace tandem::serving
