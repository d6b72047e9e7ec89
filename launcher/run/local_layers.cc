#include "launcher/run/local_layers.h"

#include "launcher/base/error.h"

namespace launcher {

LocalLayers::~LocalLayers() = default;

HostFeatures LocalLayers::host_features(bool needs_bpf) {
  host_ = probe_host(needs_bpf, /*probe_tracing=*/false);
  return host_;
}

ProvidedLayers LocalLayers::provide(const LayerRequest& request) {
  ProvidedLayers out;
  create_cgroup(request, out);
  if (request.use_bpf) load_bpf(request, out);
  return out;
}

void LocalLayers::create_cgroup(const LayerRequest& request, ProvidedLayers& out) {
  if (!host_.cgroup_v2.available) {
    out.cgroup_report = {{"none", host_.cgroup_v2.detail}};
    return;
  }
  const policy::EnforcementPlan& plan = *request.plan;
  CgroupLimits limits;
  if (request.apply_cgroup_limits) {
    limits.pids_max = plan.budgets.processes;
    limits.memory_max = plan.budgets.memory_bytes;
  }
  out.cgroup = std::make_unique<RunCgroup>(host_.cgroups, "enclosure-" + request.run_id, limits);
  watchdog_ = std::make_unique<CleanupWatchdog>(out.cgroup->directories());
  out.cgroup_report = out.cgroup->report();
}

std::pair<uint16_t, uint16_t> LocalLayers::create_resolver(const LayerRequest& request,
                                                           uint64_t cgroup_id,
                                                           ProvidedLayers& out) {
  const policy::EnforcementPlan& plan = *request.plan;
  out.admissions =
      std::make_unique<DnsAdmissions>(*programs_, cgroup_id, plan.network, request.dns_grace_ns);
  ResolverConfig config;
  config.hosts = plan.network.hosts;
  config.upstream = request.dns_upstream;
  config.answer_all = request.observe;
  config.rules = plan.rules;
  bpf::KernelLayer* kernel = programs_.get();
  config.rules_fired = [kernel, cgroup_id] { return kernel->rules_fired(cgroup_id); };
  DnsAdmissions* table = out.admissions.get();
  out.resolver =
      std::make_unique<DnsResolver>(config, [table](const DnsAdmission& a) { table->admit(a); });
  return {out.resolver->port4(), out.resolver->port6()};
}

void LocalLayers::load_bpf(const LayerRequest& request, ProvidedLayers& out) {
  if (!out.cgroup)
    throw LaunchError("bpf: the eBPF layer needs the run's cgroup: " + host_.cgroup_v2.detail);
  const policy::EnforcementPlan& plan = *request.plan;
  bpf::LayerNeeds needs = bpf::LayerNeeds::of(plan);
  if (request.ring_buffer_bytes) needs.ring_bytes = request.ring_buffer_bytes;
  if (request.observe) needs.behaviour = needs.sys_enter = needs.sys_exit = needs.file_log = true;
  try {
    bpf::EnclosureFiles files =
        bpf::resolve_files(plan, request.script_tools, request.interpreters);
    // Maps for this one run, not for a daemon's thousands (bpf::MapCapacity).
    programs_ =
        std::make_unique<bpf::EnclosureBpf>(needs, "", bpf::MapCapacity::for_one_run(plan, files));
    std::optional<std::pair<uint16_t, uint16_t>> dns_ports;
    if (plan.network.dns && plan.network.mode == policy::NetworkMode::filtered)
      dns_ports = create_resolver(request, out.cgroup->v2_id(), out);
    programs_->configure(out.cgroup->v2_id(), plan, needs, files, dns_ports);
    programs_->attach_cgroup(out.cgroup->v2_fd());
    programs_->attach_tracing();
  } catch (const bpf::BpfError& e) {
    if (!plan.enforcement.allows("bpf")) {
      throw LaunchError(std::string("refusing to start: the eBPF layer failed: ") + e.what() +
                        "\n  To run without it, the manifest must list \"bpf\" under "
                        "/enforcement/allow_degraded.");
    }
    // Allowed degraded: every section that needed the layer runs without it, and says so.
    out.resolver.reset();
    out.admissions.reset();
    programs_.reset();
    out.bpf_failure = e.what();
    return;
  }
  out.kernel = programs_.get();
  out.bpf_report = programs_->report();
  if (out.resolver) out.resolver->start();
}

int LocalLayers::clone_into_cgroup_fd(const ProvidedLayers& layers) const {
  return layers.cgroup ? layers.cgroup->v2_fd() : -1;
}

void LocalLayers::place(const ProvidedLayers& layers, const SpawnedInit& init) {
  // v2 membership came with CLONE_INTO_CGROUP; the v1 hierarchies (pids, memory) follow.
  if (layers.cgroup) layers.cgroup->enter_v1(init.pid);
}

std::string LocalLayers::description(const ProvidedLayers&) const {
  return "";
}

void LocalLayers::remove_at_exit(const std::string& path) {
  if (watchdog_) watchdog_->announce_file(path);
}

}  // namespace launcher
