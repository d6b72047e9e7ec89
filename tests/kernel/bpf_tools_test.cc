// Tool calls counted in the kernel (tp_btf/sched_process_exec): every exec of a tool after the
// initial command is a `tool_call`; the call past tools[].max_calls, budgets.tool_calls or
// budgets.cost_usd is SIGKILLed at its exec, logged as a `budget` event, and the enclosure ends
// with exit 124.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

// Runs the commands in A (each a "|"-separated argv) one after another, printing "CODE <rc>"
// for each; then waits (at most 20 s) to be terminated.
std::vector<std::string> caller(const std::vector<std::string>& commands) {
  return python_agent(R"(import subprocess, time
for c in A:
    rc = subprocess.run(c.split("|")).returncode
    print("CODE", rc, flush=True)
print("DONE", flush=True)
time.sleep(20)
)",
                      commands);
}

// The return codes the caller printed, in order.
std::vector<int> codes(const RunResult& r) {
  std::vector<int> out;
  size_t at = 0;
  while ((at = r.out.find("CODE ", at)) != std::string::npos) {
    out.push_back(std::stoi(r.out.substr(at + 5)));
    at += 5;
  }
  return out;
}

std::vector<nlohmann::json> tool_calls(const RunResult& r, const std::string& tool) {
  std::vector<nlohmann::json> out;
  for (const auto& e : r.of_type("tool_call")) {
    if (e.value("tool", "") == tool) out.push_back(e);
  }
  return out;
}

// Index in r.events of the first event of `type`, or r.events.size().
size_t index_of(const RunResult& r, const std::string& type) {
  for (size_t i = 0; i < r.events.size(); ++i) {
    if (r.events[i].value("type", "") == type) return i;
  }
  return r.events.size();
}

// The run ended for one budget, with one `budget` event named `name` for tool `tool`.
nlohmann::json expect_budget_end(const RunResult& r, const std::string& name,
                                 const std::string& tool) {
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  auto budgets = r.of_type("budget");
  EXPECT_EQ(budgets.size(), 1u) << r.describe();
  if (budgets.empty()) return nullptr;
  EXPECT_EQ(budgets[0]["name"], name) << budgets[0].dump();
  EXPECT_EQ(budgets[0].value("tool", ""), tool) << budgets[0].dump();
  EXPECT_FALSE(r.events.empty());
  if (!r.events.empty()) {
    const auto& exit = r.events.back();
    EXPECT_EQ(exit["type"], "exit");
    EXPECT_EQ(exit["exit_code"], 124);
    EXPECT_EQ(exit["budget"], name) << exit.dump();
  }
  return budgets[0];
}

// The first codes the caller printed are `completed`; every later one is -9 (killed at its
// exec). The termination may come before the caller prints the code of a killed call.
void expect_codes(const RunResult& r, const std::vector<int>& completed) {
  auto c = codes(r);
  ASSERT_GE(c.size(), completed.size()) << r.describe();
  EXPECT_EQ(std::vector<int>(c.begin(), c.begin() + completed.size()), completed) << r.describe();
  for (size_t i = completed.size(); i < c.size(); ++i) {
    EXPECT_EQ(c[i], -9) << "call " << i + 1 << " past the budget\n" << r.describe();
  }
}

// Every tool_call before the budget event is a completed call: calls 1..n, not killed.
void expect_calls_before_budget(const RunResult& r, const std::string& tool, uint64_t n) {
  size_t budget_at = index_of(r, "budget");
  std::vector<uint64_t> seen;
  for (size_t i = 0; i < budget_at; ++i) {
    const auto& e = r.events[i];
    if (e.value("type", "") != "tool_call" || e.value("tool", "") != tool) continue;
    seen.push_back(e["calls"].get<uint64_t>());
    EXPECT_FALSE(e.contains("killed")) << e.dump();
  }
  std::vector<uint64_t> expected;
  for (uint64_t i = 1; i <= n; ++i)
    expected.push_back(i);
  EXPECT_EQ(seen, expected) << "tool_call events of " << tool << " before the budget event\n"
                            << r.describe();
}

}  // namespace

TEST(BpfTools, CallPastMaxCallsIsKilledAndEndsTheRun) {
  TempDir dir;
  auto m = base_manifest("tools-max-calls", {"/usr/bin/python3", "/usr/bin/true"});
  m["tools"][1]["max_calls"] = 3;
  auto r = run_enclosure(dir, m,
                         caller({"/usr/bin/true", "/usr/bin/true", "/usr/bin/true", "/usr/bin/true",
                                 "/usr/bin/true"}));
  auto b = expect_budget_end(r, "max_calls", "true");
  if (b.is_null()) return;
  EXPECT_EQ(b["limit"], 3) << b.dump();
  EXPECT_EQ(b["value"], 4) << b.dump();
  EXPECT_EQ(b["origin"], "/tools/1/max_calls") << b.dump();
  expect_calls_before_budget(r, "true", 3);
  // The fourth call never ran: killed at its exec (-9), like any call after it.
  expect_codes(r, {0, 0, 0});
  // The killed calls are logged after the budget, marked as killed.
  auto calls = tool_calls(r, "true");
  ASSERT_GE(calls.size(), 4u) << r.describe();
  for (size_t i = 3; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i]["calls"], i + 1) << calls[i].dump();
    EXPECT_TRUE(calls[i].contains("killed")) << calls[i].dump();
  }
  EXPECT_TRUE(tool_calls(r, "python3").empty()) << "the initial command is not a call\n"
                                                << r.describe();
}

TEST(BpfTools, CallPastBudgetsToolCallsIsKilledAndEndsTheRun) {
  TempDir dir;
  auto m =
      base_manifest("tools-budget-calls", {"/usr/bin/python3", "/usr/bin/true", "/usr/bin/false"});
  m["budgets"]["tool_calls"] = 3;
  auto r = run_enclosure(dir, m,
                         caller({"/usr/bin/true", "/usr/bin/false", "/usr/bin/true",
                                 "/usr/bin/false", "/usr/bin/true"}));
  auto b = expect_budget_end(r, "tool_calls", "false");
  if (b.is_null()) return;
  EXPECT_EQ(b["limit"], 3) << b.dump();
  EXPECT_EQ(b["value"], 4) << b.dump();
  // Before the budget: three calls in total (true 1, false 1, true 2).
  size_t budget_at = index_of(r, "budget");
  std::vector<uint64_t> totals;
  for (size_t i = 0; i < budget_at; ++i) {
    if (r.events[i].value("type", "") == "tool_call") {
      totals.push_back(r.events[i]["total_calls"].get<uint64_t>());
    }
  }
  EXPECT_EQ(totals, (std::vector<uint64_t>{1, 2, 3})) << r.describe();
  expect_codes(r, {0, 1, 0});
}

TEST(BpfTools, CallPastBudgetsCostUsdIsKilledAndEndsTheRun) {
  TempDir dir;
  auto m = base_manifest("tools-budget-cost", {"/usr/bin/python3", "/usr/bin/true"});
  m["tools"][0]["cost_usd"] = 5;  // the initial command is free: it is not a call
  m["tools"][1]["cost_usd"] = 0.2;
  m["budgets"]["cost_usd"] = 0.5;
  auto r = run_enclosure(dir, m, caller({"/usr/bin/true", "/usr/bin/true", "/usr/bin/true"}));
  auto b = expect_budget_end(r, "cost_usd", "true");
  if (b.is_null()) return;
  EXPECT_EQ(b["limit"], "$0.50") << b.dump();
  EXPECT_EQ(b["value"], "$0.60") << b.dump();
  expect_calls_before_budget(r, "true", 2);
  auto calls = tool_calls(r, "true");
  ASSERT_GE(calls.size(), 2u) << r.describe();
  EXPECT_EQ(calls[0]["cost_usd"], "$0.20") << calls[0].dump();
  EXPECT_EQ(calls[1]["cost_usd"], "$0.40") << calls[1].dump();
  expect_codes(r, {0, 0});
}

TEST(BpfTools, InitialCommandCountsAgainstNoBudget) {
  TempDir dir;
  // Every budget at zero, and a price above the cost budget: the initial command still runs.
  auto m = base_manifest("tools-initial", {"/usr/bin/python3", "/usr/bin/true"});
  m["tools"][0]["max_calls"] = 0;
  m["tools"][0]["cost_usd"] = 1;
  m["budgets"]["tool_calls"] = 0;
  m["budgets"]["cost_usd"] = 0.5;
  auto r = run_enclosure(dir, m, python_agent("R['ran'] = True"));
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(harness::python_result(r)["ran"], true) << r.describe();
  EXPECT_TRUE(r.of_type("budget").empty()) << r.describe();
  EXPECT_TRUE(r.of_type("tool_call").empty()) << r.describe();
  auto exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  EXPECT_EQ(exit["budgets"]["tool_calls"]["value"], 0) << exit.dump();
  EXPECT_EQ(exit["budgets"]["tool_calls"]["by_tool"]["python3"], 0) << exit.dump();
  EXPECT_EQ(exit["budgets"]["cost_usd"]["tools"], "$0.00") << exit.dump();
  EXPECT_EQ(exit["budgets"]["kernel_events"]["execs"], 1) << exit.dump();
}

TEST(BpfTools, InitialCommandDoesNotUseUpMaxCalls) {
  TempDir dir;
  // python3 may be called once: the initial python3 is not that call, the first inner one is.
  auto m = base_manifest("tools-initial-max", {"/usr/bin/python3"});
  m["tools"][0]["max_calls"] = 1;
  auto r = run_enclosure(
      dir, m,
      caller({"/usr/bin/python3|-c|pass", "/usr/bin/python3|-c|pass", "/usr/bin/python3|-c|pass"}));
  auto b = expect_budget_end(r, "max_calls", "python3");
  if (b.is_null()) return;
  EXPECT_EQ(b["limit"], 1) << b.dump();
  EXPECT_EQ(b["value"], 2) << b.dump();
  expect_calls_before_budget(r, "python3", 1);
  expect_codes(r, {0});
}

TEST(BpfTools, ScriptToolIsCountedAsTheScriptNotItsInterpreter) {
  TempDir dir;
  std::string script =
      dir.write("bin/hello", "#!/usr/bin/python3\nprint('hello from script')\n", 0755);
  auto m = base_manifest("tools-script", {"/usr/bin/python3", script});
  m["filesystem"]["read"].push_back(dir.file("bin"));
  m["tools"][1]["max_calls"] = 1;
  auto r = run_enclosure(dir, m, caller({script, script, script}));
  auto b = expect_budget_end(r, "max_calls", "hello");
  EXPECT_NE(r.out.find("hello from script"), std::string::npos) << r.describe();
  if (b.is_null()) return;
  EXPECT_EQ(b["limit"], 1) << b.dump();
  EXPECT_EQ(b["value"], 2) << b.dump();
  expect_calls_before_budget(r, "hello", 1);
  EXPECT_TRUE(tool_calls(r, "python3").empty())
      << "the script's interpreter was counted as a call of its own\n"
      << r.describe();
  expect_codes(r, {0});
}
