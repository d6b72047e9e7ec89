// The enclosure's filesystem view, built inside its new mount namespace: an empty tmpfs root,
// read-only binds of `read` paths, binds of `write` paths, fresh tmpfs entries, masks for
// `hide`, tools and their ELF interpreters, a fresh read-only /proc with sensitive entries
// masked, a minimal /dev; everything private; pivot_root; the old root detached.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "policy/plan.h"

namespace launcher {

struct ViewOptions {
  uid_t owner_uid = 0;  // owner of tmpfs entries (the agent's uid inside)
  gid_t owner_gid = 0;
};

struct ViewResult {
  // Manifest path -> the real path it has in the view (symlinks expanded), for Landlock.
  std::map<std::string, std::string> real_paths;
  // The path in the view of a manifest path that lies at or under a mounted one (a tool under
  // a read grant); empty when it is under none or absent from the host.
  std::string view_path(const std::string& manifest_path) const;
  // Steps skipped because the host has no such path (origin: message).
  std::vector<std::string> absent;
};

// Runs in the child, inside the new mount namespace, with the privileges to mount. Throws
// LaunchError naming the step's manifest entry, path and errno on failure. On return the
// process's root is the view and its cwd is "/".
ViewResult build_mount_view(const std::vector<policy::MountStep>& steps,
                            const ViewOptions& options);

}  // namespace launcher
