// Synthetic tokenizer: GPT-2 byte symbols and split rules checked against known values, the
// structure of the learned vocab/merges, and a round trip through the project's HF tokenizer.
#include "tools/synth_tokenizer.h"

#include <gtest/gtest.h>

#include <set>

#include "calib/tokenizer.h"
#include "calib/builtin_text.h"

namespace ar {
namespace {

TEST(SynthTokenizer, ByteLevelSymbolsMatchGpt2) {
  // Known entries of GPT-2's bytes_to_unicode table.
  EXPECT_EQ(byte_level_symbol('A'), "A");
  EXPECT_EQ(byte_level_symbol('~'), "~");
  EXPECT_EQ(byte_level_symbol(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_level_symbol('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_level_symbol(0x00), "\xC4\x80");  // U+0100 'Ā'
  EXPECT_EQ(byte_level_symbol(0xAD), "\xC5\x83");  // U+0143 'Ń' (soft hyphen)
  EXPECT_EQ(byte_level_symbol(0xE9), "\xC3\xA9");  // printable Latin-1 maps to itself
  std::set<std::string> all;
  for (int b = 0; b < 256; ++b) all.insert(byte_level_symbol(uint8_t(b)));
  EXPECT_EQ(all.size(), 256u);
}

TEST(SynthTokenizer, SplitFollowsGpt2Regex) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(split_gpt2_ascii("Hello world's 123  x\n"),
            (V{"Hello", " world", "'s", " 123", " ", " x", "\n"}));
  EXPECT_EQ(split_gpt2_ascii("don't stop!!  "), (V{"don", "'t", " stop", "!!", "  "}));
  EXPECT_EQ(split_gpt2_ascii("a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split_gpt2_ascii("x   'y"), (V{"x", "  ", " '", "y"}));
}

TEST(SynthTokenizer, VocabAndMergesAreConsistent) {
  SynthTokenizer t = build_synth_tokenizer(builtin_calibration_text(), 300, 1024);
  const auto& vocab = t.tokenizer_json["model"]["vocab"];
  EXPECT_EQ(t.merges.size(), 300u);
  EXPECT_EQ(int64_t(vocab.size()) + 1, t.vocab_size);
  EXPECT_EQ(t.eos_id, t.vocab_size - 1);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(vocab[byte_level_symbol(uint8_t(b))], b);
  for (const auto& [a, b] : t.merges) {
    ASSERT_TRUE(vocab.contains(a)) << a;
    ASSERT_TRUE(vocab.contains(b)) << b;
    ASSERT_TRUE(vocab.contains(a + b)) << a << b;
  }
  // " the" is the most common word of any English text; it must have become one token.
  EXPECT_TRUE(vocab.contains("\xC4\xA0the"));
  EXPECT_EQ(t.tokenizer_json["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(t.tokenizer_json["added_tokens"][0]["id"], t.eos_id);
  EXPECT_EQ(t.tokenizer_config["eos_token"], "<|endoftext|>");
  // Zero merges: bytes only.
  EXPECT_EQ(build_synth_tokenizer("abc abc", 0, 16).vocab_size, 257);
}

TEST(SynthTokenizer, RoundTripsThroughHfTokenizer) {
  SynthTokenizer t = build_synth_tokenizer(builtin_calibration_text(), 400, 2048);
  Tokenizer tok = Tokenizer::from_json(t.tokenizer_json.dump(), t.tokenizer_config.dump(), "synthetic");
  EXPECT_EQ(tok.eos_id(), int32_t(t.eos_id));
  EXPECT_EQ(tok.vocab_size(), size_t(t.vocab_size));
  const std::string_view text = builtin_calibration_text();
  std::vector<int32_t> ids = tok.encode(text, false);
  EXPECT_EQ(tok.decode(ids), text);
  // 400 merges learned on this very text compress it well below one token per byte.
  EXPECT_LT(ids.size(), text.size() / 2);
  std::string other = "Zebras quickly jumped 42 times, didn't they? <|endoftext|>";
  std::vector<int32_t> o = tok.encode(other, false);
  EXPECT_EQ(o.back(), int32_t(t.eos_id));
  EXPECT_EQ(tok.decode(o), other);
}

}  // namespace
}  // namespace ar
