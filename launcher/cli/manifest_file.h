// Reading a manifest and its context values from the command line and the file system: the
// one preamble of every command that takes a manifest (check, explain, diff, export, run,
// learn, doctor).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy/compile.h"
#include "policy/load.h"

namespace launcher {

// A manifest, or its context values, that does not load or compile. diagnostics() are lines
// printed as they are ("FILE: /pointer: message", or a file that cannot be read); what(), when
// not empty, is printed as "enclosure COMMAND: what". The command boundary (cli/main.cc) exits
// with the command's status for invalid input: 2, or 125 for run and learn.
class InvalidManifest : public std::runtime_error {
 public:
  explicit InvalidManifest(std::vector<std::string> diagnostics, const std::string& message = "")
      : std::runtime_error(message), diagnostics_(std::move(diagnostics)) {}
  const std::vector<std::string>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<std::string> diagnostics_;
};

// Prints an InvalidManifest for `enclosure COMMAND` to stderr (see above).
void print_invalid_manifest(const std::string& command, const InvalidManifest& invalid);

// Where a command's manifest comes from: the file and the context options.
struct ManifestSource {
  std::string path;
  std::vector<std::string> context;  // --context NAME=VALUE (repeatable)
  std::string context_file;          // --context-file F
  // Keep ${NAME} placeholders of variables without a value (check, explain, diff, export);
  // run, learn and doctor load with this off.
  bool allow_unresolved = false;
};

// Merges --context-file F (a JSON object of string values) and --context NAME=VALUE options;
// a --context value overrides the file's. Throws InvalidManifest on a bad option or file.
policy::ContextValues collect_context(const std::vector<std::string>& assignments,
                                      const std::string& context_file);

// The manifest path that means standard input (`-m -`).
inline constexpr const char* kStandardInput = "-";

// Reads and loads a manifest file (or standard input for "-") with these context values. Throws
// InvalidManifest with one "FILE: /path: message" line per error. The OCI seccomp profile that
// /syscalls/profile names is read like the manifest.
policy::Manifest load_manifest_or_throw(const std::string& path,
                                        const policy::ContextValues& context,
                                        bool allow_unresolved);

// collect_context + load_manifest_or_throw for one source.
policy::Manifest load_manifest_or_throw(const ManifestSource& source);

// A loaded manifest and its enforcement plan.
struct CompiledManifest {
  policy::Manifest manifest;
  policy::EnforcementPlan plan;
};
// load_manifest_or_throw + policy::compile; a manifest that does not compile (a template)
// throws InvalidManifest with the message "FILE: why".
CompiledManifest compile_manifest_or_throw(const ManifestSource& source);

}  // namespace launcher
