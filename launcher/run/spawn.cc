#include "launcher/run/spawn.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "launcher/base/error.h"
#include "launcher/run/setup_probe.h"

namespace launcher {
namespace {

void write_proc(pid_t pid, const char* file, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw_errno("user namespace: write \"" + text + "\" to " + path);
  }
}

}  // namespace

SpawnedInit spawn_enclosure(const ChildSpec& spec, int cgroup_fd) {
  uint64_t flags =
      CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_PIDFD;
  if (spec.new_network) flags |= CLONE_NEWNET;
  if (spec.user_namespace) flags |= CLONE_NEWUSER;
  if (cgroup_fd >= 0) flags |= CLONE_INTO_CGROUP;
  int pidfd = -1;
  struct clone_args args {};
  args.flags = flags;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = cgroup_fd >= 0 ? static_cast<uint64_t>(cgroup_fd) : 0;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) {
    int err = errno;
    std::string hint;
    if (err == EPERM && spec.user_namespace) hint = " (are unprivileged user namespaces disabled?)";
    std::string message = "spawn: clone3 into new namespaces" + hint + ": " + std::strerror(err);
    // In a container: the setting that allows it, as report_outcome() adds to init's errors.
    if (std::string fix = setup_hint(message); !fix.empty()) message += "\n  " + fix;
    throw LaunchError(message);
  }
  if (pid == 0) run_enclosure_init(spec);
  SpawnedInit out;
  out.pid = static_cast<pid_t>(pid);
  out.pidfd.reset(pidfd);
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  return out;
}

void set_up_user_namespace(pid_t child, uid_t inside_uid, gid_t inside_gid) {
  write_proc(child, "setgroups", "deny");
  write_proc(child, "uid_map",
             std::to_string(inside_uid) + " " + std::to_string(::getuid()) + " 1\n");
  write_proc(child, "gid_map",
             std::to_string(inside_gid) + " " + std::to_string(::getgid()) + " 1\n");
}

}  // namespace launcher
