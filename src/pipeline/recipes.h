// AutoRound's recipes (`--recipe`): named presets of the tuning budget, as one table the checks,
// the CLI's help and the Python API read. A recipe only sets what the user left unset.
#pragma once
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ar {

struct QuantizeOptions;

struct Recipe {
  std::string_view name;
  std::optional<int> iters;           // SignRound steps per block (0: no tuning)
  std::optional<int64_t> nsamples;    // calibration samples
  std::optional<double> lr;           // learning rate of the rounding
  std::optional<bool> opt_rtn;        // with iters 0: optimized (true) or plain RTN (false)
};

std::span<const Recipe> recipes();

// Applies recipe `name` to `o`. `user_set("--iters")` tells whether the user gave that option
// explicitly; such options keep the user's value. Unknown name: ar::Error listing the recipes.
void apply_recipe(QuantizeOptions& o, std::string_view name,
                  const std::function<bool(std::string_view option)>& user_set);

// "default (200 iters, 128 samples), best (1000 iters, 512 samples), ..." for --help; the
// default recipe's numbers are QuantizeOptions' defaults.
std::string recipes_help();

}  // namespace ar
