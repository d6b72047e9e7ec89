// network.mode "none": the enclosure has a network namespace of its own with loopback only.
// The host's loopback (and everything else) is out of reach; the enclosure's own loopback works.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::TempDir;

namespace {

nlohmann::json python_manifest() {
  return base_manifest("network", {"/usr/bin/python3"});
}

// A listening TCP socket on the host's loopback (IPv4 or IPv6), on a port the kernel picks.
class HostListener {
 public:
  explicit HostListener(int family) : family_(family) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return;
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    } else {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin6_port);
    }
    if (::listen(fd_, 16) != 0) port_ = 0;
  }
  ~HostListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  // Whether a connection is waiting to be accepted (i.e. someone reached this listener).
  bool reached() const {
    struct pollfd p = {fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  // Proves the listener works from the host: a connection from here is accepted.
  bool reachable_from_host() const {
    int c = ::socket(family_, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = false;
    if (family_ == AF_INET) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(port_));
      ok = ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    } else {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      a.sin6_port = htons(static_cast<uint16_t>(port_));
      ok = ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    ::close(c);
    if (ok) {
      struct pollfd p = {fd_, POLLIN, 0};
      ::poll(&p, 1, 1000);
      int accepted = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (accepted >= 0) ::close(accepted);
    }
    return ok;
  }

 private:
  int family_;
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST(RunNetwork, ModeNoneCannotReachTheHostsLoopback) {
  HostListener v4(AF_INET), v6(AF_INET6);
  ASSERT_GT(v4.port(), 0);
  ASSERT_TRUE(v4.reachable_from_host());
  bool have_v6 = v6.port() > 0 && v6.reachable_from_host();
  TempDir dir;
  auto r = run_enclosure(
      dir, python_manifest(),
      python_agent(R"(
import socket
def connect(family, host, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "connected"
    finally:
        s.close()
t("v4", lambda: connect(socket.AF_INET, "127.0.0.1", int(A[0])))
if int(A[1]):
    t("v6", lambda: connect(socket.AF_INET6, "::1", int(A[1])))
)",
                   {std::to_string(v4.port()), std::to_string(have_v6 ? v6.port() : 0)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  // Nothing listens on the enclosure's own loopback at that port.
  EXPECT_EQ(res["v4"], "ECONNREFUSED") << r.out;
  EXPECT_FALSE(v4.reached()) << "the host's listener was reached from inside";
  if (have_v6) {
    EXPECT_TRUE(res["v6"] == "ECONNREFUSED" || res["v6"] == "EADDRNOTAVAIL") << r.out;
    EXPECT_FALSE(v6.reached()) << "the host's IPv6 listener was reached from inside";
  }
}

TEST(RunNetwork, ModeNoneLoopbackInsideWorks) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(R"(
import socket, threading
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(1)
port = server.getsockname()[1]
def serve():
    conn, _ = server.accept()
    conn.sendall(conn.recv(100).upper())
    conn.close()
th = threading.Thread(target=serve)
th.start()
def roundtrip():
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"ping inside")
    data = c.recv(100).decode()
    c.close()
    return data
t("tcp", roundtrip)
th.join()
def udp():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.sendto(b"datagram", a.getsockname())
    a.settimeout(5)
    return a.recv(100).decode()
t("udp", udp)
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["tcp"], "PING INSIDE") << r.out;
  EXPECT_EQ(res["udp"], "datagram") << r.out;
}

TEST(RunNetwork, ModeNoneHasOnlyTheLoopbackInterface) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(R"(
import socket
R["interfaces"] = sorted(name for _, name in socket.if_nameindex())
R["proc_net_dev"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])
def outside():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("192.0.2.1", 9))
    return "routed"
t("route_outside", outside)
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["interfaces"], nlohmann::json::array({"lo"})) << r.out;
  EXPECT_EQ(res["proc_net_dev"], nlohmann::json::array({"lo"})) << r.out;
  // No route out of the namespace at all.
  EXPECT_EQ(res["route_outside"], "ENETUNREACH") << r.out;
}

// Abstract unix sockets belong to the network namespace: a host service listening on one is
// out of reach too.
TEST(RunNetwork, ModeNoneCannotReachTheHostsAbstractUnixSockets) {
  std::string name = "enclosure-test-abstract-" + std::to_string(::getpid());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(),
                         python_agent(R"(
import socket
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + A[0])
    return "connected"
t("abstract", connect)
)",
                                      {name}));
  struct pollfd p = {fd, POLLIN, 0};
  bool reached = ::poll(&p, 1, 0) > 0;
  ::close(fd);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["abstract"], "ECONNREFUSED") << r.out;
  EXPECT_FALSE(reached) << "the host's abstract socket was reached from inside";
}
