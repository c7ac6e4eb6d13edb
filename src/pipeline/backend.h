// What the compute backend is on this machine, for the CLI's --version and run headers (the CLI
// talks to the pipeline, not to kernels).
#pragma once
#include <string>

namespace ar {

// "oneDNN 2.6.3, ISA avx2, native bf16: no, threads: 2"
std::string compute_backend_summary();

}  // namespace ar
