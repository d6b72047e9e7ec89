#include "policy/context.h"

namespace policy {

bool valid_context_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  auto head = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
  if (!head(name[0])) return false;
  for (char c : name) {
    if (!tail(c)) return false;
  }
  return true;
}

bool parse_context_assignment(std::string_view text, std::string& name, std::string& value,
                              std::string& why) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    why = "expected NAME=VALUE";
    return false;
  }
  name = std::string(text.substr(0, eq));
  value = std::string(text.substr(eq + 1));
  if (!valid_context_name(name)) {
    why = "\"" + name + "\" is not a context variable name (letters, digits and _)";
    return false;
  }
  return true;
}

std::set<char> explicit_characters(std::string_view pattern) {
  std::set<char> out;
  auto alnum = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  const std::string_view kMeta = "^$.|?*+()[]{}\\";
  size_t i = 0;
  while (i < pattern.size()) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[i + 1];
      // \d \w \s \b and their negations are classes, not characters.
      if (!alnum(static_cast<unsigned char>(e))) out.insert(e);
      i += 2;
      continue;
    }
    if (pattern.substr(i, 3) == "(?!") {
      // A negative lookahead names characters in order to exclude them: "^(?!/).*$" admits
      // "/" after the first character without naming it. Skip to its closing parenthesis.
      size_t j = i + 3;
      int depth = 1;
      bool in_class = false;
      while (j < pattern.size() && depth > 0) {
        char m = pattern[j];
        if (m == '\\') {
          j += 2;
          continue;
        }
        if (in_class) {
          in_class = m != ']';
        } else if (m == '[') {
          in_class = true;
        } else if (m == '(') {
          ++depth;
        } else if (m == ')') {
          --depth;
        }
        ++j;
      }
      i = j;
      continue;
    }
    if (c == '[') {
      size_t j = i + 1;
      bool negated = j < pattern.size() && pattern[j] == '^';
      if (negated) ++j;
      std::set<char> members;
      bool first = true;
      while (j < pattern.size() && (pattern[j] != ']' || first)) {
        first = false;
        char m = pattern[j];
        if (m == '\\' && j + 1 < pattern.size()) {
          char e = pattern[j + 1];
          if (!alnum(static_cast<unsigned char>(e))) members.insert(e);
          j += 2;
          continue;
        }
        if (j + 2 < pattern.size() && pattern[j + 1] == '-' && pattern[j + 2] != ']') {
          unsigned char lo = static_cast<unsigned char>(m);
          unsigned char hi = static_cast<unsigned char>(pattern[j + 2]);
          members.insert(static_cast<char>(lo));
          members.insert(static_cast<char>(hi));
          for (unsigned v = lo; v <= hi && v < 256; ++v) {
            if (alnum(static_cast<unsigned char>(v))) members.insert(static_cast<char>(v));
          }
          j += 3;
          continue;
        }
        members.insert(m);
        ++j;
      }
      if (!negated) out.insert(members.begin(), members.end());
      i = j + 1;
      continue;
    }
    if (kMeta.find(c) == std::string_view::npos) out.insert(c);
    ++i;
  }
  return out;
}

std::optional<std::regex> compile_context_pattern(const std::string& pattern, std::string& why) {
  bool anchored_start = !pattern.empty() && pattern.front() == '^';
  bool anchored_end =
      pattern.size() >= 2 && pattern.back() == '$' && pattern[pattern.size() - 2] != '\\';
  if (!anchored_start || !anchored_end) {
    why = "an anchored regular expression (starting with ^ and ending with $)";
    return std::nullopt;
  }
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    why = std::string("a valid ECMAScript regular expression (") + e.what() + ")";
    return std::nullopt;
  }
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

std::string check_context_value(const ContextVariable& variable, const std::regex& pattern,
                                std::string_view value) {
  if (value.size() > kMaxContextValueLength) {
    return "value is " + std::to_string(value.size()) + " bytes long; at most " +
           std::to_string(kMaxContextValueLength) + " are accepted";
  }
  if (!valid_utf8(value)) return "value is not valid UTF-8";
  for (size_t i = 0; i < value.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(value[i]);
    if (u == 0) return "value contains a NUL byte";
    if (u < 0x20 || u == 0x7f) return "value contains a control character";
    // C1 controls U+0080..U+009F, encoded as C2 80..C2 9F (the text is valid UTF-8 here).
    if (u == 0xc2 && i + 1 < value.size() && static_cast<unsigned char>(value[i + 1]) <= 0x9f) {
      return "value contains a control character";
    }
  }
  // Matching runs before the character rules, so that a value the pattern rejects is reported
  // as such; the character rules then catch patterns that are looser than their author meant.
  std::string v(value);
  try {
    if (!std::regex_match(v, pattern)) {
      return "value does not match the pattern " + variable.pattern;
    }
  } catch (const std::regex_error& e) {
    return "value could not be matched against the pattern " + variable.pattern + " (" + e.what() +
           ")";
  }
  std::set<char> named = explicit_characters(variable.pattern);
  for (char c : std::string_view("/*?[]{}")) {
    if (v.find(c) != std::string::npos && !named.count(c)) {
      return std::string("value contains '") + c + "', which the pattern " + variable.pattern +
             " does not name";
    }
  }
  // "${" would read as a placeholder after expansion: the loader and the compiler take such a
  // string for part of a template and skip checks that need the final text.
  if (v.find("${") != std::string::npos) {
    return "value contains \"${\", which would read as a context placeholder";
  }
  // ".." as a whole segment could climb out of the directory the manifest names.
  size_t start = 0;
  while (start <= v.size()) {
    size_t slash = v.find('/', start);
    if (slash == std::string::npos) slash = v.size();
    if (v.compare(start, slash - start, "..") == 0 && slash - start == 2) {
      return "value contains a \"..\" path segment";
    }
    start = slash + 1;
  }
  return {};
}

Expansion expand_placeholders(std::string_view text,
                              const std::map<std::string, std::optional<std::string>>& values) {
  Expansion out;
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find("${", i);
    if (open == std::string_view::npos) {
      out.text.append(text.substr(i));
      break;
    }
    out.text.append(text.substr(i, open - i));
    size_t close = text.find('}', open + 2);
    if (close == std::string_view::npos) {
      out.problems.push_back("unterminated \"${\"; write ${name}");
      out.text.append(text.substr(open));
      break;
    }
    std::string name(text.substr(open + 2, close - open - 2));
    std::string placeholder(text.substr(open, close - open + 1));
    if (!valid_context_name(name)) {
      out.problems.push_back("\"" + placeholder + "\" is not a valid placeholder; write ${name}");
      out.text.append(placeholder);
    } else if (auto it = values.find(name); it == values.end()) {
      out.problems.push_back("undeclared context variable ${" + name +
                             "}; declare it under /context");
      out.text.append(placeholder);
    } else if (!it->second) {
      out.unresolved = true;
      out.text.append(placeholder);
    } else {
      out.text.append(*it->second);
    }
    i = close + 1;
  }
  return out;
}

}  // namespace policy
