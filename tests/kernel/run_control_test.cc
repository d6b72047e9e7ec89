// `enclosure ps` and `enclosure stop` (the run's control socket), and the first contact with the
// command line: one-line usage errors, a forgotten "--", `-m -`, `learn` from /tmp.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "harness.h"
#include "launcher/run/setup_probe.h"

using harness::BackgroundRun;
using harness::enclosure_binary;
using harness::run_command;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

// A manifest name no other run on the host has.
std::string unique_name(const std::string& what) {
  static int counter = 0;
  return what + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

json sleeper(const std::string& name) {
  json m = harness::base_manifest(name, {"/usr/bin/sleep"});
  m["metadata"]["revision"] = 7;
  m["budgets"]["tool_calls"] = 5;
  return m;
}

// The live run of manifest `name` as `enclosure ps --json` shows it, or null.
json listed(const std::string& name, const harness::RunOptions& options = {}) {
  RunResult r = run_command({enclosure_binary(), "ps", "--json"}, options);
  if (r.exit_code != 0) return nullptr;
  for (const json& run : json::parse(r.out, nullptr, false)) {
    if (run.is_object() && run["manifest"].value("name", "") == name) return run;
  }
  return nullptr;
}

json wait_listed(const std::string& name) {
  json found;
  harness::wait_until([&] { return !(found = listed(name)).is_null(); }, 10000);
  return found;
}

}  // namespace

TEST(RunControl, PsListsALiveRunAndStopEndsItWithAStoppedExitEvent) {
  TempDir dir;
  std::string name = unique_name("ps");
  BackgroundRun run(dir, sleeper(name), {"sleep", "60"});
  json status = wait_listed(name);
  ASSERT_FALSE(status.is_null()) << "enclosure ps never listed the run";
  EXPECT_EQ(status["manifest"]["revision"], 7);
  EXPECT_EQ(status["manifest"]["digest"].get<std::string>().rfind("sha256:", 0), 0u);
  EXPECT_GT(status.value("pid", 0), 1);
  EXPECT_EQ(status["tool"], "sleep");
  EXPECT_EQ(status["budgets"]["tool_calls"]["limit"], 5);
  std::string id = status["run"];
  std::string socket = "/run/enclosure/runs/" + id + ".sock";
  EXPECT_TRUE(std::filesystem::exists(socket));
  RunResult table = run_command({enclosure_binary(), "ps"});
  EXPECT_NE(table.out.find(id), std::string::npos) << table.out;

  RunResult stop = run_command({enclosure_binary(), "stop", id.substr(0, 12)});
  EXPECT_EQ(stop.exit_code, 0) << stop.describe();
  RunResult r = run.wait();
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.describe();
  ASSERT_TRUE(r.first("exit"));
  EXPECT_EQ((*r.first("exit"))["ended_by"], "stopped");
  EXPECT_NE(r.err.find("stopped by enclosure stop"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(socket));
  EXPECT_TRUE(listed(name).is_null());
}

TEST(RunControl, AnAgentInsideAnEnclosureCannotStopOrInspectAnother) {
  TempDir dir;
  std::string victim_name = unique_name("victim");
  BackgroundRun victim(dir, sleeper(victim_name), {"sleep", "60"});
  json status = wait_listed(victim_name);
  ASSERT_FALSE(status.is_null());
  std::string socket = "/run/enclosure/runs/" + status["run"].get<std::string>() + ".sock";
  // The attacker runs as root with /run readable. Unless the manifest names the socket
  // (network.unix), its connect is refused (EACCES, a deny event); named, only the control
  // socket's check of the caller's cgroup identity stands.
  json m = harness::base_manifest(unique_name("attacker"), {"/usr/bin/python3"});
  m["process"]["user"] = {{"uid", 0}, {"gid", 0}};
  m["filesystem"]["read"].push_back("/run");
  const char* const kAttack = R"(
import socket
def ask(request):
    s = socket.socket(socket.AF_UNIX)
    s.connect(A[0])
    s.sendall(request)
    s.settimeout(5)
    return s.recv(4096).decode()
t("stop", lambda: ask(b"stop\n"))
t("status", lambda: ask(b"status\n"))
)";
  RunResult unnamed = harness::run_enclosure(dir, m, harness::python_agent(kAttack, {socket}));
  json refused = harness::python_result(unnamed);
  ASSERT_TRUE(refused.is_object()) << unnamed.describe();
  EXPECT_EQ(refused["stop"], "EACCES") << refused;
  EXPECT_EQ(refused["status"], "EACCES") << refused;
  EXPECT_EQ(unnamed.of_type("deny").size(), 2u) << unnamed.describe();

  m["network"]["unix"] = {socket};
  RunResult r = harness::run_enclosure(dir, m, harness::python_agent(kAttack, {socket}));
  json result = harness::python_result(r);
  ASSERT_TRUE(result.is_object()) << r.describe();
  EXPECT_NE(result["stop"].get<std::string>().find("inside an enclosure"), std::string::npos)
      << result;
  EXPECT_NE(result["status"].get<std::string>().find("refused"), std::string::npos) << result;
  json still = listed(victim_name);
  ASSERT_FALSE(still.is_null()) << "the victim run is gone";
  EXPECT_FALSE(still.value("stopping", true));
}

TEST(RunControl, AnotherUserNeitherSeesNorStopsARootRun) {
  TempDir dir;
  std::string name = unique_name("private");
  BackgroundRun run(dir, sleeper(name), {"sleep", "60"});
  json status = wait_listed(name);
  ASSERT_FALSE(status.is_null());
  harness::RunOptions nobody;
  nobody.as_user = "65534:65534";
  EXPECT_TRUE(listed(name, nobody).is_null());
  RunResult stop = run_command({enclosure_binary(), "stop", status["run"]}, nobody);
  EXPECT_EQ(stop.exit_code, 1) << stop.describe();
  EXPECT_FALSE(listed(name).is_null());
}

// A SIGKILLed root launcher's watchdog removes its control socket; a socket nobody listens on
// any more (a launcher without a watchdog: a user's run through the daemon) is removed by `ps`.
TEST(RunControl, TheSocketOfAKilledLauncherIsRemoved) {
  TempDir dir;
  std::string name = unique_name("killed");
  BackgroundRun run(dir, sleeper(name), {"sleep", "60"});
  json status = wait_listed(name);
  ASSERT_FALSE(status.is_null());
  std::string socket = "/run/enclosure/runs/" + status["run"].get<std::string>() + ".sock";
  ASSERT_TRUE(std::filesystem::exists(socket));
  run.kill(SIGKILL);
  run.wait();
  EXPECT_TRUE(harness::wait_until([&] { return !std::filesystem::exists(socket); }, 5000))
      << "the watchdog left " << socket;
  EXPECT_TRUE(listed(name).is_null());

  std::string stale = "/run/enclosure/runs/" + std::string(32, 'e') + ".sock";
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << stale;
    ::close(fd);  // bound, never listening: what a killed launcher leaves
  }
  RunResult ps = run_command({enclosure_binary(), "ps"});
  EXPECT_EQ(ps.exit_code, 0) << ps.describe();
  EXPECT_FALSE(std::filesystem::exists(stale));
}

TEST(FirstContact, UsageErrorsAreOneLineAndAForgottenDoubleDashIsNamed) {
  TempDir dir;
  std::string manifest = dir.write("m.json", sleeper("usage").dump());
  RunResult r = run_command({enclosure_binary(), "run", "-m", manifest, "bash", "-c", "echo"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("goes after \"--\""), std::string::npos) << r.err;
  r = run_command({enclosure_binary(), "check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "enclosure check: no manifest file given (see enclosure check --help)\n");
  r = run_command({enclosure_binary(), "run", "--no-such-option", "--", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.find("goes after"), std::string::npos) << r.err;  // the "--" was there
  // A command without options of its own and without "--": named, not "no command given".
  r = run_command({enclosure_binary(), "run", "-m", manifest, "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("unexpected \"true\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("goes after \"--\""), std::string::npos) << r.err;
  // A stray word before "--" is refused, never dropped.
  r = run_command({enclosure_binary(), "run", "-m", manifest, "stray", "--", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("unexpected \"stray\""), std::string::npos) << r.err;
}

TEST(FirstContact, DashReadsTheManifestFromStandardInput) {
  harness::RunOptions in;
  json m = harness::base_manifest(unique_name("stdin"), {"/usr/bin/true"});
  in.stdin_data = m.dump();
  RunResult r = run_command({enclosure_binary(), "run", "-m", "-", "--", "true"}, in);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  in.stdin_data = "{\"apiVersion\": \"enclosure/v1\"}";
  r = run_command({enclosure_binary(), "check", "-"}, in);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("standard input: "), std::string::npos) << r.err;
}

TEST(FirstContact, LearnWorksFromTmpItself) {
  TempDir dir;
  RunResult r = run_command({"/bin/sh", "-c", "cd /tmp && exec \"$0\" learn -o \"$1\" -- true",
                             enclosure_binary(), dir.file("learned.json")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  RunResult check = run_command({enclosure_binary(), "check", dir.file("learned.json")});
  EXPECT_EQ(check.exit_code, 0) << check.describe();
}

TEST(FirstContact, ACollectorSocketTheUserMayNotReachSaysWhoOwnsItAndTheWayOut) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  std::string binary = dir.file("enclosure");
  std::filesystem::copy_file(enclosure_binary(), binary);
  ::chmod(binary.c_str(), 0755);
  std::string socket = dir.file("collector.sock");
  RunResult started =
      run_command({"/bin/sh", "-c",
                   "\"$0\" collect --listen unix:\"$1\" --audit-log \"$2\" --socket-group nogroup "
                   "</dev/null >/dev/null 2>&1 & echo $! > \"$3\"",
                   binary, socket, dir.file("audit.log"), dir.file("collector.pid")});
  ASSERT_EQ(started.exit_code, 0);
  ASSERT_TRUE(harness::wait_until([&] { return std::filesystem::exists(socket); }, 5000));
  json m = harness::base_manifest(unique_name("collector"), {"/usr/bin/true"});
  m["enforcement"] = {{"allow_degraded", {"bpf", "cgroup"}}};
  std::string manifest = dir.write("m.json", m.dump());
  auto run_as = [&](const std::string& user) {
    harness::RunOptions o;
    o.as_user = user;
    o.binary = binary;
    return run_command({binary, "run", "-m", manifest, "--events", "unix:" + socket, "--", "true"},
                       o);
  };
  RunResult outsider = run_as("65534:65533");  // not in the socket's group
  RunResult member = run_as("65534:65534");    // nogroup: may connect
  std::string pid = harness::run_command({"cat", dir.file("collector.pid")}).out;
  ::kill(std::stoi(pid), SIGTERM);
  EXPECT_EQ(outsider.exit_code, 125);
  EXPECT_NE(outsider.err.find("permission denied: the collector's socket is uid 0, gid 65534"),
            std::string::npos)
      << outsider.err;
  EXPECT_NE(outsider.err.find("--socket-group"), std::string::npos) << outsider.err;
  EXPECT_EQ(outsider.err.find("start the collector (enclosure collect --listen"), std::string::npos)
      << outsider.err;
  EXPECT_EQ(member.exit_code, 0) << member.describe();
}

// A container's defaults (its seccomp profile, a masked /proc, no namespaces) are found by doing
// the enclosure's set-up steps; inside an enclosure, whose own profile refuses new namespaces,
// `doctor` must say so and name the fix instead of "everything is available".
TEST(ContainerPrerequisites, DoctorFindsRefusedSetUpStepsAndNamesTheFix) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  std::string binary = dir.file("enclosure");
  std::filesystem::copy_file(enclosure_binary(), binary);
  ::chmod(binary.c_str(), 0755);
  json m = harness::base_manifest(unique_name("doctor"), {binary});
  m["filesystem"]["read"].push_back(dir.path());
  m["filesystem"]["read"].push_back("/etc/passwd");
  m["filesystem"]["read"].push_back("/sys");
  RunResult r = harness::run_enclosure(dir, m, {binary, "doctor"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(r.out.find("Everything a typical manifest needs is available"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("(every run: the enclosure's set-up) needs unshare"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("SYS_ADMIN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("note this process already runs under a seccomp filter"), std::string::npos)
      << r.out;
}

TEST(ContainerPrerequisites, SetUpErrorsOfARunNameTheContainerSetting) {
  EXPECT_NE(launcher::setup_hint("fsmount proc: Operation not permitted").find("procMount"),
            std::string::npos);
  EXPECT_NE(launcher::setup_hint("init: unshare: Operation not permitted").find("SYS_ADMIN"),
            std::string::npos);
  EXPECT_EQ(launcher::setup_hint("init: sethostname: No space left on device"), "");
}

TEST(FirstContact, InitWritesAStarterManifestThatChecksAndNeverOverwrites) {
  TempDir dir;
  for (const char* kind : {"coding", "data", "browsing"}) {
    std::string out = dir.file(std::string(kind) + ".json");
    RunResult init = run_command({enclosure_binary(), "init", kind, "-o", out});
    ASSERT_EQ(init.exit_code, 0) << init.describe();
    EXPECT_NE(init.out.find("Manifest \""), std::string::npos) << init.out;  // explain's account
    RunResult check = run_command({enclosure_binary(), "check", out});
    EXPECT_EQ(check.exit_code, 0) << check.describe();
    RunResult again = run_command({enclosure_binary(), "init", kind, "-o", out});
    EXPECT_EQ(again.exit_code, 1) << again.describe();
    EXPECT_EQ(run_command({enclosure_binary(), "init", kind, "-o", out, "--force"}).exit_code, 0);
  }
  EXPECT_EQ(run_command({enclosure_binary(), "init", "spaceship"}).exit_code, 2);
}
