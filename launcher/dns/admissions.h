// Name-bound egress: the addresses the enclosure's resolver answered, admitted into the eBPF
// egress maps for the ports and protocol of the host rules that allowed the name, until the
// answer's TTL plus a grace period has passed. Admission happens on the resolver's thread
// before the answer is sent (so the agent's first connect is already allowed); expiry is
// driven by the supervisor's tick. Connections established before expiry are not cut: the
// maps are consulted on connect and sendmsg, not per packet.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/kernel_layer.h"
#include "launcher/dns/resolver.h"
#include "policy/plan.h"

namespace launcher {

class DnsAdmissions {
 public:
  DnsAdmissions(bpf::KernelLayer& bpf, uint64_t cgroup_id, const policy::NetworkPlan& network,
                uint64_t grace_ns);

  // Called on the resolver's thread for every answered address.
  void admit(const DnsAdmission& admission);
  // Revokes every admission whose TTL + grace has passed; one
  // `dns` event (result "expired") per revoked address and protocol.
  std::vector<nlohmann::json> expire();
  // The names an address was ever admitted for in this run ("api.example.com"), or empty; a
  // deny event after expiry names them too.
  std::vector<std::string> names_of(const std::string& address) const;

 private:
  struct Entry {
    std::vector<policy::PortRange> ports;
    size_t rule_index = 0;
    uint64_t expires_ns = 0;
    std::set<std::string> names;
  };
  bpf::KernelLayer& bpf_;
  uint64_t cgroup_id_;
  const policy::NetworkPlan& network_;
  uint64_t grace_ns_;
  mutable std::mutex mutex_;
  std::map<std::pair<policy::Cidr, policy::Protocol>, Entry> entries_;
  std::map<std::string, std::set<std::string>> history_;  // address -> names
};

}  // namespace launcher
