// The system call profile and the process hygiene of the agent: each denied call fails with
// the errno the manifest promises and is logged as a `deny` event naming the call and the
// manifest entry; foreign ABIs kill; the agent holds no privilege, no stray descriptor, no
// stray environment and no terminal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

nlohmann::json python_manifest() {
  return base_manifest("syscalls", {"/usr/bin/python3"});
}

// Helpers for agents: e(v) turns sc()'s -errno into its name.
const char* const kErr = R"(
def e(v):
    return errname(-v) if v < 0 else v
)";

std::string agent_code(const std::string& body) {
  return std::string(kErr) + body;
}

// The one deny event for `syscall`, checked for the fields every syscall denial carries.
nlohmann::json single_denial(const RunResult& r, const std::string& syscall,
                             const std::string& action = "EPERM") {
  auto denials = r.denials(syscall);
  EXPECT_EQ(denials.size(), 1u) << "deny events for " << syscall << ":\n" << r.describe();
  if (denials.empty()) return nlohmann::json::object();
  const nlohmann::json& d = denials.front();
  EXPECT_EQ(d["section"], "syscalls");
  EXPECT_EQ(d["action"], action) << d.dump();
  EXPECT_TRUE(d["nr"].is_number_integer()) << d.dump();
  EXPECT_TRUE(d["args"].is_array() && d["args"].size() == 6) << d.dump();
  EXPECT_TRUE(d["origin"].is_string()) << d.dump();
  EXPECT_TRUE(d["pid"].is_number_integer() && d["pid"].get<int>() > 1) << d.dump();
  return d;
}

std::string origin_of(const nlohmann::json& d) {
  return d.value("origin", "");
}

}  // namespace

TEST(RunSyscalls, AgentRunsUnderSeccompWithNoNewPrivsAndNoCapabilities) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(R"(
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
for k in ["Seccomp", "NoNewPrivs", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]:
    R[k] = st[k].strip()
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["Seccomp"], "2");
  EXPECT_EQ(res["NoNewPrivs"], "1");
  for (const char* k : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(res[k], "0000000000000000") << k;
  }
}

TEST(RunSyscalls, IoUringSetupIsEpermAndLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
params = ctypes.create_string_buffer(120)
R["io_uring_setup"] = e(sc(425, 8, params))
R["getpid_after"] = sc(39) == os.getpid()
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["io_uring_setup"], "EPERM");
  EXPECT_EQ(res["getpid_after"], true);  // the agent runs on after a denial
  auto d = single_denial(r, "io_uring_setup");
  EXPECT_EQ(d["nr"], 425);
  EXPECT_EQ(d["abi"], "x86_64");
  EXPECT_NE(origin_of(d).find("/syscalls/profile"), std::string::npos) << d.dump();
  EXPECT_NE(origin_of(d).find("@io-uring"), std::string::npos) << d.dump();
  EXPECT_EQ(d["args"][0], "0x8") << d.dump();
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_EQ((*exit)["denials"], 1);
  // Without --events -, the intervention is summarised on standard error.
  EXPECT_NE(r.err.find("io_uring_setup"), std::string::npos) << r.err;
}

TEST(RunSyscalls, PtraceIsEpermAndLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
R["traceme"] = e(sc(101, 0, 0, 0, 0))
R["attach_init"] = e(sc(101, 16, 1, 0, 0))
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["traceme"], "EPERM");
  EXPECT_EQ(res["attach_init"], "EPERM");
  auto denials = r.denials("ptrace");
  ASSERT_EQ(denials.size(), 2u) << r.describe();
  EXPECT_EQ(denials[0]["nr"], 101);
  EXPECT_EQ(denials[0]["action"], "EPERM");
  EXPECT_NE(origin_of(denials[0]).find("@debug"), std::string::npos) << denials[0].dump();
  EXPECT_EQ(denials[1]["args"][0], "0x10") << denials[1].dump();  // PTRACE_ATTACH
  EXPECT_EQ(denials[1]["args"][1], "0x1") << denials[1].dump();
}

// System calls newer than libseccomp cannot be named by the default profile; they must not pass
// unjudged: setxattrat (463), removexattrat (466), open_tree_attr (467) and file_setattr (469)
// fail with ENOSYS, while the host's kernel has them (the same calls reach it outside).
TEST(RunSyscalls, CallsNewerThanLibseccompFailWithEnosysInTheDefaultProfile) {
  TempDir dir;
  std::string body = R"(
R["setxattrat"] = e(sc(463, -100, b"/tmp", 0, b"user.k", 0))
R["removexattrat"] = e(sc(466, -100, b"/tmp", 0, b"user.k"))
R["open_tree_attr"] = e(sc(467, -100, b"/", 0, 0, 0))
R["file_setattr"] = e(sc(469, -100, b"/tmp", 0, 0, 0))
R["getppid"] = "ok" if sc(110) > 0 else "failed"
)";
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(body)));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* call : {"setxattrat", "removexattrat", "open_tree_attr", "file_setattr"})
    EXPECT_EQ(res[call], "ENOSYS") << call << " " << res;
  EXPECT_EQ(res["getppid"], "ok");
  // Outside, the kernel has them: a bad argument, not ENOSYS.
  harness::RunResult host = harness::run_command(
      {"python3", "-c",
       "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
       "r = libc.syscall(ctypes.c_long(463), ctypes.c_long(-1), b'/tmp', 0, b'user.k', 0)\n"
       "print(ctypes.get_errno())"});
  EXPECT_NE(host.out, "38\n") << "this kernel has no setxattrat: the test proves nothing";
}

TEST(RunSyscalls, ManifestDenyListNamesItsJsonPath) {
  TempDir dir;
  auto m = python_manifest();
  m["syscalls"] = {{"profile", "default"}, {"deny", {"getppid"}}};
  auto r = run_enclosure(dir, m, python_agent(agent_code(R"(
R["getppid"] = e(sc(110))
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(python_result(r)["getppid"], "EPERM") << r.describe();
  auto d = single_denial(r, "getppid");
  EXPECT_EQ(origin_of(d), "/syscalls/deny/0") << d.dump();
}

TEST(RunSyscalls, UnshareOfANewUserNamespaceIsEpermAndLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
CLONE_NEWUSER, CLONE_NEWNET, CLONE_FILES = 0x10000000, 0x40000000, 0x400
R["newuser"] = e(sc(272, CLONE_NEWUSER))
R["newnet_high_bits"] = e(sc(272, CLONE_NEWNET | (1 << 40)))
R["files"] = e(sc(272, CLONE_FILES))
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["newuser"], "EPERM");
  EXPECT_EQ(res["newnet_high_bits"], "EPERM");
  EXPECT_EQ(res["files"], 0);  // no namespace flag: allowed
  auto denials = r.denials("unshare");
  ASSERT_EQ(denials.size(), 2u) << r.describe();
  EXPECT_EQ(denials[0]["args"][0], "0x10000000");
  EXPECT_EQ(denials[0]["action"], "EPERM");
  EXPECT_NE(origin_of(denials[0]).find("/syscalls/profile"), std::string::npos);
  EXPECT_NE(origin_of(denials[0]).find("namespace"), std::string::npos) << denials[0].dump();
}

TEST(RunSyscalls, CloneWithNamespaceFlagsIsEpermAndLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
import signal
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
for name, flags in [("newuser", CLONE_NEWUSER), ("newnet", CLONE_NEWNET)]:
    rc = sc(56, flags | signal.SIGCHLD, 0, 0, 0, 0)
    if rc == 0:
        os._exit(0)  # a child got through: it must not run the rest of the agent
    if rc > 0:
        os.waitpid(rc, 0)
    R[name] = e(rc)
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["newuser"], "EPERM") << r.out;
  EXPECT_EQ(res["newnet"], "EPERM") << r.out;
  auto denials = r.denials("clone");
  ASSERT_EQ(denials.size(), 2u) << r.describe();
  EXPECT_EQ(denials[0]["args"][0], "0x10000011") << denials[0].dump();
  EXPECT_NE(origin_of(denials[0]).find("namespace"), std::string::npos) << denials[0].dump();
}

TEST(RunSyscalls, PersonalityMayBeQueriedNotChanged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
R["query"] = e(sc(135, 0xffffffff))
R["no_randomize"] = e(sc(135, 0x0040000))
R["linux32"] = e(sc(135, 0x0008))
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["query"], 0) << r.out;
  EXPECT_EQ(res["no_randomize"], "EPERM") << r.out;
  EXPECT_EQ(res["linux32"], "EPERM") << r.out;
  EXPECT_EQ(r.denials("personality").size(), 2u) << r.describe();
}

// Every group the default profile denies, one representative call each, with null arguments
// (let through, none of them could change anything on the host).
TEST(RunSyscalls, DefaultProfileDeniesEachGroupWithAnEventNamingIt) {
  struct Case {
    const char* syscall;
    int nr;
    const char* group;
  };
  const Case cases[] = {
      {"mount", 165, "@mount"},
      {"umount2", 166, "@mount"},
      {"pivot_root", 155, "@mount"},
      {"chroot", 161, "@mount"},
      {"fsopen", 430, "@mount"},
      {"open_tree", 428, "@detached-mount"},
      {"bpf", 321, "@bpf"},
      {"perf_event_open", 298, "@debug"},
      {"keyctl", 250, "@keyring"},
      {"add_key", 248, "@keyring"},
      {"userfaultfd", 323, "@userfaultfd"},
      {"kexec_load", 246, "@reboot"},
      {"init_module", 175, "@module"},
      {"finit_module", 313, "@module"},
      {"sysfs", 139, "@obsolete"},
      {"swapon", 167, "@swap"},
      {"reboot", 169, "@reboot"},
      {"open_by_handle_at", 304, "@handle"},
      {"name_to_handle_at", 303, "@handle"},
      {"setns", 308, "@setns"},
      {"process_vm_readv", 310, "@cross-process"},
      {"kcmp", 312, "@cross-process"},
      {"io_uring_enter", 426, "@io-uring"},
      {"settimeofday", 164, "@clock"},
      {"iopl", 172, "@raw-io"},
      {"acct", 163, "@system"},
  };
  std::string calls = "calls = [";
  for (const Case& c : cases)
    calls += "(\"" + std::string(c.syscall) + "\", " + std::to_string(c.nr) + "), ";
  calls += "]\n";
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(calls + R"(
for name, nr in calls:
    R[name] = e(sc(nr, 0, 0, 0, 0, 0))
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.syscall);
    EXPECT_EQ(res[c.syscall], "EPERM");
    auto denials = r.denials(c.syscall);
    ASSERT_EQ(denials.size(), 1u);
    EXPECT_EQ(denials[0]["nr"], c.nr);
    EXPECT_EQ(origin_of(denials[0]), std::string("/syscalls/profile (default: ") + c.group + ")");
  }
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_EQ((*exit)["denials"], std::size(cases));
}

TEST(RunSyscalls, Clone3IsEnosysWithoutAnEvent) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
args = ctypes.create_string_buffer(88)
R["clone3"] = e(sc(435, args, 88))
import subprocess
R["spawn_still_works"] = subprocess.run(["/usr/bin/python3", "-c", "pass"]).returncode
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["clone3"], "ENOSYS");
  EXPECT_EQ(res["spawn_still_works"], 0);  // libc falls back to clone
  EXPECT_TRUE(r.of_type("deny").empty()) << r.describe();
}

TEST(RunSyscalls, X32SystemCallKillsTheProcessAndIsLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
print("before", flush=True)
R["x32_getpid"] = e(sc(0x40000000 | 39))
print("survived", flush=True)
)")));
  EXPECT_EQ(r.exit_code, 137) << r.describe();
  EXPECT_NE(r.out.find("before"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("survived"), std::string::npos) << r.out;
  auto denials = r.of_type("deny");
  ASSERT_EQ(denials.size(), 1u) << r.describe();
  EXPECT_EQ(denials[0]["section"], "syscalls");
  EXPECT_EQ(denials[0]["abi"], "x32") << denials[0].dump();
  EXPECT_EQ(denials[0]["action"], "process killed") << denials[0].dump();
  EXPECT_EQ(denials[0]["nr"], 0x40000000 | 39) << denials[0].dump();
}

TEST(RunSyscalls, I386SystemCallKillsTheProcessAndIsLogged) {
  TempDir dir;
  // int 0x80 with eax = 20 (getpid in the i386 table), from an executable anonymous page.
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
import mmap
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
address = ctypes.addressof(ctypes.c_char.from_buffer(page))
print("before", flush=True)
R["i386_getpid"] = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
print("survived", flush=True)
)")));
  EXPECT_EQ(r.exit_code, 137) << r.describe();
  EXPECT_NE(r.out.find("before"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("survived"), std::string::npos) << r.out;
  auto denials = r.of_type("deny");
  ASSERT_EQ(denials.size(), 1u) << r.describe();
  EXPECT_EQ(denials[0]["abi"], "i386") << denials[0].dump();
  EXPECT_EQ(denials[0]["action"], "process killed") << denials[0].dump();
  EXPECT_EQ(denials[0]["nr"], 20) << denials[0].dump();
}

TEST(RunSyscalls, TiocstiWithUpperBitsSetIsEpermAndLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
master, slave = os.openpty()
libc.ioctl.restype = ctypes.c_int
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
def ioctl(fd, request, arg):
    ctypes.set_errno(0)
    rc = libc.ioctl(fd, request, arg)
    return errname(ctypes.get_errno()) if rc == -1 else rc
ch = ctypes.create_string_buffer(b"x")
R["tiocsti_upper"] = ioctl(slave, 0x100005412, ch)
R["tiocsti"] = ioctl(slave, 0x5412, ch)
R["tioclinux"] = ioctl(slave, 0x541C, ch)
winsize = ctypes.create_string_buffer(8)
R["tiocgwinsz"] = ioctl(slave, 0x5413, winsize)
os.set_blocking(master, False)
try:
    R["injected"] = os.read(master, 16).decode()
except BlockingIOError:
    R["injected"] = ""
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["tiocsti_upper"], "EPERM");
  EXPECT_EQ(res["tiocsti"], "EPERM");
  EXPECT_EQ(res["tioclinux"], "EPERM");
  EXPECT_EQ(res["tiocgwinsz"], 0);  // other terminal ioctls work
  EXPECT_EQ(res["injected"], "");
  auto denials = r.denials("ioctl");
  ASSERT_EQ(denials.size(), 3u) << r.describe();
  EXPECT_EQ(denials[0]["args"][1], "0x100005412") << denials[0].dump();
  EXPECT_EQ(denials[1]["args"][1], "0x5412") << denials[1].dump();
  EXPECT_EQ(denials[2]["args"][1], "0x541c") << denials[2].dump();
  for (const auto& d : denials) {
    EXPECT_EQ(d["action"], "EPERM");
    EXPECT_NE(origin_of(d).find("TIOCSTI"), std::string::npos) << d.dump();
  }
}

TEST(RunSyscalls, PacketAndOtherFamiliesOfSocketsAreEpermAndLogged) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(agent_code(R"(
libc.socket.restype = ctypes.c_int
def sock(family, kind, proto):
    ctypes.set_errno(0)
    fd = libc.socket(family, kind, proto)
    if fd < 0:
        return errname(ctypes.get_errno())
    os.close(fd)
    return "ok"
R["packet"] = sock(17, 3, 0x0300)
R["netlink_audit"] = sock(16, 3, 9)
R["unix"] = sock(1, 1, 0)
R["inet"] = sock(2, 1, 0)
R["netlink_route"] = sock(16, 3, 0)
)")));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["packet"], "EPERM");
  EXPECT_EQ(res["netlink_audit"], "EPERM");
  EXPECT_EQ(res["unix"], "ok");
  EXPECT_EQ(res["inet"], "ok");
  EXPECT_EQ(res["netlink_route"], "ok");
  auto denials = r.denials("socket");
  ASSERT_EQ(denials.size(), 2u) << r.describe();
  EXPECT_EQ(denials[0]["args"][0], "0x11") << denials[0].dump();
  EXPECT_EQ(denials[1]["args"][0], "0x10") << denials[1].dump();
  EXPECT_EQ(denials[1]["args"][2], "0x9") << denials[1].dump();
  for (const auto& d : denials) {
    EXPECT_EQ(d["action"], "EPERM");
    EXPECT_NE(origin_of(d).find("/syscalls/profile"), std::string::npos) << d.dump();
  }
}

TEST(RunSyscalls, ActionKillKillsTheCallerAndIsLogged) {
  TempDir dir;
  auto m = python_manifest();
  m["syscalls"] = {{"profile", "default"}, {"action", "kill"}};
  auto r = run_enclosure(dir, m, python_agent(agent_code(R"(
print("before", flush=True)
R["ptrace"] = e(sc(101, 0, 0, 0, 0))
print("survived", flush=True)
)")));
  EXPECT_EQ(r.exit_code, 137) << r.describe();
  EXPECT_NE(r.out.find("before"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("survived"), std::string::npos) << r.out;
  auto d = single_denial(r, "ptrace", "process killed");
  EXPECT_NE(origin_of(d).find("@debug"), std::string::npos) << d.dump();
}

TEST(RunSyscalls, OnViolationKillEndsTheRunAtTheFirstDenial) {
  TempDir dir;
  auto m = python_manifest();
  m["on_violation"] = "kill";
  // ptrace(PTRACE_TRACEME) and, the instant it returns, write(1, "continued...") — machine
  // code, so that nothing but the kernel stands between the denied call and the next one.
  auto agent = python_agent(agent_code(R"(
import mmap, time
msg = b"continued after the violation\n"
code = bytes([0xb8, 101, 0, 0, 0, 0x31, 0xff, 0x31, 0xf6, 0x31, 0xd2, 0x45, 0x31, 0xd2, 0x0f, 0x05,
              0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x48, 0x8d, 0x35, 8, 0, 0, 0,
              0xba, len(msg), 0, 0, 0, 0x0f, 0x05, 0xc3]) + msg
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
call = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print("before", flush=True)
call()
print("python went on", flush=True)
R["second"] = e(sc(425, 8, ctypes.create_string_buffer(120)))
time.sleep(30)
)"));
  // Whether the caller could run on is a race with the supervisor: repeat to observe it.
  for (int attempt = 0; attempt < 12; ++attempt) {
    SCOPED_TRACE("attempt " + std::to_string(attempt));
    auto started = std::chrono::steady_clock::now();
    auto r = run_enclosure(dir, m, agent);
    auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_LT(seconds, 20.0) << "the run went on after the violation";
    EXPECT_EQ(r.exit_code, 137) << r.describe();
    EXPECT_NE(r.out.find("before"), std::string::npos) << r.out;
    // Terminated at the first violation: the agent never runs on past the denied call.
    EXPECT_EQ(r.out.find("continued after the violation"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("python went on"), std::string::npos) << r.out;
    EXPECT_EQ(r.denials("io_uring_setup").size(), 0u) << r.describe();
    single_denial(r, "ptrace");
    auto exit = r.first("exit");
    ASSERT_TRUE(exit) << r.describe();
    EXPECT_EQ((*exit)["ended_by"], "violation") << exit->dump();
    EXPECT_NE(r.err.find("on_violation"), std::string::npos) << r.err;
    if (HasFailure()) break;
  }
}

TEST(RunSyscalls, OnlyStandardDescriptorsAreOpenInTheAgent) {
  TempDir dir;
  // A descriptor the launcher inherits without close-on-exec must not reach the agent.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 0);
  int high = ::dup2(leaked, 77);
  ASSERT_EQ(high, 77);
  auto r = run_enclosure(dir, python_manifest(), python_agent(R"(
def alive(fd):
    try:
        return os.readlink("/proc/self/fd/" + fd)
    except OSError:
        return None
listing = os.listdir("/proc/self/fd")
R["fds"] = sorted(int(fd) for fd in listing if alive(fd) is not None)
R["targets"] = {fd: alive(fd) for fd in listing}
R["meter"] = os.environ.get("ENCLOSURE_METER_FD")
)"));
  ::close(leaked);
  ::close(high);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  std::set<int> fds = res["fds"].get<std::set<int>>();
  if (res["meter"].is_string()) fds.erase(std::atoi(res["meter"].get<std::string>().c_str()));
  EXPECT_EQ(fds, (std::set<int>{0, 1, 2})) << res["targets"].dump();
}

TEST(RunSyscalls, EnvironmentIsExactlyPassPlusSet) {
  TempDir dir;
  auto m = base_manifest("syscalls", {"/usr/bin/env"});
  m["process"]["env"] = {{"pass", {"PATH", "PASSED_VAR", "UNSET_IN_LAUNCHER"}},
                         {"set", {{"GREETING", "hello"}, {"HOME", "/tmp"}}}};
  auto r =
      run_enclosure(dir, m, {"env"}, {.env = {{"SECRET_TOKEN", "s3cret"}, {"PASSED_VAR", "yes"}}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::set<std::string> lines;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("ENCLOSURE_METER_FD=", 0) == 0) continue;  // the metering channel
    lines.insert(line);
  }
  std::set<std::string> expected = {"PASSED_VAR=yes", "GREETING=hello", "HOME=/tmp"};
  if (const char* path = std::getenv("PATH")) expected.insert(std::string("PATH=") + path);
  EXPECT_EQ(lines, expected) << r.out;
  EXPECT_EQ(r.out.find("s3cret"), std::string::npos);
}

TEST(RunSyscalls, AgentHasItsOwnSessionAndNoControllingTerminal) {
  TempDir dir;
  // The launcher runs on a terminal of its own (a pty as its controlling terminal), as it
  // would in an interactive shell; the agent must not be able to reach that terminal.
  std::string manifest = dir.write("manifest.json", python_manifest().dump());
  std::string events = dir.file("events.jsonl");
  auto agent = python_agent(agent_code(R"PY(
R["sid_is_pid"] = os.getsid(0) == os.getpid()
R["pgrp_is_pid"] = os.getpgrp() == os.getpid()
R["tty_nr"] = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[4])
t("open_dev_tty", lambda: os.open("/dev/tty", os.O_RDWR) and None)
R["stdin_isatty"] = os.isatty(0)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
ctypes.set_errno(0)
rc = libc.ioctl(0, 0x5412, ctypes.create_string_buffer(b"x"))
R["tiocsti_stdin"] = errname(ctypes.get_errno()) if rc == -1 else rc
ctypes.set_errno(0)
rc = libc.ioctl(0, 0x540E, None)
R["tiocsctty_stdin"] = errname(ctypes.get_errno()) if rc == -1 else rc
)PY"));
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   "-c",
                                   "import os, pty, sys\nst = pty.spawn(sys.argv[1:])\n"
                                   "sys.exit(os.waitstatus_to_exitcode(st) & 255)\n",
                                   harness::enclosure_binary(),
                                   "run",
                                   "-m",
                                   manifest,
                                   "--events",
                                   events,
                                   "--no-tty",  // the agent's own terminal: run_terminal_test
                                   "--"};
  argv.insert(argv.end(), agent.begin(), agent.end());
  RunResult r = harness::run_command(argv);
  std::ifstream ev(events);
  for (std::string line; std::getline(ev, line);)
    r.events.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["sid_is_pid"], true);
  EXPECT_EQ(res["pgrp_is_pid"], true);
  EXPECT_EQ(res["tty_nr"], 0);
  EXPECT_EQ(res["open_dev_tty"], "ENXIO") << r.out;
  EXPECT_EQ(res["stdin_isatty"], true) << "the test did not give the launcher a terminal";
  EXPECT_EQ(res["tiocsti_stdin"], "EPERM") << r.out;
  EXPECT_EQ(res["tiocsctty_stdin"], "EPERM") << r.out;
  EXPECT_EQ(r.denials("ioctl").size(), 1u) << r.describe();
}

TEST(RunSyscalls, UserAndGroupAreThoseOfTheManifest) {
  TempDir dir;
  auto m = python_manifest();
  m["process"]["user"] = {{"uid", 1234}, {"gid", 4321}};
  auto r = run_enclosure(dir, m, python_agent(R"(
R["uid"] = list(os.getresuid())
R["gid"] = list(os.getresgid())
R["groups"] = os.getgroups()
R["fsuid_line"] = [l for l in open("/proc/self/status").read().splitlines() if l.startswith("Uid:")]
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["uid"], nlohmann::json::array({1234, 1234, 1234}));
  EXPECT_EQ(res["gid"], nlohmann::json::array({4321, 4321, 4321}));
  EXPECT_EQ(res["groups"], nlohmann::json::array());
  EXPECT_EQ(res["fsuid_line"], nlohmann::json::array({"Uid:\t1234\t1234\t1234\t1234"}));
  auto start = r.first("start");
  ASSERT_TRUE(start);
  EXPECT_EQ((*start)["agent_user"], (nlohmann::json{{"uid", 1234}, {"gid", 4321}}));
}
