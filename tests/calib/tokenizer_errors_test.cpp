// Malformed tokenizer folders: every failure must be an ar::Error whose message names the file
// and says what is wrong (no crash, no silent fallback).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "calib/tokenizer.h"
#include "core/error.h"
#include "support/fixtures.h"

namespace {

using nlohmann::json;

const json kGoodModel = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}};

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// Message of the ar::Error that loading `dir` throws ("" when it loads).
std::string load_error(const std::filesystem::path& dir) {
  try {
    ar::Tokenizer::load(dir);
  } catch (const ar::Error& e) {
    return e.what();
  }
  return {};
}

std::string error_for(const json& tokenizer, const std::string& tag) {
  auto dir = ar::test::make_temp_dir(tag);
  write(dir / "tokenizer.json", tokenizer.dump());
  std::string msg = load_error(dir);
  std::filesystem::remove_all(dir);
  return msg;
}

#define EXPECT_MSG(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

TEST(TokenizerErrors, GoodFileLoads) {
  EXPECT_EQ(error_for({{"model", kGoodModel}}, "tok-good"), "");
}

TEST(TokenizerErrors, MissingTokenizerJson) {
  auto dir = ar::test::make_temp_dir("tok-missing");
  std::string msg = load_error(dir);
  EXPECT_MSG(msg, "tokenizer.json");
  EXPECT_MSG(msg, "not found");
  std::filesystem::remove_all(dir);
}

TEST(TokenizerErrors, InvalidJson) {
  auto dir = ar::test::make_temp_dir("tok-badjson");
  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0,)");
  std::string msg = load_error(dir);
  EXPECT_MSG(msg, (dir / "tokenizer.json").string());
  EXPECT_MSG(msg, "invalid JSON");
  write(dir / "tokenizer.json", "[1, 2]");
  EXPECT_MSG(load_error(dir), "not a JSON object");
  std::filesystem::remove_all(dir);
}

TEST(TokenizerErrors, InvalidConfigJsonNamesTheConfig) {
  auto dir = ar::test::make_temp_dir("tok-badcfg");
  write(dir / "tokenizer.json", json({{"model", kGoodModel}}).dump());
  write(dir / "tokenizer_config.json", "{\"add_bos_token\": tru");
  EXPECT_MSG(load_error(dir), "tokenizer_config.json");
  std::filesystem::remove_all(dir);
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    json m = kGoodModel;
    m["type"] = type;
    std::string msg = error_for({{"model", m}}, "tok-type");
    EXPECT_MSG(msg, "unsupported");
    EXPECT_MSG(msg, type);
    EXPECT_MSG(msg, "tokenizer.json");
  }
  EXPECT_MSG(error_for({{"normalizer", nullptr}}, "tok-nomodel"), "\"model\" is missing");
}

TEST(TokenizerErrors, MergesNamingUnknownTokens) {
  json m = kGoodModel;
  m["merges"] = {"a b", "a zz"};
  std::string msg = error_for({{"model", m}}, "tok-merge");
  EXPECT_MSG(msg, "merges[1]");
  EXPECT_MSG(msg, "'zz'");
  EXPECT_MSG(msg, "not in the vocabulary");
  m["merges"] = {"b a"};  // both known, but "ba" is not a token
  EXPECT_MSG(error_for({{"model", m}}, "tok-merge2"), "merged token 'ba'");
  m["merges"] = {"a b c"};
  EXPECT_MSG(error_for({{"model", m}}, "tok-merge3"), "not two tokens");
  m["merges"] = {json::array({"a"})};
  EXPECT_MSG(error_for({{"model", m}}, "tok-merge4"), "merges[0]");
}

TEST(TokenizerErrors, BadVocabulary) {
  json m = kGoodModel;
  m["vocab"]["b"] = -3;
  EXPECT_MSG(error_for({{"model", m}}, "tok-vocab"), "model.vocab['b']");
  m["vocab"]["b"] = "one";
  EXPECT_MSG(error_for({{"model", m}}, "tok-vocab2"), "model.vocab['b']");
  m["vocab"] = json::array();
  EXPECT_MSG(error_for({{"model", m}}, "tok-vocab3"), "model.vocab is not an object");
  // Ids index dense tables: a huge id is a corrupt file, not a 64 GB allocation.
  m = kGoodModel;
  m["vocab"]["b"] = 2000000000;
  EXPECT_MSG(error_for({{"model", m}}, "tok-vocab4"), "far beyond the vocabulary size");
  json big = {{"id", 2000000000}, {"content", "<x>"}, {"special", true}};
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"added_tokens", {big}}}, "tok-vocab5"), "far beyond the vocabulary size");
}

TEST(TokenizerErrors, InvalidRegex) {
  json pre = {{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  std::string msg = error_for({{"model", kGoodModel}, {"pre_tokenizer", pre}}, "tok-regex");
  EXPECT_MSG(msg, "invalid regex");
  EXPECT_MSG(msg, "tokenizer.json");
}

TEST(TokenizerErrors, UnsupportedPipelineSteps) {
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"normalizer", {{"type", "BertNormalizer"}}}}, "tok-n"),
             "unsupported normalizer type 'BertNormalizer'");
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"pre_tokenizer", {{"type", "BertPreTokenizer"}}}}, "tok-p"),
             "unsupported pre_tokenizer type 'BertPreTokenizer'");
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"decoder", {{"type", "WordPiece"}}}}, "tok-d"),
             "unsupported decoder type 'WordPiece'");
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"post_processor", {{"type", "Fancy"}}}}, "tok-pp"),
             "unsupported post_processor type 'Fancy'");
  json pre = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"pre_tokenizer", pre}}, "tok-b"), "Split behavior 'Sideways'");
}

TEST(TokenizerErrors, WrongFieldTypesAreErrorsNotCrashes) {
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"added_tokens", {{{"id", "x"}}}}}, "tok-added"), "added_tokens[0]");
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"normalizer", {{"type", 5}}}}, "tok-ntype"), "tokenizer.json");
  json post = {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<nope>"}}}}}}};
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"post_processor", post}}, "tok-post"), "'<nope>'");
  json roberta = {{"type", "RobertaProcessing"}, {"cls", {"<s>", 7}}, {"sep", {"</s>", 1}}};
  EXPECT_MSG(error_for({{"model", kGoodModel}, {"post_processor", roberta}}, "tok-post2"), "outside the vocabulary");
}

}  // namespace
