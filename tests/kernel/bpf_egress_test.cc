// network.mode "filtered": the eBPF cgroup hooks (connect4/6, sendmsg4/6, sock_create,
// cgroup_skb/egress) decide every destination. Each test starts loopback listeners of its own
// that record what reaches them; an admitted destination is reached and logged as `connect`, a
// refused one fails with EPERM, is logged as `deny`, and reaches nothing.
// Only 127.0.0.0/8 and ::1 are ever contacted.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::LoopbackListener;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using Protocol = harness::LoopbackListener::Protocol;

namespace {

// Network helpers for the python agent (after harness::python_agent's prelude). Each returns
// what the call returned, or raises OSError with the errno.
const char* const kNetHelpers = R"(import socket, struct, time
S = socket
PAYLOAD = b"enclosure-egress"
def tcp_connect(host, port, family=S.AF_INET, proto=0):
    s = S.socket(family, S.SOCK_STREAM, proto)
    try:
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(PAYLOAD)
    finally:
        s.close()
def udp_sendto(host, port, family=S.AF_INET):
    s = S.socket(family, S.SOCK_DGRAM)
    try:
        return s.sendto(PAYLOAD, (host, port))
    finally:
        s.close()
def udp_sendmsg(host, port, family=S.AF_INET):
    s = S.socket(family, S.SOCK_DGRAM)
    try:
        return s.sendmsg([PAYLOAD], [], 0, (host, port))
    finally:
        s.close()
def udp_connect_send(host, port):
    s = S.socket(S.AF_INET, S.SOCK_DGRAM)
    try:
        s.connect((host, port))
        return s.send(PAYLOAD)
    finally:
        s.close()
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
def udp_sendmmsg(host, port):
    addr = ctypes.create_string_buffer(struct.pack("=H", S.AF_INET) + struct.pack("!H", port) +
                                       S.inet_aton(host) + bytes(8), 16)
    data = ctypes.create_string_buffer(PAYLOAD, len(PAYLOAD))
    iov = iovec(ctypes.cast(data, ctypes.c_void_p), len(PAYLOAD))
    msgs = (mmsghdr * 2)()
    for m in msgs:
        m.hdr.name = ctypes.cast(addr, ctypes.c_void_p)
        m.hdr.namelen = 16
        m.hdr.iov = ctypes.pointer(iov)
        m.hdr.iovlen = 1
    s = S.socket(S.AF_INET, S.SOCK_DGRAM)
    try:
        ctypes.set_errno(0)
        n = libc.sendmmsg(s.fileno(), msgs, 2, 0)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return n
    finally:
        s.close()
def tcp_fastopen(host, port):
    s = S.socket(S.AF_INET, S.SOCK_STREAM)
    try:
        return s.sendto(PAYLOAD, 0x20000000, (host, port))
    finally:
        s.close()
)";

std::vector<std::string> agent(const std::string& body, const std::vector<std::string>& args = {}) {
  return python_agent(std::string(kNetHelpers) + body, args);
}

// A python3 agent in network mode "filtered" with these egress rules.
nlohmann::json filtered_manifest(const std::string& name,
                                 const std::vector<nlohmann::json>& egress) {
  auto m = base_manifest(name, {"/usr/bin/python3"});
  m["network"] = {{"mode", "filtered"}, {"egress", nlohmann::json(egress)}};
  return m;
}

nlohmann::json rule(const std::string& cidr, const std::vector<nlohmann::json>& ports,
                    const std::string& protocol = "tcp") {
  return {{"cidr", cidr}, {"ports", nlohmann::json(ports)}, {"protocol", protocol}};
}

std::string dest(const std::string& address, int port) {
  return address.find(':') != std::string::npos ? "[" + address + "]:" + std::to_string(port)
                                                : address + ":" + std::to_string(port);
}

// `deny` events of the network section for one destination ("127.0.0.1:80", "[::1]:80").
std::vector<nlohmann::json> network_denials(const RunResult& r, const std::string& destination) {
  std::vector<nlohmann::json> out;
  for (const auto& e : r.of_type("deny")) {
    if (e.value("section", "") == "network" && e.value("destination", "") == destination) {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<nlohmann::json> connects(const RunResult& r, const std::string& destination) {
  std::vector<nlohmann::json> out;
  for (const auto& e : r.of_type("connect")) {
    if (e.value("destination", "") == destination) out.push_back(e);
  }
  return out;
}

// Exactly one network `deny` for `destination`, from `hook`, refused with EPERM.
void expect_one_denial(const RunResult& r, const std::string& destination, const std::string& hook,
                       const std::string& protocol) {
  auto d = network_denials(r, destination);
  ASSERT_EQ(d.size(), 1u) << "deny events for " << destination << "\n" << r.describe();
  EXPECT_EQ(d[0].value("hook", ""), hook) << d[0].dump();
  EXPECT_EQ(d[0].value("action", ""), "EPERM") << d[0].dump();
  if (!protocol.empty()) EXPECT_EQ(d[0].value("protocol", ""), protocol) << d[0].dump();
  EXPECT_TRUE(d[0].contains("reason")) << d[0].dump();
  EXPECT_EQ(d[0].value("origin", "").rfind("/network/egress", 0), 0u) << d[0].dump();
}

// A denial of a socket itself (no destination): the sock_create hook, or seccomp's argument
// filter on socket(2).
bool is_socket_refusal(const nlohmann::json& e) {
  if (e.value("type", "") != "deny") return false;
  if (e.value("section", "") == "network") return e.value("hook", "") == "sock_create";
  return e.value("section", "") == "syscalls" && e.value("syscall", "") == "socket";
}

std::unique_ptr<LoopbackListener> listen_on(Protocol protocol, const std::string& address,
                                            uint16_t port = 0) {
  auto l = std::make_unique<LoopbackListener>(protocol, address, port);
  EXPECT_TRUE(l->ok()) << "cannot listen on " << address << ":" << port;
  return l;
}

// Two TCP listeners on one port at two addresses: a port the kernel picks for the first that is
// also free at the second.
std::pair<std::unique_ptr<LoopbackListener>, std::unique_ptr<LoopbackListener>> same_port(
    const std::string& first, const std::string& second) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto a = std::make_unique<LoopbackListener>(Protocol::tcp, first);
    if (!a->ok()) continue;
    auto b = std::make_unique<LoopbackListener>(Protocol::tcp, second, a->port());
    if (b->ok()) return {std::move(a), std::move(b)};
  }
  ADD_FAILURE() << "no port free at both " << first << " and " << second;
  return {std::make_unique<LoopbackListener>(Protocol::tcp, first),
          std::make_unique<LoopbackListener>(Protocol::tcp, second)};
}

}  // namespace

TEST(BpfEgress, AllowedTcpDestinationIsReachedAndLoggedAsConnect) {
  TempDir dir;
  auto allowed = listen_on(Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok());
  int p = allowed->port();
  auto m = filtered_manifest("egress-allowed", {rule("127.0.0.1/32", {p})});
  auto r = run_enclosure(dir, m,
                         agent(R"(
t("connect", lambda: tcp_connect("127.0.0.1", int(A[0])))
)",
                               {std::to_string(p)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["connect"], "ok") << r.describe();
  auto c = connects(r, dest("127.0.0.1", p));
  ASSERT_EQ(c.size(), 1u) << r.describe();
  EXPECT_EQ(c[0]["hook"], "connect4");
  EXPECT_EQ(c[0]["protocol"], "tcp");
  EXPECT_EQ(c[0]["address"], "127.0.0.1");
  EXPECT_EQ(c[0]["port"], p);
  EXPECT_EQ(c[0]["rule"], "/network/egress/0");
  EXPECT_TRUE(r.of_type("deny").empty()) << r.describe();
  allowed->collect();
  EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
  EXPECT_EQ(allowed->bytes(), 16u) << allowed->describe();  // len("enclosure-egress")
}

TEST(BpfEgress, TcpToAnotherPortOrAnotherLoopbackAddressIsEpermAndReachesNothing) {
  TempDir dir;
  // The same port on another loopback address: the rule is for 127.0.0.1/32 only.
  auto [allowed, other_address] = same_port("127.0.0.1", "127.0.0.2");
  auto other_port = listen_on(Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok() && other_address->ok() && other_port->ok());
  int p = allowed->port();
  int q = other_port->port();
  auto m = filtered_manifest("egress-tcp-denied", {rule("127.0.0.1/32", {p})});
  auto r = run_enclosure(dir, m,
                         agent(R"(
t("other_port", lambda: tcp_connect("127.0.0.1", int(A[1])))
t("other_address", lambda: tcp_connect("127.0.0.2", int(A[0])))
t("allowed", lambda: tcp_connect("127.0.0.1", int(A[0])))
)",
                               {std::to_string(p), std::to_string(q)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["other_port"], "EPERM") << r.describe();
  EXPECT_EQ(res["other_address"], "EPERM") << r.describe();
  EXPECT_EQ(res["allowed"], "ok") << r.describe();
  expect_one_denial(r, dest("127.0.0.1", q), "connect4", "tcp");
  expect_one_denial(r, dest("127.0.0.2", p), "connect4", "tcp");
  // A rule covers 127.0.0.1 but not this port; no rule covers 127.0.0.2 at all.
  auto port_denial = network_denials(r, dest("127.0.0.1", q));
  if (!port_denial.empty()) EXPECT_EQ(port_denial[0].value("rule", ""), "/network/egress/0");
  auto address_denial = network_denials(r, dest("127.0.0.2", p));
  if (!address_denial.empty()) EXPECT_FALSE(address_denial[0].contains("rule"));
  EXPECT_EQ(connects(r, dest("127.0.0.1", p)).size(), 1u) << r.describe();
  other_port->collect();
  other_address->collect();
  allowed->collect();
  EXPECT_EQ(other_port->connections(), 0u) << other_port->describe();
  EXPECT_EQ(other_address->connections(), 0u) << other_address->describe();
  EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
  auto exit = r.events.back();
  EXPECT_EQ(exit["budgets"]["kernel_events"]["network_denials"], 2) << exit.dump();
}

TEST(BpfEgress, TcpFastOpenToADeniedPortIsEpermAndReachesNothing) {
  TempDir dir;
  auto allowed = listen_on(Protocol::tcp, "127.0.0.1");
  auto denied = listen_on(Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok() && denied->ok());
  int p = allowed->port();
  int q = denied->port();
  auto m = filtered_manifest("egress-tfo", {rule("127.0.0.1/32", {p})});
  // sendto(MSG_FASTOPEN) on an unconnected TCP socket connects and sends in one call.
  auto r = run_enclosure(dir, m,
                         agent(R"(
t("fastopen_denied", lambda: tcp_fastopen("127.0.0.1", int(A[1])))
t("fastopen_allowed", lambda: tcp_fastopen("127.0.0.1", int(A[0])))
)",
                               {std::to_string(p), std::to_string(q)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["fastopen_denied"], "EPERM") << r.describe();
  EXPECT_NE(res["fastopen_allowed"], "EPERM") << r.describe();
  expect_one_denial(r, dest("127.0.0.1", q), "connect4", "tcp");
  EXPECT_EQ(connects(r, dest("127.0.0.1", p)).size(), 1u) << r.describe();
  denied->collect();
  EXPECT_EQ(denied->connections(), 0u) << denied->describe();
  EXPECT_EQ(denied->bytes(), 0u) << denied->describe();
  allowed->collect();
  EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
}

TEST(BpfEgress, MptcpToADeniedPortIsEpermAndReachesNothing) {
  TempDir dir;
  auto allowed = listen_on(Protocol::tcp, "127.0.0.1");
  auto denied = listen_on(Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok() && denied->ok());
  int p = allowed->port();
  int q = denied->port();
  auto m = filtered_manifest("egress-mptcp", {rule("127.0.0.1/32", {p})});
  auto r = run_enclosure(dir, m,
                         agent(R"(
def mptcp_socket():
    S.socket(S.AF_INET, S.SOCK_STREAM, 262).close()
t("socket", mptcp_socket)
t("mptcp_denied", lambda: tcp_connect("127.0.0.1", int(A[1]), proto=262))
t("mptcp_allowed", lambda: tcp_connect("127.0.0.1", int(A[0]), proto=262))
)",
                               {std::to_string(p), std::to_string(q)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  // The kernel of the machines this project runs on has MPTCP (net.mptcp.enabled=1): the socket
  // is created (sock_create admits MPTCP as TCP); a kernel without it would refuse the socket
  // itself with EPROTONOSUPPORT or EINVAL, which would also keep the listener unreached.
  if (res["socket"] == "EPROTONOSUPPORT" || res["socket"] == "EINVAL") {
    EXPECT_EQ(res["mptcp_denied"], res["socket"]) << r.describe();
  } else {
    EXPECT_EQ(res["socket"], "ok") << r.describe();
    EXPECT_EQ(res["mptcp_denied"], "EPERM") << r.describe();
    EXPECT_EQ(res["mptcp_allowed"], "ok") << r.describe();
    expect_one_denial(r, dest("127.0.0.1", q), "connect4", "");
    EXPECT_EQ(connects(r, dest("127.0.0.1", p)).size(), 1u) << r.describe();
    allowed->collect();
    EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
  }
  denied->collect();
  EXPECT_EQ(denied->connections(), 0u) << denied->describe();
}

TEST(BpfEgress, Ipv4MappedIpv6DestinationIsMatchedAsIpv4) {
  TempDir dir;
  auto allowed = listen_on(Protocol::tcp, "127.0.0.1");
  auto denied = listen_on(Protocol::tcp, "127.0.0.1");
  auto denied_udp = listen_on(Protocol::udp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok() && denied->ok() && denied_udp->ok());
  int p = allowed->port();
  int q = denied->port();
  int u = denied_udp->port();
  auto m = filtered_manifest("egress-mapped", {rule("127.0.0.1/32", {p})});
  auto r = run_enclosure(dir, m,
                         agent(R"(
t("mapped_denied", lambda: tcp_connect("::ffff:127.0.0.1", int(A[1]), family=S.AF_INET6))
t("mapped_udp_denied", lambda: udp_sendto("::ffff:127.0.0.1", int(A[2]), family=S.AF_INET6))
t("mapped_allowed", lambda: tcp_connect("::ffff:127.0.0.1", int(A[0]), family=S.AF_INET6))
)",
                               {std::to_string(p), std::to_string(q), std::to_string(u)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["mapped_denied"], "EPERM") << r.describe();
  EXPECT_EQ(res["mapped_udp_denied"], "EPERM") << r.describe();
  EXPECT_EQ(res["mapped_allowed"], "ok") << r.describe();
  expect_one_denial(r, dest("::ffff:127.0.0.1", q), "connect6", "tcp");
  // udpv6_sendmsg hands a v4-mapped destination to udp_sendmsg: the kernel runs the IPv4 hook,
  // which sees (and logs) 127.0.0.1. Either way there is exactly one refusal.
  auto udp6 = network_denials(r, dest("::ffff:127.0.0.1", u));
  auto udp4 = network_denials(r, dest("127.0.0.1", u));
  EXPECT_EQ(udp6.size() + udp4.size(), 1u) << r.describe();
  if (!udp4.empty()) EXPECT_EQ(udp4[0]["hook"], "sendmsg4") << udp4[0].dump();
  if (!udp6.empty()) EXPECT_EQ(udp6[0]["hook"], "sendmsg6") << udp6[0].dump();
  // The rule for 127.0.0.1/32 names the port: the refusal is for the port, under that rule.
  auto d = network_denials(r, dest("::ffff:127.0.0.1", q));
  if (!d.empty()) EXPECT_EQ(d[0].value("rule", ""), "/network/egress/0") << d[0].dump();
  auto c = connects(r, dest("::ffff:127.0.0.1", p));
  ASSERT_EQ(c.size(), 1u) << r.describe();
  EXPECT_EQ(c[0]["hook"], "connect6");
  EXPECT_EQ(c[0]["rule"], "/network/egress/0");
  denied->collect();
  denied_udp->collect();
  allowed->collect();
  EXPECT_EQ(denied->connections(), 0u) << denied->describe();
  EXPECT_EQ(denied_udp->datagrams(), 0u) << denied_udp->describe();
  EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
}

TEST(BpfEgress, UdpSendtoSendmsgSendmmsgAndConnectToDeniedAddressesAreEperm) {
  TempDir dir;
  auto allowed = listen_on(Protocol::udp, "127.0.0.1");
  auto by_sendto = listen_on(Protocol::udp, "127.0.0.1");
  auto by_sendmsg = listen_on(Protocol::udp, "127.0.0.1");
  auto by_sendmmsg = listen_on(Protocol::udp, "127.0.0.1");
  auto by_connect = listen_on(Protocol::udp, "127.0.0.1");
  auto by_sendto6 = listen_on(Protocol::udp, "::1");
  for (auto* l : {allowed.get(), by_sendto.get(), by_sendmsg.get(), by_sendmmsg.get(),
                  by_connect.get(), by_sendto6.get()}) {
    ASSERT_TRUE(l->ok());
  }
  int a = allowed->port();
  int b = by_sendto->port();
  // A TCP rule for by_sendto's port: UDP to it is still refused (the protocol is part of the
  // rule).
  auto m = filtered_manifest("egress-udp",
                             {rule("127.0.0.1/32", {a}, "udp"), rule("127.0.0.1/32", {b}, "tcp")});
  auto r =
      run_enclosure(dir, m,
                    agent(R"(
t("allowed", lambda: udp_sendto("127.0.0.1", int(A[0])))
t("sendto", lambda: udp_sendto("127.0.0.1", int(A[1])))
t("sendmsg", lambda: udp_sendmsg("127.0.0.1", int(A[2])))
t("sendmmsg", lambda: udp_sendmmsg("127.0.0.1", int(A[3])))
t("connect", lambda: udp_connect_send("127.0.0.1", int(A[4])))
t("sendto6", lambda: udp_sendto("::1", int(A[5]), family=S.AF_INET6))
)",
                          {std::to_string(a), std::to_string(b), std::to_string(by_sendmsg->port()),
                           std::to_string(by_sendmmsg->port()), std::to_string(by_connect->port()),
                           std::to_string(by_sendto6->port())}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["allowed"], 16) << r.describe();
  EXPECT_EQ(res["sendto"], "EPERM") << r.describe();
  EXPECT_EQ(res["sendmsg"], "EPERM") << r.describe();
  EXPECT_EQ(res["sendmmsg"], "EPERM") << r.describe();
  EXPECT_EQ(res["connect"], "EPERM") << r.describe();
  EXPECT_EQ(res["sendto6"], "EPERM") << r.describe();
  expect_one_denial(r, dest("127.0.0.1", b), "sendmsg4", "udp");
  expect_one_denial(r, dest("127.0.0.1", by_sendmsg->port()), "sendmsg4", "udp");
  expect_one_denial(r, dest("127.0.0.1", by_sendmmsg->port()), "sendmsg4", "udp");
  expect_one_denial(r, dest("127.0.0.1", by_connect->port()), "connect4", "udp");
  expect_one_denial(r, dest("::1", by_sendto6->port()), "sendmsg6", "udp");
  EXPECT_TRUE(network_denials(r, dest("127.0.0.1", a)).empty()) << r.describe();
  allowed->collect();
  EXPECT_EQ(allowed->datagrams(), 1u) << allowed->describe();
  for (auto* l :
       {by_sendto.get(), by_sendmsg.get(), by_sendmmsg.get(), by_connect.get(), by_sendto6.get()}) {
    l->collect();
    EXPECT_EQ(l->datagrams(), 0u) << l->describe();
  }
}

TEST(BpfEgress, Ipv6RuleAdmitsLoopbackOnItsPortOnly) {
  TempDir dir;
  // The same port on IPv4 loopback: a v6 rule does not admit it.
  auto [allowed, v4_same_port] = same_port("::1", "127.0.0.1");
  auto denied = listen_on(Protocol::tcp, "::1");
  auto allowed_udp = listen_on(Protocol::udp, "::1");
  ASSERT_TRUE(allowed->ok() && v4_same_port->ok() && denied->ok() && allowed_udp->ok());
  int p = allowed->port();
  int q = denied->port();
  int u = allowed_udp->port();
  auto m = filtered_manifest("egress-v6", {rule("::1/128", {p}), rule("::1/128", {u}, "udp")});
  auto r = run_enclosure(dir, m,
                         agent(R"(
t("v6_allowed", lambda: tcp_connect("::1", int(A[0]), family=S.AF_INET6))
t("v6_other_port", lambda: tcp_connect("::1", int(A[1]), family=S.AF_INET6))
t("v6_udp_allowed", lambda: udp_sendto("::1", int(A[2]), family=S.AF_INET6))
t("v4_same_port", lambda: tcp_connect("127.0.0.1", int(A[0])))
)",
                               {std::to_string(p), std::to_string(q), std::to_string(u)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["v6_allowed"], "ok") << r.describe();
  EXPECT_EQ(res["v6_other_port"], "EPERM") << r.describe();
  EXPECT_EQ(res["v6_udp_allowed"], 16) << r.describe();
  EXPECT_EQ(res["v4_same_port"], "EPERM") << r.describe();
  auto c = connects(r, dest("::1", p));
  ASSERT_EQ(c.size(), 1u) << r.describe();
  EXPECT_EQ(c[0]["hook"], "connect6");
  EXPECT_EQ(c[0]["address"], "::1");
  EXPECT_EQ(c[0]["rule"], "/network/egress/0");
  expect_one_denial(r, dest("::1", q), "connect6", "tcp");
  expect_one_denial(r, dest("127.0.0.1", p), "connect4", "tcp");
  allowed->collect();
  denied->collect();
  allowed_udp->collect();
  v4_same_port->collect();
  EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
  EXPECT_EQ(allowed->bytes(), 16u) << allowed->describe();
  EXPECT_EQ(allowed_udp->datagrams(), 1u) << allowed_udp->describe();
  EXPECT_EQ(denied->connections(), 0u) << denied->describe();
  EXPECT_EQ(v4_same_port->connections(), 0u) << v4_same_port->describe();
}

TEST(BpfEgress, RawSocketsAreEpermAndLogged) {
  TempDir dir;
  auto target = listen_on(Protocol::udp, "127.0.0.1");
  ASSERT_TRUE(target->ok());
  auto m = filtered_manifest("egress-raw", {rule("127.0.0.1/32", {target->port()}, "udp")});
  // If a raw socket were created, it would send a hand-made UDP datagram to the listener.
  auto r = run_enclosure(dir, m,
                         agent(R"(
def raw(family, proto):
    s = S.socket(family, S.SOCK_RAW, proto)
    try:
        port = int(A[0])
        s.sendto(struct.pack("!HHHH", 40000, port, 8 + len(PAYLOAD), 0) + PAYLOAD, ("127.0.0.1", port))
    finally:
        s.close()
t("raw_udp", lambda: raw(S.AF_INET, 17))
t("raw_icmp", lambda: raw(S.AF_INET, 1))
t("raw_ip", lambda: raw(S.AF_INET, 255))
t("raw6_icmpv6", lambda: raw(S.AF_INET6, 58))
)",
                               {std::to_string(target->port())}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  for (const char* k : {"raw_udp", "raw_icmp", "raw_ip", "raw6_icmpv6"}) {
    EXPECT_EQ(res[k], "EPERM") << k << "\n" << r.describe();
  }
  size_t refusals = 0;
  for (const auto& e : r.events)
    refusals += is_socket_refusal(e);
  EXPECT_EQ(refusals, 4u) << "one deny event per raw socket\n" << r.describe();
  target->collect();
  EXPECT_EQ(target->datagrams(), 0u) << target->describe();
}

TEST(BpfEgress, IcmpPingSocketsAreEpermAndLogged) {
  TempDir dir;
  auto m = filtered_manifest("egress-ping", {rule("127.0.0.1/32", {80})});
  // If a ping socket were created, it would send an echo request to loopback.
  auto r = run_enclosure(dir, m, agent(R"(
def ping(family, proto, host):
    s = S.socket(family, S.SOCK_DGRAM, proto)
    try:
        s.sendto(struct.pack("!BBHHH", 8 if family == S.AF_INET else 128, 0, 0, 1, 1) + PAYLOAD, (host, 0))
    finally:
        s.close()
t("ping4", lambda: ping(S.AF_INET, 1, "127.0.0.1"))
t("ping6", lambda: ping(S.AF_INET6, 58, "::1"))
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["ping4"], "EPERM") << r.describe();
  EXPECT_EQ(res["ping6"], "EPERM") << r.describe();
  size_t refusals = 0;
  for (const auto& e : r.events)
    refusals += is_socket_refusal(e);
  EXPECT_EQ(refusals, 2u) << "one deny event per ping socket\n" << r.describe();
}

TEST(BpfEgress, PacketSocketsAreEpermAndLogged) {
  TempDir dir;
  auto m = filtered_manifest("egress-packet", {rule("127.0.0.1/32", {80})});
  auto r = run_enclosure(dir, m, agent(R"(
t("packet_raw", lambda: S.socket(17, S.SOCK_RAW, S.htons(3)).close())
t("packet_dgram", lambda: S.socket(17, S.SOCK_DGRAM, S.htons(3)).close())
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_EQ(res["packet_raw"], "EPERM") << r.describe();
  EXPECT_EQ(res["packet_dgram"], "EPERM") << r.describe();
  size_t refusals = 0;
  for (const auto& e : r.events) {
    if (!is_socket_refusal(e)) continue;
    ++refusals;
    if (e.value("section", "") == "syscalls") EXPECT_EQ(e["args"][0], "0x11") << e.dump();
  }
  EXPECT_EQ(refusals, 2u) << r.describe();
}

TEST(BpfEgress, AncestorRulePortsMergeIntoTheMoreSpecificRule) {
  TempDir dir;
  // A free port in 1000-2000 on 127.0.0.1, also free on 127.0.0.2.
  std::unique_ptr<LoopbackListener> in_range, in_range2;
  for (uint16_t port = 1000; port <= 2000 && !in_range; ++port) {
    auto a = std::make_unique<LoopbackListener>(Protocol::tcp, "127.0.0.1", port);
    auto b = std::make_unique<LoopbackListener>(Protocol::tcp, "127.0.0.2", port);
    if (a->ok() && b->ok()) {
      in_range = std::move(a);
      in_range2 = std::move(b);
    }
  }
  ASSERT_TRUE(in_range) << "no free port in 1000-2000 on 127.0.0.1 and 127.0.0.2";
  // A free port above the range, refused by both rules.
  std::unique_ptr<LoopbackListener> above;
  for (uint16_t port = 2001; port <= 3000 && !above; ++port) {
    auto a = std::make_unique<LoopbackListener>(Protocol::tcp, "127.0.0.1", port);
    if (a->ok()) above = std::move(a);
  }
  ASSERT_TRUE(above);
  // 443 on 127.0.0.1: ours when it is free; if the host has something there, the connection
  // is admitted (or refused by the host) either way, never EPERM.
  auto https = std::make_unique<LoopbackListener>(Protocol::tcp, "127.0.0.1", 443);
  auto m = filtered_manifest("egress-merge",
                             {rule("127.0.0.0/8", {"1000-2000"}), rule("127.0.0.1/32", {443})});
  int k = in_range->port();
  auto r = run_enclosure(dir, m,
                         agent(R"(
t("specific_443", lambda: tcp_connect("127.0.0.1", 443))
t("specific_range", lambda: tcp_connect("127.0.0.1", int(A[0])))
t("ancestor_range", lambda: tcp_connect("127.0.0.2", int(A[0])))
t("ancestor_443", lambda: tcp_connect("127.0.0.2", 443))
t("above_range", lambda: tcp_connect("127.0.0.1", int(A[1])))
)",
                               {std::to_string(k), std::to_string(above->port())}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  EXPECT_TRUE(res["specific_443"] == "ok" || res["specific_443"] == "ECONNREFUSED") << r.describe();
  EXPECT_EQ(res["specific_range"], "ok") << r.describe();
  EXPECT_EQ(res["ancestor_range"], "ok") << r.describe();
  EXPECT_EQ(res["ancestor_443"], "EPERM") << r.describe();
  EXPECT_EQ(res["above_range"], "EPERM") << r.describe();
  auto c443 = connects(r, dest("127.0.0.1", 443));
  ASSERT_EQ(c443.size(), 1u) << r.describe();
  EXPECT_EQ(c443[0]["rule"], "/network/egress/1");
  auto crange = connects(r, dest("127.0.0.1", k));
  ASSERT_EQ(crange.size(), 1u) << r.describe();
  EXPECT_EQ(crange[0]["rule"], "/network/egress/1");  // the most specific block
  auto cancestor = connects(r, dest("127.0.0.2", k));
  ASSERT_EQ(cancestor.size(), 1u) << r.describe();
  EXPECT_EQ(cancestor[0]["rule"], "/network/egress/0");
  expect_one_denial(r, dest("127.0.0.2", 443), "connect4", "tcp");
  expect_one_denial(r, dest("127.0.0.1", above->port()), "connect4", "tcp");
  in_range->collect();
  in_range2->collect();
  above->collect();
  EXPECT_EQ(in_range->connections(), 1u) << in_range->describe();
  EXPECT_EQ(in_range2->connections(), 1u) << in_range2->describe();
  EXPECT_EQ(above->connections(), 0u) << above->describe();
  if (https->ok()) {
    https->collect();
    EXPECT_EQ(https->connections(), 1u) << https->describe();
    EXPECT_EQ(res["specific_443"], "ok") << r.describe();
  }
}

TEST(BpfEgress, EgressBytesBudgetOverUdpEndsTheRunWith124) {
  TempDir dir;
  auto allowed = listen_on(Protocol::udp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok());
  int p = allowed->port();
  auto m = filtered_manifest("egress-bytes-udp", {rule("127.0.0.1/32", {p}, "udp")});
  m["budgets"]["egress_bytes"] = "16KiB";
  // 200 datagrams of 1000 bytes: far more than 16KiB. Then wait to be terminated.
  auto r = run_enclosure(dir, m,
                         agent(R"(
s = S.socket(S.AF_INET, S.SOCK_DGRAM)
sent = 0
errors = {}
for i in range(200):
    try:
        s.sendto(b"x" * 1000, ("127.0.0.1", int(A[0])))
        sent += 1
    except OSError as e:
        errors[errname(e.errno)] = errors.get(errname(e.errno), 0) + 1
print("SENT", sent, errors, flush=True)
time.sleep(20)
)",
                               {std::to_string(p)}));
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_EQ(python_result(r), nullptr) << "the agent outlived the budget\n" << r.describe();
  auto budgets = r.of_type("budget");
  ASSERT_EQ(budgets.size(), 1u) << r.describe();
  EXPECT_EQ(budgets[0]["name"], "egress_bytes");
  EXPECT_EQ(budgets[0]["limit"], "16KiB");
  std::string value = budgets[0].value("value", "");
  ASSERT_FALSE(value.empty()) << budgets[0].dump();
  EXPECT_GT(std::stoull(value), 16384u) << budgets[0].dump();
  auto exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit");
  EXPECT_EQ(exit["exit_code"], 124);
  EXPECT_EQ(exit["budget"], "egress_bytes");
  EXPECT_GT(exit["budgets"]["egress_bytes"]["value"].get<uint64_t>(), 16384u) << exit.dump();
  allowed->collect();
  EXPECT_GT(allowed->datagrams(), 0u) << allowed->describe();
  EXPECT_LE(allowed->bytes(), 16384u) << "bytes past the budget were delivered\n"
                                      << allowed->describe();
}

TEST(BpfEgress, EgressBytesBudgetOverTcpEndsTheRunWith124) {
  TempDir dir;
  auto allowed = listen_on(Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(allowed->ok());
  int p = allowed->port();
  auto m = filtered_manifest("egress-bytes-tcp", {rule("127.0.0.1/32", {p})});
  m["budgets"]["egress_bytes"] = "16KiB";
  auto r = run_enclosure(dir, m,
                         agent(R"(
s = S.socket(S.AF_INET, S.SOCK_STREAM)
s.settimeout(20)
s.connect(("127.0.0.1", int(A[0])))
t("sendall", lambda: s.sendall(b"y" * 200000))
print("SENT", R, flush=True)
time.sleep(20)
)",
                               {std::to_string(p)}));
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_EQ(python_result(r), nullptr) << "the agent outlived the budget\n" << r.describe();
  auto budgets = r.of_type("budget");
  ASSERT_EQ(budgets.size(), 1u) << r.describe();
  EXPECT_EQ(budgets[0]["name"], "egress_bytes");
  EXPECT_EQ(budgets[0]["limit"], "16KiB");
  EXPECT_EQ(connects(r, dest("127.0.0.1", p)).size(), 1u) << r.describe();
  allowed->collect();
  EXPECT_EQ(allowed->connections(), 1u) << allowed->describe();
  EXPECT_LE(allowed->bytes(), 16384u) << "bytes past the budget were delivered\n"
                                      << allowed->describe();
}
