// The system call groups of policy/syscall_table.cc against three fixed points: the protection the
// two built-in profiles gave before the groups followed systemd's (a later edit may add to it, not
// take from it), the naming contract of policy/MANIFEST.md (a systemd name has systemd's members,
// a group of our own has a name systemd does not use), and the group table of MANIFEST.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/compile.h"
#include "policy/load.h"
#include "policy/syscall_table.h"

namespace {

using nlohmann::json;
using Names = std::set<std::string>;

Names split(const std::string& words) {
  Names out;
  std::istringstream in(words);
  for (std::string w; in >> w;)
    out.insert(w);
  return out;
}

// What the `default` profile denied before its groups followed systemd v259 (16 groups).
const Names& denied_by_default_before() {
  static const Names kNames = split(
      "_sysctl acct add_key adjtimex bpf chroot clock_adjtime clock_settime create_module "
      "delete_module fanotify_init fanotify_mark finit_module fsconfig fsmount fsopen fspick "
      "get_kernel_syms init_module io_uring_enter io_uring_register io_uring_setup ioperm iopl "
      "kcmp kexec_file_load kexec_load keyctl lookup_dcookie mount mount_setattr move_mount "
      "name_to_handle_at nfsservctl open_by_handle_at open_tree perf_event_open pidfd_getfd "
      "pivot_root process_madvise process_vm_readv process_vm_writev ptrace query_module "
      "quotactl quotactl_fd reboot request_key setns settimeofday swapoff swapon sysfs syslog "
      "umount2 uselib userfaultfd ustat vhangup");
  return kNames;
}

// Calls `default` denies since then, each reviewed: no agent needs them. The rest of systemd's
// @obsolete (unimplemented on x86_64 kernels: ENOSYS before, EPERM now) and open_tree_attr of
// systemd's @mount (listed when libseccomp knows it; open_tree with mount attributes).
const Names& denied_by_default_since() {
  static const Names kNames =
      split("afs_syscall getpmsg putpmsg security tuxcall vserver open_tree_attr");
  return kNames;
}

// What the `strict` profile allowed before (10 groups).
const Names& allowed_by_strict_before() {
  static const Names kNames = split(
      "accept accept4 access alarm arch_prctl bind brk capget chdir chmod chown clock_getres "
      "clock_gettime clock_nanosleep clone close close_range connect copy_file_range creat dup "
      "dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd "
      "eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fchdir "
      "fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork "
      "fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex futex_waitv futimesat getcpu "
      "getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer get_mempolicy "
      "getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresuid "
      "getrlimit get_robust_list getrusage getsid getsockname getsockopt gettid gettimeofday "
      "getuid getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch ioctl kill "
      "landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lgetxattr link "
      "linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise membarrier "
      "memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mprotect mremap "
      "msync munlock munlockall munmap nanosleep newfstatat open openat openat2 pause personality "
      "pidfd_open pidfd_send_signal pipe pipe2 poll ppoll prctl pread64 preadv preadv2 prlimit64 "
      "pselect6 pwrite64 pwritev pwritev2 read readlink readlinkat readv recvfrom recvmmsg recvmsg "
      "removexattr rename renameat renameat2 rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask "
      "rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo "
      "sched_getaffinity sched_getparam sched_get_priority_max sched_get_priority_min "
      "sched_getscheduler sched_rr_get_interval sched_setaffinity sched_yield seccomp select "
      "sendfile sendmmsg sendmsg sendto setitimer setpgid setpriority setrlimit set_robust_list "
      "setsid setsockopt set_tid_address setxattr shutdown sigaltstack signalfd signalfd4 socket "
      "socketpair splice stat statfs statx symlink symlinkat sync sync_file_range syncfs sysinfo "
      "tee tgkill time timer_create timer_delete timerfd_create timerfd_gettime timerfd_settime "
      "timer_getoverrun timer_gettime timer_settime times tkill truncate umask uname unlink "
      "unlinkat unshare utime utimensat utimes vfork wait4 waitid write writev");
  return kNames;
}

// Every group name of systemd v259's syscall_filter_sets[].
const Names& systemd_group_names() {
  static const Names kNames = split(
      "@default @aio @basic-io @chown @clock @cpu-emulation @debug @file-system @io-event @ipc "
      "@keyring @memlock @module @mount @network-io @obsolete @pkey @privileged @process @raw-io "
      "@reboot @resources @sandbox @setuid @signal @swap @sync @system-service @timer @known");
  return kNames;
}

policy::SeccompProfile builtin_profile(const std::string& name) {
  json doc = {{"apiVersion", "enclosure/v1"},
              {"metadata", {{"name", "syscall-table-test"}}},
              {"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}}}},
              {"syscalls", {{"profile", name}}}};
  policy::LoadResult r = policy::load_manifest(doc.dump());
  EXPECT_TRUE(r.manifest) << doc.dump(2);
  return policy::compile_seccomp(r.manifest ? r.manifest->syscalls : policy::Syscalls{});
}

Names denied_outright(const policy::SeccompProfile& p) {
  Names out;
  for (const policy::SeccompRule& r : p.rules) {
    if (r.verdict == policy::SeccompVerdict::deny && r.conditions.empty()) out.insert(r.syscall);
  }
  return out;
}

Names minus(const Names& a, const Names& b) {
  Names out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

std::string joined(const Names& names) {
  std::string out;
  for (const std::string& n : names)
    out += (out.empty() ? "" : " ") + n;
  return out;
}

TEST(SyscallTable, DefaultProfileDeniesAtLeastWhatItDeniedBefore) {
  policy::SeccompProfile p = builtin_profile("default");
  Names denied = denied_outright(p);
  EXPECT_EQ(joined(minus(denied_by_default_before(), denied)), "")
      << "the default profile no longer denies these";
  Names reviewed = denied_by_default_before();
  reviewed.insert(denied_by_default_since().begin(), denied_by_default_since().end());
  EXPECT_EQ(joined(minus(denied, reviewed)), "")
      << "newly denied by default: review that agents do not need them, then list them above";
  std::vector<std::string> allowed = policy::allowed_syscalls(p);
  for (const std::string& name : denied_by_default_before()) {
    EXPECT_FALSE(std::binary_search(allowed.begin(), allowed.end(), name)) << name;
  }
}

TEST(SyscallTable, StrictProfileAllowsWhatItAllowedBeforeAndNothingMore) {
  std::vector<std::string> list = policy::allowed_syscalls(builtin_profile("strict"));
  Names allowed(list.begin(), list.end());
  EXPECT_EQ(joined(minus(allowed_by_strict_before(), allowed)), "")
      << "the strict profile no longer allows these";
  EXPECT_EQ(joined(minus(allowed, allowed_by_strict_before())), "")
      << "newly allowed by strict: review them, then list them above";
  for (const char* dangerous : {"clone3", "setns", "open_tree", "ptrace", "process_vm_readv"}) {
    EXPECT_FALSE(allowed.count(dangerous)) << dangerous;
  }
}

TEST(SyscallTable, ASystemdNameHasSystemdsMembersAndOurGroupsHaveOurOwnNames) {
  for (const policy::SyscallGroup& g : policy::syscall_groups()) {
    bool systemd_name = systemd_group_names().count(g.name) > 0;
    if (g.origin == policy::GroupOrigin::systemd) {
      EXPECT_TRUE(systemd_name) << g.name << " is marked systemd's, but systemd has no such group";
    } else {
      EXPECT_FALSE(systemd_name) << g.name << " is systemd's name for another member list";
      EXPECT_TRUE(g.skipped.empty()) << g.name << ": our own groups list x86_64 calls only";
    }
  }
  // Spot checks of the transcription (systemd v259 on x86_64).
  auto members = [](const char* group) {
    const policy::SyscallGroup* g = policy::find_syscall_group(group);
    return g ? joined(Names(g->syscalls.begin(), g->syscalls.end())) : std::string("(none)");
  };
  EXPECT_EQ(members("@debug"), "lookup_dcookie perf_event_open pidfd_getfd ptrace");
  EXPECT_EQ(members("@reboot"), "kexec_file_load kexec_load reboot");
  EXPECT_EQ(members("@module"), "delete_module finit_module init_module");
  EXPECT_EQ(members("@signal"),
            "rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait sigaltstack "
            "signalfd signalfd4");
  const policy::SyscallGroup* debug = policy::find_syscall_group("@debug");
  ASSERT_NE(debug, nullptr);
  EXPECT_NE(std::find(debug->skipped.begin(), debug->skipped.end(), std::string_view("rtas")),
            debug->skipped.end());
}

TEST(SyscallTable, DefaultDeniedGroupsShareNoMember) {
  // A denial's origin names the one group its call belongs to.
  std::map<std::string, std::string> group_of;
  for (const char* group : policy::default_profile_denied_groups()) {
    const policy::SyscallGroup* g = policy::find_syscall_group(group);
    ASSERT_NE(g, nullptr) << group;
    for (const char* name : g->syscalls) {
      auto [it, inserted] = group_of.emplace(name, group);
      EXPECT_TRUE(inserted) << name << " is in " << it->second << " and " << group;
    }
  }
}

std::string read_manifest_reference() {
  std::ifstream in(std::filesystem::path(ENCLOSURE_SOURCE_DIR) / "policy/MANIFEST.md");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(SyscallTable, TheManifestReferenceListsTheDefaultProfilesGroups) {
  // Rows "| `@group` | member, member | origin |" of policy/MANIFEST.md.
  std::string text = read_manifest_reference();
  std::map<std::string, std::string> rows;
  const std::regex row(R"(\n\| `(@[a-z-]+)` \| ([a-z0-9_, ]+) \|)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), row); it != std::sregex_iterator();
       ++it) {
    rows[(*it)[1]] = (*it)[2];
  }
  for (const char* group : policy::default_profile_denied_groups()) {
    const policy::SyscallGroup* g = policy::find_syscall_group(group);
    ASSERT_NE(g, nullptr) << group;
    std::string members;
    for (const char* name : g->syscalls)
      members += (members.empty() ? "" : ", ") + std::string(name);
    ASSERT_TRUE(rows.count(group)) << "policy/MANIFEST.md has no row for " << group;
    EXPECT_EQ(rows[group], members) << group;
  }
}

}  // namespace
