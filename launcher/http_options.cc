#include "launcher/http_options.h"

#include <filesystem>

#include "runtime/deadline.h"

namespace tandem::launcher {

namespace {

std::string model_id(const RunConfig& config) {
  if (!config.http.model_name.empty()) return config.http.model_name;
  std::filesystem::path p(config.model.path);
  if (!p.has_filename()) p = p.parent_path();  // "models/x/"
  const std::string name = p.filename().string();
  return name.empty() ? "tandem" : name;
}

}  // namespace

serving::HttpServerOptions http_options(const RunConfig& config, const LoadedModel& model) {
  const HttpConfig& h = config.http;
  serving::HttpServerOptions o;
  o.address = h.address;
  o.port = h.port;
  o.api_keys = h.api_keys;
  o.model_id = model_id(config);
  o.max_request_bytes = h.max_request_bytes;
  o.default_max_tokens = h.default_max_tokens;
  o.max_tokens = h.max_tokens;
  o.max_queued = h.max_queued;
  o.read_timeout = seconds_to_ms(h.read_timeout_s);
  o.idle_timeout = seconds_to_ms(h.idle_timeout_s);
  o.write_timeout = seconds_to_ms(h.write_timeout_s);
  o.threads = h.threads;
  const Tokenizer& tok = model.tokenizer;
  const std::string bos = tok.bos_id() >= 0 ? tok.piece(tok.bos_id()) : "";
  const std::string eos = tok.eos_id() >= 0 ? tok.piece(tok.eos_id()) : "";
  Result<ChatTemplate> tmpl = FailedPrecondition("no template");
  if (!h.chat_template.empty()) {
    tmpl = ChatTemplate::from_name(h.chat_template, bos, eos);
  } else if (auto source = open_model_source(model.files); source.ok()) {
    tmpl = ChatTemplate::from_jinja(source->tokenizer.chat_template, bos, eos);
  } else {
    tmpl = source.status();
  }
  if (tmpl.ok()) {
    o.chat_template = *tmpl;
  } else {
    o.no_chat_template_reason = config.model.path + ": " + tmpl.status().message() +
                                " (set http.chat_template to a family to choose one)";
  }
  return o;
}

}  // namespace tandem::launcher
