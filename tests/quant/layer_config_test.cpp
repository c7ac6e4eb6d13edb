// LayerConfig: how keys select layers (full name, dotted suffix, regex), precedence, validation
// errors that name the file and key, and extra_config.
#include "quant/layer_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "support/fixtures.h"

namespace ar {
namespace {

QuantScheme w4g128() {
  QuantScheme s;
  s.bits = 4;
  s.group_size = 128;
  s.sym = true;
  return s;
}

QuantScheme make(int bits, int64_t group, bool sym) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  return s;
}

TEST(LayerConfig, DefaultsWhenNothingMatches) {
  const LayerConfig lc(w4g128());
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.down_proj"), w4g128());
  const LayerConfig empty = LayerConfig::parse("{}", w4g128(), "cfg.json");
  EXPECT_EQ(empty.rule_count(), 0u);
  EXPECT_EQ(empty.scheme_for("model.layers.3.self_attn.q_proj"), w4g128());
}

TEST(LayerConfig, NamesSuffixesAndRegexes) {
  const LayerConfig lc = LayerConfig::parse(R"({
      "model.layers.0.mlp.down_proj": {"bits": 8},
      "re:.*self_attn\\.o_proj": {"bits": 16},
      "mlp.gate_proj": {"group_size": 32, "sym": false},
      ".*layers\\.1\\..*up_proj": {"bits": 2}
    })", w4g128(), "cfg.json");
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.down_proj"), make(8, 128, true));
  EXPECT_EQ(lc.scheme_for("model.layers.1.mlp.down_proj"), w4g128());
  EXPECT_EQ(lc.scheme_for("model.layers.5.self_attn.o_proj"), make(16, 128, true));
  EXPECT_FALSE(lc.scheme_for("model.layers.5.self_attn.o_proj").quantized());
  EXPECT_EQ(lc.scheme_for("model.layers.7.mlp.gate_proj"), make(4, 32, false));
  EXPECT_EQ(lc.scheme_for("model.layers.1.mlp.up_proj"), make(2, 128, true));  // regex without prefix
  EXPECT_EQ(lc.scheme_for("model.layers.11.mlp.up_proj"), w4g128());
}

TEST(LayerConfig, SuffixMustStartAtADot) {
  const LayerConfig lc = LayerConfig::parse(R"({"proj": {"bits": 8}, "up_proj": {"bits": 2}})", w4g128(), "c");
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.gate_proj").bits, 4);  // "proj" is not a whole component
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.up_proj").bits, 2);
  EXPECT_EQ(lc.scheme_for("up_proj").bits, 2);
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.xup_proj").bits, 4);
}

TEST(LayerConfig, MoreSpecificRulesWinFieldByField) {
  // Regex < short suffix < long suffix < full name, each overriding only the fields it sets,
  // whatever the order in the file.
  const LayerConfig lc = LayerConfig::parse(R"({
      "model.layers.2.mlp.down_proj": {"bits": 8},
      "mlp.down_proj": {"bits": 3, "group_size": 64},
      "down_proj": {"bits": 2, "sym": false},
      "re:down": {"bits": 16, "group_size": -1}
    })", w4g128(), "c");
  EXPECT_EQ(lc.scheme_for("model.layers.2.mlp.down_proj"), make(8, 64, false));
  EXPECT_EQ(lc.scheme_for("model.layers.3.mlp.down_proj"), make(3, 64, false));
  EXPECT_EQ(lc.scheme_for("model.layers.3.ffn.down_proj"), make(2, -1, false));
  EXPECT_EQ(lc.scheme_for("model.layers.3.ffn.down"), make(16, -1, true));
}

TEST(LayerConfig, RuleFieldsTellWhatRulesSetApartFromDefaults) {
  // A rule that sets bits equal to the default still counts as set (a GGUF output needs this).
  const LayerConfig lc = LayerConfig::parse(R"({
      "mlp.down_proj": {"bits": 4},
      "re:q_proj": {"sym": false},
      "model.layers.1.mlp.down_proj": {"group_size": 32}
    })", w4g128(), "c");
  const LayerConfig::RuleFields d0 = lc.rule_fields("model.layers.0.mlp.down_proj");
  EXPECT_EQ(d0.bits, 4);
  EXPECT_FALSE(d0.group_size.has_value());
  EXPECT_FALSE(d0.sym.has_value());
  const LayerConfig::RuleFields d1 = lc.rule_fields("model.layers.1.mlp.down_proj");
  EXPECT_EQ(d1.bits, 4);
  EXPECT_EQ(d1.group_size, 32);
  const LayerConfig::RuleFields q = lc.rule_fields("model.layers.0.self_attn.q_proj");
  EXPECT_FALSE(q.bits.has_value());
  EXPECT_EQ(q.sym, false);
  const LayerConfig::RuleFields none = lc.rule_fields("model.layers.0.mlp.up_proj");
  EXPECT_FALSE(none.bits || none.group_size || none.sym);
  EXPECT_EQ(lc.scheme_for("model.layers.1.mlp.down_proj"), make(4, 32, true));
}

TEST(LayerConfig, AcceptsPythonToolFields) {
  const LayerConfig lc = LayerConfig::parse(R"({"q_proj": {"bits": 8, "data_type": "int", "act_bits": 16}})",
                                            w4g128(), "c");
  EXPECT_EQ(lc.scheme_for("model.layers.0.self_attn.q_proj"), make(8, 128, true));
}

TEST(LayerConfig, LaterRegexWins) {
  const LayerConfig lc = LayerConfig::parse(R"({"re:proj": {"bits": 8}, "re:q_": {"bits": 2}})", w4g128(), "c");
  EXPECT_EQ(lc.scheme_for("model.layers.0.self_attn.q_proj").bits, 2);
  EXPECT_EQ(lc.scheme_for("model.layers.0.self_attn.k_proj").bits, 8);
}

void expect_error(const std::string& json, const std::string& part1, const std::string& part2) {
  try {
    LayerConfig::parse(json, w4g128(), "my_layers.json");
    ADD_FAILURE() << "no error for " << json;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("my_layers.json"), std::string::npos) << m;
    EXPECT_NE(m.find(part1), std::string::npos) << m;
    EXPECT_NE(m.find(part2), std::string::npos) << m;
  }
}

TEST(LayerConfig, Errors) {
  expect_error(R"({"mlp.down_proj": {"bits": 5}})", "mlp.down_proj", "bits");
  expect_error(R"({"mlp.down_proj": {"bits": 1}})", "mlp.down_proj", "bits");
  expect_error(R"({"mlp.down_proj": {"bits": "4"}})", "mlp.down_proj", "integer");
  expect_error(R"({"mlp.down_proj": {"bits": 4.5}})", "mlp.down_proj", "integer");
  expect_error(R"({"q_proj": {"group_size": 0}})", "q_proj", "group_size");
  expect_error(R"({"q_proj": {"group_size": -2}})", "q_proj", "group_size");
  expect_error(R"({"q_proj": {"sym": "yes"}})", "q_proj", "sym");
  expect_error(R"({"q_proj": {"bitz": 4}})", "q_proj", "unknown key 'bitz'");
  expect_error(R"({"q_proj": 8})", "q_proj", "object");
  expect_error(R"({"q_proj": {"bits": 4, "data_type": "mx_fp"}})", "q_proj", "data_type");
  expect_error(R"({"q_proj": {"bits": 4, "act_bits": 8}})", "q_proj", "act_bits");
  expect_error(R"({"": {"bits": 8}})", "rule ''", "empty");
  expect_error(R"({"re:(unclosed": {"bits": 8}})", "re:(unclosed", "regular expression");
  expect_error(R"([{"bits": 8}])", "expected a JSON object", "array");
  expect_error(R"({"q_proj": {"bits": 8})", "not valid JSON", "");
}

TEST(LayerConfig, LoadFromFile) {
  const auto dir = test::make_temp_dir("layer_config");
  const auto file = dir / "lc.json";
  std::ofstream(file) << R"({"mlp.down_proj": {"bits": 8}})";
  const LayerConfig lc = LayerConfig::load(file, w4g128());
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.down_proj").bits, 8);
  try {
    LayerConfig::load(dir / "missing.json", w4g128());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST(LayerConfig, ExtraConfigListsLayersThatDiffer) {
  const LayerConfig lc = LayerConfig::parse(R"({
      "model.layers.0.mlp.down_proj": {"bits": 8},
      "o_proj": {"bits": 16},
      "q_proj": {"bits": 4, "group_size": 128},
      "nothing.matches.this": {"bits": 2}
    })", w4g128(), "c");
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.o_proj",
                                          "model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"};
  const nlohmann::json want = {
      {"model.layers.0.mlp.down_proj", {{"bits", 8}, {"group_size", 128}, {"sym", true}}},
      {"model.layers.0.self_attn.o_proj", {{"bits", 16}, {"group_size", 128}, {"sym", true}}},
  };
  EXPECT_EQ(lc.extra_config(names), want);
  EXPECT_EQ(lc.unmatched_rules(names), std::vector<std::string>{"nothing.matches.this"});
}

std::string parse_error(const std::string& json) {
  try {
    LayerConfig::parse(json, w4g128(), "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Found by fuzz_layer_config: a long number in a regex (a back-reference \9223372054876537807 or a
// count a{99999999999}) overflowed an int inside libstdc++'s regex compiler (UB); huge or nested
// repetition counts and deep nesting would exhaust memory or stack. All refused before compiling.
TEST(LayerConfig, OversizedRegexesAreRefusedBeforeCompiling) {
  for (const auto& [key, expect] : std::vector<std::pair<std::string, std::string>>{
           {R"(re:layers\\.[0-9]+\\9223372054876537807)", "is too long"},
           {"re:a{99999999999}", "is too long"},
           {"re:(a{999}){999}", "multiply to more than"},
           {"re:" + std::string(100, '(') + "a" + std::string(100, ')'), "nests parentheses"},
           {"re:" + std::string(2000, 'a'), "2000 characters"}}) {
    const std::string e = parse_error("{\"" + key + "\": {\"bits\": 8}}");
    EXPECT_NE(e.find(expect), std::string::npos) << key << " -> " << e;
    EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
  }
  // Found by fuzz_layer_config (a 10 s timeout): "dec**.****n_abiroj" backtracked exponentially
  // in std::regex on a 30-character layer name. Repeated repetitions and too many unbounded ones
  // are refused; plain ones, lazy ones and quantified groups without inner repetition are fine.
  for (const std::string key : {"dec**.****n_abiroj", "re:(a*)*b", "re:(q|k)+_proj", "re:.*a.*b.*c.*d"}) {
    const std::string e = parse_error("{\"" + key + "\": {\"bits\": 8}}");
    EXPECT_TRUE(e.find("repeats a repetition") != std::string::npos || e.find("unbounded repetitions") != std::string::npos)
        << key << " -> " << e;
  }
  for (const std::string key : {"re:.*mlp.*", "re:layers\\\\.[0-9]+\\\\.self_attn\\\\..*?_proj", "re:(up|gate)_proj",
                                 "re:(ab)+c"})
    EXPECT_EQ(parse_error("{\"" + key + "\": {\"bits\": 8}}"), "") << key;
  // Ordinary patterns, counts and layer numbers still work.
  const LayerConfig lc = LayerConfig::parse(R"({"re:layers\\.1[0-9]{1,2}\\.mlp": {"bits": 8}, "re:(q|k)_proj$": {"bits": 2}})",
                                            w4g128(), "cfg.json");
  EXPECT_EQ(lc.scheme_for("model.layers.12.mlp.up_proj").bits, 8);
  EXPECT_EQ(lc.scheme_for("model.layers.2.mlp.up_proj").bits, 4);
  EXPECT_EQ(lc.scheme_for("model.layers.2.self_attn.k_proj").bits, 2);
}

}  // namespace
}  // namespace ar
