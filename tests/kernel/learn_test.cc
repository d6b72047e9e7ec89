// `enclosure learn` on the three example agents of examples/agents/learn (a script that reads a
// folder and writes a report, a git workflow, a fetch from a loopback HTTP server): each learned
// manifest passes `check`, runs its command to success, and denies a read outside what was
// learned. And behaviour baselines: a burst of opens far above the learned peak and a syscall
// never seen while learning produce `anomaly` events; with `action: kill` the run ends.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

using harness::enclosure_binary;
using harness::run_command;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

std::string example(const std::string& name) {
  return std::string(ENCLOSURE_SOURCE_DIR) + "/examples/agents/learn/" + name;
}

// Runs `enclosure ARGS...` with DIR as the working directory.
RunResult enclosure_in(const TempDir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", dir.path(),
                                   enclosure_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  harness::RunOptions o;
  o.timeout_seconds = 120;
  return run_command(argv, o);
}

std::vector<json> read_events(const std::string& file) {
  std::vector<json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    try {
      out.push_back(json::parse(line));
    } catch (const std::exception&) {
    }
  }
  return out;
}

std::vector<json> of_type(const std::vector<json>& events, const std::string& type) {
  std::vector<json> out;
  for (const json& e : events) {
    if (e.value("type", "") == type) out.push_back(e);
  }
  return out;
}

json read_json(const std::string& file) {
  std::ifstream in(file);
  return json::parse(in, nullptr, false);
}

void copy_example(const TempDir& dir, const std::string& name) {
  std::filesystem::copy_file(example(name), dir.file(name));
  std::filesystem::permissions(dir.file(name), std::filesystem::perms(0755));
}

// Learns CMD in DIR, checks the manifest, reruns CMD with it (after `reset`, a shell command run
// in DIR outside the enclosure), and tries a read of a file outside what was learned with
// `probe` (a command of the manifest's tools that reads its last argument).
void learn_check_rerun(const TempDir& dir, const std::vector<std::string>& command,
                       const std::vector<std::string>& probe, const std::string& expected_output) {
  std::vector<std::string> learn = {"learn", "-o", dir.file("learned.json"), "--"};
  learn.insert(learn.end(), command.begin(), command.end());
  RunResult learned = enclosure_in(dir, learn);
  ASSERT_EQ(learned.exit_code, 0) << learned.err << learned.out;
  EXPECT_NE(learned.out.find(expected_output), std::string::npos) << learned.out << learned.err;
  json m = read_json(dir.file("learned.json"));
  ASSERT_TRUE(m.is_object()) << learned.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("learned.json.profile.json")));
  EXPECT_NE(m["metadata"].value("reason", "").find("enclosure learn"), std::string::npos)
      << m.dump(2);
  for (const auto& grants : {m["filesystem"].value("read", json::array()),
                             m["filesystem"].value("write", json::array())}) {
    for (const json& g : grants) {
      EXPECT_NE(g, "/") << m.dump(2);
      EXPECT_NE(g, "/root") << m.dump(2);
      EXPECT_NE(g, "/home") << m.dump(2);
    }
  }

  RunResult check = run_command({enclosure_binary(), "check", dir.file("learned.json")});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << m.dump(2);

  std::vector<std::string> run = {
      "run", "-m", dir.file("learned.json"), "--events", dir.file("rerun.jsonl"), "--"};
  run.insert(run.end(), command.begin(), command.end());
  RunResult rerun = enclosure_in(dir, run);
  EXPECT_EQ(rerun.exit_code, 0) << rerun.err << rerun.out << m.dump(2);
  EXPECT_NE(rerun.out.find(expected_output), std::string::npos) << rerun.out << rerun.err;

  TempDir outside;
  std::string secret = outside.write("secret.txt", "not learned\n");
  std::vector<std::string> probe_run = {"run", "-m", dir.file("learned.json"), "--"};
  probe_run.insert(probe_run.end(), probe.begin(), probe.end());
  probe_run.push_back(secret);
  RunResult denied = enclosure_in(dir, probe_run);
  EXPECT_NE(denied.exit_code, 0) << denied.out << denied.err;
  EXPECT_EQ(denied.out.find("not learned"), std::string::npos) << denied.out;
}

// A one-page HTTP server on 127.0.0.1 (a port the kernel picks), until destroyed.
class LoopbackHttpServer {
 public:
  LoopbackHttpServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 8) != 0)
      return;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        char buf[4096];
        (void)!::read(c, buf, sizeof buf);
        const char reply[] = "HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nhello, agent\n";
        (void)!::write(c, reply, sizeof reply - 1);
        ::close(c);
      }
    });
  }
  ~LoopbackHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST(Learn, ReportScriptLearnsItsFolderAndRunsAgain) {
  TempDir dir;
  copy_example(dir, "summarize.py");
  dir.write("data/a.txt", "one two three\n");
  dir.write("data/b.txt", "four five\n");
  learn_check_rerun(dir, {"/usr/bin/python3", "summarize.py"},
                    {"/usr/bin/python3", "-c", "import sys; print(open(sys.argv[1]).read())"},
                    "summarized 2 files");
  json m = read_json(dir.file("learned.json"));
  EXPECT_EQ(m["network"]["mode"], "none") << m.dump(2);
  EXPECT_EQ(m["syscalls"]["profile"], "strict") << m.dump(2);
  EXPECT_TRUE(m["budgets"].contains("wall_clock")) << m.dump(2);
  std::ifstream summary(dir.file("out/summary.txt"));
  std::stringstream text;
  text << summary.rdbuf();
  EXPECT_NE(text.str().find("a.txt: 3 words"), std::string::npos);
}

TEST(Learn, GitWorkflowLearnsTheProgramsItRuns) {
  TempDir dir;
  copy_example(dir, "git_workflow.sh");
  learn_check_rerun(dir, {"/bin/sh", "git_workflow.sh"}, {"/bin/sh", "-c", "cat \"$0\""}, "1");
  json m = read_json(dir.file("learned.json"));
  bool git = false;
  for (const json& t : m["tools"])
    git = git || t.value("path", "").find("/git") != std::string::npos;
  EXPECT_TRUE(git) << m.dump(2);
}

TEST(Learn, FetchLearnsTheDestinationAndNothingElse) {
  TempDir dir;
  LoopbackHttpServer server;
  ASSERT_NE(server.port(), 0);
  copy_example(dir, "fetch.py");
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  learn_check_rerun(dir, {"/usr/bin/python3", "fetch.py", url},
                    {"/usr/bin/python3", "-c", "import sys; print(open(sys.argv[1]).read())"},
                    "fetched 13 bytes");
  json m = read_json(dir.file("learned.json"));
  EXPECT_EQ(m["network"]["mode"], "filtered") << m.dump(2);
  json egress = m["network"]["egress"];
  ASSERT_EQ(egress.size(), 1u) << m.dump(2);
  EXPECT_EQ(egress[0].value("cidr", ""), "127.0.0.1/32") << m.dump(2);
  EXPECT_EQ(egress[0]["ports"], json::array({server.port()})) << m.dump(2);
}

namespace {

// Learns the quiet report script, then runs `body` under a manifest whose baseline is the
// learned profile (with `action`).
std::vector<json> run_against_baseline(const TempDir& dir, const std::string& body,
                                       const std::string& action, RunResult& result,
                                       json& profile) {
  copy_example(dir, "summarize.py");
  dir.write("data/a.txt", "one two three\n");
  RunResult learned = enclosure_in(
      dir, {"learn", "-o", dir.file("learned.json"), "--", "/usr/bin/python3", "summarize.py"});
  EXPECT_EQ(learned.exit_code, 0) << learned.err;
  profile = read_json(dir.file("learned.json.profile.json"));
  json m = read_json(dir.file("learned.json"));
  m["syscalls"] = {{"profile", "default"}};
  m["budgets"] = {{"wall_clock", "60s"}};
  m["baseline"]["action"] = action;
  std::ofstream(dir.file("baseline.json")) << m.dump(2);
  std::ofstream(dir.file("burst.py")) << body;
  result = enclosure_in(dir, {"run", "-m", dir.file("baseline.json"), "--events",
                              dir.file("events.jsonl"), "--", "/usr/bin/python3", "burst.py"});
  return read_events(dir.file("events.jsonl"));
}

}  // namespace

TEST(Baseline, BurstOfOpensAndANewSyscallAreAnomalies) {
  TempDir dir;
  RunResult r;
  json profile;
  std::vector<json> events =
      run_against_baseline(dir,
                           "import os\n"
                           "for i in range(4000): os.close(os.open('data/a.txt', os.O_RDONLY))\n"
                           "os.getpriority(os.PRIO_PROCESS, 0)\n"
                           "print('done')\n",
                           "alert", r, profile);
  ASSERT_TRUE(profile.is_object());
  uint64_t peak = profile["peaks"].value("opens", uint64_t{0});
  ASSERT_GT(peak, 0u);
  ASSERT_LT(peak * 10, 4000u) << "the burst must be at least ten times the learned peak";
  for (const json& s : profile["syscalls"])
    ASSERT_NE(s, "getpriority") << "getpriority must be new";
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("done"), std::string::npos);
  bool rate = false, syscall = false;
  for (const json& a : of_type(events, "anomaly")) {
    rate = rate || (a.value("what", "") == "rate" && a.value("metric", "") == "opens" &&
                    a.value("value", uint64_t{0}) > peak * 3);
    syscall =
        syscall || (a.value("what", "") == "syscall" && a.value("syscall", "") == "getpriority");
  }
  EXPECT_TRUE(rate) << r.err;
  EXPECT_TRUE(syscall) << r.err;
}

TEST(Baseline, QuietRunHasNoRateAnomaly) {
  TempDir dir;
  RunResult r;
  json profile;
  std::vector<json> events = run_against_baseline(
      dir, "import os\nos.close(os.open('data/a.txt', os.O_RDONLY))\n", "kill", r, profile);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const json& a : of_type(events, "anomaly"))
    EXPECT_NE(a.value("what", ""), "rate") << a.dump();
}

TEST(Baseline, KillActionEndsTheRun) {
  TempDir dir;
  RunResult r;
  json profile;
  std::vector<json> events =
      run_against_baseline(dir,
                           "import os, time\n"
                           "for i in range(4000): os.close(os.open('data/a.txt', os.O_RDONLY))\n"
                           "time.sleep(5)\n"
                           "print('survived')\n",
                           "kill", r, profile);
  EXPECT_EQ(r.out.find("survived"), std::string::npos) << r.out;
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.err;
  std::vector<json> exits = of_type(events, "exit");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].value("ended_by", ""), "anomaly") << exits[0].dump();
}

TEST(Learn, WithABaseKeepsItsMetadataAndDiffShowsTheNarrowing) {
  TempDir dir;
  copy_example(dir, "summarize.py");
  dir.write("data/a.txt", "one two\n");
  json base = harness::base_manifest("report-agent", {"/usr/bin/python3"});
  base["metadata"]["revision"] = 4;
  base["metadata"]["approved_by"] = "security@example.com";
  base["filesystem"]["write"] = {dir.path()};
  base["process"] = {{"cwd", dir.path()}};
  std::ofstream(dir.file("base.json")) << base.dump(2);
  RunResult learned =
      enclosure_in(dir, {"learn", "-m", dir.file("base.json"), "-o", dir.file("learned.json"), "--",
                         "/usr/bin/python3", "summarize.py"});
  ASSERT_EQ(learned.exit_code, 0) << learned.err;
  json m = read_json(dir.file("learned.json"));
  ASSERT_TRUE(m.is_object());
  EXPECT_EQ(m["metadata"]["name"], "report-agent") << m.dump(2);
  EXPECT_EQ(m["metadata"]["revision"], 5) << m.dump(2);
  EXPECT_EQ(m["metadata"]["approved_by"], "security@example.com") << m.dump(2);
  RunResult diff =
      run_command({enclosure_binary(), "diff", dir.file("base.json"), dir.file("learned.json")});
  EXPECT_EQ(diff.exit_code, 1) << diff.out << diff.err;  // they differ
  EXPECT_NE(diff.out.find("narrow"), std::string::npos) << diff.out;
}

// `run --observe` (used by learn only, not in --help) widens exec to every read grant; the start
// event says so, so that an auditor never mistakes an observation run for an enforced one.
TEST(Learn, ObservationRunsAreMarkedInTheStartEvent) {
  TempDir dir;
  json m = harness::base_manifest("observe", {"/usr/bin/python3"});
  std::ofstream(dir.file("m.json")) << m.dump();
  std::string agent =
      "import subprocess, sys; sys.exit(subprocess.run(['/usr/bin/env', 'true']).returncode)";
  for (bool observe : {false, true}) {
    SCOPED_TRACE(observe ? "observe" : "enforced");
    std::string events = dir.file(observe ? "observe.jsonl" : "enforced.jsonl");
    std::vector<std::string> args = {"run", "-m", dir.file("m.json"), "--events", events};
    if (observe) args.push_back("--observe");
    args.insert(args.end(), {"--", "/usr/bin/python3", "-c", agent});
    RunResult r = enclosure_in(dir, args);
    std::vector<json> start = of_type(read_events(events), "start");
    ASSERT_EQ(start.size(), 1u) << r.err;
    EXPECT_EQ(start[0]["observation"], observe) << start[0].dump();
    std::string tools = start[0]["enforcement"]["layers"]["tools"].dump();
    if (observe) {
      EXPECT_EQ(r.exit_code, 0) << r.err;  // /usr/bin/env is not a tool, but readable
      EXPECT_NE(tools.find("observation run"), std::string::npos) << tools;
    } else {
      EXPECT_NE(r.exit_code, 0) << "a program that is not a tool ran\n" << r.err;
      EXPECT_EQ(tools.find("observation run"), std::string::npos) << tools;
    }
  }
}
