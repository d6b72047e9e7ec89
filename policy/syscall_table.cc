#include "policy/syscall_table.h"

#include <seccomp.h>

#include <span>

namespace policy {

namespace {

// Not clang-formatted: the member lists are packed and read as tables.
// clang-format off

// ---- systemd's groups -------------------------------------------------------------------------
// Transcribed from systemd v259 (tag v259, commit 9ca433482f2281d71718718705ca8cd3bf562ad6),
// src/shared/seccomp-util.c, syscall_filter_sets[]: every member, in systemd's order, including
// other architectures' names (resolve_members() leaves those out). None of the groups used here
// nests another group.
constexpr const char* kSystemdDebug[] = {
    "lookup_dcookie", "perf_event_open", "pidfd_getfd", "ptrace", "rtas", "s390_runtime_instr",
    "sys_debug_setcontext"
};
constexpr const char* kSystemdKeyring[] = {
    "add_key", "keyctl", "request_key"
};
constexpr const char* kSystemdReboot[] = {
    "kexec_file_load", "kexec_load", "reboot"
};
constexpr const char* kSystemdModule[] = {
    "delete_module", "finit_module", "init_module"
};
constexpr const char* kSystemdObsolete[] = {
    "_sysctl", "afs_syscall", "bdflush", "break", "create_module", "ftime", "get_kernel_syms",
    "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil", "putpmsg", "query_module",
    "security", "sgetmask", "ssetmask", "stime", "stty", "sysfs", "tuxcall", "ulimit", "uselib",
    "ustat", "vserver"
};
constexpr const char* kSystemdMount[] = {
    "chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount",
    "open_tree_attr", "pivot_root", "umount", "umount2"
};
constexpr const char* kSystemdSwap[] = {
    "swapoff", "swapon"
};
constexpr const char* kSystemdClock[] = {
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
    "settimeofday"
};
constexpr const char* kSystemdRawIo[] = {
    "ioperm", "iopl", "pciconfig_iobase", "pciconfig_read", "pciconfig_write",
    "s390_pci_mmio_read", "s390_pci_mmio_write"
};
constexpr const char* kSystemdBasicIo[] = {
    "_llseek", "close", "close_range", "dup", "dup2", "dup3", "llseek", "lseek", "pread64",
    "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readv", "write", "writev"
};
constexpr const char* kSystemdSignal[] = {
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "sigaction", "sigaltstack", "signal", "signalfd", "signalfd4",
    "sigpending", "sigprocmask", "sigsuspend"
};

// ---- groups of this project's own (names systemd does not use) --------------------------------
// Names are those of x86_64; a test checks that libseccomp numbers every one of them.
constexpr const char* kCrossProcess[] = {
    "process_vm_readv", "process_vm_writev", "kcmp", "process_madvise"
};
constexpr const char* kBpf[] = {"bpf"};
constexpr const char* kIoUring[] = {"io_uring_setup", "io_uring_enter", "io_uring_register"};
constexpr const char* kUserfaultfd[] = {"userfaultfd"};
constexpr const char* kDetachedMount[] = {"open_tree"};
constexpr const char* kHandle[] = {"open_by_handle_at", "name_to_handle_at"};
constexpr const char* kSetns[] = {"setns"};
constexpr const char* kSystem[] = {
    "acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "nfsservctl", "fanotify_init",
    "fanotify_mark"
};
constexpr const char* kFdCopy[] = {"sendfile", "copy_file_range", "splice", "tee"};
constexpr const char* kFile[] = {
    "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx",
    "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
    "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
    "truncate", "ftruncate", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
    "fallocate", "fadvise64", "utime", "utimes", "utimensat", "futimesat", "umask", "flock",
    "fcntl", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "memfd_create"
};
constexpr const char* kMemory[] = {
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
    "munlock", "mlock2", "mlockall", "munlockall", "membarrier", "get_mempolicy"
};
constexpr const char* kProcessesAndThreads[] = {
    "exit", "exit_group", "fork", "vfork", "execve", "execveat", "wait4", "waitid", "getpid",
    "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "getgroups", "getpgrp", "getpgid", "setpgid", "getsid", "setsid", "kill", "tkill", "tgkill",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigreturn", "pause", "prctl", "arch_prctl",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex", "futex_waitv",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "getpriority", "setpriority", "capget", "uname", "getrlimit",
    "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "pidfd_open", "pidfd_send_signal",
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "getcpu"
};
constexpr const char* kTime[] = {
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime"
};
constexpr const char* kPoll[] = {
    "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "pipe", "pipe2"
};
constexpr const char* kNetwork[] = {
    "connect", "accept", "accept4", "bind", "listen", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername", "setsockopt", "getsockopt"
};
constexpr const char* kRandom[] = {"getrandom"};
constexpr const char* kFiltered[] = {
    "socket", "socketpair", "clone", "unshare", "ioctl", "personality", "mknod", "mknodat"
};

struct GroupDefinition {
  const char* name;
  const char* description;
  GroupOrigin origin;
  std::span<const char* const> members;
};

constexpr GroupOrigin kSystemd = GroupOrigin::systemd;
constexpr GroupOrigin kOwn = GroupOrigin::enclosure;

constexpr GroupDefinition kDefinitions[] = {
    // ---- groups the default profile denies (no two share a member) ---------------------------
    {"@debug", "debugging, tracing and performance monitoring", kSystemd, kSystemdDebug},
    {"@cross-process", "read, write, compare or advise another process's memory and descriptors",
     kOwn, kCrossProcess},
    {"@bpf", "load BPF programs", kOwn, kBpf},
    {"@io-uring", "asynchronous I/O rings (bypass system call filters)", kOwn, kIoUring},
    {"@keyring", "kernel key retention", kSystemd, kSystemdKeyring},
    {"@userfaultfd", "user-space page fault handling (race amplifier)", kOwn, kUserfaultfd},
    {"@reboot", "reboot, halt or load a new kernel (kexec)", kSystemd, kSystemdReboot},
    {"@module", "load or unload kernel modules", kSystemd, kSystemdModule},
    {"@obsolete", "obsolete, unusual or unimplemented calls", kSystemd, kSystemdObsolete},
    {"@mount", "change the mount table or root", kSystemd, kSystemdMount},
    {"@detached-mount", "open or clone a mount tree as a detached mount", kOwn, kDetachedMount},
    {"@swap", "enable or disable swap", kSystemd, kSystemdSwap},
    {"@handle", "open files by handle (escapes mount views)", kOwn, kHandle},
    {"@setns", "join other namespaces", kOwn, kSetns},
    {"@clock", "set the system clock", kSystemd, kSystemdClock},
    {"@raw-io", "raw port and device I/O", kSystemd, kSystemdRawIo},
    {"@system", "host administration: accounting, quotas, kernel log, fanotify", kOwn, kSystem},
    // ---- groups the strict profile allows ----------------------------------------------------
    {"@basic-io", "read, write, seek and close descriptors", kSystemd, kSystemdBasicIo},
    {"@fd-copy", "copy between descriptors inside the kernel", kOwn, kFdCopy},
    {"@file", "open, inspect and change files", kOwn, kFile},
    {"@memory", "map and manage memory", kOwn, kMemory},
    {"@processes-and-threads", "create, run, signal and wait for processes and threads", kOwn,
     kProcessesAndThreads},
    {"@signal", "handle, mask and wait for signals", kSystemd, kSystemdSignal},
    {"@time", "read clocks, sleep and use timers", kOwn, kTime},
    {"@poll", "wait for descriptors; pipes and event descriptors", kOwn, kPoll},
    {"@network", "sockets (families filtered separately)", kOwn, kNetwork},
    {"@random", "random numbers", kOwn, kRandom},
    {"@filtered", "calls whose arguments are filtered (see below)", kOwn, kFiltered},
};

// clang-format on

// A member the profiles can apply: a system call libseccomp numbers on the native architecture
// (x86_64). Other architectures' calls resolve to negative pseudo numbers, unknown names to
// __NR_SCMP_ERROR; both are skipped, as systemd skips them.
bool native_syscall(const char* name) {
  return seccomp_syscall_resolve_name(name) >= 0;
}

SyscallGroup resolve_members(const GroupDefinition& d) {
  SyscallGroup g{d.name, d.description, d.origin, {}, {}};
  for (const char* name : d.members) {
    (native_syscall(name) ? g.syscalls : g.skipped).push_back(name);
  }
  return g;
}

}  // namespace

const std::vector<SyscallGroup>& syscall_groups() {
  static const std::vector<SyscallGroup> kGroups = [] {
    std::vector<SyscallGroup> groups;
    for (const GroupDefinition& d : kDefinitions)
      groups.push_back(resolve_members(d));
    return groups;
  }();
  return kGroups;
}

const SyscallGroup* find_syscall_group(std::string_view name) {
  for (const SyscallGroup& g : syscall_groups()) {
    if (name == g.name) return &g;
  }
  return nullptr;
}

const std::vector<const char*>& default_profile_denied_groups() {
  static const std::vector<const char*> kGroups{
      "@debug",  "@cross-process", "@bpf",      "@io-uring", "@keyring",        "@userfaultfd",
      "@reboot", "@module",        "@obsolete", "@mount",    "@detached-mount", "@swap",
      "@handle", "@setns",         "@clock",    "@raw-io",   "@system"};
  return kGroups;
}

const std::vector<const char*>& strict_profile_allowed_groups() {
  static const std::vector<const char*> kGroups{
      "@basic-io", "@fd-copy", "@file",   "@memory",  "@processes-and-threads", "@signal", "@time",
      "@poll",     "@network", "@random", "@filtered"};
  return kGroups;
}

bool known_syscall(const std::string& name) {
  return seccomp_syscall_resolve_name(name.c_str()) != __NR_SCMP_ERROR;
}

const std::vector<FilteredSyscall>& filtered_syscalls() {
  static const std::vector<FilteredSyscall> kFiltered{
      {"socket", ArgumentFilter::socket_family,
       "only unix, inet, inet6 and netlink-route sockets; no raw, packet or ICMP sockets"},
      {"socketpair", ArgumentFilter::socketpair_family, "only unix socket pairs"},
      {"clone", ArgumentFilter::namespace_flags, "no new namespaces"},
      {"unshare", ArgumentFilter::namespace_flags, "no new namespaces"},
      {"ioctl", ArgumentFilter::tty_injection,
       "no terminal input injection (TIOCSTI, TIOCLINUX), whatever the upper 32 bits"},
      {"personality", ArgumentFilter::personality_query, "personality may be queried, not changed"},
      {"mknod", ArgumentFilter::device_nodes, "files, fifos and sockets, no device nodes"},
      {"mknodat", ArgumentFilter::device_nodes, "files, fifos and sockets, no device nodes"},
  };
  return kFiltered;
}

}  // namespace policy
