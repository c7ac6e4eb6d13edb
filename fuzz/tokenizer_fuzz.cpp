// tokenizer.json: parts (split by kSplit) are tokenizer.json, tokenizer_config.json and a text.
// A tokenizer that loads must then encode the text (with and without special tokens), decode the
// ids back, and decode arbitrary ids (unknown ones are dropped) without failing.
#include <cstring>
#include <string>
#include <vector>

#include "calib/tokenizer.h"
#include "core/error.h"
#include "fuzz_util.h"

using namespace ar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_view(data, size));
  const std::string_view tok_json = parts[0];
  const std::string_view cfg_json = parts.size() > 1 ? parts[1] : std::string_view();
  const std::string_view text = parts.size() > 2 ? parts[2] : std::string_view("Hello world! Once upon a time");
  AR_FUZZ_EXPECT_ERRORS({
    const Tokenizer tok = Tokenizer::from_json(tok_json, cfg_json, "fuzz/tokenizer.json");
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = tok.encode(text, special);
      (void)tok.decode(ids, false);
      (void)tok.decode(ids, true);
      for (int32_t id : ids) (void)tok.id_to_token(id);
    }
    // The text's bytes as raw ids, in and out of range (negative included).
    std::vector<int32_t> raw(text.size() / 4);
    if (!raw.empty()) std::memcpy(raw.data(), text.data(), raw.size() * 4);
    (void)tok.decode(raw, false);
    (void)tok.decode(raw, true);
    (void)tok.token_to_id(text);
    (void)tok.bos_id();
    (void)tok.eos_id();
    (void)tok.vocab_size();
  });
  return 0;
}
