// Nothing is left behind: after many runs, some of whose launchers are SIGKILLed while the
// agent runs, there is no enclosure cgroup, no enclosure process, no agent process and no
// extra mount on the host.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "harness.h"

using harness::BackgroundRun;
using harness::base_manifest;
using harness::run_enclosure;
using harness::TempDir;

namespace {

// Host pids of processes whose command line contains `needle` (arguments joined by spaces).
std::vector<int> processes_with_argument(const std::string& needle) {
  std::vector<int> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cmdline = ss.str();
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

}  // namespace

TEST(RunCleanup, HundredRunsSomeWithTheLauncherKilledLeaveNothingBehind) {
  auto begun = std::chrono::steady_clock::now();
  size_t mounts_before = harness::mountinfo_lines();
  // A sleep duration no other process on the host uses, to find the agents' sleeps by.
  std::string nap = "30." + std::to_string(::getpid());
  TempDir dir;
  auto plain = base_manifest("cleanup", {"/usr/bin/sh", "/usr/bin/sleep", "/usr/bin/setsid"});
  // Limits through cgroup v1 as well, so that those hierarchies get run cgroups too.
  auto limited = plain;
  limited["budgets"]["processes"] = 32;
  limited["budgets"]["memory"] = "256MiB";
  limited["budgets"]["cpu_time"] = "30s";
  int killed = 0;
  std::vector<std::string> run_ids;
  auto note_run = [&](const harness::RunResult& r) {
    auto start = r.first("start");
    EXPECT_TRUE(start) << r.describe();
    if (start) run_ids.push_back((*start)["run"].get<std::string>());
  };
  for (int i = 0; i < 100; ++i) {
    SCOPED_TRACE("run " + std::to_string(i));
    const nlohmann::json& manifest = i % 2 ? limited : plain;
    if (i % 4 == 3) {
      // A tree that outlives its launcher unless the enclosure takes it down: a detached
      // session and a foreground sleep.
      BackgroundRun run(
          dir, manifest,
          {"sh", "-c",
           "setsid sleep " + nap + " & sleep " + nap + " & echo up; exec sleep " + nap});
      auto line = run.read_line(10000);
      ASSERT_EQ(line, std::optional<std::string>("up")) << run.wait(5000).describe();
      run.kill(SIGKILL);
      auto r = run.wait(10000);
      EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.describe();
      note_run(r);
      ++killed;
    } else {
      auto r = run_enclosure(dir, manifest, {"sh", "-c", "echo up; exit " + std::to_string(i % 7)});
      ASSERT_EQ(r.exit_code, i % 7) << r.describe();
      ASSERT_EQ(r.out, "up\n");
      note_run(r);
    }
  }
  EXPECT_EQ(killed, 25);
  ASSERT_EQ(run_ids.size(), 100u);
  // This test's leftovers only: other enclosures may run on the host meanwhile. Cgroups are
  // named after the run id; enclosure-init and enclosure-wdog carry the launcher's command
  // line, which names this test's directory.
  auto our_cgroups = [&] {
    std::vector<std::string> ours;
    for (const std::string& path : harness::leftover_cgroups()) {
      for (const std::string& id : run_ids) {
        if (path.find("enclosure-" + id) != std::string::npos) ours.push_back(path);
      }
    }
    return ours;
  };
  // The watchdog of a killed launcher removes its cgroups; give it a moment.
  EXPECT_TRUE(harness::wait_until(
      [&] { return harness::leftover_processes_mentioning(dir.path()).empty(); }, 2000))
      << harness::leftover_processes_mentioning(dir.path()).size()
      << " enclosure-init/enclosure-wdog processes left";
  EXPECT_TRUE(harness::wait_until([&] { return our_cgroups().empty(); }, 2000))
      << our_cgroups().size() << " cgroups left, e.g. "
      << (our_cgroups().empty() ? "" : our_cgroups().front());
  EXPECT_TRUE(
      harness::wait_until([&] { return processes_with_argument("sleep " + nap).empty(); }, 2000))
      << processes_with_argument("sleep " + nap).size() << " agent processes survived";
  EXPECT_EQ(harness::mountinfo_lines(), mounts_before);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count();
  EXPECT_LT(took, 60.0);
}
