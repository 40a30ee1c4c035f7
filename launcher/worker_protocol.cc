#include "launcher/worker_protocol.h"

#include <charconv>

#include "launcher/fd_io.h"

namespace tandem::launcher {
namespace {

constexpr std::string_view kRecordPrefix = "tandem ";
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxPendingLine = 64 * 1024;  // longer "lines" are passed on in pieces

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    const size_t end = std::min(text.find(' ', i), text.size());
    if (end > i) words.emplace_back(text.substr(i, end - i));
    i = end + 1;
  }
  return words;
}

std::string_view after(std::string_view line, std::string_view word) {
  return line.substr(0, word.size()) == word ? line.substr(word.size()) : std::string_view();
}

}  // namespace

std::string encode_worker_header(const WorkerHeader& header) {
  return "TANDEM-WORKER " + std::to_string(kWorkerProtocolVersion) + "\ntoken " + header.token + "\nconfig " +
         std::to_string(header.config_yaml.size()) + "\n" + header.config_yaml + "start\n";
}

std::string encode_record(std::string_view kind, const std::vector<std::string>& args) {
  std::string out(1, kRecordMark);
  out += kRecordPrefix;
  out += kind;
  for (const std::string& a : args) out += " " + a;
  out += "\n";
  return out;
}

void WorkerOutputSplitter::feed(std::string_view bytes) {
  for (const char c : bytes) {
    if (in_record_) {
      if (c == '\n') {
        end_record();
      } else if (record_.size() < kMaxPendingLine) {
        record_ += c;
      }
    } else if (c == kRecordMark) {
      in_record_ = true;
    } else if (c == '\n') {
      on_line_(line_);
      line_.clear();
    } else {
      line_ += c;
      if (line_.size() >= kMaxPendingLine) {
        on_line_(line_);
        line_.clear();
      }
    }
  }
}

void WorkerOutputSplitter::end_record() {
  in_record_ = false;
  const std::string_view body = after(record_, kRecordPrefix);
  std::vector<std::string> words = split_words(body);
  if (record_.substr(0, kRecordPrefix.size()) != kRecordPrefix || words.empty()) {
    line_ += record_;  // not ours after all: text that happened to hold the mark
  } else {
    WorkerRecord r{std::move(words.front()), {}};
    r.args.assign(std::make_move_iterator(words.begin() + 1), std::make_move_iterator(words.end()));
    on_record_(r);
  }
  record_.clear();
}

void WorkerOutputSplitter::finish() {
  if (in_record_) end_record();
  if (!line_.empty()) on_line_(line_);
  line_.clear();
}

Result<WorkerHeader> read_worker_header(LineReader& reader) {
  // The whole header is written at once by the launcher.
  const Deadline deadline = deadline_after(std::chrono::seconds(30));
  TANDEM_ASSIGN_OR_RETURN(std::string hello, reader.read_line(deadline));
  const std::string expected = "TANDEM-WORKER " + std::to_string(kWorkerProtocolVersion);
  if (hello != expected) {
    return FailedPrecondition("worker channel: the launcher sent '" + hello.substr(0, 40) +
                              "', this worker speaks '" + expected + "' (tandem versions differ?)");
  }
  WorkerHeader header;
  TANDEM_ASSIGN_OR_RETURN(std::string token_line, reader.read_line(deadline));
  header.token = std::string(after(token_line, "token "));
  if (header.token.empty()) return InvalidArgument("worker channel: expected 'token <hex>'");
  TANDEM_ASSIGN_OR_RETURN(std::string config_line, reader.read_line(deadline));
  const std::string_view size_text = after(config_line, "config ");
  size_t size = 0;
  const auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
  if (size_text.empty() || ec != std::errc() || end != size_text.data() + size_text.size() ||
      size > kMaxConfigBytes) {
    return InvalidArgument("worker channel: expected 'config <bytes>' (at most 1 MiB), got '" +
                           config_line.substr(0, 40) + "'");
  }
  TANDEM_ASSIGN_OR_RETURN(header.config_yaml, reader.read_bytes(size, deadline));
  TANDEM_ASSIGN_OR_RETURN(std::string start, reader.read_line(deadline));
  if (start != "start") return InvalidArgument("worker channel: expected 'start' after the config");
  return header;
}

}  // namespace tandem::launcher
