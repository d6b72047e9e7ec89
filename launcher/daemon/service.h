// `enclosure daemon`: the privileged per-node service that gives unprivileged launchers the
// eBPF and cgroup layers. It loads the programs once, attaches the cgroup programs to its own
// cgroup v2 subtree (every run's cgroup is a child of it, configured through maps keyed by
// cgroup id), pins maps and links in bpffs, and serves requests over a unix socket
// (launcher/daemon/protocol.h). Who may ask is decided by peer credentials and, for "inside an
// enclosure", by cgroup identity; a caller acts only on the run it created (or re-adopts with
// its token, as the same user). A run whose launcher disconnects is killed and removed. On SIGTERM
// the daemon leaves running enclosures to the pinned programs and the next daemon re-adopts them
// from its state directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace launcher {

struct DaemonOptions {
  std::string socket_path;
  std::string pin_dir = "/sys/fs/bpf/enclosure";
  std::string state_dir = "/run/enclosure/daemon";
  std::string cgroup_name = "enclosure-daemon";  // the subtree beneath each hierarchy's root
  std::vector<gid_t> allow_groups;               // empty: every local user
  size_t max_runs_per_user = 64;
  uint64_t adopt_timeout_ns = 30'000'000'000ULL;
  size_t ring_bytes = 1 << 22;
  // Records forwarded per user (all its runs together): at most event_burst at once, refilled
  // at event_rate per second; the rest are counted and reported to the launcher as lost.
  uint64_t event_rate = 10000;
  uint64_t event_burst = 50000;
};

// Runs until SIGTERM or SIGINT; returns the exit status. Throws LaunchError on a setup failure.
int run_daemon(const DaemonOptions& options);

}  // namespace launcher
