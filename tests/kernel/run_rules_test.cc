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
      "t('read', lambda: open(D + '/outside.txt').read() and None)\n"
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
}
