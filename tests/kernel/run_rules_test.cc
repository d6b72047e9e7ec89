// Composition rules: "after reading the PII folder, no network / no writes / no exec". The
// trigger is what was really opened (matched in the kernel by the inode chain of the opened
// file), however the agent names it; from that moment every later action the rule denies fails
// with EPERM, in every process of the enclosure, and the agent runs on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"

using harness::base_manifest;
using harness::LoopbackListener;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

// dir/pii/data.csv (the trigger's tree), dir/pii/linked (a hard link of dir/outside.txt),
// dir/public/link -> ../pii/data.csv (a symlink from outside the tree into it).
void make_tree(const TempDir& dir) {
  dir.write("pii/data.csv", "name,card\nalice,4111\n");
  dir.write("public/readme.txt", "public\n");
  dir.write("outside.txt", "outside\n");
  std::filesystem::create_hard_link(dir.file("outside.txt"), dir.file("pii/linked"));
  std::filesystem::create_symlink("../pii/data.csv", dir.file("public/link"));
}

json rules_manifest(const TempDir& dir, const std::string& denies, uint16_t port) {
  json m = base_manifest("rules", {"/usr/bin/python3", "/usr/bin/true"});
  m["filesystem"]["read"].push_back(dir.path());
  m["process"]["cwd"] = dir.path();
  if (port) {
    m["network"] = {{"mode", "filtered"},
                    {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {port}}}}}};
  }
  m["rules"] = {{{"id", "no-" + denies + "-after-pii"},
                 {"after", {{"read", {dir.file("pii")}}}},
                 {"deny", {denies}}}};
  return m;
}

bool has_rule_event(const RunResult& r, const std::string& id) {
  for (const json& e : r.of_type("rule")) {
    if (e.value("rule", "") == id) return true;
  }
  return false;
}

bool has_deny_naming(const RunResult& r, const std::string& id) {
  for (const json& e : r.of_type("deny")) {
    if (e.value("rule", "") == id && e.value("section", "") == "rules") return true;
  }
  return false;
}

}  // namespace

TEST(RunRules, ReadOfTheTreeHoweverNamedDeniesEveryLaterConnect) {
  // Each way of reaching a file of the tree, in a run of its own.
  const std::vector<std::pair<std::string, std::string>> reads = {
      {"absolute", "open(D + '/pii/data.csv').read()"},
      {"symlink", "open(D + '/public/link').read()"},
      {"relative", "open('pii/data.csv').read()"},
      {"dirfd",
       "os.close(os.open('pii/data.csv', os.O_RDONLY, dir_fd=os.open(D, os.O_RDONLY | "
       "os.O_DIRECTORY)))"},
      {"hard_link", "open(D + '/pii/linked').read()"},
  };
  for (const auto& [how, read] : reads) {
    SCOPED_TRACE(how);
    TempDir dir;
    make_tree(dir);
    LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
    ASSERT_TRUE(listener.ok());
    std::string body =
        "import socket, subprocess\n"
        "D = A[0]; P = int(A[1])\n"
        "def connect(): socket.create_connection(('127.0.0.1', P), timeout=3).close()\n"
        "t('public', lambda: open(D + '/public/readme.txt').read() and None)\n"
        "t('before', connect)\n"
        "t('read', lambda: " +
        read +
        " and None)\n"
        "t('after', connect)\n"
        "t('child', lambda: subprocess.run([sys.executable, '-c', 'import socket,sys\\n'\n"
        "  'try:\\n socket.create_connection((\"127.0.0.1\", ' + A[1] + '), timeout=3)\\n'\n"
        "  'except OSError as e: sys.exit(e.errno)'], check=False).returncode)\n";
    RunResult r = run_enclosure(dir, rules_manifest(dir, "network", listener.port()),
                                python_agent(body, {dir.path(), std::to_string(listener.port())}));
    json res = python_result(r);
    ASSERT_TRUE(res.is_object()) << r.describe();
    EXPECT_EQ(res["public"], "ok") << r.describe();
    EXPECT_EQ(res["before"], "ok") << r.describe();
    EXPECT_EQ(res["read"], "ok") << r.describe();
    EXPECT_EQ(res["after"], "EPERM") << r.describe();
    EXPECT_EQ(res["child"], EPERM) << "a child process must be denied as well\n" << r.describe();
    EXPECT_TRUE(has_rule_event(r, "no-network-after-pii")) << r.describe();
    EXPECT_TRUE(has_deny_naming(r, "no-network-after-pii")) << r.describe();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    listener.collect();
    EXPECT_EQ(listener.connections(), 1u) << r.describe();
  }
}

TEST(RunRules, ReadingOutsideTheTreeFiresNothing) {
  TempDir dir;
  make_tree(dir);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  std::string body =
      "import socket\n"
      "D = A[0]; P = int(A[1])\n"
      // Not outside.txt: it is hard-linked into the tree, the same file as pii/linked, and
      // fires by identity (run_trigger_identity_test.cc).
      "t('read', lambda: open(D + '/public/readme.txt').read() and None)\n"
      "t('list', lambda: os.listdir(D) and None)\n"
      "t('after', lambda: socket.create_connection(('127.0.0.1', P), timeout=3).close())\n";
  RunResult r = run_enclosure(dir, rules_manifest(dir, "network", listener.port()),
                              python_agent(body, {dir.path(), std::to_string(listener.port())}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["after"], "ok") << r.describe();
  EXPECT_TRUE(r.of_type("rule").empty()) << r.describe();
}

TEST(RunRules, DenyWriteAfterTheReadFailsWritesWithEpermAndTheAgentRunsOn) {
  TempDir dir;
  make_tree(dir);
  std::string body =
      "import subprocess\n"
      "D = A[0]\n"
      "def write(p):\n"
      "    with open(p, 'w') as f: f.write('x')\n"
      "t('before', lambda: write('/tmp/before'))\n"
      "t('read', lambda: open('pii/data.csv').read() and None)\n"
      "t('after', lambda: write('/tmp/after'))\n"
      "t('append', lambda: open('/tmp/before', 'a').close())\n"
      "t('mkdir', lambda: os.mkdir('/tmp/newdir'))\n"
      "t('unlink', lambda: os.unlink('/tmp/before'))\n"
      "t('read_still', lambda: open('/tmp/before').read())\n"
      "t('child', lambda: subprocess.run([sys.executable, '-c', 'open(\"/tmp/c\", \"w\")'], "
      "stderr=subprocess.DEVNULL).returncode)\n";
  RunResult r =
      run_enclosure(dir, rules_manifest(dir, "write", 0), python_agent(body, {dir.path()}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], "ok") << r.describe();
  EXPECT_EQ(res["after"], "EPERM") << r.describe();
  EXPECT_EQ(res["append"], "EPERM") << r.describe();
  EXPECT_EQ(res["mkdir"], "EPERM") << r.describe();
  EXPECT_EQ(res["unlink"], "EPERM") << r.describe();
  EXPECT_EQ(res["read_still"], "x") << r.describe();
  EXPECT_NE(res["child"], 0) << r.describe();
  EXPECT_TRUE(has_rule_event(r, "no-write-after-pii")) << r.describe();
  EXPECT_TRUE(has_deny_naming(r, "no-write-after-pii")) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// Descriptors opened before the rule fired change nothing after it: truncate, allocate,
// chmod, chown and extended attributes through them fail (and all of them worked before).
TEST(RunRules, DenyWriteAlsoHoldsForCallsOnDescriptorsOpenedBefore) {
  TempDir dir;
  make_tree(dir);
  std::string body =
      "def fd_calls(tag, fd, path):\n"
      "    t(tag + '_ftruncate', lambda: os.ftruncate(fd, 1))\n"
      "    t(tag + '_fallocate', lambda: os.posix_fallocate(fd, 0, 4096))\n"
      "    t(tag + '_fchmod', lambda: os.fchmod(fd, 0o600))\n"
      "    t(tag + '_fchown', lambda: os.fchown(fd, os.getuid(), os.getgid()))\n"
      "    t(tag + '_fsetxattr', lambda: os.setxattr(fd, 'user.k', b'v'))\n"
      "    t(tag + '_fremovexattr', lambda: os.removexattr(fd, 'user.k'))\n"
      "    R[tag + '_fchmodat2'] = sc(452, -100, path.encode(), 0o640, 0)\n"
      "before = os.open('/tmp/before', os.O_RDWR | os.O_CREAT, 0o644)\n"
      "held = os.open('/tmp/held', os.O_RDWR | os.O_CREAT, 0o644)\n"
      "fd_calls('before', before, '/tmp/before')\n"
      "t('read', lambda: open('pii/data.csv').read() and None)\n"
      "fd_calls('after', held, '/tmp/held')\n"
      "R['held_size'] = os.fstat(held).st_size\n";
  RunResult r =
      run_enclosure(dir, rules_manifest(dir, "write", 0), python_agent(body, {dir.path()}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* call :
       {"ftruncate", "fallocate", "fchmod", "fchown", "fsetxattr", "fremovexattr"}) {
    EXPECT_EQ(res[std::string("before_") + call], "ok") << call << " " << r.describe();
    EXPECT_EQ(res[std::string("after_") + call], "EPERM") << call << " " << r.describe();
  }
  EXPECT_EQ(res["before_fchmodat2"], 0) << r.describe();
  EXPECT_EQ(res["after_fchmodat2"], -1) << r.describe();  // -EPERM
  EXPECT_EQ(res["held_size"], 0) << "the held file was changed after the rule fired";
  EXPECT_TRUE(has_deny_naming(r, "no-write-after-pii")) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST(RunRules, DenyExecAfterTheReadFailsExecWithEpermAndTheAgentRunsOn) {
  TempDir dir;
  make_tree(dir);
  std::string body =
      "import subprocess\n"
      "t('before', lambda: subprocess.run(['/usr/bin/true']).returncode)\n"
      "t('read', lambda: open('pii/data.csv').read() and None)\n"
      "t('after', lambda: subprocess.run(['/usr/bin/true']).returncode)\n"
      "t('alive', lambda: 'yes')\n";
  RunResult r =
      run_enclosure(dir, rules_manifest(dir, "exec", 0), python_agent(body, {dir.path()}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], 0) << r.describe();
  EXPECT_EQ(res["after"], "EPERM") << r.describe();
  EXPECT_EQ(res["alive"], "yes") << r.describe();
  EXPECT_TRUE(has_rule_event(r, "no-exec-after-pii")) << r.describe();
  EXPECT_TRUE(has_deny_naming(r, "no-exec-after-pii")) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST(RunRules, ExecOfAToolDeniesTheNetworkFromThenOn) {
  TempDir dir;
  make_tree(dir);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  json m = rules_manifest(dir, "network", listener.port());
  m["rules"] = {
      {{"id", "no-network-after-true"}, {"after", {{"exec", {"true"}}}}, {"deny", {"network"}}}};
  std::string body =
      "import socket, subprocess\n"
      "P = int(A[0])\n"
      "def connect(): socket.create_connection(('127.0.0.1', P), timeout=3).close()\n"
      "t('before', connect)\n"
      "t('exec', lambda: subprocess.run(['/usr/bin/true']).returncode)\n"
      "t('after', connect)\n";
  RunResult r = run_enclosure(dir, m, python_agent(body, {std::to_string(listener.port())}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], "ok") << r.describe();
  EXPECT_EQ(res["exec"], 0) << r.describe();
  EXPECT_EQ(res["after"], "EPERM") << r.describe();
  EXPECT_TRUE(has_rule_event(r, "no-network-after-true")) << r.describe();
  EXPECT_TRUE(has_deny_naming(r, "no-network-after-true")) << r.describe();
}

TEST(RunRules, ConnectToAnEgressRuleDeniesATool) {
  TempDir dir;
  make_tree(dir);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  json m = rules_manifest(dir, "network", listener.port());
  m["rules"] = {
      {{"id", "no-true-after-upload"}, {"after", {{"connect", {0}}}}, {"deny", {"tool:true"}}}};
  std::string body =
      "import socket, subprocess\n"
      "P = int(A[0])\n"
      "t('before', lambda: subprocess.run(['/usr/bin/true']).returncode)\n"
      "t('connect', lambda: socket.create_connection(('127.0.0.1', P), timeout=3).close())\n"
      "t('after', lambda: subprocess.run(['/usr/bin/true']).returncode)\n"
      "t('alive', lambda: 'yes')\n";
  RunResult r = run_enclosure(dir, m, python_agent(body, {std::to_string(listener.port())}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["before"], 0) << r.describe();
  EXPECT_EQ(res["connect"], "ok") << r.describe();
  // The kernel can refuse a tool only at exec time: the new image is killed before it runs.
  EXPECT_EQ(res["after"], -9) << r.describe();
  EXPECT_EQ(res["alive"], "yes") << r.describe();
  EXPECT_TRUE(has_rule_event(r, "no-true-after-upload")) << r.describe();
  EXPECT_TRUE(has_deny_naming(r, "no-true-after-upload")) << r.describe();
  // The summary line names the refused exec, not a network destination.
  EXPECT_NE(r.err.find("(first: \"exec of tool true (/rules/0)\")"), std::string::npos) << r.err;
}

namespace {

// The agent of the "sockets connected before" tests: a TCP connection and a connected UDP
// socket opened before the trigger, one message on each before the read and after it, then TCP
// sends until one fails (the supervisor destroys the socket once it sees the rule fire).
const char* const kEarlierSocketsAgent =
    "import socket, time\n"
    "D = A[0]; TP = int(A[1]); UP = int(A[2])\n"
    "tcp = socket.create_connection(('127.0.0.1', TP), timeout=3)\n"
    "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "udp.connect(('127.0.0.1', UP))\n"
    "t('tcp_before', lambda: tcp.sendall(b'B' * 10))\n"
    "t('udp_before', lambda: udp.send(b'b' * 7) and None)\n"
    "t('read', lambda: open(D + '/pii/data.csv').read() and None)\n"
    "t('udp_after', lambda: udp.send(b'a' * 5) and None)\n"
    "t('tcp_after', lambda: tcp.send(b'A' * 11) and None)\n"
    "def until_error():\n"
    "    for i in range(600):\n"
    "        tcp.send(b'x')\n"
    "        time.sleep(0.05)\n"
    "    return 'no error after 600 sends'\n"
    "t('tcp_later', until_error)\n"
    "t('tcp_then', lambda: tcp.send(b'y') and None)\n";

json earlier_sockets_manifest(const TempDir& dir, const std::string& mode, uint16_t tcp_port,
                              uint16_t udp_port) {
  json m = rules_manifest(dir, "network", 0);
  if (mode == "filtered") {
    m["network"] = {{"mode", "filtered"},
                    {"egress",
                     {{{"cidr", "127.0.0.1/32"}, {"ports", {tcp_port}}},
                      {{"cidr", "127.0.0.1/32"}, {"ports", {udp_port}}, {"protocol", "udp"}}}}};
  } else {
    m["network"] = {{"mode", mode}};
    m["enforcement"] = {{"allow_degraded", {"network"}}};
  }
  return m;
}

// A deny event naming the rule for a packet of `protocol` that cgroup_skb/egress dropped.
bool has_dropped_packet_naming(const RunResult& r, const std::string& id,
                               const std::string& protocol) {
  for (const json& e : r.of_type("deny")) {
    if (e.value("rule", "") == id && e.value("hook", "") == "skb_egress" &&
        e.value("action", "") == "packet dropped" && e.value("protocol", "") == protocol)
      return true;
  }
  return false;
}

}  // namespace

// deny: network cuts sockets connected before the rule fired: from the read on, no byte leaves
// on them (bytes at the listeners: exactly those sent before), a connected UDP send fails with
// EPERM, TCP data is dropped and the TCP socket is then destroyed (ECONNABORTED, then EPIPE), and
// the agent runs on. Both sends arrive before the read. In filtered and in host mode.
TEST(RunRules, DenyNetworkCutsSocketsConnectedBeforeTheRule) {
  for (const std::string mode : {"filtered", "host"}) {
    SCOPED_TRACE(mode);
    TempDir dir;
    make_tree(dir);
    LoopbackListener tcp(LoopbackListener::Protocol::tcp, "127.0.0.1");
    LoopbackListener udp(LoopbackListener::Protocol::udp, "127.0.0.1");
    ASSERT_TRUE(tcp.ok() && udp.ok());
    RunResult r = run_enclosure(
        dir, earlier_sockets_manifest(dir, mode, tcp.port(), udp.port()),
        python_agent(kEarlierSocketsAgent,
                     {dir.path(), std::to_string(tcp.port()), std::to_string(udp.port())}));
    json res = python_result(r);
    ASSERT_TRUE(res.is_object()) << r.describe();
    EXPECT_EQ(res["tcp_before"], "ok") << r.describe();
    EXPECT_EQ(res["udp_before"], "ok") << r.describe();
    EXPECT_EQ(res["read"], "ok") << r.describe();
    EXPECT_EQ(res["udp_after"], "EPERM") << r.describe();
    // Queued (and dropped), or already refused when the socket was destroyed first.
    EXPECT_TRUE(res["tcp_after"] == "ok" || res["tcp_after"] == "ECONNABORTED" ||
                res["tcp_after"] == "EPIPE")
        << r.describe();
    EXPECT_TRUE(res["tcp_later"] == "ECONNABORTED" || res["tcp_later"] == "EPIPE" ||
                res["tcp_later"] == "ECONNRESET")
        << r.describe();
    EXPECT_TRUE(res["tcp_then"] == "EPIPE" || res["tcp_then"] == "ECONNRESET") << r.describe();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(has_rule_event(r, "no-network-after-pii")) << r.describe();
    EXPECT_TRUE(has_dropped_packet_naming(r, "no-network-after-pii", "udp")) << r.describe();
    EXPECT_TRUE(has_dropped_packet_naming(r, "no-network-after-pii", "tcp")) << r.describe();
    bool destroyed = false;
    for (const json& e : r.of_type("rule")) {
      destroyed =
          destroyed || (e.contains("sockets_destroyed") && e["sockets_destroyed"].is_number() &&
                        e["sockets_destroyed"].get<uint64_t>() >= 1);
    }
    EXPECT_TRUE(destroyed) << "the rule event counts the destroyed TCP socket\n" << r.describe();
    tcp.collect();
    udp.collect();
    EXPECT_EQ(tcp.connections(), 1u) << tcp.describe();
    EXPECT_EQ(tcp.bytes(), 10u) << "only the bytes sent before the rule arrive\n"
                                << tcp.describe() << "\n"
                                << r.describe();
    EXPECT_EQ(udp.datagrams(), 1u) << udp.describe();
    EXPECT_EQ(udp.bytes(), 7u) << udp.describe();
  }
}

// A trigger tree that is itself a file-system grant: the launcher opens the granted directory
// while it builds the mount view and the Landlock ruleset (in the run's cgroup, before the
// agent's command starts), and none of that is the agent reading it. The rule fires once, at the
// agent's read of a file in the tree: the connect before it succeeds, the one after fails.
// `stat`, an O_PATH open and listing the tree before that read nothing. The agent's working
// directory is outside the tree.
TEST(RunRules, ATriggerThatIsAlsoAGrantFiresOnlyOnTheAgentsRead) {
  for (const std::string grant : {"read", "write"}) {
    SCOPED_TRACE(grant);
    TempDir dir;
    dir.write("customers/data.csv", "name,card\nalice,4111\n");
    const std::string tree = dir.file("customers");
    LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
    ASSERT_TRUE(listener.ok());
    json m = base_manifest("rules", {"/usr/bin/python3"});
    m["filesystem"][grant].push_back(tree);
    m["process"]["cwd"] = "/";
    m["network"] = {{"mode", "filtered"},
                    {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {listener.port()}}}}}};
    m["rules"] = {{{"id", "no-network-after-customers"},
                   {"after", {{"read", {tree}}}},
                   {"deny", {"network"}}}};
    std::string body =
        "import socket\n"
        "D = A[0]; P = int(A[1])\n"
        "def connect(): socket.create_connection(('127.0.0.1', P), timeout=3).close()\n"
        "t('stat', lambda: os.stat(D) and None)\n"
        "t('o_path', lambda: os.close(os.open(D + '/data.csv', os.O_PATH)))\n"
        "t('list', lambda: os.listdir(D) and None)\n"
        "t('before', connect)\n"
        "t('read', lambda: open(D + '/data.csv').read() and None)\n"
        "t('after', connect)\n";
    RunResult r =
        run_enclosure(dir, m, python_agent(body, {tree, std::to_string(listener.port())}));
    json res = python_result(r);
    ASSERT_TRUE(res.is_object()) << r.describe();
    EXPECT_EQ(res["before"], "ok") << "the rule fired before the agent read the tree\n"
                                   << r.describe();
    EXPECT_EQ(res["read"], "ok") << r.describe();
    EXPECT_EQ(res["after"], "EPERM") << r.describe();
    std::vector<json> fired = r.of_type("rule");
    ASSERT_EQ(fired.size(), 1u) << r.describe();
    EXPECT_EQ(fired[0].value("rule", ""), "no-network-after-customers") << r.describe();
    EXPECT_EQ(fired[0].value("trigger", ""), "read") << r.describe();
    EXPECT_EQ(fired[0].value("file", ""), "data.csv") << r.describe();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    listener.collect();
    EXPECT_EQ(listener.connections(), 1u) << r.describe();
  }
}
