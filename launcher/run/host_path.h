// Resolving a host path one component at a time without letting the kernel follow symlinks,
// so that the launcher knows exactly which symlinks a grant passes through and can refuse the
// ones an agent could have planted (those inside writable grants).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "launcher/base/fd.h"

namespace launcher {

struct ResolvedHostPath {
  bool exists = false;
  std::string real;  // the path with every symlink expanded ("/usr/lib64/ld-linux-x86-64.so.2")
  UniqueFd fd;       // O_PATH fd of the object (final symlink itself when not followed)
  bool is_symlink = false;  // the final component is a symlink (only when not followed)
  // Symlinks passed through, in order: (absolute location, target as written).
  std::vector<std::pair<std::string, std::string>> links;
};

// Resolves absolute `path` beneath `root_fd` (absolute symlinks restart at root_fd, ".." never
// leaves it). `follow_final` decides whether a symlink as the last component is followed.
// A symlink located at or under any of `untrusted` (real paths of writable grants) is refused
// with a LaunchError: an agent could have planted it.
ResolvedHostPath resolve_host_path(int root_fd, const std::string& path, bool follow_final,
                                   const std::vector<std::string>& untrusted);

}  // namespace launcher
