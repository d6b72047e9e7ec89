// enclosure run -m FILE [--daemon PATH] [--context NAME=VALUE]... [--context-file FILE]
//               [--events DEST]... [--grace DURATION] [--dns-upstream ADDR:PORT]
//               [--dns-grace DURATION] -- CMD [ARG]...
// Starts CMD (one of the manifest's tools) inside the enclosure and supervises it. As root it
// builds every layer itself; otherwise the eBPF and cgroup layers come from `enclosure daemon`.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include "bpf/enclosure_bpf.h"
#include "launcher/run/cgroup.h"
#include "launcher/events/collector_sink.h"
#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"
#include "launcher/daemon/client.h"
#include "launcher/daemon/protocol.h"
#include "launcher/dns/admissions.h"
#include "launcher/dns/resolver.h"
#include "launcher/base/error.h"
#include "launcher/events/event.h"
#include "launcher/run/executable.h"
#include "launcher/run/host_features.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/run/spawn.h"
#include "launcher/run/supervisor.h"
#include "policy/baseline.h"
#include "policy/bpf_plan.h"
#include "policy/compile.h"
#include "policy/path.h"
#include "policy/units.h"

extern char** environ;

namespace po = boost::program_options;

namespace launcher {
namespace {

constexpr int kLaunchError = 125;
constexpr int kNotExecutable = 126;
constexpr int kNotFound = 127;

struct RunOptions {
  std::string manifest;
  std::vector<std::string> context;
  std::string context_file;
  std::vector<std::string> events;
  std::string grace = "2s";
  size_t ring_buffer_bytes = 0;
  bool audit_required = false;
  size_t collector_buffer_lines = 100000;
  std::string dns_upstream;
  std::string dns_grace = "10s";
  bool observe = false;  // `enclosure learn`: any program of the granted tree may run
  std::string daemon;    // --daemon PATH
  std::vector<std::string> command;
};

// How long the launcher waits at exit for the collector to acknowledge the last events.
constexpr int kFlushTimeoutMs = 5000;

// The tool the command names: by absolute path, by tool name, or by the basename of a tool's
// path (so `-- python3 x.py` finds /usr/bin/python3).
const policy::ToolEntry* find_command_tool(const policy::EnforcementPlan& plan,
                                           const std::string& cmd, std::string& error) {
  if (cmd.find('/') != std::string::npos) {
    if (cmd[0] != '/') {
      error = "the command \"" + cmd + "\" must be a tool name or the absolute path of a tool";
      return nullptr;
    }
    if (const policy::ToolEntry* t = plan.tool_by_path(cmd)) return t;
  } else {
    for (const policy::ToolEntry& t : plan.tools) {
      if (t.name == cmd) return &t;
    }
    const policy::ToolEntry* found = nullptr;
    for (const policy::ToolEntry& t : plan.tools) {
      if (policy::path_segments(t.path).back() == cmd) {
        if (found) {
          error = "the command \"" + cmd + "\" matches more than one tool (" + found->path + ", " +
                  t.path + "); give the tool's name or path";
          return nullptr;
        }
        found = &t;
      }
    }
    if (found) return found;
  }
  std::string names;
  for (const policy::ToolEntry& t : plan.tools)
    names += "\n  " + t.name + " (" + t.path + ")";
  error = "the command \"" + cmd + "\" is not one of the manifest's tools:" + names;
  return nullptr;
}

std::vector<std::string> build_environment(const policy::Process& process) {
  std::map<std::string, std::string> env;
  for (const std::string& name : process.env_pass) {
    if (const char* v = ::getenv(name.c_str())) env[name] = v;
  }
  for (const auto& [k, v] : process.env_set)
    env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env)
    out.push_back(k + "=" + v);
  return out;
}

void print_summary(const RunIdentity& id, const RunOutcome& o) {
  bool intervened = o.denials > 0 || o.dns_refused > 0 || o.ended_by == "budget" ||
                    o.ended_by == "violation" || o.ended_by == "audit_unavailable" ||
                    o.ended_by == "anomaly";
  if (!intervened) return;
  std::string line = "enclosure: run " + id.run_id + ":";
  if (o.denials > 0) {
    line += " " + std::to_string(o.denials) + " operation" + (o.denials == 1 ? "" : "s") +
            " denied (first: " + quote_for_terminal(o.first_denial) + ");";
  }
  if (o.dns_refused > 0) {
    line += " " + std::to_string(o.dns_refused) + " DNS name" + (o.dns_refused == 1 ? "" : "s") +
            " refused (first: " + quote_for_terminal(o.first_dns_refused) + ");";
  }
  if (o.ended_by == "budget") line += " terminated: budget " + o.budget + " exceeded;";
  if (o.ended_by == "violation") line += " terminated on the first violation (on_violation: kill);";
  if (o.ended_by == "anomaly") line += " terminated: " + o.message + " (baseline action: kill);";
  if (o.ended_by == "audit_unavailable") line += " terminated: " + o.message + ";";
  line += " exit " + std::to_string(o.exit_code) + "\n";
  write_all(STDERR_FILENO, line.data(), line.size());
}

int run(const RunOptions& opt) {
  policy::ContextValues context;
  std::string error;
  if (!collect_context(opt.context, opt.context_file, context, error)) {
    std::cerr << "enclosure run: " << error << "\n";
    return kLaunchError;
  }
  LoadedManifest loaded = load_manifest_file(opt.manifest, context, {.allow_unresolved = false});
  if (!loaded.manifest) {
    for (const std::string& e : loaded.errors)
      std::cerr << e << "\n";
    std::cerr << "enclosure run: the manifest is invalid; the agent was not started\n";
    return kLaunchError;
  }
  const policy::Manifest& manifest = *loaded.manifest;
  policy::CompileResult compiled = policy::compile(manifest);
  if (!compiled.plan) {
    std::cerr << "enclosure run: " << opt.manifest << ": " << compiled.error << "\n";
    return kLaunchError;
  }
  policy::EnforcementPlan& plan = *compiled.plan;
  if (opt.observe) {
    // The observation run of `enclosure learn`: every readable file is also executable, so that
    // the programs the command starts can be observed rather than refused.
    for (policy::LandlockGrant& g : plan.landlock.grants) {
      if (g.access & policy::kLandlockRead) g.access |= policy::kLandlockExecute;
    }
  }
  std::optional<policy::BaselineProfile> baseline;
  if (plan.baseline) {
    std::ifstream in(plan.baseline->profile);
    std::stringstream text;
    text << in.rdbuf();
    policy::Diagnostics diagnostics;
    if (in) baseline = policy::parse_baseline_profile(text.str(), diagnostics);
    if (!baseline) {
      std::cerr << "enclosure run: /baseline/profile: " << plan.baseline->profile << ": "
                << (in ? "not a behaviour profile written by enclosure learn"
                       : std::strerror(errno))
                << "\n";
      for (const policy::Diagnostic& d : diagnostics.errors())
        std::cerr << "  " << d.path << ": " << d.message << "\n";
      return kLaunchError;
    }
  }
  uint64_t grace_ns = 0;
  if (opt.grace != "0" && opt.grace != "0s") {
    policy::Parsed<uint64_t> grace = policy::parse_duration(opt.grace);
    if (!grace) {
      std::cerr << "enclosure run: --grace " << opt.grace << ": expected " << grace.error << "\n";
      return kLaunchError;
    }
    grace_ns = *grace.value;
  }
  uint64_t dns_grace_ns = 0;
  if (opt.dns_grace != "0" && opt.dns_grace != "0s") {
    policy::Parsed<uint64_t> g = policy::parse_duration(opt.dns_grace);
    if (!g) {
      std::cerr << "enclosure run: --dns-grace " << opt.dns_grace << ": expected " << g.error
                << "\n";
      return kLaunchError;
    }
    dns_grace_ns = *g.value;
  }

  // The command must be a tool, and its file must be there and executable.
  const policy::ToolEntry* tool = find_command_tool(plan, opt.command[0], error);
  if (!tool) {
    std::cerr << "enclosure run: " << error << "\n";
    return kNotExecutable;
  }
  ExecutableInfo exe = inspect_executable(tool->path);
  if (exe.kind == ExecutableInfo::Kind::missing) {
    std::cerr << "enclosure run: tool \"" << tool->name << "\": " << tool->path << ": " << exe.error
              << "\n";
    return kNotFound;
  }
  if (exe.kind == ExecutableInfo::Kind::not_executable) {
    std::cerr << "enclosure run: tool \"" << tool->name << "\": " << tool->path << " " << exe.error
              << "\n";
    return kNotExecutable;
  }
  if (exe.kind == ExecutableInfo::Kind::script && !plan.tool_by_path(exe.interpreter) &&
      !opt.observe) {
    std::cerr
        << "enclosure run: tool \"" << tool->name << "\" is a script for " << exe.interpreter
        << ", which is not one of the manifest's tools; a script's interpreter must be a tool\n";
    return kNotExecutable;
  }
  // ELF interpreters of every tool are reachable and executable implicitly.
  std::vector<policy::MountStep> steps = plan.mounts.steps;
  std::vector<std::string> interpreters;
  std::vector<size_t> script_tools;
  for (const policy::ToolEntry& t : plan.tools) {
    ExecutableInfo info = t.path == tool->path ? exe : inspect_executable(t.path);
    if (info.kind == ExecutableInfo::Kind::script) script_tools.push_back(t.index);
    if (info.kind != ExecutableInfo::Kind::elf || info.interpreter.empty()) continue;
    if (!policy::check_absolute_path(info.interpreter).empty()) continue;
    if (std::find(interpreters.begin(), interpreters.end(), info.interpreter) != interpreters.end())
      continue;
    interpreters.push_back(info.interpreter);
    steps.push_back({policy::MountKind::tool, info.interpreter,
                     "/tools/" + std::to_string(t.index) + "/path (ELF interpreter)"});
  }
  std::stable_sort(
      steps.begin(), steps.end(), [](const policy::MountStep& a, const policy::MountStep& b) {
        return policy::path_segments(a.path).size() < policy::path_segments(b.path).size();
      });

  // Where the eBPF and cgroup layers come from: this process (as root), or `enclosure daemon`
  // (--daemon, or its default socket when this launcher is not root and the socket is there).
  std::string daemon_path = daemon_socket_for(opt.daemon);
  std::unique_ptr<DaemonClient> daemon;
  if (!daemon_path.empty()) {
    if (opt.ring_buffer_bytes) {
      std::cerr << "enclosure run: --ring-buffer: with a daemon the ring buffer is the daemon's "
                   "(enclosure daemon --ring-buffer)\n";
      return kLaunchError;
    }
    daemon = std::make_unique<DaemonClient>(daemon_path);  // LaunchError (125) when unreachable
  }

  // What this host can enforce; a missing layer stops the run unless the manifest allows it.
  bool needs_bpf = std::any_of(plan.requirements.begin(), plan.requirements.end(),
                               [](const policy::Requirement& r) { return r.layer == "bpf"; });
  HostFeatures host = probe_host(needs_bpf && !daemon, /*probe_tracing=*/false);
  if (daemon) apply_daemon_features(host, *daemon);
  nlohmann::json degraded = nlohmann::json::array();
  std::set<std::string> degraded_layers;
  for (const policy::Requirement& r : plan.requirements) {
    std::string why;
    if (requirement_met(host, r, why)) continue;
    if (!plan.enforcement.allows(r.layer)) {
      std::cerr << "enclosure run: refusing to start: " << r.origin << " needs " << r.feature
                << ", which this host cannot provide: " << why << ".\n";
      if (!host.root && !daemon && (r.layer == "bpf" || r.layer == "cgroup")) {
        std::cerr << "  Without root, the eBPF and cgroup layers come from enclosure daemon: "
                     "start it as root (enclosure daemon --socket PATH, or the "
                     "enclosure-daemon.service unit) and run with --daemon PATH (default "
                  << kDefaultDaemonSocket << ").\n";
      }
      std::cerr << "  To run without it, the manifest must list \"" << r.layer
                << "\" under /enforcement/allow_degraded.\n";
      return kLaunchError;
    }
    degraded_layers.insert(r.layer);
    degraded.push_back(
        {{"layer", r.layer}, {"feature", r.feature}, {"origin", r.origin}, {"reason", why}});
  }
  bool user_namespace = !host.root;
  uid_t uid = plan.process.user ? plan.process.user->uid : ::getuid();
  gid_t gid = plan.process.user ? plan.process.user->gid : ::getgid();

  // Events.
  RunIdentity identity{new_run_id(), plan.manifest_name, plan.manifest_revision, plan.digest};
  EventStream events(identity);
  bool has_collector = false;
  for (const std::string& dest : opt.events) {
    if (dest.rfind("unix:", 0) == 0) {
      CollectorSinkOptions collector;
      collector.socket_path = dest.substr(5);
      collector.max_lines = opt.collector_buffer_lines;
      if (collector.socket_path.empty()) {
        std::cerr << "enclosure run: --events unix:PATH: the socket path is missing\n";
        return kLaunchError;
      }
      // Throws LaunchError (exit 125) when the collector cannot be reached.
      events.add_sink(std::make_unique<CollectorSink>(collector, identity.run_id));
      has_collector = true;
      continue;
    }
    auto sink = open_fd_sink(dest, error);
    if (!sink) {
      std::cerr << "enclosure run: " << error << "\n";
      return kLaunchError;
    }
    events.add_sink(std::move(sink));
  }
  if (opt.audit_required && !has_collector) {
    std::cerr << "enclosure run: --audit-required needs a collector: --events unix:PATH\n";
    return kLaunchError;
  }

  // The run's cgroup, and a watchdog that removes it if the launcher is killed.
  std::unique_ptr<RunCgroup> cgroup;
  std::unique_ptr<CleanupWatchdog> watchdog;
  nlohmann::json cgroup_report;
  if (daemon) {
    // Created by the daemon with the eBPF configuration, below.
  } else if (host.cgroup_v2.available) {
    CgroupLimits limits;
    if (!degraded_layers.count("cgroup")) {
      limits.pids_max = plan.budgets.processes;
      limits.memory_max = plan.budgets.memory_bytes;
    }
    cgroup = std::make_unique<RunCgroup>(host.cgroups, "enclosure-" + identity.run_id, limits);
    watchdog = std::make_unique<CleanupWatchdog>(cgroup->directories());
    cgroup_report = cgroup->report();
  } else {
    cgroup_report = {{"none", host.cgroup_v2.detail}};
  }

  // The eBPF layer: loaded (verified) for this run, configured for its cgroup, attached; or the
  // daemon's programs, configured for the cgroup it creates for this run.
  std::unique_ptr<bpf::EnclosureBpf> kernel_layer;
  bpf::KernelLayer* layer = nullptr;
  std::unique_ptr<DnsAdmissions> admissions;
  std::unique_ptr<DnsResolver> resolver;
  nlohmann::json bpf_report;
  if (daemon) {
    bool use_bpf = needs_bpf && !degraded_layers.count("bpf");
    bpf::LayerNeeds needs;
    if (use_bpf) {
      needs = bpf::LayerNeeds::of(plan);
      if (opt.observe) needs.behaviour = needs.sys_enter = needs.sys_exit = true;
    }
    std::optional<std::pair<uint16_t, uint16_t>> dns_ports;
    if (use_bpf && plan.network.dns && plan.network.mode == policy::NetworkMode::filtered) {
      ResolverConfig rc;
      rc.hosts = plan.network.hosts;
      rc.upstream = opt.dns_upstream;
      rc.answer_all = opt.observe;
      // The admission table exists once the daemon said which cgroup the run has; the resolver
      // answers nothing before start().
      resolver = std::make_unique<DnsResolver>(
          rc, [&admissions](const DnsAdmission& a) { admissions->admit(a); });
      dns_ports = std::make_pair(resolver->port4(), resolver->port6());
    }
    bpf::EnclosureFiles files = bpf::resolve_files(plan, script_tools, interpreters);
    nlohmann::json keys = nlohmann::json::object();
    for (const auto& [path, key] : files.keys)
      keys[path] = {key.dev, key.ino};
    bool limits = !degraded_layers.count("cgroup");
    auto optional_number = [](const std::optional<uint64_t>& v) {
      return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    daemon->create(
        {{"plan", policy::bpf_plan_to_json(plan)},
         {"needs",
          {{"egress", needs.egress},
           {"egress_bytes", needs.egress_bytes},
           {"exec", needs.exec},
           {"sys_enter", needs.sys_enter},
           {"sys_exit", needs.sys_exit},
           {"behaviour", needs.behaviour}}},
         {"files",
          {{"script_tools", files.script_tools}, {"loaders", files.loaders}, {"keys", keys}}},
         {"dns_ports", dns_ports ? nlohmann::json({dns_ports->first, dns_ports->second})
                                 : nlohmann::json(nullptr)},
         {"limits",
          {{"pids_max", optional_number(limits ? plan.budgets.processes : std::nullopt)},
           {"memory_max", optional_number(limits ? plan.budgets.memory_bytes : std::nullopt)}}},
         {"grace_ns", grace_ns}});
    DaemonClient* client = daemon.get();
    cgroup = std::make_unique<RunCgroup>(daemon->cgroup(), /*owner=*/false,
                                         [client] { client->kill_all(); });
    cgroup_report = daemon->cgroup_report();
    if (use_bpf) {
      layer = daemon.get();
      bpf_report = daemon->report();
      if (resolver) {
        admissions = std::make_unique<DnsAdmissions>(*daemon, daemon->cgroup_id(), plan.network,
                                                     dns_grace_ns);
        resolver->start();
      }
    }
  } else if (needs_bpf && !degraded_layers.count("bpf")) {
    if (!cgroup)
      throw LaunchError("bpf: the eBPF layer needs the run's cgroup: " + host.cgroup_v2.detail);
    bpf::LayerNeeds needs = bpf::LayerNeeds::of(plan);
    if (opt.ring_buffer_bytes) needs.ring_bytes = opt.ring_buffer_bytes;
    if (opt.observe) needs.behaviour = needs.sys_enter = needs.sys_exit = true;
    try {
      kernel_layer = std::make_unique<bpf::EnclosureBpf>(needs);
      std::optional<std::pair<uint16_t, uint16_t>> dns_ports;
      if (plan.network.dns && plan.network.mode == policy::NetworkMode::filtered) {
        // The enclosure's resolver: every port-53 destination of the enclosure is sent to it,
        // and the addresses it answers become reachable for the allowing rule's ports.
        admissions = std::make_unique<DnsAdmissions>(*kernel_layer, cgroup->v2_id(), plan.network,
                                                     dns_grace_ns);
        ResolverConfig rc;
        rc.hosts = plan.network.hosts;
        rc.upstream = opt.dns_upstream;
        rc.answer_all = opt.observe;
        DnsAdmissions* table = admissions.get();
        resolver =
            std::make_unique<DnsResolver>(rc, [table](const DnsAdmission& a) { table->admit(a); });
        dns_ports = std::make_pair(resolver->port4(), resolver->port6());
      }
      kernel_layer->configure(cgroup->v2_id(), plan, needs,
                              bpf::resolve_files(plan, script_tools, interpreters), dns_ports);
      kernel_layer->attach_cgroup(cgroup->v2_fd());
      kernel_layer->attach_tracing();
    } catch (const bpf::BpfError& e) {
      if (!plan.enforcement.allows("bpf")) {
        std::cerr << "enclosure run: refusing to start: the eBPF layer failed: " << e.what() << "\n"
                  << "  To run without it, the manifest must list \"bpf\" under "
                     "/enforcement/allow_degraded.\n";
        return kLaunchError;
      }
      // Allowed degraded: every section that needed the layer runs without it, and says so.
      resolver.reset();
      admissions.reset();
      kernel_layer.reset();
      degraded_layers.insert("bpf");
      for (const policy::Requirement& r : plan.requirements) {
        if (r.layer != "bpf") continue;
        degraded.push_back(
            {{"layer", r.layer},
             {"feature", r.feature},
             {"origin", r.origin},
             {"reason", std::string("the eBPF programs failed to load: ") + e.what()}});
      }
    }
    if (kernel_layer) {
      layer = kernel_layer.get();
      bpf_report = kernel_layer->report();
      if (resolver) resolver->start();
    }
  }

  // Everything pid 1 needs, copied into its address space by clone3.
  int channel[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0)
    throw_errno("run: socketpair");
  UniqueFd channel_parent(channel[0]), channel_child(channel[1]);
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) throw_errno("run: pipe2");
  UniqueFd sync_read(sync[0]), sync_write(sync[1]);
  ChildSpec spec;
  spec.plan = &plan;
  spec.mount_steps = steps;
  spec.interpreters = interpreters;
  spec.exec_path = tool->path;
  spec.argv = opt.command;
  spec.envp = build_environment(plan.process);
  spec.cwd = plan.process.cwd;
  spec.uid = uid;
  spec.gid = gid;
  spec.user_namespace = user_namespace;
  spec.recenter_cgroup_namespace = daemon != nullptr;
  spec.new_network = plan.network.new_namespace;
  spec.landlock_abi = degraded_layers.count("landlock") ? 0 : host.landlock_abi;
  spec.seccomp = !degraded_layers.count("seccomp");
  // Landlock's TCP port rules run before the eBPF connect hooks and would refuse, unlogged and
  // with EACCES, a subset of what the eBPF layer refuses with EPERM and an event. They are the
  // port filter of last resort, used only when the eBPF egress layer is not there.
  bool bpf_egress = layer && plan.network.mode == policy::NetworkMode::filtered;
  if (bpf_egress) plan.landlock.restrict_tcp_connect = false;
  if (plan.budgets.cpu_time_ns) {
    spec.cpu_limit_seconds =
        *plan.budgets.cpu_time_ns / 1'000'000'000ULL + 1 + grace_ns / 1'000'000'000ULL + 1;
  }
  spec.sync_fd = sync_read.get();
  spec.channel_fd = channel_child.get();
  // The metering channel: a pipe whose write end is fd 3 of the agent.
  int meter[2];
  if (::pipe2(meter, O_CLOEXEC) != 0) throw_errno("run: pipe2 for the metering channel");
  UniqueFd meter_read(meter[0]), meter_write(meter[1]);
  if (::fcntl(meter_read.get(), F_SETFL, O_NONBLOCK) != 0)
    throw_errno("run: metering pipe O_NONBLOCK");
  spec.meter_fd = meter_write.get();
  spec.envp.push_back("ENCLOSURE_METER_FD=" + std::to_string(kMeterFd));

  // The start event: the whole expanded manifest and what enforces each section.
  nlohmann::json layers = {
      {"filesystem",
       nlohmann::json::array({"mount namespace: tmpfs root, binds, masks, pivot_root"})},
      {"tools", nlohmann::json::array({"mount namespace: only granted files exist"})},
      {"network", plan.network.mode == policy::NetworkMode::none
                      ? nlohmann::json::array({"network namespace: empty, loopback only"})
                      : nlohmann::json::array()},
      {"syscalls", spec.seccomp
                       ? nlohmann::json::array({"seccomp: " + plan.seccomp.name +
                                                " profile, native ABI only, user notification"})
                       : nlohmann::json::array()},
      {"process",
       nlohmann::json::array(
           {"pid, mount, ipc, uts, cgroup namespaces" +
                std::string(user_namespace ? ", user namespace" : ""),
            "no capabilities, bounding set empty, securebits locked", "no_new_privs", "setsid",
            "fds 0-2 and the metering pipe (fd 3, ENCLOSURE_METER_FD) only", "RLIMIT_CORE 0"})},
      {"budgets", {{"wall_clock", "supervisor timerfd, then SIGTERM, grace, cgroup.kill"}}}};
  if (spec.landlock_abi > 0) {
    layers["filesystem"].push_back("landlock abi " + std::to_string(spec.landlock_abi));
    layers["tools"].push_back(
        opt.observe ? "observation run (enclosure learn): landlock EXECUTE on every read grant"
                    : "landlock: EXECUTE only on tools and their ELF interpreters");
    if (plan.landlock.restrict_tcp_connect && spec.landlock_abi >= 4) {
      layers["network"].push_back("landlock: tcp connect only to egress ports (no eBPF layer)");
    }
  }
  if (daemon) {
    layers["process"].push_back("cgroup" + std::string(layer ? " and eBPF programs" : "") +
                                " from enclosure daemon at " + daemon->socket_path());
  }
  if (layer) {
    nlohmann::json programs = bpf_report["programs"];
    if (programs.contains("network")) {
      layers["network"].push_back("bpf: " + programs["network"].dump());
    }
    if (resolver) {
      layers["network"].push_back(
          "resolver on 127.0.0.1:" + std::to_string(resolver->port4()) +
          " and [::1]:" + std::to_string(resolver->port6()) + " (upstream " + resolver->upstream() +
          "): port 53 redirected to it; answered addresses admitted for TTL + " + opt.dns_grace +
          (opt.observe ? " (observation run: every name is answered)" : ""));
    }
    layers["tools"].push_back(
        "bpf tp_btf/sched_process_exec: exec and tool_call events, counts, prices");
    if (plan.budgets.syscalls)
      layers["budgets"]["syscalls"] = "bpf tp_btf/sys_enter per-cgroup counter, SIGKILL";
    if (plan.budgets.tool_calls)
      layers["budgets"]["tool_calls"] = "bpf sched_process_exec counter, SIGKILL";
    if (plan.budgets.cost_micro_usd)
      layers["budgets"]["cost_usd"] = "bpf sched_process_exec prices + metered reports";
    if (plan.budgets.egress_bytes)
      layers["budgets"]["egress_bytes"] = "bpf cgroup_skb/egress byte counter, drop";
    if (plan.audit.files) layers["audit"] = {"bpf tp_btf/sys_enter + sys_exit: every open"};
  }
  if (plan.budgets.cost_micro_usd && !layers["budgets"].contains("cost_usd")) {
    layers["budgets"]["cost_usd"] = "supervisor: metered reports";
  }
  if (cgroup) {
    if (plan.budgets.cpu_time_ns)
      layers["budgets"]["cpu_time"] = "cgroup cpu.stat, RLIMIT_CPU backstop";
    if (plan.budgets.processes && cgroup_report.contains("pids"))
      layers["budgets"]["processes"] = cgroup_report["pids"]["via"];
    if (plan.budgets.memory_bytes && cgroup_report.contains("memory"))
      layers["budgets"]["memory"] = cgroup_report["memory"]["via"];
  }
  nlohmann::json user = {{"uid", ::getuid()}, {"gid", ::getgid()}};
  if (const char* name = ::getenv("USER")) set_bytes(user, "name", name);
  nlohmann::json command = nlohmann::json::array();
  for (const std::string& a : opt.command) {
    nlohmann::json wrapped = nlohmann::json::object();
    set_bytes(wrapped, "a", a);
    command.push_back(wrapped["a"]);
  }
  events.emit("start", ::getpid(),
              {{"manifest_document", manifest.document},
               {"approved_by", manifest.metadata.approved_by},
               {"reason", manifest.metadata.reason},
               {"context", manifest.context_values},
               {"invoked_by", user},
               {"command", command},
               {"tool", tool->name},
               {"observation", opt.observe},
               {"agent_user", {{"uid", uid}, {"gid", gid}}},
               {"host", host_report(host)},
               {"cgroup", cgroup_report},
               {"enforcement", {{"layers", layers}, {"degraded", degraded}, {"bpf", bpf_report}}}});
  if (opt.audit_required) {
    // The agent starts only once its start record is in the audit log.
    for (const auto& sink : events.sinks()) {
      if (!sink->flush(kFlushTimeoutMs)) {
        std::cerr << "enclosure run: --audit-required: " << sink->describe()
                  << " did not acknowledge the start record; the agent was not started\n";
        return kLaunchError;
      }
    }
  }
  for (const auto& d : degraded) {
    std::cerr << "enclosure: WARNING: running without " << d["feature"].get<std::string>()
              << " for " << d["origin"].get<std::string>()
              << " (allowed degraded): " << d["reason"].get<std::string>() << "\n";
  }

  // Signals that the supervisor forwards are read through its signalfd.
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int s : {SIGINT, SIGTERM, SIGHUP})
    sigaddset(&forwarded, s);
  sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // The daemon moves the first process into the run's cgroups itself: an unprivileged process
  // may not clone into a cgroup outside its own delegated subtree.
  SpawnedInit init = spawn_enclosure(spec, cgroup && !daemon ? cgroup->v2_fd() : -1);
  channel_child.reset();
  sync_read.reset();
  meter_write.reset();
  try {
    if (user_namespace) set_up_user_namespace(init.pid, uid, gid);
    if (daemon) {
      daemon->enter(init.pidfd.get());
    } else if (cgroup) {
      cgroup->enter_v1(init.pid);
    }
  } catch (const LaunchError&) {
    ::syscall(SYS_pidfd_send_signal, init.pidfd.get(), SIGKILL, nullptr, 0);
    throw;
  }
  char go = 1;
  write_all(sync_write.get(), &go, 1);
  sync_write.reset();

  SupervisorConfig config;
  config.plan = &plan;
  config.grace_ns = grace_ns;
  nlohmann::json initial;
  set_bytes(initial, "path", tool->path);
  initial["argv"] = command;
  initial["tool"] = tool->name;
  initial["initial"] = true;
  config.initial_command = initial;
  config.bpf = layer;
  config.cgroup_id = cgroup ? cgroup->v2_id() : 0;
  config.meter_fd = meter_read.get();
  config.audit_required = opt.audit_required;
  config.resolver = resolver.get();
  config.observe = opt.observe;
  config.baseline = baseline;
  config.admissions = admissions.get();
  Supervisor supervisor(config, events, cgroup.get(), std::move(init), std::move(channel_parent));
  RunOutcome outcome = supervisor.run();

  if (cgroup && !cgroup->kill_and_wait(5000)) {
    std::cerr << "enclosure run: WARNING: processes of the run's cgroup did not exit within 5s\n";
  }
  if (daemon) daemon->release();
  nlohmann::json exit_fields = {
      {"ended_by", outcome.ended_by},       {"exit_code", outcome.exit_code},
      {"duration_ns", outcome.duration_ns}, {"denials", outcome.denials},
      {"budgets", outcome.figures},         {"events", events.counts()}};
  if (!outcome.budget.empty()) exit_fields["budget"] = outcome.budget;
  if (!outcome.message.empty()) exit_fields["message"] = outcome.message;
  nlohmann::json delivery = nlohmann::json::array();
  for (const auto& sink : events.sinks()) {
    nlohmann::json r = sink->report();
    if (!r.is_null()) delivery.push_back(r);
  }
  if (!delivery.empty()) exit_fields["delivery"] = delivery;
  events.emit("exit", ::getpid(), exit_fields);
  for (const auto& sink : events.sinks()) {
    if (!sink->flush(kFlushTimeoutMs)) {
      nlohmann::json r = sink->report();
      std::cerr << "enclosure run: WARNING: " << sink->describe() << ": "
                << (r.is_object() ? r.value("pending", uint64_t{0}) : 0)
                << " events were not acknowledged within " << kFlushTimeoutMs / 1000 << "s\n";
    }
  }
  resolver.reset();
  admissions.reset();
  kernel_layer.reset();
  cgroup.reset();
  daemon.reset();
  watchdog.reset();
  if (outcome.ended_by == "setup_error" || outcome.ended_by == "exec_error") {
    std::cerr << "enclosure run: "
              << (outcome.ended_by == "exec_error" ? "cannot execute " + tool->path + ": " : "")
              << outcome.message << "\n";
  }
  print_summary(identity, outcome);
  return outcome.exit_code;
}

}  // namespace

int command_run(const Args& all_args) {
  // Everything after "--" is the command, untouched by option parsing.
  Args args;
  RunOptions opt;
  split_at_double_dash(all_args, args, opt.command);
  po::options_description options(
      "Usage: enclosure run -m FILE [options] -- CMD [ARG]...\n\n"
      "Starts CMD, which must be one of the manifest's tools, inside the enclosure the manifest\n"
      "describes, and supervises it until it exits.\n"
      "Exit status: the agent's; 128+N when killed by signal N; 124 when a budget ended the run;\n"
      "125 launcher error (invalid manifest, a layer this host cannot enforce); 126 the command\n"
      "is not a tool or cannot be executed; 127 not found.\n\nOptions");
  options.add_options()("help,h", "show this help")("manifest,m", po::value(&opt.manifest),
                                                    "the manifest (required)")(
      "context", po::value(&opt.context)->composing(),
      "NAME=VALUE for a context variable (repeatable)")(
      "context-file", po::value(&opt.context_file), "a JSON object of context values")(
      "events", po::value(&opt.events)->composing(),
      "where events go: - (stderr), a file (appended), unix:PATH (a collector: enclosure collect); "
      "repeatable; without it only a summary line is printed, and only when the enclosure "
      "intervened")(
      "audit-required",
      "events must reach the collector: the agent starts only once its start record is "
      "acknowledged, and the run ends (exit 125) when the collector cannot be reached")(
      "collector-buffer", po::value(&opt.collector_buffer_lines)->default_value(100000),
      "events kept for the collector while it is unreachable (also bounded to 64MiB); what does "
      "not fit is reported to it as one `lost` record")(
      "grace", po::value(&opt.grace)->default_value("2s"),
      "time between SIGTERM and SIGKILL when a budget ends the run")(
      "ring-buffer", po::value<std::string>(),
      "size of the eBPF event ring buffer (default 4MiB); records that do not fit are counted and "
      "reported as `lost` events")(
      "dns-upstream", po::value(&opt.dns_upstream),
      "the resolver the enclosure's resolver asks, ADDR[:PORT] or [V6]:PORT (default: the first "
      "nameserver of /etc/resolv.conf); used when the manifest sets /network/dns")(
      "dns-grace", po::value(&opt.dns_grace)->default_value("10s"),
      "how long an answered address stays reachable after its TTL ran out")(
      "daemon", po::value(&opt.daemon),
      "get the eBPF and cgroup layers from `enclosure daemon` at this socket (needed without "
      "root; a non-root launcher uses /run/enclosure/daemon.sock when that socket exists)");
  // Used by `enclosure learn` only; not shown in the help.
  po::options_description hidden;
  hidden.add_options()("observe", po::bool_switch(&opt.observe));
  po::options_description all;
  all.add(options).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "enclosure run: " << e.what() << "\n" << options;
    return kLaunchError;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  opt.audit_required = vm.count("audit-required") > 0;
  if (opt.collector_buffer_lines == 0) {
    std::cerr << "enclosure run: --collector-buffer: expected at least 1 line\n";
    return kLaunchError;
  }
  if (vm.count("ring-buffer")) {
    policy::Parsed<uint64_t> size = policy::parse_size(vm["ring-buffer"].as<std::string>());
    if (!size || *size.value < 4096 || *size.value > (1ULL << 30)) {
      std::cerr << "enclosure run: --ring-buffer: expected a size from 4KiB to 1GiB\n";
      return kLaunchError;
    }
    opt.ring_buffer_bytes = *size.value;
  }
  if (opt.manifest.empty()) {
    std::cerr << "enclosure run: -m FILE is required\n" << options;
    return kLaunchError;
  }
  if (opt.command.empty()) {
    std::cerr << "enclosure run: no command given after --\n" << options;
    return kLaunchError;
  }
  try {
    return run(opt);
  } catch (const LaunchError& e) {
    std::cerr << "enclosure run: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "enclosure run: " << e.what() << "\n";
    return kLaunchError;
  }
}

}  // namespace launcher
