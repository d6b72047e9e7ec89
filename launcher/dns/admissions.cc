#include "launcher/dns/admissions.h"

#include <algorithm>

#include "launcher/base/clock.h"

namespace launcher {

DnsAdmissions::DnsAdmissions(bpf::KernelLayer& bpf, uint64_t cgroup_id,
                             const policy::NetworkPlan& network, uint64_t grace_ns)
    : bpf_(bpf), cgroup_id_(cgroup_id), network_(network), grace_ns_(grace_ns) {}

void DnsAdmissions::admit(const DnsAdmission& a) {
  // The ports each protocol gets: the union over every host rule that allowed the name.
  std::map<policy::Protocol, std::pair<std::vector<policy::PortRange>, size_t>> by_protocol;
  for (size_t index : a.rule_indices) {
    for (const policy::HostEgress& h : network_.hosts) {
      if (h.rule_index != index) continue;
      auto [it, fresh] =
          by_protocol.try_emplace(h.protocol, std::vector<policy::PortRange>{}, index);
      it->second.first.insert(it->second.first.end(), h.ports.begin(), h.ports.end());
    }
  }
  uint64_t now = monotonic_ns();
  uint64_t expires = now + static_cast<uint64_t>(a.ttl) * 1'000'000'000ULL + grace_ns_;
  std::lock_guard<std::mutex> lock(mutex_);
  // Named even when no host rule admits it (learn's observation run answers every name, and
  // a static CIDR rule admits the address): connect and deny events carry the name.
  history_[a.address.address_text()].insert(a.name);
  for (auto& [protocol, grant] : by_protocol) {
    Entry& e = entries_[{a.address, protocol}];
    bool live = e.expires_ns > now;
    std::vector<policy::PortRange> ports = grant.first;
    if (live) ports.insert(ports.end(), e.ports.begin(), e.ports.end());
    ports = policy::merge_port_ranges(ports);
    if (!live) {
      e.names.clear();
      e.rule_index = grant.second;
    }
    e.ports = ports;
    e.expires_ns = std::max(live ? e.expires_ns : 0, expires);
    e.names.insert(a.name);
    bpf_.admit(cgroup_id_, a.address, protocol, e.ports, e.rule_index);
  }
}

std::vector<nlohmann::json> DnsAdmissions::expire() {
  uint64_t now_ns = monotonic_ns();
  std::vector<nlohmann::json> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires_ns > now_ns) {
      ++it;
      continue;
    }
    const auto& [address, protocol] = it->first;
    bpf_.revoke(cgroup_id_, address, protocol);
    out.push_back({{"result", "expired"},
                   {"address", address.address_text()},
                   {"protocol", protocol == policy::Protocol::udp ? "udp" : "tcp"},
                   {"names", it->second.names},
                   {"rule", "/network/egress/" + std::to_string(it->second.rule_index)},
                   {"note", "TTL and grace passed: new connections need a fresh answer"}});
    it = entries_.erase(it);
  }
  return out;
}

std::vector<std::string> DnsAdmissions::names_of(const std::string& address) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = history_.find(address);
  if (it == history_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

}  // namespace launcher
