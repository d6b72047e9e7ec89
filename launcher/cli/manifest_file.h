// Reading a manifest and its context values from the command line and the file system.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy/load.h"

namespace launcher {

// The whole content of a file, or an error message naming the file and errno text.
std::optional<std::string> read_text_file(const std::string& path, std::string& error);

// Merges --context-file F (a JSON object of string values) and --context NAME=VALUE options;
// a --context value overrides the file's. Returns false with `error` set on a bad option.
bool collect_context(const std::vector<std::string>& assignments, const std::string& context_file,
                     policy::ContextValues& out, std::string& error);

// Reads and loads a manifest file; diagnostics are formatted as "FILE: /path: message". Unless
// `options` brings its own, the reader of an OCI seccomp profile named by /syscalls/profile is
// read_text_file.
struct LoadedManifest {
  std::optional<policy::Manifest> manifest;
  std::vector<std::string> errors;
};
LoadedManifest load_manifest_file(const std::string& path, const policy::ContextValues& context,
                                  const policy::LoadOptions& options);

}  // namespace launcher
