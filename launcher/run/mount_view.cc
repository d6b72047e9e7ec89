#include "launcher/run/mount_view.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "launcher/base/error.h"
#include "launcher/base/fd.h"
#include "launcher/run/host_path.h"
#include "policy/path.h"

namespace launcher {
namespace {

// Entries of a fresh /proc that reveal or change host state; masked with an empty file or an
// empty read-only directory (the lists Docker and runc use, plus kallsyms and kmsg). The whole
// /proc is mounted read-only, which covers /proc/sys, /proc/sysrq-trigger and the rest.
const char* const kProcMaskedFiles[] = {
    "kcore",       "keys",       "latency_stats", "timer_list",  "timer_stats",
    "sched_debug", "kallsyms",   "sysrq-trigger", "kmsg",        "config.gz",
    "kpagecount",  "kpageflags", "kpagecgroup",   "vmallocinfo", "slabinfo"};
const char* const kProcMaskedDirs[] = {"acpi", "asound", "scsi"};
const char* const kDevNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

int pivot_root(const char* new_root, const char* put_old) {
  return static_cast<int>(::syscall(SYS_pivot_root, new_root, put_old));
}

// A new, detached mount of a pseudo file system.
UniqueFd new_fs_mount(const char* fstype,
                      const std::vector<std::pair<std::string, std::string>>& options,
                      unsigned attrs, const std::string& what) {
  UniqueFd fs(::fsopen(fstype, FSOPEN_CLOEXEC));
  if (!fs) throw_errno(what + ": fsopen " + fstype);
  for (const auto& [key, value] : options) {
    int rc = value.empty()
                 ? ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
                 : ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    if (rc != 0)
      throw_errno(what + ": " + fstype + " option " + key + (value.empty() ? "" : "=" + value));
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    throw_errno(what + ": create " + fstype);
  }
  UniqueFd m(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
  if (!m) throw_errno(what + ": fsmount " + fstype);
  return m;
}

// A private copy of the mount(s) at `source_fd`, with `attrs` set on every mount of the copy.
UniqueFd clone_tree(int source_fd, bool recursive, unsigned attrs, const std::string& what) {
  unsigned flags =
      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  UniqueFd tree(::open_tree(source_fd, "", flags));
  if (!tree) throw_errno(what + ": open_tree");
  struct mount_attr attr {};
  attr.attr_set = attrs;
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                      sizeof attr) != 0) {
    throw_errno(what + ": mount_setattr");
  }
  return tree;
}

void attach(int tree_fd, int target_fd, const std::string& what) {
  if (::move_mount(tree_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) !=
      0) {
    throw_errno(what + ": move_mount");
  }
}

// Opens (creating when missing) `path` below `root_fd` as a directory or a file, never
// following a symlink; returns an O_PATH fd.
UniqueFd make_target(int root_fd, const std::string& path, bool dir, const std::string& what) {
  std::vector<std::string> segments = policy::path_segments(path);
  UniqueFd cur(::fcntl(root_fd, F_DUPFD_CLOEXEC, 3));
  std::string walked;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& name = segments[i];
    walked += "/" + name;
    bool last = i + 1 == segments.size();
    if (!last || dir) {
      if (::mkdirat(cur.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        if (errno == EROFS) {
          throw LaunchError(what + ": cannot create the mount point " + walked +
                            " inside a read-only part of the view; create it on the host");
        }
        throw_errno(what + ": mkdir " + walked);
      }
      UniqueFd next(
          ::openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
      if (!next) {
        if (errno == ENOTDIR || errno == ELOOP) {
          throw LaunchError(what + ": " + walked +
                            " is not a directory in the view (a symlink or "
                            "file is in the way)");
        }
        throw_errno(what + ": open " + walked);
      }
      cur = std::move(next);
      continue;
    }
    UniqueFd created(
        ::openat(cur.get(), name.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0444));
    if (!created && errno != EEXIST && errno != EACCES && errno != EISDIR && errno != EROFS) {
      throw_errno(what + ": create mount point " + walked);
    }
    UniqueFd next(::openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next) throw_errno(what + ": open " + walked);
    struct stat st {};
    if (::fstat(next.get(), &st) != 0 || S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode)) {
      throw LaunchError(what + ": " + walked + " is not a file in the view");
    }
    cur = std::move(next);
  }
  return cur;
}

void ensure_symlink(int root_fd, const std::string& location, const std::string& target,
                    const std::string& what) {
  UniqueFd parent = make_target(root_fd, policy::parent_path(location), true, what);
  std::string name = policy::path_segments(location).back();
  struct stat st {};
  if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISLNK(st.st_mode)) {
      throw LaunchError(what + ": " + location + " is a symlink on the host but not in the view");
    }
    return;  // already present (created earlier or part of a bound host directory)
  }
  if (::symlinkat(target.c_str(), parent.get(), name.c_str()) != 0) {
    throw_errno(what + ": symlink " + location + " -> " + target);
  }
}

bool is_dir(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

struct Mounted {
  std::string real;
  policy::MountKind kind;
  bool noexec = false;
};

// The deepest mount at or above `real`.
const Mounted* covering(const std::vector<Mounted>& mounted, const std::string& real) {
  const Mounted* best = nullptr;
  size_t best_len = 0;
  for (const Mounted& m : mounted) {
    if (policy::path_is_under(real, m.real) && (!best || m.real.size() >= best_len)) {
      best = &m;
      best_len = m.real.size();
    }
  }
  return best;
}

std::string describe(const policy::MountStep& s) {
  return s.origin + " (" + s.path + ")";
}

// Every mask is read-only and can hold nothing to run, no device and no set-id file.
constexpr unsigned kMaskAttrs =
    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

// Hides the directory at `target` under an empty, read-only tmpfs.
void mask_dir(int target_fd, const std::string& what) {
  UniqueFd m = new_fs_mount("tmpfs", {{"mode", "0555"}, {"size", "4k"}}, kMaskAttrs, what);
  attach(m.get(), target_fd, what);
}

// Hides the file at `target` under a read-only bind of the empty mask file.
void mask_file(int empty_file_fd, int target_fd, const std::string& what) {
  UniqueFd tree = clone_tree(empty_file_fd, false, kMaskAttrs, what);
  attach(tree.get(), target_fd, what);
}

// A tmpfs the agent can write to: world-writable with the sticky bit, owned by the agent's uid;
// noexec, so that nothing written there runs or is mapped executable.
UniqueFd new_agent_tmpfs(const ViewOptions& options, const std::string& what) {
  return new_fs_mount("tmpfs",
                      {{"mode", "1777"},
                       {"uid", std::to_string(options.owner_uid)},
                       {"gid", std::to_string(options.owner_gid)}},
                      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, what);
}

// Nothing done in this namespace may propagate back to the host's mount table.
void make_mounts_private() {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    throw_errno("mount view: make / private");
  }
}

// The staging area once the process's root is the staging tmpfs, as O_PATH fds.
struct Staging {
  UniqueFd host;        // the host's root, at /oldroot
  UniqueFd root;        // the view's root, at /newroot
  UniqueFd empty_file;  // /.empty, the source of every file mask
};

// A staging tmpfs over /tmp (in this namespace only) holds the new root and, after the first
// pivot_root, the old root, so that host paths are reached through /oldroot and the staging
// mount shadows none of them. The new root starts as an empty tmpfs.
Staging pivot_into_staging() {
  const char* staging_dir = ::access("/tmp", F_OK) == 0 ? "/tmp" : "/mnt";
  {
    UniqueFd staging = new_fs_mount("tmpfs", {{"mode", "0700"}},
                                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "mount view: staging");
    if (::move_mount(staging.get(), "", AT_FDCWD, staging_dir, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      throw_errno(std::string("mount view: staging tmpfs on ") + staging_dir);
    }
  }
  if (::chdir(staging_dir) != 0) throw_errno("mount view: chdir staging");
  if (::mkdir("newroot", 0755) != 0 || ::mkdir("oldroot", 0755) != 0) {
    throw_errno("mount view: mkdir newroot/oldroot");
  }
  {
    UniqueFd root_mount = new_fs_mount("tmpfs", {{"mode", "0755"}},
                                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "mount view: root");
    if (::move_mount(root_mount.get(), "", AT_FDCWD, "newroot", MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      throw_errno("mount view: root tmpfs");
    }
  }
  // An empty file that masks files.
  {
    UniqueFd empty(::open(".empty", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0000));
    if (!empty) throw_errno("mount view: create mask file");
  }
  if (pivot_root(".", "oldroot") != 0) throw_errno("mount view: pivot_root into staging");
  if (::chdir("/") != 0) throw_errno("mount view: chdir /");
  Staging staging;
  staging.host.reset(::open("/oldroot", O_PATH | O_DIRECTORY | O_CLOEXEC));
  staging.root.reset(::open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC));
  staging.empty_file.reset(::open("/.empty", O_PATH | O_CLOEXEC));
  if (!staging.host || !staging.root || !staging.empty_file) {
    throw_errno("mount view: open staging directories");
  }
  return staging;
}

// A step with the real host object it names, opened, and the symlinks on the way to it.
struct ResolvedStep {
  policy::MountStep step;
  ResolvedHostPath host;
};

// The real paths of the writable grants: no step may then follow a symlink inside one of them
// (an agent could have planted it), whichever order the steps come in.
std::vector<std::string> writable_real_paths(int host_fd,
                                             const std::vector<policy::MountStep>& steps) {
  std::vector<std::string> untrusted;
  for (const policy::MountStep& step : steps) {
    if (step.kind != policy::MountKind::bind_write) continue;
    ResolvedHostPath r = resolve_host_path(host_fd, step.path, true, untrusted);
    if (r.exists) untrusted.push_back(r.real);
  }
  return untrusted;
}

// Resolves every step on the host first: which real object, through which symlinks. Steps with
// nothing to mount go to `result.absent`; the others record their real path in
// `result.real_paths`.
std::vector<ResolvedStep> resolve_steps(int host_fd, const std::vector<policy::MountStep>& steps,
                                        ViewResult& result) {
  std::vector<std::string> untrusted = writable_real_paths(host_fd, steps);
  std::vector<ResolvedStep> items;
  for (const policy::MountStep& step : steps) {
    bool follow = step.kind != policy::MountKind::mask;
    ResolvedHostPath r = resolve_host_path(host_fd, step.path, follow, untrusted);
    // A tmpfs needs nothing from the host: its mount point is created in the view.
    if (!r.exists && step.kind != policy::MountKind::tmpfs) {
      result.absent.push_back(describe(step) + ": not present on this host");
      continue;
    }
    if (step.kind == policy::MountKind::mask && r.is_symlink) {
      result.absent.push_back(describe(step) + ": a symlink; nothing to hide");
      continue;
    }
    result.real_paths[step.path] = r.real;
    items.push_back({step, std::move(r)});
  }
  return items;
}

// Shallower real paths first, so that a mount never hides one made under it earlier; at the
// same depth masks come last. Otherwise the manifest's order is kept.
void order_parents_first(std::vector<ResolvedStep>& items) {
  std::stable_sort(items.begin(), items.end(), [](const ResolvedStep& a, const ResolvedStep& b) {
    size_t da = policy::path_segments(a.host.real).size(),
           db = policy::path_segments(b.host.real).size();
    if (da != db) return da < db;
    return (a.step.kind != policy::MountKind::mask) && (b.step.kind == policy::MountKind::mask);
  });
}

// Binds a read, write or tool step's host object into the view; false when nothing was mounted
// (a tool already reachable and executable through a grant). A tool inside a noexec write grant
// is bound over itself, read-only and exec. `root` is reopened when the bind covers it.
bool bind_grant(const ResolvedStep& item, const Mounted* above, UniqueFd& root,
                const std::string& what) {
  const policy::MountStep& step = item.step;
  const std::string& real = item.host.real;
  if (step.kind == policy::MountKind::tool && above &&
      (above->kind == policy::MountKind::bind_read ||
       (above->kind == policy::MountKind::bind_write && !above->noexec))) {
    return false;  // already reachable and executable through a grant
  }
  if (above && above->kind == policy::MountKind::mask) {
    throw LaunchError(what + ": lies under a hidden path");
  }
  bool dir = is_dir(item.host.fd.get());
  unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (step.kind != policy::MountKind::bind_write) attrs |= MOUNT_ATTR_RDONLY;
  // Write grants are noexec; a tree tool's directory (a write grant itself, or its own bind
  // under one, mounted after it) is not.
  if (step.noexec) attrs |= MOUNT_ATTR_NOEXEC;
  UniqueFd target = make_target(root.get(), real, dir, what);
  UniqueFd tree = clone_tree(item.host.fd.get(), dir, attrs, what);
  attach(tree.get(), target.get(), what);
  if (real == "/") {
    // The grant covers the view's root: every later step must go into the granted tree
    // mounted there, not into the tmpfs it now hides (where it would be invisible).
    root.reset(::open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno(what + ": reopen the view's root");
  }
  return true;
}

// Hides a `hide` step's host object: a directory under an empty tmpfs, a file under the empty
// mask file.
void mount_mask(const ResolvedStep& item, const Staging& staging, const std::string& what) {
  bool dir = is_dir(item.host.fd.get());
  UniqueFd target = make_target(staging.root.get(), item.host.real, dir, what);
  if (dir) {
    mask_dir(target.get(), what);
  } else {
    mask_file(staging.empty_file.get(), target.get(), what);
  }
}

// Mounts the resolved steps into the view in order, recreating in the view the host symlinks
// each one was reached through.
void mount_steps(const std::vector<ResolvedStep>& items, Staging& staging,
                 const ViewOptions& options) {
  std::vector<Mounted> mounted;
  for (const ResolvedStep& item : items) {
    const policy::MountStep& step = item.step;
    const std::string& real = item.host.real;
    std::string what = "mount view: " + describe(step);
    for (const auto& [location, target] : item.host.links)
      ensure_symlink(staging.root.get(), location, target, what);
    const Mounted* above = covering(mounted, real);
    if (above && above->real == real && above->kind == step.kind) continue;  // same object twice
    if (above && above->real == real) {
      throw LaunchError(what + ": " + real +
                        " is granted twice with different access (through a "
                        "symlink); grant it once");
    }
    switch (step.kind) {
      case policy::MountKind::bind_read:
      case policy::MountKind::bind_write:
      case policy::MountKind::tool:
        if (!bind_grant(item, above, staging.root, what)) continue;
        break;
      case policy::MountKind::tmpfs: {
        UniqueFd target = make_target(staging.root.get(), real, true, what);
        UniqueFd m = new_agent_tmpfs(options, what);
        attach(m.get(), target.get(), what);
        break;
      }
      case policy::MountKind::mask:
        mount_mask(item, staging, what);
        break;
    }
    mounted.push_back({real, step.kind, step.noexec});
  }
}

// A fresh, read-only /proc of the enclosure's pid namespace, sensitive entries masked.
void mount_proc(const Staging& staging) {
  std::string what = "mount view: /proc";
  UniqueFd target = make_target(staging.root.get(), "/proc", true, what);
  UniqueFd m = new_fs_mount(
      "proc", {}, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
      what);
  attach(m.get(), target.get(), what);
  UniqueFd proc(::openat(staging.root.get(), "proc", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc) throw_errno(what + ": open");
  for (const char* name : kProcMaskedFiles) {
    UniqueFd f(::openat(proc.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!f) continue;  // not in this kernel
    UniqueFd tree = clone_tree(staging.empty_file.get(), false, kMaskAttrs, what);
    attach(tree.get(), f.get(), what + "/" + name);
  }
  for (const char* name : kProcMaskedDirs) {
    UniqueFd d(::openat(proc.get(), name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
    if (!d) continue;
    UniqueFd m2 = new_fs_mount("tmpfs", {{"mode", "0555"}, {"size", "4k"}}, kMaskAttrs, what);
    attach(m2.get(), d.get(), what + "/" + name);
  }
}

// A minimal /dev: the harmless character devices, a private devpts, a private /dev/shm.
void mount_dev(const Staging& staging, const ViewOptions& options) {
  std::string what = "mount view: /dev";
  int root = staging.root.get();
  UniqueFd target = make_target(root, "/dev", true, what);
  UniqueFd m = new_fs_mount("tmpfs", {{"mode", "0755"}, {"size", "64k"}},
                            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, what);
  attach(m.get(), target.get(), what);
  for (const char* name : kDevNodes) {
    std::string node = std::string("/dev/") + name;
    ResolvedHostPath source = resolve_host_path(staging.host.get(), node, false, {});
    if (!source.exists || source.is_symlink) {
      throw LaunchError(what + ": the host has no " + node);
    }
    UniqueFd t = make_target(root, node, false, what);
    UniqueFd tree = clone_tree(source.fd.get(), false, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                               what + "/" + name);
    attach(tree.get(), t.get(), what + "/" + name);
  }
  UniqueFd pts_target = make_target(root, "/dev/pts", true, what);
  UniqueFd pts =
      new_fs_mount("devpts", {{"newinstance", ""}, {"ptmxmode", "0666"}, {"mode", "0620"}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, what + "/pts");
  attach(pts.get(), pts_target.get(), what + "/pts");
  UniqueFd shm_target = make_target(root, "/dev/shm", true, what);
  UniqueFd shm = new_agent_tmpfs(options, what + "/shm");
  attach(shm.get(), shm_target.get(), what + "/shm");
  ensure_symlink(root, "/dev/ptmx", "pts/ptmx", what);
  ensure_symlink(root, "/dev/fd", "/proc/self/fd", what);
  ensure_symlink(root, "/dev/stdin", "/proc/self/fd/0", what);
  ensure_symlink(root, "/dev/stdout", "/proc/self/fd/1", what);
  ensure_symlink(root, "/dev/stderr", "/proc/self/fd/2", what);
}

// Detaches the host, makes the view's root read-only, and makes the view the process's root;
// the staging fds are closed first so that nothing keeps the old root reachable.
void pivot_into_view(Staging staging) {
  staging.host.reset();
  staging.empty_file.reset();
  if (::umount2("/oldroot", MNT_DETACH) != 0) throw_errno("mount view: detach the old root");
  struct mount_attr ro {};
  ro.attr_set = MOUNT_ATTR_RDONLY;
  if (::mount_setattr(staging.root.get(), "", AT_EMPTY_PATH, &ro, sizeof ro) != 0) {
    throw_errno("mount view: make the root read-only");
  }
  staging.root.reset();
  if (::chdir("/newroot") != 0) throw_errno("mount view: chdir /newroot");
  if (pivot_root(".", ".") != 0) throw_errno("mount view: pivot_root into the view");
  if (::umount2(".", MNT_DETACH) != 0) throw_errno("mount view: detach the staging root");
  if (::chdir("/") != 0) throw_errno("mount view: chdir /");
}

}  // namespace

std::string ViewResult::view_path(const std::string& manifest_path) const {
  const std::pair<const std::string, std::string>* best = nullptr;
  for (const auto& entry : real_paths) {
    if (policy::path_is_under(manifest_path, entry.first) &&
        (!best || entry.first.size() > best->first.size())) {
      best = &entry;
    }
  }
  if (!best) return {};
  std::string rest = manifest_path.substr(best->first.size() == 1 ? 0 : best->first.size());
  if (best->second == "/") return rest.empty() ? "/" : rest;
  return best->second + rest;
}

// Collects and resolves every step, sorts them, then applies them. The fixed /proc and /dev come
// after the manifest's steps, so that no grant hides them, and the view's root turns read-only
// only once everything is mounted into it (mount points are created in it until then).
ViewResult build_mount_view(const std::vector<policy::MountStep>& steps,
                            const ViewOptions& options) {
  ViewResult result;
  make_mounts_private();
  Staging staging = pivot_into_staging();
  std::vector<ResolvedStep> items = resolve_steps(staging.host.get(), steps, result);
  order_parents_first(items);
  mount_steps(items, staging, options);
  mount_proc(staging);
  mount_dev(staging, options);
  pivot_into_view(std::move(staging));
  return result;
}

}  // namespace launcher
