// PLACEHOLDER: replaced by the real 'eval' command in this session.
#include "cli/commands.h"
#include "core/error.h"
namespace ar::cli {
void add_eval_command(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "(not implemented yet)");
  sub->callback([] { AR_THROW("'eval' is not implemented yet"); });
}
}  // namespace ar::cli
