// The escape suite: attack programs (tests/escape/attack_*.c) run inside an enclosure. Each test
// asserts that the attack failed (its errno, or the expected kill), that a canary outside is
// untouched (a host file, a loopback listener, a victim process), and that the matching event
// was logged.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "harness.h"

using harness::base_manifest;
using harness::LoopbackListener;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

std::string attack(const std::string& name) {
  return std::string(ATTACK_DIR) + "/attack_" + name;
}

json escape_manifest(const std::string& name) {
  json m =
      base_manifest(name, {attack("fs"), attack("syscalls"), attack("net"), attack("process")});
  m["budgets"]["wall_clock"] = "60s";
  return m;
}

// The attack programs' JSON lines, by attack name (the last one of each name wins).
std::map<std::string, json> outcomes(const RunResult& r) {
  std::map<std::string, json> out;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    try {
      json j = json::parse(line);
      if (j.contains("attack")) out[j["attack"]] = j;
    } catch (const std::exception&) {
    }
  }
  return out;
}

// Asserts the attack ran and failed with one of `errnos`.
void expect_blocked(const std::map<std::string, json>& o, const std::string& name,
                    std::initializer_list<const char*> errnos, const RunResult& r) {
  auto it = o.find(name);
  ASSERT_NE(it, o.end()) << "attack " << name << " did not report\n" << r.describe();
  EXPECT_FALSE(it->second["succeeded"].get<bool>()) << name << " succeeded\n" << r.describe();
  std::string e = it->second["error"];
  bool expected = false;
  for (const char* want : errnos)
    expected = expected || e == want;
  EXPECT_TRUE(expected) << name << " failed with " << e << "\n" << r.describe();
}

// Asserts a seccomp deny event for `syscall`.
void expect_denied_syscall(const RunResult& r, const std::string& syscall) {
  EXPECT_FALSE(r.denials(syscall).empty()) << "no deny event for " << syscall << "\n"
                                           << r.describe();
}

std::string file_content(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A secret file outside any grant; it must be neither read nor changed.
class SecretCanary {
 public:
  SecretCanary() : path_(dir_.write("secret/credentials", "canary-secret-7f3a\n", 0644)) {}
  const std::string& path() const { return path_; }
  bool untouched() const { return file_content(path_) == "canary-secret-7f3a\n"; }

 private:
  TempDir dir_;
  std::string path_;
};

// A writable directory for the agent (uid 65534).
std::string agent_dir(const TempDir& dir, const std::string& name) {
  std::string p = dir.file(name);
  ::mkdir(p.c_str(), 0777);
  ::chmod(p.c_str(), 0777);
  return p;
}

}  // namespace

TEST(EscapeFilesystem, SecretsOutsideTheViewThroughSymlinksAndProcRoot) {
  TempDir dir;
  SecretCanary canary;
  json m = escape_manifest("escape-fs-secrets");
  std::string work = agent_dir(dir, "work");
  m["filesystem"]["write"] = {work};
  m["audit"]["files"] = true;
  RunResult a = run_enclosure(dir, m, {"attack_fs", "symlink-secret", work, canary.path()});
  RunResult b = run_enclosure(dir, m, {"attack_fs", "proc-root", canary.path()});
  auto oa = outcomes(a), ob = outcomes(b);
  expect_blocked(oa, "symlink-secret", {"ENOENT"}, a);
  expect_blocked(ob, "proc-root", {"ENOENT", "EACCES"}, b);
  EXPECT_TRUE(canary.untouched());
  // The access log shows the attempt and its failure.
  bool logged = false;
  for (const json& e : a.of_type("open")) {
    if (e.value("path", "").find("link-to-secret") != std::string::npos && e["ok"] == false)
      logged = true;
  }
  EXPECT_TRUE(logged) << a.describe();
}

TEST(EscapeFilesystem, HardLinksRenamesAndChmodOutOfAReadOnlyTree) {
  TempDir dir;
  std::string ro = dir.write("ro/data.txt", "read-only data\n", 0644);
  std::string work = agent_dir(dir, "work");
  json m = escape_manifest("escape-fs-links");
  m["filesystem"]["read"].push_back(dir.file("ro"));
  m["filesystem"]["write"] = {work};
  RunResult a = run_enclosure(dir, m, {"attack_fs", "hardlink", ro, work + "/stolen"});
  RunResult b = run_enclosure(dir, m, {"attack_fs", "rename", ro, work + "/moved"});
  RunResult c = run_enclosure(dir, m, {"attack_fs", "chmod", ro});
  expect_blocked(outcomes(a), "hardlink", {"EXDEV", "EROFS", "EACCES", "EPERM"}, a);
  expect_blocked(outcomes(b), "rename", {"EXDEV", "EROFS", "EACCES"}, b);
  expect_blocked(outcomes(c), "chmod", {"EROFS", "EPERM"}, c);
  EXPECT_EQ(file_content(ro), "read-only data\n");
  struct stat st {};
  ASSERT_EQ(::stat(ro.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_NE(::access((work + "/stolen").c_str(), F_OK), 0);
}

TEST(EscapeFilesystem, MountApiIsDeniedAndLogged) {
  TempDir dir;
  json m = escape_manifest("escape-mount");
  struct Case {
    const char* attack;
    const char* syscall;
  };
  for (Case c : {Case{"mount", "mount"}, Case{"umount", "umount2"},
                 Case{"pivot_root", "pivot_root"}, Case{"open_tree", "open_tree"},
                 Case{"move_mount", "move_mount"}, Case{"fsopen", "fsopen"}}) {
    RunResult r = run_enclosure(dir, m, {"attack_fs", c.attack});
    auto o = outcomes(r);
    expect_blocked(o, c.syscall, {"EPERM"}, r);
    expect_denied_syscall(r, c.syscall);
  }
}

TEST(EscapeFilesystem, ProcControlFilesCannotBeWritten) {
  TempDir dir;
  std::string hostname = file_content("/proc/sys/kernel/hostname");
  json m = escape_manifest("escape-proc");
  for (const char* path : {"/proc/sys/kernel/hostname", "/proc/sysrq-trigger",
                           "/proc/sys/vm/drop_caches", "/proc/self/oom_score_adj"}) {
    RunResult r = run_enclosure(dir, m, {"attack_fs", "proc-write", path});
    expect_blocked(outcomes(r), "proc-write", {"EROFS", "EACCES", "ENOENT", "EPERM"}, r);
  }
  EXPECT_EQ(file_content("/proc/sys/kernel/hostname"), hostname);
}

TEST(EscapeFilesystem, DeviceNodesAndMknod) {
  TempDir dir;
  json m = escape_manifest("escape-devices");
  RunResult r = run_enclosure(dir, m, {"attack_fs", "mknod"});
  expect_blocked(outcomes(r), "mknod", {"EPERM"}, r);
  // glibc's mknod() is the mknodat system call.
  EXPECT_FALSE(r.denials("mknodat").empty() && r.denials("mknod").empty()) << r.describe();
  for (const char* dev :
       {"/dev/mem", "/dev/kmem", "/dev/sda", "/dev/vda", "/dev/kmsg", "/dev/port"}) {
    RunResult o = run_enclosure(dir, m, {"attack_fs", "open", dev});
    expect_blocked(outcomes(o), "open", {"ENOENT"}, o);
  }
}

TEST(EscapeFilesystem, LeavingTheCgroupAndReachingTheHostsControlFiles) {
  TempDir dir;
  json m = escape_manifest("escape-cgroup");
  for (const char* path : {"/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/cgroup.procs",
                           "/sys/kernel/security", "/proc/1/ns/net"}) {
    RunResult r = run_enclosure(dir, m, {"attack_fs", "open", path, "w"});
    expect_blocked(outcomes(r), "open", {"ENOENT", "EACCES", "EROFS", "EPERM"}, r);
  }
}

TEST(EscapeFilesystem, NoLeakedDescriptorsNoHostEnvironment) {
  TempDir dir;
  json m = escape_manifest("escape-fds-env");
  harness::RunOptions options;
  options.env = {{"ESCAPE_SECRET_TOKEN", "sk-canary-123"}, {"HOME", "/root"}};
  RunResult fds = run_enclosure(dir, m, {"attack_fs", "fds"}, options);
  auto o = outcomes(fds);
  ASSERT_TRUE(o.count("fds")) << fds.describe();
  EXPECT_FALSE(o["fds"]["succeeded"].get<bool>()) << "open descriptors: " << o["fds"]["detail"];
  for (const char* name : {"ESCAPE_SECRET_TOKEN", "HOME"}) {
    RunResult env = run_enclosure(dir, m, {"attack_fs", "env", name}, options);
    expect_blocked(outcomes(env), "env", {"ENOENT"}, env);
  }
}

TEST(EscapeSyscalls, IoUringIsDenied) {
  TempDir dir;
  RunResult r =
      run_enclosure(dir, escape_manifest("escape-io-uring"), {"attack_syscalls", "io_uring"});
  expect_blocked(outcomes(r), "io_uring_setup", {"EPERM"}, r);
  expect_denied_syscall(r, "io_uring_setup");
}

TEST(EscapeSyscalls, ForeignAbisKillTheProcess) {
  TempDir dir;
  for (const char* which : {"x32", "int80"}) {
    RunResult r = run_enclosure(dir, escape_manifest("escape-abi"), {"attack_syscalls", which});
    auto o = outcomes(r);
    EXPECT_TRUE(o.count(std::string(which) + "-before")) << r.describe();
    EXPECT_FALSE(o.count(which)) << which << " survived\n" << r.describe();
    EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.describe();
    bool logged = false;
    for (const json& e : r.of_type("deny")) {
      if (e.value("abi", "") == (std::string(which) == "x32" ? "x32" : "i386")) logged = true;
    }
    EXPECT_TRUE(logged) << r.describe();
  }
}

TEST(EscapeSyscalls, TiocstiOnARealPtyEvenWithUpperBitsSet) {
  TempDir dir;
  RunResult r =
      run_enclosure(dir, escape_manifest("escape-tiocsti"), {"attack_syscalls", "tiocsti"});
  auto o = outcomes(r);
  expect_blocked(o, "tiocsti", {"EPERM"}, r);
  expect_blocked(o, "tiocsti-plain", {"EPERM"}, r);
  EXPECT_GE(r.denials("ioctl").size(), 2u) << r.describe();
}

TEST(EscapeSyscalls, PtraceOfAnything) {
  TempDir dir;
  RunResult r =
      run_enclosure(dir, escape_manifest("escape-ptrace"), {"attack_syscalls", "ptrace", "1"});
  auto o = outcomes(r);
  expect_blocked(o, "ptrace", {"EPERM"}, r);
  expect_blocked(o, "ptrace-traceme", {"EPERM"}, r);
  EXPECT_GE(r.denials("ptrace").size(), 2u) << r.describe();
}

TEST(EscapeSyscalls, NamespacesCannotBeCreatedOrJoined) {
  TempDir dir;
  json m = escape_manifest("escape-ns");
  RunResult u = run_enclosure(dir, m, {"attack_syscalls", "unshare"});
  expect_blocked(outcomes(u), "unshare", {"EPERM"}, u);
  expect_denied_syscall(u, "unshare");
  RunResult c = run_enclosure(dir, m, {"attack_syscalls", "clone"});
  expect_blocked(outcomes(c), "clone", {"EPERM"}, c);
  expect_denied_syscall(c, "clone");
  RunResult c3 = run_enclosure(dir, m, {"attack_syscalls", "clone3"});
  expect_blocked(outcomes(c3), "clone3", {"ENOSYS"}, c3);  // libc falls back to clone
  RunResult s = run_enclosure(dir, m, {"attack_syscalls", "setns"});
  expect_blocked(outcomes(s), "setns", {"EPERM", "EBADF"}, s);
  expect_denied_syscall(s, "setns");
}

TEST(EscapeSyscalls, KernelInterfacesAgentsNeverNeed) {
  TempDir dir;
  RunResult r = run_enclosure(dir, escape_manifest("escape-kernel"),
                              {"attack_syscalls", "kernel-interfaces"});
  auto o = outcomes(r);
  for (const char* call :
       {"keyctl", "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "personality"}) {
    expect_blocked(o, call, {"EPERM"}, r);
    expect_denied_syscall(r, call);
  }
}

TEST(EscapeNetwork, UdpMappedRawPacketPingAndOddFamilies) {
  TempDir dir;
  LoopbackListener tcp(LoopbackListener::Protocol::tcp, "127.0.0.1");
  LoopbackListener udp(LoopbackListener::Protocol::udp, "127.0.0.1");
  ASSERT_TRUE(tcp.ok() && udp.ok());
  json m = escape_manifest("escape-net");
  // Only a port nobody listens on is admitted.
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {1}}, {"protocol", "tcp"}}}}};
  std::string up = std::to_string(udp.port()), tp = std::to_string(tcp.port());
  RunResult u = run_enclosure(dir, m, {"attack_net", "udp", "127.0.0.1", up});
  auto ou = outcomes(u);
  expect_blocked(ou, "udp-sendto", {"EPERM"}, u);
  expect_blocked(ou, "udp-sendmmsg", {"EPERM"}, u);
  RunResult t = run_enclosure(dir, m, {"attack_net", "tcp", "127.0.0.1", tp});
  expect_blocked(outcomes(t), "tcp-connect", {"EPERM"}, t);
  RunResult mp = run_enclosure(dir, m, {"attack_net", "mapped", "127.0.0.1", tp});
  expect_blocked(outcomes(mp), "mapped-v6", {"EPERM"}, mp);
  for (const RunResult* r : {&u, &t, &mp}) {
    bool logged = false;
    for (const json& e : r->of_type("deny"))
      logged = logged || e.value("section", "") == "network";
    EXPECT_TRUE(logged) << r->describe();
  }
  RunResult raw = run_enclosure(dir, m, {"attack_net", "raw"});
  auto orw = outcomes(raw);
  for (const char* a : {"raw", "raw6", "packet", "ping"})
    expect_blocked(orw, a, {"EPERM"}, raw);
  EXPECT_GE(raw.denials("socket").size(), 4u) << raw.describe();
  RunResult fam = run_enclosure(dir, m, {"attack_net", "families"});
  auto of = outcomes(fam);
  for (const char* a :
       {"af_alg", "af_vsock", "af_bluetooth", "af_key", "netlink-audit", "family-high-bits"}) {
    expect_blocked(of, a, {"EPERM"}, fam);
  }
  EXPECT_GE(fam.denials("socket").size(), 6u) << fam.describe();
  tcp.collect();
  udp.collect();
  EXPECT_EQ(tcp.connections(), 0u) << tcp.describe();
  EXPECT_EQ(udp.datagrams(), 0u) << udp.describe();
}

TEST(EscapeNetwork, UnixSocketsOfHostServices) {
  TempDir dir;
  // A host service on an abstract unix socket, and one on a path outside the view.
  std::string name = "enclosure-escape-canary-" + std::to_string(::getpid());
  int abstract_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_un a {};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(sizeof(sa_family_t) + 1 + name.size());
  ASSERT_EQ(::bind(abstract_fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(abstract_fd, 16), 0);
  std::string path = dir.file("service.sock");
  int path_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_un p {};
  p.sun_family = AF_UNIX;
  std::strncpy(p.sun_path, path.c_str(), sizeof p.sun_path - 1);
  ASSERT_EQ(::bind(path_fd, reinterpret_cast<sockaddr*>(&p), sizeof p), 0);
  ASSERT_EQ(::listen(path_fd, 16), 0);
  for (const char* mode : {"none", "filtered"}) {
    json m = escape_manifest("escape-unix");
    m["network"] = {{"mode", mode}};
    RunResult ra = run_enclosure(dir, m, {"attack_net", "unix-abstract", name});
    // mode none: another network namespace; filtered: Landlock's abstract socket scoping.
    expect_blocked(outcomes(ra), "unix-abstract", {"ECONNREFUSED", "EPERM"}, ra);
    RunResult rp = run_enclosure(dir, m, {"attack_net", "unix-path", path});
    expect_blocked(outcomes(rp), "unix-path", {"ENOENT"}, rp);
  }
  EXPECT_LT(::accept(abstract_fd, nullptr, nullptr), 0);
  EXPECT_LT(::accept(path_fd, nullptr, nullptr), 0);
  ::close(abstract_fd);
  ::close(path_fd);
}

TEST(EscapeProcess, SignalsToProcessesOutside) {
  TempDir dir;
  pid_t victim = ::fork();
  if (victim == 0) {
    ::pause();
    _exit(0);
  }
  RunResult r = run_enclosure(dir, escape_manifest("escape-kill"),
                              {"attack_process", "kill", std::to_string(victim)});
  expect_blocked(outcomes(r), "kill", {"ESRCH", "EPERM"}, r);
  EXPECT_EQ(::kill(victim, 0), 0) << "the victim outside died";
  ::kill(victim, SIGKILL);
  ::waitpid(victim, nullptr, 0);
}

// pidfd_getfd copies another process's descriptor (it reaches into it like ptrace): denied by
// the default profile and by the strict one, with a deny event from seccomp.
TEST(EscapeProcess, PidfdGetfdOfASibling) {
  TempDir dir;
  RunResult r =
      run_enclosure(dir, escape_manifest("escape-pidfd-getfd"), {"attack_process", "pidfd-getfd"});
  expect_blocked(outcomes(r), "pidfd-getfd", {"EPERM"}, r);
  expect_denied_syscall(r, "pidfd_getfd");
  json strict = escape_manifest("escape-pidfd-getfd-strict");
  strict["syscalls"]["profile"] = "strict";
  RunResult s = run_enclosure(dir, strict, {"attack_process", "pidfd-getfd"});
  expect_blocked(outcomes(s), "pidfd-getfd", {"EPERM"}, s);
  expect_denied_syscall(s, "pidfd_getfd");
}

TEST(EscapeProcess, ForkThreadAndMemoryBombsStopAtTheirLimits) {
  TempDir dir;
  json m = escape_manifest("escape-bombs");
  m["budgets"]["processes"] = 32;
  m["budgets"]["memory"] = "128MiB";
  m["budgets"]["wall_clock"] = "30s";
  RunResult fork = run_enclosure(dir, m, {"attack_process", "fork-bomb"});
  auto of = outcomes(fork);
  expect_blocked(of, "fork-bomb", {"EAGAIN"}, fork);
  ASSERT_TRUE(fork.first("budget")) << fork.describe();
  EXPECT_EQ((*fork.first("budget"))["name"], "processes");
  RunResult threads = run_enclosure(dir, m, {"attack_process", "thread-bomb"});
  expect_blocked(outcomes(threads), "thread-bomb", {"EAGAIN"}, threads);
  RunResult memory = run_enclosure(dir, m, {"attack_process", "memory-bomb"});
  EXPECT_EQ(memory.exit_code, 124) << memory.describe();
  auto b = memory.first("budget");
  ASSERT_TRUE(b) << memory.describe();
  EXPECT_EQ((*b)["name"], "memory");
  EXPECT_FALSE(outcomes(memory).count("memory-bomb")) << memory.describe();
  EXPECT_TRUE(harness::remaining_cgroups_of(memory).empty());
}

TEST(EscapeEvents, AFloodCannotHideTheDenialThatFollowsIt) {
  TempDir dir;
  LoopbackListener tcp(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(tcp.ok());
  json m = escape_manifest("escape-flood");
  m["audit"]["files"] = true;
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {1}}, {"protocol", "tcp"}}}}};
  harness::RunOptions options;
  options.extra_args = {"--ring-buffer", "4KiB"};
  RunResult r = run_enclosure(dir, m,
                              {"attack_process", "flood", "/usr/lib/os-release", "50000",
                               "127.0.0.1", std::to_string(tcp.port())},
                              options);
  expect_blocked(outcomes(r), "flood-then-deny", {"EPERM"}, r);
  EXPECT_FALSE(r.of_type("lost").empty()) << "the flood should have overflowed the 4 KiB ring";
  bool denial = false;
  for (const json& e : r.of_type("deny")) {
    denial = denial || (e.value("section", "") == "network" && e.value("port", 0) == tcp.port());
  }
  EXPECT_TRUE(denial) << "the denial after the flood was lost";
  tcp.collect();
  EXPECT_EQ(tcp.connections(), 0u);
}

TEST(EscapeEvents, PathsCannotForgeOrGarbleRecords) {
  TempDir dir;
  std::string work = agent_dir(dir, "work");
  json m = escape_manifest("escape-inject");
  m["filesystem"]["write"] = {work};
  m["audit"]["files"] = true;
  RunResult r = run_enclosure(dir, m, {"attack_process", "inject", work});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // One exit event (a forged one would be a second), and every line parsed as one object.
  EXPECT_EQ(r.of_type("exit").size(), 1u);
  std::vector<std::string> expected = {
      work + "/a\n{\"type\":\"exit\",\"forged\":true}", work + "/q\"uote\\back",
      work + "/esc\x1b[2J\x1b]0;pwned\x07", work + "/bad\xff\xfe\xc3\x28utf8"};
  size_t found = 0;
  for (const json& e : r.of_type("open")) {
    std::string path = e.value("path", "");
    if (e.contains("path_hex")) {
      std::string hex = e["path_hex"], raw;
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      path = raw;
    }
    for (const std::string& want : expected)
      found += path == want;
  }
  EXPECT_EQ(found, expected.size()) << r.describe();
}
