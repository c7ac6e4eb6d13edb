#include "support/fixtures.h"

#include <atomic>
#include <cstdlib>
#include <unistd.h>

namespace ar::test {

std::filesystem::path fixtures_root() {
  if (const char* env = std::getenv("AR_FIXTURES"); env && *env) return env;
  return std::filesystem::path(AR_SOURCE_DIR).parent_path() / "shared" / "fixtures";
}

std::filesystem::path find_fixture(const std::string& rel) {
  auto p = fixtures_root() / rel;
  std::error_code ec;
  return std::filesystem::exists(p, ec) ? p : std::filesystem::path();
}

std::filesystem::path make_temp_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  auto base = std::filesystem::path(AR_BINARY_DIR) / "test-tmp";
  auto dir = base / (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace ar::test
