// policy/launch.h: the launcher's decisions from the plan and host facts, without root.
#include "policy/launch.h"

#include <gtest/gtest.h>

namespace {

using policy::EnforcementPlan;
using policy::ExecutableFacts;
using Kind = policy::ExecutableFacts::Kind;
using json = nlohmann::json;

EnforcementPlan plan_with_tools() {
  EnforcementPlan plan;
  plan.tools = {{0, "python", "/usr/bin/python3", std::nullopt, 0},
                {1, "git", "/usr/bin/git", std::nullopt, 0},
                {2, "report", "/opt/agent/report.py", std::nullopt, 0}};
  return plan;
}

ExecutableFacts elf(const std::string& interpreter) {
  return {Kind::elf, interpreter, ""};
}

// ---- find_command_tool -----------------------------------------------------------------------

TEST(LaunchCommand, FindsAToolByPathNameOrBasename) {
  EnforcementPlan plan = plan_with_tools();
  std::string error;
  EXPECT_EQ(policy::find_command_tool(plan, "/usr/bin/git", error), &plan.tools[1]);
  EXPECT_EQ(policy::find_command_tool(plan, "python", error), &plan.tools[0]);
  EXPECT_EQ(policy::find_command_tool(plan, "python3", error), &plan.tools[0]);
  EXPECT_EQ(policy::find_command_tool(plan, "report.py", error), &plan.tools[2]);
  EXPECT_EQ(error, "");
}

TEST(LaunchCommand, ANameBeatsABasename) {
  EnforcementPlan plan = plan_with_tools();
  plan.tools.push_back({3, "git", "/opt/other/tool", std::nullopt, 0});
  plan.tools.push_back({4, "other", "/opt/bin/python", std::nullopt, 0});
  std::string error;
  EXPECT_EQ(policy::find_command_tool(plan, "python", error), &plan.tools[0]);
}

TEST(LaunchCommand, RefusesRelativePathsUnknownAndAmbiguousCommands) {
  EnforcementPlan plan = plan_with_tools();
  std::string error;
  EXPECT_EQ(policy::find_command_tool(plan, "bin/git", error), nullptr);
  EXPECT_EQ(error, "the command \"bin/git\" must be a tool name or the absolute path of a tool");

  EXPECT_EQ(policy::find_command_tool(plan, "/bin/sh", error), nullptr);
  EXPECT_EQ(error,
            "the command \"/bin/sh\" is not one of the manifest's tools:\n  python "
            "(/usr/bin/python3)\n  git (/usr/bin/git)\n  report (/opt/agent/report.py)");

  plan.tools.push_back({3, "git2", "/opt/bin/git", std::nullopt, 0});
  plan.tools[1].name = "vcs";
  EXPECT_EQ(policy::find_command_tool(plan, "git", error), nullptr);
  EXPECT_EQ(error,
            "the command \"git\" matches more than one tool (/usr/bin/git, /opt/bin/git); give "
            "the tool's name or path");
}

// ---- check_command_tool ----------------------------------------------------------------------

TEST(LaunchCommand, AMissingToolIsNotFound) {
  EnforcementPlan plan = plan_with_tools();
  auto refusal = policy::check_command_tool(
      plan, plan.tools[1], {Kind::missing, "", "No such file or directory"}, false);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->reason, policy::CommandRefusal::Reason::not_found);
  EXPECT_EQ(refusal->message, "tool \"git\": /usr/bin/git: No such file or directory");
}

TEST(LaunchCommand, ANonExecutableToolIsRefused) {
  EnforcementPlan plan = plan_with_tools();
  auto refusal = policy::check_command_tool(plan, plan.tools[1],
                                            {Kind::not_executable, "", "is not executable"}, false);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->reason, policy::CommandRefusal::Reason::not_executable);
  EXPECT_EQ(refusal->message, "tool \"git\": /usr/bin/git is not executable");
}

TEST(LaunchCommand, AScriptsInterpreterMustBeAToolExceptWhenObserving) {
  EnforcementPlan plan = plan_with_tools();
  ExecutableFacts bash_script{Kind::script, "/bin/bash", ""};
  auto refusal = policy::check_command_tool(plan, plan.tools[2], bash_script, false);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->reason, policy::CommandRefusal::Reason::not_executable);
  EXPECT_EQ(refusal->message,
            "tool \"report\" is a script for /bin/bash, which is not one of the manifest's "
            "tools; a script's interpreter must be a tool");
  EXPECT_FALSE(policy::check_command_tool(plan, plan.tools[2], bash_script, true));
  ExecutableFacts python_script{Kind::script, "/usr/bin/python3", ""};
  EXPECT_FALSE(policy::check_command_tool(plan, plan.tools[2], python_script, false));
  EXPECT_FALSE(policy::check_command_tool(plan, plan.tools[1], elf("/lib/ld.so"), false));
  EXPECT_FALSE(policy::check_command_tool(plan, plan.tools[1], {Kind::unknown, "", ""}, false));
}

// ---- widen_for_observation -------------------------------------------------------------------

TEST(LaunchObservation, ReadGrantsBecomeExecutable) {
  policy::LandlockPlan landlock;
  landlock.grants = {{"/", policy::kLandlockRead, "/filesystem/read/0"},
                     {"/work", policy::kLandlockRead | policy::kLandlockWrite, "w"},
                     {"/tmp", policy::kLandlockWrite, "t"}};
  policy::widen_for_observation(landlock);
  EXPECT_EQ(landlock.grants[0].access, policy::kLandlockRead | policy::kLandlockExecute);
  EXPECT_EQ(landlock.grants[1].access,
            policy::kLandlockRead | policy::kLandlockWrite | policy::kLandlockExecute);
  EXPECT_EQ(landlock.grants[2].access, policy::kLandlockWrite);
}

// ---- tool_mounts -----------------------------------------------------------------------------

TEST(LaunchMounts, ElfInterpretersAreMountedOnceAndSortedByDepth) {
  EnforcementPlan plan = plan_with_tools();
  plan.mounts.steps = {{policy::MountKind::bind_read, "/usr/lib/python3", "/filesystem/read/0"},
                       {policy::MountKind::tmpfs, "/tmp", "/filesystem/tmpfs/0"},
                       {policy::MountKind::tool, "/usr/bin/git", "/tools/1/path"}};
  policy::ToolFacts facts = {{"/usr/bin/python3", elf("/lib64/ld-linux-x86-64.so.2")},
                             {"/usr/bin/git", elf("/lib64/ld-linux-x86-64.so.2")},
                             {"/opt/agent/report.py", {Kind::script, "/usr/bin/python3", ""}}};
  policy::ToolMounts m = policy::tool_mounts(plan, facts);
  EXPECT_EQ(m.interpreters, std::vector<std::string>{"/lib64/ld-linux-x86-64.so.2"});
  EXPECT_EQ(m.script_tools, std::vector<size_t>{2});
  std::vector<std::string> order;
  for (const policy::MountStep& s : m.steps)
    order.push_back(s.path + " " + s.origin);
  EXPECT_EQ(order, (std::vector<std::string>{
                       "/tmp /filesystem/tmpfs/0",
                       "/lib64/ld-linux-x86-64.so.2 /tools/0/path (ELF interpreter)",
                       "/usr/lib/python3 /filesystem/read/0",
                       "/usr/bin/git /tools/1/path",
                   }));
  EXPECT_EQ(m.steps[1].kind, policy::MountKind::tool);
}

TEST(LaunchMounts, StaticBinariesRelativeInterpretersAndUnknownToolsAddNothing) {
  EnforcementPlan plan = plan_with_tools();
  policy::ToolFacts facts = {{"/usr/bin/python3", elf("")},
                             {"/usr/bin/git", elf("lib/ld.so")},
                             {"/opt/agent/report.py", {Kind::missing, "", "gone"}}};
  policy::ToolMounts m = policy::tool_mounts(plan, facts);
  EXPECT_TRUE(m.interpreters.empty());
  EXPECT_TRUE(m.script_tools.empty());
  EXPECT_TRUE(m.steps.empty());
}

TEST(LaunchMounts, DistinctInterpretersKeepTheToolsOrder) {
  EnforcementPlan plan = plan_with_tools();
  policy::ToolFacts facts = {{"/usr/bin/python3", elf("/lib/ld-b.so")},
                             {"/usr/bin/git", elf("/lib/ld-a.so")}};
  policy::ToolMounts m = policy::tool_mounts(plan, facts);
  EXPECT_EQ(m.interpreters, (std::vector<std::string>{"/lib/ld-b.so", "/lib/ld-a.so"}));
  ASSERT_EQ(m.steps.size(), 2u);
  EXPECT_EQ(m.steps[1].origin, "/tools/1/path (ELF interpreter)");
}

// ---- layers ----------------------------------------------------------------------------------

EnforcementPlan plan_with_requirements() {
  EnforcementPlan plan;
  plan.requirements = {{"landlock", "landlock abi>=4 (tcp connect)", "/network/egress"},
                       {"bpf", "eBPF cgroup programs", "/network/egress"},
                       {"bpf", "eBPF tracing", "/budgets/tool_calls"},
                       {"cgroup", "cgroup memory controller", "/budgets/memory"}};
  return plan;
}

TEST(LaunchLayers, NeedsLayerLooksAtTheRequirements) {
  EnforcementPlan plan = plan_with_requirements();
  EXPECT_TRUE(policy::needs_layer(plan, "bpf"));
  EXPECT_TRUE(policy::needs_layer(plan, "cgroup"));
  EXPECT_FALSE(policy::needs_layer(plan, "seccomp"));
}

TEST(LaunchLayers, EverythingMetDegradesNothing) {
  EnforcementPlan plan = plan_with_requirements();
  policy::DegradedDecision d = policy::decide_degraded(plan, {}, {});
  EXPECT_FALSE(d.refusal);
  EXPECT_TRUE(d.degraded.empty());
  EXPECT_TRUE(d.layers.empty());
}

TEST(LaunchLayers, AllowedShortfallsAreDegraded) {
  EnforcementPlan plan = plan_with_requirements();
  plan.enforcement.allow_degraded = {"landlock", "cgroup"};
  std::vector<policy::Shortfall> unmet = {{plan.requirements[0], "Landlock abi 3 < 4"},
                                          {plan.requirements[3], "no memory controller"}};
  policy::DegradedDecision d = policy::decide_degraded(plan, unmet, {});
  EXPECT_FALSE(d.refusal);
  EXPECT_EQ(d.layers, (std::set<std::string>{"landlock", "cgroup"}));
  ASSERT_EQ(d.degraded.size(), 2u);
  EXPECT_EQ(policy::degraded_report(d.degraded), json::parse(R"j([
              {"layer": "landlock", "feature": "landlock abi>=4 (tcp connect)",
               "origin": "/network/egress", "reason": "Landlock abi 3 < 4"},
              {"layer": "cgroup", "feature": "cgroup memory controller",
               "origin": "/budgets/memory", "reason": "no memory controller"}])j"));
}

TEST(LaunchLayers, TheFirstShortfallNotAllowedIsTheRefusal) {
  EnforcementPlan plan = plan_with_requirements();
  plan.enforcement.allow_degraded = {"landlock"};
  std::vector<policy::Shortfall> unmet = {{plan.requirements[0], "Landlock abi 3 < 4"},
                                          {plan.requirements[3], "no memory controller"},
                                          {plan.requirements[1], "no BTF"}};
  policy::DegradedDecision d = policy::decide_degraded(plan, unmet, {.root = true});
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(*d.refusal,
            "refusing to start: /budgets/memory needs cgroup memory controller, which this host "
            "cannot provide: no memory controller.\n"
            "  To run without it, the manifest must list \"cgroup\" under "
            "/enforcement/allow_degraded.");
}

TEST(LaunchLayers, WithoutRootAndWithoutADaemonTheRefusalSuggestsOne) {
  EnforcementPlan plan = plan_with_requirements();
  std::vector<policy::Shortfall> unmet = {{plan.requirements[1], "not root"}};
  policy::LaunchHost host{.root = false,
                          .layers_from_daemon = false,
                          .default_daemon_socket = "/run/enclosure/daemon.sock"};
  policy::DegradedDecision d = policy::decide_degraded(plan, unmet, host);
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(*d.refusal,
            "refusing to start: /network/egress needs eBPF cgroup programs, which this host "
            "cannot provide: not root.\n"
            "  Without root, the eBPF and cgroup layers come from enclosure daemon: start it as "
            "root (enclosure daemon --socket PATH, or the enclosure-daemon.service unit) and run "
            "with --daemon PATH (default /run/enclosure/daemon.sock).\n"
            "  To run without it, the manifest must list \"bpf\" under "
            "/enforcement/allow_degraded.");
  host.layers_from_daemon = true;
  EXPECT_EQ(policy::decide_degraded(plan, unmet, host).refusal->find("Without root"),
            std::string::npos);
  host = {.root = true};
  EXPECT_EQ(policy::decide_degraded(plan, unmet, host).refusal->find("Without root"),
            std::string::npos);
  host = {};
  unmet = {{plan.requirements[0], "old kernel"}};
  EXPECT_EQ(policy::decide_degraded(plan, unmet, host).refusal->find("Without root"),
            std::string::npos);
}

TEST(LaunchLayers, AFailedEbpfLoadDegradesEveryBpfRequirement) {
  EnforcementPlan plan = plan_with_requirements();
  policy::DegradedDecision d;
  d.degraded.push_back({plan.requirements[0], "old kernel"});
  policy::degrade_failed_bpf(plan, "verifier says no", d);
  EXPECT_TRUE(d.layers.count("bpf"));
  ASSERT_EQ(d.degraded.size(), 3u);
  EXPECT_EQ(d.degraded[1].requirement.origin, "/network/egress");
  EXPECT_EQ(d.degraded[2].requirement.origin, "/budgets/tool_calls");
  EXPECT_EQ(d.degraded[2].reason, "the eBPF programs failed to load: verifier says no");
}

TEST(LaunchLayers, TheEbpfLayerEnforcesTcpEgressWhenItIsThere) {
  EnforcementPlan plan;
  plan.network.mode = policy::NetworkMode::filtered;
  plan.landlock.restrict_tcp_connect = true;
  EXPECT_TRUE(policy::bpf_enforces_egress(plan, true));
  EXPECT_FALSE(policy::bpf_enforces_egress(plan, false));
  policy::assign_tcp_egress(plan, false);
  EXPECT_TRUE(plan.landlock.restrict_tcp_connect);  // Landlock is the port filter of last resort
  policy::assign_tcp_egress(plan, true);
  EXPECT_FALSE(plan.landlock.restrict_tcp_connect);

  EnforcementPlan none;
  none.network.mode = policy::NetworkMode::none;
  none.landlock.restrict_tcp_connect = true;
  EXPECT_FALSE(policy::bpf_enforces_egress(none, true));
  policy::assign_tcp_egress(none, true);
  EXPECT_TRUE(none.landlock.restrict_tcp_connect);
}

TEST(LaunchLayers, CpuLimitIsTheBudgetPlusGraceWithASecondToSpareEach) {
  policy::Budgets budgets;
  EXPECT_FALSE(policy::cpu_limit_seconds(budgets, 2'000'000'000ULL));
  budgets.cpu_time_ns = 30'500'000'000ULL;
  EXPECT_EQ(policy::cpu_limit_seconds(budgets, 2'000'000'000ULL), 30u + 1 + 2 + 1);
  EXPECT_EQ(policy::cpu_limit_seconds(budgets, 0), 30u + 1 + 0 + 1);
}

// ---- describe_layers -------------------------------------------------------------------------

TEST(LaunchDescription, AMinimalRunNamesItsNamespacesAndProcessSetUp) {
  EnforcementPlan plan;
  plan.seccomp.name = "default";
  policy::LayerFacts facts;
  facts.seccomp = false;
  json layers = policy::describe_layers(plan, facts);
  EXPECT_EQ(layers["network"], json::array({"network namespace: empty, loopback only"}));
  EXPECT_EQ(layers["syscalls"], json::array());
  EXPECT_EQ(layers["process"][0], "pid, mount, ipc, uts, cgroup namespaces");
  EXPECT_EQ(layers["filesystem"].size(), 1u);
  EXPECT_EQ(layers["budgets"],
            json({{"wall_clock", "supervisor timerfd, then SIGTERM, grace, cgroup.kill"}}));
  EXPECT_FALSE(layers.contains("audit"));
}

TEST(LaunchDescription, LandlockSeccompAndUserNamespace) {
  EnforcementPlan plan;
  plan.seccomp.name = "strict";
  plan.network.mode = policy::NetworkMode::filtered;
  plan.landlock.restrict_tcp_connect = true;
  policy::LayerFacts facts;
  facts.landlock_abi = 4;
  facts.user_namespace = true;
  json layers = policy::describe_layers(plan, facts);
  EXPECT_EQ(layers["syscalls"][0], "seccomp: strict profile, native ABI only, user notification");
  EXPECT_EQ(layers["process"][0], "pid, mount, ipc, uts, cgroup namespaces, user namespace");
  EXPECT_EQ(layers["filesystem"][1], "landlock abi 4");
  EXPECT_EQ(layers["tools"][1], "landlock: EXECUTE only on tools and their ELF interpreters");
  EXPECT_EQ(layers["network"],
            json::array({"landlock: tcp connect only to egress ports (no eBPF layer)"}));
  facts.observe = true;
  facts.landlock_abi = 3;
  layers = policy::describe_layers(plan, facts);
  EXPECT_EQ(layers["tools"][1],
            "observation run (enclosure learn): landlock EXECUTE on every read grant");
  EXPECT_EQ(layers["network"], json::array());
}

TEST(LaunchDescription, EbpfResolverAndCgroupBudgets) {
  EnforcementPlan plan;
  plan.network.mode = policy::NetworkMode::filtered;
  plan.budgets.syscalls = 10;
  plan.budgets.tool_calls = 3;
  plan.budgets.egress_bytes = 100;
  plan.budgets.cpu_time_ns = 1;
  plan.budgets.processes = 5;
  plan.budgets.memory_bytes = 1 << 20;
  plan.audit.files = true;
  policy::LayerFacts facts;
  facts.provider = "cgroup and eBPF programs from enclosure daemon at /s";
  facts.kernel_layer = true;
  facts.bpf_report = {{"programs", {{"network", {"connect4"}}}}};
  facts.resolver = policy::ResolverFacts{5353, 5354, "1.1.1.1:53", "10s"};
  facts.cgroup = true;
  facts.cgroup_report = {{"pids", {{"via", "v2 pids.max"}}}, {"memory", {{"via", "v1"}}}};
  json layers = policy::describe_layers(plan, facts);
  EXPECT_EQ(layers["process"].back(), facts.provider);
  EXPECT_EQ(layers["network"][0], "bpf: [\"connect4\"]");
  EXPECT_EQ(layers["network"][1],
            "resolver on 127.0.0.1:5353 and [::1]:5354 (upstream 1.1.1.1:53): port 53 "
            "redirected to it; answered addresses admitted for TTL + 10s");
  EXPECT_EQ(layers["tools"].back(),
            "bpf tp_btf/sched_process_exec: exec and tool_call events, counts, prices");
  EXPECT_EQ(layers["budgets"]["syscalls"], "bpf tp_btf/sys_exit per-cgroup counter, SIGKILL");
  EXPECT_EQ(layers["budgets"]["tool_calls"], "bpf sched_process_exec counter, SIGKILL");
  EXPECT_EQ(layers["budgets"]["egress_bytes"], "bpf cgroup_skb/egress byte counter, drop");
  EXPECT_EQ(layers["budgets"]["cpu_time"], "cgroup cpu.stat, RLIMIT_CPU backstop");
  EXPECT_EQ(layers["budgets"]["processes"], "v2 pids.max");
  EXPECT_EQ(layers["budgets"]["memory"], "v1");
  EXPECT_EQ(
      layers["audit"],
      json::array({"bpf tp_btf/sys_exit: first open of each file and mode, repeats counted"}));
}

TEST(LaunchDescription, ReportedCostIsTheSupervisorsWithoutEbpf) {
  EnforcementPlan plan;
  plan.budgets.cost_micro_usd = 100;
  policy::LayerFacts facts;
  EXPECT_EQ(policy::describe_layers(plan, facts)["budgets"]["cost_usd"],
            "supervisor: metered reports");
  facts.kernel_layer = true;
  EXPECT_EQ(policy::describe_layers(plan, facts)["budgets"]["cost_usd"],
            "bpf sched_process_exec prices + metered reports");
  facts.observe = true;
  facts.resolver = policy::ResolverFacts{1, 2, "u", "0"};
  std::string network = policy::describe_layers(plan, facts)["network"].dump();
  EXPECT_NE(network.find("(observation run: every name is answered)"), std::string::npos);
}

}  // namespace
