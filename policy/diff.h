// `enclosure diff OLD NEW`: which permissions and budgets a change widens or narrows.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/manifest.h"

namespace policy {

enum class ChangeKind {
  widened,   // the agent may do more (or is watched less)
  narrowed,  // the agent may do less
  changed,   // cannot be ordered (e.g. a context pattern); a review gate treats it as widening
  info,      // not a permission (metadata, working directory)
};

struct DiffEntry {
  std::string section;  // "filesystem", "tools", "network", ...
  ChangeKind kind;
  std::string what;
};

std::vector<DiffEntry> diff_manifests(const Manifest& before, const Manifest& after);

const char* to_string(ChangeKind kind);
nlohmann::json diff_json(const std::vector<DiffEntry>& entries);
std::string diff_text(const std::vector<DiffEntry>& entries);

// True when an entry widens permissions (widened or changed).
bool widens(const std::vector<DiffEntry>& entries);
// True when the permission sets differ (anything but info).
bool differs(const std::vector<DiffEntry>& entries);

}  // namespace policy
