#include "launcher/run/host_features.h"

#include <bpf/libbpf.h>

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <optional>

#include <fstream>
#include <sstream>

#include "bpf/probe_loader.h"
#include "launcher/run/landlock.h"
#include "launcher/run/seccomp_filter.h"
#include "launcher/run/setup_probe.h"
#include "policy/launch.h"

namespace launcher {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

// libbpf prints its own diagnostics to stderr; probes are expected to fail on some hosts.
int quiet_libbpf(enum libbpf_print_level, const char*, va_list) {
  return 0;
}

}  // namespace

namespace {

// Landlock, seccomp user notification and namespaces (as root, or through user namespaces).
void probe_process_layers(HostFeatures& h) {
  h.landlock_abi = landlock_abi();
  h.landlock = {h.landlock_abi > 0, h.landlock_abi > 0 ? "abi " + std::to_string(h.landlock_abi)
                                                       : "landlock_create_ruleset failed (kernel "
                                                         "without Landlock, or it is not in lsm=)"};
  std::string why;
  h.seccomp_notify.available = seccomp_notify_supported(why);
  h.seccomp_notify.detail =
      h.seccomp_notify.available ? "seccomp filter with user notification" : why;

  std::string max_userns = slurp("/proc/sys/user/max_user_namespaces");
  std::string unpriv = slurp("/proc/sys/kernel/unprivileged_userns_clone");
  h.user_namespaces.available = !max_userns.empty() && max_userns != "0" && unpriv != "0";
  h.user_namespaces.detail =
      h.user_namespaces.available
          ? "max_user_namespaces=" + max_userns
          : "user namespaces disabled (max_user_namespaces=" + max_userns +
                (unpriv.empty() ? "" : ", unprivileged_userns_clone=" + unpriv) + ")";
  h.namespaces.available = h.root || h.user_namespaces.available;
  h.namespaces.detail = h.root ? "as root"
                               : (h.namespaces.available ? "inside a user namespace"
                                                         : "needs root or user namespaces");
}

// cgroup v2 (a directory for the run) and where the pids and memory limits can go.
void probe_cgroups(HostFeatures& h) {
  h.cgroups = discover_cgroups();
  if (!h.cgroups.v2_unreachable.empty()) {
    h.cgroup_v2 = {false, h.cgroups.v2_unreachable};
  } else if (h.cgroups.v2_mount.empty()) {
    h.cgroup_v2 = {false, "no cgroup2 file system is mounted"};
  } else if (cgroup_read_only(h.cgroups.v2_own_dir())) {
    h.cgroup_v2 = {false, "the cgroup file system at " + h.cgroups.v2_mount +
                              " is mounted read-only (a container runtime's default): give the "
                              "container a writable cgroup (podman: --security-opt "
                              "unmask=/sys/fs/cgroup; Kubernetes: the daemon shape)"};
  } else if (::access(h.cgroups.v2_own_dir().c_str(), W_OK) != 0) {
    h.cgroup_v2 = {false, "cannot create cgroups under " + h.cgroups.v2_own_dir() +
                              " (not root, and not delegated to this user)"};
  } else {
    h.cgroup_v2 = {
        true, "cgroup2 at " + h.cgroups.v2_mount + ", run cgroups under " + h.cgroups.v2_own_dir()};
  }
  CgroupPlacement place = place_limits(h.cgroups);
  auto controller = [&](const std::string& where, const char* name) -> Feature {
    if (!h.cgroup_v2.available) return {false, "no writable cgroup"};
    if (where.empty() && h.cgroups.v1_unreachable.count(name)) {
      return {false, h.cgroups.v1_unreachable.at(name)};
    }
    if (where == "v2") return {true, std::string("cgroup v2 ") + name + " controller"};
    if (where == "v1") {
      std::string dir = h.cgroups.v1_mount.at(name) + h.cgroups.v1_own.at(name);
      if (::access(dir.c_str(), W_OK) != 0)
        return {false, std::string("cgroup v1 ") + name + " at " + dir + " is not writable"};
      return {true,
              std::string("cgroup v1 ") + name + " controller at " + h.cgroups.v1_mount.at(name)};
    }
    return {false, std::string("no ") + name + " controller in cgroup v2 or v1"};
  };
  h.cgroup_pids = controller(place.pids, "pids");
  h.cgroup_memory = controller(place.memory, "memory");
  h.cgroup_cpu = h.cgroup_v2.available ? Feature{true, "cgroup v2 cpu.stat"}
                                       : Feature{false, "no writable cgroup"};
}

// BPF: program types, and whether a tracing program really loads and attaches here.
void probe_bpf(HostFeatures& h, bool probe_tracing) {
  libbpf_print_fn_t previous = libbpf_set_print(quiet_libbpf);
  const std::pair<const char*, bpf_prog_type> types[] = {
      {"tracepoint", BPF_PROG_TYPE_TRACEPOINT},
      {"raw_tracepoint", BPF_PROG_TYPE_RAW_TRACEPOINT},
      {"tracing (fentry, fexit)", BPF_PROG_TYPE_TRACING},
      {"cgroup_sock_addr", BPF_PROG_TYPE_CGROUP_SOCK_ADDR},
      {"cgroup_sock", BPF_PROG_TYPE_CGROUP_SOCK},
      {"cgroup_skb", BPF_PROG_TYPE_CGROUP_SKB},
      {"lsm", BPF_PROG_TYPE_LSM},
  };
  for (const auto& [name, type] : types) {
    int rc = h.root ? libbpf_probe_bpf_prog_type(type, nullptr) : -1;
    h.bpf_program_types[name] = {rc == 1,
                                 rc == 1 ? "loads" : (h.root ? "does not load" : "needs root")};
  }
  if (!h.root) {
    h.bpf = {false, "needs root"};
  } else {
    try {
      std::optional<bpf::GetppidProbe> probe;
      if (probe_tracing) probe.emplace(::getpid());
      bool cgroup_hooks = h.bpf_program_types["cgroup_sock_addr"].available &&
                          h.bpf_program_types["cgroup_sock"].available &&
                          h.bpf_program_types["cgroup_skb"].available;
      h.bpf = !cgroup_hooks ? Feature{false, "cgroup socket or skb programs do not load here"}
              : probe_tracing
                  ? Feature{true, "tp_btf tracing and cgroup socket/skb programs load and attach"}
                  : Feature{true,
                            "cgroup socket/skb program types load; tracing is proven by loading "
                            "the enclosure's programs"};
    } catch (const std::exception& e) {
      h.bpf = {false, std::string("tp_btf programs do not load or attach: ") + e.what()};
    }
  }
  std::string lsms = slurp("/sys/kernel/security/lsm");
  bool lsm_listed = ("," + lsms + ",").find(",bpf,") != std::string::npos;
  bool lsm_loads = h.bpf_program_types["lsm"].available;
  h.bpf_lsm = {lsm_listed && lsm_loads,
               !lsm_listed  ? "bpf is not in the active LSM list (" + lsms + ")"
               : !lsm_loads ? "BPF LSM programs do not load here (kernel lockdown?)"
                            : "BPF LSM programs load"};
  libbpf_set_print(previous);
}

}  // namespace

HostFeatures probe_host(bool with_bpf, bool probe_tracing) {
  HostFeatures h;
  h.root = ::geteuid() == 0;
  struct utsname u {};
  ::uname(&u);
  h.kernel = std::string(u.sysname) + " " + u.release;
  probe_process_layers(h);
  probe_cgroups(h);
  if (!with_bpf) {
    h.bpf = {false, "not probed"};
    return h;
  }
  probe_bpf(h, probe_tracing);
  return h;
}

bool requirement_met(const HostFeatures& h, const policy::Requirement& r, std::string& why) {
  const Feature* f = nullptr;
  if (r.layer == "seccomp") {
    f = &h.seccomp_notify;
  } else if (r.layer == "landlock") {
    if (r.feature.find("abi>=6") != std::string::npos && h.landlock_abi < 6) {
      why = h.landlock_abi == 0 ? h.landlock.detail
                                : "Landlock abi " + std::to_string(h.landlock_abi) + " < 6";
      return false;
    }
    f = &h.landlock;
  } else if (r.layer == "network") {
    f = &h.namespaces;
  } else if (r.layer == "cgroup") {
    f = r.feature.find("pids") != std::string::npos     ? &h.cgroup_pids
        : r.feature.find("memory") != std::string::npos ? &h.cgroup_memory
                                                        : &h.cgroup_cpu;
  } else if (r.layer == "bpf" && r.feature.starts_with(policy::kMemfdNoexecFeature) && h.root) {
    why = "set by this launcher (root) from inside the enclosure's pid namespace";
    return true;
  } else if (r.layer == "bpf") {
    f = &h.bpf;  // without root, from enclosure daemon alone
  }
  if (!f) {
    why = "unknown layer " + r.layer;
    return false;
  }
  why = f->detail;
  return f->available;
}

nlohmann::json host_report(const HostFeatures& h) {
  auto feature = [](const Feature& f) {
    return nlohmann::json{{"available", f.available}, {"detail", f.detail}};
  };
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [name, f] : h.bpf_program_types)
    types[name] = feature(f);
  return {{"root", h.root},
          {"kernel", h.kernel},
          {"namespaces", feature(h.namespaces)},
          {"user_namespaces", feature(h.user_namespaces)},
          {"landlock", feature(h.landlock)},
          {"landlock_abi", h.landlock_abi},
          {"seccomp_notify", feature(h.seccomp_notify)},
          {"cgroup_v2", feature(h.cgroup_v2)},
          {"cgroup_pids", feature(h.cgroup_pids)},
          {"cgroup_memory", feature(h.cgroup_memory)},
          {"cgroup_cpu", feature(h.cgroup_cpu)},
          {"bpf", feature(h.bpf)},
          {"bpf_program_types", types},
          {"bpf_lsm", feature(h.bpf_lsm)}};
}

}  // namespace launcher
