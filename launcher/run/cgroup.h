// One cgroup per run: a cgroup v2 directory for membership (CLONE_INTO_CGROUP, BPF attach,
// cgroup.kill, cpu.stat) and, where the pids and memory controllers are not available in v2,
// directories in their v1 hierarchies beneath the launcher's own cgroups. Removed at exit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"

namespace launcher {

// Extended attributes on every run's cgroup v2 directory (value: its name), by which
// `enclosure daemon` recognises a process inside an enclosure whatever the cgroup is called.
constexpr const char* kRunCgroupMark = "trusted.enclosure.run";
constexpr const char* kRunCgroupUserMark = "user.enclosure.run";

// Where the hierarchies are and where this process sits in them.
struct CgroupLayout {
  std::string v2_mount;                         // "" when no cgroup2 is mounted
  std::string v2_own;                           // this process's cgroup, relative ("/a/b")
  std::set<std::string> v2_controllers;         // cgroup.controllers of v2_own
  std::map<std::string, std::string> v1_mount;  // controller -> mount point
  std::map<std::string, std::string> v1_own;    // controller -> own path in that hierarchy
  // Own paths are relative to what is mounted: a container's hierarchy is often a bind mount of
  // its own cgroup (mountinfo's root field), so /proc/self/cgroup's path is cut by that root.
  // When this process's cgroup is outside the mounted part, the hierarchy cannot be used and
  // these say why (the v2 fields or the controller's v1 entries are then left empty).
  std::string v2_unreachable;
  std::map<std::string, std::string> v1_unreachable;  // controller -> why

  std::string v2_own_dir() const { return v2_mount + (v2_own == "/" ? "" : v2_own); }
};

// Reads /proc/self/mountinfo and /proc/self/cgroup.
CgroupLayout discover_cgroups();

// The layout from the text of those two files (what discover_cgroups reads): pure, for tests.
// Paths in mountinfo are unescaped (\040 and the like). Not libmount: four fields of the cgroup
// lines are all this needs, and this parser is tested on the shapes runc, crun and podman make.
CgroupLayout parse_cgroup_layout(const std::string& mountinfo, const std::string& proc_cgroup);

struct CgroupLimits {
  std::optional<uint64_t> pids_max;
  std::optional<uint64_t> memory_max;
};

// Where each limit is enforced: "v2", "v1" or "" (not available).
struct CgroupPlacement {
  std::string pids;
  std::string memory;
};

// The directories of a run's cgroups and where its limits went: what `enclosure daemon` records
// to adopt a run after a restart, and what it tells the run's launcher.
struct CgroupDirectories {
  std::string v2;
  std::map<std::string, std::string> v1;  // controller -> directory
  CgroupPlacement placement;
  CgroupLimits limits;
  nlohmann::json to_json() const;
  // nullopt when `j` is not what to_json wrote.
  static std::optional<CgroupDirectories> from_json(const nlohmann::json& j);
};

// Open directories of a run's cgroups (v1: controller -> directory), as `enclosure daemon`
// hands them to the run's unprivileged launcher: in a pod, the node's paths are not visible
// (another mount, another cgroup namespace), but a directory descriptor reads the same files.
struct CgroupDirectoryFds {
  UniqueFd v2;
  std::map<std::string, UniqueFd> v1;
};

// Decides, without creating anything, where pids and memory limits would go.
CgroupPlacement place_limits(const CgroupLayout& layout);

// Forks a small process outside the enclosure that removes the run's cgroups when the launcher
// exits for any reason, SIGKILL included: it reads the directories announced to it over a
// socket whose other end only the launcher holds, and removes them on EOF. Directories are
// announced before they are created, so no moment exists where one could be left behind.
class CleanupWatchdog {
 public:
  explicit CleanupWatchdog(std::vector<std::string> directories = {});
  ~CleanupWatchdog();
  CleanupWatchdog(const CleanupWatchdog&) = delete;
  CleanupWatchdog& operator=(const CleanupWatchdog&) = delete;

  void announce(const std::string& directory);
  // A file (the run's control socket) to unlink when the launcher is gone.
  void announce_file(const std::string& path);

 private:
  UniqueFd keepalive_;
  pid_t pid_ = -1;
};

class RunCgroup {
 public:
  // Creates the run's cgroup(s) named `name` and applies `limits`. Throws LaunchError naming
  // the directory and errno when a required step fails.
  // Without `watchdog` (a daemon's runs) nothing removes them when this process dies.
  RunCgroup(const CgroupLayout& layout, const std::string& name, const CgroupLimits& limits,
            bool watchdog = true);
  // Takes over existing directories. An `owner` removes them on destruction (a daemon that
  // re-adopts its runs after a restart); otherwise this is a view (the unprivileged launcher of
  // a daemon's run) that reads the cgroup files and signals its own processes, and whose
  // SIGKILL of the whole cgroup is `kill_all` (the daemon's cgroup.kill). Directories given in
  // `fds` are used as they are (the paths in `dirs` then only name them in reports); the others
  // are opened by path.
  RunCgroup(const CgroupDirectories& dirs, bool owner, std::function<void()> kill_all = {},
            CgroupDirectoryFds fds = {});
  ~RunCgroup();
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  int v2_fd() const { return v2_fd_.get(); }  // for CLONE_INTO_CGROUP and BPF attach
  uint64_t v2_id() const { return v2_id_; }   // the cgroup id BPF sees
  const std::string& v2_path() const { return v2_path_; }
  // Every directory this run created (v2 first), for the cleanup watchdog.
  std::vector<std::string> directories() const;

  CgroupDirectories describe() const;
  // New descriptors of the run's directories (for the daemon's reply to the run's launcher).
  CgroupDirectoryFds duplicate_fds() const;
  // Leaves the directories (and what runs in them) when this object goes: a daemon that stops
  // while enclosures run hands them to its successor.
  void leave_in_place() { removed_ = true; }
  // Lets `gid` (and nobody else but root) read the run's cgroup files: directories root:gid 0750.
  void restrict_to_group(gid_t gid);

  // Moves a process into the v1 hierarchies (v2 membership comes from CLONE_INTO_CGROUP).
  void enter_v1(pid_t pid);
  // Moves a process into every hierarchy of the run (a daemon placing a launcher's child).
  void enter(pid_t pid);

  std::vector<pid_t> processes() const;
  bool populated() const;
  // Sends `signal` to every member (SIGKILL goes through cgroup.kill when available).
  void signal_all(int signal);
  // Kills every member and waits (up to `timeout_ms`) until the cgroup is empty.
  bool kill_and_wait(int timeout_ms);

  std::optional<uint64_t> cpu_usage_usec() const;
  std::optional<uint64_t> memory_peak_bytes() const;
  std::optional<uint64_t> oom_kills() const;
  std::optional<uint64_t> pids_current() const;
  std::optional<uint64_t> pids_limit_hits() const;
  // An eventfd that becomes readable on an OOM in the v1 memory cgroup (-1 when none).
  int oom_eventfd() const { return oom_event_.get(); }

  nlohmann::json report() const;  // for the start event

  // Removes the run's directories after killing what is left. Idempotent; also used by the
  // cleanup watchdog on the paths it was given.
  static void remove_directories(const std::vector<std::string>& dirs);

 private:
  // A file of the v2 directory or of a controller's v1 directory ("" when unreadable).
  std::string read_v2(const char* name) const;
  std::string read_v1(const std::string& controller, const char* name) const;

  // First member: started before any directory exists.
  std::unique_ptr<CleanupWatchdog> watchdog_;
  std::function<void()> kill_all_;
  CgroupPlacement placement_;
  std::string v2_path_;
  UniqueFd v2_fd_;
  uint64_t v2_id_ = 0;
  std::map<std::string, std::string> v1_paths_;  // controller -> directory
  std::map<std::string, UniqueFd> v1_fds_;       // controller -> that directory, open
  CgroupLimits limits_;
  UniqueFd oom_event_;
  bool removed_ = false;
};

}  // namespace launcher
