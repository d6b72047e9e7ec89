// Path unix sockets (/network/unix): in every network mode the agent reaches only the sockets the
// manifest names and those it binds itself under its write grants and tmpfs. A socket under a
// read grant that is not named is refused with EACCES and a `deny` event, by every spelling that
// leads there (a relative path, "..", /proc/self/root, a datagram's sendto); a symlink or rename
// in the agent's own directory that leads out to such a socket gets the caller killed before it
// can use the connection.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

// A unix socket of the host's, bound at `path` and reachable by anyone (the agent runs as uid
// 65534); a stream socket listens.
class HostSocket {
 public:
  HostSocket(const std::string& path, int type)
      : fd_(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
    ::chmod(path.c_str(), 0777);
    if (type == SOCK_STREAM) EXPECT_EQ(::listen(fd_, 16), 0);
  }
  ~HostSocket() { ::close(fd_); }
  HostSocket(const HostSocket&) = delete;
  HostSocket& operator=(const HostSocket&) = delete;

  // Bytes that reached the socket: every pending connection's data, or a datagram.
  size_t bytes_received() const {
    size_t total = 0;
    char buf[256];
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break;
      ssize_t n = ::recv(c, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) total += static_cast<size_t>(n);
      ::close(c);
    }
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) total += static_cast<size_t>(n);
    return total;
  }

 private:
  int fd_;
};

// The agent's helpers: conn(path) connects a stream socket and sends "x" ("ok" or the errno's
// name); send(path) sends one datagram; pair() uses a socket pair; serve(path) binds and listens
// on a socket of its own.
const char* const kPrelude = R"(
import socket
held = []
def conn(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.send(b"x")
    held.append(s)
def send(path):
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", path)
def pair():
    p = socket.socketpair(socket.AF_UNIX)
    held.extend(p)
    p[0].send(b"x")
def serve(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(4)
    held.append(s)
)";

// dir/host (a read grant) with the host's sockets, dir/work (a write grant, the agent's).
json unix_manifest(const TempDir& dir, const std::string& mode) {
  json m = base_manifest("unix-sockets", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("host"));
  m["filesystem"]["write"] = {dir.file("work")};
  m["network"] = {{"mode", mode}, {"unix", {dir.file("host/app.sock")}}};
  return m;
}

void make_dirs(const TempDir& dir) {
  for (const char* d : {"host", "work"}) {
    std::string path = dir.file(d);
    ::mkdir(path.c_str(), 0777);
    ::chmod(path.c_str(), 0777);
  }
}

std::vector<json> unix_denials(const RunResult& r) {
  std::vector<json> out;
  for (const json& e : r.of_type("deny")) {
    if (e.value("origin", "") == "/network/unix") out.push_back(e);
  }
  return out;
}

}  // namespace

// The named socket is reached; the one beside it, under the same read grant, is refused by every
// spelling, and nothing reaches it; the agent's own socket works, also after a rename.
TEST(RunUnixSockets, OnlyTheNamedAndTheAgentsOwnAreReachedInEveryMode) {
  for (const std::string mode : {"none", "filtered"}) {
    SCOPED_TRACE(mode);
    TempDir dir;
    make_dirs(dir);
    HostSocket app(dir.file("host/app.sock"), SOCK_STREAM);
    HostSocket other(dir.file("host/other.sock"), SOCK_STREAM);
    HostSocket dgram(dir.file("host/dgram.sock"), SOCK_DGRAM);
    const std::string host = dir.file("host"), work = dir.file("work");
    RunResult r = run_enclosure(dir, unix_manifest(dir, mode),
                                python_agent(std::string(kPrelude) + R"(
host, work = A[0], A[1]
t("named", lambda: conn(host + "/app.sock"))
t("other", lambda: conn(host + "/other.sock"))
os.chdir(host)
t("relative", lambda: conn("other.sock"))
t("dotdot", lambda: conn(work + "/../host/other.sock"))
t("proc_root", lambda: conn("/proc/self/root" + host + "/other.sock"))
t("dgram", lambda: send(host + "/dgram.sock"))
t("pair", pair)
t("own_serve", lambda: serve(work + "/own.sock"))
t("own", lambda: conn(work + "/own.sock"))
os.rename(work + "/own.sock", work + "/moved.sock")
t("own_moved", lambda: conn(work + "/moved.sock"))
)",
                                             {host, work}));
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json res = python_result(r);
    ASSERT_TRUE(res.is_object()) << r.describe();
    EXPECT_EQ(res["named"], "ok");
    EXPECT_EQ(res["pair"], "ok");
    EXPECT_EQ(res["own_serve"], "ok");
    EXPECT_EQ(res["own"], "ok");
    EXPECT_EQ(res["own_moved"], "ok");
    for (const char* refused : {"other", "relative", "dotdot", "proc_root", "dgram"})
      EXPECT_EQ(res[refused], "EACCES") << refused;
    EXPECT_EQ(other.bytes_received(), 0u);
    EXPECT_EQ(dgram.bytes_received(), 0u);
    EXPECT_EQ(app.bytes_received(), 1u);

    std::vector<json> denials = unix_denials(r);
    ASSERT_EQ(denials.size(), 5u) << r.describe();
    EXPECT_EQ(denials[0]["path"], host + "/other.sock");
    EXPECT_EQ(denials[0]["hook"], "connect_unix");
    EXPECT_EQ(denials[0]["action"], "EACCES");
    EXPECT_EQ(denials[1]["path"], "other.sock");
    EXPECT_NE(denials[1]["reason"].get<std::string>().find("relative"), std::string::npos);
    EXPECT_NE(denials[2]["reason"].get<std::string>().find("\"..\""), std::string::npos);
    EXPECT_EQ(denials[3]["path"], "/proc/self/root" + host + "/other.sock");
    EXPECT_EQ(denials[4]["hook"], "sendmsg_unix");
    EXPECT_EQ(denials[4]["socket"], "dgram");
    auto exit = r.first("exit");
    ASSERT_TRUE(exit);
    EXPECT_EQ((*exit)["denials"], 5);
  }
}

// A symlink in the agent's write grant that leads to a socket of the host's: the hook admits the
// name (the agent's own directory), the connect reaches a socket the agent did not bind, and the
// caller is killed before it returns: nothing is sent. "Not before": the same agent's own
// socket, reached through a symlink in its directory, works.
TEST(RunUnixSockets, ASymlinkOutOfTheAgentsDirectoryGetsTheCallerKilled) {
  TempDir dir;
  make_dirs(dir);
  HostSocket other(dir.file("host/other.sock"), SOCK_STREAM);
  const std::string host = dir.file("host"), work = dir.file("work");
  RunResult r = run_enclosure(dir, unix_manifest(dir, "none"),
                              python_agent(std::string(kPrelude) + R"(
host, work = A[0], A[1]
serve(work + "/own.sock")
os.symlink(work + "/own.sock", work + "/to-own.sock")
conn(work + "/to-own.sock")
print("own through a symlink: ok", flush=True)
os.symlink(host + "/other.sock", work + "/link.sock")
conn(work + "/link.sock")
print("reached the host's socket", flush=True)
)",
                                           {host, work}));
  EXPECT_EQ(r.exit_code, 137) << r.describe();
  EXPECT_NE(r.out.find("own through a symlink: ok"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("reached the host's socket"), std::string::npos) << r.describe();
  EXPECT_EQ(other.bytes_received(), 0u);
  std::vector<json> denials = unix_denials(r);
  ASSERT_EQ(denials.size(), 1u) << r.describe();
  EXPECT_EQ(denials[0]["path"], work + "/link.sock");
  EXPECT_EQ(denials[0]["action"], "killed");
  EXPECT_NE(denials[0]["reason"].get<std::string>().find("did not bind"), std::string::npos);
}

// A process outside the enclosure is not affected while one runs: the hooks decide only for the
// enclosure's cgroup.
TEST(RunUnixSockets, TheHostIsNotAffected) {
  TempDir dir;
  make_dirs(dir);
  HostSocket other(dir.file("host/other.sock"), SOCK_STREAM);
  harness::BackgroundRun run(
      dir, unix_manifest(dir, "none"),
      python_agent("import time\nprint('ready', flush=True)\ntime.sleep(2)\n"));
  ASSERT_EQ(run.read_line(30000), std::optional<std::string>("ready"));
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = dir.file("host/other.sock");
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  ::close(s);
  RunResult r = run.wait();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(unix_denials(r).empty()) << r.describe();
}
