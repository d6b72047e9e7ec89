// policy::load: manifest text + context values -> a validated Manifest, or every error at once.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "policy/context.h"
#include "policy/diagnostics.h"
#include "policy/manifest.h"

namespace policy {

struct LoadOptions {
  // Accept context variables that have neither a value nor a default, keeping their ${name}
  // placeholders (a template, for check/explain/diff). `run` loads with this off.
  bool allow_unresolved = false;
  // Reads the OCI seccomp profile that /syscalls/profile names by absolute path: its text, or
  // nullopt with `error` set. Policy makes no syscalls, so the caller supplies this (the
  // launcher reads the file); without it such a manifest is refused.
  std::function<std::optional<std::string>(const std::string& path, std::string& error)>
      read_profile = nullptr;
};

struct LoadResult {
  std::optional<Manifest> manifest;  // set only when there are no errors
  Diagnostics diagnostics;
};

// Parses and validates manifest text (no syscalls: the caller reads the file). `context` holds
// the values given at launch; a name that the manifest does not declare is an error.
LoadResult load_manifest(std::string_view text, const ContextValues& context = {},
                         const LoadOptions& options = {});

// The keys the parser accepts, by JSON pointer of their object with array indices written as
// "*", e.g. "/network/egress/*" -> {"host", "cidr", "ports", "protocol"}. Objects whose keys
// are free (labels, env.set, context) are listed with the single key "*". The schema test
// compares this with policy/manifest.schema.json.
const std::map<std::string, std::vector<std::string>>& accepted_keys();

}  // namespace policy
