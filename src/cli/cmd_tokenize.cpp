// PLACEHOLDER: replaced by the real 'tokenize' command in this session.
#include "cli/commands.h"
#include "core/error.h"
namespace ar::cli {
void add_tokenize_command(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "(not implemented yet)");
  sub->callback([] { AR_THROW("'tokenize' is not implemented yet"); });
}
}  // namespace ar::cli
