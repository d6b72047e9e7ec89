// The syscall accounting of tp_btf/sys_exit: budgets.syscalls (per-CPU batches, a bounded
// overshoot), audit.files (an `open` event for the first open of each file and access mode, with
// the path as the process gave it, its flags and its result; an `open_count` for the repeats) and
// audit.syscalls (a per-syscall histogram in the `exit` event).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

// The run ended for budgets.syscalls = `limit`, with the final count at most
// max(1% of the budget, 1000) past it.
void expect_syscall_budget_end(const RunResult& r, uint64_t limit) {
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_EQ(r.out.find("SURVIVED"), std::string::npos) << "the agent outlived the budget\n"
                                                       << r.describe();
  auto budgets = r.of_type("budget");
  ASSERT_EQ(budgets.size(), 1u) << r.describe();
  EXPECT_EQ(budgets[0]["name"], "syscalls") << budgets[0].dump();
  EXPECT_EQ(budgets[0]["limit"], limit) << budgets[0].dump();
  ASSERT_TRUE(budgets[0]["value"].is_number_unsigned()) << budgets[0].dump();
  EXPECT_GT(budgets[0]["value"].get<uint64_t>(), limit) << budgets[0].dump();
  ASSERT_FALSE(r.events.empty());
  const auto& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  EXPECT_EQ(exit["exit_code"], 124);
  EXPECT_EQ(exit["budget"], "syscalls") << exit.dump();
  const auto& figures = exit["budgets"]["syscalls"];
  ASSERT_TRUE(figures.is_object()) << exit.dump();
  EXPECT_EQ(figures["limit"], limit) << exit.dump();
  uint64_t value = figures["value"].get<uint64_t>();
  uint64_t slack = std::max<uint64_t>(limit / 100, 1000);
  EXPECT_GT(value, limit) << exit.dump();
  EXPECT_LE(value, limit + slack) << "overshoot past the syscall budget\n" << exit.dump();
}

// The `open` events for one path, in order.
std::vector<nlohmann::json> opens_of(const RunResult& r, const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const auto& e : r.of_type("open")) {
    if (e.value("path", "") == path) out.push_back(e);
  }
  return out;
}

}  // namespace

TEST(BpfSyscalls, BudgetEndsAGetppidLoopInOneProcess) {
  TempDir dir;
  auto m = base_manifest("syscalls-loop", {"/usr/bin/python3"});
  const uint64_t limit = 200000;
  m["budgets"]["syscalls"] = limit;
  auto r = run_enclosure(dir, m, python_agent(R"(
getppid = os.getppid
for i in range(3000000):
    getppid()
print("SURVIVED", flush=True)
)"));
  expect_syscall_budget_end(r, limit);
}

TEST(BpfSyscalls, BudgetCountsTwoHundredShortLivedProcesses) {
  TempDir dir;
  auto m = base_manifest("syscalls-processes", {"/usr/bin/python3", "/usr/bin/true"});
  // python3 starting up, then 200 fork+exec of /usr/bin/true (each some dozens of syscalls in
  // the child and a few dozen in the parent, about 120 in all): far more than 15000.
  const uint64_t limit = 15000;
  m["budgets"]["syscalls"] = limit;
  auto r = run_enclosure(dir, m, python_agent(R"(
import subprocess
done = 0
for i in range(200):
    subprocess.run(["/usr/bin/true"])
    done += 1
print("SURVIVED", done, flush=True)
)"));
  expect_syscall_budget_end(r, limit);
  // Many of the processes ran before the budget was reached.
  EXPECT_GE(r.of_type("tool_call").size(), 50u) << r.describe();
}

TEST(BpfSyscalls, AuditFilesLogsGrantedAndMissingOpensWithPathFlagsAndResult) {
  TempDir dir;
  std::string granted = dir.write("data/granted.txt", "contents\n");
  dir.write("data/relative.txt", "contents\n");
  std::string missing = dir.file("data/missing.txt");
  auto m = base_manifest("audit-files", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("data"));
  m["process"]["cwd"] = dir.file("data");
  m["audit"] = {{"files", true}};
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
fd = os.open(A[0], os.O_RDONLY)
R["granted"] = fd
os.close(fd)
t("missing", lambda: os.open(A[1], os.O_RDONLY))
fd = os.open("relative.txt", os.O_RDONLY)
R["relative"] = fd
os.close(fd)
fd = os.open("granted.txt", os.O_RDONLY)
R["again"] = fd
os.close(fd)
fd = os.open("/tmp/written.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
R["written"] = fd
os.close(fd)
)",
                                      {granted, missing}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["missing"], "ENOENT") << r.describe();

  auto g = opens_of(r, granted);
  ASSERT_EQ(g.size(), 1u) << r.describe();
  EXPECT_EQ(g[0]["result"], res["granted"]) << g[0].dump();
  EXPECT_EQ(g[0]["ok"], true) << g[0].dump();
  EXPECT_EQ(g[0]["flags"].get<std::string>().rfind("O_RDONLY", 0), 0u) << g[0].dump();
  EXPECT_EQ(g[0]["flags"].get<std::string>().find("O_CREAT"), std::string::npos) << g[0].dump();

  auto x = opens_of(r, missing);
  ASSERT_EQ(x.size(), 1u) << r.describe();
  EXPECT_EQ(x[0]["result"], "-ENOENT") << x[0].dump();
  EXPECT_EQ(x[0]["ok"], false) << x[0].dump();
  EXPECT_EQ(x[0]["flags"].get<std::string>().rfind("O_RDONLY", 0), 0u) << x[0].dump();

  // The path as the process gave it: relative stays relative.
  auto rel = opens_of(r, "relative.txt");
  ASSERT_EQ(rel.size(), 1u) << r.describe();
  EXPECT_EQ(rel[0]["result"], res["relative"]) << rel[0].dump();
  EXPECT_EQ(rel[0]["ok"], true) << rel[0].dump();

  auto w = opens_of(r, "/tmp/written.txt");
  ASSERT_EQ(w.size(), 1u) << r.describe();
  EXPECT_EQ(w[0]["result"], res["written"]) << w[0].dump();
  std::string flags = w[0]["flags"];
  EXPECT_EQ(flags.rfind("O_WRONLY", 0), 0u) << flags;
  EXPECT_NE(flags.find("O_CREAT"), std::string::npos) << flags;
  EXPECT_NE(flags.find("O_TRUNC"), std::string::npos) << flags;

  // The same file again, by another path and the same access mode: counted, not recorded.
  EXPECT_TRUE(opens_of(r, "granted.txt").empty()) << r.describe();
  size_t granted_counts = 0;
  for (const auto& c : r.of_type("open_count")) {
    if (c.value("path", "") != granted) continue;
    ++granted_counts;
    EXPECT_EQ(c["opens"], 2) << c.dump();
    EXPECT_EQ(c["repeats"], 1) << c.dump();
    EXPECT_EQ(c["access"], "O_RDONLY") << c.dump();
    EXPECT_EQ(c["dev"], g[0]["dev"]) << c.dump();
    EXPECT_EQ(c["ino"], g[0]["ino"]) << c.dump();
  }
  EXPECT_EQ(granted_counts, 1u) << r.describe();

  // Every open event names its process and a result.
  for (const auto& e : r.of_type("open")) {
    EXPECT_TRUE(e.contains("pid") && e.contains("result") && e.contains("flags")) << e.dump();
  }
}

TEST(BpfSyscalls, AuditSyscallsHistogramCountsEveryGetppid) {
  TempDir dir;
  auto m = base_manifest("audit-syscalls", {"/usr/bin/python3"});
  m["audit"] = {{"syscalls", true}};
  const int calls = 1234;
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
for i in range(int(A[0])):
    os.getppid()
R["calls"] = int(A[0])
)",
                                      {std::to_string(calls)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(python_result(r)["calls"], calls) << r.describe();
  const auto& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  const auto& hist = exit["budgets"]["syscall_histogram"];
  ASSERT_TRUE(hist.is_object()) << exit.dump();
  ASSERT_TRUE(hist.contains("getppid")) << exit.dump();
  EXPECT_GE(hist["getppid"].get<uint64_t>(), static_cast<uint64_t>(calls)) << exit.dump();
  // The agent's other calls are there too.
  EXPECT_TRUE(hist.contains("execve") || hist.contains("openat") || hist.contains("read"))
      << exit.dump();
}
