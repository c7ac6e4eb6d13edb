#include "core/error.h"

namespace ar {

void fail_check(const char* file, int line, const char* cond, const std::string& msg) {
  throw InternalError(cat("internal check failed at ", file, ":", line, ": ", cond,
                          msg.empty() ? "" : " -- ", msg));
}

}  // namespace ar
