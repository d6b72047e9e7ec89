#include "launcher/run/supervisor.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "bpf/enclosure_abi.h"
#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/base/file.h"
#include "launcher/dns/admissions.h"
#include "launcher/dns/resolver.h"
#include "launcher/events/kernel_events.h"
#include "launcher/run/child_channel.h"
#include "launcher/run/control_socket.h"
#include "launcher/run/seccomp_notify.h"
#include "launcher/run/terminal.h"
#include "policy/seccomp_verdict.h"
#include "policy/units.h"

namespace launcher {
namespace {

// How the summary line names a denial the kernel reported: a refused file call by its syscall
// and path, an exec (a non-tool, a tool a rule denies, the dynamic loader run as a program) by
// what was executed, a unix socket by its path, a network one by its destination.
std::string kernel_denial_summary(const nlohmann::json& fields) {
  std::string origin = fields.value("origin", std::string("/network"));
  if (fields.value("section", std::string()) == "filesystem") {
    return fields.value("syscall", std::string("?")) + " " +
           fields.value("path", std::string("?")) + " (" + origin + ")";
  }
  if (origin == "/network/unix") {
    return fields.value("hook", std::string("connect_unix")) + " " +
           fields.value("path", std::string("?")) + " (" + origin + ")";
  }
  if (fields.contains("path") || fields.contains("tool")) {
    std::string tool = fields.value("tool", std::string());
    return "exec of " + (tool.empty() ? fields.value("path", std::string("?")) : "tool " + tool) +
           " (" + origin + ")";
  }
  return fields.value("destination", fields.value("protocol", std::string("network"))) + " (" +
         origin + ")";
}

// How long the agent's last output may take to reach the launcher's once pid 1 has exited.
constexpr int kTerminalDrainMs = 2000;

UniqueFd make_timer(uint64_t first_ns, uint64_t interval_ns) {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!fd) throw_errno("supervisor: timerfd_create");
  struct itimerspec spec {};
  spec.it_value.tv_sec = static_cast<time_t>(first_ns / 1'000'000'000ULL);
  spec.it_value.tv_nsec = static_cast<long>(first_ns % 1'000'000'000ULL);
  if (first_ns == 0) spec.it_value.tv_nsec = 1;
  spec.it_interval.tv_sec = static_cast<time_t>(interval_ns / 1'000'000'000ULL);
  spec.it_interval.tv_nsec = static_cast<long>(interval_ns % 1'000'000'000ULL);
  if (::timerfd_settime(fd.get(), 0, &spec, nullptr) != 0)
    throw_errno("supervisor: timerfd_settime");
  return fd;
}

void drain(int fd) {
  uint64_t value;
  while (::read(fd, &value, sizeof value) > 0) {
  }
}

// A measured duration for people: "59.182ms", "3.004s".
std::string elapsed_text(uint64_t ns) {
  char buf[32];
  if (ns < 1'000'000'000ULL) {
    std::snprintf(buf, sizeof buf, "%.3fms", static_cast<double>(ns) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.3fs", static_cast<double>(ns) / 1e9);
  }
  return buf;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// A call's arguments for its deny event: ["0x3", "0x7ffc...", ...].
nlohmann::json hex_args(const std::array<uint64_t, 6>& args) {
  nlohmann::json out = nlohmann::json::array();
  for (uint64_t a : args)
    out.push_back(hex(a));
  return out;
}

// A system call's name for the histogram; its number when libseccomp does not know it.
std::string histogram_name(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  std::string out = name ? name : std::to_string(nr);
  std::free(name);
  return out;
}

// The innermost pid of a host process (the last NSpid field of its status); nullopt when the
// process is gone or its status has no NSpid line.
std::optional<pid_t> innermost_pid(pid_t host_pid) {
  std::optional<std::string> status;
  try {
    status = read_file_if_exists("/proc/" + std::to_string(host_pid) + "/status");
  } catch (const LaunchError&) {
    return std::nullopt;  // exited meanwhile
  }
  if (!status) return std::nullopt;
  std::istringstream lines(*status);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    std::istringstream in(line.substr(6));
    pid_t v = 0, last = 0;
    while (in >> v)
      last = v;
    return last;
  }
  return std::nullopt;
}

// A composition rule that denies network fired: the kernel drops every packet of the enclosure
// from that moment (UDP sends fail with EPERM); destroying its TCP sockets makes the agent's calls
// on connections made before fail (ECONNABORTED, then EPIPE) instead of queueing data. The rule
// event says how many were destroyed, or why none could be.
void cut_sockets(bpf::KernelLayer& kernel, uint64_t cgroup_id, nlohmann::json& rule_event) {
  try {
    std::optional<uint64_t> destroyed = kernel.cut_sockets(cgroup_id);
    if (destroyed) {
      rule_event["sockets_destroyed"] = *destroyed;
    } else {
      rule_event["sockets_destroyed"] = "not available (packets are dropped)";
    }
  } catch (const std::exception& e) {
    rule_event["sockets_destroyed"] = std::string("failed (packets are dropped): ") + e.what();
  }
}

}  // namespace

Supervisor::Supervisor(const SupervisorConfig& config, EventStream& events, RunCgroup* cgroup,
                       SpawnedInit init, UniqueFd channel)
    : config_(config),
      events_(events),
      cgroup_(cgroup),
      init_(std::move(init)),
      channel_(std::move(channel)) {
  start_ns_ = monotonic_ns();
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("supervisor: epoll_create1");
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGWINCH})
    sigaddset(&set, s);
  signals_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) throw_errno("supervisor: signalfd");
  add(init_.pidfd.get());
  add(channel_.get());
  add(signals_.get());
  const policy::Budgets& b = config_.plan->budgets;
  if (b.wall_clock_ns) {
    wall_timer_ = make_timer(*b.wall_clock_ns, 0);
    add(wall_timer_.get());
  }
  if (cgroup_) {
    tick_timer_ = make_timer(config_.tick_ns, config_.tick_ns);
    add(tick_timer_.get());
    if (cgroup_->oom_eventfd() >= 0) add(cgroup_->oom_eventfd());
  }
  if (config_.bpf) add(config_.bpf->ring_fd());
  if (config_.resolver) add(config_.resolver->event_fd());
  if (config_.bpf && (config_.observe || config_.baseline)) {
    uint64_t window_ns = (config_.baseline ? config_.baseline->window_ms : 1000) * 1'000'000ULL;
    window_timer_ = make_timer(window_ns, window_ns);
    add(window_timer_.get());
  }
  if (config_.meter_fd >= 0) {
    add(config_.meter_fd);
    meter_open_ = true;
  }
  if (config_.control) add(config_.control->listen_fd());
  if (config_.terminal) add(config_.terminal->poll_fd());
  bool sinks_polled = false;
  for (const auto& sink : events_.sinks()) {
    if (sink->poll_fd() < 0) continue;
    add(sink->poll_fd());
    sinks_polled = true;
  }
  if (sinks_polled) {
    sink_timer_ = make_timer(config_.tick_ns, config_.tick_ns);
    add(sink_timer_.get());
  }
}

Supervisor::~Supervisor() = default;

void Supervisor::add(int fd, uint32_t ev) {
  struct epoll_event e {};
  e.events = ev;
  e.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &e) != 0) throw_errno("supervisor: epoll_ctl");
}

uint64_t Supervisor::elapsed_ns() const {
  return monotonic_ns() - start_ns_;
}

pid_t Supervisor::host_pid(pid_t ns_pid) const {
  if (!cgroup_) return ns_pid;
  for (pid_t p : cgroup_->processes()) {
    if (innermost_pid(p) == ns_pid) return p;
  }
  return ns_pid;
}

void Supervisor::signal_enclosure(int signal) {
  if (cgroup_) {
    cgroup_->signal_all(signal);
  } else {
    ::syscall(SYS_pidfd_send_signal, init_.pidfd.get(), signal, nullptr, 0);
  }
}

void Supervisor::terminate(const std::string& reason, const std::string& budget,
                           const nlohmann::json& limit, const nlohmann::json& value,
                           bool emit_budget_event) {
  if (terminating_ && outcome_.ended_by != "signaled") return;
  bool already_signaled = terminating_;
  terminating_ = true;
  outcome_.ended_by = reason;
  outcome_.budget = budget;
  if (reason == "budget" && emit_budget_event) {
    events_.emit("budget", init_.pid,
                 {{"name", budget}, {"limit", limit}, {"value", value}, {"action", "terminate"}});
  }
  if (reason == "violation" || reason == "audit_unavailable" || reason == "anomaly") {
    // on_violation: kill ends the enclosure at once; so does an audit trail that cannot be
    // delivered under --audit-required: nothing of the agent runs on unrecorded.
    signal_enclosure(SIGKILL);
    return;
  }
  if (already_signaled) return;  // the grace period is already running
  signal_enclosure(SIGTERM);
  grace_timer_ = make_timer(config_.grace_ns, 0);
  add(grace_timer_.get());
}

void Supervisor::on_ring() {
  // Every line of this drain goes out in one write per sink, once all are encoded.
  EventStream::WriteBatch batch(events_);
  config_.bpf->drain([this](const void* data, size_t size) { on_record(data, size); });
}

void Supervisor::on_record(const void* data, size_t size) {
  static const std::string kOpen = "open";
  std::string error;
  std::optional<bpf::DecodedRecord> r = bpf::decode_record(data, size, error);
  if (!r || r->cgroup_id != config_.cgroup_id) {
    ++malformed_records_;
    return;
  }
  if (const auto* o = std::get_if<bpf::OpenRecord>(&r->body)) {
    // The access log's flood: encoded straight from the record (the bytes of kernel_events()).
    encoded_fields_.clear();
    append_open_fields(encoded_fields_, *o, r->kseq);
    events_.emit_members(kOpen, r->pid, encoded_fields_);
    return;
  }
  if (const auto* rf = std::get_if<bpf::RefusalRecord>(&r->body);
      rf && take_seccomp_echo(rf->syscall, rf->result)) {
    return;
  }
  emit_kernel_events(*r);
}

// The events of one kernel record, with what the supervisor knows besides (the initial
// command, DNS names, cut sockets), and what they mean for the run (denials, budgets).
void Supervisor::emit_kernel_events(const bpf::DecodedRecord& record) {
  for (KernelEvent& e : kernel_events(record, *config_.plan)) {
    if (e.type == "exec" && e.fields.value("initial", false)) {
      // The command given to `run`: add what the launcher knows of it.
      for (auto it = config_.initial_command.begin(); it != config_.initial_command.end(); ++it) {
        e.fields[it.key()] = it.value();
      }
      if (outcome_.figures.contains("absent")) e.fields["absent"] = outcome_.figures["absent"];
    }
    if (config_.admissions && e.fields.contains("address") &&
        (e.type == "connect" || e.type == "deny")) {
      std::vector<std::string> names =
          config_.admissions->names_of(e.fields["address"].get<std::string>());
      if (names.size() == 1) e.fields["name"] = names[0];
      if (names.size() > 1) e.fields["names"] = names;
    }
    if (e.type == "rule") {
      uint32_t rule = std::get<bpf::RuleRecord>(record.body).rule;
      if (rule < config_.plan->rules.size() && config_.plan->rules[rule].deny.network)
        cut_sockets(*config_.bpf, config_.cgroup_id, e.fields);
    }
    events_.emit(e.type, e.pid, e.fields);
    if (e.type == "deny") record_denial(kernel_denial_summary(e.fields));
    if (e.type == "budget") {
      uint64_t bit = 1ULL << std::get<bpf::BudgetRecord>(record.body).budget;
      exceeded_seen_ |= bit;
      budget_records_ |= bit;
      terminate("budget", e.fields.value("name", std::string()), e.fields["limit"],
                e.fields["value"], false);
    }
  }
}

void Supervisor::on_dns() {
  for (nlohmann::json& e : config_.resolver->take_events()) {
    e.erase("type");
    if (e.value("result", "") == "refused" && outcome_.dns_refused++ == 0) {
      outcome_.first_dns_refused = e.value("name", std::string("(malformed query)"));
    }
    events_.emit("dns", init_.pid, e);
  }
}

// One window of behaviour: the counts since the last window, as `enclosure learn` records them
// (a `window` event) and as a baseline checks them (`anomaly` events).
void Supervisor::on_window() {
  drain(window_timer_.get());
  policy::BaselineWindow w = next_window();
  uint64_t window_ms = config_.baseline ? config_.baseline->window_ms : 1000;
  if (config_.observe) emit_window(w, window_ms);
  if (config_.baseline) check_window(w, window_ms);
}

// The kernel's counts since the last window, and the system calls seen so far.
policy::BaselineWindow Supervisor::next_window() {
  bpf::EnclosureCounters c = config_.bpf->counters(config_.cgroup_id);
  policy::BaselineWindow w;
  uint64_t syscalls = 0;
  for (const auto& [nr, count] : c.histogram) {
    syscalls += count;
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    w.syscalls.insert(name ? name : "nr " + std::to_string(nr));
    std::free(name);
  }
  std::map<std::string, uint64_t> totals = {{"syscalls", syscalls},
                                            {"opens", c.state.opens},
                                            {"connects", c.state.connects},
                                            {"execs", c.state.execs}};
  for (const auto& [metric, total] : totals) {
    uint64_t before = window_totals_.count(metric) ? window_totals_[metric] : 0;
    w.counts[metric] = total >= before ? total - before : 0;
  }
  window_totals_ = totals;
  return w;
}

void Supervisor::emit_window(const policy::BaselineWindow& w, uint64_t window_ms) {
  nlohmann::json f = {{"window_ms", window_ms}};
  for (const auto& [metric, count] : w.counts)
    f[metric] = count;
  events_.emit("window", init_.pid, f);
}

void Supervisor::check_window(const policy::BaselineWindow& w, uint64_t window_ms) {
  const policy::Baseline& rule = *config_.plan->baseline;
  for (const policy::Anomaly& a :
       policy::check_baseline_window(*config_.baseline, rule.tolerance, w, anomalies_reported_)) {
    report_anomaly(a, window_ms);
  }
}

// An `anomaly` event; under a baseline whose action is kill, the end of the run.
void Supervisor::report_anomaly(const policy::Anomaly& a, uint64_t window_ms) {
  const policy::Baseline& rule = *config_.plan->baseline;
  ++anomalies_;
  nlohmann::json f = {
      {"what", a.what},
      {"window_ms", window_ms},
      {"origin", "/baseline"},
      {"profile", rule.profile},
      {"action", rule.action == policy::BaselineAction::kill ? "terminate" : "alert"}};
  if (a.what == "rate") {
    f["metric"] = a.metric;
    f["value"] = a.value;
    f["profile_peak"] = a.peak;
    f["limit"] = a.limit;
    f["tolerance"] = rule.tolerance;
  } else {
    f["syscall"] = a.metric;
    f["reason"] = "a system call never seen while learning";
  }
  events_.emit("anomaly", init_.pid, f);
  if (rule.action == policy::BaselineAction::kill && !terminating_) {
    outcome_.message = "behaviour anomaly: " +
                       (a.what == "rate" ? a.metric + " rate " + std::to_string(a.value) +
                                               " per window above the profile's peak x tolerance"
                                         : "syscall " + a.metric + " never seen while learning");
    terminate("anomaly", "", nullptr, nullptr, false);
  }
}

void Supervisor::check_kernel_counters() {
  if (!config_.bpf) return;
  bpf::EnclosureCounters c = config_.bpf->counters(config_.cgroup_id);
  if (c.state.lost > lost_reported_) {
    events_.emit("lost", init_.pid,
                 {{"count", c.state.lost - lost_reported_},
                  {"total", c.state.lost},
                  {"source", "bpf ring buffer"},
                  {"kernel_records", c.state.records}});
    lost_reported_ = c.state.lost;
  }
  // A budget the kernel flagged ends the run at once, whether or not its record has arrived
  // yet; its event is written from the counters at the end only if the record never came.
  uint64_t fresh = c.state.exceeded & ~exceeded_seen_;
  for (uint32_t b = ENC_BUDGET_TOOL_MAX_CALLS; b <= ENC_BUDGET_EGRESS_BYTES; ++b) {
    if (!(fresh & (1ULL << b))) continue;
    exceeded_seen_ |= 1ULL << b;
    terminate("budget", bpf::budget_name(b), nullptr, nullptr, false);
  }
}

void Supervisor::report_unrecorded_budgets() {
  if (!config_.bpf) return;
  bpf::EnclosureCounters c = config_.bpf->counters(config_.cgroup_id);
  uint64_t missing = c.state.exceeded & ~budget_records_;
  const policy::Budgets& limits = config_.plan->budgets;
  for (uint32_t b = ENC_BUDGET_TOOL_MAX_CALLS; b <= ENC_BUDGET_EGRESS_BYTES; ++b) {
    if (!(missing & (1ULL << b))) continue;
    bpf::BudgetRecord rec{b, -1, 0, 0};
    if (b == ENC_BUDGET_SYSCALLS) rec = {b, -1, limits.syscalls.value_or(0), c.syscalls()};
    if (b == ENC_BUDGET_TOOL_CALLS)
      rec = {b, -1, limits.tool_calls.value_or(0), c.state.tool_calls};
    if (b == ENC_BUDGET_COST) rec = {b, -1, limits.cost_micro_usd.value_or(0), c.state.cost_micro};
    if (b == ENC_BUDGET_EGRESS_BYTES)
      rec = {b, -1, limits.egress_bytes.value_or(0), c.state.egress_bytes};
    nlohmann::json f = budget_fields(rec, *config_.plan);
    f["note"] = "its kernel record was lost; reported from the kernel's counters";
    events_.emit("budget", init_.pid, f);
    if (outcome_.budget.empty() || outcome_.budget == bpf::budget_name(b))
      outcome_.budget = f["name"];
  }
}

void Supervisor::record_denial(const std::string& what) {
  if (outcome_.denials++ == 0) outcome_.first_denial = what;
  if (config_.plan->on_violation == policy::OnViolation::kill) {
    terminate("violation", "", nullptr, nullptr);
  }
}

bool Supervisor::on_meter() {
  char buf[1 << 16];
  ssize_t n;
  do {
    n = ::read(config_.meter_fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return false;
  if (n <= 0) {
    // Every writer is gone: a last line without its newline still counts.
    meter_lines_.finish([this](const MeterLineSplitter::Line& l) { on_meter_line(l); });
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, config_.meter_fd, nullptr);
    meter_open_ = false;
    return false;
  }
  meter_lines_.feed(std::string_view(buf, static_cast<size_t>(n)),
                    [this](const MeterLineSplitter::Line& l) { on_meter_line(l); });
  return true;
}

void Supervisor::on_meter_line(const MeterLineSplitter::Line& line) {
  constexpr uint64_t kRejectionsLogged = 1000;
  if (!line.oversized && line.text.find_first_not_of(" \t\r") == std::string_view::npos) return;
  MeterReport report =
      line.oversized ? MeterReport{std::nullopt, "",
                                   "line longer than " + std::to_string(kMeterLineMax) + " bytes"}
                     : parse_meter_line(line.text);
  if (!report.accepted()) {
    ++meter_rejected_;
    if (meter_rejected_ > kRejectionsLogged) return;
    nlohmann::json f = {{"rejected", report.rejected}};
    set_bytes(f, "line", line.text.substr(0, 256));
    if (line.text.size() > 256) f["line_truncated"] = true;
    if (meter_rejected_ == kRejectionsLogged)
      f["note"] = "further rejected reports are counted, not logged";
    events_.emit("cost", init_.pid, f);
    return;
  }
  ++meter_reports_;
  uint64_t micro = *report.micro_usd;
  reported_micro_usd_ =
      reported_micro_usd_ > UINT64_MAX / 2 - micro ? UINT64_MAX / 2 : reported_micro_usd_ + micro;
  uint64_t tools = 0;
  if (config_.bpf) {
    // The kernel's own check of tool prices sees the reported sum from now on.
    config_.bpf->set_reported_cost(config_.cgroup_id, reported_micro_usd_);
    tools = config_.bpf->counters(config_.cgroup_id).state.cost_micro;
  }
  uint64_t total = tools + reported_micro_usd_;
  const policy::Budgets& b = config_.plan->budgets;
  nlohmann::json f = {{"cost_usd", policy::format_usd(micro)},
                      {"note", report.note},
                      {"total_reported", policy::format_usd(reported_micro_usd_)},
                      {"total_tools", policy::format_usd(tools)},
                      {"total", policy::format_usd(total)}};
  if (b.cost_micro_usd) f["limit"] = policy::format_usd(*b.cost_micro_usd);
  events_.emit("cost", init_.pid, f);
  if (b.cost_micro_usd && total > *b.cost_micro_usd &&
      !(terminating_ && outcome_.ended_by == "budget")) {
    events_.emit("budget", init_.pid,
                 {{"name", "cost_usd"},
                  {"limit", policy::format_usd(*b.cost_micro_usd)},
                  {"value", policy::format_usd(total)},
                  {"tools", policy::format_usd(tools)},
                  {"reported", policy::format_usd(reported_micro_usd_)},
                  {"origin", "/budgets/cost_usd"},
                  {"enforced_by", "supervisor (metered report)"},
                  {"action", "terminate"}});
    terminate("budget", "cost_usd", policy::format_usd(*b.cost_micro_usd),
              policy::format_usd(total), false);
  }
}

void Supervisor::on_sink_tick() {
  drain(sink_timer_.get());
  for (const auto& sink : events_.sinks())
    sink->on_tick();
  check_audit_delivery();
}

void Supervisor::check_audit_delivery() {
  if (!config_.audit_required) return;
  for (const auto& sink : events_.sinks()) {
    if (sink->healthy()) continue;
    if (!terminating_ || outcome_.ended_by == "signaled") {
      outcome_.message = "--audit-required: events cannot be delivered to " + sink->describe();
      terminate("audit_unavailable", "", nullptr, nullptr, false);
    }
    return;
  }
}

void Supervisor::on_channel() {
  while (auto m = receive_message(channel_.get())) {
    std::string type = m->body.value("type", "");
    if (type == "view") {
      outcome_.figures["absent"] = m->body.value("absent", nlohmann::json::array());
    } else if (type == "setup_error") {
      if (!setup_code_) {
        setup_code_ = m->body.value("code", 125);
        outcome_.message = m->body.value("message", "set-up failed");
      }
    } else if (type == "terminal" && m->fd && config_.terminal) {
      config_.terminal->attach_master(std::move(m->fd));  // the agent's, from pid 1
    } else if (type == "seccomp_listener" && m->fd && !listener_) {
      listener_ = std::make_unique<SeccompListener>(std::move(m->fd));
      add(listener_->fd());
    } else if (type == "exec_ok") {
      exec_ok_ = true;
      // With the eBPF layer the kernel's record of this exec is the event (it carries kseq 0).
      if (!config_.bpf) {
        pid_t ns_pid = m->body.value("ns_pid", 0);
        nlohmann::json fields = config_.initial_command;
        fields["ns_pid"] = ns_pid;
        if (outcome_.figures.contains("absent")) fields["absent"] = outcome_.figures["absent"];
        events_.emit("exec", host_pid(ns_pid), fields);
      }
    } else if (type == "exec_error") {
      exec_errno_ = m->body.value("errno", EACCES);
      outcome_.message = m->body.value("message", "exec failed");
    } else if (type == "agent_exit") {
      agent_code_ = m->body.value("code", 125);
      if (m->body.contains("signal")) agent_signal_ = m->body["signal"].get<int>();
    }
  }
}

void Supervisor::on_signal() {
  struct signalfd_siginfo info {};
  while (::read(signals_.get(), &info, sizeof info) == sizeof info) {
    int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGWINCH) {
      // Not forwarded: the agent's terminal changes size, and the kernel signals the agent.
      if (config_.terminal) config_.terminal->copy_window_size();
      continue;
    }
    // Forward to pid 1, which passes it to the agent's session.
    ::syscall(SYS_pidfd_send_signal, init_.pidfd.get(), sig, nullptr, 0);
    if (sig == SIGINT && ++interrupts_ < 2) continue;  // a first Ctrl-C is the agent's to handle
    if (!terminating_) {
      terminating_ = true;
      outcome_.ended_by = "signaled";
      grace_timer_ = make_timer(config_.grace_ns, 0);
      add(grace_timer_.get());
    }
  }
}

void Supervisor::on_tick() {
  drain(tick_timer_.get());
  check_kernel_counters();
  if (config_.admissions) {
    for (const nlohmann::json& e : config_.admissions->expire())
      events_.emit("dns", init_.pid, e);
  }
  const policy::Budgets& b = config_.plan->budgets;
  if (auto procs = cgroup_->pids_current()) peak_processes_ = std::max(peak_processes_, *procs);
  if (b.cpu_time_ns) {
    if (auto usec = cgroup_->cpu_usage_usec(); usec && *usec * 1000 >= *b.cpu_time_ns) {
      terminate("budget", "cpu_time", policy::format_duration(*b.cpu_time_ns),
                elapsed_text(*usec * 1000));
    }
  }
  if (b.memory_bytes) {
    if (auto kills = cgroup_->oom_kills(); kills && *kills > 0) {
      terminate("budget", "memory", policy::format_size(*b.memory_bytes),
                policy::format_size(cgroup_->memory_peak_bytes().value_or(*b.memory_bytes)));
    }
  }
  if (b.processes) {
    if (auto hits = cgroup_->pids_limit_hits(); hits && *hits > pids_hits_seen_) {
      pids_hits_seen_ = *hits;
      if (!processes_reported_) {
        processes_reported_ = true;
        events_.emit("budget", init_.pid,
                     {{"name", "processes"},
                      {"limit", *b.processes},
                      {"value", cgroup_->pids_current().value_or(*b.processes)},
                      {"action", "fork and clone fail with EAGAIN"}});
      }
    }
  }
}

// A call the seccomp filter handed over: the compiled profile says whether to deny it or to let
// composition rules decide it.
void Supervisor::on_notification() {
  std::optional<SeccompNotice> n = listener_->receive();
  if (!n) return;
  policy::NotifiedCallVerdict verdict =
      n->foreign_abi ? policy::foreign_abi_verdict(n->abi)
                     : policy::verdict_for(config_.plan->seccomp, n->syscall, n->args);
  if (verdict.kind == policy::NotifiedCallVerdict::Kind::gate) {
    answer_gated_call(*n, verdict);
  } else {
    deny_call(*n, verdict);
  }
}

// A call gated by composition rules: allowed (continued) until a rule that denies its class has
// fired in the kernel; then EPERM, with a deny event naming the rule.
void Supervisor::answer_gated_call(const SeccompNotice& n,
                                   const policy::NotifiedCallVerdict& verdict) {
  uint64_t fired = config_.bpf ? config_.bpf->rules_fired(config_.cgroup_id) : 0;
  std::optional<size_t> index = policy::gate_denied_by(verdict, fired);
  if (!index) {
    listener_->allow(n);
    return;
  }
  const policy::Rule& rule = config_.plan->rules[*index];
  std::string pointer = "/rules/" + std::to_string(*index);
  std::string name = rule.id.empty() ? pointer : rule.id;
  events_.emit("deny", n.pid,
               {{"section", "rules"},
                {"rule", name},
                {"origin", pointer},
                {"denies", verdict.gate},
                {"syscall", n.syscall},
                {"nr", n.nr},
                {"args", hex_args(n.args)},
                {"reason", "composition rule " + name + " fired and denies " + verdict.gate},
                {"action", "EPERM"}});
  record_denial(n.syscall + " (" + pointer + ")");
  ++seccomp_denials_;
  expect_seccomp_echo(n);
  listener_->fail(n, EPERM);
}

// A call the profile denies: a deny event, the caller killed when the verdict says so, EPERM.
void Supervisor::deny_call(const SeccompNotice& n, const policy::NotifiedCallVerdict& verdict) {
  events_.emit("deny", n.pid,
               {{"section", "syscalls"},
                {"syscall", n.syscall},
                {"nr", n.nr},
                {"abi", n.abi},
                {"args", hex_args(n.args)},
                {"origin", verdict.origin},
                {"action", verdict.kill ? "process killed" : "EPERM"}});
  if (verdict.kill) listener_->kill_caller(n);
  ++seccomp_denials_;
  // With on_violation: kill the enclosure dies before the call is answered, so nothing of the
  // agent runs past its first violation.
  record_denial(n.syscall + " (" + verdict.origin + ")");
  // A killed caller may never return from the call: no echo is expected of it.
  if (!verdict.kill) expect_seccomp_echo(n);
  listener_->fail(n, EPERM);
}

void Supervisor::expect_seccomp_echo(const SeccompNotice& n) {
  if (n.foreign_abi || n.nr < 0 || !bpf::refusal_syscall_name(static_cast<uint32_t>(n.nr))) return;
  ++seccomp_echoes_expected_[static_cast<uint32_t>(n.nr)];
}

bool Supervisor::take_seccomp_echo(uint32_t nr, int64_t result) {
  auto it = seccomp_echoes_expected_.find(nr);
  if (result != -EPERM || it == seccomp_echoes_expected_.end()) return false;
  if (--it->second == 0) seccomp_echoes_expected_.erase(it);
  ++seccomp_echoes_taken_;
  return true;
}

RunOutcome Supervisor::run() {
  struct epoll_event evs[16];
  while (!init_exited_) {
    // The wait ends when counted-not-written events are due for their `suppressed` event.
    int n = ::epoll_wait(epoll_.get(), evs, 16, events_.suppressed_due_in_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("supervisor: epoll_wait");
    }
    for (int i = 0; i < n; ++i)
      dispatch(evs[i].data.fd, evs[i].events);
    events_.flush_suppressed(false);
  }
  siginfo_t info = collect_after_exit();
  outcome_.duration_ns = elapsed_ns();
  settle_exit_code(info.si_code, info.si_status);
  outcome_.figures = final_figures(outcome_.duration_ns);
  return outcome_;
}

// One ready descriptor of the loop, to its handler.
void Supervisor::dispatch(int fd, uint32_t events) {
  if (fd == init_.pidfd.get()) {
    init_exited_ = true;
  } else if (fd == channel_.get()) {
    on_channel();
  } else if (fd == signals_.get()) {
    on_signal();
  } else if (wall_timer_ && fd == wall_timer_.get()) {
    on_wall_clock();
  } else if (tick_timer_ && fd == tick_timer_.get()) {
    on_tick();
  } else if (grace_timer_ && fd == grace_timer_.get()) {
    drain(fd);
    signal_enclosure(SIGKILL);
  } else if (listener_ && fd == listener_->fd()) {
    on_listener(events);
  } else if (window_timer_ && fd == window_timer_.get()) {
    on_window();
  } else if (config_.resolver && fd == config_.resolver->event_fd()) {
    on_dns();
  } else if (config_.bpf && fd == config_.bpf->ring_fd()) {
    on_ring();
  } else if (cgroup_ && fd == cgroup_->oom_eventfd()) {
    drain(fd);
    on_tick();
  } else if (meter_open_ && fd == config_.meter_fd) {
    on_meter();
  } else if (sink_timer_ && fd == sink_timer_.get()) {
    on_sink_tick();
  } else if (config_.control && fd == config_.control->listen_fd()) {
    for (int client : config_.control->accept_clients())
      add(client);
  } else if (config_.control && config_.control->is_client(fd)) {
    on_control_client(fd);
  } else if (config_.terminal && fd == config_.terminal->poll_fd()) {
    config_.terminal->on_ready();
  } else {
    on_sink_readable(fd);
  }
}

// A request on the control socket: the run's figures so far (`enclosure ps`), or the end of the
// run (`enclosure stop`: SIGTERM, the grace period, then SIGKILL; the exit event says "stopped").
void Supervisor::on_control_client(int fd) {
  std::optional<std::string> request = config_.control->read_request(fd);
  if (!request) return;  // closed: the descriptor left epoll with it
  if (*request == "status") {
    config_.control->answer(fd, status(), false);
    return;
  }
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  terminate("stopped", "", nullptr, nullptr, false);
  config_.control->answer(fd, {{"stopping", config_.run_status.value("run", "")}}, true);
}

nlohmann::json Supervisor::status() {
  nlohmann::json s = config_.run_status;
  s["pid"] = init_.pid;
  s["uptime_ns"] = elapsed_ns();
  s["denials"] = outcome_.denials;
  s["stopping"] = terminating_;
  s["budgets"] = final_figures(elapsed_ns());
  return s;
}

void Supervisor::on_wall_clock() {
  drain(wall_timer_.get());
  terminate("budget", "wall_clock", policy::format_duration(*config_.plan->budgets.wall_clock_ns),
            elapsed_text(elapsed_ns()));
}

void Supervisor::on_listener(uint32_t events) {
  if (events & (EPOLLHUP | EPOLLERR)) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener_->fd(), nullptr);
  } else {
    on_notification();
  }
}

void Supervisor::on_sink_readable(int fd) {
  for (const auto& sink : events_.sinks()) {
    if (sink->poll_fd() == fd) sink->on_readable();
  }
  check_audit_delivery();
}

// Pid 1 is gone, and with it the pid namespace: the last reports, messages, records and
// samples, then pid 1's status.
siginfo_t Supervisor::collect_after_exit() {
  // Reports still in the pipe count: every writer is gone with pid 1.
  while (meter_open_ && on_meter()) {
  }
  meter_lines_.finish([this](const MeterLineSplitter::Line& l) { on_meter_line(l); });
  on_channel();  // the agent's terminal's master too, when it had not come yet
  if (config_.terminal) config_.terminal->drain_output(kTerminalDrainMs);
  if (config_.resolver) on_dns();
  if (config_.bpf) {
    config_.bpf->flush();
    on_ring();
    check_kernel_counters();
    report_unrecorded_budgets();
    if (window_timer_) on_window();  // the last, partial window
  }
  siginfo_t info{};
  ::waitid(P_PIDFD, static_cast<id_t>(init_.pidfd.get()), &info, WEXITED);
  if (cgroup_) {
    if (auto procs = cgroup_->pids_current()) peak_processes_ = std::max(peak_processes_, *procs);
    on_tick();
  }
  return info;
}

// How the run ended and its exit code, from what ended it and pid 1's status (waitid's si_code
// and si_status).
void Supervisor::settle_exit_code(int child_code, int child_status) {
  if (outcome_.ended_by == "audit_unavailable") {
    outcome_.exit_code = 125;
  } else if (outcome_.ended_by == "budget") {
    outcome_.exit_code = 124;
  } else if (setup_code_) {
    outcome_.ended_by = "setup_error";
    outcome_.exit_code = *setup_code_;
  } else if (exec_errno_) {
    outcome_.ended_by = "exec_error";
    outcome_.exit_code = *exec_errno_ == ENOENT ? 127 : 126;
  } else if (agent_code_) {
    if (outcome_.ended_by.empty()) outcome_.ended_by = agent_signal_ ? "signaled" : "exited";
    outcome_.exit_code = *agent_code_;
  } else if (child_code == CLD_EXITED) {
    if (outcome_.ended_by.empty()) outcome_.ended_by = "exited";
    outcome_.exit_code = child_status;
  } else {
    if (outcome_.ended_by.empty()) outcome_.ended_by = "signaled";
    outcome_.exit_code = 128 + child_status;
  }
}

// The exit event's budget figures.
nlohmann::json Supervisor::final_figures(uint64_t duration_ns) {
  const policy::Budgets& b = config_.plan->budgets;
  nlohmann::json figures = nlohmann::json::object();
  figures["wall_clock"] = {{"value", elapsed_text(duration_ns)}};
  if (b.wall_clock_ns) figures["wall_clock"]["limit"] = policy::format_duration(*b.wall_clock_ns);
  if (cgroup_) add_cgroup_figures(figures);
  if (config_.bpf) add_kernel_figures(figures);
  if (!figures.contains("cost_usd")) {
    figures["cost_usd"] = {{"reported", policy::format_usd(reported_micro_usd_)}};
    if (b.cost_micro_usd) figures["cost_usd"]["limit"] = policy::format_usd(*b.cost_micro_usd);
  }
  figures["cost_usd"]["reports"] = meter_reports_;
  figures["cost_usd"]["rejected_reports"] = meter_rejected_;
  if (outcome_.figures.contains("absent")) figures["absent"] = outcome_.figures["absent"];
  if (config_.baseline) figures["anomalies"] = anomalies_;
  if (config_.resolver) figures["dns_refused"] = outcome_.dns_refused;
  return figures;
}

// cpu time, memory and processes, from the cgroup.
void Supervisor::add_cgroup_figures(nlohmann::json& figures) {
  const policy::Budgets& b = config_.plan->budgets;
  if (auto usec = cgroup_->cpu_usage_usec()) {
    figures["cpu_usec"] = *usec;
    figures["cpu_time"] = {{"value", elapsed_text(*usec * 1000)}};
    if (b.cpu_time_ns) figures["cpu_time"]["limit"] = policy::format_duration(*b.cpu_time_ns);
  }
  if (auto peak = cgroup_->memory_peak_bytes()) {
    figures["memory_peak_bytes"] = *peak;
    figures["memory"] = {{"peak", policy::format_size(*peak)}};
    if (b.memory_bytes) figures["memory"]["limit"] = policy::format_size(*b.memory_bytes);
  }
  figures["processes"] = {{"peak_sampled", peak_processes_}};
  if (b.processes) {
    figures["processes"]["limit"] = *b.processes;
    figures["processes"]["fork_refusals"] = pids_hits_seen_;
  }
}

// System calls, tool calls, cost, egress and the kernel's own record counts, from the eBPF
// layer's counters; also the run's denials, which those counters hold exactly.
void Supervisor::add_kernel_figures(nlohmann::json& figures) {
  const policy::Budgets& b = config_.plan->budgets;
  bpf::EnclosureCounters c = config_.bpf->counters(config_.cgroup_id);
  if (b.syscalls) figures["syscalls"] = {{"limit", *b.syscalls}, {"value", c.syscalls()}};
  if (config_.plan->audit.syscalls) {
    nlohmann::json hist = nlohmann::json::object();
    for (const auto& [nr, count] : c.histogram)
      hist[histogram_name(nr)] = count;
    figures["syscall_histogram"] = hist;
  }
  figures["tool_calls"] = {{"value", c.state.tool_calls}};
  if (b.tool_calls) figures["tool_calls"]["limit"] = *b.tool_calls;
  nlohmann::json per_tool = nlohmann::json::object();
  for (const policy::ToolEntry& t : config_.plan->tools) {
    if (t.index < ENC_MAX_TOOLS) per_tool[t.name] = c.state.tool_counts[t.index];
  }
  figures["tool_calls"]["by_tool"] = per_tool;
  figures["cost_usd"] = {{"tools", policy::format_usd(c.state.cost_micro)},
                         {"reported", policy::format_usd(reported_micro_usd_)},
                         {"total", policy::format_usd(c.state.cost_micro + reported_micro_usd_)}};
  if (b.cost_micro_usd) figures["cost_usd"]["limit"] = policy::format_usd(*b.cost_micro_usd);
  if (config_.plan->network.mode == policy::NetworkMode::filtered || b.egress_bytes) {
    figures["egress_bytes"] = {{"value", c.state.egress_bytes},
                               {"dropped_packets", c.state.egress_dropped}};
    if (b.egress_bytes) figures["egress_bytes"]["limit"] = *b.egress_bytes;
  }
  // The kernel's counters are exact even when records were lost. Its refusals include the
  // echoes of seccomp's own EPERM answers, which are seccomp's denials.
  uint64_t refusals =
      c.state.refusals - std::min<uint64_t>(c.state.refusals, seccomp_echoes_taken_);
  outcome_.denials = seccomp_denials_ + c.state.net_denied + c.state.egress_dropped +
                     c.state.exec_denied + refusals;
  if (config_.plan->audit.files) {  // how often each file was opened, before `exit`
    figures["file_opens"] = file_open_totals(c.state);
    try {
      for (KernelEvent& e : open_count_events(config_.bpf->file_opens(config_.cgroup_id)))
        events_.emit(e.type, e.pid, e.fields);
    } catch (const std::exception& e) {  // the daemon's: the totals stand, the exit says why
      figures["file_opens"]["open_counts_failed"] = e.what();
    }
  }
  figures["kernel_events"] = {
      {"records", c.state.records},         {"lost", c.state.lost},
      {"malformed", malformed_records_},    {"network_denials", c.state.net_denied},
      {"file_and_exec_refusals", refusals}, {"execs", c.state.execs}};
}

}  // namespace launcher
