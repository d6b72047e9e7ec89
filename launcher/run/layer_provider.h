// Where an enclosure's eBPF and cgroup layers come from. Two implementations of one interface:
// LocalLayers (run/local_layers.h: this process loads the programs and creates the cgroups, as
// root) and DaemonLayers (daemon/layers.h: `enclosure daemon` does it for an unprivileged
// launcher). run::Enclosure (run/enclosure.h) asks the provider, never which one it has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/kernel_layer.h"
#include "launcher/dns/admissions.h"
#include "launcher/dns/resolver.h"
#include "launcher/run/cgroup.h"
#include "launcher/run/host_features.h"
#include "launcher/run/spawn.h"
#include "policy/plan.h"

namespace launcher {

// What the enclosure asks of the provider, decided before anything is created.
struct LayerRequest {
  const policy::EnforcementPlan* plan = nullptr;
  std::string run_id;
  bool use_bpf = false;                   // the plan needs eBPF and it is not allowed degraded away
  bool apply_cgroup_limits = false;       // pids/memory limits (cgroup not degraded)
  bool observe = false;                   // `enclosure learn`'s observation run
  size_t ring_buffer_bytes = 0;           // 0: the default size
  std::vector<size_t> script_tools;       // indices of the tools that are #! scripts
  std::vector<std::string> interpreters;  // the tools' ELF interpreters
  std::string dns_upstream;               // --dns-upstream ("" for /etc/resolv.conf's)
  uint64_t dns_grace_ns = 0;              // --dns-grace
  uint64_t grace_ns = 0;                  // --grace (a daemon's backstop adds it to the wall clock)
};

// What the provider made for the run. The provider owns the programs (or the daemon
// connection) that `kernel` points into, so it outlives the supervisor.
struct ProvidedLayers {
  std::unique_ptr<RunCgroup> cgroup;   // null when the host has no cgroup v2
  bpf::KernelLayer* kernel = nullptr;  // null when eBPF is not used, or failed (degraded)
  std::unique_ptr<DnsAdmissions> admissions;
  std::unique_ptr<DnsResolver> resolver;  // started; null without network.dns
  nlohmann::json cgroup_report;
  nlohmann::json bpf_report;
  // The eBPF layer failed to load and the manifest allows it degraded: why.
  std::optional<std::string> bpf_failure;
};

class LayerProvider {
 public:
  virtual ~LayerProvider() = default;

  // What this host can enforce, with the eBPF and cgroup lines from where they come.
  virtual HostFeatures host_features(bool needs_bpf) = 0;
  // Creates the run's cgroup and configures (and attaches) the eBPF layer for it. Throws
  // LaunchError naming the layer; an eBPF load failure is `bpf_failure` when the plan allows
  // bpf degraded, and a LaunchError otherwise.
  virtual ProvidedLayers provide(const LayerRequest& request) = 0;
  // The cgroup fd to clone the first process into (CLONE_INTO_CGROUP), or -1 when place()
  // moves it there after the clone.
  virtual int clone_into_cgroup_fd(const ProvidedLayers& layers) const = 0;
  // Moves the first process (stopped before its first step) into the run's other cgroups.
  virtual void place(const ProvidedLayers& layers, const SpawnedInit& init) = 0;
  // The run is over (its cgroup killed and empty): forget it.
  virtual void release() = 0;
  // A file of the run (its control socket) that must not outlive the launcher, SIGKILL
  // included; a provider without a process that outlives the launcher leaves it to `ps`.
  virtual void remove_at_exit(const std::string& /*path*/) {}
  // For the start event's process layer, e.g. "cgroup and eBPF programs from enclosure daemon
  // at /run/enclosure/daemon.sock"; "" when this process provides them.
  virtual std::string description(const ProvidedLayers& layers) const = 0;
};

}  // namespace launcher
