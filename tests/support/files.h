// Reading what a test's run wrote: one file's bytes, or a whole folder as one comparable string.
#pragma once
#include <filesystem>
#include <string>

namespace ar::test {

// The file's bytes; empty when it cannot be read.
std::string read_bytes(const std::filesystem::path& p);
// Every regular file under `dir`, in sorted order, as "relative path\n" + bytes: equal strings
// mean byte-identical folders.
std::string tree_bytes(const std::filesystem::path& dir);

}  // namespace ar::test
