#include "launcher/run/memfd_noexec.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "launcher/base/error.h"
#include "launcher/base/fd.h"

namespace launcher {
namespace {

constexpr const char* kWhat = "vm.memfd_noexec=2 in the enclosure's pid namespace";
constexpr int kSameNamespace = 254;  // the joiner's exit status: nothing to set

// Whether the pid namespace this process's children are born in is its own.
bool children_in_own_namespace() {
  struct stat own {
  }, children{};
  return ::stat("/proc/self/ns/pid", &own) == 0 &&
         ::stat("/proc/self/ns/pid_for_children", &children) == 0 &&
         own.st_ino == children.st_ino && own.st_dev == children.st_dev;
}

// Writes "2" to sys/vm/memfd_noexec beneath the proc mount `proc`; the errno, or 0.
int write_sysctl(int proc) {
  UniqueFd sysctl(::openat(proc, "sys/vm/memfd_noexec", O_WRONLY | O_CLOEXEC));
  if (!sysctl) return errno;
  return ::write(sysctl.get(), "2", 1) == 1 ? 0 : errno;
}

// Waits for `child`: true when it set the value, false when there was nothing to set; a failure
// (its exit status is an errno) throws LaunchError.
bool expect_success(pid_t child, const std::string& what) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == kSameNamespace) return false;
  int err = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
  throw LaunchError(what + ": " + std::strerror(err) + " (Linux 6.3 or later)");
}

}  // namespace

void forbid_executable_memfds() {
  const std::string what = std::string("init: ") + kWhat;
  UniqueFd fs(::fsopen("proc", FSOPEN_CLOEXEC));
  if (!fs) throw_errno(what + ": fsopen proc");
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    throw_errno(what + ": fsconfig proc");
  }
  UniqueFd proc(::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!proc) throw_errno(what + ": fsmount proc");
  if (int err = write_sysctl(proc.get())) {
    throw LaunchError(what + ": " + std::strerror(err) + " (Linux 6.3 or later)");
  }
}

MemfdNoexecWrite::MemfdNoexecWrite(int pidfd) {
  // The writer's active pid namespace decides which namespace's value changes: a process that
  // joined the run's namespace (setns on the pidfd applies to its children) forks one that is
  // born in it, and that one writes through the host's /proc.
  UniqueFd proc(::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!proc) throw_errno(std::string(kWhat) + ": open /proc");
  joiner_ = ::fork();
  if (joiner_ < 0) throw_errno(std::string(kWhat) + ": fork");
  if (joiner_ == 0) {
    if (::setns(pidfd, CLONE_NEWPID) != 0) ::_exit(errno);
    // Never the caller's own namespace (the host's, for the daemon): a process that is no
    // enclosure's pid 1 has nothing to protect, and the host's value is not ours to change.
    if (children_in_own_namespace()) ::_exit(kSameNamespace);
    pid_t writer = ::fork();
    if (writer < 0) ::_exit(errno);
    if (writer == 0) ::_exit(write_sysctl(proc.get()));
    int status = 0;
    ::waitpid(writer, &status, 0);
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : EINTR);
  }
}

MemfdNoexecWrite::~MemfdNoexecWrite() {
  if (joiner_ <= 0) return;
  while (::waitpid(joiner_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

bool MemfdNoexecWrite::wait() {
  pid_t joiner = joiner_;
  joiner_ = -1;
  return expect_success(joiner, kWhat);
}

}  // namespace launcher
