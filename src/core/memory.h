// Process memory as the kernel reports it (/proc/self/status). Peak memory is part of
// correctness in this project: every command prints VmHWM at the end.
#pragma once
#include <cstdint>
#include <string>

namespace ar {

struct MemStats {
  uint64_t rss_bytes = 0;   // VmRSS: resident now
  uint64_t peak_bytes = 0;  // VmHWM: peak resident since start (or since reset_peak_rss)
};

MemStats read_mem_stats();
// MemAvailable from /proc/meminfo: what can be allocated without swapping (0 if unknown).
uint64_t available_memory_bytes();
// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs); false if not permitted.
bool reset_peak_rss();
// Makes glibc hand every allocation of 1 MiB or more back to the kernel when it is freed (a fixed
// mmap threshold), so resident memory follows what is live; process-wide, called by run_quantize.
void limit_heap_retention();
// "1.23 GiB", "512.0 MiB", "17 B"
std::string format_bytes(uint64_t bytes);
// Parses "2G", "512M", "1.5GiB", "1000000" (bytes); throws ar::Error naming `what` on bad text.
uint64_t parse_bytes(const std::string& text, const std::string& what);

}  // namespace ar
