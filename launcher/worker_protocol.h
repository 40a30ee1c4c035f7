// The channel between `tandem launch` and each worker: the worker's stdio,
// the same through an ssh session as through a local pipe, so nothing else
// (no port, no file on the remote host) is needed to start, watch and stop a
// worker, and the job secret never appears on a command line.
//
// Launcher -> worker (stdin), version 1, text lines:
//   TANDEM-WORKER 1                   the protocol version, first
//   token <hex>                       the job secret
//   config <bytes>\n<bytes of YAML>   the resolved run config
//   start                             end of the header
// then at any time:
//   ping                              the launcher's heartbeat
//   coordinator <host> <port>         (ranks > 0) where rank 0's bootstrap listens
//   stop <reason>                     wind down and exit
//   end of file                       the launcher is gone: the worker exits at once
//
// Worker -> launcher (stdout): log text, with records set in it, each
//   "\x1e" "tandem " <kind> [<arg> ...] "\n"
// kinds: hb <n> (heartbeat) | coordinator <port> | control <host:port> |
// ready | exit <code>. A record is written whole, with one write, so it may
// cut a log line in two but never mixes with another record.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem::launcher {

inline constexpr int kWorkerProtocolVersion = 1;
inline constexpr char kRecordMark = '\x1e';

struct WorkerHeader {
  std::string token;
  std::string config_yaml;
};

// The header's bytes, as the launcher writes them.
std::string encode_worker_header(const WorkerHeader& header);

// A record's bytes: "\x1etandem <kind> <args...>\n".
std::string encode_record(std::string_view kind, const std::vector<std::string>& args = {});

struct WorkerRecord {
  std::string kind;
  std::vector<std::string> args;
};

// Splits a worker's output stream into log lines and records. Feed it bytes
// as they arrive; it calls on_line for each complete log line (without its
// newline) and on_record for each record.
class WorkerOutputSplitter {
 public:
  using LineFn = std::function<void(std::string_view line)>;
  using RecordFn = std::function<void(const WorkerRecord& record)>;
  WorkerOutputSplitter(LineFn on_line, RecordFn on_record)
      : on_line_(std::move(on_line)), on_record_(std::move(on_record)) {}

  void feed(std::string_view bytes);
  // End of stream: an unfinished line is still a line.
  void finish();

 private:
  void end_record();
  LineFn on_line_;
  RecordFn on_record_;
  std::string line_;
  std::string record_;
  bool in_record_ = false;
};

// Reads the header from `fd` (the worker's stdin) by the deadline, byte by
// byte up to the config so nothing after it is consumed. Errors name what
// was wrong: a version mismatch, a missing field, a short config.
class LineReader;
Result<WorkerHeader> read_worker_header(LineReader& reader);

}  // namespace tandem::launcher
