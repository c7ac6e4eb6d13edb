// `autoround tokenize`: ids of a text file under a model folder's tokenizer.json, printed as one
// JSON array on stdout (what HF `tokenizer(text).input_ids` gives), for scripts and debugging.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "calib/tokenizer.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/file.h"

namespace ar::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string text;
  bool add_special_tokens = false;
};

void run_tokenize(const TokenizeArgs& a) {
  Timer t;
  Tokenizer tok = Tokenizer::load(a.model);
  double load_s = t.seconds();
  const std::string text = read_text_file(a.text, kNoSizeLimit);
  t.reset();
  std::vector<int32_t> ids = tok.encode(text, a.add_special_tokens);
  log_info("tokenize: ", text.size(), " bytes -> ", ids.size(), " tokens (load ", load_s, " s, encode ",
           t.seconds(), " s)");
  // One buffered write: the array can hold millions of ids.
  std::string out;
  out.reserve(ids.size() * 7 + 3);
  out.push_back('[');
  char buf[16];
  for (size_t k = 0; k < ids.size(); ++k) {
    int n = std::snprintf(buf, sizeof buf, k ? ",%d" : "%d", ids[k]);
    out.append(buf, static_cast<size_t>(n));
  }
  out += "]\n";
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    AR_THROW("tokenize: writing the ids to stdout failed");
  print_peak_memory();
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text file as a JSON array");
  sub->add_option("--model", a->model, "folder with tokenizer.json (and tokenizer_config.json)")->required();
  sub->add_option("--text", a->text, "UTF-8 text file to tokenize")->required();
  sub->add_flag("--add_special_tokens", a->add_special_tokens,
                "add the post-processor's BOS/EOS, as HF tokenizer(text) does by default");
  sub->callback([a] { run_tokenize(*a); });
}

}  // namespace ar::cli
