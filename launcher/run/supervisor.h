// The supervisor: one epoll loop outside the enclosure over the pidfd of its pid 1, the child
// channel, a signalfd (SIGINT, SIGTERM, SIGHUP forwarded; SIGWINCH), the agent's terminal relay,
// a timerfd for the wall clock, a periodic timerfd for cpu.stat, pids and memory, the OOM
// eventfd, the seccomp listener, the metering pipe (reported cost) and the event sinks'
// descriptors (collector acknowledgements, reconnection on a periodic tick).
// On a budget it sends SIGTERM to every process, waits the grace period, then kills the cgroup.
#pragma once

#include <signal.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "bpf/event_decoder.h"
#include "bpf/kernel_layer.h"
#include "launcher/base/fd.h"
#include "launcher/events/event.h"
#include "launcher/events/meter.h"
#include "launcher/run/cgroup.h"
#include "launcher/run/spawn.h"
#include "policy/baseline.h"
#include "policy/plan.h"
#include "policy/seccomp_verdict.h"

namespace launcher {

struct SupervisorConfig {
  const policy::EnforcementPlan* plan = nullptr;
  uint64_t grace_ns = 2'000'000'000ULL;
  uint64_t tick_ns = 100'000'000ULL;          // cpu, pids and memory sampling period
  nlohmann::json initial_command;             // path, argv, tool: for the exec event
  bpf::KernelLayer* bpf = nullptr;            // the eBPF layer, when loaded
  uint64_t cgroup_id = 0;                     // the enclosure's key in its maps
  int meter_fd = -1;                          // read end of the metering pipe (non-blocking), or -1
  bool audit_required = false;                // a sink that cannot deliver ends the run (exit 125)
  class DnsResolver* resolver = nullptr;      // the enclosure's resolver, when /network/dns
  class DnsAdmissions* admissions = nullptr;  // its admitted addresses
  class ControlSocket* control = nullptr;     // `enclosure ps` and `enclosure stop`, when open
  class AgentTerminal* terminal = nullptr;    // the agent's pseudo-terminal, relayed, when any
  nlohmann::json run_status;                  // what `status` answers besides the live figures
  bool observe = false;  // `enclosure learn`: a `window` event per window of counts
  std::optional<policy::BaselineProfile> baseline;  // /baseline: anomalies per window
};

struct RunOutcome {
  int exit_code = 125;
  std::string ended_by;  // exited, signaled, budget, violation, anomaly, audit_unavailable,
                         // setup_error, exec_error
  std::string budget;    // the budget that ended the run, if any
  std::string message;   // set-up or exec error text
  uint64_t denials = 0;
  std::string first_denial;       // "ptrace (/syscalls/deny/0)"
  uint64_t dns_refused = 0;       // names the enclosure's resolver refused (not violations: libc
  std::string first_dns_refused;  // also asks search-domain variants of allowed names)
  uint64_t duration_ns = 0;
  nlohmann::json figures;  // final budget figures for the exit event
};

class Supervisor {
 public:
  Supervisor(const SupervisorConfig& config, EventStream& events, RunCgroup* cgroup,
             SpawnedInit init, UniqueFd channel);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs until pid 1 of the enclosure has exited; returns how the run ended.
  RunOutcome run();

 private:
  void add(int fd, uint32_t events = 0x001 /* EPOLLIN */);
  // The event loop's handlers, one per descriptor.
  void dispatch(int fd, uint32_t events);
  void on_channel();
  void on_signal();
  void on_wall_clock();
  void on_tick();
  void on_listener(uint32_t events);
  void on_notification();
  void answer_gated_call(const struct SeccompNotice& notice,
                         const policy::NotifiedCallVerdict& verdict);
  void deny_call(const struct SeccompNotice& notice, const policy::NotifiedCallVerdict& verdict);
  void on_ring();
  void on_record(const void* data, size_t size);
  void emit_kernel_events(const bpf::DecodedRecord& record);
  void on_dns();
  void on_window();
  policy::BaselineWindow next_window();
  void emit_window(const policy::BaselineWindow& window, uint64_t window_ms);
  void check_window(const policy::BaselineWindow& window, uint64_t window_ms);
  void report_anomaly(const policy::Anomaly& anomaly, uint64_t window_ms);
  bool on_meter();  // true when it read something
  void on_meter_line(const MeterLineSplitter::Line& line);
  void on_sink_tick();
  void on_sink_readable(int fd);
  void on_control_client(int fd);
  nlohmann::json status();
  void check_audit_delivery();
  void check_kernel_counters();
  void report_unrecorded_budgets();
  // After pid 1 has exited.
  siginfo_t collect_after_exit();
  void settle_exit_code(int child_code, int child_status);  // waitid's si_code, si_status
  nlohmann::json final_figures(uint64_t duration_ns);
  void add_cgroup_figures(nlohmann::json& figures);
  void add_kernel_figures(nlohmann::json& figures);
  void terminate(const std::string& reason, const std::string& budget, const nlohmann::json& limit,
                 const nlohmann::json& value, bool emit_budget_event = true);
  void signal_enclosure(int signal);
  void record_denial(const std::string& what);
  // seccomp's EPERM to a file or exec call reaches the eBPF layer's sys_exit as a refusal too:
  // expected when the supervisor answers it, and its record then dropped (not a second deny).
  void expect_seccomp_echo(const struct SeccompNotice& notice);
  bool take_seccomp_echo(uint32_t nr, int64_t result);
  pid_t host_pid(pid_t ns_pid) const;
  uint64_t elapsed_ns() const;

  SupervisorConfig config_;
  EventStream& events_;
  RunCgroup* cgroup_;
  SpawnedInit init_;
  UniqueFd channel_;
  UniqueFd epoll_;
  UniqueFd signals_;
  UniqueFd wall_timer_;
  UniqueFd tick_timer_;
  UniqueFd grace_timer_;
  UniqueFd sink_timer_;
  UniqueFd window_timer_;
  std::map<std::string, uint64_t> window_totals_;  // counts at the end of the last window
  std::set<std::string> anomalies_reported_;
  uint64_t anomalies_ = 0;
  std::unique_ptr<class SeccompListener> listener_;
  uint64_t start_ns_ = 0;

  RunOutcome outcome_;
  bool terminating_ = false;
  bool init_exited_ = false;
  std::optional<int> agent_code_;
  std::optional<int> agent_signal_;
  std::optional<int> setup_code_;
  std::optional<int> exec_errno_;
  bool exec_ok_ = false;
  int interrupts_ = 0;
  uint64_t peak_processes_ = 0;
  uint64_t pids_hits_seen_ = 0;
  bool processes_reported_ = false;
  uint64_t lost_reported_ = 0;
  uint64_t seccomp_denials_ = 0;
  std::map<uint32_t, uint64_t> seccomp_echoes_expected_;  // by syscall number
  uint64_t seccomp_echoes_taken_ = 0;
  uint64_t malformed_records_ = 0;
  std::string encoded_fields_;   // on_record's open fields, reused
  uint64_t exceeded_seen_ = 0;   // budgets the kernel flagged, seen by the supervisor
  uint64_t budget_records_ = 0;  // budgets whose kernel record arrived

  // Reported usage (the metering pipe).
  bool meter_open_ = false;
  MeterLineSplitter meter_lines_;
  uint64_t reported_micro_usd_ = 0;
  uint64_t meter_reports_ = 0;
  uint64_t meter_rejected_ = 0;
};

}  // namespace launcher
