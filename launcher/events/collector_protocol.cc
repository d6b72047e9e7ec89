#include "launcher/events/collector_protocol.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

namespace launcher {
namespace {

nlohmann::json parse_object(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  return j.is_object() ? j : nlohmann::json();
}

// SAX reader of the top-level members an event line must or may have.
class EventLineReader {
 public:
  using json = nlohmann::json;
  explicit EventLineReader(EventLineFields& out) : out_(out) {}

  bool null() { return scalar(); }
  bool boolean(bool) { return scalar(); }
  bool number_integer(json::number_integer_t v) {
    if (depth_ == 1 && wanted_number() && v < 0) return fail("\"" + key_ + "\" is negative");
    if (depth_ == 1 && v >= 0) set_number(static_cast<uint64_t>(v));
    return scalar();
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (depth_ == 1) set_number(v);
    return scalar();
  }
  bool number_float(json::number_float_t, const json::string_t&) {
    if (depth_ == 1 && wanted_number()) return fail("\"" + key_ + "\" is not an unsigned integer");
    return scalar();
  }
  bool string(json::string_t& v) {
    if (depth_ == 1) {
      if (key_ == "run") {
        out_.run = v;
        has_run_ = true;
      }
      if (key_ == "type") {
        out_.type = v;
        has_type_ = true;
      }
      if (key_ == "section") out_.section = v;
      if (key_ == "name") out_.name = v;
      if (key_ == "action") out_.action = v;
      if (wanted_number()) return fail("\"" + key_ + "\" is not an unsigned integer");
    }
    return scalar();
  }
  bool binary(json::binary_t&) { return fail("binary value"); }
  bool start_object(std::size_t) {
    if (depth_ == 0) seen_object_ = true;
    ++depth_;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ == 0) return fail("not a JSON object");
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool key(json::string_t& k) {
    if (depth_ != 1) return true;
    if (k == "prev" || k == "received")
      return fail("\"" + k + "\" is written by the collector alone");
    if (std::find(keys_.begin(), keys_.end(), k) != keys_.end())
      return fail("duplicate key \"" + k + "\"");
    keys_.push_back(k);
    key_ = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    if (error_.empty()) error_ = "not JSON";
    return false;
  }

  bool complete(std::string& error) {
    if (!error_.empty()) {
      error = error_;
      return false;
    }
    if (!seen_object_)
      error = "not a JSON object";
    else if (!has_run_)
      error = "no \"run\"";
    else if (!has_seq_)
      error = "no \"seq\"";
    else if (!has_type_)
      error = "no \"type\"";
    else
      return true;
    return false;
  }

 private:
  bool scalar() {
    if (depth_ == 0) return fail("not a JSON object");
    return true;
  }
  bool wanted_number() const {
    return key_ == "seq" || key_ == "first_seq" || key_ == "last_seq" || key_ == "count";
  }
  void set_number(uint64_t v) {
    if (key_ == "seq") {
      out_.seq = v;
      has_seq_ = true;
    }
    if (key_ == "first_seq") out_.first_seq = v;
    if (key_ == "last_seq") out_.last_seq = v;
    if (key_ == "count") out_.count = v;
    if (key_ == "duration_ns") out_.duration_ns = v;
  }
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }

  EventLineFields& out_;
  int depth_ = 0;
  std::string key_;
  std::vector<std::string> keys_;
  bool seen_object_ = false;
  bool has_run_ = false;
  bool has_seq_ = false;
  bool has_type_ = false;
  std::string error_;
};

// A validating scanner for the event lines launchers write: JSON of plain form (every key and
// every member the collector reads free of escapes, numbers the collector reads plain unsigned
// decimals, strings valid UTF-8 without escaped surrogates). It accepts only lines the SAX reader
// above accepts, with the same fields; on anything else it gives up and the SAX reader decides
// (and words the error).
class PlainEventLineScanner {
  // Bytes a string holds as they are: printable ASCII but the quote and the backslash.
  static constexpr std::array<bool, 256> kPlainStringByte = [] {
    std::array<bool, 256> plain{};
    for (int c = 0x20; c < 0x80; ++c)
      plain[c] = c != '"' && c != '\\';
    return plain;
  }();

 public:
  PlainEventLineScanner(std::string_view line, EventLineFields& out) : s_(line), out_(out) {}

  // True when the line is a valid JSON object with run, seq and type as the collector reads
  // them; false when the SAX reader must decide.
  bool scan() {
    if (!object(0)) return false;
    skip_space();
    return i_ == s_.size() && has_run_ && has_seq_ && has_type_;
  }

 private:
  static constexpr int kMaxDepth = 64;

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n'))
      ++i_;
  }
  bool take(char c) {
    skip_space();
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool peek(char c) {
    skip_space();
    return i_ < s_.size() && s_[i_] == c;
  }

  bool object(int depth) {
    if (depth >= kMaxDepth || !take('{')) return false;
    if (take('}')) return true;
    do {
      std::string_view key;
      bool escaped = false;
      skip_space();
      if (!string(key, escaped) || !take(':')) return false;
      if (depth == 0) {
        if (escaped || !top_level_member(key)) return false;
      } else if (!value(depth + 1)) {
        return false;
      }
    } while (take(','));
    return take('}');
  }

  bool array(int depth) {
    if (depth >= kMaxDepth || !take('[')) return false;
    if (take(']')) return true;
    do {
      if (!value(depth + 1)) return false;
    } while (take(','));
    return take(']');
  }

  bool value(int depth) {
    skip_space();
    if (i_ >= s_.size()) return false;
    std::string_view text;
    bool escaped = false;
    switch (s_[i_]) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return string(text, escaped);
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number(text);
    }
  }

  // One member of the top-level object: the ones the collector reads, in their plain form.
  bool top_level_member(std::string_view key) {
    for (size_t k = 0; k < key_count_; ++k) {
      if (keys_[k] == key) return false;
    }
    if (key_count_ == keys_.size()) return false;
    keys_[key_count_++] = key;
    if (key == "prev" || key == "received") return false;
    skip_space();
    std::string* text_field = key == "run"       ? &out_.run
                              : key == "type"    ? &out_.type
                              : key == "section" ? &out_.section
                              : key == "name"    ? &out_.name
                              : key == "action"  ? &out_.action
                                                 : nullptr;
    if (text_field) {
      std::string_view text;
      bool escaped = false;
      if (!peek('"') || !string(text, escaped) || escaped) return false;
      text_field->assign(text);
      has_run_ = has_run_ || key == "run";
      has_type_ = has_type_ || key == "type";
      return true;
    }
    std::optional<uint64_t>* number_field = key == "first_seq"     ? &out_.first_seq
                                            : key == "last_seq"    ? &out_.last_seq
                                            : key == "count"       ? &out_.count
                                            : key == "duration_ns" ? &out_.duration_ns
                                                                   : nullptr;
    if (!number_field && key != "seq") return value(1);
    std::string_view digits;
    if (!number(digits) || digits.size() > 19 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    uint64_t v = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (number_field) {
      *number_field = v;
    } else {
      out_.seq = v;
      has_seq_ = true;
    }
    return true;
  }

  // A string at s_[i_] (its opening quote); `text` its raw bytes between the quotes.
  bool string(std::string_view& text, bool& escaped) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    size_t start = ++i_;
    while (i_ < s_.size()) {
      while (i_ < s_.size() && kPlainStringByte[static_cast<unsigned char>(s_[i_])])
        ++i_;
      if (i_ >= s_.size()) break;
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        text = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        escaped = true;
        if (!escape()) return false;
      } else if (c >= 0x80) {
        if (!utf8_sequence()) return false;
      } else {
        ++i_;
      }
    }
    return false;
  }

  bool escape() {
    if (i_ + 1 >= s_.size()) return false;
    char e = s_[i_ + 1];
    if (std::strchr("\"\\/bfnrt", e) && e != '\0') {
      i_ += 2;
      return true;
    }
    if (e != 'u' || i_ + 6 > s_.size()) return false;
    uint32_t unit = 0;
    for (size_t k = i_ + 2; k < i_ + 6; ++k) {
      char h = s_[k];
      int d = h >= '0' && h <= '9'   ? h - '0'
              : h >= 'a' && h <= 'f' ? h - 'a' + 10
              : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                     : -1;
      if (d < 0) return false;
      unit = unit << 4 | static_cast<uint32_t>(d);
    }
    if (unit >= 0xd800 && unit <= 0xdfff) return false;  // surrogates: the SAX reader decides
    i_ += 6;
    return true;
  }

  // One multi-byte UTF-8 sequence at s_[i_], strictly valid (no overlong form, no surrogate).
  bool utf8_sequence() {
    unsigned char c = static_cast<unsigned char>(s_[i_]);
    size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i_ + len > s_.size()) return false;
    uint32_t cp = len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s_[i_ + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i_ += len;
    return true;
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  // A JSON number at s_[i_]; `text` its characters.
  bool number(std::string_view& text) {
    size_t start = i_;
    auto digits = [this] {
      size_t from = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')
        ++i_;
      return i_ - from;
    };
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits() == 0) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (digits() == 0) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0) return false;
    }
    text = s_.substr(start, i_ - start);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  EventLineFields& out_;
  std::array<std::string_view, 64> keys_;  // the top-level keys so far
  size_t key_count_ = 0;
  bool has_run_ = false;
  bool has_seq_ = false;
  bool has_type_ = false;
};

}  // namespace

bool is_lower_hex(std::string_view s, size_t length) {
  return s.size() == length && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string encode_hello(const CollectorHello& hello) {
  nlohmann::ordered_json j;
  j["hello"] = kAuditProtocol;
  j["run"] = hello.run;
  j["token"] = hello.token;
  return j.dump() + "\n";
}

std::optional<CollectorHello> parse_hello(std::string_view line, std::string& error) {
  nlohmann::json j = parse_object(line);
  if (j.is_null() || !j.contains("hello")) {
    error = "the first line must be a hello ({\"hello\":\"" + std::string(kAuditProtocol) +
            "\",\"run\":...,\"token\":...})";
    return std::nullopt;
  }
  if (j["hello"] != kAuditProtocol) {
    error = "unsupported protocol " + j["hello"].dump() + " (this collector speaks " +
            std::string(kAuditProtocol) + ")";
    return std::nullopt;
  }
  CollectorHello h;
  if (j.contains("run") && j["run"].is_string()) h.run = j["run"].get<std::string>();
  if (j.contains("token") && j["token"].is_string()) h.token = j["token"].get<std::string>();
  if (!is_lower_hex(h.run, 32)) {
    error = "hello: \"run\" must be 32 lower-case hex digits";
    return std::nullopt;
  }
  if (!is_lower_hex(h.token, 64)) {
    error = "hello: \"token\" must be 64 lower-case hex digits";
    return std::nullopt;
  }
  return h;
}

std::string encode_welcome(const std::string& run, uint64_t next_seq) {
  nlohmann::ordered_json j;
  j["welcome"] = kAuditProtocol;
  j["run"] = run;
  j["next_seq"] = next_seq;
  return j.dump() + "\n";
}

std::string encode_ack(uint64_t seq) {
  return "{\"ack\":" + std::to_string(seq) + "}\n";
}

std::string encode_error(const std::string& message) {
  return nlohmann::json({{"error", message}})
             .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) +
         "\n";
}

std::optional<CollectorReply> parse_reply(std::string_view line) {
  nlohmann::json j = parse_object(line);
  if (j.is_null()) return std::nullopt;
  CollectorReply r;
  if (j.contains("ack") && j["ack"].is_number_unsigned()) {
    r.kind = CollectorReply::Kind::ack;
    r.seq = j["ack"].get<uint64_t>();
    return r;
  }
  if (j.contains("welcome") && j.contains("next_seq") && j["next_seq"].is_number_unsigned()) {
    r.kind = CollectorReply::Kind::welcome;
    r.seq = j["next_seq"].get<uint64_t>();
    r.run = j.value("run", "");
    return r;
  }
  if (j.contains("error") && j["error"].is_string()) {
    r.kind = CollectorReply::Kind::error;
    r.error = j["error"].get<std::string>();
    return r;
  }
  return std::nullopt;
}

std::optional<EventLineFields> scan_event_line(std::string_view line, std::string& error) {
  if (line.size() < 2 || line.front() != '{' || line.back() != '}') {
    error = "not a JSON object on one line";
    return std::nullopt;
  }
  EventLineFields out;
  if (PlainEventLineScanner(line, out).scan() && is_lower_hex(out.run, 32)) return out;
  out = EventLineFields();
  EventLineReader reader(out);
  bool parsed = nlohmann::json::sax_parse(line.begin(), line.end(), &reader);
  if (!reader.complete(error) || !parsed) {
    if (error.empty()) error = "not JSON";
    return std::nullopt;
  }
  if (!is_lower_hex(out.run, 32)) {
    error = "\"run\" is not a run id (32 lower-case hex digits)";
    return std::nullopt;
  }
  return out;
}

}  // namespace launcher
