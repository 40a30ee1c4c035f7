#include "launcher/worker_job.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "launcher/engine_call.h"
#include "launcher/http_options.h"
#include "launcher/lockstep.h"
#include "runtime/deadline.h"
#ifdef TANDEM_HAVE_CONTROL
#include "launcher/control_handler.h"
#endif

namespace tandem::launcher {
namespace {

// Client mistakes end the request; anything else (a peer lost mid-step)
// ends the job.
bool is_request_error(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kOutOfRange;
}

// What this rank holds: its shard's weights and the model's activations and
// KV cache, exchanged once so rank 0 can report every rank's.
Result<std::vector<uint64_t>> gather_memory(WorkerContext& ctx) {
  const uint64_t mine = ctx.model.model->weight_bytes() + ctx.model.model->allocated_bytes();
  std::vector<uint64_t> all(static_cast<size_t>(ctx.comm.size()));
  const Deadline deadline = deadline_after(seconds_to_ms(ctx.config.launch.step_timeout_s));
  TANDEM_RETURN_IF_ERROR(ctx.comm.all_gather(&mine, all.data(), 1, tandem::DType::kI64, deadline));
  return all;
}

}  // namespace

GenerateRequest request_from_config(const GenerateConfig& config) {
  GenerateRequest request;
  request.prompt = config.prompt;
  request.steps = config.steps;
  request.sampler = make_sampler_config(config.temperature, config.top_p, config.top_k, config.seed);
  if (!config.dump_logits.empty()) {
    request.on_prompt_logits = [path = config.dump_logits](std::span<const float> logits) {
      return save_logits(path, logits);
    };
  }
  return request;
}

Leader::Leader(WorkerContext& context)
    : ctx_(context), step_(context.comm, *context.model.model, seconds_to_ms(context.config.launch.step_timeout_s)) {}

double Leader::uptime_s() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

Status Leader::gather_memory() {
  TANDEM_ASSIGN_OR_RETURN(memory_, launcher::gather_memory(ctx_));
  return Status::Ok();
}

Status Leader::start_engine() {
  LlamaModel& model = *ctx_.model.model;
  const EngineConfig& config = ctx_.config.engine;
  serving::SchedulerLimits limits;
  limits.max_tokens_per_step = model.max_batch();
  limits.max_running = config.max_running;
  limits.max_queued = config.max_queued;
  limits.max_prefill_tokens = config.max_prefill_tokens;
  limits.context = model.context();
  auto forward = [this](std::span<const SequenceStep> sequences, std::span<float> logits) {
    return step_.forward_batch(sequences, logits);
  };
  // All-greedy steps: each rank's best per row crosses the link, not every
  // row's logits (rows x vocab floats per step at tp > 1).
  auto argmax = [this](std::span<const SequenceStep> sequences, std::span<int32_t> tokens) {
    return step_.forward_batch_argmax(sequences, tokens);
  };
  TANDEM_ASSIGN_OR_RETURN(engine_, serving::Scheduler::create(forward, static_cast<int>(model.config().vocab_size),
                                                              ctx_.model.tokenizer, model.paged_kv(), limits, argmax));
  return Status::Ok();
}

int64_t Leader::tokens_served() const {
  return engine_ ? engine_->metrics().generated_tokens : tokens_served_.load();
}

Result<GenerateStats> Leader::submit(const GenerateRequest& request, const PieceSink& on_piece,
                                     const std::atomic<bool>& cancelled) {
  if (engine_) {
    if (!serving_) return Unavailable("the job is not serving (starting or shutting down)");
    auto stats = call_engine(*engine_, ctx_.model.tokenizer, request, on_piece, cancelled);
    if (stats.ok()) ++requests_served_;
    return stats;
  }
  Pending pending{request, on_piece, cancelled};
  std::unique_lock lock(mu_);
  if (shutdown_ || !serving_) return Unavailable("the job is not serving (starting or shutting down)");
  queue_.push_back(&pending);
  cv_.notify_all();
  // The main thread finishes or fails every queued request before run()
  // returns, and each step has its own deadline, so this wait ends; a
  // request cancelled while it waits its turn leaves the queue at once.
  while (!cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return pending.done; })) {
    if (!cancelled.load()) continue;
    if (auto it = std::find(queue_.begin(), queue_.end(), &pending); it != queue_.end()) {
      queue_.erase(it);
      GenerateStats stats;
      stats.stop_reason = "cancelled";
      return stats;
    }
  }
  return std::move(pending.result);
}

void Leader::request_shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  if (engine_) engine_->request_shutdown();
  cv_.notify_all();
}

Status Leader::run_engine() {
  serving_ = true;
  const auto idle = seconds_to_ms(ctx_.config.launch.heartbeat_interval_s);
  Status s = engine_->run([&] { return ctx_.link.stop_requested(); }, [&] { return step_.noop(); }, idle);
  serving_ = false;
  if (!s.ok()) return s;
  if (ctx_.link.stop_requested()) {
    std::fprintf(stderr, "tandem: stopping: %s\n", ctx_.link.stop_reason().c_str());
  }
  return step_.shutdown();
}

Result<GenerateStats> Leader::execute(const GenerateRequest& request, const PieceSink& on_piece,
                                      const std::atomic<bool>& cancelled, std::string* comm_line) {
  // Rank 0's time in communication, split as the generator splits its
  // time: the prompt's forward and the one-token forwards after it.
  LlamaModel& model = *ctx_.model.model;
  double prompt_comm = 0, decode_comm = 0;
  auto timed = [&](int64_t start_pos, auto&& call) {
    const double before = model.comm_seconds();
    auto result = call();
    (start_pos == 0 ? prompt_comm : decode_comm) += model.comm_seconds() - before;
    return result;
  };
  auto forward = [&](std::span<const int> tokens, int64_t start_pos, std::span<float> logits) {
    return timed(start_pos, [&] { return step_.forward(tokens, start_pos, logits); });
  };
  auto sink = [&](int token, std::string_view text) {
    if (cancelled.load() || ctx_.link.stop_requested()) return false;
    return on_piece(token, text);
  };
  auto argmax = [&](std::span<const int> tokens, int64_t start_pos) {
    return timed(start_pos, [&] { return step_.forward_argmax(tokens, start_pos); });
  };
  auto top_k = [&](std::span<const int> tokens, int64_t start_pos, int k, std::vector<TokenLogit>& best) {
    return timed(start_pos, [&] { return step_.forward_top_k(tokens, start_pos, k, best); });
  };
  auto stats = generate(forward, model.context(), ctx_.model.tokenizer, request, sink, argmax, top_k);
  if (stats.ok()) {
    tokens_served_ += stats->generated_tokens;
    ++requests_served_;
    if (ctx_.comm.size() > 1 && stats->generated_tokens > 0) {
      char line[200];
      std::snprintf(line, sizeof line,
                    "tandem: communication: %.3f ms per generated token (%.1f%% of decode), %.1f ms of the "
                    "prompt's forward (%.1f%%)\n",
                    1e3 * decode_comm / stats->generated_tokens,
                    stats->decode_seconds > 0 ? 100 * decode_comm / stats->decode_seconds : 0.0, 1e3 * prompt_comm,
                    stats->prefill_seconds > 0 ? 100 * prompt_comm / stats->prefill_seconds : 0.0);
      if (comm_line != nullptr) {
        *comm_line = line;
      } else {
        std::fputs(line, stderr);
      }
    }
  }
  return stats;
}

Status Leader::run(const GenerateRequest* first) {
  if (engine_ && first == nullptr) return run_engine();
  serving_ = true;
  Status failure;
  if (first != nullptr) {
    // Log lines go out on stderr, the text on stdout: a line printed before
    // the text's last piece could land inside it in the run's log.
    std::string comm_line;
    auto stats = execute(*first, [&](int, std::string_view text) {
      ctx_.link.log(text);
      return true;
    }, shutdown_, &comm_line);
    ctx_.link.log("\n");
    std::fputs(comm_line.c_str(), stderr);
    if (!stats.ok()) {
      failure = stats.status();
    } else {
      std::fprintf(stderr, "tandem: %s\n", describe(*stats, first->sampler.seed).c_str());
    }
    request_shutdown();
  }
  const auto idle = seconds_to_ms(ctx_.config.launch.heartbeat_interval_s);
  std::unique_lock lock(mu_);
  while (failure.ok()) {
    cv_.wait_for(lock, idle, [&] { return !queue_.empty() || shutdown_; });
    if (shutdown_ || ctx_.link.stop_requested()) break;
    if (queue_.empty()) {
      lock.unlock();
      failure = step_.noop();
      lock.lock();
      continue;
    }
    Pending* p = queue_.front();
    queue_.pop_front();
    lock.unlock();
    p->result = execute(p->request, p->on_piece, p->cancelled);
    if (!p->result.ok() && !is_request_error(p->result.status())) failure = p->result.status();
    lock.lock();
    p->done = true;
    cv_.notify_all();
  }
  serving_ = false;
  shutdown_ = true;
  for (Pending* p : queue_) {
    p->result = Unavailable("the job is shutting down");
    p->done = true;
  }
  queue_.clear();
  cv_.notify_all();
  lock.unlock();
  if (!failure.ok()) return failure;
  if (ctx_.link.stop_requested()) {
    std::fprintf(stderr, "tandem: stopping: %s\n", ctx_.link.stop_reason().c_str());
  }
  return step_.shutdown();
}

Status run_leader(WorkerContext& context) {
  Leader leader(context);
  TANDEM_RETURN_IF_ERROR(leader.gather_memory());
  const RunConfig& config = context.config;
  if (config.job == JobKind::kServe) TANDEM_RETURN_IF_ERROR(leader.start_engine().with_context("the serving engine"));
#ifdef TANDEM_HAVE_CONTROL
  LeaderControl handler(leader, config, context.model.model->config());
  control::ControlServerOptions options{config.control.address, config.control.port, context.token,
                                        config.control.tls.cert, config.control.tls.key,
                                        config.control.tls.client_ca};
  options.write_timeout = seconds_to_ms(config.control.write_timeout_s);
  auto server = control::ControlServer::start(options, &handler);
  if (!server.ok()) return server.status().with_context("control endpoint");
  context.link.record("control", {(*server)->endpoint()});
#else
  if (config.job == JobKind::kServe) {
    return Unimplemented("job: serve needs the control plane, which this build lacks (no grpc++ for this target)");
  }
#endif
  // The OpenAI-compatible endpoint, over the leader's scheduler (as gRPC Generate).
  std::unique_ptr<serving::HttpServer> http;
  if (config.job == JobKind::kServe && config.http.enabled) {
    auto started =
        serving::HttpServer::start(*leader.engine(), context.model.tokenizer, http_options(config, context.model));
    if (!started.ok()) return started.status().with_context("http endpoint");
    http = std::move(*started);
    std::fprintf(stderr, "tandem: http endpoint %s\n", http->endpoint().c_str());
    context.link.record("http", {http->endpoint()});
  }
  context.link.record("ready");
  Status s;
  if (config.job == JobKind::kGenerate) {
    const GenerateRequest request = request_from_config(config.generate);
    s = leader.run(&request);
  } else {
    s = leader.run(nullptr);
  }
  if (http) {
    if (Status stopped = http->stop(deadline_after(std::chrono::seconds(5))); !stopped.ok()) {
      std::fprintf(stderr, "tandem: http endpoint: %s\n", stopped.message().c_str());
    }
  }
#ifdef TANDEM_HAVE_CONTROL
  (*server)->shutdown(deadline_after(std::chrono::seconds(5)));
#endif
  return s;
}

Status run_follower(WorkerContext& context) {
  TANDEM_RETURN_IF_ERROR(gather_memory(context).status());
  context.link.record("ready");
  Lockstep step(context.comm, *context.model.model, seconds_to_ms(context.config.launch.step_timeout_s));
  Status s = step.follow([&] { return context.link.stop_requested(); });
  if (s.code() == StatusCode::kAborted && context.link.stop_requested()) {
    std::fprintf(stderr, "tandem: stopping: %s\n", context.link.stop_reason().c_str());
    return Status::Ok();
  }
  return s;
}

}  // namespace tandem::launcher
