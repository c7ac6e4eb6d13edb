// autoround command line: CLI11 parses the options, each subcommand's callback calls the library.
// Bad input surfaces here as ar::Error: printed as "error: ..." with exit code 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/memory.h"

namespace ar::cli {
void print_peak_memory() {
  MemStats m = read_mem_stats();
  std::fprintf(stderr, "peak RSS (VmHWM): %s\n", format_bytes(m.peak_bytes).c_str());
}
}  // namespace ar::cli

int main(int argc, char** argv) {
  CLI::App app{"autoround: SignRound/AutoRound LLM quantization on the CPU"};
  app.set_version_flag("--version", AR_VERSION);
  app.require_subcommand(1);
  ar::cli::add_eval_command(app);
  ar::cli::add_tokenize_command(app);
  ar::cli::add_generate_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ar::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
