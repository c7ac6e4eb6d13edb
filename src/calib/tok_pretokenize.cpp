// Pre-tokenizer steps, following the Rust `tokenizers` pre_tokenizers (split.rs, byte_level.rs,
// metaspace.rs) and its SplitDelimiterBehavior rules; our own implementation.
#include "calib/tok_pretokenize.h"

#include <nlohmann/json.hpp>

#include <utility>

#include "calib/tok_unicode.h"
#include "core/error.h"

namespace ar::tok {
namespace {

// The regex GPT-2 (and HF ByteLevel with use_regex) splits words with.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const std::string& s, const std::string& file) {
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  AR_THROW(file, ": unsupported Split behavior '", s, "'");
}

void parse_into(const nlohmann::json& j, const std::string& file, std::vector<PreTokStep>& out) {
  if (j.is_null()) return;
  if (!j.is_object() || !j.contains("type")) AR_THROW(file, ": pre_tokenizer without a \"type\"");
  const std::string type = j["type"].get<std::string>();
  using K = PreTokStep::Kind;
  if (type == "Sequence") {
    for (const auto& p : j.at("pretokenizers")) parse_into(p, file, out);
  } else if (type == "Split") {
    PreTokStep s;
    s.kind = K::Split;
    const auto& pat = j.at("pattern");
    if (pat.contains("Regex")) {
      s.regex = Regex::compile(pat["Regex"].get<std::string>(), file + ": pre_tokenizer Split");
      s.has_regex = true;
    } else if (pat.contains("String")) {
      s.literal = pat["String"].get<std::string>();
      if (s.literal.empty()) AR_THROW(file, ": Split pre_tokenizer with an empty pattern");
    } else {
      AR_THROW(file, ": Split pre_tokenizer pattern ", pat.dump(), " is neither Regex nor String");
    }
    s.behavior = parse_behavior(j.at("behavior").get<std::string>(), file);
    s.invert = j.value("invert", false);
    out.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    PreTokStep s;
    s.kind = K::ByteLevel;
    s.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) {
      static const Regex gpt2 = Regex::compile(kGpt2Pattern, "GPT-2 pre-tokenizer");
      s.regex = gpt2;
      s.has_regex = true;
    }
    out.push_back(std::move(s));
  } else if (type == "Metaspace") {
    PreTokStep s;
    s.kind = K::Metaspace;
    s.replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    if (auto it = j.find("prepend_scheme"); it != j.end() && !it->is_null()) {
      std::string ps = it->get<std::string>();
      if (ps == "always") s.prepend = PreTokStep::Prepend::Always;
      else if (ps == "never") s.prepend = PreTokStep::Prepend::Never;
      else if (ps == "first") s.prepend = PreTokStep::Prepend::First;
      else AR_THROW(file, ": Metaspace prepend_scheme '", ps, "' is not always/never/first");
    } else {
      // Older files: add_prefix_space (default true) instead of prepend_scheme.
      s.prepend = j.value("add_prefix_space", true) ? PreTokStep::Prepend::Always : PreTokStep::Prepend::Never;
    }
    s.split = j.value("split", true);
    out.push_back(std::move(s));
  } else if (type == "Digits") {
    // Rust: split around numeric characters, each alone or as runs.
    PreTokStep s;
    s.kind = K::Split;
    s.regex = Regex::compile("\\p{N}", file + ": pre_tokenizer Digits");
    s.has_regex = true;
    s.behavior = j.value("individual_digits", false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
    out.push_back(std::move(s));
  } else if (type == "WhitespaceSplit") {
    PreTokStep s;
    s.kind = K::Split;
    s.regex = Regex::compile("\\s+", file + ": pre_tokenizer WhitespaceSplit");
    s.has_regex = true;
    s.behavior = SplitBehavior::Removed;
    out.push_back(std::move(s));
  } else if (type == "Whitespace") {
    // Rust: keep the matches of \w+|[^\w\s]+, i.e. Removed with invert.
    PreTokStep s;
    s.kind = K::Split;
    s.regex = Regex::compile("\\w+|[^\\w\\s]+", file + ": pre_tokenizer Whitespace");
    s.has_regex = true;
    s.behavior = SplitBehavior::Removed;
    s.invert = true;
    out.push_back(std::move(s));
  } else {
    AR_THROW(file, ": unsupported pre_tokenizer type '", type, "'");
  }
}

// Cuts a piece of `n` bytes at the matches that `for_each_match` streams, according to
// `behavior`, and hands each non-empty piece [b, e) to `emit` as soon as it is complete.
template <typename ForEachMatch, typename Emit>
void split_stream(size_t n, ForEachMatch&& for_each_match, SplitBehavior behavior, bool invert, Emit&& emit) {
  auto out = [&](size_t b, size_t e) {
    if (e > b) emit(b, e);
  };
  size_t cur = 0;                 // start of the piece being built (MergedWith*)
  bool pending = false;           // Contiguous: a run of delimiters not yet emitted
  size_t pend_b = 0, pend_e = 0;
  auto part = [&](size_t b, size_t e, bool match) {
    switch (behavior) {
      case SplitBehavior::Removed:
        if (!match) out(b, e);
        break;
      case SplitBehavior::Isolated:
        out(b, e);
        break;
      case SplitBehavior::MergedWithPrevious:  // a delimiter closes the piece before it
        if (match) { out(cur, e); cur = e; }
        break;
      case SplitBehavior::MergedWithNext:  // a delimiter opens the piece after it
        if (match) { out(cur, b); cur = b; }
        break;
      case SplitBehavior::Contiguous:  // runs of adjacent delimiters form one piece
        if (match && pending && pend_e == b) {
          pend_e = e;
        } else {
          if (pending) out(pend_b, pend_e);
          pending = match;
          if (match) { pend_b = b; pend_e = e; }
          else out(b, e);
        }
        break;
    }
  };
  size_t last = 0;
  for_each_match([&](size_t b, size_t e) {
    if (b > last) part(last, b, invert);
    part(b, e, !invert);
    last = e;
  });
  if (last < n) part(last, n, invert);
  if (behavior == SplitBehavior::MergedWithPrevious || behavior == SplitBehavior::MergedWithNext) out(cur, n);
  if (pending) out(pend_b, pend_e);
}

// Streams the non-overlapping occurrences of `lit` in `p`.
auto literal_matches(std::string_view p, const std::string& lit) {
  return [p, &lit](auto&& on_match) {
    for (size_t pos = p.find(lit); pos != std::string_view::npos; pos = p.find(lit, pos + lit.size()))
      on_match(pos, pos + lit.size());
  };
}

auto regex_matches(std::string_view p, const Regex& re) {
  return [p, &re](auto&& on_match) { re.for_each_match(p, on_match); };
}

}  // namespace

PreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& file) {
  PreTokenizer p;
  parse_into(j, file, p.steps);
  p.defer_byte_map = !p.steps.empty() && p.steps.back().kind == PreTokStep::Kind::ByteLevel;
  return p;
}

void PreTokenizer::run(std::string_view span, bool first_span, const PieceFn& emit) const {
  run_step(0, span, first_span, emit);
}

void PreTokenizer::run_step(size_t k, std::string_view piece, bool at_start, const PieceFn& emit) const {
  if (k == steps.size()) {
    emit(piece);
    return;
  }
  const PreTokStep& st = steps[k];
  auto next = [&](size_t b, size_t e) { run_step(k + 1, piece.substr(b, e - b), at_start && b == 0, emit); };
  using K = PreTokStep::Kind;
  switch (st.kind) {
    case K::Split:
      if (st.has_regex) split_stream(piece.size(), regex_matches(piece, st.regex), st.behavior, st.invert, next);
      else split_stream(piece.size(), literal_matches(piece, st.literal), st.behavior, st.invert, next);
      break;
    case K::ByteLevel: {
      std::string prefixed;
      std::string_view p = piece;
      if (st.add_prefix_space && !piece.starts_with(' ')) {
        prefixed = " ";
        prefixed += piece;
        p = prefixed;
      }
      const bool map_now = k + 1 < steps.size() || !defer_byte_map;
      std::string mapped;
      auto sub = [&](size_t b, size_t e) {
        std::string_view s = p.substr(b, e - b);
        if (!map_now) {
          run_step(k + 1, s, at_start && b == 0, emit);
          return;
        }
        mapped.clear();
        byte_level_encode(s, mapped);
        run_step(k + 1, mapped, at_start && b == 0, emit);
      };
      if (st.has_regex) split_stream(p.size(), regex_matches(p, st.regex), SplitBehavior::Isolated, false, sub);
      else sub(0, p.size());
      break;
    }
    case K::Metaspace: {
      std::string s;
      s.reserve(piece.size() + st.replacement.size());
      bool prepend = st.prepend == PreTokStep::Prepend::Always ||
                     (st.prepend == PreTokStep::Prepend::First && at_start);
      if (prepend && !piece.starts_with(' ') && !piece.starts_with(st.replacement)) s += st.replacement;
      for (char c : piece) {
        if (c == ' ') s += st.replacement;
        else s.push_back(c);
      }
      auto sub = [&](size_t b, size_t e) { run_step(k + 1, std::string_view(s).substr(b, e - b), at_start && b == 0, emit); };
      if (st.split) split_stream(s.size(), literal_matches(s, st.replacement), SplitBehavior::MergedWithNext, false, sub);
      else sub(0, s.size());
      break;
    }
  }
}

}  // namespace ar::tok
