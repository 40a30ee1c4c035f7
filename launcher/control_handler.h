// Rank 0's answer to the control plane (proto/control_server.h): Health,
// Status and Generate go to the Leader, which runs them with every rank in
// step; Shutdown ends the job. Built only with the control plane (gRPC).
#pragma once

#include "launcher/worker_job.h"
#include "proto/control_server.h"

namespace tandem::launcher {

class LeaderControl final : public control::JobHandler {
 public:
  LeaderControl(Leader& leader, const RunConfig& config, const LlamaConfig& model)
      : leader_(leader), config_(config), model_(model) {}

  Status health() override;
  Result<control::JobStatus> status() override;
  Result<control::GenerateSummary> generate(const control::GenerateParams& params,
                                            const std::function<bool(const control::GeneratedPiece&)>& sink,
                                            const std::atomic<bool>& cancelled) override;
  void request_shutdown() override { leader_.request_shutdown(); }

 private:
  Leader& leader_;
  const RunConfig& config_;
  LlamaConfig model_;
};

// The request a Generate call makes (no prompt echo; a seed of -1 drawn
// from the clock).
GenerateRequest request_from_params(const control::GenerateParams& params);

}  // namespace tandem::launcher
