#include "pipeline/backend.h"

#include "kernels/gemm.h"

namespace ar {

std::string compute_backend_summary() { return gemm_backend_summary(); }

}  // namespace ar
