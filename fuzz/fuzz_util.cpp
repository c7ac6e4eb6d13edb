#include "fuzz_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace ar::fuzz {

namespace fs = std::filesystem;

std::vector<std::string_view> split_parts(std::string_view data) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t at = data.find(kSplit);
    if (at == std::string_view::npos) break;
    parts.push_back(data.substr(0, at));
    data.remove_prefix(at + kSplit.size());
  }
  parts.push_back(data);
  return parts;
}

namespace {

struct Scratch {
  fs::path dir;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/ar_fuzz_XXXXXX";
    if (!mkdtemp(templ.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    dir = templ;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

}  // namespace

const fs::path& scratch_dir() {
  static Scratch s;
  return s.dir;
}

void clear_scratch() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(scratch_dir(), ec)) fs::remove_all(e.path(), ec);
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) {
    std::perror(path.c_str());
    std::abort();
  }
}

}  // namespace ar::fuzz
