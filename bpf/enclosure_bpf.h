// Loader of the enclosure's eBPF layer (bpf/enclosure.bpf.c, embedded as a skeleton): loads the
// programs a set of enclosures needs, configures each enclosure through maps keyed by its cgroup
// id, attaches the cgroup programs to its cgroup and the tracing programs to the host, and
// drains the ring buffer. Every BPF object is owned here and released on destruction.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/enclosure_abi.h"
#include "policy/plan.h"

struct enclosure_bpf;
struct bpf_link;
struct ring_buffer;

namespace bpf {

class BpfError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Which programs to load and attach.
struct LayerNeeds {
  bool egress = false;        // network mode filtered: cgroup sock_addr, sock_create, skb egress
  bool egress_bytes = false;  // cgroup_skb/egress for budgets.egress_bytes alone
  bool exec = false;          // sched_process_exec: tool calls, exec events
  bool sys_enter = false;     // syscall budget, histogram, file-access log
  bool sys_exit = false;      // file-access log
  // Behaviour counters (successful opens, the syscall histogram) for a baseline, or for the
  // observation run of `enclosure learn`, which must measure exactly what a baseline checks.
  bool behaviour = false;
  size_t ring_bytes = 1 << 22;

  static LayerNeeds of(const policy::EnforcementPlan& plan);
  bool any() const { return egress || egress_bytes || exec || sys_enter || sys_exit; }
};

// Kernel counters of one enclosure.
struct EnclosureCounters {
  enc_state state{};
  uint64_t syscalls_pending = 0;                    // in per-CPU batches, not yet in state.syscalls
  std::vector<std::pair<int, uint64_t>> histogram;  // syscall number, count (non-zero only)
  uint64_t syscalls() const { return state.syscalls + syscalls_pending; }
};

class EnclosureBpf {
 public:
  // Opens and loads (verifies) the programs `needs` asks for. Throws BpfError with libbpf's
  // reason naming the program or map.
  explicit EnclosureBpf(const LayerNeeds& needs);
  ~EnclosureBpf();
  EnclosureBpf(const EnclosureBpf&) = delete;
  EnclosureBpf& operator=(const EnclosureBpf&) = delete;

  // Writes one enclosure's configuration, zeroed counters, egress tries and tool inodes.
  // `script_tools` are the indices of tools that are #! scripts (recognised by path);
  // `loaders` are the tools' ELF interpreters, which may not be run as programs.
  // `dns_ports` (IPv4 and IPv6 port of the enclosure's resolver on 127.0.0.1 and ::1), when
  // given, sends every port-53 destination there.
  void configure(uint64_t cgroup_id, const policy::EnforcementPlan& plan,
                 const std::vector<size_t>& script_tools, const std::vector<std::string>& loaders,
                 std::optional<std::pair<uint16_t, uint16_t>> dns_ports = std::nullopt);

  // Admits one address (answered by the resolver) for `ports` of `protocol`, on top of what
  // the static CIDR rules already admit there; revoke() restores the static state.
  void admit(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol,
             const std::vector<policy::PortRange>& ports, size_t rule_index);
  void revoke(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol);
  // Attaches the cgroup programs to the enclosure's cgroup (a v2 directory fd).
  void attach_cgroup(int cgroup_fd);
  // Attaches the tracing programs (host-wide; they filter by cgroup id first).
  void attach_tracing();
  // Removes an enclosure's entries from every map.
  void forget(uint64_t cgroup_id);

  // An fd for epoll: readable when records are waiting.
  int ring_fd() const;
  // Hands every waiting record to `sink` (raw bytes; see event_decoder.h).
  void drain(const std::function<void(const void* data, size_t size)>& sink);

  EnclosureCounters counters(uint64_t cgroup_id) const;
  // The composition rules (bits) that have fired: one map lookup, for decisions on the hot path.
  uint64_t rules_fired(uint64_t cgroup_id) const;
  // Metered usage reported by the agent, so that the kernel's cost check sees the whole sum.
  void set_reported_cost(uint64_t cgroup_id, uint64_t micro_usd);

  // Which program enforces what (for the start event and doctor).
  nlohmann::json report() const { return report_; }

 private:
  LayerNeeds needs_;
  enclosure_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
  ring_buffer* ring_ = nullptr;
  std::function<void(const void*, size_t)> sink_;
  nlohmann::json report_;
  int ncpus_ = 1;
  std::map<uint64_t, std::vector<policy::CidrEgress>> static_cidrs_;
  // Per enclosure, per egress rule: composition rules a connect there fires / that deny it.
  std::map<uint64_t, std::vector<uint64_t>> egress_triggers_;
  std::map<uint64_t, std::vector<uint64_t>> egress_denied_by_;

  void write_egress(uint64_t cgid, const policy::Cidr& cidr, policy::Protocol protocol,
                    std::vector<policy::PortRange> ports, size_t rule_index, bool merge_static);
};

}  // namespace bpf
