// Process credentials of the agent: uid and gid, no supplementary groups, every capability
// dropped from every set, the bounding set emptied, ambient capabilities cleared, securebits
// locked so that nothing (setuid root, file capabilities) can bring a capability back, and
// no_new_privs.
#pragma once

#include <sys/types.h>

namespace launcher {

// Must run while the process still holds CAP_SETPCAP, CAP_SETUID and CAP_SETGID (as root, or
// as root of its user namespace). `in_user_namespace` skips setgroups, which a user namespace
// created by an unprivileged launcher denies. Throws LaunchError on failure.
void drop_privileges(uid_t uid, gid_t gid, bool in_user_namespace);

// Keeps only the capabilities in `keep` (CAP_* numbers) in the effective and permitted sets,
// empties the bounding set except those; for the enclosure's pid 1, which needs CAP_KILL to
// forward signals to an agent running under another uid.
void keep_only_capabilities(const int* keep, int count);

}  // namespace launcher
