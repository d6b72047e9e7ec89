// Read triggers by file identity: every file and directory of a trigger tree is keyed in the
// kernel when the run is configured, so an agent that may write the tree cannot read one of its
// files unnoticed by hard-linking it out, renaming it out or nesting it deeper than any walk of
// ancestors would go; a file that was never in the tree fires nothing however deep it lies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "bpf/enclosure_bpf.h"
#include "harness.h"
#include "policy/plan.h"

using harness::base_manifest;
using harness::LoopbackListener;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

constexpr const char* kRule = "no-network-after-pii";

// dir/work (a write grant) holding dir/work/pii (the trigger tree) with data.csv and a
// subdirectory, and dir/work/public; the agent reaches the listener on 127.0.0.1 only until the
// rule fires.
json identity_manifest(const TempDir& dir, uint16_t port) {
  json m = base_manifest("rules", {"/usr/bin/python3"});
  m["filesystem"]["write"].push_back(dir.file("work"));
  m["process"]["cwd"] = "/";
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {port}}}}}};
  m["rules"] = {
      {{"id", kRule}, {"after", {{"read", {dir.file("work/pii")}}}}, {"deny", {"network"}}}};
  return m;
}

// Owned by the agent's user (65534), who may then link its files (fs.protected_hardlinks) and
// make directories in it.
void make_work_tree(const TempDir& dir) {
  dir.write("work/pii/data.csv", "name,card\nalice,4111\n");
  dir.write("work/pii/deep/notes.txt", "notes\n");
  dir.write("work/public/readme.txt", "public\n");
  ASSERT_EQ(::chown(dir.file("work").c_str(), 65534, 65534), 0);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.file("work")))
    ASSERT_EQ(::chown(entry.path().c_str(), 65534, 65534), 0) << entry.path();
}

// The agent's prelude: D is dir/work, connect() reaches the listener, nest(base, n) makes and
// returns a directory n levels below base (with relative steps: the path grows past PATH_MAX
// for no one).
const char* const kPrelude =
    "import socket\n"
    "D = A[0]; P = int(A[1])\n"
    "def connect(): socket.create_connection(('127.0.0.1', P), timeout=3).close()\n"
    "def nest(base, n):\n"
    "    p = base\n"
    "    for i in range(n):\n"
    "        p = p + '/d%d' % i\n"
    "        os.mkdir(p)\n"
    "    return p\n";

struct Outcome {
  RunResult run;
  json result;
};

Outcome run_agent(const TempDir& dir, const std::string& body, LoopbackListener& listener) {
  Outcome o;
  o.run = run_enclosure(dir, identity_manifest(dir, listener.port()),
                        python_agent(std::string(kPrelude) + body,
                                     {dir.file("work"), std::to_string(listener.port())}));
  o.result = python_result(o.run);
  return o;
}

// The rule fired at the agent's read, not before: the connect before it passed, the one after
// it failed, and one rule event names the file read.
void expect_fired_at_the_read(const Outcome& o, LoopbackListener& listener,
                              const std::string& file) {
  const RunResult& r = o.run;
  ASSERT_TRUE(o.result.is_object()) << r.describe();
  EXPECT_EQ(o.result["before"], "ok") << "the rule fired before the agent read\n" << r.describe();
  EXPECT_EQ(o.result["read"], "ok") << r.describe();
  EXPECT_EQ(o.result["after"], "EPERM") << r.describe();
  std::vector<json> fired = r.of_type("rule");
  ASSERT_EQ(fired.size(), 1u) << r.describe();
  EXPECT_EQ(fired[0].value("rule", ""), kRule) << r.describe();
  EXPECT_EQ(fired[0].value("trigger", ""), "read") << r.describe();
  EXPECT_EQ(fired[0].value("file", ""), file) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  listener.collect();
  EXPECT_EQ(listener.connections(), 1u) << r.describe();
}

}  // namespace

TEST(RunTriggerIdentity, AHardLinkOutOfTheTreeFiresWhenReadNotWhenMadeOrStatted) {
  TempDir dir;
  make_work_tree(dir);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  Outcome o = run_agent(dir,
                        "t('link', lambda: os.link(D + '/pii/data.csv', D + '/public/copy.csv'))\n"
                        "t('stat', lambda: os.stat(D + '/public/copy.csv') and None)\n"
                        "t('o_path', lambda: os.close(os.open(D + '/public/copy.csv', "
                        "os.O_PATH)))\n"
                        "t('before', connect)\n"
                        "t('read', lambda: open(D + '/public/copy.csv').read() and None)\n"
                        "t('after', connect)\n",
                        listener);
  ASSERT_TRUE(o.result.is_object()) << o.run.describe();
  EXPECT_EQ(o.result["link"], "ok") << o.run.describe();
  EXPECT_EQ(o.result["stat"], "ok") << o.run.describe();
  EXPECT_EQ(o.result["o_path"], "ok") << o.run.describe();
  expect_fired_at_the_read(o, listener, "copy.csv");
}

TEST(RunTriggerIdentity, AFileOrDirectoryRenamedOutOfTheTreeFiresWhenRead) {
  for (const std::string what : {"file", "directory"}) {
    SCOPED_TRACE(what);
    TempDir dir;
    make_work_tree(dir);
    LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
    ASSERT_TRUE(listener.ok());
    // A directory moved out keeps its identity: a file made in it afterwards is read "in" it.
    std::string body =
        what == "file"
            ? "t('move', lambda: os.rename(D + '/pii/data.csv', D + '/public/moved.csv'))\n"
              "t('before', connect)\n"
              "t('read', lambda: open(D + '/public/moved.csv').read() and None)\n"
            : "t('move', lambda: os.rename(D + '/pii/deep', D + '/public/deep'))\n"
              "t('make', lambda: open(D + '/public/deep/new.txt', 'w').write('x') and None)\n"
              "t('before', connect)\n"
              "t('read', lambda: open(D + '/public/deep/new.txt').read() and None)\n";
    body += "t('after', connect)\n";
    Outcome o = run_agent(dir, body, listener);
    ASSERT_TRUE(o.result.is_object()) << o.run.describe();
    EXPECT_EQ(o.result["move"], "ok") << o.run.describe();
    expect_fired_at_the_read(o, listener, what == "file" ? "moved.csv" : "new.txt");
  }
}

TEST(RunTriggerIdentity, AFileNestedSixtyLevelsDeepInTheTreeFiresWhenRead) {
  // A file of the tree fires by its own identity; a file moved in from outside is found by the
  // walk of its ancestors (the directories, made during the run, are not keyed), which a fixed
  // number of levels (48, before) would not reach.
  for (const std::string file : {"pii/data.csv", "public/readme.txt"}) {
    SCOPED_TRACE(file);
    TempDir dir;
    make_work_tree(dir);
    LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
    ASSERT_TRUE(listener.ok());
    Outcome o = run_agent(dir,
                          "os.chdir(D + '/pii')\n"
                          "t('nest', lambda: os.chdir(nest('.', 60)))\n"
                          "t('move', lambda: os.rename(D + '/" +
                              file +
                              "', 'moved'))\n"
                              "t('before', connect)\n"
                              "t('read', lambda: open('moved').read() and None)\n"
                              "t('after', connect)\n",
                          listener);
    ASSERT_TRUE(o.result.is_object()) << o.run.describe();
    EXPECT_EQ(o.result["nest"], "ok") << o.run.describe();
    EXPECT_EQ(o.result["move"], "ok") << o.run.describe();
    expect_fired_at_the_read(o, listener, "moved");
  }
}

TEST(RunTriggerIdentity, AFileNestedSixtyLevelsDeepOutsideTheTreeFiresNothing) {
  TempDir dir;
  make_work_tree(dir);
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  Outcome o = run_agent(dir,
                        "os.chdir(D + '/public')\n"
                        "t('nest', lambda: os.chdir(nest('.', 60)))\n"
                        "t('move', lambda: os.rename(D + '/public/readme.txt', 'readme.txt'))\n"
                        "t('read', lambda: open('readme.txt').read() and None)\n"
                        "t('after', connect)\n",
                        listener);
  ASSERT_TRUE(o.result.is_object()) << o.run.describe();
  EXPECT_EQ(o.result["nest"], "ok") << o.run.describe();
  EXPECT_EQ(o.result["read"], "ok") << o.run.describe();
  EXPECT_EQ(o.result["after"], "ok") << o.run.describe();
  EXPECT_TRUE(o.run.of_type("rule").empty()) << o.run.describe();
}

// The per-run cap, with a small limit: the launcher resolves the files before the run exists,
// and a tree over the limit is refused as a whole with the rule and the count named.
TEST(RunTriggerIdentity, ATriggerTreeOverTheLimitIsRefusedNamingTheRule) {
  TempDir dir;
  for (int i = 0; i < 40; ++i)
    dir.write("pii/f" + std::to_string(i), "x");
  policy::EnforcementPlan plan;
  policy::Rule other;
  other.id = "small";
  other.after.read = {dir.file("pii/f0")};
  policy::Rule big;
  big.id = "whole-tree";
  big.after.read = {dir.file("pii")};
  plan.rules = {other, big};
  bpf::EnclosureFiles fits = bpf::resolve_files(plan, {}, {}, 41);
  EXPECT_EQ(fits.trigger_trees[dir.file("pii")].size(), 41u);   // the root and its 40 files
  EXPECT_TRUE(fits.trigger_trees[dir.file("pii/f0")].empty());  // a file is its own key
  try {
    bpf::resolve_files(plan, {}, {}, 40);
    ADD_FAILURE() << "a tree of 41 identities passed a limit of 40";
  } catch (const bpf::BpfError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("/rules/1 (whole-tree)"), std::string::npos) << what;
    EXPECT_NE(what.find("more than 40 files and directories"), std::string::npos) << what;
  }
}
