// `enclosure daemon` and unprivileged `enclosure run --daemon`: the launcher runs as a user
// without privileges (setpriv) and gets the eBPF and cgroup layers from a daemon the test starts
// on a private bpffs mount, with its own cgroup subtree name. Checked through the kernel: the
// same allow and deny cases as the privileged tests, enforcement held while the daemon is down
// and after it re-adopts the run, and one user's enclosure closed to another user.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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
  explicit TestDaemon(const TempDir& dir) : dir_(dir) {
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
  std::string pins() const { return bpffs_ + "/pins"; }
  std::string state() const { return dir_.file("state"); }
  std::string log() const { return slurp(dir_.file("daemon.log")); }

  void start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      int log = ::open(dir_.file("daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(log, 2);
      ::setpgid(0, 0);
      ::execl(binary_.c_str(), binary_.c_str(), "daemon", "--socket", socket_.c_str(), "--pin-dir",
              pins().c_str(), "--state-dir", state().c_str(), "--cgroup", cgroup_.c_str(),
              "--adopt-timeout", "20s", static_cast<char*>(nullptr));
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
  EXPECT_TRUE(harness::leftover_cgroups().empty());
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
  EXPECT_TRUE(harness::leftover_cgroups().empty());
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

  // The agent itself (same uid as its launcher) is refused: it runs inside an enclosure.
  harness::RunOptions as_a = daemon.as(kUserA);
  harness::RunResult inside =
      run_enclosure(dir, m, protocol_client(daemon.socket(), {{{"op", "hello"}}}), as_a);
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
  EXPECT_TRUE(harness::leftover_cgroups().empty());
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
