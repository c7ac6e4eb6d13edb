// Error handling: ar::Error for bad input (files, configs, CLI values), AR_CHECK for our own bugs.
// Messages are built with ar::cat(...) so every error can carry the file, key and values involved.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ar {

// Concatenate anything streamable into one string: cat("tensor '", name, "': ", n, " bytes").
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// Bad input from the outside world. Only cli/main.cpp (and tests) catch it.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An internal invariant failed: a bug in this program, not in the user's input.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

[[noreturn]] void fail_check(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace ar

// Throws ar::Error with the concatenated message.
#define AR_THROW(...) throw ::ar::Error(::ar::cat(__VA_ARGS__))

// Stays on in release builds; reports file:line, the condition and the values given.
#define AR_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) ::ar::fail_check(__FILE__, __LINE__, #cond, ::ar::cat(__VA_ARGS__)); \
  } while (0)

#ifdef AR_DEBUG_CHECKS
#define AR_DCHECK(cond, ...) AR_CHECK(cond, __VA_ARGS__)
#else
#define AR_DCHECK(cond, ...) \
  do {                       \
  } while (0)
#endif
