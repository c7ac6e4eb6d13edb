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
  expect_error(R"({"q_proj": {"bits": 2, "data_type": "mx_fp"}})", "q_proj", "mx_fp with 2 bits");
  expect_error(R"({"q_proj": {"data_type": "int8x"}})", "q_proj", "'data_type' \"int8x\" is not supported");
  expect_error(R"({"q_proj": {"bits": 4, "act_bits": 8}})", "q_proj", "act_bits");
  expect_error(R"({"": {"bits": 8}})", "rule ''", "empty");
  expect_error(R"({"re:(unclosed": {"bits": 8}})", "re:(unclosed", "regular expression");
  expect_error(R"([{"bits": 8}])", "expected a JSON object", "array");
  expect_error(R"({"q_proj": {"bits": 8})", "not valid JSON", "");
}

// AutoRound's data_type values for the floating-point formats (issue 19), its [128, 128] group size
// for block FP8, and scheme names as rule values.
TEST(LayerConfig, FloatingPointDataTypes) {
  const LayerConfig lc = LayerConfig::parse(R"({
      "q_proj": {"data_type": "mx_fp", "bits": 4},
      "k_proj": {"data_type": "mx_fp8"},
      "v_proj": {"data_type": "nv_fp"},
      "o_proj": {"data_type": "fp8_e4m3"},
      "gate_proj": {"data_type": "fp", "bits": 8, "group_size": [128, 128]},
      "up_proj": "MXFP8",
      "down_proj": {"bits": 16, "data_type": "float"}
    })", w4g128(), "c");
  auto at = [&](const std::string& n) { return lc.scheme_for("model.layers.0." + n); };
  EXPECT_EQ(at("self_attn.q_proj"), fp_scheme(DataType::MXFP4));
  EXPECT_EQ(at("self_attn.k_proj"), fp_scheme(DataType::MXFP8));
  EXPECT_EQ(at("self_attn.v_proj"), fp_scheme(DataType::NVFP4));  // nv_fp takes its one width, 4
  EXPECT_EQ(at("self_attn.o_proj"), fp_scheme(DataType::FP8));
  EXPECT_EQ(at("mlp.gate_proj"), fp_scheme(DataType::FP8Block));
  EXPECT_EQ(at("mlp.up_proj"), fp_scheme(DataType::MXFP8));
  EXPECT_FALSE(at("mlp.down_proj").quantized());
  const nlohmann::json extra = lc.extra_config({"model.layers.0.self_attn.q_proj"});
  EXPECT_EQ(extra["model.layers.0.self_attn.q_proj"]["data_type"], "mx_fp");
}

TEST(LayerConfig, RulesOverAFloatingPointDefault) {
  const QuantScheme mx = fp_scheme(DataType::MXFP4);
  const LayerConfig lc = LayerConfig::parse(R"({
      "q_proj": {"bits": 8},
      "k_proj": {"data_type": "int"},
      "v_proj": {"bits": 16},
      "o_proj": "W8A16",
      "gate_proj": {"data_type": "int", "bits": 2, "group_size": 64, "sym": false}
    })", mx, "c");
  auto at = [&](const std::string& n) { return lc.scheme_for("model.layers.0.self_attn." + n); };
  EXPECT_EQ(at("q_proj"), fp_scheme(DataType::MXFP8));  // mx_fp with 8 bits, as AutoRound merges them
  EXPECT_EQ(at("k_proj"), make(4, 32, true));           // int with MXFP4's bits and group
  EXPECT_FALSE(at("v_proj").quantized());
  EXPECT_EQ(at("o_proj"), make(8, 128, true));
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.gate_proj"), make(2, 64, false));
  EXPECT_EQ(lc.scheme_for("model.layers.0.mlp.up_proj"), mx);
  // Fields that contradict the default's format are refused naming the layer, not ignored.
  for (const auto& [json, needle] : std::vector<std::pair<std::string, std::string>>{
           {R"({"q_proj": {"bits": 2}})", "mx_fp with 2 bits"},
           {R"({"q_proj": {"group_size": 128}})", "fixes the group size at 32"},
           {R"({"q_proj": {"sym": false}})", "symmetric"}}) {
    const LayerConfig bad = LayerConfig::parse(json, mx, "c");
    try {
      bad.scheme_for("model.layers.3.self_attn.q_proj");
      ADD_FAILURE() << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("model.layers.3.self_attn.q_proj"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  // nv_fp over a 2-bit integer default takes 4 bits; mx_fp has two widths and needs them said.
  const LayerConfig w2 = LayerConfig::parse(R"({"q_proj": {"data_type": "nv_fp"}, "k_proj": {"data_type": "mx_fp"}})",
                                            make(2, 128, true), "c");
  EXPECT_EQ(w2.scheme_for("model.layers.0.self_attn.q_proj"), fp_scheme(DataType::NVFP4));
  EXPECT_THROW(w2.scheme_for("model.layers.0.self_attn.k_proj"), Error);
}

TEST(LayerConfig, MalformedFloatingPointRules) {
  expect_error(R"({"q_proj": {"data_type": "nv_fp", "bits": 8}})", "q_proj", "nv_fp with 8 bits");
  expect_error(R"({"q_proj": {"data_type": "fp8", "bits": 4}})", "q_proj", "contradicts 'data_type'");
  expect_error(R"({"q_proj": {"data_type": "mx_fp8", "bits": 4}})", "q_proj", "contradicts");
  expect_error(R"({"q_proj": {"data_type": "float", "bits": 4}})", "q_proj", "contradicts");
  expect_error(R"({"q_proj": {"data_type": "nv_fp4", "group_size": 32}})", "q_proj", "fixes the group size at 16");
  expect_error(R"({"q_proj": {"data_type": "mx_fp4", "sym": false}})", "q_proj", "symmetric");
  expect_error(R"({"q_proj": {"data_type": "fp8", "group_size": 128}})", "q_proj", "[128, 128]");
  expect_error(R"({"q_proj": {"group_size": [128, 64]}})", "q_proj", "must be [128, 128]");
  expect_error(R"({"q_proj": {"group_size": [128]}})", "q_proj", "must be [128, 128]");
  expect_error(R"({"q_proj": {"group_size": ["128", "128"]}})", "q_proj", "must be [128, 128]");
  expect_error(R"({"q_proj": {"data_type": "mx_fp", "group_size": [128, 128]}})", "q_proj", "(2-D blocks)");
  expect_error(R"({"q_proj": {"data_type": 4}})", "q_proj", "data_type");
  expect_error(R"({"q_proj": {"data_type": "nv_fp8"}})", "q_proj", "not supported");
  expect_error(R"({"q_proj": "MXFP3"})", "q_proj", "is not one of");
  expect_error(R"({"q_proj": ""})", "q_proj", "is not one of");
  // [128, 128] over an integer default without a data type: nothing to block.
  const LayerConfig lc = LayerConfig::parse(R"({"q_proj": {"group_size": [128, 128]}})", w4g128(), "c");
  EXPECT_THROW(lc.scheme_for("model.layers.0.self_attn.q_proj"), Error);
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
