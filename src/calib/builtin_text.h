// A few KB of plain English prose written for this project, compiled into the binary: the text the
// synthetic tokenizer learns its merges from, and demo calibration / evaluation text when the user
// has none at hand (no downloads are possible).
#pragma once
#include <string_view>

namespace ar {

std::string_view builtin_calibration_text();

}  // namespace ar
