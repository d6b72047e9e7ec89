// The agent's own terminal: with standard input a terminal (or --tty) the agent gets a
// pseudo-terminal of its own, from the enclosure's devpts (ttyname() and `tty` name it), as
// standard descriptors and controlling terminal, relayed by the launcher; its size follows the
// launcher's terminal; the launcher's terminal is in raw mode for the run and restored after it,
// however it ends; TIOCSTI stays denied on the agent's terminal; --no-tty keeps the plain
// descriptors.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

constexpr unsigned short kRows = 33;
constexpr unsigned short kCols = 111;

nlohmann::json python_manifest() {
  return base_manifest("terminal", {"/usr/bin/python3"});
}

// What an agent reports of its standard input: a terminal, its own controlling one, its size.
const char* const kTerminalFacts = R"(
import fcntl, struct, termios
R["isatty"] = os.isatty(0) and os.isatty(1) and os.isatty(2)
t("ttyname", lambda: os.ttyname(0))
t("ttyname_exists", lambda: os.path.exists(os.ttyname(0)))
t("dev_tty", lambda: os.close(os.open("/dev/tty", os.O_RDWR)))
t("foreground", lambda: os.tcgetpgrp(0) == os.getpgrp())
try:
    R["winsize"] = list(struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, bytes(8)))[:2])
except OSError as err:
    R["winsize"] = errname(err.errno)
)";

bool same_termios(const struct termios& a, const struct termios& b) {
  return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
         a.c_lflag == b.c_lflag && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

// A terminal this test owns: the launcher runs as the leader of a session whose controlling
// terminal (and standard input and output) is its slave; stderr goes to a file.
class TestTerminal {
 public:
  TestTerminal() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0)
      throw std::runtime_error("posix_openpt failed");
    slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave_ < 0) throw std::runtime_error("open the test's pty slave failed");
    struct winsize size {};
    size.ws_row = kRows;
    size.ws_col = kCols;
    ::ioctl(master_, TIOCSWINSZ, &size);
    ::tcgetattr(slave_, &before_);
  }
  ~TestTerminal() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(master_);
    ::close(slave_);
  }

  void start(const TempDir& dir, const nlohmann::json& manifest,
             const std::vector<std::string>& command, const std::vector<std::string>& extra) {
    events_path_ = dir.file("events.jsonl");
    err_path_ = dir.file("stderr.txt");
    std::vector<std::string> argv = {harness::enclosure_binary(),
                                     "run",
                                     "-m",
                                     dir.write("manifest.json", manifest.dump(2)),
                                     "--events",
                                     events_path_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    std::vector<char*> args;
    for (std::string& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      ::ioctl(slave_, TIOCSCTTY, 0);
      ::dup2(slave_, 0);
      ::dup2(slave_, 1);
      ::dup2(err, 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(err);
  }

  // Reads the launcher's output until `until` says so for what came so far (or it exited, or
  // `timeout_ms`); true when `until` did.
  bool read_until(const std::function<bool(const std::string&)>& until, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!until(output_)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return false;
      struct pollfd p {
        master_, POLLIN, 0
      };
      if (::poll(&p, 1, static_cast<int>(std::min<long>(left, 100))) > 0) {
        char buf[4096];
        ssize_t n = ::read(master_, buf, sizeof buf);
        if (n > 0) output_.append(buf, static_cast<size_t>(n));
      } else if (exited()) {
        return until(output_);
      }
    }
    return true;
  }

  const std::string& output() const { return output_; }
  void type(const std::string& text) { (void)!::write(master_, text.data(), text.size()); }
  // A new size for the test's terminal: the kernel signals SIGWINCH to the launcher.
  void resize(unsigned short rows, unsigned short cols) {
    struct winsize size {};
    size.ws_row = rows;
    size.ws_col = cols;
    ::ioctl(master_, TIOCSWINSZ, &size);
  }
  void signal(int sig) { ::kill(pid_, sig); }

  // Waits for the launcher (killing it after `timeout_ms`); collects its output and events.
  RunResult wait(int timeout_ms = 60000) {
    read_until([this](const std::string&) { return exited(); }, timeout_ms);
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      exited();
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    read_until([](const std::string&) { return false; }, 200);  // the rest of its output
    RunResult r;
    r.exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    r.out = output_;
    std::ifstream err(err_path_);
    r.err.assign(std::istreambuf_iterator<char>(err), {});
    std::ifstream events(events_path_);
    std::string line;
    while (std::getline(events, line)) {
      if (!line.empty()) r.events.push_back(nlohmann::json::parse(line));
    }
    return r;
  }

  // The test's terminal has the settings it had before the run.
  bool restored() const {
    struct termios after {};
    ::tcgetattr(slave_, &after);
    return same_termios(before_, after);
  }
  // The test's terminal is in raw mode (no echo, no canonical input) now.
  bool raw_now() const {
    struct termios now {};
    ::tcgetattr(slave_, &now);
    return !(now.c_lflag & (ICANON | ECHO | ISIG));
  }

 private:
  bool exited() {
    if (reaped_) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }

  int master_ = -1;
  int slave_ = -1;
  struct termios before_ {};
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::string output_;
  std::string events_path_, err_path_;
};

bool has_line(const std::string& output, const std::string& line) {
  return output.find(line + "\r\n") != std::string::npos ||
         output.find(line + "\n") != std::string::npos;
}

}  // namespace

TEST(RunTerminal, AgentGetsItsOwnTerminalWithSizeLinesAndNoInjection) {
  TempDir dir;
  TestTerminal tty;
  tty.start(dir, python_manifest(), python_agent(std::string(kTerminalFacts) + R"(
print("READY", flush=True)
R["line"] = sys.stdin.readline()
libc.ioctl.restype = ctypes.c_int
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
ctypes.set_errno(0)
rc = libc.ioctl(0, 0x5412, ctypes.create_string_buffer(b"x"))
R["tiocsti"] = errname(ctypes.get_errno()) if rc == -1 else rc
)"),
            {});
  ASSERT_TRUE(tty.read_until([](const std::string& o) { return has_line(o, "READY"); }, 30000))
      << tty.output() << tty.wait(1000).describe();
  EXPECT_TRUE(tty.raw_now()) << "the launcher's terminal is in raw mode during the run";
  tty.type("hello\n");
  RunResult r = tty.wait();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["isatty"], true) << res.dump();
  EXPECT_EQ(res["dev_tty"], "ok") << res.dump();
  EXPECT_EQ(res["foreground"], true) << res.dump();
  EXPECT_EQ(res["winsize"], nlohmann::json::array({kRows, kCols})) << res.dump();
  EXPECT_EQ(res["line"], "hello\n") << res.dump();
  EXPECT_EQ(res["tiocsti"], "EPERM") << res.dump();
  // The terminal is one of the enclosure's own /dev/pts: ttyname(0) names a path that exists.
  ASSERT_TRUE(res["ttyname"].is_string()) << res.dump();
  EXPECT_EQ(res["ttyname"].get<std::string>().rfind("/dev/pts/", 0), 0u) << res.dump();
  EXPECT_EQ(res["ttyname_exists"], true) << res.dump();
  auto denials = r.denials("ioctl");
  ASSERT_EQ(denials.size(), 1u) << r.describe();
  EXPECT_EQ(denials[0]["args"][0], "0x0") << denials[0].dump();
  EXPECT_EQ(denials[0]["args"][1], "0x5412") << denials[0].dump();
  EXPECT_EQ(denials[0]["action"], "EPERM") << denials[0].dump();
  auto start = r.first("start");
  ASSERT_TRUE(start) << r.describe();
  EXPECT_EQ((*start)["terminal"], true) << r.describe();
  EXPECT_TRUE(tty.restored()) << "the test's terminal settings after the run";
}

// What programs that need their terminal's name or size see: `tty` prints the agent's
// /dev/pts/N (which exists inside and belongs to the agent's user), /dev/tty opens, and
// `stty size` reports the launcher's terminal's size, at the start and after it changed.
TEST(RunTerminal, TtyAndSttySeeTheAgentsTerminalAndItsSize) {
  constexpr unsigned short kNewRows = 44;
  constexpr unsigned short kNewCols = 77;
  TempDir dir;
  TestTerminal tty;
  auto manifest = base_manifest("terminal", {"/usr/bin/python3", "/usr/bin/tty", "/usr/bin/stty"});
  tty.start(dir, manifest,
            python_agent(R"(
import fcntl, struct, subprocess, termios, time
def out(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, text=True).stdout.strip()
def size():
    return list(struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, bytes(8)))[:2])
R["tty"] = out(["/usr/bin/tty"])
t("tty_owned", lambda: os.stat(R["tty"]).st_uid == os.getuid())
t("dev_tty", lambda: os.close(os.open("/dev/tty", os.O_RDWR)))
R["stty_size"] = out(["/usr/bin/stty", "size"])
print("READY", flush=True)
sys.stdin.readline()
expected = [int(a) for a in A]
for _ in range(100):
    if size() == expected: break
    time.sleep(0.05)
R["stty_size_resized"] = out(["/usr/bin/stty", "size"])
)",
                         {std::to_string(kNewRows), std::to_string(kNewCols)}),
            {"--tty"});
  ASSERT_TRUE(tty.read_until([](const std::string& o) { return has_line(o, "READY"); }, 30000))
      << tty.output() << tty.wait(1000).describe();
  tty.resize(kNewRows, kNewCols);
  tty.type("go\n");
  RunResult r = tty.wait();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  ASSERT_TRUE(res["tty"].is_string()) << res.dump();
  EXPECT_EQ(res["tty"].get<std::string>().rfind("/dev/pts/", 0), 0u) << res.dump();
  EXPECT_EQ(res["tty_owned"], true) << res.dump();
  EXPECT_EQ(res["dev_tty"], "ok") << res.dump();
  EXPECT_EQ(res["stty_size"], std::to_string(kRows) + " " + std::to_string(kCols)) << res.dump();
  EXPECT_EQ(res["stty_size_resized"], std::to_string(kNewRows) + " " + std::to_string(kNewCols))
      << res.dump();
  EXPECT_TRUE(tty.restored());
}

TEST(RunTerminal, LauncherTerminalIsRestoredAfterSigterm) {
  TempDir dir;
  TestTerminal tty;
  tty.start(dir, python_manifest(), python_agent(R"(
import time
print("READY", flush=True)
time.sleep(60)
)"),
            {"--grace", "500ms"});
  ASSERT_TRUE(tty.read_until([](const std::string& o) { return has_line(o, "READY"); }, 30000))
      << tty.output() << tty.wait(1000).describe();
  EXPECT_TRUE(tty.raw_now());
  tty.signal(SIGTERM);
  RunResult r = tty.wait(20000);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.describe();
  ASSERT_FALSE(r.events.empty()) << r.describe();
  EXPECT_EQ(r.events.back()["type"], "exit") << r.describe();
  EXPECT_TRUE(tty.restored()) << "the test's terminal settings after SIGTERM";
}

TEST(RunTerminal, CtrlCTypedReachesTheAgentThroughItsTerminal) {
  TempDir dir;
  TestTerminal tty;
  tty.start(dir, python_manifest(), python_agent(R"(
import signal, time
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
print("READY", flush=True)
for _ in range(300):
    if got: break
    time.sleep(0.1)
R["sigint"] = bool(got)
print()  # after the echoed ^C
)"),
            {});
  ASSERT_TRUE(tty.read_until([](const std::string& o) { return has_line(o, "READY"); }, 30000))
      << tty.output() << tty.wait(1000).describe();
  tty.type("\x03");
  RunResult r = tty.wait(40000);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["sigint"], true) << r.describe();
  EXPECT_EQ(r.events.back()["ended_by"], "exited") << r.describe();
  EXPECT_TRUE(tty.restored());
}

TEST(RunTerminal, NoTtyKeepsTheLaunchersDescriptors) {
  TempDir dir;
  TestTerminal tty;
  tty.start(dir, python_manifest(), python_agent(kTerminalFacts), {"--no-tty"});
  RunResult r = tty.wait();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  // The test's own terminal, which is not the agent's controlling terminal (setsid).
  EXPECT_EQ(res["dev_tty"], "ENXIO") << res.dump();
  EXPECT_EQ(res["foreground"], "ENOTTY") << res.dump();
  EXPECT_EQ(r.first("start").value()["terminal"], false) << r.describe();
  EXPECT_TRUE(tty.restored());
}

TEST(RunTerminal, WithoutATerminalTheAgentGetsPlainStdinByDefaultAndWithNoTty) {
  for (std::vector<std::string> extra : {std::vector<std::string>{}, {"--no-tty"}}) {
    TempDir dir;
    RunResult r =
        run_enclosure(dir, python_manifest(), python_agent(kTerminalFacts), {.extra_args = extra});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    nlohmann::json res = python_result(r);
    ASSERT_TRUE(res.is_object()) << r.describe();
    EXPECT_EQ(res["isatty"], false) << res.dump();
    EXPECT_EQ(r.first("start").value()["terminal"], false) << r.describe();
  }
}

TEST(RunTerminal, TtyGivesATerminalEvenWithStdinFromDevNull) {
  TempDir dir;
  std::string manifest = dir.write("manifest.json", python_manifest().dump(2));
  std::string events = dir.file("events.jsonl");
  std::vector<std::string> argv = {"sh",
                                   "-c",
                                   "exec \"$0\" \"$@\" </dev/null",
                                   harness::enclosure_binary(),
                                   "run",
                                   "-m",
                                   manifest,
                                   "--events",
                                   events,
                                   "--tty",
                                   "--"};
  for (const std::string& a : python_agent(kTerminalFacts))
    argv.push_back(a);
  RunResult r = run_command(argv);
  std::ifstream in(events);
  std::string line;
  while (std::getline(in, line))
    r.events.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["isatty"], true) << res.dump();
  EXPECT_EQ(res["dev_tty"], "ok") << res.dump();
  EXPECT_EQ(res["foreground"], true) << res.dump();
  EXPECT_EQ(r.first("start").value()["terminal"], true) << r.describe();
}

TEST(RunTerminal, TtyAndNoTtyTogetherIsAUsageError) {
  TempDir dir;
  RunResult r = run_enclosure(dir, python_manifest(), python_agent(""),
                              {.extra_args = {"--tty", "--no-tty"}});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("--tty and --no-tty"), std::string::npos) << r.describe();
}
