// Tokenizer pieces on tiny hand-written tokenizer.json files: BPE merge order, byte-level
// alphabet, GPT-2 split, added tokens, SentencePiece-style byte fallback / unk, post-processors,
// decoders, UTF-8 repair and Unicode normal forms. Expected ids are worked out by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

#include "calib/tok_pretokenize.h"
#include "calib/tok_regex.h"
#include "calib/tok_unicode.h"
#include "calib/tokenizer.h"

namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

ar::Tokenizer make(const json& tokenizer, const json& config = nullptr) {
  return ar::Tokenizer::from_json(tokenizer.dump(), config.is_null() ? "" : config.dump(), "test/tokenizer.json");
}

json bpe(json vocab, json merges) {
  return {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
}

json byte_level_pre(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", use_regex}};
}

// ---- BPE merge loop -------------------------------------------------------------------------

TEST(TokenizerBpe, LowerRankMergesFirst) {
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // "b c" outranks "a b": a|bc, then "a bc" -> abc.
  auto t1 = make({{"model", bpe(vocab, {"b c", "a b", "a bc"})}});
  EXPECT_EQ(t1.encode("abc", false), (Ids{5}));
  // "a b" first: ab|c, and no merge joins ab with c.
  auto t2 = make({{"model", bpe(vocab, {"a b", "b c", "a bc"})}});
  EXPECT_EQ(t2.encode("abc", false), (Ids{3, 2}));
}

TEST(TokenizerBpe, EqualRankMergesLeftmostFirst) {
  auto t = make({{"model", bpe({{"a", 0}, {"aa", 1}}, {"a a"})}});
  EXPECT_EQ(t.encode("aaa", false), (Ids{1, 0}));
  EXPECT_EQ(t.encode("aaaa", false), (Ids{1, 1}));
}

TEST(TokenizerBpe, MergesAsPairs) {
  // Tokens containing a space need the [a, b] form of a merge.
  json vocab = {{"a", 0}, {" ", 1}, {"b", 2}, {" b", 3}, {"a b", 4}};
  auto t = make({{"model", bpe(vocab, json::array({json::array({" ", "b"}), json::array({"a", " b"})}))}});
  EXPECT_EQ(t.encode("a b", false), (Ids{4}));
  EXPECT_EQ(t.encode("b a", false), (Ids{2, 1, 0}));
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeWord) {
  json m = bpe({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}}, {"a b"});
  m["ignore_merges"] = true;
  auto t = make({{"model", m}});
  EXPECT_EQ(t.encode("abc", false), (Ids{4}));  // in the vocabulary: no merging at all
  EXPECT_EQ(t.encode("abca", false), (Ids{3, 2, 0}));
}

TEST(TokenizerBpe, LongWordsKeepTheMergeOrder) {
  // Words of thousands of symbols take another merge path; the order must not change.
  // "b a" (rank 0) first, leftmost first: a|ba|ba|...|ba|b, and nothing merges further.
  auto t = make({{"model", bpe({{"a", 0}, {"b", 1}, {"ab", 2}, {"ba", 3}}, {"b a", "a b"})}});
  std::string word;
  for (int k = 0; k < 3000; ++k) word += "ab";
  Ids want{0};
  want.insert(want.end(), 2999, 3);
  want.push_back(1);
  EXPECT_EQ(t.encode(word, false), want);
  EXPECT_EQ(t.encode("ababab", false), (Ids{0, 3, 3, 1}));
}

TEST(TokenizerBpe, LongWordsAreCutOnlyWhereNoMergeCrosses) {
  // "_ab" x 5000 as one word: "_ a" then "a b" cannot fire (a is taken), so each "_ab" gives
  // [_a, b]. No merge joins b with _, so the word may be cut before every '_'; with the merge
  // "b _" listed it may not, and the result must be the same either way.
  json vocab = {{"_", 0}, {"a", 1}, {"b", 2}, {"_a", 3}, {"ab", 4}, {"b_", 5}};
  std::string word;
  for (int k = 0; k < 5000; ++k) word += "_ab";
  Ids want;
  for (int k = 0; k < 5000; ++k) want.insert(want.end(), {3, 2});
  EXPECT_EQ(make({{"model", bpe(vocab, {"_ a", "a b"})}}).encode(word, false), want);
  EXPECT_EQ(make({{"model", bpe(vocab, {"_ a", "a b", "b _"})}}).encode(word, false), want);
  // Characters outside the vocabulary never border a cut (byte fallback / unk fusing).
  json m = bpe({{"<unk>", 0}, {"_", 1}, {"a", 2}}, json::array());
  m["unk_token"] = "<unk>";
  m["fuse_unk"] = true;
  std::string unk_word;
  for (int k = 0; k < 3000; ++k) unk_word += "_a";
  unk_word += std::string(9000, 'x');  // one fused unk, however long
  Ids unk_want;
  for (int k = 0; k < 3000; ++k) unk_want.insert(unk_want.end(), {1, 2});
  unk_want.push_back(0);
  EXPECT_EQ(make({{"model", m}}).encode(unk_word, false), unk_want);
}

TEST(TokenizerBpe, LongWordsRevisitLowerRanks) {
  // A hand-made list where merging "a b" (rank 1) creates "c ab" (rank 0).
  auto t = make({{"model", bpe({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"cab", 4}}, {"c ab", "a b"})}});
  std::string word;
  for (int k = 0; k < 2000; ++k) word += "cab";
  EXPECT_EQ(t.encode(word, false), Ids(2000, 4));
  EXPECT_EQ(t.encode("cabcab", false), (Ids{4, 4}));
}

TEST(TokenizerBpe, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  // "##": every symbol but the first carries the prefix; a merge drops the right side's prefix.
  json p = bpe({{"a", 0}, {"##b", 1}, {"##c", 2}, {"ab", 3}, {"abc", 4}}, {"a ##b", "ab ##c"});
  p["continuing_subword_prefix"] = "##";
  EXPECT_EQ(make({{"model", p}}).encode("abc", false), (Ids{4}));
  EXPECT_EQ(make({{"model", p}}).encode("ac", false), (Ids{0, 2}));
  // "</w>": the last symbol of a word carries the suffix.
  json w = bpe({{"a", 0}, {"b", 1}, {"b</w>", 2}, {"a</w>", 3}, {"ab</w>", 4}}, {"a b</w>"});
  w["end_of_word_suffix"] = "</w>";
  EXPECT_EQ(make({{"model", w}}).encode("ab", false), (Ids{4}));
  EXPECT_EQ(make({{"model", w}}).encode("ba", false), (Ids{1, 3}));
}

// ---- byte-level BPE ------------------------------------------------------------------------

TEST(TokenizerByteLevel, MapsBytesToTheGpt2Alphabet) {
  // GPT-2's table: space -> U+0120 'Ġ', '\n' -> U+010A 'Ċ', NUL -> U+0100 'Ā'.
  json vocab = {{"\xC4\xA0", 10}, {"\xC4\x8A", 11}, {"\xC4\x80", 12}, {"h", 13}, {"i", 14}, {"\xC4\xA0h", 15}};
  json tj = {{"model", bpe(vocab, {"\xC4\xA0 h"})},
             {"pre_tokenizer", byte_level_pre(false)},
             {"decoder", {{"type", "ByteLevel"}}}};
  auto t = make(tj);
  const std::string text(" hi\n\0", 5);
  EXPECT_EQ(t.encode(text, false), (Ids{15, 14, 11, 12}));
  EXPECT_EQ(t.decode(Ids{15, 14, 11, 12}), text);
}

TEST(TokenizerByteLevel, Gpt2RegexSplitsBeforeMerging) {
  // Unsplit, "a Ġ" would win; the GPT-2 regex cuts "a b" into "a" and " b" first.
  json vocab = {{"a", 0}, {"b", 1}, {"\xC4\xA0", 2}, {"a\xC4\xA0", 3}, {"\xC4\xA0" "b", 4}};
  json model = bpe(vocab, {"a \xC4\xA0", "\xC4\xA0 b"});
  auto split = make({{"model", model}, {"pre_tokenizer", byte_level_pre(true)}});
  EXPECT_EQ(split.encode("a b", false), (Ids{0, 4}));
  auto whole = make({{"model", model}, {"pre_tokenizer", byte_level_pre(false)}});
  EXPECT_EQ(whole.encode("a b", false), (Ids{3, 1}));
}

TEST(TokenizerByteLevel, SplitRegexIsolated) {
  // Split on digits, Isolated: "ab12" -> "ab", "1", "2"; without it "b 1" would merge.
  json vocab = {{"a", 0}, {"b", 1}, {"1", 2}, {"2", 3}, {"ab", 4}, {"b1", 5}};
  json pre = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}"}}}, {"behavior", "Isolated"}, {"invert", false}},
                byte_level_pre(false)}}};
  auto t = make({{"model", bpe(vocab, {"b 1", "a b"})}, {"pre_tokenizer", pre}});
  EXPECT_EQ(t.encode("ab12", false), (Ids{4, 2, 3}));
}

TEST(TokenizerNormalizers, ReplaceWithRegexAndLowercase) {
  json vocab = {{"a", 0}, {"b", 1}, {"_", 2}};
  json norm = {{"type", "Sequence"},
               {"normalizers",
                {{{"type", "Lowercase"}},
                 {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}}}}};
  auto t = make({{"model", bpe(vocab, json::array())}, {"normalizer", norm}});
  EXPECT_EQ(t.encode("A \t\nB", false), (Ids{0, 2, 1}));
}

std::vector<std::string> pre_tokenize(const json& pre, std::string_view text, bool first = true) {
  auto p = ar::tok::parse_pre_tokenizer(pre, "test/tokenizer.json");
  std::vector<std::string> pieces;
  p.run(text, first, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(TokenizerPreTokenizers, SplitBehaviors) {
  // The example of HF's SplitDelimiterBehavior documentation: '-' on "the-final--countdown".
  auto split = [](const char* behavior, bool invert = false) {
    json pre = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    return pre_tokenize(pre, "the-final--countdown");
  };
  EXPECT_EQ(split("Removed"), (Pieces{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (Pieces{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (Pieces{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (Pieces{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (Pieces{"the", "-", "final", "--", "countdown"}));
  // invert: the words are the delimiters, so Removed keeps only the dashes.
  EXPECT_EQ(split("Removed", true), (Pieces{"-", "-", "-"}));
  json re = {{"type", "Split"}, {"pattern", {{"Regex", "-+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_EQ(pre_tokenize(re, "a--b-"), (Pieces{"a", "--", "b", "-"}));
}

TEST(TokenizerPreTokenizers, MetaspaceSchemes) {
  const std::string u = "\xE2\x96\x81";
  json first = {{"type", "Metaspace"}, {"replacement", u}, {"prepend_scheme", "first"}, {"split", true}};
  EXPECT_EQ(pre_tokenize(first, "hi  there"), (Pieces{u + "hi", u, u + "there"}));
  EXPECT_EQ(pre_tokenize(first, "hi", /*first=*/false), (Pieces{"hi"}));  // not the start of the input
  json never = {{"type", "Metaspace"}, {"replacement", u}, {"prepend_scheme", "never"}, {"split", false}};
  EXPECT_EQ(pre_tokenize(never, "hi there"), (Pieces{"hi" + u + "there"}));
}

TEST(TokenizerPreTokenizers, Gpt2Regex) {
  json gpt2 = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  auto p = ar::tok::parse_pre_tokenizer(gpt2, "test/tokenizer.json");
  ASSERT_TRUE(p.defer_byte_map);  // the last step's byte mapping is left to the caller
  // GPT-2's split of a prefixed " I've 42 cats!!  ": contractions, letters, digits, punctuation,
  // and a trailing space run.
  EXPECT_EQ(pre_tokenize(gpt2, "I've 42 cats!!  "), (Pieces{" I", "'ve", " 42", " cats", "!!", "  "}));
}

TEST(TokenizerPreTokenizers, DigitsAndWhitespace) {
  // With no merges each character is its own token, so the ids show only what survives.
  json vocab = {{"a", 0}, {"b", 1}, {"1", 2}, {"2", 3}, {" ", 4}, {"!", 5}, {"ab", 6}, {"12", 7}, {"b1", 8}};
  json model = bpe(vocab, {"a b", "1 2", "b 1"});
  auto digits = make({{"model", model}, {"pre_tokenizer", {{"type", "Digits"}, {"individual_digits", true}}}});
  EXPECT_EQ(digits.encode("ab12", false), (Ids{6, 2, 3}));
  auto runs = make({{"model", model}, {"pre_tokenizer", {{"type", "Digits"}, {"individual_digits", false}}}});
  EXPECT_EQ(runs.encode("ab12", false), (Ids{6, 7}));
  // WhitespaceSplit drops the spaces; Whitespace also separates punctuation from words.
  auto ws = make({{"model", model}, {"pre_tokenizer", {{"type", "WhitespaceSplit"}}}});
  EXPECT_EQ(ws.encode(" ab  b1! ", false), (Ids{6, 8, 5}));
  auto w = make({{"model", model}, {"pre_tokenizer", {{"type", "Whitespace"}}}});
  EXPECT_EQ(w.encode(" ab  b1! ", false), (Ids{6, 8, 5}));
  EXPECT_EQ(w.encode("ab!b1", false), (Ids{6, 5, 8}));
}

TEST(TokenizerRegex, BackslashSIsUnicodeWhiteSpace) {
  // Oniguruma (HF's engine) matches White_Space: U+0085 and U+3000 yes, U+180E and U+FEFF no.
  auto re = ar::tok::Regex::compile("\\s+", "test");
  std::vector<std::pair<size_t, size_t>> spans;
  const std::string text = "a\xE1\xA0\x8E b\xC2\x85\xE3\x80\x80" "c\xEF\xBB\xBF";
  re.find_all(text, spans);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], (std::pair<size_t, size_t>{4, 5}));   // the space after U+180E
  EXPECT_EQ(spans[1], (std::pair<size_t, size_t>{6, 11}));  // U+0085 U+3000
}

TEST(TokenizerRegex, SpaceClassRewrite) {
  using ar::tok::rewrite_space_classes;
  const std::string set = rewrite_space_classes("[\\s]").substr(1, rewrite_space_classes("[\\s]").size() - 2);
  EXPECT_NE(set.find("\\x{3000}"), std::string::npos);
  EXPECT_EQ(rewrite_space_classes("\\s+(?!\\S)"), "[" + set + "]+(?![^" + set + "])");
  EXPECT_EQ(rewrite_space_classes("[^\\s\\p{L}]"), "[^" + set + "\\p{L}]");
  EXPECT_EQ(rewrite_space_classes("[]\\s]x"), "[]" + set + "]x");  // a leading ']' is literal
  EXPECT_EQ(rewrite_space_classes("\\\\s"), "\\\\s");            // an escaped backslash, then 's'
}

// ---- added tokens -------------------------------------------------------------------------

json small_vocab() { return {{"a", 0}, {"b", 1}, {" ", 2}, {"h", 3}, {"i", 4}, {"s", 5}}; }

json added(int id, const std::string& content, bool special, bool lstrip = false, bool rstrip = false,
           bool single_word = false) {
  return {{"id", id}, {"content", content}, {"special", special}, {"lstrip", lstrip},
          {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", false}};
}

TEST(TokenizerAdded, SplitsBeforeBpeLongestFirst) {
  json tj = {{"model", bpe(small_vocab(), json::array())},
             {"added_tokens", {added(10, "<x>", true), added(11, "<x>>", false)}}};
  auto t = make(tj);
  EXPECT_EQ(t.encode("a<x>b", false), (Ids{0, 10, 1}));
  EXPECT_EQ(t.encode("a<x>>b", false), (Ids{0, 11, 1}));  // the longer token wins at one position
  EXPECT_EQ(t.encode("<x><x>", true), (Ids{10, 10}));
  // No decoder declared: HF joins the tokens with spaces.
  EXPECT_EQ(t.decode(Ids{0, 10, 1}), "a <x> b");
  EXPECT_EQ(t.decode(Ids{0, 10, 11, 1}, /*skip_special_tokens=*/true), "a <x>> b");
  EXPECT_EQ(t.vocab_size(), 12u);
}

TEST(TokenizerAdded, LstripRstripAbsorbSpaces) {
  json tj = {{"model", bpe(small_vocab(), json::array())},
             {"added_tokens", {added(10, "<l>", true, true, false), added(11, "<r>", true, false, true)}}};
  auto t = make(tj);
  EXPECT_EQ(t.encode("a  <l> b", false), (Ids{0, 10, 2, 1}));
  EXPECT_EQ(t.encode("a <r>  b", false), (Ids{0, 2, 11, 1}));
}

TEST(TokenizerAdded, SingleWordNeedsWordBoundaries) {
  json tj = {{"model", bpe(small_vocab(), json::array())}, {"added_tokens", {added(10, "hi", false, false, false, true)}}};
  auto t = make(tj);
  EXPECT_EQ(t.encode("hi a", false), (Ids{10, 2, 0}));
  EXPECT_EQ(t.encode("shi", false), (Ids{5, 3, 4}));
  EXPECT_EQ(t.encode("his", false), (Ids{3, 4, 5}));
}

// ---- SentencePiece-style BPE --------------------------------------------------------------

const char* kSp = "\xE2\x96\x81";  // U+2581 '▁'

json sp_tokenizer(bool byte_fallback, bool fuse_unk) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0xC3>", 3}, {"<0xA9>", 4},
                {kSp, 5},     {"a", 6},   {std::string(kSp) + "a", 7}};
  json model = bpe(vocab, {std::string(kSp) + " a"});
  model["unk_token"] = "<unk>";
  model["byte_fallback"] = byte_fallback;
  model["fuse_unk"] = fuse_unk;
  return {
      {"model", model},
      {"added_tokens", {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", kSp}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", kSp}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
}

TEST(TokenizerSentencePiece, ByteFallbackAndDecoderChain) {
  auto t = make(sp_tokenizer(true, false));
  // "a é" -> "▁a▁é"; é is not in the vocabulary -> its bytes C3 A9.
  EXPECT_EQ(t.encode("a \xC3\xA9", false), (Ids{7, 5, 3, 4}));
  EXPECT_EQ(t.encode("a \xC3\xA9", true), (Ids{1, 7, 5, 3, 4}));
  EXPECT_EQ(t.decode(Ids{7, 5, 3, 4}), "a \xC3\xA9");
  EXPECT_EQ(t.decode(Ids{1, 7, 5, 3, 4}, true), "a \xC3\xA9");
  EXPECT_EQ(t.decode(Ids{1, 7}), "<s> a");  // Strip only removes a leading space
  // A lone continuation byte is not UTF-8: one U+FFFD per byte.
  EXPECT_EQ(t.decode(Ids{7, 4}), "a\xEF\xBF\xBD");
  EXPECT_EQ(t.encode("", false), Ids{});
  EXPECT_EQ(t.encode("", true), (Ids{1}));
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_TRUE(t.adds_bos());
}

TEST(TokenizerSentencePiece, UnknownCharactersFuseOrNot) {
  auto fused = make(sp_tokenizer(false, true));
  EXPECT_EQ(fused.encode("\xC3\xA9\xC3\xA9" "a", false), (Ids{5, 0, 6}));
  auto separate = make(sp_tokenizer(false, false));
  EXPECT_EQ(separate.encode("\xC3\xA9\xC3\xA9" "a", false), (Ids{5, 0, 0, 6}));
}

TEST(TokenizerSentencePiece, PrependAppliesToEachSpanBetweenAddedTokens) {
  auto t = make(sp_tokenizer(true, false));
  // "<s>a" -> <s>, "▁a" (the span after an added token is normalized on its own).
  EXPECT_EQ(t.encode("<s>a", false), (Ids{1, 7}));
}

TEST(TokenizerSentencePiece, LegacyMetaspacePreTokenizer) {
  json tj = sp_tokenizer(true, false);
  tj["normalizer"] = nullptr;
  tj["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kSp}, {"add_prefix_space", true}};
  tj["decoder"] = {{"type", "Metaspace"}, {"replacement", kSp}, {"add_prefix_space", true}};
  auto t = make(tj);
  EXPECT_EQ(t.encode("a a", false), (Ids{7, 7}));
  EXPECT_EQ(t.decode(Ids{7, 7}), "a a");
}

// ---- post-processors and tokenizer_config.json -------------------------------------------

TEST(TokenizerPost, TemplateWithBosAndEos) {
  json tj = sp_tokenizer(true, false);
  tj["post_processor"]["single"] = {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                    {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}};
  auto t = make(tj);
  EXPECT_EQ(t.encode("a", true), (Ids{1, 7, 2}));
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
}

TEST(TokenizerPost, NoPostProcessorUsesConfigFlags) {
  json tj = sp_tokenizer(true, false);
  tj["post_processor"] = nullptr;
  auto plain = make(tj);
  EXPECT_EQ(plain.encode("a", true), (Ids{7}));
  EXPECT_FALSE(plain.adds_bos());
  json cfg = {{"add_bos_token", true}, {"add_eos_token", true}, {"bos_token", {{"content", "<s>"}}}, {"eos_token", "</s>"}};
  auto t = make(tj, cfg);
  EXPECT_EQ(t.encode("a", true), (Ids{1, 7, 2}));
  EXPECT_EQ(t.encode("a", false), (Ids{7}));
  EXPECT_TRUE(t.adds_bos());
  EXPECT_EQ(t.eos_id(), 2);
}

TEST(TokenizerPost, LlamaClassFlagsOverrideTheTemplate) {
  // transformers' LlamaTokenizerFast rebuilds the template from the config flags.
  json tj = sp_tokenizer(true, false);  // template "<s> $A"
  json cfg = {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", false}, {"add_eos_token", true},
              {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  auto t = make(tj, cfg);
  EXPECT_EQ(t.encode("a", true), (Ids{7, 2}));
  EXPECT_FALSE(t.adds_bos());
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";  // other classes keep the file's template
  EXPECT_EQ(make(tj, cfg).encode("a", true), (Ids{1, 7}));
}

TEST(TokenizerPost, CleanUpTokenizationSpaces) {
  json vocab = {{"a", 0}, {" ", 1}, {".", 2}, {"'", 3}, {"s", 4}};
  json tj = {{"model", bpe(vocab, json::array())}};
  EXPECT_EQ(make(tj).decode(Ids{0, 2, 3, 4}), "a . ' s");  // no decoder: joined with spaces
  EXPECT_EQ(make(tj, {{"clean_up_tokenization_spaces", true}}).decode(Ids{0, 2, 3, 4}), "a.'s");
}

TEST(TokenizerPost, RobertaProcessing) {
  json tj = sp_tokenizer(true, false);
  tj["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", {"<s>", 1}}, {"sep", {"</s>", 2}}};
  auto t = make(tj);
  EXPECT_EQ(t.encode("a", true), (Ids{1, 7, 2}));
}

TEST(TokenizerPost, ConcurrentEncodesShareTheWordCache) {
  // encode() is const and may run on several threads; the word cache is shared between them.
  json vocab = {{"a", 0}, {"b", 1}, {"\xC4\xA0", 2}, {"ab", 3}, {"\xC4\xA0" "ab", 4}};
  auto t = make({{"model", bpe(vocab, {"a b", "\xC4\xA0 ab"})}, {"pre_tokenizer", byte_level_pre(true)}});
  std::string text;
  for (int k = 0; k < 2000; ++k) text += (k % 3 == 0) ? "ab " : (k % 3 == 1) ? "ba " : "aab ";
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) threads.emplace_back([&, k] { got[k] = t.encode(text, false); });
  for (auto& th : threads) th.join();
  // Words after the GPT-2 split: "ab" -> [ab]; " ab" -> Ġ ab -> [Ġab]; " ba" -> [Ġ, b, a];
  // " aab" -> Ġ a ab (Ġ is not next to ab) -> [Ġ, a, ab]; the text ends with one space.
  Ids want;
  for (int k = 0; k < 2000; ++k) {
    if (k == 0) want.push_back(3);
    else if (k % 3 == 0) want.push_back(4);
    else if (k % 3 == 1) want.insert(want.end(), {2, 1, 0});
    else want.insert(want.end(), {2, 0, 3});
  }
  want.push_back(2);  // the final space
  for (int k = 0; k < 4; ++k) EXPECT_EQ(got[k], want) << "thread " << k;
}

TEST(TokenizerPost, MovedTokenizerStillWorks) {
  auto a = make(sp_tokenizer(true, false));
  ar::Tokenizer b = std::move(a);
  EXPECT_EQ(b.encode("a", true), (Ids{1, 7}));
}

// ---- UTF-8 and Unicode --------------------------------------------------------------------

TEST(TokenizerUnicode, LossyUtf8FollowsWhatwg) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(ar::tok::utf8_lossy("a\xC3(b"), "a" + fffd + "(b");          // truncated 2-byte
  EXPECT_EQ(ar::tok::utf8_lossy("\xF0\x9F\x98"), fffd);                   // truncated 4-byte: one
  EXPECT_EQ(ar::tok::utf8_lossy("\xED\xA0\x80"), fffd + fffd + fffd);    // surrogate: per byte
  EXPECT_EQ(ar::tok::utf8_lossy("\xC0\xAF"), fffd + fffd);               // overlong
  EXPECT_EQ(ar::tok::utf8_lossy("ok \xE2\x96\x81"), "ok \xE2\x96\x81");
  EXPECT_FALSE(ar::tok::is_valid_utf8("\xFF"));
  EXPECT_TRUE(ar::tok::is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_FALSE(ar::tok::is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
}

TEST(TokenizerUnicode, NormalForms) {
  using ar::tok::NormalForm;
  // e + COMBINING ACUTE <-> U+00E9; U+FB01 'ﬁ' only changes under compatibility forms.
  EXPECT_EQ(ar::tok::normalize_unicode("x e\xCC\x81 y", NormalForm::NFC), "x \xC3\xA9 y");
  EXPECT_EQ(ar::tok::normalize_unicode("\xC3\xA9", NormalForm::NFD), "e\xCC\x81");
  EXPECT_EQ(ar::tok::normalize_unicode("\xEF\xAC\x81", NormalForm::NFC), "\xEF\xAC\x81");
  EXPECT_EQ(ar::tok::normalize_unicode("\xEF\xAC\x81", NormalForm::NFKC), "fi");
  EXPECT_EQ(ar::tok::normalize_unicode(std::string("a\0b", 3), NormalForm::NFC), std::string("a\0b", 3));
  // Two runs separated by ASCII, and a combining mark at the very start.
  EXPECT_EQ(ar::tok::normalize_unicode("\xCC\x81" "a\xCC\x81 o\xCC\x88", NormalForm::NFC),
            "\xCC\x81\xC3\xA1 \xC3\xB6");
}

TEST(TokenizerUnicode, InvalidUtf8InputIsRepairedNotFatal) {
  // U+FFFD is EF BF BD: byte-level chars "ï", "¿", "½".
  json vocab = {{"\xC3\xAF", 0}, {"\xC2\xBF", 1}, {"\xC2\xBD", 2}, {"a", 3}};
  auto t = make({{"model", bpe(vocab, json::array())}, {"pre_tokenizer", byte_level_pre(true)}});
  EXPECT_EQ(t.encode("a\xFF", false), (Ids{3, 0, 1, 2}));
}

}  // namespace
