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

// Cuts `p` at the match spans according to `behavior`; appends non-empty pieces to `out`.
void split_piece(std::string_view p, const std::vector<std::pair<size_t, size_t>>& matches,
                 SplitBehavior behavior, bool invert, std::vector<std::string>& out) {
  struct Part { size_t b, e; bool match; };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t last = 0;
  for (auto [b, e] : matches) {
    if (b > last) parts.push_back({last, b, invert});
    parts.push_back({b, e, !invert});
    last = e;
  }
  if (last < p.size()) parts.push_back({last, p.size(), invert});
  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.emplace_back(p.substr(b, e - b));
  };
  size_t cur = 0;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& q : parts) if (!q.match) emit(q.b, q.e);
      break;
    case SplitBehavior::Isolated:
      for (const auto& q : parts) emit(q.b, q.e);
      break;
    case SplitBehavior::MergedWithPrevious:  // a delimiter closes the piece before it
      for (const auto& q : parts) if (q.match) { emit(cur, q.e); cur = q.e; }
      emit(cur, p.size());
      break;
    case SplitBehavior::MergedWithNext:  // a delimiter opens the piece after it
      for (const auto& q : parts) if (q.match) { emit(cur, q.b); cur = q.b; }
      emit(cur, p.size());
      break;
    case SplitBehavior::Contiguous:  // runs of adjacent delimiters form one piece
      for (size_t k = 0; k < parts.size();) {
        size_t e = parts[k].e;
        size_t k2 = k + 1;
        if (parts[k].match)
          while (k2 < parts.size() && parts[k2].match) e = parts[k2++].e;
        emit(parts[k].b, e);
        k = k2;
      }
      break;
  }
}

void find_literal(std::string_view p, const std::string& lit, std::vector<std::pair<size_t, size_t>>& spans) {
  for (size_t pos = p.find(lit); pos != std::string_view::npos; pos = p.find(lit, pos + lit.size()))
    spans.emplace_back(pos, pos + lit.size());
}

}  // namespace

PreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& file) {
  PreTokenizer p;
  parse_into(j, file, p.steps);
  p.defer_byte_map = !p.steps.empty() && p.steps.back().kind == PreTokStep::Kind::ByteLevel;
  return p;
}

void PreTokenizer::run(std::string_view span, bool first_span, std::vector<std::string>& pieces) const {
  pieces.clear();
  pieces.emplace_back(span);
  std::vector<std::string> next;
  std::vector<std::pair<size_t, size_t>> spans;
  using K = PreTokStep::Kind;
  for (size_t si = 0; si < steps.size(); ++si) {
    const PreTokStep& st = steps[si];
    next.clear();
    next.reserve(pieces.size());
    for (size_t pi = 0; pi < pieces.size(); ++pi) {
      std::string& piece = pieces[pi];
      spans.clear();
      switch (st.kind) {
        case K::Split:
          if (st.has_regex) st.regex.find_all(piece, spans);
          else find_literal(piece, st.literal, spans);
          split_piece(piece, spans, st.behavior, st.invert, next);
          break;
        case K::ByteLevel: {
          if (st.add_prefix_space && !piece.starts_with(' ')) piece.insert(0, 1, ' ');
          size_t from = next.size();
          if (st.has_regex) {
            st.regex.find_all(piece, spans);
            split_piece(piece, spans, SplitBehavior::Isolated, false, next);
          } else {
            next.push_back(std::move(piece));
          }
          if (si + 1 < steps.size() || !defer_byte_map) {
            std::string mapped;
            for (size_t k = from; k < next.size(); ++k) {
              mapped.clear();
              byte_level_encode(next[k], mapped);
              next[k].swap(mapped);
            }
          }
          break;
        }
        case K::Metaspace: {
          std::string s;
          s.reserve(piece.size() + st.replacement.size());
          bool prepend = st.prepend == PreTokStep::Prepend::Always ||
                         (st.prepend == PreTokStep::Prepend::First && first_span && pi == 0);
          if (prepend && !piece.starts_with(' ') && !piece.starts_with(st.replacement)) s += st.replacement;
          for (char c : piece) {
            if (c == ' ') s += st.replacement;
            else s.push_back(c);
          }
          if (st.split) {
            find_literal(s, st.replacement, spans);
            split_piece(s, spans, SplitBehavior::MergedWithNext, false, next);
          } else {
            next.push_back(std::move(s));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
}

}  // namespace ar::tok
