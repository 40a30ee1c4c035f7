#include "launcher/control_handler.h"

#include <chrono>

namespace tandem::launcher {

GenerateRequest request_from_params(const control::GenerateParams& params) {
  GenerateRequest request;
  if (params.has_prompt_tokens) {
    request.prompt_tokens = params.prompt_tokens;
  } else {
    request.prompt = params.prompt;
  }
  request.max_new_tokens = params.max_tokens;
  request.stop = params.stop;
  request.echo_prompt = false;
  request.sampler = make_sampler_config(params.temperature, params.top_p, params.top_k, params.seed);
  return request;
}

Status LeaderControl::health() {
  if (!leader_.serving()) return Unavailable("the job is not serving (starting or shutting down)");
  return Status::Ok();
}

Result<control::JobStatus> LeaderControl::status() {
  control::JobStatus s;
  const auto& memory = leader_.memory_per_rank();
  for (size_t r = 0; r < config_.cluster.nodes.size(); ++r) {
    s.ranks.push_back({static_cast<int>(r), config_.cluster.nodes[r].host, r < memory.size() ? memory[r] : 0});
  }
  s.model = config_.model.path;
  s.model_shape = "dim " + std::to_string(model_.dim) + ", " + std::to_string(model_.n_layers) + " layers, " +
                  std::to_string(model_.n_heads) + " heads (" + std::to_string(model_.n_kv_heads) +
                  " KV), hidden " + std::to_string(model_.hidden_dim) + ", vocab " +
                  std::to_string(model_.vocab_size) + ", context " + std::to_string(model_.max_seq_len);
  s.tp = config_.parallel.tp;
  s.pp = config_.parallel.pp;
  s.uptime_s = leader_.uptime_s();
  s.tokens_served = leader_.tokens_served();
  s.requests_served = leader_.requests_served();
  s.state = leader_.serving() ? "serving" : "shutting_down";
  return s;
}

Result<control::GenerateSummary> LeaderControl::generate(
    const control::GenerateParams& params, const std::function<bool(const control::GeneratedPiece&)>& sink,
    const std::atomic<bool>& cancelled) {
  const GenerateRequest request = request_from_params(params);
  auto on_piece = [&sink](int token, std::string_view text) {
    return sink(control::GeneratedPiece{token, std::string(text)});
  };
  TANDEM_ASSIGN_OR_RETURN(GenerateStats stats, leader_.submit(request, on_piece, cancelled));
  control::GenerateSummary summary;
  summary.prompt_tokens = stats.prompt_tokens;
  summary.generated_tokens = stats.generated_tokens;
  if (stats.stop_reason == "eos") {
    summary.finish = control::FinishReason::kEos;
  } else if (stats.stop_reason == "stop") {
    summary.finish = control::FinishReason::kStop;
  } else if (stats.stop_reason == "cancelled") {
    summary.finish = control::FinishReason::kCancelled;
  } else {
    summary.finish = control::FinishReason::kLength;
  }
  return summary;
}

}  // namespace tandem::launcher
