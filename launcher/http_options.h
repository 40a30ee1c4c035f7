// The config's `http` section as the HTTP front end's options
// (runtime/serving/http_server.h): what rank 0 of `job: serve` starts over
// the leader's serving engine.
#pragma once

#include "launcher/config.h"
#include "runtime/loaded_model.h"
#include "runtime/serving/http_server.h"

namespace tandem::launcher {

// The config's http section as server options for `model`: its id (model_name,
// else model.path's last component) and its chat template (http.chat_template
// by family name, else the model file's own; none: chat requests get a 400
// naming why).
serving::HttpServerOptions http_options(const RunConfig& config, const LoadedModel& model);

}  // namespace tandem::launcher
