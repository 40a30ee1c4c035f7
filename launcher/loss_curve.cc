// loss.csv: writing, appending and reading (the chart is loss_chart.cc).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <string_view>

#include "launcher/fd_io.h"
#include "launcher/loss_curve.h"

namespace tandem::launcher {
namespace {

constexpr size_t kFields = 5;

void append_number(std::string& out, double v) {
  if (std::isnan(v)) return;  // not measured: an empty field
  // Shortest text that parses back to the same double.
  std::array<char, 32> buf;
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  TANDEM_CHECK(ec == std::errc());  // 32 chars hold any double
  out.append(buf.data(), end);
}

bool parse_step(std::string_view field, int64_t& step) {
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), step);
  return ec == std::errc() && end == field.data() + field.size();
}

bool parse_value(std::string_view field, double& v) {
  if (field.empty()) {
    v = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  return ec == std::errc() && end == field.data() + field.size();
}

}  // namespace

Result<LossPoint> parse_loss_csv_line(std::string_view line) {
  std::array<std::string_view, kFields> fields;
  size_t n = 0;
  for (size_t begin = 0;; ++n) {
    const size_t comma = line.find(',', begin);
    if (n < kFields) fields[n] = line.substr(begin, comma == std::string_view::npos ? comma : comma - begin);
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  if (n + 1 != kFields)
    return DataLoss("expected " + std::to_string(kFields) + " comma-separated fields, got " +
                    std::to_string(n + 1));
  LossPoint p;
  if (!parse_step(fields[0], p.step)) return DataLoss("step '" + std::string(fields[0]) + "' is not an integer");
  constexpr const char* kNames[] = {"train_loss", "val_loss", "lr", "tokens_per_s"};
  double* values[] = {&p.train_loss, &p.val_loss, &p.lr, &p.tokens_per_s};
  for (size_t i = 0; i < 4; ++i)
    if (!parse_value(fields[i + 1], *values[i]))
      return DataLoss(std::string(kNames[i]) + " '" + std::string(fields[i + 1]) + "' is not a number");
  return p;
}

std::string loss_csv_header() { return "step,train_loss,val_loss,lr,tokens_per_s"; }

std::string loss_csv_line(const LossPoint& p) {
  std::string line = std::to_string(p.step);
  for (double v : {p.train_loss, p.val_loss, p.lr, p.tokens_per_s}) {
    line += ',';
    append_number(line, v);
  }
  return line;
}

Status append_loss_csv(const std::string& path, const LossPoint& point) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return TANDEM_ERRNO("opening " + path + " to append");
  struct stat st {};
  Status s;
  if (::fstat(fd, &st) != 0) s = TANDEM_ERRNO("stat of " + path);
  // One write per record: O_APPEND puts it whole at the end.
  std::string text;
  if (s.ok() && st.st_size == 0) text = loss_csv_header() + '\n';
  text += loss_csv_line(point) + '\n';
  if (s.ok()) s = write_all(fd, text, path);
  if (::close(fd) != 0 && s.ok()) s = TANDEM_ERRNO("closing " + path);
  return s;
}

Result<std::vector<LossPoint>> read_loss_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return TANDEM_ERRNO("opening " + path);
  std::vector<LossPoint> points;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // written on Windows, or by hand
    const std::string where = path + ":" + std::to_string(number) + ": ";
    if (number == 1) {
      if (line != loss_csv_header())
        return DataLoss(where + "expected the header '" + loss_csv_header() + "', got '" + line + "'");
      continue;
    }
    auto point = parse_loss_csv_line(line);
    if (!point.ok()) return DataLoss(where + point.status().message());
    points.push_back(*point);
  }
  if (in.bad()) return TANDEM_ERRNO("reading " + path);
  return points;
}

}  // namespace tandem::launcher
