// Dataset files: byte 0 picks the file name (.txt / .jsonl / .json), byte 1 the window length, the
// rest is the file. Loaded as eval and calibration load it (with a small byte-level tokenizer),
// then cut into windows.
#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "core/error.h"
#include "fuzz_util.h"
#include "tools/synth_tokenizer.h"

using namespace ar;

namespace {
const Tokenizer& tokenizer() {
  static const Tokenizer tok = [] {
    const SynthTokenizer s = build_synth_tokenizer("Once upon a time there was a little dog. The end.", 40, 2048);
    return Tokenizer::from_json(s.tokenizer_json.dump(), s.tokenizer_config.dump(), "synth");
  }();
  return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* kNames[] = {"data.txt", "data.jsonl", "data.json", "ids"};
  const auto path = fuzz::scratch_dir() / kNames[data[0] % 4];
  const int64_t seqlen = 2 + data[1] % 64;
  fuzz::write_bytes(path, fuzz::as_view(data + 2, size - 2));
  AR_FUZZ_EXPECT_ERRORS({
    const auto docs = load_eval_tokens(path, &tokenizer());
    (void)cut_windows(docs, seqlen);
  });
  AR_FUZZ_EXPECT_ERRORS(read_token_id_file(path));
  AR_FUZZ_EXPECT_ERRORS(read_jsonl_texts(path));
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return 0;
}
