// autoround command line: CLI11 parses the options, each subcommand's callback calls the library.
// Bad input surfaces here as ar::Error: printed as "error: ..." with exit code 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/memory.h"
#include "pipeline/backend.h"

namespace ar::cli {
void print_peak_memory() {
  MemStats m = read_mem_stats();
  std::fprintf(stderr, "peak RSS (VmHWM): %s\n", format_bytes(m.peak_bytes).c_str());
}

std::string version_text() { return std::string("autoround ") + AR_VERSION + "\n" + compute_backend_summary(); }

void print_run_header() { log_info("autoround ", AR_VERSION, " | ", compute_backend_summary()); }
}  // namespace ar::cli

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f) a write should fail with EFBIG and be reported with the
  // file's name, not kill the process silently.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"autoround: SignRound/AutoRound LLM quantization on the CPU"};
  app.set_version_flag("--version", ar::cli::version_text);
  app.require_subcommand(1);
  ar::cli::add_quantize_command(app);
  ar::cli::add_eval_command(app);
  ar::cli::add_tokenize_command(app);
  ar::cli::add_generate_command(app);
  // As in the Python tool, `autoround --model X ...` means `autoround quantize --model X ...`.
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0].size() > 1 && args[0][0] == '-' && args[0] != "-h" && args[0] != "--help" &&
      args[0] != "--version")
    args.insert(args.begin(), "quantize");
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ar::Interrupted& e) {
    std::fprintf(stderr, "stopped: %s\n", e.what());
    return 128 + e.signal();
  } catch (const ar::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
