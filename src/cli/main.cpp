// autoround command line: CLI11 parses the options, each subcommand's callback calls the library.
// Bad input surfaces here as ar::Error: printed as "error: ..." with exit code 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>
#include <cstdlib>
#include <exception>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/thread_pinning.h"
#include "pipeline/backend.h"
#ifdef AR_HAVE_MPI
#include "dist/mpi_comm.h"
#endif

namespace ar::cli {

namespace {
Comm* g_comm = nullptr;

// mpirun (Open MPI, MPICH) and srun set these in every process they start. Without them MPI is
// not initialised at all: a plain run needs no MPI runtime.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}
}  // namespace

Comm& process_comm() { return g_comm ? *g_comm : single_process_comm(); }
void print_peak_memory() {
  MemStats m = read_mem_stats();
  std::fprintf(stderr, "peak RSS (VmHWM): %s\n", format_bytes(m.peak_bytes).c_str());
}

std::string version_text() { return std::string("autoround ") + AR_VERSION + "\n" + compute_backend_summary(); }

void start_run() {
  const std::string pinning = pin_threads_one_per_cpu();
  log_info("autoround ", AR_VERSION, " | ", compute_backend_summary(), " | ", pinning);
}
}  // namespace ar::cli

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f) a write should fail with EFBIG and be reported with the
  // file's name, not kill the process silently.
  std::signal(SIGXFSZ, SIG_IGN);
#ifdef AR_HAVE_MPI
  std::optional<ar::MpiSession> mpi;
  if (ar::cli::launched_by_mpi()) {
    mpi.emplace(&argc, &argv);
    ar::cli::g_comm = &mpi->comm();
  }
  // A failed rank ends the whole job at once (the others may be waiting for it in a collective
  // operation); mpirun then names the rank that aborted.
  auto finish = [&](int code) {
    if (code != 0 && mpi && mpi->comm().size() > 1) mpi->abort(code);
    return code;
  };
#else
  auto finish = [](int code) { return code; };
#endif
  const int rank = ar::cli::process_comm().rank();
  const std::string who = ar::cli::process_comm().size() > 1 ? ar::cat(" (rank ", rank, ")") : std::string();
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
    std::fprintf(stderr, "stopped%s: %s\n", who.c_str(), e.what());
    return finish(128 + e.signal());
  } catch (const ar::Error& e) {
    std::fprintf(stderr, "error%s: %s\n", who.c_str(), e.what());
    return finish(1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error%s: %s\n", who.c_str(), e.what());
    return finish(2);
  }
  return 0;
}
