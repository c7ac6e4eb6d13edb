// Checks the tokenizer against ids from HuggingFace's reference implementation
// (fixtures tokenizers/vectors/*.json, @huggingface/tokenizers): edge cases, WikiText-2 lines,
// and the whole WikiText-2 test document, for Qwen3 (byte-level) and stories260K (SentencePiece).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "calib/tokenizer.h"
#include "support/fixtures.h"

namespace {

using nlohmann::json;

json read_json(const std::filesystem::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string show(const std::vector<int32_t>& v, size_t around, size_t width = 6) {
  std::ostringstream os;
  size_t b = around > width ? around - width : 0;
  size_t e = std::min(v.size(), around + width + 1);
  os << "[" << (b > 0 ? "... " : "");
  for (size_t k = b; k < e; ++k) os << (k == around ? "*" : "") << v[k] << (k + 1 < e ? " " : "");
  os << (e < v.size() ? " ..." : "") << "] (size " << v.size() << ")";
  return os.str();
}

// Empty string when equal, else a description of the first mismatch.
std::string first_mismatch(const std::vector<int32_t>& want, const std::vector<int32_t>& got) {
  size_t n = std::min(want.size(), got.size());
  size_t k = 0;
  while (k < n && want[k] == got[k]) ++k;
  if (k == n && want.size() == got.size()) return {};
  std::ostringstream os;
  os << "first difference at id index " << k << "\n  expected " << show(want, k) << "\n  got      "
     << show(got, k);
  return os.str();
}

// Loaded once per test binary: the Qwen3 tokenizer and the vector files take a while to read.
const ar::Tokenizer& cached_tokenizer(const std::filesystem::path& dir) {
  static std::map<std::filesystem::path, ar::Tokenizer> cache;
  auto it = cache.find(dir);
  if (it == cache.end()) it = cache.emplace(dir, ar::Tokenizer::load(dir)).first;
  return it->second;
}

const json& cached_json(const std::filesystem::path& p) {
  static std::map<std::filesystem::path, json> cache;
  auto it = cache.find(p);
  if (it == cache.end()) it = cache.emplace(p, read_json(p)).first;
  return it->second;
}

void check_cases(const ar::Tokenizer& tok, const json& vectors) {
  const auto& cases = vectors.at("cases");
  ASSERT_GT(cases.size(), 0u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string text = c.at("text").get<std::string>();
    auto want = c.at("ids").get<std::vector<int32_t>>();
    auto want_sp = c.at("ids_with_special").get<std::vector<int32_t>>();
    auto got = tok.encode(text, false);
    auto got_sp = tok.encode(text, true);
    EXPECT_EQ(first_mismatch(want, got), "") << "case " << i << " text '" << text << "' (no specials)";
    EXPECT_EQ(first_mismatch(want_sp, got_sp), "") << "case " << i << " text '" << text << "' (with specials)";
    EXPECT_EQ(tok.decode(want), c.at("decoded").get<std::string>()) << "case " << i << " decode of ids";
  }
}

void check_lines(const ar::Tokenizer& tok, const json& vectors) {
  const auto& lines = vectors.at("lines");
  ASSERT_GT(lines.size(), 0u);
  size_t failures = 0;
  for (size_t i = 0; i < lines.size() && failures < 3; ++i) {
    const std::string text = lines[i].at("text").get<std::string>();
    auto want = lines[i].at("ids").get<std::vector<int32_t>>();
    std::string d = first_mismatch(want, tok.encode(text, false));
    if (!d.empty()) ++failures;
    EXPECT_EQ(d, "") << "line " << i << ": '" << text << "'";
  }
}

void check_document(const ar::Tokenizer& tok, const json& vectors, const std::filesystem::path& text_path) {
  const std::string text = read_text(text_path);
  auto want = vectors.at("document").at("ids").get<std::vector<int32_t>>();
  auto got = tok.encode(text, true);
  EXPECT_EQ(first_mismatch(want, got), "") << "whole document " << text_path;
  // Round trip: decoding all ids (skipping specials) gives the text back for these tokenizers.
  EXPECT_TRUE(tok.decode(got, true) == text) << "decode(encode(document)) differs from the document";
}

TEST(TokenizerVectors, Qwen3Cases) {
  AR_REQUIRE_FIXTURE(dir, "tokenizers/qwen3");
  AR_REQUIRE_FIXTURE(vec, "tokenizers/vectors/qwen3.json");
  check_cases(cached_tokenizer(dir), cached_json(vec));
}

TEST(TokenizerVectors, Qwen3Lines) {
  AR_REQUIRE_FIXTURE(dir, "tokenizers/qwen3");
  AR_REQUIRE_FIXTURE(vec, "tokenizers/vectors/qwen3.json");
  check_lines(cached_tokenizer(dir), cached_json(vec));
}

TEST(TokenizerVectors, Qwen3Document) {
  AR_REQUIRE_FIXTURE(dir, "tokenizers/qwen3");
  AR_REQUIRE_FIXTURE(vec, "tokenizers/vectors/qwen3.json");
  AR_REQUIRE_FIXTURE(text, "text/wikitext2-test.txt");
  check_document(cached_tokenizer(dir), cached_json(vec), text);
}

TEST(TokenizerVectors, Qwen3SpecialIds) {
  AR_REQUIRE_FIXTURE(dir, "tokenizers/qwen3");
  const auto& tok = cached_tokenizer(dir);
  // From the fixture files: 151643 model tokens + added tokens up to id 151668; the config
  // names <|im_end|> (151645) as eos and no bos; the ByteLevel post-processor adds nothing.
  EXPECT_EQ(tok.vocab_size(), 151669u);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.eos_id(), 151645);
  EXPECT_FALSE(tok.adds_bos());
}

TEST(TokenizerVectors, Stories260KCases) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(vec, "tokenizers/vectors/stories260K.json");
  check_cases(cached_tokenizer(dir), cached_json(vec));
}

TEST(TokenizerVectors, Stories260KLines) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(vec, "tokenizers/vectors/stories260K.json");
  check_lines(cached_tokenizer(dir), cached_json(vec));
}

TEST(TokenizerVectors, Stories260KDocument) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(vec, "tokenizers/vectors/stories260K.json");
  AR_REQUIRE_FIXTURE(text, "text/wikitext2-test.txt");
  check_document(cached_tokenizer(dir), cached_json(vec), text);
}

TEST(TokenizerVectors, Stories260KSpecialIds) {
  AR_REQUIRE_FIXTURE(dir, "models/stories260K/hf");
  const auto& tok = cached_tokenizer(dir);
  // tokenizer.json: 512 ids, <unk>=0 <s>=1 </s>=2, template "<s> $A".
  EXPECT_EQ(tok.vocab_size(), 512u);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.adds_bos());
}

}  // namespace
