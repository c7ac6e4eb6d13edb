// autoround_cpp._core: the C++ library as a Python extension (nanobind). The Python-facing API
// (AutoRound, evaluate, quantize_tensor, Ctrl-C handling, progress bars) is the pure-Python layer
// in python/autoround_cpp/; this module only exposes the library's own types and entry points.
#include "bindings.h"
#include "pipeline/backend.h"

NB_MODULE(_core, m) {
  m.doc() = "autoround.cpp: SignRound / AutoRound quantization on the CPU (C++ core)";
  m.attr("__version__") = AR_VERSION;
  m.def("backend_summary", &ar::compute_backend_summary,
        "The GEMM library, the ISA its kernels dispatch to, native bf16 and the thread count");
  ar::py::bind_errors(m);
  ar::py::bind_quantize(m);
  ar::py::bind_evaluate(m);
  ar::py::bind_tensor(m);
}
