// Shared helpers for the libFuzzer targets (fuzz/*_fuzz.cpp).
// A target feeds the bytes to one parser. Bad input must end in ar::Error (caught here and ignored);
// anything else that escapes (another exception type, an AR_CHECK, a sanitizer report) is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ar::fuzz {

// Separates the parts of a multi-file input (e.g. index json | shard | shard). In the dictionaries.
inline constexpr std::string_view kSplit = "\n@@AR-SPLIT@@\n";
// Splits `data` at every kSplit; always at least one part.
std::vector<std::string_view> split_parts(std::string_view data);

// A private scratch folder for this process (under $TMPDIR, else /tmp), emptied between runs by
// the targets that need it and removed at exit.
const std::filesystem::path& scratch_dir();
// Removes everything inside scratch_dir().
void clear_scratch();
// Writes `bytes` to `path` (truncating).
void write_bytes(const std::filesystem::path& path, std::string_view bytes);

// The input as a string_view.
inline std::string_view as_view(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace ar::fuzz

// Runs `body`; ar::Error (rejected input) is the expected way out and is swallowed.
#define AR_FUZZ_EXPECT_ERRORS(body) \
  do {                              \
    try {                           \
      body;                         \
    } catch (const ::ar::Error&) {  \
    }                               \
  } while (0)
