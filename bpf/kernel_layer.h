// What the supervisor needs of an enclosure's eBPF layer, wherever the programs live: loaded by
// the launcher itself (EnclosureBpf, as root) or owned by `enclosure daemon` and reached over its
// socket (launcher/daemon_client). Every call names the enclosure by its cgroup id.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/enclosure_abi.h"
#include "policy/plan.h"

namespace bpf {

// Kernel counters of one enclosure.
struct EnclosureCounters {
  enc_state state{};
  uint64_t syscalls_pending = 0;                    // in per-CPU batches, not yet in state.syscalls
  std::vector<std::pair<int, uint64_t>> histogram;  // syscall number, count (non-zero only)
  uint64_t syscalls() const { return state.syscalls + syscalls_pending; }
};

// audit.files: one key of the file_opens map (a file, or a failed open's path, and an access
// mode) and how often the enclosure opened it.
struct FileOpenCount {
  enc_open_key key{};
  enc_open_count count{};
};

class KernelLayer {
 public:
  virtual ~KernelLayer() = default;

  // An fd for epoll: readable when records are waiting.
  virtual int ring_fd() const = 0;
  // Hands every waiting record to `sink` (raw bytes; see event_decoder.h).
  virtual void drain(const std::function<void(const void* data, size_t size)>& sink) = 0;
  // Makes every record the kernel wrote so far readable through ring_fd (a daemon forwards
  // records; the programs' own ring buffer needs nothing).
  virtual void flush() {}

  virtual EnclosureCounters counters(uint64_t cgroup_id) const = 0;
  // The composition rules (bits) that have fired, for decisions on the hot path.
  virtual uint64_t rules_fired(uint64_t cgroup_id) const = 0;
  // Metered usage reported by the agent, so that the kernel's cost check sees the whole sum.
  virtual void set_reported_cost(uint64_t cgroup_id, uint64_t micro_usd) = 0;
  // Destroys every TCP socket of the enclosure once a composition rule that denies network has
  // fired (cgroup_skb/egress already drops its packets, and fails UDP sends with EPERM): the
  // agent's later calls on them fail instead of queueing data that never leaves. Returns the number
  // of sockets destroyed, or nullopt when this layer cannot reach the sockets (the daemon's: there
  // the packet drop alone cuts them).
  virtual std::optional<uint64_t> cut_sockets(uint64_t /*cgroup_id*/) { return std::nullopt; }
  // audit.files: every key the enclosure's opens were counted under (read before it is
  // forgotten); empty where this layer cannot read them. May throw (the daemon's, unreachable).
  virtual std::vector<FileOpenCount> file_opens(uint64_t /*cgroup_id*/) const { return {}; }

  // Admits one address (answered by the resolver) for `ports` of `protocol`, on top of what
  // the static CIDR rules already admit there; revoke() restores the static state.
  virtual void admit(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol,
                     const std::vector<policy::PortRange>& ports, size_t rule_index) = 0;
  virtual void revoke(uint64_t cgroup_id, const policy::Cidr& address,
                      policy::Protocol protocol) = 0;

  // Which program enforces what (for the start event and doctor).
  virtual nlohmann::json report() const = 0;
};

}  // namespace bpf
