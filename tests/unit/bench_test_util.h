// Running `tandem bench collectives` ranks from tests, and reading its table.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/process_util.h"
#include "tests/unit/test_paths.h"

namespace tandem::testing {

// argv of one rank: `prefix... tandem bench collectives --rank r --world-size 2 args...`
inline std::vector<std::string> bench_rank_argv(const std::vector<std::string>& prefix, int rank,
                                                const std::vector<std::string>& args) {
  std::vector<std::string> argv = prefix;
  for (const std::string& a : std::vector<std::string>{tandem_binary(), "bench", "collectives", "--rank",
                                                       std::to_string(rank), "--world-size", "2"})
    argv.push_back(a);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

struct BenchTable {
  size_t rows = 0;
  size_t wrong_rows = 0;  // rows whose #wrong is not 0
  std::string first_wrong;
};

// The rows of the table (lines not starting with '#'); the last column is #wrong.
inline BenchTable read_table(const std::string& out) {
  BenchTable t;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    ++t.rows;
    const std::string wrong = line.substr(line.find_last_of(' ') + 1);
    if (wrong != "0") {
      if (t.wrong_rows++ == 0) t.first_wrong = line;
    }
  }
  return t;
}

}  // namespace tandem::testing
