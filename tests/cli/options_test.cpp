// The option table (issue #14): recipes as AutoRound defines them, checks that need no model,
// and the CLI's acceptance of --sym (older AutoRound scripts pass it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "pipeline/quantize.h"
#include "pipeline/recipes.h"
#include "pipeline/run_setup.h"
#include "support/files.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

QuantizeOptions with_recipe(const std::string& name, std::initializer_list<std::string_view> user = {}) {
  QuantizeOptions o;
  apply_recipe(o, name, [&](std::string_view flag) {
    for (auto u : user)
      if (u == flag) return true;
    return false;
  });
  return o;
}

TEST(Recipes, MatchAutoRoundsTable) {
  const QuantizeOptions d;
  EXPECT_EQ(d.tune.iters, 200);
  EXPECT_EQ(d.nsamples, 128);
  EXPECT_EQ(d.tune.seed, 42u);
  QuantizeOptions o = with_recipe("default");
  EXPECT_EQ(o.tune.iters, 200);
  EXPECT_EQ(o.nsamples, 128);
  o = with_recipe("best");
  EXPECT_EQ(o.tune.iters, 1000);
  EXPECT_EQ(o.nsamples, 512);
  o = with_recipe("light");
  EXPECT_EQ(o.tune.iters, 50);
  EXPECT_DOUBLE_EQ(o.tune.lr, 5e-3);
  EXPECT_EQ(o.nsamples, 128);
  o = with_recipe("opt_rtn");
  EXPECT_EQ(o.tune.iters, 0);
  EXPECT_FALSE(o.disable_opt_rtn);
  o = with_recipe("rtn");
  EXPECT_EQ(o.tune.iters, 0);
  EXPECT_TRUE(o.disable_opt_rtn);
}

TEST(Recipes, ExplicitOptionsWin) {
  QuantizeOptions given;
  given.tune.iters = 7;
  QuantizeOptions o = given;
  apply_recipe(o, "best", [](std::string_view f) { return f == "--iters"; });
  EXPECT_EQ(o.tune.iters, 7);
  EXPECT_EQ(o.nsamples, 512);
}

TEST(Recipes, UnknownNameListsTheRecipes) {
  QuantizeOptions o;
  try {
    apply_recipe(o, "fastest", [](std::string_view) { return false; });
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'fastest'"), std::string::npos) << m;
    EXPECT_NE(m.find("default, best, light, opt_rtn, rtn"), std::string::npos) << m;
  }
}

TEST(Recipes, HelpPrintsTheTable) {
  const std::string h = recipes_help();
  EXPECT_NE(h.find("default (200 iters, 128 samples)"), std::string::npos) << h;
  EXPECT_NE(h.find("best (1000 iters, 512 samples)"), std::string::npos) << h;
  EXPECT_NE(h.find("rtn (plain RTN)"), std::string::npos) << h;
}

void expect_rejected(const QuantizeOptions& o, const std::string& needle) {
  try {
    check_quantize_options(o);
    FAIL() << "accepted; expected an error with " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QuantizeOptionChecks, NameTheOptionAndValue) {
  QuantizeOptions rtn;
  rtn.tune.iters = 0;
  EXPECT_NO_THROW(check_quantize_options(rtn));
  QuantizeOptions o = rtn;
  o.scheme.bits = 5;
  expect_rejected(o, "--bits 5");
  o = rtn;
  o.scheme.group_size = 0;
  expect_rejected(o, "--group_size 0");
  o = rtn;
  o.nsamples = 0;
  expect_rejected(o, "--nsamples 0");
  o = rtn;
  o.seqlen = -1;
  expect_rejected(o, "--seqlen -1");
  o = rtn;
  o.cache = "tape";
  expect_rejected(o, "--cache: 'tape'");
  o = {};  // the default 200 iters, without calibration data
  expect_rejected(o, "needs calibration data");
}

TEST(QuantizeOptionChecks, AmpResolvesToAPrecision) {
  QuantizeOptions o;
  o.tune.iters = 0;
  o.amp = Amp::On;
  EXPECT_EQ(checked_options(o).tune.precision, Precision::BF16);
  o.amp = Amp::Off;
  EXPECT_EQ(checked_options(o).tune.precision, Precision::F32);
}

TEST(QuantizeCli, SymIsAcceptedAsTheDefault) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path dir = test::make_temp_dir("sym_flag");
  const std::string base = std::string(AR_CLI_PATH) + " quantize --model " + model.string() +
                           " --iters 0 --disable_opt_rtn --group_size 32 --output_dir ";
  auto plain = test::run_command(base + (dir / "plain").string());
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto sym = test::run_command(base + (dir / "sym").string() + " --sym");
  ASSERT_EQ(sym.exit_code, 0) << sym.err;
  EXPECT_NE(sym.err.find("--sym is accepted"), std::string::npos) << sym.err;
  EXPECT_EQ(test::tree_bytes(dir / "plain"), test::tree_bytes(dir / "sym"));
  auto both = test::run_command(base + (dir / "both").string() + " --sym --asym");
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_NE(both.err.find("--sym and --asym contradict"), std::string::npos) << both.err;
  EXPECT_FALSE(fs::exists(dir / "both"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ar
