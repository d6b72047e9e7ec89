// Fault tests: the launcher SIGKILLed mid-run, a thousand sequential runs with random kills, fifty
// enclosures at once on this two-core machine. Afterwards nothing is left (processes, cgroups,
// BPF objects, mounts, descriptors) and every run's policy held.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <thread>

#include "harness.h"

using harness::BackgroundRun;
using harness::base_manifest;
using harness::LoopbackListener;
using harness::TempDir;
using nlohmann::json;

namespace {

size_t open_fds() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (d && ::readdir(d))
    ++n;
  if (d) ::closedir(d);
  return n;
}

// The project's BPF programs held by any process (names start with "enc_").
size_t enclosure_programs_anywhere() {
  harness::BpfObjects all = harness::bpf_objects_on_host();
  size_t n = 0;
  for (const auto& [id, name] : all.programs)
    n += name.rfind("enc_", 0) == 0;
  return n;
}

json python_manifest(const std::string& name) {
  return base_manifest(name, {"/usr/bin/python3", "/usr/bin/sh", "/usr/bin/sleep"});
}

}  // namespace

TEST(Fault, LauncherKilledMidRunTakesTheEnclosureWithItWithinOneSecond) {
  TempDir dir;
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  json m = python_manifest("fault-launcher-kill");
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {listener.port()}}}}}};
  // The agent holds a connection open and burns CPU in a child.
  std::string body =
      "import socket, os\n"
      "s = socket.create_connection(('127.0.0.1', int(A[0])))\n"
      "if os.fork() == 0:\n"
      "    while True: pass\n"
      "print('ready', flush=True)\n"
      "while True: pass\n";
  BackgroundRun run(dir, m, harness::python_agent(body, {std::to_string(listener.port())}));
  ASSERT_TRUE(run.read_line(20000).has_value());
  listener.collect();
  ASSERT_EQ(listener.connections(), 1u);
  auto killed_at = std::chrono::steady_clock::now();
  run.kill(SIGKILL);
  bool gone = harness::wait_until(
      [&] { return harness::leftover_processes_mentioning(dir.path()).empty(); }, 1000);
  auto elapsed = std::chrono::steady_clock::now() - killed_at;
  EXPECT_TRUE(gone) << "enclosure processes still alive 1 s after the launcher was SIGKILLed";
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 1000);
  harness::RunResult r = run.wait();
  // Nothing keeps the network: the agent's connection was closed with it.
  EXPECT_TRUE(harness::wait_until(
      [&] {
        char buf[16];
        for (;;) {
          ssize_t n = ::recv(listener.accepted_fd(0), buf, sizeof buf, MSG_DONTWAIT);
          if (n == 0) return true;
          if (n < 0) return false;
        }
      },
      2000));
  EXPECT_TRUE(harness::wait_until([&] { return harness::remaining_cgroups_of(r).empty(); }, 2000))
      << r.describe();
}

TEST(Fault, AThousandSequentialRunsWithRandomKillsLeaveNothingBehind) {
  TempDir dir;
  size_t mounts_before = harness::mountinfo_lines();
  size_t fds_before = open_fds();
  size_t programs_before = enclosure_programs_anywhere();
  std::vector<std::string> cgroups_before = harness::leftover_cgroups();
  std::mt19937 random(20261128);
  json m = python_manifest("fault-thousand");
  m["budgets"]["processes"] = 8;
  m["budgets"]["memory"] = "64MiB";
  m["network"] = {{"mode", "filtered"}, {"egress", json::array()}};
  std::string secret = dir.write("secret.txt", "do not read\n");
  int completed = 0, killed = 0, policy_violations = 0;
  for (int i = 0; i < 1000; ++i) {
    // Each run tries to read a file outside its view; the run prints what happened.
    BackgroundRun run(
        dir, m,
        {"sh", "-c", "cat " + secret + " 2>/dev/null && echo LEAKED || echo denied; sleep 1"});
    if (random() % 3 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(random() % 40));
      run.kill(SIGKILL);
      ++killed;
      run.wait(10000);
      continue;
    }
    auto line = run.read_line(10000);
    if (line && *line == "LEAKED") ++policy_violations;
    run.kill(SIGTERM);
    run.wait(10000);
    ++completed;
  }
  EXPECT_EQ(policy_violations, 0);
  EXPECT_GT(killed, 200);
  EXPECT_GT(completed, 500);
  EXPECT_TRUE(harness::wait_until(
      [&] { return harness::leftover_processes_mentioning(dir.path()).empty(); }, 5000));
  // No cgroup this test did not find when it started (CI runs kernel tests one at a time).
  auto new_cgroups = [&] {
    std::vector<std::string> now = harness::leftover_cgroups(), fresh;
    for (const std::string& c : now) {
      if (std::find(cgroups_before.begin(), cgroups_before.end(), c) == cgroups_before.end())
        fresh.push_back(c);
    }
    return fresh;
  };
  EXPECT_TRUE(harness::wait_until([&] { return new_cgroups().empty(); }, 5000))
      << "cgroups left: " << new_cgroups().size() << ", e.g. "
      << (new_cgroups().empty() ? "" : new_cgroups()[0]);
  EXPECT_EQ(harness::mountinfo_lines(), mounts_before);
  EXPECT_EQ(open_fds(), fds_before);
  EXPECT_TRUE(
      harness::wait_until([&] { return enclosure_programs_anywhere() <= programs_before; }, 5000))
      << enclosure_programs_anywhere() << " enclosure BPF programs left";
}

TEST(Fault, FiftyConcurrentEnclosuresEachKeepTheirPolicy) {
  TempDir dir;
  size_t mounts_before = harness::mountinfo_lines();
  std::vector<std::string> secrets;
  std::vector<std::unique_ptr<TempDir>> works;
  std::vector<std::unique_ptr<BackgroundRun>> runs;
  for (int i = 0; i < 50; ++i) {
    // Each enclosure may write its own folder and must not reach its neighbours'.
    works.push_back(std::make_unique<TempDir>());
    ::chmod(works.back()->path().c_str(), 0777);
  }
  for (int i = 0; i < 50; ++i) {
    json m = python_manifest("fault-fifty-" + std::to_string(i));
    m["filesystem"]["write"] = {works[i]->path()};
    m["budgets"]["processes"] = 16;
    std::string neighbour = works[(i + 1) % 50]->path();
    std::string body =
        "open(A[0] + '/mine', 'w').write('x')\n"
        "t('neighbour', lambda: open(A[1] + '/theirs', 'w'))\n"
        "t('own', lambda: open(A[0] + '/mine').read())\n";
    runs.push_back(std::make_unique<BackgroundRun>(
        dir, m, harness::python_agent(body, {works[i]->path(), neighbour})));
  }
  int held = 0;
  for (int i = 0; i < 50; ++i) {
    harness::RunResult r = runs[i]->wait(120000);
    json result = harness::python_result(r);
    if (result.is_object() && result.value("neighbour", "") == "ENOENT" &&
        result.value("own", "") == "x") {
      ++held;
    } else {
      ADD_FAILURE() << "run " << i << ": " << r.describe();
    }
  }
  EXPECT_EQ(held, 50);
  for (const auto& w : works)
    EXPECT_NE(::access((w->path() + "/theirs").c_str(), F_OK), 0);
  EXPECT_TRUE(harness::wait_until(
      [&] { return harness::leftover_processes_mentioning(dir.path()).empty(); }, 5000));
  EXPECT_EQ(harness::mountinfo_lines(), mounts_before);
}
