#include "launcher/run/enclosure.h"

#include "launcher/run/setup_probe.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/events/collector_sink.h"
#include "launcher/events/journal_sink.h"
#include "launcher/run/executable.h"
#include "launcher/run/host_features.h"
#include "launcher/run/spawn.h"

namespace launcher {
namespace {

// How long the launcher waits at exit for the collector to acknowledge the last events.
constexpr int kFlushTimeoutMs = 5000;
// How long the run's cgroup may take to empty once killed.
constexpr int kKillTimeoutMs = 5000;

// Hands every event to a function (learn's observation of its own run).
class CallbackSink : public EventSink {
 public:
  explicit CallbackSink(std::function<void(const nlohmann::ordered_json&)> on_event)
      : on_event_(std::move(on_event)) {}
  bool write(const std::string&) override { return true; }
  bool write_event(const nlohmann::ordered_json& event, const std::string&) override {
    on_event_(event);
    return true;
  }
  std::string describe() const override { return "the observer of the run"; }

 private:
  std::function<void(const nlohmann::ordered_json&)> on_event_;
};

policy::ExecutableFacts executable_facts(const std::string& path) {
  ExecutableInfo info = inspect_executable(path);
  policy::ExecutableFacts facts;
  facts.kind = static_cast<policy::ExecutableFacts::Kind>(info.kind);
  facts.interpreter = info.interpreter;
  facts.error = info.error;
  return facts;
}
static_assert(static_cast<int>(ExecutableInfo::Kind::unknown) ==
              static_cast<int>(policy::ExecutableFacts::Kind::unknown));
static_assert(static_cast<int>(ExecutableInfo::Kind::script) ==
              static_cast<int>(policy::ExecutableFacts::Kind::script));

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

nlohmann::json argv_json(const std::vector<std::string>& command) {
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& a : command) {
    nlohmann::json wrapped = nlohmann::json::object();
    set_bytes(wrapped, "a", a);
    out.push_back(wrapped["a"]);
  }
  return out;
}

void print_summary(const RunIdentity& id, const RunOutcome& o) {
  bool intervened = o.denials > 0 || o.dns_refused > 0 || o.ended_by == "budget" ||
                    o.ended_by == "violation" || o.ended_by == "audit_unavailable" ||
                    o.ended_by == "anomaly" || o.ended_by == "stopped";
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
  if (o.ended_by == "stopped") line += " stopped by enclosure stop;";
  line += " exit " + std::to_string(o.exit_code) + "\n";
  write_all(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

Enclosure::Enclosure(const policy::Manifest& manifest, policy::EnforcementPlan plan,
                     EnclosureOptions options)
    : manifest_(manifest), plan_(std::move(plan)), options_(std::move(options)) {
  if (options_.observe) policy::widen_for_observation(plan_.landlock);
  argv_json_ = argv_json(options_.command);
  resolve_command();
}

Enclosure::~Enclosure() = default;

int Enclosure::run(std::unique_ptr<LayerProvider> provider) {
  provider_ = std::move(provider);
  decide_degraded_layers();
  open_events();
  provide_layers();
  prepare_child();
  open_control();
  announce_start();
  RunOutcome outcome = supervise(spawn());
  report_exit(outcome);
  tear_down();
  report_outcome(outcome);
  return outcome.exit_code;
}

// The command must be a tool, and its file must be there and executable; the ELF interpreters
// of every tool are mounted and executable implicitly.
void Enclosure::resolve_command() {
  std::string error;
  tool_ = policy::find_command_tool(plan_, options_.command[0], error);
  if (!tool_) throw LaunchError(error, exit_code::kNotExecutable);
  policy::ToolFacts facts;
  facts[tool_->path] = executable_facts(tool_->path);
  if (auto refusal =
          policy::check_command_tool(plan_, *tool_, facts[tool_->path], options_.observe)) {
    bool missing = refusal->reason == policy::CommandRefusal::Reason::not_found;
    throw LaunchError(refusal->message, missing ? exit_code::kNotFound : exit_code::kNotExecutable);
  }
  for (const policy::ToolEntry& t : plan_.tools) {
    if (!facts.count(t.path)) facts[t.path] = executable_facts(t.path);
  }
  mounts_ = policy::tool_mounts(plan_, facts);
}

// What this host can enforce; a missing layer stops the run unless the manifest allows it.
void Enclosure::decide_degraded_layers() {
  host_ = provider_->host_features(policy::needs_layer(plan_, "bpf"));
  std::vector<policy::Shortfall> unmet;
  for (const policy::Requirement& r : plan_.requirements) {
    std::string why;
    if (!requirement_met(host_, r, why)) unmet.push_back({r, why});
  }
  policy::LaunchHost where{
      .root = host_.root,
      // The provider names where the layers come from only when not from this process.
      .layers_from_daemon = !provider_->description(ProvidedLayers{}).empty(),
      .default_daemon_socket = options_.default_daemon_socket};
  degraded_ = policy::decide_degraded(plan_, unmet, where);
  if (degraded_.refusal) throw LaunchError(*degraded_.refusal);
  uid_ = plan_.process.user ? plan_.process.user->uid : ::getuid();
  gid_ = plan_.process.user ? plan_.process.user->gid : ::getgid();
}

void Enclosure::open_events() {
  events_.emplace(
      RunIdentity{new_run_id(), plan_.manifest_name, plan_.manifest_revision, plan_.digest});
  bool has_collector = false;
  for (const std::string& dest : options_.events) {
    if (dest.rfind("unix:", 0) == 0) {
      CollectorSinkOptions collector;
      collector.socket_path = dest.substr(5);
      collector.max_lines = options_.collector_buffer_lines;
      if (collector.socket_path.empty())
        throw LaunchError("--events unix:PATH: the socket path is missing");
      // Throws LaunchError (exit 125) when the collector cannot be reached.
      events_->add_sink(std::make_unique<CollectorSink>(collector, events_->identity().run_id));
      has_collector = true;
      continue;
    }
    std::string error;
    if (dest == "journal") {
      std::unique_ptr<EventSink> journal = open_journal_sink("", error);
      if (!journal) throw LaunchError(error);
      events_->add_sink(std::move(journal));
      continue;
    }
    std::unique_ptr<EventSink> sink = open_fd_sink(dest, error);
    if (!sink) throw LaunchError(error);
    events_->add_sink(std::move(sink));
  }
  if (options_.audit_required && !has_collector)
    throw LaunchError("--audit-required needs a collector: --events unix:PATH");
  if (options_.on_event) events_->add_sink(std::make_unique<CallbackSink>(options_.on_event));
  // learn counts its profile from the events: an observation run writes every one of them.
  events_->set_rate_limit(options_.observe ? EventRateLimit{0, 0} : options_.event_rate);
}

// The run's cgroup and eBPF layer, from the provider; which layer enforces TCP egress then.
void Enclosure::provide_layers() {
  LayerRequest request;
  request.plan = &plan_;
  request.run_id = events_->identity().run_id;
  request.use_bpf = policy::needs_layer(plan_, "bpf") && !degraded_.layers.count("bpf");
  request.apply_cgroup_limits = !degraded_.layers.count("cgroup");
  request.observe = options_.observe;
  request.ring_buffer_bytes = options_.ring_buffer_bytes;
  request.script_tools = mounts_.script_tools;
  request.interpreters = mounts_.interpreters;
  request.dns_upstream = options_.dns_upstream;
  request.dns_grace_ns = options_.dns_grace_ns;
  request.grace_ns = options_.grace_ns;
  layers_ = provider_->provide(request);
  if (layers_.bpf_failure) policy::degrade_failed_bpf(plan_, *layers_.bpf_failure, degraded_);
  policy::assign_tcp_egress(plan_, layers_.kernel != nullptr);
}

// Everything pid 1 needs, copied into its address space by clone3.
void Enclosure::prepare_child() {
  int channel[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0)
    throw_errno("run: socketpair");
  channel_parent_.reset(channel[0]);
  channel_child_.reset(channel[1]);
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) throw_errno("run: pipe2");
  sync_read_.reset(sync[0]);
  sync_write_.reset(sync[1]);
  // The metering channel: a pipe whose write end is fd 3 of the agent.
  int meter[2];
  if (::pipe2(meter, O_CLOEXEC) != 0) throw_errno("run: pipe2 for the metering channel");
  meter_read_.reset(meter[0]);
  meter_write_.reset(meter[1]);
  if (::fcntl(meter_read_.get(), F_SETFL, O_NONBLOCK) != 0)
    throw_errno("run: metering pipe O_NONBLOCK");

  spec_.plan = &plan_;
  spec_.mount_steps = mounts_.steps;
  spec_.interpreters = mounts_.interpreters;
  spec_.exec_path = tool_->path;
  spec_.argv = options_.command;
  spec_.envp = build_environment(plan_.process);
  spec_.envp.push_back("ENCLOSURE_METER_FD=" + std::to_string(kMeterFd));
  spec_.cwd = plan_.process.cwd;
  spec_.uid = uid_;
  spec_.gid = gid_;
  spec_.user_namespace = !host_.root;
  // Placed in its cgroup after the clone (a daemon's run): init re-roots its cgroup namespace.
  spec_.recenter_cgroup_namespace = layers_.cgroup && provider_->clone_into_cgroup_fd(layers_) < 0;
  spec_.new_network = plan_.network.new_namespace;
  spec_.landlock_abi = degraded_.layers.count("landlock") ? 0 : host_.landlock_abi;
  spec_.seccomp = !degraded_.layers.count("seccomp");
  spec_.cpu_limit_seconds = policy::cpu_limit_seconds(plan_.budgets, options_.grace_ns);
  spec_.sync_fd = sync_read_.get();
  spec_.channel_fd = channel_child_.get();
  spec_.meter_fd = meter_write_.get();
  if (options_.terminal) {
    // Pid 1 opens it in the enclosure's devpts and sends its master back (the supervisor
    // hands it to terminal_).
    terminal_ = std::make_unique<AgentTerminal>();
    spec_.terminal = true;
    spec_.terminal_size = terminal_->window_size();
  }
}

// The control socket `enclosure ps` and `enclosure stop` reach this run by. Not a protection
// layer: a host without a runtime directory runs without it, and the start event says why.
void Enclosure::open_control() {
  try {
    control_ = std::make_unique<ControlSocket>(events_->identity().run_id);
    provider_->remove_at_exit(control_->path());
  } catch (const LaunchError& e) {
    control_error_ = e.what();
  }
}

// The start event: the whole expanded manifest and what enforces each section.
nlohmann::json Enclosure::start_fields() const {
  policy::LayerFacts facts;
  facts.landlock_abi = spec_.landlock_abi;
  facts.seccomp = spec_.seccomp;
  facts.user_namespace = spec_.user_namespace;
  facts.observe = options_.observe;
  facts.provider = provider_->description(layers_);
  facts.kernel_layer = layers_.kernel != nullptr;
  facts.bpf_report = layers_.bpf_report;
  if (layers_.resolver) {
    facts.resolver = policy::ResolverFacts{layers_.resolver->port4(), layers_.resolver->port6(),
                                           layers_.resolver->upstream(), options_.dns_grace};
  }
  facts.cgroup = layers_.cgroup != nullptr;
  facts.cgroup_report = layers_.cgroup_report;
  nlohmann::json user = {{"uid", ::getuid()}, {"gid", ::getgid()}};
  if (const char* name = ::getenv("USER")) set_bytes(user, "name", name);
  return {{"manifest_document", manifest_.document},
          {"approved_by", manifest_.metadata.approved_by},
          {"reason", manifest_.metadata.reason},
          {"context", manifest_.context_values},
          {"invoked_by", user},
          {"command", argv_json_},
          {"tool", tool_->name},
          {"observation", options_.observe},
          {"terminal", options_.terminal},
          {"event_rate",
           {{"rate", events_->rate_limit().describe()}, {"burst", events_->rate_limit().burst}}},
          {"agent_user", {{"uid", uid_}, {"gid", gid_}}},
          {"host", host_report(host_)},
          {"cgroup", layers_.cgroup_report},
          {"control", control_ ? nlohmann::json{{"socket", control_->path()}}
                               : nlohmann::json{{"unavailable", control_error_}}},
          {"enforcement",
           {{"layers", policy::describe_layers(plan_, facts)},
            {"degraded", policy::degraded_report(degraded_.degraded)},
            {"bpf", layers_.bpf_report}}}};
}

void Enclosure::announce_start() {
  started_ = rfc3339_now();
  events_->emit("start", ::getpid(), start_fields());
  if (options_.audit_required) {
    // The agent starts only once its start record is in the audit log.
    for (const auto& sink : events_->sinks()) {
      if (!sink->flush(kFlushTimeoutMs)) {
        throw LaunchError("--audit-required: " + sink->describe() +
                          " did not acknowledge the start record; the agent was not started");
      }
    }
  }
  for (const policy::Shortfall& d : degraded_.degraded) {
    std::cerr << "enclosure: WARNING: running without " << d.requirement.feature << " for "
              << d.requirement.origin << " (allowed degraded): " << d.reason << "\n";
  }
}

SpawnedInit Enclosure::spawn() {
  // Signals that the supervisor forwards are read through its signalfd (SIGWINCH too: the
  // agent's terminal follows the launcher's size).
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGWINCH})
    sigaddset(&forwarded, s);
  sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // Raw mode from here: the warnings above were written to a terminal in its usual mode.
  if (terminal_) terminal_->start_relay();

  SpawnedInit init = spawn_enclosure(spec_, provider_->clone_into_cgroup_fd(layers_));
  channel_child_.reset();
  sync_read_.reset();
  meter_write_.reset();
  // Two go-aheads: pid 1 builds the view once its uid map is written, while the cgroup
  // membership is set up (which waits for the kernel), and forks the agent only after that.
  char go = 1;
  try {
    if (spec_.user_namespace) set_up_user_namespace(init.pid, uid_, gid_);
    write_all(sync_write_.get(), &go, 1);
    provider_->place(layers_, init);
  } catch (const LaunchError&) {
    ::syscall(SYS_pidfd_send_signal, init.pidfd.get(), SIGKILL, nullptr, 0);
    throw;
  }
  write_all(sync_write_.get(), &go, 1);
  sync_write_.reset();
  return init;
}

SupervisorConfig Enclosure::supervisor_config() const {
  SupervisorConfig config;
  config.plan = &plan_;
  config.grace_ns = options_.grace_ns;
  nlohmann::json initial;
  set_bytes(initial, "path", tool_->path);
  initial["argv"] = argv_json_;
  initial["tool"] = tool_->name;
  initial["initial"] = true;
  config.initial_command = initial;
  config.bpf = layers_.kernel;
  config.cgroup_id = layers_.cgroup ? layers_.cgroup->v2_id() : 0;
  config.meter_fd = meter_read_.get();
  config.audit_required = options_.audit_required;
  config.resolver = layers_.resolver.get();
  config.observe = options_.observe;
  config.baseline = options_.baseline;
  config.admissions = layers_.admissions.get();
  config.control = control_.get();
  config.terminal = terminal_.get();
  const RunIdentity& id = events_->identity();
  config.run_status = {{"run", id.run_id},
                       {"manifest", {{"name", id.manifest_name}, {"digest", id.manifest_digest}}},
                       {"started", started_},
                       {"launcher_pid", ::getpid()},
                       {"uid", ::getuid()},
                       {"command", argv_json_},
                       {"tool", tool_->name}};
  if (id.manifest_revision) config.run_status["manifest"]["revision"] = *id.manifest_revision;
  return config;
}

RunOutcome Enclosure::supervise(SpawnedInit init) {
  supervisor_ = std::make_unique<Supervisor>(supervisor_config(), *events_, layers_.cgroup.get(),
                                             std::move(init), std::move(channel_parent_));
  RunOutcome outcome = supervisor_->run();
  // The launcher's terminal as it was, before anything else is written to it.
  if (terminal_) terminal_->restore();
  return outcome;
}

void Enclosure::report_exit(const RunOutcome& outcome) {
  if (layers_.cgroup && !layers_.cgroup->kill_and_wait(kKillTimeoutMs)) {
    std::cerr << "enclosure run: WARNING: processes of the run's cgroup did not exit within 5s\n";
  }
  provider_->release();
  events_->flush_suppressed(true);  // `events` and `suppressed` below then add up
  nlohmann::json fields = {{"ended_by", outcome.ended_by},
                           {"exit_code", outcome.exit_code},
                           {"duration_ns", outcome.duration_ns},
                           {"denials", outcome.denials},
                           {"budgets", outcome.figures},
                           {"events", events_->counts()},
                           {"sink_failures", events_->sink_failures()}};
  fields["suppressed"] = events_->suppressed();
  if (!outcome.budget.empty()) fields["budget"] = outcome.budget;
  if (!outcome.message.empty()) fields["message"] = outcome.message;
  nlohmann::json delivery = nlohmann::json::array();
  for (const auto& sink : events_->sinks()) {
    nlohmann::json r = sink->report();
    if (!r.is_null()) delivery.push_back(r);
  }
  if (!delivery.empty()) fields["delivery"] = delivery;
  events_->emit("exit", ::getpid(), fields);
  for (const auto& sink : events_->sinks()) {
    if (sink->flush(kFlushTimeoutMs)) continue;
    nlohmann::json r = sink->report();
    std::cerr << "enclosure run: WARNING: " << sink->describe() << ": "
              << (r.is_object() ? r.value("pending", uint64_t{0}) : 0)
              << " events were not acknowledged within " << kFlushTimeoutMs / 1000 << "s\n";
  }
}

// The resolver before the admission table it fills, that before the eBPF maps it writes; the
// cgroup before the provider (a daemon's cgroup view kills through the daemon connection).
void Enclosure::tear_down() {
  layers_.resolver.reset();
  layers_.admissions.reset();
  layers_.kernel = nullptr;
  layers_.cgroup.reset();
  provider_.reset();
  control_.reset();
}

void Enclosure::report_outcome(const RunOutcome& outcome) const {
  if (outcome.ended_by == "setup_error" || outcome.ended_by == "exec_error") {
    std::cerr << "enclosure run: "
              << (outcome.ended_by == "exec_error" ? "cannot execute " + tool_->path + ": " : "")
              << outcome.message << "\n";
    if (std::string hint = setup_hint(outcome.message); !hint.empty()) {
      std::cerr << "  " << hint << "\n";
    }
  }
  print_summary(events_->identity(), outcome);
}

}  // namespace launcher
