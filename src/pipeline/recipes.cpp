#include "pipeline/recipes.h"

#include "core/error.h"
#include "pipeline/quantize.h"

namespace ar {

namespace {
// As AutoRound defines them (auto_round/schemes and its CLI): default = the option defaults.
constexpr Recipe kRecipes[] = {
    {"default", std::nullopt, std::nullopt, std::nullopt, std::nullopt},
    {"best", 1000, 512, std::nullopt, std::nullopt},
    {"light", 50, std::nullopt, 5e-3, std::nullopt},
    {"opt_rtn", 0, std::nullopt, std::nullopt, true},
    {"rtn", 0, std::nullopt, std::nullopt, false},
};

std::string describe(const Recipe& r) {
  const QuantizeOptions d;
  const int iters = r.iters.value_or(d.tune.iters);
  std::string s = cat(r.name, " (");
  if (iters == 0) {
    s += r.opt_rtn.value_or(!d.disable_opt_rtn) ? "optimized RTN" : "plain RTN";
  } else {
    s += cat(iters, " iters, ", r.nsamples.value_or(d.nsamples), " samples");
    if (r.lr) s += cat(", lr ", *r.lr);
  }
  return s + ")";
}
}  // namespace

std::span<const Recipe> recipes() { return kRecipes; }

void apply_recipe(QuantizeOptions& o, std::string_view name,
                  const std::function<bool(std::string_view)>& user_set) {
  const Recipe* r = nullptr;
  for (const Recipe& x : kRecipes)
    if (x.name == name) r = &x;
  if (!r) {
    std::string names;
    for (const Recipe& x : kRecipes) names += cat(names.empty() ? "" : ", ", x.name);
    AR_THROW("--recipe: '", name, "' is not one of ", names);
  }
  if (r->iters && !user_set("--iters")) o.tune.iters = *r->iters;
  if (r->nsamples && !user_set("--nsamples")) o.nsamples = *r->nsamples;
  if (r->lr && !user_set("--lr")) o.tune.lr = *r->lr;
  if (r->opt_rtn && !user_set("--disable_opt_rtn")) o.disable_opt_rtn = !*r->opt_rtn;
}

std::string recipes_help() {
  std::string s;
  for (const Recipe& r : kRecipes) s += cat(s.empty() ? "" : ", ", describe(r));
  return s;
}

}  // namespace ar
