// What a container runtime's defaults take away from the enclosure's set-up, found by doing it:
// a child process creates the namespaces pid 1 of an enclosure gets, sets their host name and
// mounts a fresh proc, as enclosure_init and the mount view do. Each refusal is named with the
// setting that fixes it (the Kubernetes securityContext field, the podman/docker option), for
// `enclosure doctor`; setup_hint() maps a failed run's set-up error to the same advice.
#pragma once

#include <string>
#include <vector>

namespace launcher {

struct SetupRefusal {
  std::string step;  // "unshare", "sethostname", "mount proc"
  std::string error;
  std::string fix;
};

// Empty when every step works here. `user_namespace`: as the launcher does without root.
std::vector<SetupRefusal> probe_setup(bool user_namespace);

// Whether this process already runs under a seccomp filter (/proc/self/status "Seccomp: 2"), as
// containers usually do; "" when not.
std::string inherited_seccomp();

// Whether the cgroup file system at `dir` is mounted read-only (a container runtime's default).
bool cgroup_read_only(const std::string& dir);

// The fix for a set-up error text from the enclosure's pid 1 ("init: sethostname: Operation not
// permitted"), or "" when it is not one a container setting explains.
std::string setup_hint(const std::string& message);

}  // namespace launcher
