// SAX handler for tokenizer.json: builds the DOM itself (a stack of open containers, as
// nlohmann's own DOM parser does) except for model.vocab and model.merges, which are captured.
#include "calib/tok_json.h"

#include "core/error.h"

namespace ar::tok {
namespace {

using nlohmann::json;

class Handler final : public nlohmann::json_sax<json> {
 public:
  Handler(TokenizerJson& out, const std::string& file) : out_(out), file_(file) {}

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (cap_ == Cap::Vocab) return vocab_id(v);
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (cap_ == Cap::Vocab) return vocab_id(v > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v));
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool string(string_t& v) override {
    if (cap_ == Cap::Merges) {
      if (pair_depth_) {
        pair_.push_back(std::move(v));
        return true;
      }
      size_t sp = v.find(' ');
      if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos)
        AR_THROW(file_, ": model.merges[", out_.merges.size(), "] = '", v,
                 "' is not two tokens separated by one space");
      out_.merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
      return true;
    }
    return value(json(std::move(v)));
  }
  bool binary(binary_t&) override { AR_THROW(file_, ": unexpected binary value"); }

  bool start_object(std::size_t) override {
    if (cap_ == Cap::None && at_model() && key_ == "vocab") {
      cap_ = Cap::Vocab;
      out_.has_vocab = true;
      return true;
    }
    if (cap_ != Cap::None) bad_capture();
    return open(json::object());
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (cap_ == Cap::Vocab) {
      cap_ = Cap::None;
      return true;
    }
    return close();
  }
  bool start_array(std::size_t) override {
    if (cap_ == Cap::None && at_model() && key_ == "merges") {
      cap_ = Cap::Merges;
      out_.has_merges = true;
      return true;
    }
    if (cap_ == Cap::Merges && !pair_depth_) {
      pair_depth_ = true;
      pair_.clear();
      return true;
    }
    if (cap_ != Cap::None) bad_capture();
    return open(json::array());
  }
  bool end_array() override {
    if (cap_ == Cap::Merges) {
      if (pair_depth_) {
        if (pair_.size() != 2) bad_capture();
        out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        pair_depth_ = false;
      } else {
        cap_ = Cap::None;
      }
      return true;
    }
    return close();
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) override {
    AR_THROW(file_, ": invalid JSON near byte ", pos, ": ", e.what());
  }

 private:
  enum class Cap { None, Vocab, Merges };

  // The open container is the top-level "model" object.
  bool at_model() const { return stack_.size() == 2 && keys_.size() == 2 && keys_[1] == "model"; }

  [[noreturn]] void bad_capture() {
    if (cap_ == Cap::Vocab) AR_THROW(file_, ": model.vocab['", key_, "'] is not a valid id");
    AR_THROW(file_, ": model.merges[", out_.merges.size(), "] is neither \"a b\" nor [\"a\", \"b\"]");
  }

  bool vocab_id(int64_t v) {
    if (v < 0 || v > INT32_MAX) AR_THROW(file_, ": model.vocab['", key_, "'] is not a valid id");
    out_.vocab.emplace_back(std::move(key_), v);
    return true;
  }

  // Stores `v` in the open container (or as the root); returns where it went.
  json* put(json&& v) {
    if (stack_.empty()) {
      out_.doc = std::move(v);
      return &out_.doc;
    }
    json& c = *stack_.back();
    if (c.is_object()) {
      json& slot = c[key_];
      slot = std::move(v);
      return &slot;
    }
    c.push_back(std::move(v));
    return &c.back();  // stays valid: nothing is appended to `c` while this child is open
  }
  bool value(json&& v) {
    if (cap_ != Cap::None) bad_capture();
    put(std::move(v));
    return true;
  }
  bool open(json&& container) {
    bool parent_is_object = !stack_.empty() && stack_.back()->is_object();
    json* p = put(std::move(container));
    keys_.push_back(parent_is_object ? key_ : std::string());
    stack_.push_back(p);
    return true;
  }
  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  TokenizerJson& out_;
  const std::string& file_;
  std::vector<json*> stack_;
  std::vector<std::string> keys_;  // key each open container is stored under ("" in arrays)
  std::string key_;
  Cap cap_ = Cap::None;
  bool pair_depth_ = false;
  std::vector<std::string> pair_;
};

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& file) {
  TokenizerJson out;
  Handler h(out, file);
  json::sax_parse(text.begin(), text.end(), &h);
  return out;
}

}  // namespace ar::tok
