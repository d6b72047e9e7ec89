// What this host's kernel lets the launcher enforce, and why not where it does not: the
// source of `enclosure doctor` and of run's refusal to start without a required layer.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/run/cgroup.h"
#include "policy/plan.h"

namespace launcher {

struct Feature {
  bool available = false;
  std::string detail;  // what is there, or why it is not
};

struct HostFeatures {
  bool root = false;
  std::string kernel;
  int landlock_abi = 0;
  Feature landlock;
  Feature seccomp_notify;
  Feature user_namespaces;
  Feature namespaces;  // pid, mount, ipc, uts, cgroup, net (as root, or inside a user namespace)
  CgroupLayout cgroups;
  Feature cgroup_v2;  // a v2 directory we can create for the run
  Feature cgroup_pids;
  Feature cgroup_memory;
  Feature cgroup_cpu;
  Feature bpf;  // the enclosure's eBPF layer can be loaded and attached
  std::map<std::string, Feature> bpf_program_types;
  Feature bpf_lsm;
};

// `with_bpf` loads probe programs (tens of milliseconds): `doctor` always, `run` only when the
// plan needs the eBPF layer.
// `probe_tracing`: load and attach a small tp_btf program to prove tracing works here (doctor).
// `run` passes false: it loads the enclosure's own programs next, which proves the same, and
// parsing the kernel's BTF twice would double the launch time.
HostFeatures probe_host(bool with_bpf = true, bool probe_tracing = true);

// Whether `requirement` is met on this host; `why` says what is missing.
bool requirement_met(const HostFeatures& host, const policy::Requirement& requirement,
                     std::string& why);

nlohmann::json host_report(const HostFeatures& host);

}  // namespace launcher
