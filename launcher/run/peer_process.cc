#include "launcher/run/peer_process.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "launcher/base/error.h"
#include "launcher/base/file.h"
#include "launcher/run/cgroup.h"

namespace launcher {
namespace {

constexpr int kSoPeerPidfd = 77;  // SO_PEERPIDFD, Linux 6.5
constexpr int kMaxCgroupDepth = 4096;

}  // namespace

// A /proc file of a process that may be gone by now: "" when it cannot be read.
std::string read_proc_file(const std::string& path) {
  try {
    return read_file(path);
  } catch (const LaunchError&) {
    return "";
  }
}

// The pid a pidfd refers to (its fdinfo "Pid:"); 0 when the descriptor is no pidfd or its
// process is gone.
pid_t pid_of_pidfd(int pidfd) {
  std::string text =
      status_field(read_proc_file("/proc/self/fdinfo/" + std::to_string(pidfd)), "Pid");
  long pid = text.empty() ? 0 : std::strtol(text.c_str(), nullptr, 10);
  return pid > 0 ? static_cast<pid_t>(pid) : 0;
}

// Whether the process behind `pidfd` still exists (signal 0 through the pidfd itself).
bool pidfd_alive(int pidfd) {
  return ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0;
}

// A "Key:\tvalue" line of a /proc status-like file.
std::string status_field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      size_t start = line.find_first_not_of(" \t", key.size() + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "";
}

// A file of the directory `dir` (a /proc/PID opened earlier); "" when it cannot be read.
std::string read_at(int dir, const char* name) {
  return read_file_at(dir, name).value_or("");
}

// The v2 cgroup of the process whose /proc directory is `proc`, relative to this daemon's cgroup
// namespace (whatever namespace the process itself is in).
std::string v2_cgroup_at(int proc) {
  std::istringstream in(read_at(proc, "cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

// /proc/PID of the process behind `pidfd`, so that every later read is of that very process: the
// directory is opened first, and only then is the pidfd shown to refer to a live process with
// that pid. A pid is reused only after its process is gone, so the directory opened before that
// check is the process's own; reads through it fail once the process exits. The number alone is
// never trusted. Invalid when the descriptor is no pidfd or its process is gone.
UniqueFd open_process(int pidfd, pid_t& pid) {
  pid = pid_of_pidfd(pidfd);
  if (pid <= 0) return {};
  UniqueFd dir(
      ::open(("/proc/" + std::to_string(pid)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || !pidfd_alive(pidfd) || pid_of_pidfd(pidfd) != pid) return {};
  return dir;
}

// The caller's process as a pidfd: SO_PEERPIDFD (Linux 6.5+) names the very process that
// connected. Older kernels: pidfd_open of the SO_PEERCRED pid, which names another process only
// if the caller exited between connect and accept and its pid was reused meanwhile.
UniqueFd peer_pidfd(int sock, pid_t pid) {
  int fd = -1;
  socklen_t len = sizeof fd;
  if (::getsockopt(sock, SOL_SOCKET, kSoPeerPidfd, &fd, &len) == 0 && fd >= 0) return UniqueFd(fd);
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// The cgroup id the kernel (and BPF) uses for the cgroup directory `dir`: its kernfs file handle.
std::optional<uint64_t> cgroup_id_of(int dir) {
  alignas(file_handle) char buf[sizeof(file_handle) + sizeof(uint64_t)] = {};
  auto* handle = reinterpret_cast<file_handle*>(buf);
  handle->handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (::name_to_handle_at(dir, "", handle, &mount_id, AT_EMPTY_PATH) != 0 ||
      handle->handle_bytes != sizeof(uint64_t)) {
    return std::nullopt;
  }
  uint64_t id;
  std::memcpy(&id, handle->f_handle, sizeof id);
  return id;
}

// Whether a cgroup directory carries the mark every run's cgroup gets (launcher/run/cgroup.h).
bool has_run_mark(int dir) {
  return ::fgetxattr(dir, kRunCgroupMark, nullptr, 0) >= 0 ||
         ::fgetxattr(dir, kRunCgroupUserMark, nullptr, 0) >= 0;
}

std::string enclosure_of(int proc, int v2_root, uint64_t v2_root_id,
                         const std::function<bool(uint64_t)>& known_run) {
  std::string path = v2_cgroup_at(proc);
  if (path.empty() || path[0] != '/') return "the caller's cgroup cannot be read";
  std::istringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part == "..") return "the caller's cgroup is outside this cgroup namespace";
  }
  UniqueFd dir(path == "/"
                   ? ::dup(v2_root)
                   : ::openat(v2_root, path.c_str() + 1, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return "the caller's cgroup " + path + " cannot be opened";
  for (int depth = 0;; ++depth) {
    std::optional<uint64_t> id = cgroup_id_of(dir.get());
    if (!id || depth > kMaxCgroupDepth) return "the caller's cgroup id cannot be read";
    if (known_run(*id) || has_run_mark(dir.get())) {
      return "the caller runs inside an enclosure";
    }
    if (*id == v2_root_id) break;
    UniqueFd parent(::openat(dir.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent) return "the caller's cgroup " + path + " cannot be walked";
    dir = std::move(parent);
  }
  if (v2_cgroup_at(proc) != path) return "the caller moved to another cgroup while it was checked";
  return "";
}

}  // namespace launcher
