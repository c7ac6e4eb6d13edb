// Locating ../shared/fixtures. Tests that need them skip (with the path they looked for)
// when the folder is absent, as on a user's fresh clone.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace ar::test {

// Root of the shared fixtures: $AR_FIXTURES if set, else <source>/../shared/fixtures.
std::filesystem::path fixtures_root();
// fixtures_root()/rel; empty path if it does not exist.
std::filesystem::path find_fixture(const std::string& rel);
// A fresh, empty temporary directory under the build tree, removed by the caller (or left for
// inspection when a test fails).
std::filesystem::path make_temp_dir(const std::string& tag);

}  // namespace ar::test

// Declares `var` = path of fixture `rel`, or skips the test with a clear message.
#define AR_REQUIRE_FIXTURE(var, rel)                                                       \
  const std::filesystem::path var = ::ar::test::find_fixture(rel);                         \
  if (var.empty())                                                                         \
    GTEST_SKIP() << "fixture not found: " << (::ar::test::fixtures_root() / (rel)).string() \
                 << " (set AR_FIXTURES to the shared fixtures folder)"
