// Running the built `autoround` binary from tests, capturing its output and exit code.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace ar::test {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `command` through /bin/sh; stdout and stderr are captured separately.
RunResult run_command(const std::string& command);

// The peak RSS an autoround run reported ("peak RSS (VmHWM): 12.3 MiB"), in bytes.
std::optional<uint64_t> reported_peak_rss(const std::string& stderr_text);

}  // namespace ar::test
