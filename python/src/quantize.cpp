// QuantizeOptions (the library's one option table) with its nested scheme and SignRound options,
// the report, and run_quantize. The run releases the GIL; its callbacks take it back only for the
// moment they call into Python. Ctrl-C: the Python layer runs this in a worker thread and calls
// request_interrupt() when the main thread sees KeyboardInterrupt (see autoround_cpp/_run.py).
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/set.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <set>

#include "bindings.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/memory.h"
#include "pipeline/quantize.h"
#include "pipeline/recipes.h"

namespace ar::py {

namespace {

using LogFn = std::function<void(const std::string&)>;
using BlockFn = std::function<void(const BlockReport&, int64_t)>;

// A Python callable called from the run's thread. The run copies its options (and so the
// std::functions) without the GIL; holding the callable behind a shared_ptr keeps those copies
// away from Python reference counts, and the GIL is taken only for the call itself.
template <typename... Args>
std::function<void(Args...)> with_gil(const std::function<void(Args...)>& fn) {
  auto held = std::make_shared<std::function<void(Args...)>>(fn);
  return [held](Args... args) {
    nb::gil_scoped_acquire gil;
    (*held)(args...);
  };
}

// An empty `log` prints the lines to stderr as the CLI does.
QuantizeReport run(QuantizeOptions o, const LogFn& log, const BlockFn& on_block) {
  o.log = log ? with_gil(log) : LogFn([](const std::string& s) { log_info(s); });
  if (on_block) o.on_block = with_gil(on_block);
  request_interrupt(0);  // a stale request (an earlier run's) must not stop this one
  nb::gil_scoped_release nogil;
  QuantizeReport r = run_quantize(o);
  request_interrupt(0);
  return r;
}

void bind_options(nb::module_& m) {
  nb::enum_<Amp>(m, "Amp").value("Auto", Amp::Auto).value("On", Amp::On).value("Off", Amp::Off);
  nb::enum_<Precision>(m, "Precision").value("F32", Precision::F32).value("BF16", Precision::BF16);
  nb::enum_<DataType>(m, "DataType")
      .value("Int", DataType::Int)
      .value("MXFP4", DataType::MXFP4)
      .value("MXFP8", DataType::MXFP8)
      .value("NVFP4", DataType::NVFP4)
      .value("FP8", DataType::FP8)
      .value("FP8Block", DataType::FP8Block);
  nb::class_<QuantScheme>(m, "QuantScheme")
      .def(nb::init<>())
      .def_rw("bits", &QuantScheme::bits)
      .def_rw("group_size", &QuantScheme::group_size)
      .def_rw("sym", &QuantScheme::sym)
      .def_rw("data_type", &QuantScheme::data_type)
      .def("__eq__", [](const QuantScheme& a, const QuantScheme& b) { return a == b; })
      .def("__repr__", [](const QuantScheme& s) { return "<QuantScheme " + scheme_label(s) + ">"; });
  nb::class_<SignRoundOptions>(m, "SignRoundOptions")
      .def(nb::init<>())
      .def_rw("iters", &SignRoundOptions::iters)
      .def_rw("batch_size", &SignRoundOptions::batch_size)
      .def_rw("gradient_accumulate_steps", &SignRoundOptions::gradient_accumulate_steps)
      .def_rw("lr", &SignRoundOptions::lr)
      .def_rw("minmax_lr", &SignRoundOptions::minmax_lr)
      .def_rw("enable_minmax_tuning", &SignRoundOptions::enable_minmax_tuning)
      .def_rw("seed", &SignRoundOptions::seed);
  using O = QuantizeOptions;
  nb::class_<O>(m, "QuantizeOptions", "ar::QuantizeOptions: the defaults are the CLI's")
      .def(nb::init<>())
      .def_rw("model_dir", &O::model_dir)
      .def_rw("output_dir", &O::output_dir)
      .def_rw("formats", &O::formats)
      .def_rw("scheme", &O::scheme)
      .def_rw("layer_config", &O::layer_config)
      .def_rw("disable_opt_rtn", &O::disable_opt_rtn)
      .def_rw("tune", &O::tune)
      .def_rw("amp", &O::amp)
      .def_rw("enable_quanted_input", &O::enable_quanted_input)
      .def_rw("gguf_minmax_tuning", &O::gguf_minmax_tuning)
      .def_rw("dataset", &O::dataset)
      .def_rw("dataset_texts", &O::dataset_texts)
      .def_rw("dataset_ids", &O::dataset_ids)
      .def_rw("nsamples", &O::nsamples)
      .def_rw("seqlen", &O::seqlen)
      .def_rw("max_shard_bytes", &O::max_shard_bytes)
      .def_rw("overwrite", &O::overwrite)
      .def_rw("precision", &O::precision)
      .def_rw("eval_dataset", &O::eval_dataset)
      .def_rw("eval_seqlen", &O::eval_seqlen)
      .def_rw("work_dir", &O::work_dir)
      .def_rw("cache", &O::cache)
      .def_rw("stream_loss", &O::stream_loss)
      .def_rw("max_ram", &O::max_ram)
      .def_rw("low_cpu_mem_usage", &O::low_cpu_mem_usage)
      .def_rw("expert_groups", &O::expert_groups)
      .def_rw("max_disk", &O::max_disk)
      .def_rw("log_memory", &O::log_memory)
      .def_rw("checkpoint", &O::checkpoint)
      .def_rw("resume", &O::resume);
}

void bind_report(nb::module_& m) {
  nb::class_<BlockReport>(m, "BlockReport", "One decoder block of a run (losses are NaN without tuning)")
      .def_ro("layer", &BlockReport::layer)
      .def_ro("loss_before", &BlockReport::loss_before)
      .def_ro("loss_after", &BlockReport::loss_after)
      .def_ro("best_iter", &BlockReport::best_iter)
      .def_ro("expert_groups", &BlockReport::expert_groups)
      .def_ro("seconds", &BlockReport::seconds)
      .def_ro("rss_bytes", &BlockReport::rss_bytes)
      .def_ro("peak_rss_bytes", &BlockReport::peak_rss_bytes)
      .def_ro("resumed", &BlockReport::resumed);
  nb::class_<QuantizeReport>(m, "QuantizeReport")
      .def_ro("seconds", &QuantizeReport::seconds)
      .def_ro("peak_rss_bytes", &QuantizeReport::peak_rss_bytes)
      .def_ro("outputs", &QuantizeReport::outputs)
      .def_ro("output_bytes", &QuantizeReport::output_bytes)
      .def_ro("quantized_layers", &QuantizeReport::quantized_layers)
      .def_ro("kept_16bit", &QuantizeReport::kept_16bit)
      .def_ro("bits_per_weight", &QuantizeReport::bits_per_weight)
      .def_ro("ppl_original", &QuantizeReport::ppl_original)
      .def_ro("ppl_quantized", &QuantizeReport::ppl_quantized)
      .def_ro("plan", &QuantizeReport::plan)
      .def_ro("work_dir_peak_bytes", &QuantizeReport::work_dir_peak_bytes)
      .def_ro("resumed_blocks", &QuantizeReport::resumed_blocks)
      .def_ro("blocks", &QuantizeReport::blocks);
}

}  // namespace

void bind_quantize(nb::module_& m) {
  bind_options(m);
  bind_report(m);
  m.def("run_quantize", &run, nb::arg("options"), nb::arg("log").none() = nb::none(),
        nb::arg("on_block").none() = nb::none(),
        "Runs the quantization without the GIL. log(line) gets the progress lines (None: stderr); "
        "on_block(BlockReport, n_blocks) is called after every block.");
  m.def("apply_recipe", [](QuantizeOptions& o, const std::string& name, const std::set<std::string>& given) {
          apply_recipe(o, name, [&](std::string_view flag) { return given.count(std::string(flag)) > 0; });
        }, nb::arg("options"), nb::arg("name"), nb::arg("given_flags"),
        "Applies an AutoRound recipe; options named in given_flags (as CLI flags, '--iters') are kept");
  m.def("resolve_scheme",
        [](const std::string& name, std::optional<int> bits, std::optional<int64_t> group_size, std::optional<bool> sym) {
          return resolve_scheme(name, SchemeOverrides{bits, group_size, sym});
        },
        nb::arg("name"), nb::arg("bits").none() = nb::none(), nb::arg("group_size").none() = nb::none(),
        nb::arg("sym").none() = nb::none(),
        "The scheme an AutoRound preset name gives (the CLI's --scheme); bits/group_size/sym override an integer "
        "preset and must agree with a floating-point one");
  m.def("recipe_names", [] {
    std::vector<std::string> names;
    for (const Recipe& r : recipes()) names.emplace_back(r.name);
    return names;
  });
  m.def("parse_bytes", [](const std::string& text, const std::string& what) { return parse_bytes(text, what); },
        nb::arg("text"), nb::arg("what"), "'2G', '512MiB', '5GB' -> bytes, as the CLI reads sizes");
  m.def("request_interrupt", [] { request_interrupt(SIGINT); },
        "Asks the running quantization to stop at its next safe point, as Ctrl-C does in the CLI");
  m.def("set_quiet", [](bool quiet) { set_log_level(quiet ? LogLevel::Warn : LogLevel::Info); },
        "Quiet: the library's own info lines (per-block losses) are not printed; warnings still are");
}

}  // namespace ar::py
