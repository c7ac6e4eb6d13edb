#include "support/files.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

namespace ar::test {

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string tree_bytes(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) all += std::filesystem::relative(f, dir).string() + "\n" + read_bytes(f);
  return all;
}

}  // namespace ar::test
