// Budgets: wall clock, cpu time and memory terminate the whole enclosure (exit 124, a `budget`
// event naming the budget), whatever the agent does to resist; processes is a ceiling that
// makes fork fail with EAGAIN and is recorded once, without ending the run.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <random>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

nlohmann::json python_manifest() {
  return base_manifest("budgets", {"/usr/bin/python3"});
}

// A comm name (at most 15 characters) unique to this test process, to find survivors by.
std::string process_tag(const std::string& prefix) {
  std::random_device rd;
  return (prefix + std::to_string(rd() % 1000000)).substr(0, 15);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The single budget event, checked against the exit event.
nlohmann::json budget_event(const RunResult& r, const std::string& name) {
  auto budgets = r.of_type("budget");
  EXPECT_EQ(budgets.size(), 1u) << r.describe();
  if (budgets.empty()) return nlohmann::json::object();
  EXPECT_EQ(budgets[0]["name"], name) << budgets[0].dump();
  return budgets[0];
}

// Neither the run's cgroups nor its launcher-side processes (enclosure-init, the cleanup
// watchdog) outlive it.
void expect_nothing_left_behind(const RunResult& r, const TempDir& dir) {
  ASSERT_TRUE(r.first("start")) << r.describe();
  EXPECT_TRUE(harness::remaining_cgroups_of(r).empty())
      << "cgroups left behind: " << harness::remaining_cgroups_of(r).front();
  EXPECT_TRUE(harness::wait_until(
      [&] { return harness::leftover_processes_mentioning(dir.path()).empty(); }, 2000))
      << "enclosure processes left behind: "
      << harness::leftover_processes_mentioning(dir.path()).size();
}

}  // namespace

TEST(RunBudgets, WallClockKillsAResistingDetachedTreeWithinWallClockPlusGrace) {
  TempDir dir;
  std::string tag = process_tag("wallclk");
  auto m = python_manifest();
  m["budgets"]["wall_clock"] = "1s";
  // The agent ignores SIGTERM; so does a grandchild in a session of its own (setsid, double
  // fork: reparented to pid 1); another one stops itself.
  auto agent = python_agent(R"(
import signal, time
def rename(name):
    libc.prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
rename(A[0])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        rename(A[0])
        if os.fork() == 0:
            rename(A[0])
            os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(0)
        while True:
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.2)
print("ready", flush=True)
while True:
    time.sleep(0.05)
)",
                            {tag});
  auto started = std::chrono::steady_clock::now();
  auto r =
      run_enclosure(dir, m, agent, {.extra_args = {"--grace", "500ms"}, .timeout_seconds = 30});
  double took = seconds_since(started);
  EXPECT_LT(took, 1.0 + 0.5 + 1.0) << "wall_clock 1s + grace 500ms + 1s exceeded";
  EXPECT_GE(took, 1.0);
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_NE(r.out.find("ready"), std::string::npos) << r.describe();
  auto b = budget_event(r, "wall_clock");
  EXPECT_EQ(b["limit"], "1s");
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["ended_by"], "budget");
  EXPECT_EQ((*exit)["exit_code"], 124);
  // Not one process of the tree survives the launcher.
  EXPECT_TRUE(harness::processes_named(tag).empty())
      << harness::processes_named(tag).size() << " processes named " << tag << " survived";
  expect_nothing_left_behind(r, dir);
}

// SIGTERM to the launcher (a stop request from systemd or Kubernetes) is passed to the agent;
// an agent that ignores it is killed with its whole tree after the grace period.
TEST(RunBudgets, SigtermToTheLauncherEndsAResistingTreeAfterTheGracePeriod) {
  TempDir dir;
  std::string tag = process_tag("sigterm");
  auto agent = python_agent(R"(
import signal, time
def rename(name):
    libc.prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append(1))
rename(A[0])
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(0.05)
print("ready", flush=True)
while not got:
    time.sleep(0.01)
print("got SIGTERM", flush=True)
while True:
    time.sleep(0.05)
)",
                            {tag});
  harness::BackgroundRun run(dir, python_manifest(), agent, {.extra_args = {"--grace", "500ms"}});
  ASSERT_EQ(run.read_line(10000), std::optional<std::string>("ready"));
  auto sent = std::chrono::steady_clock::now();
  run.kill(SIGTERM);
  auto r = run.wait(10000);
  double took = seconds_since(sent);
  EXPECT_LT(took, 0.5 + 1.0) << "grace 500ms + 1s exceeded";
  EXPECT_NE(r.out.find("got SIGTERM"), std::string::npos) << "SIGTERM was not passed to the agent\n"
                                                          << r.describe();
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.describe();
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["ended_by"], "signaled");
  EXPECT_TRUE(harness::processes_named(tag).empty()) << "processes named " << tag << " survived";
  expect_nothing_left_behind(r, dir);
}

TEST(RunBudgets, CpuTimeEndsABusyLoop) {
  TempDir dir;
  auto m = python_manifest();
  m["budgets"]["cpu_time"] = "300ms";
  auto started = std::chrono::steady_clock::now();
  auto r = run_enclosure(dir, m, python_agent(R"(
print("spinning", flush=True)
while True:
    pass
)"),
                         {.extra_args = {"--grace", "500ms"}, .timeout_seconds = 30});
  EXPECT_LT(seconds_since(started), 20.0);
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  auto b = budget_event(r, "cpu_time");
  EXPECT_EQ(b["limit"], "300ms");
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["ended_by"], "budget");
  expect_nothing_left_behind(r, dir);
}

// cpu_time counts every process of the enclosure together: three children that each stay
// below the budget exceed it together.
TEST(RunBudgets, CpuTimeIsSummedAcrossProcesses) {
  TempDir dir;
  auto m = python_manifest();
  m["budgets"]["cpu_time"] = "300ms";
  auto r = run_enclosure(dir, m, python_agent(R"(
import time
for i in range(3):
    if os.fork() == 0:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        os._exit(0)
for i in range(3):
    os.wait()
print("children done", flush=True)
time.sleep(20)
)"),
                         {.extra_args = {"--grace", "500ms"}, .timeout_seconds = 40});
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  budget_event(r, "cpu_time");
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_LT((*exit)["duration_ns"].get<double>(), 15e9) << exit->dump();
}

TEST(RunBudgets, ProcessesIsACeilingWithEagainAndOneEvent) {
  TempDir dir;
  auto m = python_manifest();
  m["budgets"]["processes"] = 16;
  auto r = run_enclosure(dir, m, python_agent(R"(
import time
r, w = os.pipe()
kids, refusals = [], []
def bomb(limit):
    for i in range(limit):
        try:
            pid = os.fork()
        except OSError as e:
            refusals.append(errname(e.errno))
            return
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        kids.append(pid)
bomb(64)
R["forked"] = len(kids)
time.sleep(0.3)
for attempt in range(5):
    bomb(1)
time.sleep(0.3)
R["refusals"] = refusals
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
# Below the ceiling again, fork works.
pid = os.fork()
if pid == 0:
    os._exit(0)
R["fork_after"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
)"));
  EXPECT_EQ(r.exit_code, 0) << "the run must not be terminated for processes\n" << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  // 16 processes at once, pid 1 and the agent included.
  EXPECT_GE(res["forked"].get<int>(), 10) << r.out;
  EXPECT_LE(res["forked"].get<int>(), 14) << r.out;
  EXPECT_EQ(res["refusals"],
            nlohmann::json::array({"EAGAIN", "EAGAIN", "EAGAIN", "EAGAIN", "EAGAIN", "EAGAIN"}))
      << r.out;
  EXPECT_EQ(res["fork_after"], 0);
  auto b = budget_event(r, "processes");
  EXPECT_EQ(b["limit"], 16) << b.dump();
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["ended_by"], "exited");
  EXPECT_EQ((*exit)["exit_code"], 0);
}

TEST(RunBudgets, MemoryHogEndsTheRunAndTheLauncherSurvives) {
  TempDir dir;
  auto m = python_manifest();
  m["budgets"]["memory"] = "64MiB";
  auto r = run_enclosure(dir, m, python_agent(R"(
import time
blocks = []
print("allocating", flush=True)
for i in range(1024):
    blocks.append(b"x" * (1 << 20))
print("allocated 1GiB", flush=True)
time.sleep(20)
)"),
                         {.extra_args = {"--grace", "500ms"}, .timeout_seconds = 40});
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_EQ(r.out.find("allocated 1GiB"), std::string::npos) << r.out;
  auto b = budget_event(r, "memory");
  EXPECT_EQ(b["limit"], "64MiB") << b.dump();
  // The launcher itself finished its work: the exit event is there and says why.
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["ended_by"], "budget");
  EXPECT_EQ((*exit)["budget"], "memory");
  EXPECT_NE(r.err.find("budget memory"), std::string::npos) << r.err;
  expect_nothing_left_behind(r, dir);
}
