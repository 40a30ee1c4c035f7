// Internal to the HTTP server: one connection (http_session.cc: reading,
// routing, writing; http_generation.cc: a generation's events -> the
// response, streamed or whole). Every method runs on the connection's strand.
#pragma once

#include <array>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <optional>
#include <string>

#include "runtime/serving/http_internal.h"

namespace tandem::serving {

// A request's headers may take this much (431 past it).
inline constexpr uint32_t kMaxHeaderBytes = 16 * 1024;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(HttpServer::Impl& server, tcp::socket socket);
  ~HttpSession();
  void start() { read_request(); }

 private:
  using error_code = boost::system::error_code;

  // Reading (http_session.cc)
  void read_request();
  void read_header();
  void read_body();
  void on_read_error(error_code ec);
  void handle();
  // Writing: bytes queue in outbox_ and go out one write at a time.
  void send(std::string bytes);
  void flush();
  void send_response(int status, std::string_view content_type, std::string body, std::string_view allow = {});
  void send_error(const ApiError& error, std::string_view allow = {});
  void response_done();  // the response is out: next request, or close
  void close();

  // A generation (http_generation.cc)
  void generate(ApiKind kind, const std::string& body);
  void drain();
  void on_event(const ServingEvent& event);
  void on_finished(const ServingEvent& event);
  void on_failed(const Status& status);
  void start_stream();
  void send_chunk(std::string_view data);  // one HTTP/1.1 chunk
  void end_stream_with_error(const ApiError& error);
  void end_generation();  // the exchange is done: forget it
  void cancel_generation();
  // The client left, flooded us or cannot keep up: no more of the response
  // goes to it, its generation is cancelled, and the connection will close.
  void give_up_on_client();
  void watch_client();

  HttpServer::Impl& server_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  Deadline request_deadline_{};
  std::string outbox_, in_flight_;
  bool writing_ = false;
  bool response_complete_ = false;  // the last bytes of the response are queued
  bool keep_alive_ = false;
  bool close_after_ = false;
  bool closed_ = false;

  // The generation in progress, if any.
  std::shared_ptr<Exchange> exchange_;
  ApiRequest api_;
  ResponseMeta meta_;
  bool headers_sent_ = false;   // streaming: the 200 and the event-stream headers are out
  std::string text_;            // whole response: the text so far
  std::string pending_utf8_;    // streaming: an incomplete UTF-8 sequence held back
  bool client_gone_ = false;
  bool cancel_sent_ = false;
  // While generating, a read watches for the client going away (EOF, reset).
  bool watching_ = false;
  bool read_after_watch_ = false;
  std::array<char, 1024> watch_buf_{};
};

}  // namespace tandem::serving
