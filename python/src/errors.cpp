// The project's error types as Python exceptions carrying the same message (file and problem):
// ar::Error (bad input) -> autoround_cpp.Error, a RuntimeError; ar::Interrupted (a run stopped on
// request) -> autoround_cpp.Interrupted, a subclass of Error that the Python layer turns into
// KeyboardInterrupt. One translator, so the more specific type is always tried first.
#include "bindings.h"

#include "core/error.h"
#include "core/interrupt.h"

namespace ar::py {

namespace {
PyObject* g_error = nullptr;
PyObject* g_interrupted = nullptr;
}  // namespace

void bind_errors(nb::module_& m) {
  g_error = PyErr_NewExceptionWithDoc("autoround_cpp.Error",
                                      "Bad input (a file, a config, an option): the message names what is wrong.",
                                      PyExc_RuntimeError, nullptr);
  g_interrupted = PyErr_NewExceptionWithDoc("autoround_cpp.Interrupted",
                                            "A run stopped on request at a safe point (its checkpoint is kept).",
                                            g_error, nullptr);
  m.attr("Error") = nb::handle(g_error);
  m.attr("Interrupted") = nb::handle(g_interrupted);
  // Anything else (ar::InternalError, std::bad_alloc, ...) falls through to nanobind's own mapping.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Interrupted& e) {
      PyErr_SetString(g_interrupted, e.what());
    } catch (const Error& e) {
      PyErr_SetString(g_error, e.what());
    }
  });
}

}  // namespace ar::py
