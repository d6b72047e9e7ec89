// The eBPF and cgroup layers of an unprivileged launcher's run, from `enclosure daemon`: the
// daemon creates the run's cgroup (with its limits), configures its eBPF maps and forwards its
// kernel records; this process moves the enclosure's first process in through the daemon and
// talks to the daemon as the supervisor's eBPF layer (DaemonClient).
#pragma once

#include <string>

#include "launcher/daemon/client.h"
#include "launcher/run/layer_provider.h"

namespace launcher {

class DnsAdmissions;

class DaemonLayers : public LayerProvider {
 public:
  // Connects and greets the daemon; LaunchError (exit 125) naming the socket when unreachable.
  explicit DaemonLayers(std::string socket_path);

  HostFeatures host_features(bool needs_bpf) override;
  ProvidedLayers provide(const LayerRequest& request) override;
  int clone_into_cgroup_fd(const ProvidedLayers& layers) const override;
  void place(const ProvidedLayers& layers, const SpawnedInit& init) override;
  void release() override;
  std::string description(const ProvidedLayers& layers) const override;

  const std::string& socket_path() const { return client_.socket_path(); }

 private:
  DaemonClient client_;
  // The run's admission table (owned by the ProvidedLayers), for the resolver's callback; set
  // before the resolver starts.
  DnsAdmissions* admissions_ = nullptr;

  CreateRequest create_request(const LayerRequest& request, const DnsResolver* resolver) const;
};

}  // namespace launcher
