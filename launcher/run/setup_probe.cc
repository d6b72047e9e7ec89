#include "launcher/run/setup_probe.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/fd.h"
#include "launcher/base/file.h"

namespace launcher {
namespace {

constexpr const char* kSeccompFix =
    "the container's seccomp profile refuses it: run the container with "
    "securityContext.seccompProfile.type: Unconfined (podman/docker: --security-opt "
    "seccomp=unconfined); the enclosure installs its own filter for the agent";
constexpr const char* kNamespaceFix =
    "namespaces cannot be created here: give the container CAP_SYS_ADMIN "
    "(securityContext.capabilities.add: [SYS_ADMIN]) or user namespaces (a pod with hostUsers: "
    "false on a kernel that allows them), or use the daemon shape (examples/kubernetes)";
constexpr const char* kProcFix =
    "the container's /proc is masked (parts covered by the runtime), so no new proc may be "
    "mounted: set securityContext.procMount: Unmasked (podman/docker: --security-opt "
    "unmask=ALL, or --security-opt systempaths=unconfined)";

// One step's result, sent from the probe child: the step that failed and its errno.
struct StepFailure {
  char step[32];
  int err;
};

void fail(int pipe_fd, const char* step) {
  StepFailure f{};
  std::strncpy(f.step, step, sizeof f.step - 1);
  f.err = errno;
  (void)::write(pipe_fd, &f, sizeof f);
  ::_exit(1);
}

// In the probe child: the namespaces, the host name, then (in the new pid namespace, as pid 1)
// a fresh proc — what enclosure_init and the mount view do, in that order.
[[noreturn]] void probe_child(int pipe_fd, bool user_namespace) {
  int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
  if (user_namespace) flags |= CLONE_NEWUSER;
  if (::unshare(flags) != 0) fail(pipe_fd, "unshare");
  if (::sethostname("enclosure", 9) != 0) fail(pipe_fd, "sethostname");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    fail(pipe_fd, "mount --make-rprivate /");
  }
  pid_t init = ::fork();
  if (init < 0) fail(pipe_fd, "fork");
  if (init == 0) {
    UniqueFd fs(::fsopen("proc", FSOPEN_CLOEXEC));
    if (!fs) fail(pipe_fd, "mount proc");
    if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
      fail(pipe_fd, "mount proc");
    }
    UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
    if (!mnt) fail(pipe_fd, "mount proc");
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(init, &status, 0);
  ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

std::string fix_for(const std::string& step, int err) {
  if (err != EPERM && err != EACCES) return "";
  if (step == "unshare") return kNamespaceFix;
  if (step == "sethostname") return inherited_seccomp().empty() ? kNamespaceFix : kSeccompFix;
  if (step == "mount proc") return kProcFix;
  return "";
}

}  // namespace

std::vector<SetupRefusal> probe_setup(bool user_namespace) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {{"pipe", std::strerror(errno), ""}};
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t child = ::fork();
  if (child < 0) return {{"fork", std::strerror(errno), ""}};
  if (child == 0) probe_child(write_end.get(), user_namespace);
  write_end.reset();
  int status = 0;
  ::waitpid(child, &status, 0);
  StepFailure f{};
  std::vector<SetupRefusal> out;
  while (::read(read_end.get(), &f, sizeof f) == static_cast<ssize_t>(sizeof f)) {
    out.push_back({f.step, std::strerror(f.err), fix_for(f.step, f.err)});
  }
  if (out.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    out.push_back({"probe", "the probe process failed", ""});
  }
  return out;
}

std::string inherited_seccomp() {
  std::string status = read_file("/proc/self/status");
  size_t at = status.find("\nSeccomp:");
  if (at == std::string::npos) return "";
  size_t value = status.find_first_not_of(" \t", at + 9);
  if (value == std::string::npos || status[value] != '2') return "";
  return "this process already runs under a seccomp filter (Seccomp: 2), as a container's "
         "processes do";
}

bool cgroup_read_only(const std::string& dir) {
  struct statvfs st {};
  return ::statvfs(dir.c_str(), &st) == 0 && (st.f_flag & ST_RDONLY);
}

std::string setup_hint(const std::string& message) {
  bool refused = message.find(std::strerror(EPERM)) != std::string::npos ||
                 message.find(std::strerror(EACCES)) != std::string::npos;
  if (!refused) return "";
  if (message.find("sethostname") != std::string::npos) return fix_for("sethostname", EPERM);
  if (message.find("proc") != std::string::npos &&
      (message.find("fsopen") != std::string::npos ||
       message.find("fsmount") != std::string::npos ||
       message.find("fsconfig") != std::string::npos)) {
    return kProcFix;
  }
  if (message.find("unshare") != std::string::npos || message.find("clone") != std::string::npos) {
    return kNamespaceFix;
  }
  return "";
}

}  // namespace launcher
