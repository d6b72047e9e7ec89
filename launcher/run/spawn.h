// clone3 into the enclosure's namespaces: pid, mount, ipc, uts and cgroup always; network for
// mode "none"; user when the launcher is not root. CLONE_INTO_CGROUP puts the child in its
// cgroup before its first instruction; CLONE_PIDFD gives the supervisor a pidfd.
#pragma once

#include <sys/types.h>

#include "launcher/base/fd.h"
#include "launcher/run/enclosure_init.h"

namespace launcher {

struct SpawnedInit {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// Starts pid 1 of the enclosure running run_enclosure_init(spec). The child waits on
// spec.sync_fd for the supervisor's go-aheads: after set_up_user_namespace, and after the
// cgroup membership (ChildSpec::sync_fd).
SpawnedInit spawn_enclosure(const ChildSpec& spec, int cgroup_fd);

// Writes the child's uid and gid maps: `inside` ids map to the launcher's own ids.
void set_up_user_namespace(pid_t child, uid_t inside_uid, gid_t inside_gid);

}  // namespace launcher
