// enclosure doctor [-m FILE] [--daemon PATH] [--json]: which kernel layers this host can
// enforce for the current user, and why not.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/cli/commands.h"
#include "launcher/daemon/client.h"
#include "launcher/daemon/protocol.h"
#include "launcher/base/error.h"
#include "launcher/run/host_features.h"
#include "launcher/cli/manifest_file.h"
#include "policy/compile.h"

namespace po = boost::program_options;

namespace launcher {

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
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "enclosure doctor: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  std::string daemon_path = daemon_socket_for(daemon_option);
  HostFeatures host = probe_host(/*with_bpf=*/daemon_path.empty());
  Feature daemon_feature{true, "not needed (root builds every layer itself)"};
  if (!daemon_path.empty()) {
    try {
      DaemonClient daemon(daemon_path);
      apply_daemon_features(host, daemon);
      daemon_feature = {true, daemon_path};
    } catch (const LaunchError& e) {
      daemon_feature = {false, e.what()};
    }
  } else if (!host.root) {
    daemon_feature = {
        false, std::string("none (no --daemon, and ") + kDefaultDaemonSocket + " does not exist)"};
  }
  std::vector<policy::Requirement> requirements;
  if (!manifest.empty()) {
    policy::ContextValues values;
    std::string error;
    if (!collect_context(context, "", values, error)) {
      std::cerr << "enclosure doctor: " << error << "\n";
      return 2;
    }
    LoadedManifest loaded = load_manifest_file(manifest, values, {.allow_unresolved = false});
    if (!loaded.manifest) {
      for (const std::string& e : loaded.errors)
        std::cerr << e << "\n";
      return 2;
    }
    requirements = policy::compile(*loaded.manifest).plan->requirements;
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
  if (vm.count("json")) {
    nlohmann::json report = host_report(host);
    report["daemon"] = {{"available", daemon_feature.available}, {"detail", daemon_feature.detail}};
    report["unmet"] = unmet;
    std::cout << report.dump(2) << "\n";
    return unmet.empty() ? 0 : 1;
  }
  auto line = [](const std::string& name, const Feature& f) {
    std::cout << (f.available ? "  ok   " : "  --   ") << name << ": " << f.detail << "\n";
  };
  std::cout << "Host: " << host.kernel << (host.root ? ", running as root" : ", not root") << "\n";
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
  if (unmet.empty()) {
    std::cout << (manifest.empty() ? "Everything a typical manifest needs is available.\n"
                                   : "Everything " + manifest + " needs is available.\n");
    return 0;
  }
  std::cout << "Missing:\n";
  for (const auto& u : unmet) {
    std::cout << "  " << u["origin"].get<std::string>() << " needs "
              << u["feature"].get<std::string>() << ": " << u["why"].get<std::string>() << "\n";
  }
  return 1;
}

}  // namespace launcher
