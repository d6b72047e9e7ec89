// The enclosure's resolver: answers the enclosure's DNS queries (UDP and TCP) for names an
// egress `host` rule allows, by asking the upstream resolver, and REFUSED for every other name
// without forwarding it. Only the question goes upstream, rebuilt. Each answered address is
// handed to `admit` for the rule's ports and the answer's TTL, except loopback, private,
// link-local and other non-public addresses for rules without "private": true, which are removed
// from the answer (DNS rebinding). Fired composition rules that deny network or the host refuse.
// Runs on a thread of its own, so that a slow upstream never delays the supervisor; its events are
// queued for the supervisor, which is woken through an eventfd.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"
#include "launcher/dns/message.h"
#include "policy/plan.h"

namespace launcher {

struct DnsAdmission {
  policy::Cidr address;              // /32 or /128 (IPv4-mapped answers as IPv4)
  std::vector<size_t> rule_indices;  // egress host rules that allowed the name asked
  uint32_t ttl = 0;
  std::string name;  // the name asked
};

struct ResolverConfig {
  std::vector<policy::HostEgress> hosts;
  std::string
      upstream;  // "ADDR:PORT" or "[V6]:PORT"; empty: the first nameserver of /etc/resolv.conf
  int upstream_timeout_ms = 2000;
  bool answer_all = false;  // `enclosure learn`'s observation run: every name is answered
  // The manifest's composition rules (bit i = rules[i]) and how to ask which have fired; a
  // fired rule that denies "network" refuses every name, one that denies "host:P" the names
  // the egress rule for host P allowed. Unset: no rule has fired.
  std::vector<policy::Rule> rules;
  std::function<uint64_t()> rules_fired;
};

class DnsResolver {
 public:
  // Binds UDP and TCP on 127.0.0.1 and ::1 (ports chosen by the kernel). Throws LaunchError.
  DnsResolver(ResolverConfig config, std::function<void(const DnsAdmission&)> admit);
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  void start();
  uint16_t port4() const { return port4_; }
  uint16_t port6() const { return port6_; }
  std::string upstream() const { return upstream_text_; }
  // Readable when events are waiting; take_events() returns them (and resets it).
  int event_fd() const { return event_fd_.get(); }
  std::vector<nlohmann::json> take_events();

  // The egress host rules whose pattern matches the name with these labels.
  std::vector<size_t> matching_rules(const std::vector<std::string>& labels) const;

 private:
  void loop();
  void serve_udp(int fd);
  void serve_tcp(int listener);
  // The response bytes for one query (already checked, forwarded or refused).
  std::vector<uint8_t> answer(const uint8_t* query, size_t size, bool tcp);
  // Why the name is refused before forwarding ("" when it is not), with `rule` set to the id
  // of the fired composition rule that refuses it, if one does. Narrows `rules` to the egress
  // rules no fired composition rule denies.
  std::string refusal(const DnsQuestion& q, std::vector<size_t>& rules, std::string& rule);
  // The rules (indices) among `rules` that no fired composition rule denies; `denier` gets the
  // id of one that does.
  std::vector<size_t> not_denied(const std::vector<size_t>& rules, uint64_t fired,
                                 std::string& denier) const;
  // The upstream's reply with every address not admitted removed (`event` lists them), the
  // admitted ones handed to admit_. Empty on failure (the caller answers SERVFAIL).
  std::vector<uint8_t> admit_answer(const DnsQuestion& q, const std::vector<size_t>& rules,
                                    const std::vector<uint8_t>& reply, uint16_t upstream_id,
                                    nlohmann::json& event);
  // The upstream server's reply; throws LaunchError saying why there is none.
  std::vector<uint8_t> ask_upstream(const std::vector<uint8_t>& query, bool tcp);
  // Hands each answered address that may be admitted to admit_ (an address outside the public
  // ranges only for rules that say "private": true) and returns them for the event; the others
  // go to `removed` and `removed_json` (address and range).
  nlohmann::json admit_addresses(const DnsQuestion& q, const std::vector<size_t>& rules,
                                 const DnsAnswer& a, std::vector<policy::Cidr>& removed,
                                 nlohmann::json& removed_json);
  void push_event(nlohmann::json event);

  ResolverConfig config_;
  std::function<void(const DnsAdmission&)> admit_;
  UniqueFd udp4_, udp6_, tcp4_, tcp6_;
  uint16_t port4_ = 0, port6_ = 0;
  std::vector<uint8_t> upstream_addr_;  // a sockaddr_in or sockaddr_in6
  std::string upstream_text_;
  UniqueFd event_fd_;
  UniqueFd stop_fd_;
  std::mutex mutex_;
  std::vector<nlohmann::json> pending_;
  std::thread thread_;
  uint16_t next_id_ = 1;
};

}  // namespace launcher
