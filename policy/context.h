// Task context: the ${name} variables a manifest declares, the values given at launch, and the
// rules that keep a value from widening a permission (policy/MANIFEST.md, "context").
#pragma once

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/manifest.h"

namespace policy {

using ContextValues = std::map<std::string, std::string>;

inline constexpr size_t kMaxContextValueLength = 1024;

// "name=value" as given to --context. On failure `why` says what is wrong.
bool parse_context_assignment(std::string_view text, std::string& name, std::string& value,
                              std::string& why);

bool valid_context_name(std::string_view name);

// The characters a pattern admits by naming them: literal characters outside bracket
// expressions, escaped characters ("\/", "\*"), and the characters listed in a non-negated
// bracket expression (alphanumerics of ranges included, other range members not). "." or "\S"
// admit no particular character, so a pattern like "^.+$" does not admit "/". Characters inside
// a negative lookahead "(?!...)" are named only to be excluded, so they do not count.
std::set<char> explicit_characters(std::string_view pattern);

// Checks a pattern: compiles as an ECMAScript regular expression anchored with ^ and $.
// Returns the compiled expression or sets `why`.
std::optional<std::regex> compile_context_pattern(const std::string& pattern, std::string& why);

// A value is accepted when it matches the pattern in full and it adds nothing the pattern does
// not name: no NUL or control character, no ".." segment, no "/" or glob character
// (* ? [ ] { }) unless the pattern names that character, never "${" (it would read as a
// placeholder), valid UTF-8, at most 1024 bytes.
// Returns "" when accepted, else the reason.
std::string check_context_value(const ContextVariable& variable, const std::regex& pattern,
                                std::string_view value);

// Whether `s` is valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s);

// The result of expanding ${name} placeholders in one string.
struct Expansion {
  std::string text;
  bool unresolved = false;            // some declared variable had no value: placeholder kept
  std::vector<std::string> problems;  // undeclared or malformed placeholders
};

// `values` maps every declared variable to its value, or to nullopt when it has none.
Expansion expand_placeholders(std::string_view text,
                              const std::map<std::string, std::optional<std::string>>& values);

// True when the text contains "${".
inline bool has_placeholder(std::string_view text) {
  return text.find("${") != std::string_view::npos;
}

}  // namespace policy
