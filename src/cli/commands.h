// Each subcommand lives in its own cmd_<name>.cpp: `add_<name>_command` declares its options on
// the CLI11 app and sets the callback that runs it. Library errors (ar::Error) propagate to main.
#pragma once
#include <CLI/CLI.hpp>

#include "core/comm.h"

namespace ar::cli {

// The processes of this run: MPI's when started by mpirun/srun (and built with MPI), else the
// single process.
Comm& process_comm();

void add_quantize_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_eval_command(CLI::App& app);

// Pins the threads one per CPU when the run takes the whole machine (core/thread_pinning.h), then
// logs the version, the GEMM backend's library, ISA, native bf16, thread count and pinning: the
// first line of every quantize and eval run, so a result can be tied to the kernels that made it.
void start_run();

// Prints "peak RSS <VmHWM>" to stderr: every command ends with it.
void print_peak_memory();

}  // namespace ar::cli
