#include "support/run.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "support/fixtures.h"

namespace ar::test {

RunResult run_command(const std::string& command) {
  auto dir = make_temp_dir("run");
  auto out = dir / "stdout", err = dir / "stderr";
  std::string full = command + " >" + out.string() + " 2>" + err.string();
  int status = std::system(full.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove_all(dir);
  return r;
}

std::optional<uint64_t> reported_peak_rss(const std::string& text) {
  std::smatch m;
  static const std::regex re(R"(peak RSS \(VmHWM\): ([0-9.]+) (B|KiB|MiB|GiB))");
  if (!std::regex_search(text, m, re)) return std::nullopt;
  double v = std::stod(m[1]);
  const std::string unit = m[2];
  double mul = unit == "GiB" ? 1024.0 * 1024 * 1024 : unit == "MiB" ? 1024.0 * 1024 : unit == "KiB" ? 1024.0 : 1.0;
  return uint64_t(v * mul);
}

}  // namespace ar::test
