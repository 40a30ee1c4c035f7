// `tandem bench collectives`: the flags, one rank's run, and the table.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "collectives/collectives.h"
#include "launcher/bench_collectives.h"
#include "launcher/bench_collectives_data.h"
#include "launcher/commands.h"

namespace tandem::cli {
namespace {

using collectives::Communicator;
using collectives::ReduceOp;

struct Plan {
  std::vector<BenchOp> ops;
  std::vector<DType> dtypes;
  std::vector<ReduceOp> redops;
  std::vector<size_t> counts;  // explicit counts, or empty: the byte range
  std::vector<size_t> sizes;   // the byte range
  collectives::CommConfig config;
};

Result<Plan> make_plan(const CollectivesBenchFlags& f) {
  Plan p;
  TANDEM_ASSIGN_OR_RETURN(p.ops, parse_bench_ops(f.ops));
  TANDEM_ASSIGN_OR_RETURN(p.dtypes, parse_bench_dtypes(f.dtypes));
  TANDEM_ASSIGN_OR_RETURN(p.redops, parse_reduce_ops(f.redops));
  if (f.iters < 1 || f.warmup < 0) return InvalidArgument("--iters must be at least 1 and --warmup at least 0");
  if (f.timeout_s <= 0) return InvalidArgument("--timeout must be positive");
  if (f.world_size < 1 || f.rank < 0 || f.rank >= f.world_size)
    return InvalidArgument(fmt::format("--rank {} is not in a --world-size of {}", f.rank, f.world_size));
  if (f.root < 0 || f.root >= f.world_size) return InvalidArgument(fmt::format("--root {} is not a rank", f.root));
  if (!f.counts.empty()) {
    std::string_view rest = f.counts;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      TANDEM_ASSIGN_OR_RETURN(size_t c, parse_byte_size(rest.substr(0, comma)));
      p.counts.push_back(c);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  } else {
    TANDEM_ASSIGN_OR_RETURN(size_t lo, parse_byte_size(f.min_bytes));
    TANDEM_ASSIGN_OR_RETURN(size_t hi, parse_byte_size(f.max_bytes));
    if (lo > hi || f.factor <= 1) return InvalidArgument("need --min-bytes <= --max-bytes and --factor > 1");
    for (double s = static_cast<double>(std::max<size_t>(lo, 1)); s <= static_cast<double>(hi) * 1.0000001; s *= f.factor)
      p.sizes.push_back(static_cast<size_t>(s));
    if (lo == 0) p.sizes.insert(p.sizes.begin(), 0);
  }
  if (f.protocol_version < 0 || f.protocol_version > 65535)
    return InvalidArgument("--bootstrap-protocol-version must fit 16 bits");
  collectives::CommConfig& c = p.config;
  c.backend = f.backend;
  const size_t colon = f.coordinator.rfind(':');
  const std::string port = colon == std::string::npos ? "" : f.coordinator.substr(colon + 1);
  if (colon == std::string::npos || port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      port.size() > 5 || std::stoul(port) > 65535)
    return InvalidArgument("--coordinator must be host:port, got '" + f.coordinator + "'");
  c.bootstrap = {f.rank, f.world_size, f.coordinator.substr(0, colon), static_cast<uint16_t>(std::stoul(port)),
                 f.job_id, static_cast<uint16_t>(f.protocol_version), {}};
  if (!f.ucx_tls.empty()) c.ucx["TLS"] = f.ucx_tls;
  if (!f.ucx_net_devices.empty()) c.ucx["NET_DEVICES"] = f.ucx_net_devices;
  for (const std::string& kv : f.ucx_settings) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("--ucx wants KEY=VALUE, got '" + kv + "'");
    c.ucx[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  c.host.chunk_bytes = f.chunk_bytes;
  c.host.small_bytes = f.small_bytes;
  return p;
}

// Blocking send and recv: even ranks send first, odd ranks receive first, so
// a ring of blocking calls cannot deadlock; an iteration is two such phases.
Status sendrecv(Communicator& comm, const void* send, void* recv, size_t bytes, Deadline d) {
  const int n = comm.size(), next = (comm.rank() + 1) % n, prev = (comm.rank() + n - 1) % n;
  if (comm.rank() % 2 == 0) {
    TANDEM_RETURN_IF_ERROR(comm.send(send, bytes, next, 1, d));
    return comm.recv(recv, bytes, prev, 1, d);
  }
  TANDEM_RETURN_IF_ERROR(comm.recv(recv, bytes, prev, 1, d));
  return comm.send(send, bytes, next, 1, d);
}

Status run_one(Communicator& comm, BenchOp op, const BenchLayout& l, DType t, ReduceOp r, int root, const void* send,
               void* recv, Deadline d) {
  switch (op) {
    case BenchOp::kAllReduce: return comm.all_reduce(send, recv, l.count, t, r, d);
    case BenchOp::kAllGather: return comm.all_gather(send, recv, l.count, t, d);
    case BenchOp::kReduceScatter: return comm.reduce_scatter(send, recv, l.count, t, r, d);
    case BenchOp::kBroadcast: return comm.broadcast(recv, l.count, t, root, d);
    case BenchOp::kSendRecv: return sendrecv(comm, send, recv, l.send_bytes, d);
  }
  return Internal("unknown collective");
}

struct Row {
  double time_us = 0;
  int64_t wrong = -1;  // -1: not checked
};

// One row: fill (and check once), then warm-up and timed iterations. The
// time is the median over iterations on each rank, then the slowest rank's.
Result<Row> run_row(Communicator& comm, const CollectivesBenchFlags& f, BenchOp op, const BenchLayout& l, DType t,
                    ReduceOp r, std::vector<char>& send, std::vector<char>& recv) {
  const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.timeout_s));
  try {  // a --max-bytes beyond this machine's memory is an error, not a crash
    if (send.size() < l.send_bytes) send.resize(l.send_bytes);
    if (recv.size() < std::max(l.recv_bytes, l.send_bytes)) recv.resize(std::max(l.recv_bytes, l.send_bytes));
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(fmt::format("rank {}: cannot allocate {} B of buffers", comm.rank(),
                                         l.send_bytes + l.recv_bytes));
  }
  fill_inputs(op, l, t, comm.rank(), send.data(), recv.data());
  Row row;
  if (f.check) {
    TANDEM_RETURN_IF_ERROR(run_one(comm, op, l, t, r, f.root, send.data(), recv.data(), Clock::now() + timeout));
    int64_t wrong = static_cast<int64_t>(count_wrong(op, l, t, r, comm.rank(), comm.size(), f.root, recv.data()));
    TANDEM_RETURN_IF_ERROR(comm.all_reduce(&wrong, &wrong, 1, DType::kI64, ReduceOp::kSum, Clock::now() + timeout));
    row.wrong = wrong;
  }
  std::vector<int64_t> ns;
  for (int i = 0; i < f.warmup + f.iters; ++i) {
    const auto start = Clock::now();
    TANDEM_RETURN_IF_ERROR(run_one(comm, op, l, t, r, f.root, send.data(), recv.data(), start + timeout));
    if (i >= f.warmup) ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  }
  std::nth_element(ns.begin(), ns.begin() + static_cast<ptrdiff_t>(ns.size() / 2), ns.end());
  int64_t median = ns[ns.size() / 2];
  TANDEM_RETURN_IF_ERROR(comm.all_reduce(&median, &median, 1, DType::kI64, ReduceOp::kMax, Clock::now() + timeout));
  row.time_us = static_cast<double>(median) / 1e3 / (op == BenchOp::kSendRecv ? 2 : 1);
  return row;
}

void print_header(const CollectivesBenchFlags& f, const Plan& p, const Communicator& comm) {
  std::string ucx;
  for (const auto& [k, v] : p.config.ucx) ucx += fmt::format(" UCX_{}={}", k, v);
  fmt::print("# tandem bench collectives: backend {}, {} ranks, chunk {} B, small all_reduce <= {} B{}\n",
             comm.backend_name(), comm.size(), f.chunk_bytes, f.small_bytes, ucx.empty() ? "" : "," + ucx);
  fmt::print("# time: median over {} iterations after {} warm-up (slowest rank's median); algbw = size / time;\n"
             "# busbw = algbw x 2(n-1)/n (all_reduce), (n-1)/n (all_gather, reduce_scatter), 1 (broadcast, sendrecv);\n"
             "# sendrecv: even ranks send to rank+1 then receive, odd ranks the reverse; time is per phase\n",
             f.iters, f.warmup);
  std::fflush(stdout);
}

Status run_bench(const CollectivesBenchFlags& f) {
  TANDEM_ASSIGN_OR_RETURN(Plan p, make_plan(f));
  const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.timeout_s));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                          collectives::make_communicator(p.config, Clock::now() + timeout));
  const bool printer = comm->rank() == 0;
  if (printer) print_header(f, p, *comm);
  std::vector<char> send, recv;
  for (BenchOp op : p.ops) {
    if (op == BenchOp::kSendRecv && comm->size() < 2) {
      if (printer) fmt::print("# sendrecv skipped: needs 2 ranks\n");
      continue;
    }
    if (printer) {
      fmt::print("#\n# {}\n#{:>11}  {:>12}  {:>8}  {:>6}  {:>4}  {:>9}  {:>7}  {:>7}  {:>6}\n", bench_op_name(op), "size",
                 "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong");
      fmt::print("#{:>11}  {:>12}  {:>8}  {:>6}  {:>4}  {:>9}  {:>7}  {:>7}  {:>6}\n", "(B)", "(elements)", "", "", "",
                 "(us)", "(GB/s)", "(GB/s)", "");
      std::fflush(stdout);  // a watcher (or a test) sees which collective started
    }
    double busbw_sum = 0;
    int rows = 0;
    for (DType t : p.dtypes) {
      const size_t es = collectives::dtype_size(t);
      const std::vector<ReduceOp> redops = reduces(op) ? p.redops : std::vector<ReduceOp>{ReduceOp::kSum};
      for (ReduceOp r : redops) {
        const size_t n_rows = p.counts.empty() ? p.sizes.size() : p.counts.size();
        for (size_t i = 0; i < n_rows; ++i) {
          const BenchLayout l = p.counts.empty() ? layout_for_bytes(op, p.sizes[i], es, comm->size())
                                                 : layout_for_count(op, p.counts[i], es, comm->size());
          auto row = run_row(*comm, f, op, l, t, r, send, recv);
          if (!row.ok()) return row.status();
          const double algbw = row->time_us > 0 ? static_cast<double>(l.bytes) / (row->time_us * 1e3) : 0;
          const double busbw = algbw * bus_factor(op, comm->size());
          busbw_sum += busbw;
          ++rows;
          // Every rank knows the summed count, so all stop together.
          const bool failed = row->wrong > 0;
          if (!printer && failed) return DataLoss(fmt::format("rank {}: {}: wrong results", comm->rank(), bench_op_name(op)));
          if (!printer) continue;
          fmt::print("{:>12}  {:>12}  {:>8}  {:>6}  {:>4}  {:>9.2f}  {:>7.3f}  {:>7.3f}  {:>6}\n", l.bytes,
                     op == BenchOp::kAllGather || op == BenchOp::kReduceScatter ? l.count * comm->size() : l.count,
                     bench_dtype_name(t), reduces(op) ? reduce_op_name(r) : "none",
                     op == BenchOp::kBroadcast ? f.root : -1, row->time_us, algbw, busbw,
                     row->wrong < 0 ? std::string("N/A") : std::to_string(row->wrong));
          std::fflush(stdout);
          if (failed) return DataLoss(fmt::format("rank 0: {}: {} wrong elements", bench_op_name(op), row->wrong));
        }
      }
    }
    if (printer && rows > 0) fmt::print("# {} avg busbw: {:.3f} GB/s\n", bench_op_name(op), busbw_sum / rows);
  }
  // Nobody tears down while a peer still waits on its last message.
  return comm->barrier(Clock::now() + timeout);
}

}  // namespace

Status run_collectives_bench(const CollectivesBenchFlags& f) { return run_bench(f); }

void add_bench_collectives_command(CLI::App& bench) {
  auto f = std::make_shared<CollectivesBenchFlags>();
  CLI::App* cmd = bench.add_subcommand("collectives", "nccl-tests' table for the collectives across ranks");
  cmd->add_option("--rank", f->rank, "This process's rank")->capture_default_str();
  cmd->add_option("--world-size", f->world_size, "Ranks in the job")->capture_default_str();
  cmd->add_option("--coordinator", f->coordinator, "host:port that rank 0 listens on")->capture_default_str();
  cmd->add_option("--job-id", f->job_id, "Ranks of different jobs refuse each other")->capture_default_str();
  cmd->add_option("--backend", f->backend, "ucx or nccl")->capture_default_str();
  cmd->add_option("--ucx-tls", f->ucx_tls, "UCX transports (UCX_TLS), e.g. tcp,self to keep off shared memory");
  cmd->add_option("--ucx-net-devices", f->ucx_net_devices, "UCX devices (UCX_NET_DEVICES), e.g. veth0");
  cmd->add_option("--ucx", f->ucx_settings, "Another UCX setting KEY=VALUE (repeatable), e.g. TCP_SNDBUF=8m");
  cmd->add_option("--ops", f->ops, "Collectives to run")->capture_default_str();
  cmd->add_option("--min-bytes", f->min_bytes, "Smallest size (K/M/G suffixes)")->capture_default_str();
  cmd->add_option("--max-bytes", f->max_bytes, "Largest size")->capture_default_str();
  cmd->add_option("--factor", f->factor, "Size multiplier between rows")->capture_default_str();
  cmd->add_option("--counts", f->counts, "Element counts instead of sizes, e.g. 0,1,7,4097 (per rank for "
                                         "all_gather / reduce_scatter)");
  cmd->add_option("--dtype", f->dtypes, "float, half, bf16, int32, int64 (comma list)")->capture_default_str();
  cmd->add_option("--redop", f->redops, "sum, max, min (comma list)")->capture_default_str();
  cmd->add_option("--root", f->root, "Broadcast root")->capture_default_str();
  cmd->add_option("--iters", f->iters, "Timed iterations per row")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Untimed iterations first")->capture_default_str();
  cmd->add_flag("--check", f->check, "Check results (rank-dependent integers) and count #wrong");
  cmd->add_option("--timeout", f->timeout_s, "Seconds each call (and connecting) may take")->capture_default_str();
  cmd->add_option("--chunk-bytes", f->chunk_bytes, "Pipelining chunk of the ring algorithms")->capture_default_str();
  cmd->add_option("--small-bytes", f->small_bytes, "all_reduce at or below this: one round")->capture_default_str();
  cmd->add_option("--spawn-local", f->spawn_local, "Fork this many ranks on 127.0.0.1 and run them all");
  cmd->add_option("--bootstrap-protocol-version", f->protocol_version)->group("");  // tests a mismatch
  cmd->callback([f] {
    if (f->spawn_local > 0) {
      set_exit_code(spawn_local_ranks(*f));
      return;
    }
    const Status s = run_collectives_bench(*f);
    set_exit_code(s.ok() ? 0 : report_error(s));
  });
}

}  // namespace tandem::cli
