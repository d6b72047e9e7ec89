// Who is on the other end of a unix socket: the peer's process by pidfd (never by pid number
// alone), its /proc files, and whether it runs inside an enclosure — by cgroup identity, never by
// name. `enclosure daemon` asks this of every caller, and a run's control socket (`enclosure ps`,
// `enclosure stop`) of every client: an agent must never reach what confines it or its siblings.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "launcher/base/fd.h"

namespace launcher {

// A /proc file of a process that may be gone by now: "" when it cannot be read.
std::string read_proc_file(const std::string& path);

// The pid a pidfd refers to (its fdinfo "Pid:"); 0 when the descriptor is no pidfd or its
// process is gone.
pid_t pid_of_pidfd(int pidfd);

// Whether the process behind `pidfd` still exists (signal 0 through the pidfd itself).
bool pidfd_alive(int pidfd);

// A "Key:\tvalue" line of a /proc status-like file ("" when absent).
std::string status_field(const std::string& text, const std::string& key);

// A file of the directory `dir` (a /proc/PID opened earlier): "" when it cannot be read, which
// includes the process having gone since (ESRCH).
std::string read_at(int dir, const char* name);

// The v2 cgroup of the process whose /proc directory is `proc`, relative to this process's cgroup
// namespace (whatever namespace the process itself is in).
std::string v2_cgroup_at(int proc);

// /proc/PID of the process behind `pidfd` (its pid in `pid`), so that every later read is of that
// very process: the directory is opened first, and only then is the pidfd shown to refer to a
// live process with that pid. Invalid when the descriptor is no pidfd or its process is gone.
UniqueFd open_process(int pidfd, pid_t& pid);

// The connected peer of unix socket `sock` as a pidfd: SO_PEERPIDFD (Linux 6.5+) names the very
// process that connected; older kernels: pidfd_open of its SO_PEERCRED `pid`.
UniqueFd peer_pidfd(int sock, pid_t pid);

// The cgroup id the kernel (and BPF) uses for the cgroup directory `dir`: its kernfs file handle.
std::optional<uint64_t> cgroup_id_of(int dir);

// Whether a cgroup directory carries the mark every run's cgroup gets (launcher/run/cgroup.h).
bool has_run_mark(int dir);

// Why the process whose /proc directory is `proc` is inside an enclosure ("" when it is not): its
// v2 cgroup as this process's cgroup namespace names it (a namespace of the peer's own changes
// nothing) is opened beneath `v2_root` (the cgroup2 mount's root, whose id is `v2_root_id`), and
// it and every ancestor are checked for the run mark and asked of `known_run` (cgroup ids the
// caller knows to be enclosures). The cgroup is read again afterwards: a process that moved
// meanwhile counts as inside.
std::string enclosure_of(int proc, int v2_root, uint64_t v2_root_id,
                         const std::function<bool(uint64_t)>& known_run);

}  // namespace launcher
