// Egress by domain name: the enclosure's resolver answers only names an egress host rule
// allows (others get REFUSED and never reach the upstream), port-53 traffic to any address is
// redirected to it, answered addresses become reachable for the rule's ports until TTL + grace.
// The upstream is an authoritative responder started by the test on 127.0.0.1.
#include <stdbool.h>  // before ldns, whose common.h would otherwise #define bool

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "harness.h"

using harness::base_manifest;
using harness::LoopbackListener;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

// A tiny authoritative server for *.test.example on 127.0.0.1 (UDP and TCP), recording every
// name it was asked.
class TestZoneServer {
 public:
  struct Record {
    std::string type;  // "A", "AAAA", "CNAME"
    std::string data;
    uint32_t ttl;
  };

  TestZoneServer() {
    // The kernel picks a free UDP port; the same number may be taken for TCP (by another test's
    // socket), so pairs are tried until both bind.
    for (int attempt = 0; attempt < 50 && port_ == 0; ++attempt)
      port_ = bind_pair();
    thread_ = std::thread([this] { serve(); });
  }
  ~TestZoneServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(udp_);
    ::close(tcp_);
  }
  uint16_t port() const { return port_; }
  void add(const std::string& name, Record r) {
    std::lock_guard<std::mutex> lock(mutex_);
    zone_[name].push_back(std::move(r));
  }
  std::set<std::string> asked() {
    std::lock_guard<std::mutex> lock(mutex_);
    return asked_;
  }
  // Every message the server received, byte for byte.
  std::vector<std::vector<uint8_t>> received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  std::vector<uint8_t> respond(const uint8_t* data, size_t size) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_.emplace_back(data, data + size);
    }
    ldns_pkt* q = nullptr;
    if (ldns_wire2pkt(&q, data, size) != LDNS_STATUS_OK) return {};
    ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
    char* owner = ldns_rdf2str(ldns_rr_owner(question));
    std::string name(owner);
    std::free(owner);
    if (!name.empty() && name.back() == '.') name.pop_back();
    ldns_rr_type qtype = ldns_rr_get_type(question);
    ldns_pkt* r = ldns_pkt_clone(q);
    ldns_pkt_set_qr(r, true);
    ldns_pkt_set_aa(r, true);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      asked_.insert(name);
      // Follow CNAMEs inside the zone, adding every record on the way.
      std::string current = name;
      for (int hop = 0; hop < 8; ++hop) {
        auto it = zone_.find(current);
        if (it == zone_.end()) break;
        std::string next;
        for (const Record& rec : it->second) {
          bool wanted = rec.type == "CNAME" || (rec.type == "A" && qtype == LDNS_RR_TYPE_A) ||
                        (rec.type == "AAAA" && qtype == LDNS_RR_TYPE_AAAA);
          if (!wanted) continue;
          std::string text =
              current + ". " + std::to_string(rec.ttl) + " IN " + rec.type + " " + rec.data;
          ldns_rr* rr = nullptr;
          if (ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK) {
            ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
          }
          if (rec.type == "CNAME")
            next = rec.data.back() == '.' ? rec.data.substr(0, rec.data.size() - 1) : rec.data;
        }
        if (next.empty()) break;
        current = next;
      }
      if (ldns_pkt_ancount(r) == 0 && zone_.find(name) == zone_.end())
        ldns_pkt_set_rcode(r, LDNS_RCODE_NXDOMAIN);
    }
    uint8_t* wire = nullptr;
    size_t wire_size = 0;
    std::vector<uint8_t> out;
    if (ldns_pkt2wire(&wire, r, &wire_size) == LDNS_STATUS_OK) out.assign(wire, wire + wire_size);
    std::free(wire);
    ldns_pkt_free(r);
    ldns_pkt_free(q);
    return out;
  }

  // A UDP and a TCP socket on the same loopback port; the port, or 0 (and nothing bound) when
  // the TCP side of the UDP port the kernel picked is taken.
  uint16_t bind_pair() {
    if (udp_ >= 0) ::close(udp_);
    if (tcp_ >= 0) ::close(tcp_);
    udp_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    tcp_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(udp_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
    socklen_t len = sizeof a;
    ::getsockname(udp_, reinterpret_cast<sockaddr*>(&a), &len);
    int one = 1;
    ::setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(tcp_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(tcp_, 8) != 0)
      return 0;
    return ntohs(a.sin_port);
  }

  void serve() {
    while (!stop_) {
      struct pollfd p[2] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}};
      if (::poll(p, 2, 100) <= 0) continue;
      if (p[0].revents & POLLIN) {
        uint8_t buf[4096];
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(udp_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n > 0) {
          auto out = respond(buf, static_cast<size_t>(n));
          ::sendto(udp_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
      }
      if (p[1].revents & POLLIN) {
        int c = ::accept4(tcp_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        uint8_t prefix[2];
        if (::recv(c, prefix, 2, MSG_WAITALL) == 2) {
          size_t size = (size_t(prefix[0]) << 8) | prefix[1];
          std::vector<uint8_t> q(size);
          if (::recv(c, q.data(), size, MSG_WAITALL) == static_cast<ssize_t>(size)) {
            auto out = respond(q.data(), size);
            uint8_t op[2] = {uint8_t(out.size() >> 8), uint8_t(out.size() & 0xff)};
            (void)!::send(c, op, 2, 0);
            (void)!::send(c, out.data(), out.size(), 0);
          }
        }
        ::close(c);
      }
    }
  }

  int udp_ = -1, tcp_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, std::vector<Record>> zone_;
  std::set<std::string> asked_;
  std::vector<std::vector<uint8_t>> received_;
};

// The test zone answers loopback addresses (the only ones a test may use), which a host rule
// admits only with "private": true; `private_ok` false gives rules without it.
json dns_manifest(uint16_t port, bool private_ok = true) {
  json m = base_manifest("dns", {"/usr/bin/python3"});
  m["network"] = {{"mode", "filtered"},
                  {"dns", true},
                  {"egress",
                   {{{"host", "api.test.example"}, {"ports", {port}}},
                    {{"host", "alias.test.example"}, {"ports", {port}}},
                    {{"host", "*.wild.test.example"}, {"ports", {port}}}}}};
  if (private_ok) {
    for (json& rule : m["network"]["egress"])
      rule["private"] = true;
  }
  return m;
}

harness::RunOptions upstream(const TestZoneServer& zone, const std::string& grace = "10s") {
  harness::RunOptions o;
  o.extra_args = {"--dns-upstream", "127.0.0.1:" + std::to_string(zone.port()), "--dns-grace",
                  grace};
  return o;
}

// The agent's helpers for DNS: resolve through libc, raw queries over UDP/TCP to any address.
const char* kDnsPrelude =
    "import socket, struct, time\n"
    "def resolve(name):\n"
    "    return sorted({a[4][0] for a in socket.getaddrinfo(name, 0, socket.AF_INET, "
    "socket.SOCK_STREAM)})\n"
    "def query(name):\n"
    "    q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)\n"
    "    for label in name.split('.'): q += bytes([len(label)]) + label.encode()\n"
    "    return q + b'\\0' + struct.pack('>HH', 1, 1)\n"
    "def rcode_udp(server, name):\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
    "    s.sendto(query(name), (server, 53)); data, src = s.recvfrom(4096)\n"
    "    return [data[3] & 15, src[0], src[1]]\n"
    "def rcode_tcp(server, name):\n"
    "    s = socket.create_connection((server, 53), timeout=3); q = query(name)\n"
    "    s.sendall(struct.pack('>H', len(q)) + q); n = struct.unpack('>H', s.recv(2))[0]\n"
    "    return (s.recv(n)[3]) & 15\n"
    "def connect(addr, port):\n"
    "    socket.create_connection((addr, port), timeout=3).close()\n";

}  // namespace

TEST(Dns, AllowedNameResolvesAndItsAddressBecomesReachable) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  zone.add("api.test.example", {"A", "127.0.0.1", 300});
  std::string body = std::string(kDnsPrelude) +
                     "t('before', lambda: connect('127.0.0.1', int(A[0])))\n"
                     "t('resolve', lambda: resolve('api.test.example'))\n"
                     "t('after', lambda: connect('127.0.0.1', int(A[0])))\n"
                     "t('other_port', lambda: connect('127.0.0.1', int(A[0]) + 1))\n";
  RunResult r =
      run_enclosure(dir, dns_manifest(listener.port()),
                    harness::python_agent(body, {std::to_string(listener.port())}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], "EPERM") << r.describe();  // never answered: not admitted
  EXPECT_EQ(res["resolve"], json::array({"127.0.0.1"})) << r.describe();
  EXPECT_EQ(res["after"], "ok") << r.describe();
  EXPECT_EQ(res["other_port"], "EPERM") << r.describe();
  bool answered = false;
  for (const json& e : r.of_type("dns")) {
    answered = answered ||
               (e.value("name", "") == "api.test.example" && e.value("result", "") == "answered");
  }
  EXPECT_TRUE(answered) << r.describe();
  bool named = false;
  for (const json& e : r.of_type("connect"))
    named = named || e.value("name", "") == "api.test.example";
  EXPECT_TRUE(named) << "the connect event should carry the name the address was admitted for\n"
                     << r.describe();
  listener.collect();
  EXPECT_EQ(listener.connections(), 1u);
}

TEST(Dns, NameNoRuleAllowsIsRefusedAndNeverForwarded) {
  TempDir dir;
  TestZoneServer zone;
  zone.add("secret.test.example", {"A", "127.0.0.1", 300});
  std::string body = std::string(kDnsPrelude) +
                     "t('resolve', lambda: resolve('secret.test.example'))\n"
                     "t('rcode', lambda: rcode_udp('127.0.0.1', 'secret.test.example'))\n";
  RunResult r = run_enclosure(dir, dns_manifest(1), harness::python_agent(body), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_NE(res["resolve"], json::array({"127.0.0.1"})) << r.describe();
  EXPECT_EQ(res["rcode"][0], 5) << r.describe();  // REFUSED
  EXPECT_EQ(zone.asked().count("secret.test.example"), 0u)
      << "the upstream was asked a refused name";
  bool refused = false;
  for (const json& e : r.of_type("dns")) {
    refused = refused ||
              (e.value("name", "") == "secret.test.example" && e.value("result", "") == "refused");
  }
  EXPECT_TRUE(refused) << r.describe();
  // Refusals are not violations (libc also asks search-domain variants), but they are told.
  EXPECT_NE(r.err.find("refused (first: \"secret.test.example\")"), std::string::npos) << r.err;
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_GE((*exit)["budgets"].value("dns_refused", 0), 2) << exit->dump();
}

TEST(Dns, QueriesToAnyResolverAddressAreAnsweredByTheEnclosuresResolver) {
  TempDir dir;
  TestZoneServer zone;
  zone.add("api.test.example", {"A", "127.0.0.1", 300});
  // 127.0.0.53 has no resolver on this host: an answer can only come from the redirection,
  // and it must appear to come from the address asked.
  std::string body = std::string(kDnsPrelude) +
                     "t('udp', lambda: rcode_udp('127.0.0.53', 'api.test.example'))\n"
                     "t('tcp', lambda: rcode_tcp('127.0.0.53', 'api.test.example'))\n"
                     "t('tcp_refused', lambda: rcode_tcp('127.0.0.9', 'nope.example'))\n";
  RunResult r = run_enclosure(dir, dns_manifest(1), harness::python_agent(body), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["udp"], json::array({0, "127.0.0.53", 53})) << r.describe();
  EXPECT_EQ(res["tcp"], 0) << r.describe();
  EXPECT_EQ(res["tcp_refused"], 5) << r.describe();
}

TEST(Dns, CnameToANameNoRuleAllowsIsRefused) {
  TempDir dir;
  TestZoneServer zone;
  zone.add("alias.test.example", {"CNAME", "evil.other.example.", 300});
  zone.add("evil.other.example", {"A", "127.0.0.1", 300});
  std::string body = std::string(kDnsPrelude) +
                     "t('rcode', lambda: rcode_udp('127.0.0.1', 'alias.test.example'))\n"
                     "t('connect', lambda: connect('127.0.0.1', int(A[0])))\n";
  RunResult r =
      run_enclosure(dir, dns_manifest(4242), harness::python_agent(body, {"4242"}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["rcode"][0], 5) << r.describe();
  EXPECT_EQ(res["connect"], "EPERM") << r.describe();
}

TEST(Dns, AdmissionExpiresAfterTtlPlusGraceUntilResolvedAgain) {
  TempDir dir;
  TestZoneServer zone;
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  zone.add("api.test.example", {"A", "127.0.0.1", 1});
  std::string body = std::string(kDnsPrelude) +
                     "t('resolve', lambda: resolve('api.test.example'))\n"
                     "t('fresh', lambda: connect('127.0.0.1', int(A[0])))\n"
                     "time.sleep(2.5)\n"
                     "t('expired', lambda: connect('127.0.0.1', int(A[0])))\n"
                     "t('again', lambda: resolve('api.test.example'))\n"
                     "t('renewed', lambda: connect('127.0.0.1', int(A[0])))\n";
  RunResult r = run_enclosure(dir, dns_manifest(listener.port()),
                              harness::python_agent(body, {std::to_string(listener.port())}),
                              upstream(zone, "500ms"));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["fresh"], "ok") << r.describe();
  EXPECT_EQ(res["expired"], "EPERM") << r.describe();
  EXPECT_EQ(res["renewed"], "ok") << r.describe();
}

TEST(Dns, AaaaAnswersAdmitTheIpv6Address) {
  TempDir dir;
  TestZoneServer zone;
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "::1");
  ASSERT_TRUE(listener.ok());
  zone.add("api.test.example", {"AAAA", "::1", 300});
  std::string body =
      std::string(kDnsPrelude) +
      "t('before', lambda: socket.create_connection(('::1', int(A[0])), timeout=3).close())\n"
      "t('resolve', lambda: sorted({a[4][0] for a in socket.getaddrinfo('api.test.example', 0, "
      "socket.AF_INET6, socket.SOCK_STREAM)}))\n"
      "t('after', lambda: socket.create_connection(('::1', int(A[0])), timeout=3).close())\n";
  RunResult r =
      run_enclosure(dir, dns_manifest(listener.port()),
                    harness::python_agent(body, {std::to_string(listener.port())}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], "EPERM") << r.describe();
  EXPECT_EQ(res["resolve"], json::array({"::1"})) << r.describe();
  EXPECT_EQ(res["after"], "ok") << r.describe();
  bool aaaa = false;
  for (const json& e : r.of_type("dns"))
    aaaa = aaaa || e.value("query_type", "") == "AAAA";
  EXPECT_TRUE(aaaa) << r.describe();
}

TEST(Dns, DnsOverTlsToAnotherResolverIsDenied) {
  TempDir dir;
  TestZoneServer zone;
  // Port 853 is not 53: nothing redirects it, and no rule grants it (allowed, it would be
  // ECONNREFUSED: nothing listens there).
  std::string body = std::string(kDnsPrelude) + "t('dot', lambda: connect('127.0.0.1', 853))\n";
  RunResult r = run_enclosure(dir, dns_manifest(1), harness::python_agent(body), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["dot"], "EPERM") << r.describe();
  bool denied = false;
  for (const json& e : r.of_type("deny"))
    denied = denied || e.value("port", 0) == 853;
  EXPECT_TRUE(denied) << r.describe();
}

TEST(Dns, AComposedRuleDeniesAHostByNameOnceItFires) {
  TempDir dir;
  TestZoneServer zone;
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  zone.add("api.test.example", {"A", "127.0.0.1", 300});
  dir.write("pii/data.csv", "secret\n");
  json m = dns_manifest(listener.port());
  m["filesystem"]["read"].push_back(dir.path());
  m["rules"] = {{{"id", "no-api-after-pii"},
                 {"after", {{"read", {dir.file("pii")}}}},
                 {"deny", {"host:api.test.example"}}}};
  std::string body = std::string(kDnsPrelude) +
                     "t('resolve', lambda: resolve('api.test.example'))\n"
                     "t('before', lambda: connect('127.0.0.1', int(A[0])))\n"
                     "t('read', lambda: open(A[1] + '/pii/data.csv').read())\n"
                     "t('after', lambda: connect('127.0.0.1', int(A[0])))\n";
  RunResult r = run_enclosure(
      dir, m, harness::python_agent(body, {std::to_string(listener.port()), dir.path()}),
      upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], "ok") << r.describe();
  EXPECT_EQ(res["read"], "secret\n") << r.describe();
  EXPECT_EQ(res["after"], "EPERM") << r.describe();
  bool named = false;
  for (const json& e : r.of_type("deny")) {
    named = named || (e.value("rule", "") == "no-api-after-pii" &&
                      e.value("name", "") == "api.test.example");
  }
  EXPECT_TRUE(named) << "the deny event should name the rule and the host\n" << r.describe();
}

namespace {

// Raw queries built byte by byte, so that labels may hold any byte (a '.' included) and the
// additional section may carry what the test wants. ask() returns [rcode, answer count].
const char* kRawDnsPrelude = R"(
def wire_name(labels):
    return b''.join(bytes([len(l)]) + l for l in labels) + b'\0'
def raw_query(labels, qtype=1, extra=b'', arcount=0):
    h = struct.pack('>HHHHHH', 0x4321, 0x0100, 1, 0, 0, arcount)
    return h + wire_name(labels) + struct.pack('>HH', qtype, 1) + extra
def ask(msg, server='127.0.0.53'):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(msg, (server, 53)); data = s.recv(4096)
    return [data[3] & 15, struct.unpack('>H', data[6:8])[0]]
API = [b'api', b'test', b'example']
)";

std::string dns_agent_body(const std::string& body) {
  return std::string(kDnsPrelude) + kRawDnsPrelude + body;
}

// The zone's answers for api.test.example: loopback, private, link-local (metadata), and
// IPv6 forms that embed loopback.
void add_rebinding_answers(TestZoneServer& zone) {
  zone.add("api.test.example", {"A", "127.0.0.1", 300});
  zone.add("api.test.example", {"A", "10.0.0.5", 300});
  zone.add("api.test.example", {"A", "169.254.169.254", 300});
  zone.add("api.test.example", {"AAAA", "::ffff:127.0.0.1", 300});
  zone.add("api.test.example", {"AAAA", "64:ff9b::7f00:1", 300});
}

// The `range` the dns events gave each removed address.
std::map<std::string, std::string> removed_addresses(const RunResult& r) {
  std::map<std::string, std::string> out;
  for (const json& e : r.of_type("dns")) {
    if (!e.contains("removed")) continue;
    for (const json& x : e["removed"])
      out[x.value("address", "")] = x.value("range", "");
  }
  return out;
}

bool has_label_bytes(const std::vector<uint8_t>& message, const std::string& text) {
  return std::search(message.begin(), message.end(), text.begin(), text.end()) != message.end();
}

}  // namespace

TEST(Dns, RebindingAnswersAreRemovedUnlessTheRuleSaysPrivate) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  add_rebinding_answers(zone);
  std::string body = dns_agent_body(
      "t('a', lambda: ask(raw_query(API, 1)))\n"
      "t('aaaa', lambda: ask(raw_query(API, 28)))\n"
      "t('resolve', lambda: resolve('api.test.example'))\n"
      "t('connect', lambda: connect('127.0.0.1', int(A[0])))\n"
      "t('mapped', lambda: socket.create_connection(('::ffff:127.0.0.1', int(A[0])), "
      "timeout=3).close())\n");
  RunResult r =
      run_enclosure(dir, dns_manifest(listener.port(), /*private_ok=*/false),
                    harness::python_agent(body, {std::to_string(listener.port())}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["a"], json::array({0, 0})) << r.describe();     // NOERROR, every A removed
  EXPECT_EQ(res["aaaa"], json::array({0, 0})) << r.describe();  // and every AAAA
  EXPECT_FALSE(res["resolve"].is_array()) << r.describe();      // no address at all
  EXPECT_EQ(res["connect"], "EPERM") << r.describe();
  EXPECT_EQ(res["mapped"], "EPERM") << r.describe();
  std::map<std::string, std::string> removed = removed_addresses(r);
  EXPECT_EQ(removed["127.0.0.1"], "loopback") << r.describe();
  EXPECT_EQ(removed["10.0.0.5"], "private") << r.describe();
  EXPECT_EQ(removed["169.254.169.254"], "link-local") << r.describe();
  EXPECT_EQ(removed["::ffff:127.0.0.1"], "loopback") << r.describe();
  EXPECT_EQ(removed["64:ff9b::7f00:1"], "loopback") << r.describe();
  bool denied = false;
  for (const json& e : r.of_type("deny"))
    denied = denied || e.value("port", 0) == listener.port();
  EXPECT_TRUE(denied) << "the refused connect should have a deny event\n" << r.describe();
  listener.collect();
  EXPECT_EQ(listener.connections(), 0u);
}

TEST(Dns, PrivateTrueAdmitsLoopbackAnswers) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  add_rebinding_answers(zone);
  std::string body = dns_agent_body(
      "t('a', lambda: ask(raw_query(API, 1)))\n"
      "t('aaaa', lambda: ask(raw_query(API, 28)))\n"
      "t('connect', lambda: connect('127.0.0.1', int(A[0])))\n");
  RunResult r =
      run_enclosure(dir, dns_manifest(listener.port(), /*private_ok=*/true),
                    harness::python_agent(body, {std::to_string(listener.port())}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["a"], json::array({0, 3})) << r.describe();
  EXPECT_EQ(res["aaaa"], json::array({0, 2})) << r.describe();
  EXPECT_EQ(res["connect"], "ok") << r.describe();
  EXPECT_TRUE(removed_addresses(r).empty()) << r.describe();
  listener.collect();
  EXPECT_EQ(listener.connections(), 1u);
}

TEST(Dns, WildcardLabelTricksAreRefusedAndNeverForwarded) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  std::string body = dns_agent_body(
      // evil.x\.wild.test.example and evil\.wild.test.example end in ".wild.test.example" as
      // text; the apex wild.test.example is not under itself.
      "t('dot_inside', lambda: ask(raw_query([b'evil', b'x.wild', b'test', b'example'])))\n"
      "t('dot_joined', lambda: ask(raw_query([b'evil.wild', b'test', b'example'])))\n"
      "t('apex', lambda: ask(raw_query([b'wild', b'test', b'example'])))\n"
      "t('apex_case', lambda: ask(raw_query([b'WILD', b'Test', b'example'])))\n"
      "t('nul', lambda: ask(raw_query([b'a\\0b', b'wild', b'test', b'example'])))\n");
  RunResult r =
      run_enclosure(dir, dns_manifest(1, false), harness::python_agent(body), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* name : {"dot_inside", "dot_joined", "apex", "apex_case", "nul"})
    EXPECT_EQ(res[name], json::array({5, 0})) << name << "\n" << r.describe();  // REFUSED
  EXPECT_TRUE(zone.received().empty())
      << "the upstream was asked " << zone.received().size() << " queries";
  size_t refused = 0;
  for (const json& e : r.of_type("dns"))
    refused += e.value("result", "") == "refused";
  EXPECT_GE(refused, 5u) << r.describe();
}

TEST(Dns, MixedCaseNameUnderAWildcardIsForwarded) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  std::string body =
      dns_agent_body("t('mixed', lambda: ask(raw_query([b'A', b'WILD', b'Test', b'example'])))\n");
  RunResult r =
      run_enclosure(dir, dns_manifest(1, false), harness::python_agent(body), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["mixed"], json::array({3, 0})) << r.describe();  // the zone's NXDOMAIN
  EXPECT_EQ(zone.asked().count("A.WILD.Test.example"), 1u) << r.describe();
}

TEST(Dns, OnlyTheQuestionReachesTheUpstream) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  zone.add("api.test.example", {"A", "127.0.0.1", 300});
  // Additional section: a TXT record and an OPT record with an option (code 65001), both
  // carrying a payload the upstream must never see.
  std::string body = dns_agent_body(
      "txt = b'\\0' + struct.pack('>HHIH', 16, 1, 0, 14) + bytes([13]) + b'SECRETINTXT00'\n"
      "opt = b'\\0' + struct.pack('>HHIH', 41, 4096, 0, 17) + struct.pack('>HH', 65001, 13) + "
      "b'SECRETINOPT00'\n"
      "t('rcode', lambda: ask(raw_query(API, 1, txt + opt, 2)))\n");
  RunResult r =
      run_enclosure(dir, dns_manifest(1, true), harness::python_agent(body), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["rcode"], json::array({0, 1})) << r.describe();
  std::vector<std::vector<uint8_t>> received = zone.received();
  ASSERT_EQ(received.size(), 1u) << r.describe();
  const std::vector<uint8_t>& q = received[0];
  EXPECT_FALSE(has_label_bytes(q, "SECRET")) << "the agent's additional section went upstream";
  // Header, the question (api.test.example A IN), and the resolver's own OPT: root name,
  // type 41, UDP size 1232, no extended flags, no options.
  const std::vector<uint8_t> question = {3,   'a', 'p', 'i', 4,   't', 'e', 's', 't', 7, 'e',
                                         'x', 'a', 'm', 'p', 'l', 'e', 0,   0,   1,   0, 1};
  const std::vector<uint8_t> opt = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
  ASSERT_EQ(q.size(), 12 + question.size() + opt.size());
  EXPECT_EQ(std::vector<uint8_t>(q.begin() + 4, q.begin() + 12),
            std::vector<uint8_t>({0, 1, 0, 0, 0, 0, 0, 1}));  // qd 1, an 0, ns 0, ar 1
  EXPECT_EQ(std::vector<uint8_t>(q.begin() + 12, q.begin() + 12 + question.size()), question);
  EXPECT_EQ(std::vector<uint8_t>(q.end() - opt.size(), q.end()), opt);
  EXPECT_NE((q[0] << 8) | q[1], 0x4321) << "the upstream should see a fresh id";
}

TEST(Dns, AFiredRuleDenyingAHostRefusesItsNamesWithoutForwarding) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  zone.add("a.wild.test.example", {"A", "127.0.0.1", 300});
  zone.add("b.wild.test.example", {"A", "127.0.0.1", 300});
  dir.write("pii/data.csv", "secret\n");
  json m = dns_manifest(1, true);
  m["filesystem"]["read"].push_back(dir.path());
  m["rules"] = {{{"id", "no-wild-after-pii"},
                 {"after", {{"read", {dir.file("pii")}}}},
                 {"deny", {"host:*.wild.test.example"}}}};
  std::string body = dns_agent_body(
      "t('before', lambda: ask(raw_query([b'a', b'wild', b'test', b'example'])))\n"
      "t('read', lambda: open(A[0] + '/pii/data.csv').read())\n"
      "t('after', lambda: ask(raw_query([b'b', b'wild', b'test', b'example'])))\n"
      "t('other', lambda: ask(raw_query(API)))\n");
  RunResult r = run_enclosure(dir, m, harness::python_agent(body, {dir.path()}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], json::array({0, 1})) << r.describe();
  EXPECT_EQ(res["read"], "secret\n") << r.describe();
  EXPECT_EQ(res["after"], json::array({5, 0})) << r.describe();
  EXPECT_EQ(res["other"][0], 3) << r.describe();  // another rule's name: still forwarded
  EXPECT_EQ(zone.asked().count("a.wild.test.example"), 1u);
  EXPECT_EQ(zone.asked().count("b.wild.test.example"), 0u) << "a denied name was forwarded";
  bool named = false;
  for (const json& e : r.of_type("dns")) {
    named =
        named || (e.value("name", "") == "b.wild.test.example" &&
                  e.value("result", "") == "refused" && e.value("rule", "") == "no-wild-after-pii");
  }
  EXPECT_TRUE(named) << "the dns event should name the rule\n" << r.describe();
}

TEST(Dns, AfterARuleDenyingNetworkFiresNothingIsResolvedOrForwarded) {
  TempDir dir;
  TestZoneServer zone;
  ASSERT_NE(zone.port(), 0);
  zone.add("a.wild.test.example", {"A", "127.0.0.1", 300});
  zone.add("b.wild.test.example", {"A", "127.0.0.1", 300});
  dir.write("pii/data.csv", "secret\n");
  json m = dns_manifest(1, true);
  m["filesystem"]["read"].push_back(dir.path());
  m["rules"] = {
      {{"id", "quiet-after-pii"}, {"after", {{"read", {dir.file("pii")}}}}, {"deny", {"network"}}}};
  std::string body = dns_agent_body(
      "t('before', lambda: ask(raw_query([b'a', b'wild', b'test', b'example'])))\n"
      "t('read', lambda: open(A[0] + '/pii/data.csv').read())\n"
      "t('after', lambda: ask(raw_query([b'b', b'wild', b'test', b'example'])))\n");
  RunResult r = run_enclosure(dir, m, harness::python_agent(body, {dir.path()}), upstream(zone));
  json res = harness::python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], json::array({0, 1})) << r.describe();
  EXPECT_EQ(res["read"], "secret\n") << r.describe();
  // The kernel drops the query (EPERM) or the resolver refuses it: never an answer.
  EXPECT_TRUE(res["after"] == "EPERM" || res["after"] == json::array({5, 0})) << r.describe();
  EXPECT_EQ(zone.asked().count("b.wild.test.example"), 0u) << "resolved after network was denied";
}
