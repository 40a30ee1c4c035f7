// `tandem info`: what this build and machine offer (CPU kernels, GPUs).
#include <fmt/core.h>

#include <thread>

#include "launcher/commands.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cuda/cuda_device.h"

namespace tandem::cli {

void add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "Show this build's backends and this machine's devices");
  cmd->callback([] {
    fmt::print("tandem       {}\n", TANDEM_VERSION);
    fmt::print("cpu          {} hardware threads, kernels {} (best here: {})\n",
               std::thread::hardware_concurrency(), cpu::isa_name(cpu::active_isa()),
               cpu::isa_name(cpu::best_isa()));
    auto gpus = list_cuda_devices();
    if (!gpus.ok()) {
      fmt::print("cuda         {}: {}\n", cuda_built() ? "built" : "not built", gpus.status().message());
    } else {
      for (const CudaDeviceInfo& d : *gpus)
        fmt::print("cuda:{}       {} (sm_{}{}), {:.1f} GiB{}, {} SMs\n", d.ordinal, d.name, d.compute_major,
                   d.compute_minor, d.total_memory / double(1 << 30), d.integrated ? " unified" : "",
                   d.multiprocessors);
    }
    set_exit_code(0);
  });
}

}  // namespace tandem::cli
