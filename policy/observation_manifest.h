// The manifest `enclosure learn` runs its command under: read access to the whole host, writes
// in the working directory, any destination (names answered by the resolver in observe mode),
// every record switched on. Built here, in policy/, so that a test can prove it always loads.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace policy {

struct ObservationManifest {
  nlohmann::json manifest;  // empty when `error` is set
  std::string error;        // why this working directory or command cannot be observed
};

// `cwd` and `command_path` are absolute paths as the kernel spells them; `timeout` a duration.
// The working directory gets a write grant (not "/", /proc or /dev), and /tmp a private tmpfs
// unless the working directory is /tmp or inside it (then the write grant is the working directory
// alone: a tmpfs would hide it). A path a manifest cannot name (not UTF-8, "${", "." or ".."
// segments) or a timeout that is not a duration is an error naming it, never an invalid
// manifest.
ObservationManifest observation_manifest(const std::string& cwd, const std::string& command_path,
                                         const std::string& timeout);

}  // namespace policy
