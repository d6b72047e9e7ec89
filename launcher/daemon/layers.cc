#include "launcher/daemon/layers.h"

#include "bpf/enclosure_bpf.h"
#include "launcher/base/error.h"
#include "launcher/daemon/protocol_conversion.h"

namespace launcher {

DaemonLayers::DaemonLayers(std::string socket_path) : client_(std::move(socket_path)) {}

HostFeatures DaemonLayers::host_features(bool) {
  // The eBPF and cgroup lines are the daemon's: this host's are not probed for them.
  HostFeatures host = probe_host(/*with_bpf=*/false, /*probe_tracing=*/false);
  apply_daemon_features(host, client_);
  return host;
}

CreateRequest DaemonLayers::create_request(const LayerRequest& request,
                                           const DnsResolver* resolver) const {
  const policy::EnforcementPlan& plan = *request.plan;
  CreateRequest create;
  create.plan = plan;
  if (request.use_bpf) {
    bpf::LayerNeeds needs = bpf::LayerNeeds::of(plan);
    if (request.observe) needs.behaviour = needs.sys_enter = needs.sys_exit = true;
    create.needs = to_protocol(needs);
  }
  create.files = to_protocol(bpf::resolve_files(plan, request.script_tools, request.interpreters));
  if (resolver) create.dns_ports = std::make_pair(resolver->port4(), resolver->port6());
  if (request.apply_cgroup_limits) {
    create.limits.pids_max = plan.budgets.processes;
    create.limits.memory_max = plan.budgets.memory_bytes;
  }
  create.grace_ns = request.grace_ns;
  return create;
}

ProvidedLayers DaemonLayers::provide(const LayerRequest& request) {
  if (request.ring_buffer_bytes) {
    throw LaunchError(
        "--ring-buffer: with a daemon the ring buffer is the daemon's (enclosure daemon "
        "--ring-buffer)");
  }
  const policy::EnforcementPlan& plan = *request.plan;
  ProvidedLayers layers;
  if (request.use_bpf && plan.network.dns && plan.network.mode == policy::NetworkMode::filtered) {
    ResolverConfig rc;
    rc.hosts = plan.network.hosts;
    rc.upstream = request.dns_upstream;
    rc.answer_all = request.observe;
    rc.rules = plan.rules;
    rc.rules_fired = [this] { return client_.rules_fired(client_.cgroup_id()); };
    // The admission table exists once the daemon said which cgroup the run has; the resolver
    // answers nothing before start().
    layers.resolver =
        std::make_unique<DnsResolver>(rc, [this](const DnsAdmission& a) { admissions_->admit(a); });
  }
  client_.create(create_request(request, layers.resolver.get()));
  DaemonClient* client = &client_;
  // The cgroup files are read through the directories the daemon sent: its paths are the
  // node's, which a launcher in a pod (another mount, another cgroup namespace) cannot open.
  layers.cgroup = std::make_unique<RunCgroup>(
      client_.cgroup(), /*owner=*/false, [client] { client->kill_all(); },
      client_.take_cgroup_fds());
  layers.cgroup_report = client_.cgroup_report();
  if (request.use_bpf) {
    layers.kernel = &client_;
    layers.bpf_report = client_.report();
    if (layers.resolver) {
      layers.admissions = std::make_unique<DnsAdmissions>(client_, client_.cgroup_id(),
                                                          plan.network, request.dns_grace_ns);
      admissions_ = layers.admissions.get();
      layers.resolver->start();
    }
  }
  return layers;
}

int DaemonLayers::clone_into_cgroup_fd(const ProvidedLayers&) const {
  // An unprivileged process may not clone into a cgroup outside its own delegated subtree: the
  // daemon moves the first process (place()).
  return -1;
}

void DaemonLayers::place(const ProvidedLayers&, const SpawnedInit& init) {
  client_.enter(init.pidfd.get());
}

void DaemonLayers::release() {
  client_.release();
}

std::string DaemonLayers::description(const ProvidedLayers& layers) const {
  return "cgroup" + std::string(layers.kernel ? " and eBPF programs" : "") +
         " from enclosure daemon at " + client_.socket_path();
}

}  // namespace launcher
