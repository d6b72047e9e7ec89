#include "policy/syscall_table.h"

#include <seccomp.h>

namespace policy {

const std::vector<SyscallGroup>& syscall_groups() {
  // Names are those of x86_64 (the native architecture this build supports); a test checks that
  // libseccomp resolves every one of them.
  // Not clang-formatted: one group per entry with its members packed reads as a table.
  // clang-format off
  static const std::vector<SyscallGroup> kGroups{
      // ---- groups the default profile denies --------------------------------------------
      {"@debug", "inspect or control other processes",
       {"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
        "process_madvise"}},
      {"@perf", "performance counters and kernel tracing", {"perf_event_open"}},
      {"@bpf", "load BPF programs", {"bpf"}},
      {"@io-uring", "asynchronous I/O rings (bypass system call filters)",
       {"io_uring_setup", "io_uring_enter", "io_uring_register"}},
      {"@keyring", "kernel key retention", {"keyctl", "add_key", "request_key"}},
      {"@userfaultfd", "user-space page fault handling (race amplifier)", {"userfaultfd"}},
      {"@kexec", "load a new kernel", {"kexec_load", "kexec_file_load"}},
      {"@module", "load or unload kernel modules",
       {"init_module", "finit_module", "delete_module", "create_module", "query_module",
        "get_kernel_syms"}},
      {"@mount", "change the mount table or root",
       {"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
        "move_mount", "open_tree", "mount_setattr"}},
      {"@swap", "enable or disable swap", {"swapon", "swapoff"}},
      {"@reboot", "reboot or halt", {"reboot"}},
      {"@handle", "open files by handle (escapes mount views)",
       {"open_by_handle_at", "name_to_handle_at"}},
      {"@setns", "join other namespaces", {"setns"}},
      {"@clock", "set the system clock",
       {"settimeofday", "clock_settime", "clock_adjtime", "adjtimex"}},
      {"@raw-io", "raw port and device I/O", {"ioperm", "iopl"}},
      {"@system", "host administration and obsolete calls",
       {"acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "nfsservctl", "_sysctl",
        "sysfs", "uselib", "ustat", "lookup_dcookie", "fanotify_init", "fanotify_mark"}},
      // ---- groups the strict profile allows ---------------------------------------------
      {"@basic-io", "read, write and close descriptors",
       {"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
        "preadv2", "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3",
        "sendfile", "copy_file_range", "splice", "tee"}},
      {"@file", "open, inspect and change files",
       {"open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx",
        "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
        "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir",
        "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
        "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
        "truncate", "ftruncate", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
        "fallocate", "fadvise64", "utime", "utimes", "utimensat", "futimesat", "umask", "flock",
        "fcntl", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
        "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
        "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
        "memfd_create"}},
      {"@memory", "map and manage memory",
       {"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
        "munlock", "mlock2", "mlockall", "munlockall", "membarrier", "get_mempolicy"}},
      {"@process", "create, run and wait for processes and threads",
       {"exit", "exit_group", "fork", "vfork", "execve", "execveat", "wait4", "waitid",
        "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
        "getresgid", "getgroups", "getpgrp", "getpgid", "setpgid", "getsid", "setsid", "kill",
        "tkill", "tgkill", "prctl", "arch_prctl", "set_tid_address", "set_robust_list",
        "get_robust_list", "rseq", "futex", "futex_waitv", "sched_yield", "sched_getaffinity",
        "sched_setaffinity", "sched_getparam", "sched_getscheduler", "sched_get_priority_max",
        "sched_get_priority_min", "sched_rr_get_interval", "getpriority", "setpriority",
        "capget", "uname", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times",
        "sysinfo", "pidfd_open", "pidfd_send_signal", "seccomp",
        "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        "getcpu"}},
      {"@signal", "send, receive and handle signals",
       {"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
        "rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "pause",
        "alarm", "signalfd", "signalfd4"}},
      {"@time", "read clocks, sleep and use timers",
       {"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
        "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
        "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime",
        "timerfd_gettime"}},
      {"@poll", "wait for descriptors; pipes and event descriptors",
       {"select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
        "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "pipe", "pipe2"}},
      {"@network", "sockets (families filtered separately)",
       {"connect", "accept", "accept4", "bind", "listen", "sendto", "recvfrom", "sendmsg",
        "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername",
        "setsockopt", "getsockopt"}},
      {"@random", "random numbers", {"getrandom"}},
      {"@filtered", "calls whose arguments are filtered (see below)",
       {"socket", "socketpair", "clone", "unshare", "ioctl", "personality", "mknod", "mknodat"}},
  };
  // clang-format on
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
      "@debug", "@perf", "@bpf",    "@io-uring", "@keyring", "@userfaultfd", "@kexec",  "@module",
      "@mount", "@swap", "@reboot", "@handle",   "@setns",   "@clock",       "@raw-io", "@system"};
  return kGroups;
}

const std::vector<const char*>& strict_profile_allowed_groups() {
  static const std::vector<const char*> kGroups{"@basic-io", "@file",    "@memory", "@process",
                                                "@signal",   "@time",    "@poll",   "@network",
                                                "@random",   "@filtered"};
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
