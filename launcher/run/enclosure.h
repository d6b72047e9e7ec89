// run::Enclosure: one launch as a list of named phases. The caller loads and compiles the
// manifest and chooses where the eBPF and cgroup layers come from (a LayerProvider); the
// enclosure resolves the command's tool, decides what the plan needs from this host (policy/
// launch.h), has the provider make the layers, describes them in the start event, spawns the
// enclosure's pid 1, supervises it and reports the exit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"
#include "launcher/events/event.h"
#include "launcher/run/control_socket.h"
#include "launcher/run/enclosure_init.h"
#include "launcher/run/layer_provider.h"
#include "launcher/run/supervisor.h"
#include "launcher/run/terminal.h"
#include "policy/baseline.h"
#include "policy/launch.h"
#include "policy/manifest.h"
#include "policy/plan.h"

namespace launcher {

struct EnclosureOptions {
  std::vector<std::string> command;  // argv; command[0] names one of the manifest's tools
  std::vector<std::string> events;   // --events destinations: "-", a file, unix:PATH
  size_t collector_buffer_lines = 100000;
  // --event-rate / --event-burst; an observation run (`observe`) writes every event.
  EventRateLimit event_rate;
  bool audit_required = false;
  uint64_t grace_ns = 2'000'000'000ULL;
  size_t ring_buffer_bytes = 0;   // 0: the default size
  std::string dns_upstream;       // "" for the first nameserver of /etc/resolv.conf
  std::string dns_grace = "10s";  // as given, for the start event
  uint64_t dns_grace_ns = 10'000'000'000ULL;
  bool observe = false;  // `enclosure learn`'s observation run
  // A pseudo-terminal of its own for the agent, relayed to the launcher's standard input and
  // output (--tty; by default when standard input is a terminal).
  bool terminal = false;
  // The socket a refusal names when it suggests starting `enclosure daemon` (without root).
  std::string default_daemon_socket;
  std::optional<policy::BaselineProfile> baseline;
  // Called with every event of the run as it is emitted (learn's observation).
  std::function<void(const nlohmann::ordered_json& event)> on_event;
};

class Enclosure {
 public:
  // Resolves the command's tool and the mount steps its tools need. Throws LaunchError with
  // exit status 126 (not a tool, not executable) or 127 (not found).
  Enclosure(const policy::Manifest& manifest, policy::EnforcementPlan plan,
            EnclosureOptions options);
  ~Enclosure();
  Enclosure(const Enclosure&) = delete;
  Enclosure& operator=(const Enclosure&) = delete;

  // Runs the command with the layers `provider` makes until it exits; returns the exit status
  // (the agent's, 124 for a budget, ...). Throws LaunchError when the enclosure cannot start.
  int run(std::unique_ptr<LayerProvider> provider);

 private:
  void resolve_command();
  void decide_degraded_layers();
  void open_events();
  void provide_layers();
  void prepare_child();
  void open_control();
  void announce_start();
  SpawnedInit spawn();
  RunOutcome supervise(SpawnedInit init);
  void report_exit(const RunOutcome& outcome);
  void tear_down();
  void report_outcome(const RunOutcome& outcome) const;

  nlohmann::json start_fields() const;
  SupervisorConfig supervisor_config() const;

  const policy::Manifest& manifest_;
  policy::EnforcementPlan plan_;
  EnclosureOptions options_;
  const policy::ToolEntry* tool_ = nullptr;  // in plan_.tools
  policy::ToolMounts mounts_;
  nlohmann::json argv_json_;  // the command as the events name it

  // Declared before what they make: destroyed after it. The supervisor, first, holds only
  // descriptors; it lives until the whole run is torn down.
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<LayerProvider> provider_;
  HostFeatures host_;
  policy::DegradedDecision degraded_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::optional<EventStream> events_;
  ProvidedLayers layers_;
  std::unique_ptr<ControlSocket> control_;  // `enclosure ps` / `stop`; null when unavailable
  std::string control_error_;               // why it is unavailable (the start event says)
  std::string started_;                     // when the start event was written (RFC 3339)

  std::unique_ptr<AgentTerminal> terminal_;  // restores the launcher's terminal when destroyed
  ChildSpec spec_;
  UniqueFd channel_parent_, channel_child_;
  UniqueFd sync_read_, sync_write_;
  UniqueFd meter_read_, meter_write_;
};

}  // namespace launcher
