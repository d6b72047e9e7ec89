#include "policy/launch.h"

#include <algorithm>

#include "policy/path.h"

namespace policy {

using json = nlohmann::json;

const ToolEntry* find_command_tool(const EnforcementPlan& plan, const std::string& command,
                                   std::string& error) {
  if (command.find('/') != std::string::npos) {
    if (command[0] != '/') {
      error = "the command \"" + command + "\" must be a tool name or the absolute path of a tool";
      return nullptr;
    }
    if (const ToolEntry* t = plan.tool_by_path(command)) return t;
  } else {
    for (const ToolEntry& t : plan.tools) {
      if (t.name == command) return &t;
    }
    const ToolEntry* found = nullptr;
    for (const ToolEntry& t : plan.tools) {
      if (path_segments(t.path).back() != command) continue;
      if (found) {
        error = "the command \"" + command + "\" matches more than one tool (" + found->path +
                ", " + t.path + "); give the tool's name or path";
        return nullptr;
      }
      found = &t;
    }
    if (found) return found;
  }
  std::string names;
  for (const ToolEntry& t : plan.tools)
    names += "\n  " + t.name + " (" + t.path + ")";
  error = "the command \"" + command + "\" is not one of the manifest's tools:" + names;
  return nullptr;
}

std::optional<CommandRefusal> check_command_tool(const EnforcementPlan& plan, const ToolEntry& tool,
                                                 const ExecutableFacts& facts, bool observe) {
  using Kind = ExecutableFacts::Kind;
  std::string named = "tool \"" + tool.name + "\"";
  if (facts.kind == Kind::missing) {
    return CommandRefusal{CommandRefusal::Reason::not_found,
                          named + ": " + tool.path + ": " + facts.error};
  }
  if (facts.kind == Kind::not_executable) {
    return CommandRefusal{CommandRefusal::Reason::not_executable,
                          named + ": " + tool.path + " " + facts.error};
  }
  if (facts.kind == Kind::script && !plan.tool_by_path(facts.interpreter) && !observe) {
    return CommandRefusal{CommandRefusal::Reason::not_executable,
                          named + " is a script for " + facts.interpreter +
                              ", which is not one of the manifest's tools; a script's "
                              "interpreter must be a tool"};
  }
  return std::nullopt;
}

void widen_for_observation(LandlockPlan& landlock) {
  for (LandlockGrant& g : landlock.grants) {
    if (g.access & kLandlockRead) g.access |= kLandlockExecute;
  }
}

ToolMounts tool_mounts(const EnforcementPlan& plan, const ToolFacts& facts) {
  ToolMounts out;
  out.steps = plan.mounts.steps;
  for (const ToolEntry& t : plan.tools) {
    auto it = facts.find(t.path);
    if (it == facts.end()) continue;
    const ExecutableFacts& info = it->second;
    if (info.kind == ExecutableFacts::Kind::script) out.script_tools.push_back(t.index);
    if (info.kind != ExecutableFacts::Kind::elf || info.interpreter.empty()) continue;
    if (!check_absolute_path(info.interpreter).empty()) continue;
    if (std::find(out.interpreters.begin(), out.interpreters.end(), info.interpreter) !=
        out.interpreters.end())
      continue;
    out.interpreters.push_back(info.interpreter);
    out.steps.push_back({MountKind::tool, info.interpreter,
                         "/tools/" + std::to_string(t.index) + "/path (ELF interpreter)"});
  }
  std::stable_sort(out.steps.begin(), out.steps.end(), [](const MountStep& a, const MountStep& b) {
    return path_segments(a.path).size() < path_segments(b.path).size();
  });
  return out;
}

bool needs_layer(const EnforcementPlan& plan, std::string_view layer) {
  return std::any_of(plan.requirements.begin(), plan.requirements.end(),
                     [layer](const Requirement& r) { return r.layer == layer; });
}

namespace {

std::string refusal_message(const Shortfall& s, const LaunchHost& host) {
  const Requirement& r = s.requirement;
  std::string out = "refusing to start: " + r.origin + " needs " + r.feature +
                    ", which this host cannot provide: " + s.reason + ".\n";
  if (!host.root && !host.layers_from_daemon && (r.layer == "bpf" || r.layer == "cgroup")) {
    out +=
        "  Without root, the eBPF and cgroup layers come from enclosure daemon: start it as root "
        "(enclosure daemon --socket PATH, or the enclosure-daemon.service unit) and run with "
        "--daemon PATH (default " +
        host.default_daemon_socket + ").\n";
  }
  return out + "  To run without it, the manifest must list \"" + r.layer +
         "\" under /enforcement/allow_degraded.";
}

}  // namespace

DegradedDecision decide_degraded(const EnforcementPlan& plan, const std::vector<Shortfall>& unmet,
                                 const LaunchHost& host) {
  DegradedDecision out;
  for (const Shortfall& s : unmet) {
    if (!plan.enforcement.allows(s.requirement.layer)) {
      out.refusal = refusal_message(s, host);
      return out;
    }
    out.layers.insert(s.requirement.layer);
    out.degraded.push_back(s);
  }
  return out;
}

void degrade_failed_bpf(const EnforcementPlan& plan, const std::string& error,
                        DegradedDecision& decision) {
  decision.layers.insert("bpf");
  for (const Requirement& r : plan.requirements) {
    // Programs fail to load in a launcher that provides the layer itself (root), which sets
    // vm.memfd_noexec without them.
    if (r.layer != "bpf" || r.feature.starts_with(kMemfdNoexecFeature)) continue;
    decision.degraded.push_back({r, "the eBPF programs failed to load: " + error});
  }
}

json degraded_report(const std::vector<Shortfall>& degraded) {
  json out = json::array();
  for (const Shortfall& s : degraded) {
    out.push_back({{"layer", s.requirement.layer},
                   {"feature", s.requirement.feature},
                   {"origin", s.requirement.origin},
                   {"reason", s.reason}});
  }
  return out;
}

bool bpf_enforces_egress(const EnforcementPlan& plan, bool kernel_layer) {
  return kernel_layer && plan.network.mode == NetworkMode::filtered;
}

void assign_tcp_egress(EnforcementPlan& plan, bool kernel_layer) {
  if (bpf_enforces_egress(plan, kernel_layer)) plan.landlock.restrict_tcp_connect = false;
}

std::optional<uint64_t> cpu_limit_seconds(const Budgets& budgets, uint64_t grace_ns) {
  if (!budgets.cpu_time_ns) return std::nullopt;
  constexpr uint64_t kNsPerSecond = 1'000'000'000ULL;
  return *budgets.cpu_time_ns / kNsPerSecond + 1 + grace_ns / kNsPerSecond + 1;
}

namespace {

// What every run has, whatever the host: the namespaces, the process set-up, the wall clock.
json base_layers(const EnforcementPlan& plan, const LayerFacts& facts) {
  return {{"filesystem", json::array({"mount namespace: tmpfs root, binds, masks, pivot_root"})},
          {"tools", json::array({"mount namespace: only granted files exist"})},
          {"network", plan.network.mode == NetworkMode::none
                          ? json::array({"network namespace: empty, loopback only"})
                          : json::array()},
          {"syscalls", facts.seccomp ? json::array({"seccomp: " + plan.seccomp.name +
                                                    " profile, native ABI only, user notification"})
                                     : json::array()},
          {"process",
           json::array({"pid, mount, ipc, uts, cgroup namespaces" +
                            std::string(facts.user_namespace ? ", user namespace" : ""),
                        "no capabilities, bounding set empty, securebits locked", "no_new_privs",
                        "setsid", "fds 0-2 and the metering pipe (fd 3, ENCLOSURE_METER_FD) only",
                        "RLIMIT_CORE 0"})},
          {"budgets", {{"wall_clock", "supervisor timerfd, then SIGTERM, grace, cgroup.kill"}}}};
}

void add_landlock_layers(const EnforcementPlan& plan, const LayerFacts& facts, json& layers) {
  if (facts.landlock_abi <= 0) return;
  layers["filesystem"].push_back("landlock abi " + std::to_string(facts.landlock_abi));
  layers["tools"].push_back(
      facts.observe ? "observation run (enclosure learn): landlock EXECUTE on every read grant"
                    : "landlock: EXECUTE only on tools and their ELF interpreters");
  if (plan.landlock.restrict_tcp_connect && facts.landlock_abi >= 4) {
    layers["network"].push_back("landlock: tcp connect only to egress ports (no eBPF layer)");
  }
}

void add_bpf_layers(const EnforcementPlan& plan, const LayerFacts& facts, json& layers) {
  if (!facts.kernel_layer) return;
  json programs =
      facts.bpf_report.is_object() ? facts.bpf_report.value("programs", json()) : json();
  if (programs.is_object() && programs.contains("network")) {
    layers["network"].push_back("bpf: " + programs["network"].dump());
  }
  if (facts.resolver) {
    const ResolverFacts& r = *facts.resolver;
    layers["network"].push_back(
        "resolver on 127.0.0.1:" + std::to_string(r.port4) +
        " and [::1]:" + std::to_string(r.port6) + " (upstream " + r.upstream +
        "): port 53 redirected to it; answered addresses " + "admitted for TTL + " + r.grace +
        (facts.observe ? " (observation run: every name is answered)" : ""));
  }
  layers["tools"].push_back(
      "bpf tp_btf/sched_process_exec: exec and tool_call events, counts, prices");
  json& budgets = layers["budgets"];
  if (plan.budgets.syscalls)
    budgets["syscalls"] = "bpf tp_btf/sys_exit per-cgroup counter, SIGKILL";
  if (plan.budgets.tool_calls) budgets["tool_calls"] = "bpf sched_process_exec counter, SIGKILL";
  if (plan.budgets.cost_micro_usd)
    budgets["cost_usd"] = "bpf sched_process_exec prices + metered reports";
  if (plan.budgets.egress_bytes)
    budgets["egress_bytes"] = "bpf cgroup_skb/egress byte counter, drop";
  if (plan.audit.files)
    layers["audit"] = {"bpf tp_btf/sys_exit: first open of each file and mode, repeats counted"};
}

void add_cgroup_layers(const EnforcementPlan& plan, const LayerFacts& facts, json& layers) {
  if (!facts.cgroup) return;
  json& budgets = layers["budgets"];
  const json& report = facts.cgroup_report;
  if (plan.budgets.cpu_time_ns) budgets["cpu_time"] = "cgroup cpu.stat, RLIMIT_CPU backstop";
  if (plan.budgets.processes && report.is_object() && report.contains("pids"))
    budgets["processes"] = report["pids"]["via"];
  if (plan.budgets.memory_bytes && report.is_object() && report.contains("memory"))
    budgets["memory"] = report["memory"]["via"];
}

}  // namespace

json describe_layers(const EnforcementPlan& plan, const LayerFacts& facts) {
  json layers = base_layers(plan, facts);
  add_landlock_layers(plan, facts, layers);
  if (!facts.provider.empty()) layers["process"].push_back(facts.provider);
  add_bpf_layers(plan, facts, layers);
  if (plan.budgets.cost_micro_usd && !layers["budgets"].contains("cost_usd")) {
    layers["budgets"]["cost_usd"] = "supervisor: metered reports";
  }
  add_cgroup_layers(plan, facts, layers);
  return layers;
}

}  // namespace policy
