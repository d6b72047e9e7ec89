// enclosure doctor [-m FILE] [--daemon PATH] [--json]: which kernel layers this host can
// enforce for the current user, and why not.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"
#include "launcher/daemon/client.h"
#include "launcher/daemon/protocol.h"
#include "launcher/run/host_features.h"
#include "launcher/run/setup_probe.h"
#include "policy/compile.h"

namespace po = boost::program_options;

namespace launcher {

namespace {

// What this host provides, with the eBPF and cgroup lines from `enclosure daemon` when there is
// one for this user (--daemon, or the default socket); `daemon` says which.
HostFeatures probe_with_daemon(const std::string& daemon_option, Feature& daemon) {
  std::string daemon_path = daemon_socket_for(daemon_option);
  HostFeatures host = probe_host(/*with_bpf=*/daemon_path.empty());
  daemon = {true, "not needed (root builds every layer itself)"};
  if (!daemon_path.empty()) {
    try {
      DaemonClient client(daemon_path);
      apply_daemon_features(host, client);
      daemon = {true, daemon_path};
    } catch (const LaunchError& e) {
      daemon = {false, e.what()};
    }
  } else if (!host.root) {
    daemon = {false,
              std::string("none (no --daemon, and ") + kDefaultDaemonSocket + " does not exist)"};
  }
  return host;
}

void print_text_report(const HostFeatures& host, const Feature& daemon_feature) {
  auto line = [](const std::string& name, const Feature& f) {
    std::cout << (f.available ? "  ok   " : "  --   ") << name << ": " << f.detail << "\n";
  };
  std::cout << "Host: " << host.kernel << (host.root ? ", running as root" : ", not root") << "\n";
  if (std::string seccomp = inherited_seccomp(); !seccomp.empty()) {
    std::cout << "  note " << seccomp << "\n";
  }
  line("namespaces (pid, mount, ipc, uts, cgroup, net)", host.namespaces);
  line("user namespaces", host.user_namespaces);
  line("landlock", host.landlock);
  line("seccomp user notification", host.seccomp_notify);
  line("cgroup v2 (membership, cgroup.kill, cpu.stat)", host.cgroup_v2);
  line("cgroup pids limit", host.cgroup_pids);
  line("cgroup memory limit", host.cgroup_memory);
  line("enclosure daemon (eBPF and cgroups for non-root)", daemon_feature);
  line("eBPF enforcement layer", host.bpf);
  for (const auto& [name, f] : host.bpf_program_types)
    line("bpf program type " + name, f);
  line("BPF LSM (optional extra layer)", host.bpf_lsm);
}

}  // namespace

int command_doctor(const Args& args) {
  po::options_description options(
      "Usage: enclosure doctor [options]\n\n"
      "Reports which enforcement layers this host provides (namespaces, Landlock ABI, seccomp\n"
      "user notification, cgroup v2 and controllers, BPF program types, BPF LSM) and why a layer\n"
      "is missing. Exit status: 0 when the layers a typical manifest needs (namespaces, Landlock,\n"
      "seccomp notification, a cgroup with pids and memory limits) are available, or, with -m,\n"
      "when everything that manifest requires is; 1 otherwise. For a user other than root, the\n"
      "eBPF and cgroup layers are what `enclosure daemon` provides (--daemon, or the default\n"
      "socket when it exists).\n\nOptions");
  std::string manifest;
  std::vector<std::string> context;
  std::string daemon_option;
  options.add_options()("help,h", "show this help")("manifest,m", po::value(&manifest),
                                                    "check what this manifest requires")(
      "context", po::value(&context)->composing(), "NAME=VALUE for the manifest's context")(
      "daemon", po::value(&daemon_option),
      "ask `enclosure daemon` at this socket for the eBPF and cgroup layers (as `run --daemon` "
      "does)")("json", "print the report as JSON");
  po::variables_map vm;
  if (std::optional<int> done =
          parse_options_only("doctor", args, options, vm, exit_code::kInvalid)) {
    return *done;
  }
  Feature daemon_feature;
  HostFeatures host = probe_with_daemon(daemon_option, daemon_feature);
  std::vector<policy::Requirement> requirements;
  if (!manifest.empty()) {
    ManifestSource source{.path = manifest, .context = context};
    requirements = compile_manifest_or_throw(source).plan.requirements;
  } else {
    requirements = {{"namespaces", "namespaces", "(typical manifest)"},
                    {"landlock", "landlock (filesystem access rights)", "(typical manifest)"},
                    {"seccomp", "seccomp filter with user notification", "(typical manifest)"},
                    {"cgroup", "cgroup pids controller", "(typical manifest)"},
                    {"cgroup", "cgroup memory controller", "(typical manifest)"}};
  }
  nlohmann::json unmet = nlohmann::json::array();
  for (policy::Requirement& r : requirements) {
    if (r.layer == "namespaces") r.layer = "network";
    std::string why;
    if (!requirement_met(host, r, why))
      unmet.push_back({{"origin", r.origin}, {"feature", r.feature}, {"why", why}});
  }
  // Every run's pid 1 does these steps, whatever the manifest: a container's defaults refuse
  // some of them, and only doing them shows which.
  for (const SetupRefusal& refusal : probe_setup(!host.root)) {
    if (refusal.step == "unshare") host.namespaces = {false, refusal.error + "; " + refusal.fix};
    unmet.push_back({{"origin", "(every run: the enclosure's set-up)"},
                     {"feature", refusal.step},
                     {"why", refusal.error + (refusal.fix.empty() ? "" : "; " + refusal.fix)}});
  }
  if (vm.count("json")) {
    nlohmann::json report = host_report(host);
    report["daemon"] = {{"available", daemon_feature.available}, {"detail", daemon_feature.detail}};
    report["unmet"] = unmet;
    std::cout << report.dump(2) << "\n";
    return unmet.empty() ? exit_code::kSuccess : exit_code::kFailure;
  }
  print_text_report(host, daemon_feature);
  if (unmet.empty()) {
    std::cout << (manifest.empty() ? "Everything a typical manifest needs is available.\n"
                                   : "Everything " + manifest + " needs is available.\n");
    return exit_code::kSuccess;
  }
  std::cout << "Missing:\n";
  for (const auto& u : unmet) {
    std::cout << "  " << u["origin"].get<std::string>() << " needs "
              << u["feature"].get<std::string>() << ": " << u["why"].get<std::string>() << "\n";
  }
  return exit_code::kFailure;
}

}  // namespace launcher
