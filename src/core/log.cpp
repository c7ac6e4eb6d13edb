#include "core/log.h"

#include <cstdio>

namespace ar {

namespace {
LogLevel g_level = LogLevel::Info;
}

void set_log_level(LogLevel l) { g_level = l; }
LogLevel log_level() { return g_level; }

void log_line(LogLevel l, const std::string& msg) {
  const char* prefix = l == LogLevel::Warn ? "warning: " : l == LogLevel::Error ? "error: " : "";
  std::fprintf(stderr, "%s%s\n", prefix, msg.c_str());
}

}  // namespace ar
