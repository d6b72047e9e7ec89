// `enclosure daemon` and unprivileged `enclosure run --daemon`: the launcher runs as a user
// without privileges (setpriv) and gets the eBPF and cgroup layers from a daemon the test starts
// on a private bpffs mount, with its own cgroup subtree name. Checked through the kernel: the
// same allow and deny cases as the privileged tests, enforcement held while the daemon is down
// and after it re-adopts the run, one user's enclosure closed to another user, `enter` admitting
// only a child with the caller's credentials through its pidfd, callers inside an enclosure
// recognised by cgroup identity (a cgroup namespace changes nothing), and each user's forwarded
// records bounded by the daemon's --event-rate with exact totals.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "launcher/daemon/client.h"
#include "tests/kernel/harness.h"

using harness::BackgroundRun;
using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_command;
using harness::run_enclosure;
using harness::TempDir;

namespace {

constexpr const char* kUserA = "61001:61001";
constexpr const char* kUserB = "61002:61002";

// A TCP listener on 127.0.0.1 with a port the kernel picks.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 64);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A daemon of the test's own: private bpffs, state directory, socket and cgroup subtree; a copy
// of the binary that unprivileged users can execute.
class TestDaemon {
 public:
  explicit TestDaemon(const TempDir& dir, std::vector<std::string> extra_args = {})
      : dir_(dir), extra_args_(std::move(extra_args)) {
    ::chmod(dir_.path().c_str(), 01777);
    binary_ = dir_.file("enclosure");
    std::filesystem::copy_file(harness::enclosure_binary(), binary_);
    ::chmod(binary_.c_str(), 0755);
    bpffs_ = dir_.file("bpffs");
    ::mkdir(bpffs_.c_str(), 0700);
    mounted_ = ::mount("bpf", bpffs_.c_str(), "bpf", 0, nullptr) == 0;
    socket_ = dir_.file("daemon.sock");
    cgroup_ = "enclosure-daemon-test-" + std::to_string(::getpid());
    start();
  }
  ~TestDaemon() {
    stop(SIGTERM);
    if (mounted_) ::umount2(bpffs_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& socket() const { return socket_; }
  const std::string& binary() const { return binary_; }
  std::string subtree() const { return "/sys/fs/cgroup/unified/" + cgroup_; }
  const std::string& cgroup_name() const { return cgroup_; }
  std::string pins() const { return bpffs_ + "/pins"; }
  std::string state() const { return dir_.file("state"); }
  std::string log() const { return slurp(dir_.file("daemon.log")); }

  void start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      int log = ::open(dir_.file("daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(log, 2);
      ::setpgid(0, 0);
      std::vector<std::string> args = {binary_,     "daemon", "--socket",        socket_,
                                       "--pin-dir", pins(),   "--state-dir",     state(),
                                       "--cgroup",  cgroup_,  "--adopt-timeout", "20s"};
      args.insert(args.end(), extra_args_.begin(), extra_args_.end());
      std::vector<char*> argv;
      for (std::string& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary_.c_str(), argv.data());
      ::_exit(127);
    }
    harness::wait_until(
        [&] {
          return slurp(dir_.file("daemon.log")).find("listening on") != std::string::npos ||
                 ::waitpid(pid_, nullptr, WNOHANG) == pid_;
        },
        15000);
  }
  // Stops the daemon; returns its exit status (-1 when it was not running).
  int stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  harness::RunOptions as(const std::string& user) const {
    harness::RunOptions o;
    o.as_user = user;
    o.binary = binary_;
    o.extra_args = {"--daemon", socket_};
    return o;
  }

 private:
  const TempDir& dir_;
  std::vector<std::string> extra_args_;
  std::string binary_, bpffs_, socket_, cgroup_;
  bool mounted_ = false;
  pid_t pid_ = -1;
};

// A python client of the daemon's protocol (length-prefixed JSON frames) that prints each reply
// as one JSON line: `requests` is a JSON list of requests sent in order on one connection.
std::vector<std::string> protocol_client(const std::string& socket,
                                         const nlohmann::json& requests) {
  static const char* const kClient = R"(import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"ok": False, "error": "connect: " + str(e)}), flush=True)
    sys.exit(0)
def recv_exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b
for req in json.loads(sys.argv[2]):
    data = json.dumps(req).encode()
    try:
        s.sendall(struct.pack("=I", len(data)) + data)
        n = struct.unpack("=I", recv_exact(4))[0]
        print(recv_exact(n).decode(), flush=True)
    except (EOFError, OSError) as e:
        print(json.dumps({"ok": False, "error": "connection: " + type(e).__name__}), flush=True)
        break
)";
  return {"/usr/bin/python3", "-c", kClient, socket, requests.dump()};
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return out;
}

nlohmann::json network_manifest(int allowed_port) {
  nlohmann::json m = base_manifest("daemon-agent", {"/usr/bin/python3", "/usr/bin/true"});
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {allowed_port}}}}}};
  m["budgets"] = {{"wall_clock", "60s"}, {"processes", 32}, {"memory", "256MiB"}};
  return m;
}

void expect_daemon_cleaned_up(const TestDaemon& d) {
  EXPECT_FALSE(std::filesystem::exists(d.subtree())) << d.log();
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/pids/" + d.subtree().substr(23)));
  EXPECT_FALSE(std::filesystem::exists(d.pins())) << d.log();
  // In every hierarchy (v2, v1 pids and memory): this daemon's subtree only, so that runs of
  // other tests side by side do not count.
  EXPECT_TRUE(harness::leftover_cgroups(d.cgroup_name()).empty()) << d.log();
}

// Runs `body` in a forked child as `uid`:`gid` (no supplementary groups) and returns what it
// returns; `prepare` runs first, still as root (e.g. to change the child's cgroup).
std::string in_child_as(uid_t uid, gid_t gid, const std::function<void()>& prepare,
                        const std::function<std::string()>& body) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(out[0]);
    std::string text;
    try {
      prepare();
      if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
          ::setresuid(uid, uid, uid) != 0) {
        text = "cannot change to the test user";
      } else {
        text = body();
      }
    } catch (const std::exception& e) {
      text = std::string("exception: ") + e.what();
    }
    for (size_t at = 0; at < text.size();) {
      ssize_t n = ::write(out[1], text.data() + at, text.size() - at);
      if (n <= 0) break;
      at += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  ::waitpid(pid, nullptr, 0);
  return text;
}

// What the launcher side hands to `enter`: a child running `program`, or one that has exited
// (a zombie, or reaped: its pidfd then refers to no process at all).
enum class EnterTarget { running, zombie, reaped };

// The launcher's side of `enter`, in the test user's process: creates a run, starts a child
// (`program 60`), takes its pidfd and asks the daemon to move it. JSON: the daemon's answer
// ("error", "" when admitted), the child's v2 cgroup before and after, and the run's members.
std::string ask_to_enter(const std::string& socket, const std::string& program,
                         EnterTarget target) {
  launcher::DaemonClient client(socket);
  client.create(launcher::CreateRequest{});
  int exec_done[2];
  if (::pipe2(exec_done, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    if (target != EnterTarget::running) ::_exit(0);
    ::execl(program.c_str(), program.c_str(), "60", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(exec_done[1]);
  char byte;
  while (::read(exec_done[0], &byte, 1) > 0) {
  }
  ::close(exec_done[0]);  // EOF: the child has exec'd (its end was close-on-exec) or exited
  siginfo_t info{};
  if (target != EnterTarget::running) ::waitid(P_PID, pid, &info, WEXITED | WNOWAIT);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (target == EnterTarget::reaped) ::waitpid(pid, nullptr, 0);
  std::string cgroup_file = "/proc/" + std::to_string(pid) + "/cgroup";
  nlohmann::json out = {{"pid", pid}, {"pidfd", pidfd}, {"before", slurp(cgroup_file)}};
  try {
    client.enter(pidfd);
    out["error"] = "";
  } catch (const std::exception& e) {
    out["error"] = e.what();
  }
  out["after"] = slurp(cgroup_file);
  out["run_procs"] = slurp(client.cgroup().v2 + "/cgroup.procs");
  out["run"] = client.cgroup().v2;
  if (target != EnterTarget::reaped) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  ::close(pidfd);
  client.release();
  return out.dump();
}

// The v2 cgroup directory of a standalone run whose launcher is `launcher`: the cgroup of the
// launcher's child that sits in an "enclosure-" cgroup, as the host names it.
std::string run_cgroup_of(pid_t launcher) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = slurp("/proc/" + name + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent != launcher) continue;
    std::istringstream lines(slurp("/proc/" + name + "/cgroup"));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("0::", 0) == 0 && line.find("/enclosure-") != std::string::npos) {
        return "/sys/fs/cgroup/unified" + line.substr(3);
      }
    }
  }
  return "";
}

// A cgroup v2 directory of the test's own (with a child "nested"), removed on destruction.
class TestCgroup {
 public:
  explicit TestCgroup(const std::string& name) : path_("/sys/fs/cgroup/unified/" + name) {
    ::mkdir(path_.c_str(), 0755);
    ::mkdir(nested().c_str(), 0755);
  }
  ~TestCgroup() {
    for (const std::string& dir : {nested(), path_}) {
      for (int i = 0; i < 50 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
        ::usleep(20000);
    }
  }
  const std::string& path() const { return path_; }
  std::string nested() const { return path_ + "/nested"; }

 private:
  std::string path_;
};

// As user A, from `cgroup` and in a cgroup namespace of its own rooted there: greets the daemon.
// JSON: the cgroup the caller sees for itself and the daemon's answer ("" when admitted).
nlohmann::json hello_from_cgroup_namespace(const std::string& socket, const std::string& cgroup) {
  std::string text = in_child_as(
      61001, 61001,
      [&] {
        std::ofstream(cgroup + "/cgroup.procs") << ::getpid() << std::flush;
        if (::unshare(CLONE_NEWCGROUP) != 0) throw std::runtime_error("unshare(CLONE_NEWCGROUP)");
      },
      [&] {
        nlohmann::json out = {{"cgroup", slurp("/proc/self/cgroup")}};
        try {
          launcher::DaemonClient client(socket);
          out["answer"] = "";
        } catch (const std::exception& e) {
          out["answer"] = e.what();
        }
        return out.dump();
      });
  return nlohmann::json::parse(text, nullptr, false);
}

}  // namespace

TEST(Daemon, UnprivilegedRunGetsTheSameAllowAndDenyDecisions) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted()) << "mount bpffs";
  Listener allowed, denied;
  dir.write("outside/secret.txt", "secret");
  nlohmann::json m = network_manifest(allowed.port());
  m["budgets"]["tool_calls"] = 3;
  harness::RunResult r =
      run_enclosure(dir, m,
                    python_agent(R"(
import socket, subprocess
def connect(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.close()
t("uid", lambda: os.getuid())
t("allowed", lambda: connect(int(A[0])))
t("denied", lambda: connect(int(A[1])))
t("outside", lambda: open(A[2]).read())
t("write_usr", lambda: open("/usr/enclosure-test", "w"))
t("mount", lambda: sc(165, b"none", b"/tmp", b"tmpfs", 0, 0))
t("not_a_tool", lambda: subprocess.run(["/usr/bin/id"]).returncode)
t("cgroup", lambda: open("/proc/self/cgroup").read())
def forks():
    kids = []
    try:
        for i in range(64):
            pid = os.fork()
            if pid == 0:
                import time
                time.sleep(5)
                os._exit(0)
            kids.append(pid)
    finally:
        for k in kids:
            os.kill(k, 9)
            os.waitpid(k, 0)
t("forks", forks)
)",
                                 {std::to_string(allowed.port()), std::to_string(denied.port()),
                                  dir.file("outside/secret.txt")}),
                    daemon.as(kUserA));
  ASSERT_EQ(r.exit_code, 0) << r.describe() << daemon.log();
  nlohmann::json res = python_result(r);
  EXPECT_EQ(res["allowed"], "ok") << res;
  EXPECT_EQ(res["denied"], "EPERM") << res;
  EXPECT_TRUE(res["outside"] == "ENOENT" || res["outside"] == "EACCES") << res;
  EXPECT_TRUE(res["write_usr"] == "EROFS" || res["write_usr"] == "EACCES") << res;
  EXPECT_EQ(res["mount"], -1) << res;  // EPERM from the seccomp profile
  EXPECT_TRUE(res["not_a_tool"] == "ENOENT" || res["not_a_tool"] == "EACCES") << res;
  // The agent sees its cgroup as the root of its cgroup namespace, not the host's paths.
  EXPECT_NE(res["cgroup"].get<std::string>().find("0::/\n"), std::string::npos) << res;
  EXPECT_EQ(res["cgroup"].get<std::string>().find("enclosure-daemon-test-"), std::string::npos)
      << res;
  // The daemon's pids limit (32) holds: a burst of children meets EAGAIN.
  EXPECT_EQ(res["forks"], "EAGAIN") << res;
  // The deny event came from the daemon's eBPF programs, through the daemon, to this launcher.
  bool connect_denied = false;
  for (const nlohmann::json& e : r.of_type("deny")) {
    if (e.value("section", "") == "network" &&
        e.dump().find(std::to_string(denied.port())) != std::string::npos) {
      connect_denied = true;
    }
  }
  EXPECT_TRUE(connect_denied) << r.describe();
  auto start = r.first("start");
  ASSERT_TRUE(start);
  EXPECT_EQ((*start)["invoked_by"]["uid"], 61001);
  EXPECT_NE((*start)["enforcement"]["layers"]["process"].dump().find("enclosure daemon at"),
            std::string::npos)
      << *start;
  EXPECT_FALSE(r.of_type("exec").empty()) << "exec records are forwarded by the daemon";

  // A budget the kernel enforces: the fourth tool call is killed by the daemon's programs.
  harness::RunResult b = run_enclosure(dir, m, python_agent(R"(
import subprocess
for i in range(6):
    subprocess.run(["/usr/bin/true"])
)"),
                                       daemon.as(kUserA));
  EXPECT_EQ(b.exit_code, 124) << b.describe();
  auto budget = b.first("budget");
  ASSERT_TRUE(budget) << b.describe();
  EXPECT_EQ((*budget)["name"], "tool_calls") << *budget;
  EXPECT_EQ((*b.first("exit"))["ended_by"], "budget") << b.describe();

  // doctor, as the same user, reports what the daemon provides.
  harness::RunOptions as_a;
  as_a.as_user = kUserA;
  harness::RunResult doctor =
      run_command({daemon.binary(), "doctor", "-m", dir.write("doctor.json", m.dump()), "--daemon",
                   daemon.socket()},
                  as_a);
  EXPECT_EQ(doctor.exit_code, 0) << doctor.describe();
  EXPECT_NE(doctor.out.find("ok   eBPF enforcement layer: enclosure daemon at"), std::string::npos)
      << doctor.out;

  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, WithoutADaemonANonRootRunThatNeedsEbpfIsRefused) {
  TempDir dir;
  TestDaemon daemon(dir);  // for the readable binary; not used by this run
  ASSERT_FALSE(std::filesystem::exists("/run/enclosure/daemon.sock"))
      << "a node daemon listens on the default socket; this test needs it absent";
  harness::RunOptions o = daemon.as(kUserA);
  o.extra_args.clear();
  harness::RunResult r = run_enclosure(dir, network_manifest(80), {"/usr/bin/true"}, o);
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("enclosure daemon"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("allow_degraded"), std::string::npos) << r.err;
  // An unreachable --daemon is a launch error, never a silent run without the layers.
  o.extra_args = {"--daemon", dir.file("nothing-here.sock")};
  harness::RunResult u = run_enclosure(dir, network_manifest(80), {"/usr/bin/true"}, o);
  EXPECT_EQ(u.exit_code, 125) << u.describe();
  EXPECT_NE(u.err.find("cannot reach enclosure daemon"), std::string::npos) << u.err;
  // doctor says the same: no eBPF layer for this user, and why.
  harness::RunOptions plain;
  plain.as_user = kUserA;
  harness::RunResult doctor = run_command(
      {daemon.binary(), "doctor", "-m", dir.write("doctor.json", network_manifest(80).dump())},
      plain);
  EXPECT_EQ(doctor.exit_code, 1) << doctor.describe();
  EXPECT_NE(doctor.out.find("--   enclosure daemon"), std::string::npos) << doctor.out;
}

TEST(Daemon, RestartMidRunKeepsEnforcingAndReadoptsTheRun) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  Listener allowed, denied;
  nlohmann::json m = network_manifest(allowed.port());
  std::string shared = dir.file("shared");
  ::mkdir(shared.c_str(), 0777);
  ::chmod(shared.c_str(), 0777);
  m["filesystem"]["write"] = {shared};
  // The agent tries the denied port every 50 ms and logs each result, until told to stop.
  BackgroundRun run(
      dir, m,
      python_agent(R"(
import socket, time
log = open(A[1] + "/attempts", "a", buffering=1)
print("ready", flush=True)
while not os.path.exists(A[1] + "/stop"):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", int(A[0])))
        log.write("CONNECTED\n")
    except OSError as e:
        log.write(errname(e.errno) + "\n")
    s.close()
    time.sleep(0.05)
s = socket.socket()
s.settimeout(5)
t("allowed_after", lambda: s.connect(("127.0.0.1", int(A[2]))))
)",
                   {std::to_string(denied.port()), shared, std::to_string(allowed.port())}),
      daemon.as(kUserA));
  ASSERT_EQ(run.read_line(20000), "ready") << daemon.log();
  auto attempts = [&] {
    std::string text = slurp(shared + "/attempts");
    return static_cast<long>(std::count(text.begin(), text.end(), '\n'));
  };
  ASSERT_TRUE(harness::wait_until([&] { return attempts() >= 5; }, 10000));
  // The daemon dies without any chance to clean up.
  EXPECT_EQ(daemon.stop(SIGKILL), 128 + SIGKILL);
  long before = attempts();
  ASSERT_TRUE(harness::wait_until([&] { return attempts() >= before + 10; }, 10000))
      << "the agent stopped while the daemon was down";
  long during = attempts();
  daemon.start();
  ASSERT_TRUE(harness::wait_until(
      [&] { return daemon.log().find("re-attached") != std::string::npos; }, 10000))
      << daemon.log();
  ASSERT_TRUE(harness::wait_until([&] { return attempts() >= during + 5; }, 10000));
  std::ofstream(shared + "/stop").put('x');
  harness::RunResult r = run.wait(30000);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << daemon.log();
  std::string log = slurp(shared + "/attempts");
  EXPECT_EQ(log.find("CONNECTED"), std::string::npos) << "a denied connect got through:\n" << log;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line))
    EXPECT_EQ(line, "EPERM") << log;
  EXPECT_GT(during, before);
  EXPECT_EQ(python_result(r)["allowed_after"], "ok") << r.describe();
  EXPECT_TRUE(r.first("exit")) << r.describe();
  EXPECT_NE(daemon.log().find("re-adopted run"), std::string::npos) << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, ASecondUserCannotReadOrChangeTheFirstUsersEnclosure) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  Listener allowed;
  nlohmann::json m = network_manifest(allowed.port());
  std::string shared = dir.file("shared");
  ::mkdir(shared.c_str(), 0777);
  ::chmod(shared.c_str(), 0777);
  m["filesystem"]["write"] = {shared};
  // The socket's directory is visible inside, so the agent can try to reach the daemon too.
  m["filesystem"]["read"].push_back(dir.path());
  BackgroundRun run(dir, m,
                    python_agent(R"(
import time
print("ready", flush=True)
while not os.path.exists(A[0] + "/stop"):
    time.sleep(0.05)
)",
                                 {shared}),
                    daemon.as(kUserA));
  ASSERT_EQ(run.read_line(20000), "ready") << daemon.log();
  // The run's token, as if it had leaked: only root can read the daemon's state.
  std::string token;
  for (const auto& e : std::filesystem::directory_iterator(daemon.state())) {
    token = e.path().stem().string();
  }
  ASSERT_EQ(token.size(), 32u) << daemon.log();
  struct stat st {};
  ASSERT_EQ(::stat(daemon.state().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u) << "the state directory is private to root";

  harness::RunOptions as_b;
  as_b.as_user = kUserB;
  harness::RunResult b =
      run_command(protocol_client(daemon.socket(), {{{"op", "adopt"}, {"token", token}},
                                                    {{"op", "events"}, {"token", token}},
                                                    {{"op", "counters"}},
                                                    {{"op", "kill"}},
                                                    {{"op", "admit"},
                                                     {"cidr", "127.0.0.1/32"},
                                                     {"protocol", "tcp"},
                                                     {"ports", {{1, 65535}}},
                                                     {"rule", 0}},
                                                    {{"op", "release"}}}),
                  as_b);
  std::vector<nlohmann::json> replies = json_lines(b.out);
  ASSERT_EQ(replies.size(), 6u) << b.describe();
  for (const nlohmann::json& reply : replies)
    EXPECT_EQ(reply["ok"], false) << reply;
  EXPECT_NE(replies[0]["error"].get<std::string>().find("no such run of uid 61002"),
            std::string::npos)
      << replies[0];
  // Nor through the file system: the run's cgroup is root:61001 0750.
  std::string run_cgroup;
  for (const auto& e : std::filesystem::directory_iterator(daemon.subtree())) {
    if (e.is_directory()) run_cgroup = e.path();
  }
  ASSERT_FALSE(run_cgroup.empty());
  harness::RunResult ls = run_command({"ls", run_cgroup}, as_b);
  EXPECT_NE(ls.exit_code, 0) << ls.describe();
  harness::RunResult write =
      run_command({"sh", "-c", "echo $$ > " + run_cgroup + "/cgroup.procs"}, as_b);
  EXPECT_NE(write.exit_code, 0) << write.describe();

  // The agent itself (same uid as its launcher) is refused: it runs inside an enclosure. Its
  // manifest names the daemon's socket (network.unix), else the connect itself would be EACCES.
  harness::RunOptions as_a = daemon.as(kUserA);
  nlohmann::json named = m;
  named["network"]["unix"] = {daemon.socket()};
  harness::RunResult inside =
      run_enclosure(dir, named, protocol_client(daemon.socket(), {{{"op", "hello"}}}), as_a);
  std::vector<nlohmann::json> inside_replies = json_lines(inside.out);
  ASSERT_FALSE(inside_replies.empty()) << inside.describe();
  EXPECT_EQ(inside_replies[0]["ok"], false) << inside.describe();
  EXPECT_NE(inside_replies[0].value("error", "").find("inside an enclosure"), std::string::npos)
      << inside_replies[0];

  // User A's run is untouched by all of this and ends normally.
  std::ofstream(shared + "/stop").put('x');
  harness::RunResult a = run.wait(30000);
  EXPECT_EQ(a.exit_code, 0) << a.describe() << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, ALauncherKilledMidRunTakesItsEnclosureWithIt) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  nlohmann::json m = network_manifest(80);
  BackgroundRun run(dir, m, python_agent(R"(
import time
print("ready", flush=True)
time.sleep(60)
)"),
                    daemon.as(kUserA));
  ASSERT_EQ(run.read_line(20000), "ready") << daemon.log();
  run.kill(SIGKILL);
  run.wait(10000);
  // The daemon saw the launcher's connection close: it killed the run and removed its cgroup.
  EXPECT_TRUE(harness::wait_until(
      [&] {
        for (const auto& e : std::filesystem::directory_iterator(daemon.subtree())) {
          if (e.is_directory()) return false;
        }
        return true;
      },
      10000))
      << daemon.log();
  EXPECT_NE(daemon.log().find("its launcher disconnected"), std::string::npos) << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, ADaemonThatCannotStartSaysWhyAndLeavesNothingBehind) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  // A second daemon on the same socket would share the first one's pins, state and subtree.
  harness::RunResult second = run_command({daemon.binary(), "daemon", "--socket", daemon.socket(),
                                           "--pin-dir", daemon.pins(), "--state-dir",
                                           daemon.state(), "--cgroup", "enclosure-daemon-second"});
  EXPECT_EQ(second.exit_code, 125) << second.describe();
  EXPECT_NE(second.err.find("another daemon listens"), std::string::npos) << second.err;
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/unified/enclosure-daemon-second"));
  // The first one is unharmed: a run through it works.
  harness::RunResult r =
      run_enclosure(dir, network_manifest(80), {"/usr/bin/true"}, daemon.as(kUserA));
  EXPECT_EQ(r.exit_code, 0) << r.describe() << daemon.log();
  // Pins outside bpffs: refused before anything is created.
  std::string cgroup = "enclosure-daemon-nopins-" + std::to_string(::getpid());
  harness::RunResult nopins = run_command(
      {daemon.binary(), "daemon", "--socket", dir.file("other.sock"), "--pin-dir",
       dir.file("not-bpffs/pins"), "--state-dir", dir.file("other-state"), "--cgroup", cgroup});
  EXPECT_EQ(nopins.exit_code, 125) << nopins.describe();
  EXPECT_NE(nopins.err.find("is not in a bpffs mount"), std::string::npos) << nopins.err;
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/unified/" + cgroup));
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/pids/" + cgroup));
  EXPECT_FALSE(std::filesystem::exists(dir.file("other-state")));
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, EnterAdmitsOnlyALiveChildWithAllOfTheCallersIdsThroughItsPidfd) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  // Copies of sleep: setuid root, setgid root and plain (the test directory is not nosuid).
  auto copy_sleep = [&](const std::string& name, mode_t mode) {
    std::string path = dir.file(name);
    std::filesystem::copy_file("/usr/bin/sleep", path);
    EXPECT_EQ(::chown(path.c_str(), 0, 0), 0);
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  };
  std::string setuid_sleep = copy_sleep("setuid-sleep", 04755);
  std::string setgid_sleep = copy_sleep("setgid-sleep", 02755);
  std::string plain_sleep = copy_sleep("plain-sleep", 0755);
  // A file-capability program (cap_net_bind_service, effective): no id changes, but AT_SECURE.
  std::string capability_sleep = copy_sleep("capability-sleep", 0755);
  const uint32_t capability[5] = {0x02000000u | 1u, 1u << 10, 0, 0, 0};  // VFS_CAP_REVISION_2
  ASSERT_EQ(
      ::setxattr(capability_sleep.c_str(), "security.capability", capability, sizeof capability, 0),
      0);
  auto enter = [&](const std::string& program, EnterTarget target) {
    std::string text = in_child_as(
        61001, 61001, [] {}, [&] { return ask_to_enter(daemon.socket(), program, target); });
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    EXPECT_TRUE(j.is_object()) << text << daemon.log();
    return j.is_object() ? j : nlohmann::json::object();
  };

  // A plain child of the caller is admitted: it is then in the run's cgroup.
  nlohmann::json plain = enter(plain_sleep, EnterTarget::running);
  EXPECT_EQ(plain.value("error", "?"), "") << plain << daemon.log();
  EXPECT_NE(plain.value("after", "").find(daemon.subtree().substr(22) + "/run-"), std::string::npos)
      << plain;

  // A setuid-root child: its effective and saved uids are 0, AT_SECURE is set. Refused, and it
  // stays where it was.
  nlohmann::json setuid = enter(setuid_sleep, EnterTarget::running);
  EXPECT_NE(setuid.value("error", "")
                .find("may not enter the caller's run: its user and group "
                      "ids (real, effective, saved, file system: Uid 61001\t0"),
            std::string::npos)
      << setuid;
  EXPECT_FALSE(setuid.value("before", "").empty()) << setuid;
  EXPECT_EQ(setuid.value("after", "?"), setuid.value("before", "")) << setuid;
  EXPECT_EQ(setuid.value("run_procs", "?"), "") << setuid;
  // A file-capability child keeps every id: refused for its AT_SECURE image.
  nlohmann::json capable = enter(capability_sleep, EnterTarget::running);
  EXPECT_NE(capable.value("error", "")
                .find("it runs a setuid, setgid or file-capability program (AT_SECURE)"),
            std::string::npos)
      << capable;
  EXPECT_EQ(capable.value("after", "?"), capable.value("before", "")) << capable;
  EXPECT_EQ(capable.value("run_procs", "?"), "") << capable;
  // A setgid child: its gids differ. Refused the same way.
  nlohmann::json setgid = enter(setgid_sleep, EnterTarget::running);
  EXPECT_NE(setgid.value("error", "").find("may not enter the caller's run"), std::string::npos)
      << setgid;
  EXPECT_EQ(setgid.value("after", "?"), setgid.value("before", "")) << setgid;
  EXPECT_EQ(setgid.value("run_procs", "?"), "") << setgid;

  // A child that has exited. The daemon never acts on the pid number alone: it opens /proc/PID
  // and only then shows through the pidfd that this very process is still alive with that pid,
  // reads everything through that directory, and after the cgroup.procs write shows through the
  // pidfd again that the process was alive throughout (a pid is reused only after its process
  // is gone). So a reused pid is refused exactly like the exited process here, and whatever a
  // write in that window moved is moved out again.
  nlohmann::json zombie = enter(plain_sleep, EnterTarget::zombie);
  EXPECT_NE(zombie.value("error", "").find("may not enter the caller's run"), std::string::npos)
      << zombie;
  EXPECT_EQ(zombie.value("after", "?"), zombie.value("before", "")) << zombie;
  EXPECT_EQ(zombie.value("run_procs", "?"), "") << zombie;
  nlohmann::json reaped = enter(plain_sleep, EnterTarget::reaped);
  EXPECT_GE(reaped.value("pidfd", -1), 0) << reaped;
  EXPECT_NE(reaped.value("error", "").find("not a pidfd of a live process"), std::string::npos)
      << reaped;
  EXPECT_EQ(reaped.value("run_procs", "?"), "") << reaped;

  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, ACallerInAnEnclosuresCgroupIsRefusedByIdentityWhateverItsNamespace) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  // A standalone run's cgroup carries the mark the daemon looks for.
  nlohmann::json m = base_manifest("marked-run", {"/usr/bin/python3"});
  std::string shared = dir.file("shared");
  ::mkdir(shared.c_str(), 0777);
  m["filesystem"]["write"] = {shared};
  std::string run_cgroup;
  {
    BackgroundRun run(dir, m,
                      python_agent(R"(
import time
print("ready", flush=True)
while not os.path.exists(A[0] + "/stop"):
    time.sleep(0.05)
)",
                                   {shared}));
    ASSERT_EQ(run.read_line(20000), "ready");
    run_cgroup = run_cgroup_of(run.pid());
    ASSERT_FALSE(run_cgroup.empty());
    char mark[128] = {};
    ssize_t n = ::getxattr(run_cgroup.c_str(), "trusted.enclosure.run", mark, sizeof mark - 1);
    EXPECT_GT(n, 0) << run_cgroup;
    EXPECT_EQ(std::string(mark), std::filesystem::path(run_cgroup).filename().string());
    std::ofstream(shared + "/stop").put('x');
    EXPECT_EQ(run.wait(30000).exit_code, 0);
  }
  EXPECT_TRUE(harness::wait_until([&] { return !std::filesystem::exists(run_cgroup); }, 10000));

  // A cgroup named like nothing in particular but marked as a run's; the caller sits in a child
  // of it, in a cgroup namespace rooted there: it sees itself at "/", the daemon (in the host's
  // namespace) sees the real path and finds the mark on an ancestor.
  std::string suffix = std::to_string(::getpid());
  TestCgroup marked("daemon-test-marked-" + suffix);
  std::string value = "daemon-test-marked-" + suffix;
  ASSERT_EQ(
      ::setxattr(marked.path().c_str(), "trusted.enclosure.run", value.data(), value.size(), 0), 0);
  nlohmann::json inside = hello_from_cgroup_namespace(daemon.socket(), marked.nested());
  EXPECT_NE(inside.value("cgroup", "").find("0::/\n"), std::string::npos) << inside;
  EXPECT_NE(inside.value("answer", "").find("refused: the caller runs inside an enclosure"),
            std::string::npos)
      << inside << daemon.log();
  // The same from an unmarked cgroup is admitted: the refusal came from the mark, not from the
  // namespace or the user.
  TestCgroup plain("daemon-test-plain-" + suffix);
  nlohmann::json outside = hello_from_cgroup_namespace(daemon.socket(), plain.nested());
  EXPECT_NE(outside.value("cgroup", "").find("0::/\n"), std::string::npos) << outside;
  EXPECT_EQ(outside.value("answer", "?"), "") << outside << daemon.log();

  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  expect_daemon_cleaned_up(daemon);
}

TEST(Daemon, EachUsersForwardedRecordsAreBoundedAndTheTotalsStayExact) {
  constexpr uint64_t kRate = 100, kBurst = 300;
  TempDir dir;
  TestDaemon daemon(
      dir, {"--event-rate", std::to_string(kRate) + "/s", "--event-burst", std::to_string(kBurst)});
  ASSERT_TRUE(daemon.mounted());
  Listener denied;
  nlohmann::json m = network_manifest(1);
  auto started = std::chrono::steady_clock::now();
  harness::RunResult r = run_enclosure(dir, m,
                                       python_agent(R"(
import socket
n = 0
for i in range(20000):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(A[0])))
    except PermissionError:
        n += 1
    s.close()
R["denied"] = n
)",
                                                    {std::to_string(denied.port())}),
                                       daemon.as(kUserA));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(r.exit_code, 0) << r.describe() << daemon.log();
  EXPECT_EQ(python_result(r)["denied"], 20000) << r.describe();
  const nlohmann::json& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  const nlohmann::json& k = exit["budgets"]["kernel_events"];
  uint64_t records = k["records"].get<uint64_t>();
  uint64_t lost_total = k["lost"].get<uint64_t>();
  EXPECT_GE(records, 20000u) << exit.dump();
  EXPECT_EQ(k["network_denials"], 20000) << exit.dump();
  // What the daemon forwarded is bounded by the user's burst and rate over the run's life.
  std::set<uint64_t> delivered;
  for (const nlohmann::json& e : r.events) {
    if (e.contains("kseq")) delivered.insert(e["kseq"].get<uint64_t>());
  }
  EXPECT_LE(delivered.size(), kBurst + kRate * static_cast<uint64_t>(seconds + 1)) << seconds;
  // Never silent: `lost` events add up to the total, and delivered + lost is every record.
  uint64_t lost_sum = 0;
  for (const nlohmann::json& e : r.of_type("lost"))
    lost_sum += e["count"].get<uint64_t>();
  EXPECT_GT(lost_total, 0u) << exit.dump();
  EXPECT_EQ(lost_sum, lost_total) << exit.dump();
  EXPECT_EQ(delivered.size() + lost_total, records) << exit.dump();
  EXPECT_NE(daemon.log().find("record(s) over the user's --event-rate"), std::string::npos)
      << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  expect_daemon_cleaned_up(daemon);
}

// `enclosure ps` and `enclosure stop` for a user whose runs come through the daemon: the
// launcher (the user's process) listens in the user's runtime directory; the user sees and
// stops its own run, another user sees nothing, and root sees it too.
TEST(Daemon, PsAndStopWorkForTheUserWhoseRunItIs) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  std::string runtime = dir.file("runtime-a");
  ::mkdir(runtime.c_str(), 0700);
  ASSERT_EQ(::chown(runtime.c_str(), 61001, 61001), 0);
  std::string name = "daemon-ps-" + std::to_string(::getpid());
  nlohmann::json m = base_manifest(name, {"/usr/bin/sleep"});
  harness::RunOptions as_a = daemon.as(kUserA);
  as_a.env["XDG_RUNTIME_DIR"] = runtime;
  harness::BackgroundRun run(dir, m, {"sleep", "60"}, as_a);
  auto listed = [&](const harness::RunOptions& who) -> nlohmann::json {
    harness::RunResult r = run_command({daemon.binary(), "ps", "--json"}, who);
    for (const nlohmann::json& s : nlohmann::json::parse(r.out, nullptr, false)) {
      if (s.is_object() && s["manifest"].value("name", "") == name) return s;
    }
    return nullptr;
  };
  harness::RunOptions ps_a;
  ps_a.as_user = kUserA;
  ps_a.env["XDG_RUNTIME_DIR"] = runtime;
  nlohmann::json status;
  harness::wait_until([&] { return !(status = listed(ps_a)).is_null(); }, 10000);
  ASSERT_FALSE(status.is_null()) << daemon.log();
  EXPECT_EQ(status["uid"], 61001);
  harness::RunOptions ps_b;
  ps_b.as_user = kUserB;
  EXPECT_TRUE(listed(ps_b).is_null());
  harness::RunResult stop_b = run_command({daemon.binary(), "stop", status["run"]}, ps_b);
  EXPECT_EQ(stop_b.exit_code, 1) << stop_b.describe();
  harness::RunResult stop_a = run_command({daemon.binary(), "stop", status["run"]}, ps_a);
  EXPECT_EQ(stop_a.exit_code, 0) << stop_a.describe();
  harness::RunResult r = run.wait();
  ASSERT_TRUE(r.first("exit")) << r.describe();
  EXPECT_EQ((*r.first("exit"))["ended_by"], "stopped");
  EXPECT_FALSE(std::filesystem::exists(runtime + "/enclosure/runs/" +
                                       status["run"].get<std::string>() + ".sock"));
}

// Without root the launcher cannot set vm.memfd_noexec (only the host's root writes /proc/sys,
// and Landlock cannot refuse a memfd): the daemon sets it in the run's pid namespace when the
// run's pid 1 enters — and never the host's own value.
TEST(Daemon, AMemfdCopyOfAToolDoesNotRunInAnUnprivilegedRun) {
  std::string host_value = slurp("/proc/sys/vm/memfd_noexec");
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted());
  nlohmann::json m = base_manifest("daemon-memfd", {"/usr/bin/python3", "/usr/bin/true"});
  harness::RunResult r = run_enclosure(dir, m, python_agent(R"(
import os
fd = os.memfd_create("copy", 0)
os.write(fd, open("/usr/bin/true", "rb").read())
pid = os.fork()
if pid == 0:
    try:
        os.execv("/proc/self/fd/%d" % fd, ["true"])
    except OSError as e:
        os._exit(e.errno)
    os._exit(99)
R["exec"] = errname(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
)"),
                                       daemon.as(kUserA));
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe() << daemon.log();
  EXPECT_EQ(res["exec"], "EACCES") << res;
  // An `enter` of a process in the daemon's own pid namespace changes nothing on the host.
  EXPECT_EQ(slurp("/proc/sys/vm/memfd_noexec"), host_value);
}

TEST(Daemon, RefusalsOfTheMountViewAreDenyEventsThroughTheDaemon) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted()) << "mount bpffs";
  nlohmann::json m = base_manifest("daemon-refusals", {"/usr/bin/python3"});
  harness::RunResult r = run_enclosure(dir, m, python_agent(R"(
t("write_usr", lambda: open("/usr/enclosure-refusal-test", "w"))
)"),
                                       daemon.as(kUserA));
  ASSERT_EQ(r.exit_code, 0) << r.describe() << daemon.log();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  ASSERT_TRUE(res["write_usr"] == "EROFS" || res["write_usr"] == "EACCES") << res;
  bool reported = false;
  for (const nlohmann::json& e : r.of_type("deny")) {
    reported = reported ||
               (e.value("section", "") == "filesystem" &&
                e.value("path", "") == "/usr/enclosure-refusal-test" &&
                e.value("origin", "") == "/filesystem/read/0" && e["action"] == res["write_usr"]);
  }
  EXPECT_TRUE(reported) << r.describe() << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

// network.unix through the daemon: the unix socket hooks are the daemon's, attached to its
// subtree; a socket of the host's under a read grant that the manifest does not name is EACCES
// with a deny event, the named one beside it is reached.
TEST(Daemon, UnixSocketsOnlyWhereNamedThroughTheDaemon) {
  TempDir dir;
  TestDaemon daemon(dir);
  ASSERT_TRUE(daemon.mounted()) << "mount bpffs";
  std::string host = dir.file("host");
  ::mkdir(host.c_str(), 0777);
  ::chmod(host.c_str(), 0777);
  std::vector<int> listeners;
  for (const char* name : {"app.sock", "other.sock"}) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = host + "/" + name;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
    ::chmod(path.c_str(), 0777);
    ASSERT_EQ(::listen(fd, 4), 0);
    listeners.push_back(fd);
  }
  nlohmann::json m = base_manifest("daemon-unix", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(host);
  m["network"]["unix"] = {host + "/app.sock"};
  harness::RunResult r = run_enclosure(dir, m,
                                       python_agent(R"(
import socket
t("named", lambda: socket.socket(socket.AF_UNIX).connect(A[0] + "/app.sock"))
t("other", lambda: socket.socket(socket.AF_UNIX).connect(A[0] + "/other.sock"))
)",
                                                    {host}),
                                       daemon.as(kUserA));
  for (int fd : listeners)
    ::close(fd);
  ASSERT_EQ(r.exit_code, 0) << r.describe() << daemon.log();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["named"], "ok");
  EXPECT_EQ(res["other"], "EACCES");
  bool reported = false;
  for (const nlohmann::json& e : r.of_type("deny")) {
    reported = reported || (e.value("origin", "") == "/network/unix" &&
                            e.value("path", "") == host + "/other.sock");
  }
  EXPECT_TRUE(reported) << r.describe() << daemon.log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

// audit.files through the daemon: the per-file `open_count` events come from the daemon's
// file_opens map in pages (more files than one page holds), one per file with every open, even
// where the daemon's --event-rate suppressed most of the `open` events; their counts add up to the
// exit totals. Another user cannot ask for them, and its own run gets only its own entries.
namespace {

constexpr int kDaemonAuditFiles = 5000;  // above kFileOpensPerPage: several pages
constexpr int kDaemonAuditOpensEach = 5;

// Checks that `r`'s open_count events add up to its exit event's file_opens totals; returns
// the opens of each path under `prefix`, failing on a path with two open_count events.
std::map<std::string, uint64_t> open_counts_under(const harness::RunResult& r,
                                                  const std::string& prefix) {
  std::map<std::string, uint64_t> under;
  uint64_t sum = 0, events = 0;
  for (const nlohmann::json& e : r.of_type("open_count")) {
    sum += e["opens"].get<uint64_t>();
    ++events;
    std::string path = e.value("path", "");
    if (path.rfind(prefix, 0) != 0) continue;
    EXPECT_EQ(under.count(path), 0u) << "two open_count events for " << path;
    under[path] = e["opens"].get<uint64_t>();
  }
  const nlohmann::json& exit = r.events.back();
  EXPECT_EQ(exit["type"], "exit") << r.describe();
  const nlohmann::json& f = exit["budgets"]["file_opens"];
  EXPECT_TRUE(f.is_object()) << exit.dump();
  if (!f.is_object()) return under;
  EXPECT_FALSE(f.contains("open_counts_failed")) << f;
  EXPECT_EQ(events, f["files"].get<uint64_t>()) << f;
  EXPECT_EQ(sum, f["opens"].get<uint64_t>() - f["unaggregated"].get<uint64_t>()) << f;
  return under;
}

}  // namespace

TEST(Daemon, OpenCountEventsComeThroughTheDaemonForEveryFileAndOnlyToItsUser) {
  TempDir dir;
  TestDaemon daemon(dir, {"--event-rate", "100/s", "--event-burst", "100"});
  ASSERT_TRUE(daemon.mounted());
  for (int i = 0; i < kDaemonAuditFiles; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "data/f%04d", i);
    dir.write(name, "x");
  }
  std::string data = dir.file("data");
  nlohmann::json m = base_manifest("daemon-audit-files", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(data);
  m["audit"] = {{"files", true}};
  harness::RunOptions as_a = daemon.as(kUserA);
  as_a.timeout_seconds = 120;
  BackgroundRun run(dir, m,
                    python_agent(R"(
import time
paths = [A[0] + "/f%04d" % i for i in range(int(A[1]))]
for _ in range(int(A[2])):
    for p in paths:
        os.close(os.open(p, os.O_RDONLY))
print("ready", flush=True)
while not os.path.exists(A[0] + "/stop"):
    time.sleep(0.05)
)",
                                 {data, std::to_string(kDaemonAuditFiles),
                                  std::to_string(kDaemonAuditOpensEach)}),
                    as_a);
  ASSERT_EQ(run.read_line(60000), "ready") << daemon.log();

  // User B, with user A's token as if it had leaked: no run on its connection, none to adopt.
  std::string token;
  for (const auto& e : std::filesystem::directory_iterator(daemon.state()))
    token = e.path().stem().string();
  ASSERT_EQ(token.size(), 32u) << daemon.log();
  harness::RunOptions as_b;
  as_b.as_user = kUserB;
  harness::RunResult probe =
      run_command(protocol_client(daemon.socket(), {{{"op", "hello"}},
                                                    {{"op", "file_opens"}, {"offset", 0}},
                                                    {{"op", "adopt"}, {"token", token}},
                                                    {{"op", "file_opens"}, {"offset", 4096}}}),
                  as_b);
  std::vector<nlohmann::json> replies = json_lines(probe.out);
  ASSERT_EQ(replies.size(), 4u) << probe.describe();
  EXPECT_EQ(replies[0]["ok"], true) << replies[0];
  for (size_t i = 1; i < replies.size(); ++i) {
    EXPECT_EQ(replies[i]["ok"], false) << replies[i];
    EXPECT_FALSE(replies[i].contains("entries")) << replies[i];
  }
  EXPECT_NE(replies[1].value("error", "").find("needs a run"), std::string::npos) << replies[1];
  EXPECT_NE(replies[2].value("error", "").find("no such run of uid 61002"), std::string::npos)
      << replies[2];

  // User B's own run, meanwhile: its launcher's file_opens names B's run, never A's.
  std::string mine = dir.write("b/mine", "x");
  nlohmann::json m_b = base_manifest("daemon-audit-files-b", {"/usr/bin/python3"});
  m_b["filesystem"]["read"].push_back(dir.file("b"));
  m_b["audit"] = {{"files", true}};
  harness::RunResult b = run_enclosure(dir, m_b,
                                       python_agent(R"(
for _ in range(3):
    os.close(os.open(A[0], os.O_RDONLY))
)",
                                                    {mine}),
                                       daemon.as(kUserB));
  ASSERT_EQ(b.exit_code, 0) << b.describe() << daemon.log();
  EXPECT_TRUE(open_counts_under(b, data).empty()) << "user B's run got user A's entries";
  std::map<std::string, uint64_t> b_counts = open_counts_under(b, mine);
  ASSERT_EQ(b_counts.size(), 1u) << b.describe();
  EXPECT_EQ(b_counts.begin()->second, 3u);

  std::ofstream(data + "/stop").put('x');
  harness::RunResult a = run.wait(60000);
  ASSERT_EQ(a.exit_code, 0) << a.describe() << daemon.log();
  std::map<std::string, uint64_t> counts = open_counts_under(a, data + "/f");
  EXPECT_EQ(counts.size(), static_cast<size_t>(kDaemonAuditFiles)) << daemon.log();
  for (const auto& [path, n] : counts)
    EXPECT_EQ(n, static_cast<uint64_t>(kDaemonAuditOpensEach)) << path;
  // The gap this closes: most first opens were over the user's --event-rate, so most files
  // have no `open` event, and `lost` says so.
  size_t open_events = 0;
  for (const nlohmann::json& e : a.of_type("open"))
    open_events += e.value("path", "").rfind(data + "/f", 0) == 0;
  EXPECT_LT(open_events, static_cast<size_t>(kDaemonAuditFiles));
  EXPECT_GT(a.events.back()["budgets"]["kernel_events"]["lost"].get<uint64_t>(), 0u);
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  expect_daemon_cleaned_up(daemon);
}
