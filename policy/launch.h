// policy::launch: what the launcher decides from the plan and facts about the host, as pure
// functions. The launcher gathers the facts (what is at each tool's path, which requirements
// this host does not meet and why, what the layer provider made) and applies the answers; it
// decides nothing about meaning itself.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/plan.h"

namespace policy {

// ---- the command ---------------------------------------------------------------------------

// What is at a tool's path: the launcher reads the file's header (launcher/run/executable.h).
struct ExecutableFacts {
  enum class Kind { missing, not_executable, elf, script, unknown } kind = Kind::missing;
  std::string interpreter;  // PT_INTERP of an ELF, or the #! program of a script
  std::string error;        // why `missing` or `not_executable`
};
// By tool path.
using ToolFacts = std::map<std::string, ExecutableFacts>;

// The tool the command names: by absolute path, by tool name, or by the basename of a tool's
// path (so `-- python3 x.py` finds /usr/bin/python3). nullptr with `error` set when it names
// none, or more than one.
const ToolEntry* find_command_tool(const EnforcementPlan& plan, const std::string& command,
                                   std::string& error);

// Why the command's tool cannot be started: its file is missing (not_found), not executable,
// or a script whose interpreter is not a tool (allowed in an observation run).
struct CommandRefusal {
  enum class Reason { not_found, not_executable } reason = Reason::not_executable;
  std::string message;  // "tool \"NAME\": PATH: why"
};
std::optional<CommandRefusal> check_command_tool(const EnforcementPlan& plan, const ToolEntry& tool,
                                                 const ExecutableFacts& facts, bool observe);

// ---- the mount view ----------------------------------------------------------------------------

// The observation run of `enclosure learn`: every read grant is also an EXECUTE grant, so the
// programs the command starts are observed rather than refused.
void widen_for_observation(LandlockPlan& landlock);

// The plan's mount steps plus one implicit `tool` step per distinct ELF interpreter of the
// tools (reachable and executable), stably sorted by depth so parents come first.
struct ToolMounts {
  std::vector<MountStep> steps;
  std::vector<std::string> interpreters;  // in the order the tools name them
  std::vector<size_t> script_tools;       // indices of the tools that are #! scripts
};
ToolMounts tool_mounts(const EnforcementPlan& plan, const ToolFacts& facts);

// ---- layers ------------------------------------------------------------------------------------

// Whether any requirement of the plan names `layer` ("bpf", "cgroup", ...).
bool needs_layer(const EnforcementPlan& plan, std::string_view layer);

// A requirement this host does not meet, and why.
struct Shortfall {
  Requirement requirement;
  std::string reason;
};

// Where the launcher stands: whether it is root and whether the eBPF and cgroup layers come
// from `enclosure daemon` (then a refusal does not suggest starting one).
struct LaunchHost {
  bool root = false;
  bool layers_from_daemon = false;
  std::string default_daemon_socket;  // named in the hint to start a daemon
};

// The unmet requirements the manifest allows degraded, the layers that run without them, or
// the refusal (the first that is not allowed) as the launcher prints it after "enclosure run: ".
struct DegradedDecision {
  std::vector<Shortfall> degraded;
  std::set<std::string> layers;
  std::optional<std::string> refusal;
};
DegradedDecision decide_degraded(const EnforcementPlan& plan, const std::vector<Shortfall>& unmet,
                                 const LaunchHost& host);

// The start of the requirement's feature text for vm.memfd_noexec (policy/compile.cc), which
// comes with the eBPF layer's provider rather than from the programs.
constexpr const char* kMemfdNoexecFeature = "vm.memfd_noexec=2";

// The eBPF layer failed to load (`error`) and the manifest allows it degraded: every
// requirement of the bpf layer runs without it.
void degrade_failed_bpf(const EnforcementPlan& plan, const std::string& error,
                        DegradedDecision& decision);

// The start event's enforcement.degraded: [{layer, feature, origin, reason}].
nlohmann::json degraded_report(const std::vector<Shortfall>& degraded);

// Which layer enforces TCP egress: the eBPF egress layer when it is there (network mode
// filtered). Landlock's TCP port rules run before the eBPF connect hooks and would refuse,
// unlogged and with EACCES, a subset of what the eBPF layer refuses with EPERM and an event;
// they are the port filter of last resort, turned off when the eBPF layer enforces egress.
bool bpf_enforces_egress(const EnforcementPlan& plan, bool kernel_layer);
void assign_tcp_egress(EnforcementPlan& plan, bool kernel_layer);

// The RLIMIT_CPU backstop: the CPU budget plus the grace period, rounded up, with a second to
// spare each; nullopt without a CPU budget.
std::optional<uint64_t> cpu_limit_seconds(const Budgets& budgets, uint64_t grace_ns);

// ---- the start event ---------------------------------------------------------------------------

struct ResolverFacts {
  uint16_t port4 = 0;
  uint16_t port6 = 0;
  std::string upstream;
  std::string grace;  // --dns-grace as given
};

// What enforces the run, as the launcher set it up.
struct LayerFacts {
  int landlock_abi = 0;  // 0: Landlock not applied
  bool seccomp = true;
  bool user_namespace = false;
  bool observe = false;
  std::string provider;  // where the cgroup and eBPF layers come from; "" for this process
  bool kernel_layer = false;
  nlohmann::json bpf_report;
  std::optional<ResolverFacts> resolver;
  bool cgroup = false;
  nlohmann::json cgroup_report;
};

// The start event's enforcement.layers: what enforces each section of the manifest.
nlohmann::json describe_layers(const EnforcementPlan& plan, const LayerFacts& facts);

}  // namespace policy
