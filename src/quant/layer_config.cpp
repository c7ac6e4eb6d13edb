// LayerConfig: parsing and validating --layer_config JSON, and resolving a layer's scheme
// (rules and precedence documented in layer_config.h).
#include "quant/layer_config.h"

#include <algorithm>
#include <vector>
#include "core/error.h"
#include "io/file.h"

namespace ar {
namespace {

bool looks_like_regex(const std::string& key) {
  return key.find_first_of("*+?()[]{}|^$\\") != std::string::npos;
}

const char* json_type(const nlohmann::ordered_json& v) { return v.type_name(); }

// std::regex (libstdc++) compiles repetitions by copying the repeated automaton count times,
// recurses per nesting level, parses counts and back-references into an int without overflow
// checks, and matches by backtracking (nested or many unbounded quantifiers take exponential or
// high-polynomial time, even on a 40-character layer name). Layer-name patterns need none of that,
// so before compiling we refuse: numbers longer than 4 digits, more than 64 levels of parentheses,
// brace counts multiplying (as if nested) past 10000, a quantifier applied to a quantifier
// (a**; a lazy a*? is fine) or to a group holding a quantifier or an alternation ((a*)*, (a|b)+),
// and more than 3 unbounded quantifiers (*, +, {n,}). Throws naming `where`.
void check_regex_cost(const std::string& pattern, const std::string& where) {
  constexpr size_t kMaxPattern = 1024, kMaxDigits = 4;
  constexpr int kMaxDepth = 64, kMaxUnbounded = 3;
  constexpr double kMaxRepeat = 10000;
  if (pattern.size() > kMaxPattern)
    AR_THROW(where, ": regular expression of ", pattern.size(), " characters (at most ", kMaxPattern, ")");
  std::vector<bool> group_risky{false};  // per open group (and the top level): holds a quantifier or '|'
  bool prev_quantifier = false;          // the previous token was a quantifier
  bool prev_risky_group = false;         // the previous token closed a risky group
  int unbounded = 0;
  double repeat = 1;
  auto quantifier = [&](bool is_unbounded, size_t at) {
    if (prev_quantifier || prev_risky_group)
      AR_THROW(where, ": regular expression repeats a repetition at character ", at,
               " (like a** or (a*)* or (a|b)+), which can take exponential time to match");
    if (is_unbounded && ++unbounded > kMaxUnbounded)
      AR_THROW(where, ": regular expression has more than ", kMaxUnbounded, " unbounded repetitions (*, +, {n,})");
    group_risky.back() = true;
    prev_quantifier = true;
    prev_risky_group = false;
  };
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char ch = pattern[i];
    if (ch >= '0' && ch <= '9') {
      size_t j = i;
      while (j < pattern.size() && pattern[j] >= '0' && pattern[j] <= '9') ++j;
      if (j - i > kMaxDigits)
        AR_THROW(where, ": number ", pattern.substr(i, j - i), " in the regular expression is too long (at most ",
                 kMaxDigits, " digits)");
      i = j - 1;
      prev_quantifier = prev_risky_group = false;
    } else if (ch == '\\') {
      if (i + 1 < pattern.size() && !(pattern[i + 1] >= '0' && pattern[i + 1] <= '9')) ++i;  // escaped literal
      prev_quantifier = prev_risky_group = false;
    } else if (ch == '[') {  // a bracket expression is one atom: skip to its closing ']'
      size_t j = i + 1;
      if (j < pattern.size() && pattern[j] == '^') ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;
      while (j < pattern.size() && pattern[j] != ']') j += pattern[j] == '\\' ? 2 : 1;
      i = std::min(j, pattern.size() - 1);
      prev_quantifier = prev_risky_group = false;
    } else if (ch == '(') {
      if (int(group_risky.size()) > kMaxDepth)
        AR_THROW(where, ": regular expression nests parentheses more than ", kMaxDepth, " deep");
      group_risky.push_back(false);
      prev_quantifier = prev_risky_group = false;
    } else if (ch == ')') {
      const bool risky = group_risky.size() > 1 && group_risky.back();
      if (group_risky.size() > 1) group_risky.pop_back();
      if (risky) group_risky.back() = true;
      prev_quantifier = false;
      prev_risky_group = risky;
    } else if (ch == '|') {
      group_risky.back() = true;
      prev_quantifier = prev_risky_group = false;
    } else if (ch == '*' || ch == '+') {
      quantifier(true, i);
    } else if (ch == '?') {
      if (prev_quantifier && i > 0 && pattern[i - 1] != '?') continue;  // lazy suffix: a*? a{2}?
      quantifier(false, i);
    } else if (ch == '{') {
      size_t j = i + 1;
      int64_t lo = 0, hi = -1;
      bool comma = false, digits = false;
      for (; j < pattern.size() && ((pattern[j] >= '0' && pattern[j] <= '9') || pattern[j] == ','); ++j) {
        if (pattern[j] == ',') {
          comma = true;
          continue;
        }
        if (j - i > kMaxDigits * 2 + 1)
          AR_THROW(where, ": repetition count in the regular expression is too long");
        digits = true;
        int64_t& v = comma ? hi : lo;
        v = (v < 0 ? 0 : v) * 10 + (pattern[j] - '0');
      }
      if (!digits || j >= pattern.size() || pattern[j] != '}') {  // a literal '{'
        prev_quantifier = prev_risky_group = false;
        continue;
      }
      if (lo > 9999 || hi > 9999)
        AR_THROW(where, ": number in the regular expression is too long (at most ", kMaxDigits, " digits)");
      repeat *= double(std::max<int64_t>(1, std::max(lo, hi)));
      if (repeat > kMaxRepeat)
        AR_THROW(where, ": repetition counts in the regular expression multiply to more than ", kMaxRepeat);
      quantifier(comma && hi < 0, i);
      i = j;
    } else {
      prev_quantifier = prev_risky_group = false;
    }
  }
}

// One rule's value: an object of fields, or a --scheme preset name (all fields). Throws naming `where`.
SchemeFields parse_rule_fields(const nlohmann::ordered_json& val, const std::string& where) {
  if (val.is_string()) {
    const std::string name = val.get<std::string>();
    try {
      return preset_fields(resolve_scheme(name));
    } catch (const Error& e) {
      AR_THROW(where, ": ", e.what());
    }
  }
  SchemeFields f;
  std::optional<int> implied_bits;  // by a data_type naming its width ("mx_fp8", "float")
  for (const auto& [field, fv] : val.items()) {
    if (field == "bits") {
      if (!fv.is_number_integer()) AR_THROW(where, ": 'bits' must be an integer, got ", fv.dump());
      const int64_t b = fv.get<int64_t>();
      if (b != 2 && b != 3 && b != 4 && b != 8 && b != 16)
        AR_THROW(where, ": 'bits' must be 2, 3, 4, 8 or 16 (16 = keep unquantized), got ", b);
      f.bits = int(b);
    } else if (field == "group_size") {
      if (fv.is_array()) {
        // AutoRound's (128, 128): FP8 with one scale per 128 x 128 block.
        if (fv.size() != 2 || !fv[0].is_number_integer() || !fv[1].is_number_integer() ||
            fv[0].get<int64_t>() != kFp8BlockSize || fv[1].get<int64_t>() != kFp8BlockSize)
          AR_THROW(where, ": 'group_size' as a list must be [128, 128] (FP8 blocks), got ", fv.dump());
        f.group_size = kFp8BlockSize;
        f.block_2d = true;
        continue;
      }
      if (!fv.is_number_integer()) AR_THROW(where, ": 'group_size' must be an integer or [128, 128], got ", fv.dump());
      const int64_t g = fv.get<int64_t>();
      if (g != -1 && g <= 0) AR_THROW(where, ": 'group_size' must be -1 or > 0, got ", g);
      f.group_size = g;
      f.block_2d = false;
    } else if (field == "sym") {
      if (!fv.is_boolean()) AR_THROW(where, ": 'sym' must be true or false, got ", fv.dump());
      f.sym = fv.get<bool>();
    } else if (field == "data_type") {
      const std::optional<ParsedDataType> t =
          fv.is_string() ? parse_autoround_data_type(fv.get<std::string>()) : std::nullopt;
      if (!t)
        AR_THROW(where, ": 'data_type' ", fv.dump(), " is not supported (int, mx_fp, mx_fp4, mx_fp8, nv_fp, nv_fp4, "
                 "fp, fp8, fp8_e4m3, float)");
      f.family = t->family;
      implied_bits = t->bits;
    } else if (field == "act_bits") {
      if (!fv.is_number_integer() || fv.get<int64_t>() < 16)
        AR_THROW(where, ": 'act_bits' ", fv.dump(), " is not supported (activations stay 16-bit)");
    } else {
      AR_THROW(where, ": unknown key '", field, "' (expected bits, group_size, sym, data_type)");
    }
  }
  if (implied_bits) {
    if (f.bits && *f.bits != *implied_bits)
      AR_THROW(where, ": 'bits' ", *f.bits, " contradicts 'data_type' ", val.at("data_type").dump(), " (",
               *implied_bits, " bits)");
    f.bits = implied_bits;
  }
  check_scheme_fields(f, where);
  return f;
}

}  // namespace

LayerConfig::LayerConfig(QuantScheme defaults) : defaults_(defaults) {}

bool LayerConfig::Rule::matches(const std::string& name) const {
  if (is_regex) return std::regex_search(name, re);
  if (name.size() == key.size()) return name == key;
  return name.size() > key.size() && name.ends_with(key) && name[name.size() - key.size() - 1] == '.';
}

LayerConfig LayerConfig::parse(const std::string& json_text, QuantScheme defaults, const std::string& source) {
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    AR_THROW(source, ": not valid JSON: ", e.what());
  }
  if (!root.is_object())
    AR_THROW(source, ": expected a JSON object {\"layer name or regex\": {\"bits\": ...}}, got ", json_type(root));
  LayerConfig lc(defaults);
  std::vector<Rule> regexes, names;
  for (const auto& [key, val] : root.items()) {
    const std::string where = cat(source, ": rule '", key, "'");
    if (key.empty()) AR_THROW(where, ": empty layer name");
    if (!val.is_object() && !val.is_string())
      AR_THROW(where, ": expected an object like {\"bits\": 8} or a scheme name like \"MXFP8\", got ", json_type(val));
    Rule r;
    r.key = key;
    std::string pattern = key;
    if (key.rfind("re:", 0) == 0) {
      r.is_regex = true;
      pattern = key.substr(3);
    } else {
      r.is_regex = looks_like_regex(key);
    }
    if (r.is_regex) {
      check_regex_cost(pattern, where);
      try {
        r.re = std::regex(pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        AR_THROW(where, ": bad regular expression '", pattern, "': ", e.what());
      }
    }
    r.fields = parse_rule_fields(val, where);
    (r.is_regex ? regexes : names).push_back(std::move(r));
  }
  // Name rules: a longer key is a longer (more specific) suffix, so it applies later and wins.
  std::stable_sort(names.begin(), names.end(),
                   [](const Rule& a, const Rule& b) { return a.key.size() < b.key.size(); });
  lc.rules_ = std::move(regexes);
  for (auto& r : names) lc.rules_.push_back(std::move(r));
  return lc;
}

LayerConfig LayerConfig::load(const std::filesystem::path& file, QuantScheme defaults) {
  return parse(read_text_file(file), defaults, file.string());
}

LayerConfig::RuleFields LayerConfig::rule_fields(const std::string& layer_name) const {
  RuleFields f;
  for (const Rule& r : rules_) {
    if (!r.matches(layer_name)) continue;
    const SchemeFields& rf = r.fields;
    if (rf.bits) f.bits = rf.bits;
    if (rf.group_size) f.group_size = rf.group_size;
    if (rf.sym) f.sym = rf.sym;
    if (rf.family) f.family = rf.family;
    if (rf.block_2d) f.block_2d = rf.block_2d;
  }
  return f;
}

QuantScheme LayerConfig::scheme_for(const std::string& layer_name) const {
  const RuleFields f = rule_fields(layer_name);
  if (!f.bits && !f.group_size && !f.sym && !f.family && !f.block_2d) return defaults_;
  return resolve_scheme_fields(defaults_, f, cat("--layer_config: layer '", layer_name, "'"));
}

nlohmann::json LayerConfig::extra_config(const std::vector<std::string>& layer_names) const {
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& name : layer_names) {
    const QuantScheme s = scheme_for(name);
    if (s == defaults_) continue;
    out[name] = {{"bits", s.bits}, {"group_size", s.group_size}, {"sym", s.sym}};
    if (s.is_fp()) out[name]["data_type"] = autoround_data_type(s.data_type);
  }
  return out;
}

std::vector<std::string> LayerConfig::unmatched_rules(const std::vector<std::string>& layer_names) const {
  std::vector<std::string> keys;
  for (const Rule& r : rules_)
    if (std::none_of(layer_names.begin(), layer_names.end(), [&](const std::string& n) { return r.matches(n); }))
      keys.push_back(r.key);
  return keys;
}

}  // namespace ar
