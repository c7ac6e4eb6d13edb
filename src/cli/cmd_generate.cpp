// PLACEHOLDER: replaced by the real 'generate' command in this session.
#include "cli/commands.h"
#include "core/error.h"
namespace ar::cli {
void add_generate_command(CLI::App& app) {
  auto* sub = app.add_subcommand("generate", "(not implemented yet)");
  sub->callback([] { AR_THROW("'generate' is not implemented yet"); });
}
}  // namespace ar::cli
