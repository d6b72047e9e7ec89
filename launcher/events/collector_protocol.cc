#include "launcher/events/collector_protocol.h"

#include <algorithm>
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
