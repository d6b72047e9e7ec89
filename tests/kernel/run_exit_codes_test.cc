// Exit codes of `enclosure run` exactly as policy/MANIFEST.md says, each with its events.
#include <gtest/gtest.h>

#include "harness.h"

using harness::base_manifest;
using harness::run_enclosure;
using harness::TempDir;

namespace {

nlohmann::json manifest_with_sh() {
  return base_manifest("exit-codes", {"/usr/bin/sh", "/usr/bin/sleep", "/usr/bin/true"});
}

}  // namespace

TEST(RunExitCodes, AgentExitCodeIsPassedThrough) {
  TempDir dir;
  auto r = run_enclosure(dir, manifest_with_sh(), {"sh", "-c", "exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.describe();
  ASSERT_FALSE(r.events.empty()) << r.describe();
  EXPECT_EQ(r.events.front()["type"], "start");
  EXPECT_EQ(r.events.back()["type"], "exit");
  EXPECT_EQ(r.events.back()["exit_code"], 7);
  for (size_t i = 0; i < r.events.size(); ++i)
    EXPECT_EQ(r.events[i]["seq"], i) << r.describe();
}

TEST(RunExitCodes, KilledBySignalIs128PlusN) {
  TempDir dir;
  auto r = run_enclosure(dir, manifest_with_sh(), {"sh", "-c", "kill -USR1 $$"});
  EXPECT_EQ(r.exit_code, 128 + 10) << r.describe();
}

TEST(RunExitCodes, BudgetIs124WithBudgetEvent) {
  TempDir dir;
  auto m = manifest_with_sh();
  m["budgets"]["wall_clock"] = "300ms";
  auto r = run_enclosure(dir, m, {"sleep", "30"}, {.extra_args = {"--grace", "200ms"}});
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  auto b = r.first("budget");
  ASSERT_TRUE(b) << r.describe();
  EXPECT_EQ((*b)["name"], "wall_clock");
  EXPECT_EQ((*b)["limit"], "300ms");
  EXPECT_NE(r.err.find("budget wall_clock"), std::string::npos) << r.err;
}

TEST(RunExitCodes, InvalidManifestIs125AndNothingRuns) {
  TempDir dir;
  auto m = manifest_with_sh();
  m["filesystem"]["read"].push_back("relative/path");
  std::string marker = dir.file("ran");
  auto r = run_enclosure(dir, m, {"sh", "-c", "echo > " + marker});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("/filesystem/read/4"), std::string::npos) << r.err;
  EXPECT_TRUE(r.events.empty());
  EXPECT_NE(access(marker.c_str(), F_OK), 0);
}

TEST(RunExitCodes, NotAToolIs126) {
  TempDir dir;
  auto r = run_enclosure(dir, manifest_with_sh(), {"/usr/bin/id"});
  EXPECT_EQ(r.exit_code, 126) << r.describe();
  EXPECT_NE(r.err.find("not one of the manifest's tools"), std::string::npos) << r.err;
}

TEST(RunExitCodes, ToolNotFoundIs127) {
  TempDir dir;
  auto m = base_manifest("exit-codes", {"/usr/bin/no-such-tool-xyz"});
  auto r = run_enclosure(dir, m, {"no-such-tool-xyz"});
  EXPECT_EQ(r.exit_code, 127) << r.describe();
}

TEST(RunExitCodes, UnknownContextIs125) {
  TempDir dir;
  auto r =
      run_enclosure(dir, manifest_with_sh(), {"true"}, {.extra_args = {"--context", "nope=1"}});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
}

// A sink that cannot take events (a file on /dev/full: every write fails with ENOSPC) is
// counted, and the exit event that reaches the other sinks says how many lines it lost.
TEST(RunExitCodes, TheExitEventCountsLinesASinkFailedToTake) {
  TempDir dir;
  auto r = run_enclosure(dir, manifest_with_sh(), {"sh", "-c", "exit 0"},
                         {.extra_args = {"--events", "/dev/full"}});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  ASSERT_TRUE(exit->contains("sink_failures")) << exit->dump();
  // The start event and every event before the exit event failed on /dev/full.
  EXPECT_GE((*exit)["sink_failures"].get<uint64_t>(), 1u) << exit->dump();
  auto healthy = run_enclosure(dir, manifest_with_sh(), {"sh", "-c", "exit 0"});
  auto healthy_exit = healthy.first("exit");
  ASSERT_TRUE(healthy_exit) << healthy.describe();
  EXPECT_EQ((*healthy_exit)["sink_failures"], 0) << healthy_exit->dump();
}
