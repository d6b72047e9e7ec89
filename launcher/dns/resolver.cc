#include "launcher/dns/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>

#include "launcher/base/error.h"
#include "launcher/base/file.h"
#include "launcher/dns/message.h"

namespace launcher {
namespace {

constexpr uint8_t kRcodeServfail = 2;
constexpr uint8_t kRcodeRefused = 5;
constexpr size_t kMaxMessage = 65535;

// Binds a socket on the loopback address of `family` at `port` (0: one the kernel picks).
// With `in_use`, a port already taken returns an empty fd and sets *in_use instead of throwing.
UniqueFd bind_socket(int family, int type, uint16_t& port, bool* in_use = nullptr) {
  UniqueFd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("dns: socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    len = sizeof *a;
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (in_use && errno == EADDRINUSE) {
      *in_use = true;
      return UniqueFd();
    }
    throw_errno(std::string("dns: bind the resolver on ") +
                (family == AF_INET ? "127.0.0.1" : "::1"));
  }
  if (type == SOCK_STREAM && ::listen(fd.get(), 64) != 0) throw_errno("dns: listen");
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    throw_errno("dns: getsockname");
  port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return fd;
}

// "1.2.3.4:53", "[::1]:53", "1.2.3.4" (port 53).
bool parse_upstream(const std::string& text, std::vector<uint8_t>& out) {
  std::string host = text, port = "53";
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return false;
      port = text.substr(close + 2);
    }
  } else if (size_t colon = text.rfind(':');
             colon != std::string::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  int p = std::atoi(port.c_str());
  if (p <= 0 || p > 65535) return false;
  sockaddr_in a4{};
  sockaddr_in6 a6{};
  if (inet_pton(AF_INET, host.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(static_cast<uint16_t>(p));
    out.assign(reinterpret_cast<uint8_t*>(&a4), reinterpret_cast<uint8_t*>(&a4) + sizeof a4);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<uint16_t>(p));
    out.assign(reinterpret_cast<uint8_t*>(&a6), reinterpret_cast<uint8_t*>(&a6) + sizeof a6);
    return true;
  }
  return false;
}

std::string first_nameserver() {
  std::optional<std::string> text;
  try {
    text = read_file_if_exists("/etc/resolv.conf");
  } catch (const LaunchError&) {
    // Unreadable: as if absent, the local resolver.
  }
  std::istringstream in(text.value_or(""));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key, value;
    if (f >> key >> value && key == "nameserver") return value;
  }
  return "127.0.0.1";
}

bool read_exact(int fd, uint8_t* buf, size_t n, int timeout_ms) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    ssize_t r = ::read(fd, buf + got, n - got);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

// An IPv4-mapped IPv6 answer is the IPv4 address.
policy::Cidr as_ipv4_if_mapped(const policy::Cidr& address) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!address.v6 || std::memcmp(address.addr.data(), kMapped, 12) != 0) return address;
  policy::Cidr v4;
  std::memcpy(v4.addr.data(), address.addr.data() + 12, 4);
  v4.prefix = 32;
  return v4;
}

}  // namespace

DnsResolver::DnsResolver(ResolverConfig config, std::function<void(const DnsAdmission&)> admit)
    : config_(std::move(config)), admit_(std::move(admit)) {
  // UDP and TCP share one port per family (the eBPF redirection has one port per family): the
  // kernel picks a free UDP port, which may be taken for TCP; then try another.
  auto bind_pair = [](int family, UniqueFd& udp, UniqueFd& tcp, uint16_t& port) {
    for (int attempt = 0; attempt < 64; ++attempt) {
      port = 0;
      udp = bind_socket(family, SOCK_DGRAM, port);
      bool in_use = false;
      tcp = bind_socket(family, SOCK_STREAM, port, &in_use);
      if (tcp) return;
    }
    throw LaunchError(std::string("dns: no port free for both UDP and TCP on ") +
                      (family == AF_INET ? "127.0.0.1" : "::1") + " after 64 attempts");
  };
  bind_pair(AF_INET, udp4_, tcp4_, port4_);
  bind_pair(AF_INET6, udp6_, tcp6_, port6_);
  upstream_text_ = config_.upstream.empty() ? first_nameserver() : config_.upstream;
  if (!parse_upstream(upstream_text_, upstream_addr_)) {
    throw LaunchError("dns: upstream resolver \"" + upstream_text_ + "\" is not ADDR[:PORT]");
  }
  event_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_fd_ || !stop_fd_) throw_errno("dns: eventfd");
  uint16_t seed = 0;
  if (::getrandom(&seed, sizeof seed, 0) == sizeof seed) next_id_ = seed;
}

DnsResolver::~DnsResolver() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);
    thread_.join();
  }
}

void DnsResolver::start() {
  thread_ = std::thread([this] { loop(); });
}

std::vector<nlohmann::json> DnsResolver::take_events() {
  uint64_t v;
  (void)!::read(event_fd_.get(), &v, sizeof v);
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<nlohmann::json> out;
  out.swap(pending_);
  return out;
}

void DnsResolver::push_event(nlohmann::json event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(event));
  }
  uint64_t one = 1;
  (void)!::write(event_fd_.get(), &one, sizeof one);
}

std::vector<size_t> DnsResolver::matching_rules(const std::vector<std::string>& labels) const {
  std::vector<size_t> out;
  for (const policy::HostEgress& h : config_.hosts) {
    if (policy::host_pattern_matches_labels(h.pattern, labels)) out.push_back(h.rule_index);
  }
  return out;
}

std::vector<size_t> DnsResolver::not_denied(const std::vector<size_t>& rules, uint64_t fired,
                                            std::string& denier) const {
  std::vector<size_t> out;
  for (size_t index : rules) {
    const policy::HostEgress* host = nullptr;
    for (const policy::HostEgress& h : config_.hosts) {
      if (h.rule_index == index) host = &h;
    }
    bool denied = false;
    for (size_t i = 0; host && i < config_.rules.size() && i < 64; ++i) {
      const policy::Rule& r = config_.rules[i];
      if (!(fired & (1ULL << i))) continue;
      if (std::find(r.deny.hosts.begin(), r.deny.hosts.end(), host->pattern) !=
          r.deny.hosts.end()) {
        denied = true;
        denier = r.id;
      }
    }
    if (!denied) out.push_back(index);
  }
  return out;
}

std::string DnsResolver::refusal(const DnsQuestion& q, std::vector<size_t>& rules,
                                 std::string& rule) {
  if (!policy::valid_host_labels(q.labels))
    return "not a host name (each label 1 to 63 letters, digits, '-' or '_')";
  uint64_t fired = config_.rules_fired ? config_.rules_fired() : 0;
  for (size_t i = 0; i < config_.rules.size() && i < 64; ++i) {
    if ((fired & (1ULL << i)) && config_.rules[i].deny.network) {
      rule = config_.rules[i].id;
      return "composition rule " + rule + " fired and denies network";
    }
  }
  rules = matching_rules(q.labels);
  if (rules.empty()) {
    if (config_.answer_all) return "";
    // Never forwarded: the name itself would carry data out through the upstream's logs.
    return "no egress host rule allows this name";
  }
  rules = not_denied(rules, fired, rule);
  if (rules.empty()) return "composition rule " + rule + " fired and denies this host";
  rule.clear();
  return "";
}

void DnsResolver::loop() {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  for (int fd : {udp4_.get(), udp6_.get(), tcp4_.get(), tcp6_.get(), stop_fd_.get()}) {
    struct epoll_event e {};
    e.events = EPOLLIN;
    e.data.fd = fd;
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &e);
  }
  struct epoll_event evs[8];
  while (true) {
    int n = ::epoll_wait(ep.get(), evs, 8, -1);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == stop_fd_.get()) return;
      if (fd == udp4_.get() || fd == udp6_.get()) serve_udp(fd);
      if (fd == tcp4_.get() || fd == tcp6_.get()) serve_tcp(fd);
    }
  }
}

void DnsResolver::serve_udp(int fd) {
  std::vector<uint8_t> buf(kMaxMessage);
  sockaddr_storage from{};
  socklen_t len = sizeof from;
  ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT,
                         reinterpret_cast<sockaddr*>(&from), &len);
  if (n <= 0) return;
  std::vector<uint8_t> reply = answer(buf.data(), static_cast<size_t>(n), false);
  if (!reply.empty())
    ::sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
}

void DnsResolver::serve_tcp(int listener) {
  UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) return;
  // One or more length-prefixed messages, until the client closes or goes quiet.
  while (true) {
    uint8_t prefix[2];
    if (!read_exact(conn.get(), prefix, 2, 2000)) return;
    size_t size = (static_cast<size_t>(prefix[0]) << 8) | prefix[1];
    std::vector<uint8_t> query(size);
    if (size == 0 || !read_exact(conn.get(), query.data(), size, 2000)) return;
    std::vector<uint8_t> reply = answer(query.data(), size, true);
    if (reply.empty()) return;
    uint8_t out_prefix[2] = {static_cast<uint8_t>(reply.size() >> 8),
                             static_cast<uint8_t>(reply.size() & 0xff)};
    if (!write_all(conn.get(), out_prefix, 2) || !write_all(conn.get(), reply.data(), reply.size()))
      return;
  }
}

std::vector<uint8_t> DnsResolver::ask_upstream(const std::vector<uint8_t>& query, bool tcp) {
  const auto* addr = reinterpret_cast<const sockaddr*>(upstream_addr_.data());
  UniqueFd fd(::socket(addr->sa_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  struct timeval tv {
    config_.upstream_timeout_ms / 1000, (config_.upstream_timeout_ms % 1000) * 1000
  };
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), addr, static_cast<socklen_t>(upstream_addr_.size())) != 0) {
    throw_errno("connect to " + upstream_text_);
  }
  std::vector<uint8_t> reply(kMaxMessage);
  if (tcp) {
    uint8_t prefix[2] = {static_cast<uint8_t>(query.size() >> 8),
                         static_cast<uint8_t>(query.size() & 0xff)};
    if (!write_all(fd.get(), prefix, 2) || !write_all(fd.get(), query.data(), query.size())) {
      throw LaunchError("send to " + upstream_text_ + " failed");
    }
    uint8_t in_prefix[2];
    if (!read_exact(fd.get(), in_prefix, 2, config_.upstream_timeout_ms)) {
      throw LaunchError("no answer from " + upstream_text_);
    }
    size_t size = (static_cast<size_t>(in_prefix[0]) << 8) | in_prefix[1];
    reply.resize(size);
    if (!read_exact(fd.get(), reply.data(), size, config_.upstream_timeout_ms)) {
      throw LaunchError("short answer from " + upstream_text_);
    }
    return reply;
  }
  if (::send(fd.get(), query.data(), query.size(), 0) != static_cast<ssize_t>(query.size())) {
    throw_errno("send to " + upstream_text_);
  }
  ssize_t n = ::recv(fd.get(), reply.data(), reply.size(), 0);
  if (n <= 0) {
    throw LaunchError("no answer from " + upstream_text_ +
                      (n < 0 ? std::string(": ") + std::strerror(errno) : ""));
  }
  reply.resize(static_cast<size_t>(n));
  return reply;
}

std::vector<uint8_t> DnsResolver::answer(const uint8_t* query, size_t size, bool tcp) {
  std::string error;
  std::optional<DnsQuestion> q = parse_dns_query(query, size, error);
  if (!q) {
    push_event({{"type", "dns"},
                {"result", "malformed"},
                {"error", error},
                {"transport", tcp ? "tcp" : "udp"}});
    return dns_error_response(query, size, kRcodeRefused);
  }
  nlohmann::json event = {{"type", "dns"},
                          {"name", q->name},
                          {"query_type", q->type_name},
                          {"transport", tcp ? "tcp" : "udp"}};
  std::vector<size_t> rules;
  std::string denying_rule;
  if (std::string why = refusal(*q, rules, denying_rule); !why.empty()) {
    event["result"] = "refused";
    event["reason"] = why;
    if (!denying_rule.empty()) event["rule"] = denying_rule;
    push_event(event);
    return dns_error_response(query, size, kRcodeRefused);
  }
  nlohmann::json rule_paths = nlohmann::json::array();
  for (size_t r : rules)
    rule_paths.push_back("/network/egress/" + std::to_string(r));
  event["rules"] = rule_paths;
  // Upstream sees only the question, rebuilt, with a fresh id; the client gets its own back.
  uint16_t upstream_id = next_id_++;
  std::vector<uint8_t> forwarded = dns_upstream_query(*q, upstream_id);
  std::vector<uint8_t> reply;
  try {
    if (forwarded.empty()) throw LaunchError("the question could not be rebuilt");
    reply = ask_upstream(forwarded, tcp);
  } catch (const LaunchError& e) {
    error = e.what();
  }
  if (!reply.empty()) reply = admit_answer(*q, rules, reply, upstream_id, event);
  if (reply.empty()) {
    event["result"] = event.value("result", "error");
    if (!event.contains("error")) event["error"] = error;
    push_event(event);
    return dns_error_response(query, size,
                              event["result"] == "refused" ? kRcodeRefused : kRcodeServfail);
  }
  push_event(event);
  return reply;
}

nlohmann::json DnsResolver::admit_addresses(const DnsQuestion& q, const std::vector<size_t>& rules,
                                            const DnsAnswer& a, std::vector<policy::Cidr>& removed,
                                            nlohmann::json& removed_json) {
  // Rebinding: an address outside the public ranges is admitted only for rules that say
  // "private": true; for the others it is removed from the answer.
  std::vector<size_t> private_rules;
  for (const policy::HostEgress& h : config_.hosts) {
    if (h.private_ok && std::find(rules.begin(), rules.end(), h.rule_index) != rules.end())
      private_rules.push_back(h.rule_index);
  }
  nlohmann::json answers = nlohmann::json::array();
  for (const DnsAddress& addr : a.addresses) {
    policy::AddressClass cls = policy::classify_address(addr.address);
    bool unchecked = config_.answer_all && rules.empty();  // learn: admits for no rule
    if (cls != policy::AddressClass::public_address && private_rules.empty() && !unchecked) {
      removed.push_back(addr.address);
      removed_json.push_back({{"address", addr.address.address_text()},
                              {"range", policy::to_string(cls)},
                              {"owner", addr.owner}});
      continue;
    }
    policy::Cidr admitted = as_ipv4_if_mapped(addr.address);
    bool public_address = cls == policy::AddressClass::public_address;
    admit_({admitted, public_address ? rules : private_rules, addr.ttl, q.name});
    answers.push_back(
        {{"address", admitted.address_text()}, {"ttl", addr.ttl}, {"owner", addr.owner}});
  }
  return answers;
}

std::vector<uint8_t> DnsResolver::admit_answer(const DnsQuestion& q,
                                               const std::vector<size_t>& rules,
                                               const std::vector<uint8_t>& reply,
                                               uint16_t upstream_id, nlohmann::json& event) {
  DnsQuestion asked = q;
  asked.id = upstream_id;
  uint64_t fired = config_.rules_fired ? config_.rules_fired() : 0;
  auto allowed = [this, fired](const DnsName& name) {
    std::string ignored;
    return config_.answer_all || !not_denied(matching_rules(name.labels), fired, ignored).empty();
  };
  std::string error;
  std::optional<DnsAnswer> a = read_dns_answer(reply.data(), reply.size(), asked, allowed, error);
  if (!a || a->id != upstream_id) {
    event["result"] = "error";
    event["error"] = a ? "answer id mismatch" : error;
    return {};
  }
  if (!a->refused_name.empty()) {
    event["result"] = "refused";
    event["reason"] = "CNAME to " + a->refused_name + ", which no egress host rule allows";
    event["cnames"] = a->chain;
    return {};
  }
  std::vector<policy::Cidr> removed;
  nlohmann::json removed_json = nlohmann::json::array();
  nlohmann::json answers = admit_addresses(q, rules, *a, removed, removed_json);
  event["result"] = "answered";
  event["rcode"] = a->rcode;
  event["answers"] = answers;
  if (!removed.empty()) {
    event["removed"] = removed_json;
    event["reason"] =
        "answers in loopback, private, link-local, unspecified, multicast or reserved ranges "
        "are removed: no egress rule for this name says \"private\": true";
  }
  if (a->chain.size() > 1)
    event["cnames"] = std::vector<std::string>(a->chain.begin() + 1, a->chain.end());
  if (removed.empty()) {
    std::vector<uint8_t> out = reply;
    set_dns_id(out, q.id);
    return out;
  }
  std::vector<uint8_t> out = dns_reply_without(reply.data(), reply.size(), removed, q.id);
  if (out.empty()) {
    event["result"] = "error";
    event["error"] = "the answer could not be rebuilt without the removed addresses";
  }
  return out;
}

}  // namespace launcher
