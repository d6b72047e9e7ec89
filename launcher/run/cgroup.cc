#include "launcher/run/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/base/file.h"

namespace launcher {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_text(const std::string& path, const std::string& text, int& err) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    err = errno;
    return false;
  }
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    err = errno;
    return false;
  }
  return true;
}

// A file beneath an open directory; "" when it cannot be read.
std::string slurp_at(int dir_fd, const char* name) {
  return dir_fd < 0 ? "" : read_file_at(dir_fd, name).value_or("");
}

bool write_text_at(int dir_fd, const char* name, const std::string& text) {
  UniqueFd fd(::openat(dir_fd, name, O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

UniqueFd open_directory(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("cgroup: open " + path);
  return fd;
}

void write_or_throw(const std::string& path, const std::string& text) {
  int err = 0;
  if (!write_text(path, text, err)) throw_errno("cgroup: write \"" + text + "\" to " + path, err);
}

std::optional<uint64_t> keyed_value(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::optional<uint64_t> plain_value(const std::string& text) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  return std::strtoull(text.c_str(), nullptr, 10);
}

}  // namespace

namespace {

// A mountinfo path field with its octal escapes (\040 space, \011 tab, \012 newline, \134
// backslash) decoded.
std::string unescape_mount_path(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() &&
        std::isdigit(static_cast<unsigned char>(field[i + 1]))) {
      out += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// `path` (from /proc/self/cgroup) relative to a mount whose root field is `root`: "/" for the
// root itself; nullopt when the path is outside what is mounted.
std::optional<std::string> relative_to_mount(const std::string& path, const std::string& root) {
  if (root == "/") return path;
  if (path == root) return "/";
  if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
      path[root.size()] == '/') {
    return path.substr(root.size());
  }
  return std::nullopt;
}

struct CgroupMount {
  std::string root, point;
};

// The cgroup2 mount and the v1 mounts of the controllers a run uses, from mountinfo.
void read_cgroup_mounts(const std::string& mountinfo, CgroupMount& v2,
                        std::map<std::string, CgroupMount>& v1) {
  std::istringstream mounts(mountinfo);
  std::string line;
  while (std::getline(mounts, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    std::istringstream f(line);
    std::string id, parent, dev, root, point, opts, token, fstype, source, super;
    f >> id >> parent >> dev >> root >> point >> opts;
    while (f >> token && token != "-") {
    }
    f >> fstype >> source >> super;
    CgroupMount m{unescape_mount_path(root), unescape_mount_path(point)};
    if (fstype == "cgroup2" && v2.point.empty()) v2 = m;
    if (fstype != "cgroup") continue;
    std::istringstream so(super);
    std::string option;
    while (std::getline(so, option, ',')) {
      if (option == "pids" || option == "memory" || option == "cpuacct" || option == "cpu") {
        v1.emplace(option, m);
      }
    }
  }
}

std::string outside_mount(const std::string& what, const std::string& path, const CgroupMount& m) {
  return what + ": this process's cgroup " + path +
         " is outside the part of the hierarchy "
         "mounted at " +
         m.point + " (" + m.root +
         "); give the container a cgroup namespace "
         "(runc/podman --cgroupns=private) or mount the whole hierarchy";
}

}  // namespace

CgroupLayout parse_cgroup_layout(const std::string& mountinfo, const std::string& proc_cgroup) {
  CgroupLayout layout;
  CgroupMount v2;
  std::map<std::string, CgroupMount> v1;
  read_cgroup_mounts(mountinfo, v2, v1);
  std::istringstream groups(proc_cgroup);
  std::string line;
  while (std::getline(groups, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      if (v2.point.empty()) continue;
      if (std::optional<std::string> own = relative_to_mount(path, v2.root)) {
        layout.v2_mount = v2.point;
        layout.v2_own = *own;
      } else {
        layout.v2_unreachable = outside_mount("cgroup2", path, v2);
      }
      continue;
    }
    std::istringstream cs(controllers);
    std::string c;
    while (std::getline(cs, c, ',')) {
      auto m = v1.find(c);
      if (m == v1.end()) continue;
      if (std::optional<std::string> own = relative_to_mount(path, m->second.root)) {
        layout.v1_mount[c] = m->second.point;
        layout.v1_own[c] = *own;
      } else {
        layout.v1_unreachable[c] = outside_mount("cgroup v1 " + c, path, m->second);
      }
    }
  }
  return layout;
}

CgroupLayout discover_cgroups() {
  CgroupLayout layout =
      parse_cgroup_layout(slurp("/proc/self/mountinfo"), slurp("/proc/self/cgroup"));
  if (!layout.v2_mount.empty()) {
    std::istringstream cs(slurp(layout.v2_own_dir() + "/cgroup.controllers"));
    std::string c;
    while (cs >> c)
      layout.v2_controllers.insert(c);
  }
  return layout;
}

CgroupPlacement place_limits(const CgroupLayout& layout) {
  CgroupPlacement p;
  for (const char* c : {"pids", "memory"}) {
    std::string where;
    if (layout.v2_controllers.count(c)) {
      where = "v2";
    } else if (layout.v1_mount.count(c) && layout.v1_own.count(c)) {
      where = "v1";
    }
    (std::string(c) == "pids" ? p.pids : p.memory) = where;
  }
  return p;
}

nlohmann::json CgroupDirectories::to_json() const {
  auto opt = [](const std::optional<uint64_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {{"v2", v2},
          {"v1", v1},
          {"placement", {{"pids", placement.pids}, {"memory", placement.memory}}},
          {"limits", {{"pids_max", opt(limits.pids_max)}, {"memory_max", opt(limits.memory_max)}}}};
}

std::optional<CgroupDirectories> CgroupDirectories::from_json(const nlohmann::json& j) {
  try {
    CgroupDirectories d;
    d.v2 = j.at("v2").get<std::string>();
    d.v1 = j.at("v1").get<std::map<std::string, std::string>>();
    d.placement.pids = j.at("placement").at("pids").get<std::string>();
    d.placement.memory = j.at("placement").at("memory").get<std::string>();
    const nlohmann::json& l = j.at("limits");
    if (!l.at("pids_max").is_null()) d.limits.pids_max = l.at("pids_max").get<uint64_t>();
    if (!l.at("memory_max").is_null()) d.limits.memory_max = l.at("memory_max").get<uint64_t>();
    if (d.v2.empty() || d.v2[0] != '/') return std::nullopt;
    return d;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

RunCgroup::RunCgroup(const CgroupDirectories& dirs, bool owner, std::function<void()> kill_all,
                     CgroupDirectoryFds fds)
    : kill_all_(std::move(kill_all)),
      placement_(dirs.placement),
      v2_path_(dirs.v2),
      v1_paths_(dirs.v1),
      limits_(dirs.limits),
      removed_(!owner) {
  v2_fd_ = fds.v2 ? std::move(fds.v2) : open_directory(v2_path_);
  struct stat st {};
  if (::fstat(v2_fd_.get(), &st) != 0) throw_errno("cgroup: stat " + v2_path_);
  v2_id_ = st.st_ino;
  for (const auto& [controller, dir] : v1_paths_) {
    auto given = fds.v1.find(controller);
    v1_fds_[controller] =
        given != fds.v1.end() && given->second ? std::move(given->second) : open_directory(dir);
  }
}

CgroupDirectories RunCgroup::describe() const {
  return {v2_path_, v1_paths_, placement_, limits_};
}

CgroupDirectoryFds RunCgroup::duplicate_fds() const {
  auto duplicate = [](int fd) {
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!copy) throw_errno("cgroup: duplicate a directory descriptor");
    return copy;
  };
  CgroupDirectoryFds out;
  out.v2 = duplicate(v2_fd_.get());
  for (const auto& [controller, fd] : v1_fds_)
    out.v1[controller] = duplicate(fd.get());
  return out;
}

void RunCgroup::restrict_to_group(gid_t gid) {
  for (const std::string& dir : directories()) {
    if (::chown(dir.c_str(), 0, gid) != 0) throw_errno("cgroup: chown " + dir);
    if (::chmod(dir.c_str(), 0750) != 0) throw_errno("cgroup: chmod " + dir);
  }
}

void RunCgroup::enter(pid_t pid) {
  write_or_throw(v2_path_ + "/cgroup.procs", std::to_string(pid));
  enter_v1(pid);
}

RunCgroup::RunCgroup(const CgroupLayout& layout, const std::string& name,
                     const CgroupLimits& limits, bool watchdog)
    : watchdog_(watchdog ? std::make_unique<CleanupWatchdog>() : nullptr),
      placement_(place_limits(layout)),
      limits_(limits) {
  if (layout.v2_mount.empty()) throw LaunchError("cgroup: no cgroup2 hierarchy is mounted");
  std::string parent = layout.v2_own_dir();
  // Limits through v2 need the controllers enabled for our children.
  std::string enable;
  if (limits.pids_max && placement_.pids == "v2") enable += " +pids";
  if (limits.memory_max && placement_.memory == "v2") enable += " +memory";
  if (!enable.empty()) {
    int err = 0;
    if (!write_text(parent + "/cgroup.subtree_control", enable.substr(1), err)) {
      // The launcher's own cgroup holds processes (v2's no-internal-process rule): fall back to
      // v1 for the limits where it is mounted.
      if (limits.pids_max && placement_.pids == "v2") placement_.pids = "";
      if (limits.memory_max && placement_.memory == "v2") placement_.memory = "";
    }
  }
  v2_path_ = parent + "/" + name;
  if (watchdog_) watchdog_->announce(v2_path_);
  if (::mkdir(v2_path_.c_str(), 0755) != 0) throw_errno("cgroup: mkdir " + v2_path_);
  try {
    v2_fd_.reset(::open(v2_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!v2_fd_) throw_errno("cgroup: open " + v2_path_);
    struct stat st {};
    if (::fstat(v2_fd_.get(), &st) != 0) throw_errno("cgroup: stat " + v2_path_);
    v2_id_ = st.st_ino;
    // The mark `enclosure daemon` recognises a run's cgroup by (never its name): trusted.* (only
    // root can set or remove it), or user.* for an unprivileged launcher's delegated cgroup.
    if (::fsetxattr(v2_fd_.get(), kRunCgroupMark, name.data(), name.size(), 0) != 0) {
      ::fsetxattr(v2_fd_.get(), kRunCgroupUserMark, name.data(), name.size(), 0);
    }
    auto v1_dir = [&](const char* controller) {
      std::string own = layout.v1_own.at(controller);
      std::string dir = layout.v1_mount.at(controller) + (own == "/" ? "" : own) + "/" + name;
      if (watchdog_) watchdog_->announce(dir);
      if (::mkdir(dir.c_str(), 0755) != 0) throw_errno("cgroup: mkdir " + dir);
      v1_paths_[controller] = dir;
      v1_fds_[controller] = open_directory(dir);
      return dir;
    };
    if (limits.pids_max) {
      if (placement_.pids == "v2") {
        write_or_throw(v2_path_ + "/pids.max", std::to_string(*limits.pids_max));
      } else if (layout.v1_mount.count("pids") && layout.v1_own.count("pids")) {
        placement_.pids = "v1";
        write_or_throw(v1_dir("pids") + "/pids.max", std::to_string(*limits.pids_max));
      } else {
        throw LaunchError("cgroup: no pids controller (v2 or v1) for /budgets/processes");
      }
    }
    if (limits.memory_max) {
      if (placement_.memory == "v2") {
        write_or_throw(v2_path_ + "/memory.max", std::to_string(*limits.memory_max));
        write_or_throw(v2_path_ + "/memory.swap.max", "0");
        write_or_throw(v2_path_ + "/memory.oom.group", "1");
      } else if (layout.v1_mount.count("memory") && layout.v1_own.count("memory")) {
        placement_.memory = "v1";
        std::string dir = v1_dir("memory");
        write_or_throw(dir + "/memory.limit_in_bytes", std::to_string(*limits.memory_max));
        if (::access((dir + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
          write_or_throw(dir + "/memory.memsw.limit_in_bytes", std::to_string(*limits.memory_max));
        }
        // An eventfd the kernel signals on OOM in this cgroup (v1 notification API).
        oom_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        UniqueFd control(::open((dir + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC));
        if (oom_event_ && control) {
          write_or_throw(dir + "/cgroup.event_control",
                         std::to_string(oom_event_.get()) + " " + std::to_string(control.get()));
        }
      } else {
        throw LaunchError("cgroup: no memory controller (v2 or v1) for /budgets/memory");
      }
    }
  } catch (...) {
    remove_directories(directories());
    removed_ = true;
    throw;
  }
}

RunCgroup::~RunCgroup() {
  if (!removed_) remove_directories(directories());
}

std::vector<std::string> RunCgroup::directories() const {
  std::vector<std::string> out;
  if (!v2_path_.empty()) out.push_back(v2_path_);
  for (const auto& [c, dir] : v1_paths_)
    out.push_back(dir);
  return out;
}

void RunCgroup::enter_v1(pid_t pid) {
  for (const auto& [controller, dir] : v1_paths_) {
    write_or_throw(dir + "/cgroup.procs", std::to_string(pid));
  }
}

std::string RunCgroup::read_v2(const char* name) const {
  return slurp_at(v2_fd_.get(), name);
}

std::string RunCgroup::read_v1(const std::string& controller, const char* name) const {
  auto it = v1_fds_.find(controller);
  return it == v1_fds_.end() ? "" : slurp_at(it->second.get(), name);
}

std::vector<pid_t> RunCgroup::processes() const {
  std::vector<pid_t> out;
  // Pids as this process's pid namespace sees them; 0 for a member it cannot see (kill(0, ...)
  // would signal our own process group).
  std::istringstream in(read_v2("cgroup.procs"));
  pid_t p;
  while (in >> p) {
    if (p > 0) out.push_back(p);
  }
  return out;
}

bool RunCgroup::populated() const {
  auto v = keyed_value(read_v2("cgroup.events"), "populated");
  return v ? *v != 0 : !processes().empty();
}

void RunCgroup::signal_all(int signal) {
  if (signal == SIGKILL) {
    if (write_text_at(v2_fd_.get(), "cgroup.kill", "1")) return;
    if (kill_all_) kill_all_();
  }
  for (pid_t p : processes())
    ::kill(p, signal);
}

bool RunCgroup::kill_and_wait(int timeout_ms) {
  Deadline deadline(static_cast<uint64_t>(timeout_ms));
  while (true) {
    signal_all(SIGKILL);
    if (!populated()) return true;
    if (deadline.passed()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<uint64_t> RunCgroup::cpu_usage_usec() const {
  return keyed_value(read_v2("cpu.stat"), "usage_usec");
}

std::optional<uint64_t> RunCgroup::memory_peak_bytes() const {
  if (placement_.memory == "v2") return plain_value(read_v2("memory.peak"));
  if (v1_fds_.count("memory")) return plain_value(read_v1("memory", "memory.max_usage_in_bytes"));
  return std::nullopt;
}

std::optional<uint64_t> RunCgroup::oom_kills() const {
  if (placement_.memory == "v2") return keyed_value(read_v2("memory.events"), "oom_kill");
  if (v1_fds_.count("memory"))
    return keyed_value(read_v1("memory", "memory.oom_control"), "oom_kill");
  return std::nullopt;
}

std::optional<uint64_t> RunCgroup::pids_current() const {
  if (placement_.pids == "v2") return plain_value(read_v2("pids.current"));
  if (v1_fds_.count("pids")) return plain_value(read_v1("pids", "pids.current"));
  return std::nullopt;
}

std::optional<uint64_t> RunCgroup::pids_limit_hits() const {
  if (placement_.pids == "v2") return keyed_value(read_v2("pids.events"), "max");
  if (v1_fds_.count("pids")) return keyed_value(read_v1("pids", "pids.events"), "max");
  return std::nullopt;
}

nlohmann::json RunCgroup::report() const {
  nlohmann::json j = {{"v2", v2_path_}, {"id", v2_id_}};
  if (limits_.pids_max) {
    j["pids"] = {{"max", *limits_.pids_max},
                 {"via", placement_.pids == "v2" ? "cgroup v2 pids.max" : "cgroup v1 pids.max"},
                 {"path", placement_.pids == "v2" ? v2_path_ : v1_paths_.at("pids")}};
  }
  if (limits_.memory_max) {
    j["memory"] = {{"max", *limits_.memory_max},
                   {"via", placement_.memory == "v2" ? "cgroup v2 memory.max, memory.oom.group"
                                                     : "cgroup v1 memory.limit_in_bytes"},
                   {"path", placement_.memory == "v2" ? v2_path_ : v1_paths_.at("memory")}};
  }
  return j;
}

void RunCgroup::remove_directories(const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    if (::access(dir.c_str(), F_OK) != 0) continue;
    // Kill what is left, then remove; retry briefly while the kernel releases the tasks.
    for (int attempt = 0; attempt < 400; ++attempt) {
      int err = 0;
      if (!write_text(dir + "/cgroup.kill", "1", err)) {
        std::istringstream in(slurp(dir + "/cgroup.procs"));
        pid_t p;
        while (in >> p)
          ::kill(p, SIGKILL);
      }
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

namespace {
// An announced line that names a file to unlink rather than a directory to remove.
constexpr const char* kUnlinkPrefix = "unlink:";
}  // namespace

CleanupWatchdog::CleanupWatchdog(std::vector<std::string> directories) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw_errno("cleanup watchdog: socketpair");
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("cleanup watchdog: fork");
  if (pid == 0) {
    // In the watchdog: keep only its end; survive the launcher's process group and terminal
    // signals; collect announced directories until EOF, i.e. until the launcher is gone.
    ::close(fds[0]);
    if (::dup2(fds[1], 3) < 0) _exit(1);
    ::close_range(4, ~0U, 0);
    ::setsid();
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU}) {
      ::signal(s, SIG_IGN);
    }
    ::prctl(PR_SET_NAME, "enclosure-wdog");
    std::vector<std::string> files;
    std::string pending;
    char buf[4096];
    while (true) {
      ssize_t n = ::read(3, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string entry = pending.substr(0, nl);
        if (entry.starts_with(kUnlinkPrefix)) {
          files.push_back(entry.substr(std::strlen(kUnlinkPrefix)));
        } else {
          directories.push_back(entry);
        }
        pending.erase(0, nl + 1);
      }
    }
    for (const std::string& file : files)
      ::unlink(file.c_str());
    // Children before parents would not matter here: every directory is a leaf.
    RunCgroup::remove_directories(directories);
    _exit(0);
  }
  ::close(fds[1]);
  keepalive_.reset(fds[0]);
  pid_ = pid;
}

void CleanupWatchdog::announce_file(const std::string& path) {
  announce(kUnlinkPrefix + path);
}

void CleanupWatchdog::announce(const std::string& directory) {
  std::string line = directory + "\n";
  if (!write_all(keepalive_.get(), line.data(), line.size())) {
    throw_errno("cleanup watchdog: announce " + directory);
  }
}

CleanupWatchdog::~CleanupWatchdog() {
  keepalive_.reset();
  if (pid_ > 0) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace launcher
