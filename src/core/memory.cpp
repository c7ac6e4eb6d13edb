#include "core/memory.h"

#include <malloc.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace ar {

MemStats read_mem_stats() {
  MemStats s;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kb) == 1) s.rss_bytes = kb * 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) s.peak_bytes = kb * 1024;
  }
  return s;
}

void limit_heap_retention() {
  // By default glibc raises its mmap threshold to the size of each mapped block freed (up to 32
  // MiB). After the first MoE expert's tuning state is freed, the next ones (MBs each) come from
  // the heap, whose freed middle is never returned: RSS then stays far above what is live. Setting
  // the threshold turns that adjustment off.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

uint64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) return kb * 1024;
  }
  return 0;
}

bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  bool ok = std::fputs("5", f) >= 0;
  ok = (std::fclose(f) == 0) && ok;
  return ok;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)bytes);
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

uint64_t parse_bytes(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.')) ++i;
  if (i == 0) AR_THROW(what, ": '", text, "' is not a size (expected e.g. 2G, 512M, 5GB)");
  double num = std::atof(text.substr(0, i).c_str());
  std::string unit = text.substr(i);
  for (auto& c : unit) c = char(std::toupper((unsigned char)c));
  // "5GB" is decimal as in HF's max_shard_size; a bare letter ("2G", as docker -m and ulimit
  // read it) and "GiB" are binary.
  double mul;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "KB") mul = 1e3;
  else if (unit == "K" || unit == "KIB") mul = 1024.0;
  else if (unit == "MB") mul = 1e6;
  else if (unit == "M" || unit == "MIB") mul = 1024.0 * 1024;
  else if (unit == "GB") mul = 1e9;
  else if (unit == "G" || unit == "GIB") mul = 1024.0 * 1024 * 1024;
  else if (unit == "TB") mul = 1e12;
  else if (unit == "T" || unit == "TIB") mul = 1024.0 * 1024 * 1024 * 1024;
  else AR_THROW(what, ": unknown size unit '", text.substr(i), "' in '", text, "'");
  double v = num * mul;
  if (!std::isfinite(v) || v < 0 || v > 1.8e19) AR_THROW(what, ": size '", text, "' out of range");
  return uint64_t(v);
}

}  // namespace ar
