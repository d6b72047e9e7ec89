// Errors found in a manifest, each tied to the JSON pointer of the value at fault.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace policy {

struct Diagnostic {
  std::string path;     // JSON pointer, e.g. "/network/egress/2/ports/0"; "" for the document
  std::string message;  // what was expected and what was found
};

// Collects every error of one manifest so that all of them are reported at once.
class Diagnostics {
 public:
  void error(std::string path, std::string message) {
    errors_.push_back({std::move(path), std::move(message)});
  }
  bool ok() const { return errors_.empty(); }
  const std::vector<Diagnostic>& errors() const { return errors_; }
  void append(const Diagnostics& other) {
    errors_.insert(errors_.end(), other.errors_.begin(), other.errors_.end());
  }

 private:
  std::vector<Diagnostic> errors_;
};

// Appends one reference token to a JSON pointer, escaping "~" and "/" as RFC 6901 requires.
std::string pointer_join(std::string_view base, std::string_view token);
std::string pointer_join(std::string_view base, size_t index);

// A short rendering of a JSON value for "got ..." in messages: strings quoted, long values cut.
std::string describe(const nlohmann::json& value);

// The JSON type name a reader expects ("a string", "an object", ...).
std::string type_name(const nlohmann::json& value);

// "FILE: /path: message" lines, or "FILE: message" for document-level errors. Control
// characters are written as \u00XX, so a diagnostic is always one line.
std::string format_diagnostic(std::string_view file, const Diagnostic& d);

}  // namespace policy
