// Minimal logging to stderr; stdout is kept for results (ids, perplexity) that scripts parse.
#pragma once
#include <string>

#include "core/error.h"

namespace ar {

enum class LogLevel { Debug, Info, Warn, Error };
void set_log_level(LogLevel l);
LogLevel log_level();
void log_line(LogLevel l, const std::string& msg);

template <typename... A>
void log_info(A&&... a) { if (log_level() <= LogLevel::Info) log_line(LogLevel::Info, cat(std::forward<A>(a)...)); }
template <typename... A>
void log_warn(A&&... a) { log_line(LogLevel::Warn, cat(std::forward<A>(a)...)); }
template <typename... A>
void log_debug(A&&... a) { if (log_level() <= LogLevel::Debug) log_line(LogLevel::Debug, cat(std::forward<A>(a)...)); }

}  // namespace ar
