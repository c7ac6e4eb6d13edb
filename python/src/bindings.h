// The parts of the _core extension module, each registered by one function (module.cpp).
#pragma once
#include <nanobind/nanobind.h>

namespace ar::py {

namespace nb = nanobind;

void bind_errors(nb::module_& m);    // ar::Error -> autoround_cpp.Error, ar::Interrupted -> Interrupted
void bind_quantize(nb::module_& m);  // QuantizeOptions, the report, run_quantize, recipes, interrupts
void bind_evaluate(nb::module_& m);  // perplexity of a model folder or GGUF file
void bind_tensor(nb::module_& m);    // RTN / optimized RTN of one weight matrix

}  // namespace ar::py
