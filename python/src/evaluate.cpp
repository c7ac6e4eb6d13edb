// Perplexity (SPEC §5) of an HF folder or a GGUF file, loaded as `autoround eval` loads them: the
// tokenizer from `tokenizer` or the model's folder (the .gguf file's folder for GGUF), the data
// from a file (text, JSON Lines, token ids, "builtin") or from memory (texts joined with "\n\n"
// and tokenized as one document, as a JSON Lines file is; token-id lists as separate sequences).
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <variant>

#include "bindings.h"
#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "core/error.h"
#include "model/decoder.h"
#include "pipeline/eval.h"

namespace ar::py {

namespace {

using Ids = std::vector<std::vector<int32_t>>;
using Texts = std::vector<std::string>;
using Data = std::variant<std::filesystem::path, Ids, Texts>;

Ids eval_tokens(const Data& data, const Decoder& d, const std::string& tokenizer) {
  if (const Ids* ids = std::get_if<Ids>(&data)) return *ids;
  const std::filesystem::path tok_dir = tokenizer.empty() ? d.dir() : std::filesystem::path(tokenizer);
  if (const Texts* texts = std::get_if<Texts>(&data)) {
    std::string joined;
    for (const auto& t : *texts) joined += (joined.empty() ? "" : "\n\n") + t;
    return {Tokenizer::load(tok_dir).encode(joined, true)};
  }
  const auto& file = std::get<std::filesystem::path>(data);
  std::unique_ptr<Tokenizer> tok;
  if (file == kBuiltinDataset || detect_dataset_kind(file) != DatasetKind::TokenIds)
    tok = std::make_unique<Tokenizer>(Tokenizer::load(tok_dir));
  return load_eval_tokens(file, tok.get());
}

EvalResult evaluate(const std::filesystem::path& model, const Data& data, int64_t seqlen, const std::string& tokenizer,
                    Precision precision, int64_t limit, const std::function<void(const std::string&)>& progress) {
  if (seqlen < 2) AR_THROW("seqlen ", seqlen, ": a window needs at least 2 tokens");
  nb::gil_scoped_release nogil;
  Decoder d(model);
  Ids docs = eval_tokens(data, d, tokenizer);
  int64_t n_tokens = 0;
  for (const auto& doc : docs) n_tokens += int64_t(doc.size());
  Ids windows = cut_windows(docs, seqlen);
  if (windows.empty()) AR_THROW("evaluation data: ", n_tokens, " tokens do not fill one window of seqlen ", seqlen);
  if (limit > 0 && int64_t(windows.size()) > limit) windows.resize(size_t(limit));
  EvalOptions opt;
  opt.precision = precision;
  if (progress)
    opt.progress = [&progress](const std::string& line) {
      nb::gil_scoped_acquire gil;
      progress(line);
    };
  return evaluate_perplexity(d, windows, opt);
}

}  // namespace

void bind_evaluate(nb::module_& m) {
  nb::class_<EvalResult>(m, "EvalResult")
      .def_ro("perplexity", &EvalResult::perplexity)
      .def_ro("nll_sum", &EvalResult::nll_sum)
      .def_ro("tokens_scored", &EvalResult::tokens_scored)
      .def_ro("windows", &EvalResult::windows)
      .def_ro("tokens_total", &EvalResult::tokens_total)
      .def_ro("seconds", &EvalResult::seconds)
      .def_ro("flops", &EvalResult::flops);
  m.def("evaluate", &evaluate, nb::arg("model"), nb::arg("dataset"), nb::arg("seqlen") = 2048,
        nb::arg("tokenizer") = "", nb::arg("precision") = Precision::F32, nb::arg("limit") = 0,
        nb::arg("progress").none() = nb::none(),
        "Perplexity of a model folder or GGUF file on a dataset file, token-id lists or texts (without the GIL)");
}

}  // namespace ar::py
