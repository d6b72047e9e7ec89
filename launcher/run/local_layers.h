// The eBPF and cgroup layers built by this process (as root): the run's cgroup and the cleanup
// watchdog that removes it if the launcher is killed; the eBPF programs loaded (verified) for
// this run, configured for its cgroup and attached; the enclosure's resolver and the admission
// table it fills.
#pragma once

#include <memory>
#include <string>

#include "bpf/enclosure_bpf.h"
#include "launcher/run/layer_provider.h"

namespace launcher {

class LocalLayers : public LayerProvider {
 public:
  LocalLayers() = default;
  ~LocalLayers() override;
  LocalLayers(const LocalLayers&) = delete;
  LocalLayers& operator=(const LocalLayers&) = delete;

  HostFeatures host_features(bool needs_bpf) override;
  ProvidedLayers provide(const LayerRequest& request) override;
  int clone_into_cgroup_fd(const ProvidedLayers& layers) const override;
  void place(const ProvidedLayers& layers, const SpawnedInit& init) override;
  void release() override {}
  void remove_at_exit(const std::string& path) override;
  std::string description(const ProvidedLayers& layers) const override;

 private:
  void create_cgroup(const LayerRequest& request, ProvidedLayers& out);
  // Loads, configures and attaches the programs; an eBPF failure is out.bpf_failure when the
  // plan allows bpf degraded, else a LaunchError.
  void load_bpf(const LayerRequest& request, ProvidedLayers& out);
  // The enclosure's resolver (every port-53 destination of the enclosure is sent to it) and the
  // admission table that makes the addresses it answers reachable: their two ports.
  std::pair<uint16_t, uint16_t> create_resolver(const LayerRequest& request, uint64_t cgroup_id,
                                                ProvidedLayers& out);

  HostFeatures host_;
  // Destroyed last: removes the cgroup directories even when the launcher is killed.
  std::unique_ptr<CleanupWatchdog> watchdog_;
  std::unique_ptr<bpf::EnclosureBpf> programs_;
};

}  // namespace launcher
