// What runs inside the enclosure's new namespaces: pid 1 (builds the view, starts the agent,
// reaps orphans, forwards signals, exits with the agent's status) and the agent process's last
// steps before execve (setsid, fds, limits, cwd, credentials, Landlock, seccomp).
#pragma once

#include <sys/ioctl.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/plan.h"

namespace launcher {

struct ChildSpec {
  const policy::EnforcementPlan* plan = nullptr;
  std::vector<policy::MountStep> mount_steps;  // the plan's, plus ELF interpreters
  std::vector<std::string> interpreters;       // ELF interpreters (manifest paths): EXECUTE
  std::string exec_path;
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  bool user_namespace = false;
  // The supervisor (a daemon) moved init into the run's cgroup after the clone: a new cgroup
  // namespace rooted there hides the host's cgroup paths, as CLONE_INTO_CGROUP would have.
  bool recenter_cgroup_namespace = false;
  bool new_network = false;
  int landlock_abi = 0;                       // 0: Landlock not applied (allowed degraded)
  bool seccomp = true;                        // false: not applied (allowed degraded)
  std::optional<uint64_t> cpu_limit_seconds;  // RLIMIT_CPU backstop
  // Read end of the supervisor's two go-aheads: a byte once our uid map is written (the view
  // can be built), a second once we are in the run's cgroups (the agent can be forked).
  int sync_fd = -1;
  int channel_fd = -1;  // SEQPACKET socket to the supervisor
  int meter_fd = -1;    // write end of the metering pipe: fd kMeterFd in the agent, or -1
  // A pseudo-terminal of the enclosure's devpts for the agent: pid 1 opens it once the view is
  // in place, the slave becomes the agent's 0-2 and controlling terminal, and the master goes
  // to the supervisor over the channel (a "terminal" packet carrying it).
  bool terminal = false;
  std::optional<struct winsize> terminal_size;  // its first window size, when known
};

// The agent's metering descriptor (ENCLOSURE_METER_FD): the only one besides 0-2 it inherits.
inline constexpr int kMeterFd = 3;

// Exit codes of pid 1 when set-up fails (the channel carries the reason).
inline constexpr int kSetupFailed = 125;

// The body of the enclosure's pid 1. Never returns.
[[noreturn]] void run_enclosure_init(const ChildSpec& spec);

}  // namespace launcher
