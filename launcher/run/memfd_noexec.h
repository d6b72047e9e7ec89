// vm.memfd_noexec = 2 in an enclosure's pid namespace: no memfd can be executed (by its
// /proc/self/fd path, fexecve or execveat) or created executable (MFD_EXEC), so a copy of a
// binary in memory is never a way around the tools. Landlock cannot refuse it (a memfd lives on
// an internal mount, outside every rule). The sysctl belongs to the pid namespace of the process
// that writes it, a child namespace cannot lower it, and /proc/sys is writable by the host's
// root alone: a root launcher's pid 1 sets it for itself; for a launcher without root,
// `enclosure daemon` sets it from inside the run's pid namespace when the run's pid 1 enters.
// Linux 6.3 or later.
#pragma once

#include <sys/types.h>

namespace launcher {

// Sets it for the caller's own pid namespace (the enclosure's pid 1, as root), through a proc
// instance of its own (the agent's /proc is read-only). Throws LaunchError.
void forbid_executable_memfds();

// Sets it for the pid namespace of the process behind `pidfd` (its pid 1), from a short-lived
// process of the caller's (root) that joins that namespace, in two halves, so that the caller
// can do other work while it writes (the daemon moves the run's pid 1 into its cgroups
// meanwhile: a cgroup v1 migration waits ~14 ms for an RCU grace period). The constructor starts
// the write (throws LaunchError). wait() returns true once it is written, false, and nothing
// written, when that process is in the caller's own pid namespace (it is no enclosure's pid 1;
// the host's value is never changed), and throws LaunchError when the write failed. A write never
// waited for is reaped by the destructor, its result ignored.
class MemfdNoexecWrite {
 public:
  explicit MemfdNoexecWrite(int pidfd);
  ~MemfdNoexecWrite();
  MemfdNoexecWrite(const MemfdNoexecWrite&) = delete;
  MemfdNoexecWrite& operator=(const MemfdNoexecWrite&) = delete;
  bool wait();

 private:
  pid_t joiner_ = -1;
};

}  // namespace launcher
