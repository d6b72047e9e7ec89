#include "policy/diagnostics.h"

namespace policy {

std::string pointer_join(std::string_view base, std::string_view token) {
  std::string out(base);
  out.push_back('/');
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string pointer_join(std::string_view base, size_t index) {
  return std::string(base) + "/" + std::to_string(index);
}

std::string describe(const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  constexpr size_t kMax = 72;
  if (text.size() > kMax) {
    // Cut at a character boundary: never inside a UTF-8 sequence, so the message stays valid
    // UTF-8 (events and JSON output serialise it strictly).
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
      --cut;
    }
    text.resize(cut);
    text += "...";
  }
  return text;
}

std::string type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a number";
    default:
      return "a value";
  }
}

namespace {

// Control characters (a key or a tool name may hold them) written as \u00XX, so that one
// diagnostic stays one line and cannot drive the terminal.
void append_printable(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\u00";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

std::string format_diagnostic(std::string_view file, const Diagnostic& d) {
  std::string out;
  append_printable(out, file);
  out += ": ";
  if (!d.path.empty()) {
    append_printable(out, d.path);
    out += ": ";
  }
  append_printable(out, d.message);
  return out;
}

}  // namespace policy
