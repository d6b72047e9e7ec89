// The collector and the audit trail, end to end with the real binary: many launchers into one
// collector, tampering found by `enclosure audit verify`, a collector killed and restarted
// mid-run, forged run ids refused, --audit-required, the metering channel and its cost budget,
// the metrics endpoint.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "harness.h"

extern char** environ;

using harness::BackgroundRun;
using harness::base_manifest;
using harness::python_agent;
using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using harness::wait_until;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    out.push_back(line);
  return out;
}

std::vector<nlohmann::json> records_of(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const std::string& line : lines_of(slurp(path))) {
    out.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return out;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const std::string& l : lines)
    out << l << "\n";
}

// `enclosure collect` in the background; its standard error goes to a file. With
// `socket_activated`, under systemd-socket-activate, which listens and starts the collector at
// the first connection, passing it the socket (LISTEN_FDS) as systemd does.
class CollectorProcess {
 public:
  CollectorProcess(const TempDir& dir, std::vector<std::string> extra = {},
                   bool socket_activated = false) {
    static int counter = 0;
    socket_ = dir.file("collector.sock");
    log_ = dir.file("audit.log");
    err_ = dir.file("collector-" + std::to_string(++counter) + ".err");
    std::vector<std::string> argv = {harness::enclosure_binary(), "collect",     "--listen",
                                     "unix:" + socket_,           "--audit-log", log_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (socket_activated) {
      argv.insert(argv.begin(), {"/usr/bin/systemd-socket-activate", "-l", socket_});
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    std::vector<char*> cargv;
    for (auto& a : argv)
      cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, cargv[0], &fa, &attr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("posix_spawn enclosure collect failed");
    std::string ready_text = socket_activated ? "Listening on" : "listening on";
    ready_ =
        wait_until([&] { return slurp(err_).find(ready_text) != std::string::npos || exited(); },
                   10000) &&
        !exited();
  }
  ~CollectorProcess() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }
  bool ready() const { return ready_; }
  const std::string& socket() const { return socket_; }
  const std::string& log() const { return log_; }
  std::string events_arg() const { return "unix:" + socket_; }
  std::string errors() const { return slurp(err_); }
  pid_t pid() const { return pid_; }
  // SIGKILL (a crash) or SIGTERM (a clean stop); waits until it is gone.
  int stop(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // "http://127.0.0.1:PORT/metrics" -> PORT
  int metrics_port() const {
    std::smatch m;
    std::string text = errors();
    if (!std::regex_search(text, m, std::regex("http://127\\.0\\.0\\.1:([0-9]+)/metrics")))
      return -1;
    return std::stoi(m[1]);
  }

 private:
  bool exited() {
    int status;
    if (reaped_) return true;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return true;
    }
    return false;
  }
  std::string socket_, log_, err_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  bool ready_ = false;
};

// A client that speaks the collector protocol by hand (a peer that lies).
class RawPeer {
 public:
  explicit RawPeer(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawPeer() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& line) {
    std::string l = line + "\n";
    return ::send(fd_, l.data(), l.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(l.size());
  }
  // The next reply line, or nullopt at EOF or after the timeout.
  std::optional<std::string> reply(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      size_t nl = in_.find('\n');
      if (nl != std::string::npos) {
        std::string line = in_.substr(0, nl);
        in_.erase(0, nl + 1);
        return line;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return std::nullopt;
      struct pollfd p = {fd_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      in_.append(buf, static_cast<size_t>(n));
    }
  }
  bool closed_by_collector(int timeout_ms = 5000) {
    while (!eof_) {
      if (!reply(timeout_ms) && !eof_) return false;
    }
    return true;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string in_;
};

std::string hex_id(char c, size_t n) {
  return std::string(n, c);
}

std::string event_line(const std::string& run, uint64_t seq, const std::string& type,
                       const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::ordered_json e;
  e["ts"] = "2026-11-28T16:00:00.000000000Z";
  e["run"] = run;
  e["seq"] = seq;
  e["type"] = type;
  e["pid"] = 1;
  e["manifest"] = {{"name", "forger"}, {"revision", nullptr}, {"digest", "sha256:0"}};
  for (auto it = extra.begin(); it != extra.end(); ++it)
    e[it.key()] = it.value();
  return e.dump();
}

// The audit records of one run, without what the collector added, by seq.
std::map<uint64_t, std::vector<nlohmann::json>> audit_records_of(
    const std::vector<nlohmann::json>& log, const std::string& run) {
  std::map<uint64_t, std::vector<nlohmann::json>> out;
  for (nlohmann::json r : log) {
    if (!r.is_object() || r.value("run", "") != run) continue;
    r.erase("prev");
    r.erase("received");
    out[r["seq"].get<uint64_t>()].push_back(r);
  }
  return out;
}

std::string run_id_of(const RunResult& r) {
  auto start = r.first("start");
  return start ? start->value("run", "") : "";
}

// Every event the run wrote to its file is in the audit log exactly once, unchanged.
void expect_every_event_once(const RunResult& r, const std::vector<nlohmann::json>& log) {
  std::string run = run_id_of(r);
  ASSERT_FALSE(run.empty()) << r.describe();
  auto audit = audit_records_of(log, run);
  EXPECT_EQ(audit.size(), r.events.size()) << "run " << run;
  for (const nlohmann::json& e : r.events) {
    uint64_t seq = e["seq"];
    auto it = audit.find(seq);
    if (it == audit.end()) {
      ADD_FAILURE() << "run " << run << ": seq " << seq << " (" << e["type"]
                    << ") is not in the audit log";
      continue;
    }
    ASSERT_EQ(it->second.size(), 1u) << "run " << run << ": seq " << seq << " is in the audit log "
                                     << it->second.size() << " times";
    EXPECT_EQ(it->second[0], e) << "run " << run << ": seq " << seq << " differs";
  }
}

RunResult verify(const std::vector<std::string>& files,
                 const std::vector<std::string>& options = {}) {
  std::vector<std::string> argv = {harness::enclosure_binary(), "audit", "verify"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.insert(argv.end(), files.begin(), files.end());
  return run_command(argv);
}

nlohmann::json python_manifest(const std::string& name) {
  auto m = base_manifest(name, {"/usr/bin/python3"});
  m["metadata"]["approved_by"] = "sec-review@example.com";
  m["metadata"]["reason"] = "CHG-42: collector tests";
  return m;
}

// A directory the agent (uid 65534) and the test share: the agent waits for flag files there.
std::string shared_directory(const TempDir& dir, nlohmann::json& manifest) {
  std::string share = dir.file("share");
  std::filesystem::create_directories(share);
  ::chmod(share.c_str(), 0777);
  manifest["filesystem"]["write"] = {share};
  return share;
}

void touch(const std::string& path) {
  std::ofstream(path) << "go";
}

// Python for the agent: waits (at most 30 s) until a flag file exists.
std::string wait_for(const std::string& flag) {
  return "\nimport time\nfor _ in range(1500):\n    if os.path.exists(" +
         nlohmann::json(flag).dump() + "):\n        break\n    time.sleep(0.02)\n";
}

std::string opens(int n) {
  return "\nfor _ in range(" + std::to_string(n) + "):\n    open('/usr/lib/os-release').close()\n";
}

// `n` opens of distinct missing paths: each an `open` event (the kernel counts repeats of one
// file instead of recording them).
std::string distinct_opens(int n) {
  return "\nfor i in range(" + std::to_string(n) +
         "):\n    t('missing', lambda: open('/enclosure-missing-%d' % i).close())\n";
}

}  // namespace

TEST(Collector, TwentyConcurrentRunsEveryEventOnceAndTheChainVerifies) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  auto m = python_manifest("concurrent");
  m["audit"] = {{"files", true}};
  std::vector<std::unique_ptr<BackgroundRun>> runs;
  for (int i = 0; i < 20; ++i) {
    runs.push_back(std::make_unique<BackgroundRun>(
        dir, m, python_agent(opens(20) + "print('done', flush=True)\n"),
        harness::RunOptions{.extra_args = {"--events", collector.events_arg()}}));
  }
  std::vector<RunResult> results;
  std::map<std::string, pid_t> launcher_of;
  for (auto& run : runs) {
    results.push_back(run->wait(120000));
    launcher_of[run_id_of(results.back())] = run->pid();
  }
  auto log = records_of(collector.log());
  std::set<std::string> ids;
  for (const RunResult& r : results) {
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_GT(r.of_type("open").size(), 20u) << r.describe();
    expect_every_event_once(r, log);
    ids.insert(run_id_of(r));
  }
  EXPECT_EQ(ids.size(), 20u);
  // The first record of each run carries who sent it, as the kernel saw it, and the host.
  for (const nlohmann::json& rec : log) {
    if (rec.value("type", "") != "start") continue;
    ASSERT_TRUE(rec.contains("received")) << rec.dump();
    const nlohmann::json& received = rec["received"];
    EXPECT_EQ(received["peer"]["uid"], 0);
    EXPECT_EQ(received["peer"]["pid"], launcher_of[rec["run"]]) << rec["run"];
    EXPECT_FALSE(received.value("hostname", "").empty());
    EXPECT_EQ(received.value("token_sha256", "").size(), 64u);
    EXPECT_TRUE(rec.contains("host"))
        << "the launcher's host report (kernel) is in the start record";
  }
  auto v = verify({collector.log()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("20 runs (20 closed, 0 open)"), std::string::npos) << v.out;
  EXPECT_EQ(collector.stop(SIGTERM), 0) << collector.errors();
  v = verify({collector.log()}, {"--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST(Collector, AuditVerifyFindsTamperingAtTheRightLine) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  auto m = python_manifest("tamper");
  m["audit"] = {{"files", true}};
  auto r = run_enclosure(dir, m, python_agent(opens(5)),
                         {.extra_args = {"--events", collector.events_arg()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(collector.stop(SIGTERM), 0);
  std::vector<std::string> original = lines_of(slurp(collector.log()));
  std::string head = slurp(collector.log() + ".head");
  ASSERT_GT(original.size(), 20u);
  ASSERT_EQ(verify({collector.log()}).exit_code, 0);

  // Each variant is a copy of the log with its head; verify must point at the line.
  struct Case {
    std::string name;
    std::function<void(std::vector<std::string>&)> tamper;
    size_t line;
    std::string why;
  };
  const size_t k = 10;  // a line in the middle: an open event
  ASSERT_NE(original[k - 1].find("\"type\":\"open\""), std::string::npos) << original[k - 1];
  std::vector<Case> cases = {
      {"byte",
       [&](auto& l) {
         char& c = l[k - 1][l[k - 1].find("\"ts\":\"") + 10];
         c = c == '1' ? '2' : '1';
       },
       k, "altered"},
      {"deleted", [&](auto& l) { l.erase(l.begin() + (k - 1)); }, k, "removed"},
      {"swapped", [&](auto& l) { std::swap(l[k - 1], l[k]); }, k, "out of order"},
      {"appended",
       [&](auto& l) {
         std::string last = l.back();
         l.push_back(last.substr(0, last.size() - 1) + ",\"forged\":true}");
       },
       original.size() + 1, "appended"},
      {"truncated", [&](auto& l) { l.resize(k - 1); }, k, "truncated"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> lines = original;
    c.tamper(lines);
    std::string copy = dir.file("tampered-" + c.name + ".log");
    write_lines(copy, lines);
    std::ofstream(copy + ".head") << head;
    auto v = verify({copy});
    EXPECT_EQ(v.exit_code, 1) << c.name << ": " << v.out << v.err;
    std::string expected = copy + ":" + std::to_string(c.line) + ": ";
    EXPECT_EQ(v.out.rfind(expected, 0), 0u) << c.name << ": expected " << expected << "\n" << v.out;
    EXPECT_NE(v.out.find(c.why), std::string::npos) << c.name << ": " << v.out;
  }
  // A file cut in the middle of a line.
  std::string cut = dir.file("tampered-cut.log");
  std::string content = slurp(collector.log());
  size_t at = 0;
  for (size_t i = 0; i < k - 1; ++i)
    at = content.find('\n', at) + 1;
  std::ofstream(cut, std::ios::binary) << content.substr(0, at + 40);
  std::ofstream(cut + ".head") << head;
  auto v = verify({cut});
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_EQ(v.out.rfind(cut + ":" + std::to_string(k) + ": ", 0), 0u) << v.out;
}

// The collector dies mid-run and comes back: the run goes on, the launcher reconnects,
// resends what was not acknowledged, and nothing is lost (the buffer did not overflow).
TEST(Collector, KilledAndRestartedMidRunNothingLostWhenTheBufferHolds) {
  TempDir dir;
  auto collector = std::make_unique<CollectorProcess>(dir);
  ASSERT_TRUE(collector->ready()) << collector->errors();
  auto m = python_manifest("restart");
  m["audit"] = {{"files", true}};
  std::string share = shared_directory(dir, m);
  auto agent = python_agent("print('ready', flush=True)" + wait_for(share + "/go1") + opens(30) +
                            "print('phase2', flush=True)" + wait_for(share + "/go2") + opens(10));
  BackgroundRun run(dir, m, agent, {.extra_args = {"--events", collector->events_arg()}});
  ASSERT_EQ(run.read_line(20000), std::optional<std::string>("ready"));
  ASSERT_EQ(collector->stop(SIGKILL), 128 + SIGKILL);
  touch(share + "/go1");
  ASSERT_EQ(run.read_line(20000), std::optional<std::string>("phase2"));
  // Events happened while no collector ran; the enclosure went on.
  collector = std::make_unique<CollectorProcess>(dir);
  ASSERT_TRUE(collector->ready()) << collector->errors();
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& rec : records_of(collector->log())) {
          if (rec.value("event", "") == "resumed") return true;
        }
        return false;
      },
      10000))
      << "the launcher did not reconnect";
  touch(share + "/go2");
  auto r = run.wait(30000);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.err.find("lost the collector"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("reconnected"), std::string::npos) << r.err;
  auto log = records_of(collector->log());
  expect_every_event_once(r, log);
  // Nothing overflowed, so no gap and no lost record of the launcher's buffer.
  for (const auto& rec : log)
    EXPECT_FALSE(rec.contains("first_seq")) << rec.dump();
  // The restarted collector recovered the chain and the open run.
  bool recovered = false;
  for (const auto& rec : log) {
    if (rec.value("event", "") == "started" && rec.contains("recovered")) {
      recovered = rec["recovered"].value("open_runs", 0) == 1;
    }
  }
  EXPECT_TRUE(recovered);
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_GE((*exit)["delivery"][0]["reconnects"].get<int>(), 1) << exit->dump();
  auto v = verify({collector->log()}, {"--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out;
}

// The same, with a buffer too small for what happens while the collector is away: the gap is
// reported to the collector as a `lost` record with its first and last seq, and the log still
// verifies.
TEST(Collector, KilledAndRestartedMidRunTheOverflowIsALostRecord) {
  TempDir dir;
  auto collector = std::make_unique<CollectorProcess>(dir);
  ASSERT_TRUE(collector->ready()) << collector->errors();
  auto m = python_manifest("overflow");
  m["audit"] = {{"files", true}};
  std::string share = shared_directory(dir, m);
  auto agent =
      python_agent("print('ready', flush=True)" + wait_for(share + "/go1") + distinct_opens(400) +
                   "print('phase2', flush=True)" + wait_for(share + "/go2") + distinct_opens(10));
  BackgroundRun run(
      dir, m, agent,
      {.extra_args = {"--events", collector->events_arg(), "--collector-buffer", "150"}});
  ASSERT_EQ(run.read_line(20000), std::optional<std::string>("ready"));
  ASSERT_EQ(collector->stop(SIGKILL), 128 + SIGKILL);
  touch(share + "/go1");
  ASSERT_EQ(run.read_line(20000), std::optional<std::string>("phase2"));
  collector = std::make_unique<CollectorProcess>(dir);
  ASSERT_TRUE(collector->ready()) << collector->errors();
  touch(share + "/go2");
  auto r = run.wait(30000);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string run_id = run_id_of(r);
  auto log = records_of(collector->log());
  auto audit = audit_records_of(log, run_id);
  // Seqs the log holds, and those that launcher `lost` records cover.
  std::set<uint64_t> covered;
  size_t lost_records = 0;
  uint64_t lost_count = 0;
  for (const auto& [seq, recs] : audit) {
    ASSERT_EQ(recs.size(), 1u) << "seq " << seq << " twice";
    const nlohmann::json& rec = recs[0];
    if (rec["type"] == "lost" && rec.contains("first_seq")) {
      ++lost_records;
      EXPECT_EQ(rec["first_seq"], seq);
      uint64_t first = rec["first_seq"], last = rec["last_seq"];
      EXPECT_EQ(rec["count"], last - first + 1);
      lost_count += last - first + 1;
      for (uint64_t s = first; s <= last; ++s)
        covered.insert(s);
    } else {
      covered.insert(seq);
      // Unchanged where present.
      EXPECT_EQ(rec, r.events.at(seq)) << "seq " << seq;
    }
  }
  EXPECT_GE(lost_records, 1u) << "400 opens cannot fit a 150-line buffer";
  EXPECT_GT(lost_count, 100u);
  // Every seq of the run is either in the log or covered by a lost record: no silent gap.
  for (const nlohmann::json& e : r.events) {
    EXPECT_TRUE(covered.count(e["seq"].get<uint64_t>()))
        << "seq " << e["seq"] << " neither delivered nor reported lost";
  }
  EXPECT_EQ(covered.size(), r.events.size());
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_EQ(audit.rbegin()->second[0]["type"], "exit") << "the exit record arrived after the gap";
  auto v = verify({collector->log()}, {"--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out;
}

TEST(Collector, APeerThatForgesAnotherRunsIdIsRefused) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  auto m = python_manifest("victim");
  std::string share = shared_directory(dir, m);
  BackgroundRun victim(dir, m, python_agent("print('ready', flush=True)" + wait_for(share + "/go")),
                       {.extra_args = {"--events", collector.events_arg()}});
  ASSERT_EQ(victim.read_line(20000), std::optional<std::string>("ready"));
  std::string victim_run;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& rec : records_of(collector.log())) {
          if (rec.value("type", "") == "start" && rec["received"]["peer"]["pid"] == victim.pid()) {
            victim_run = rec["run"];
          }
        }
        return !victim_run.empty();
      },
      10000));

  // 1. A hello that claims the victim's run without its token.
  {
    RawPeer peer(collector.socket());
    ASSERT_TRUE(peer.connected());
    peer.send(R"({"hello":"enclosure-audit/1","run":")" + victim_run + R"(","token":")" +
              hex_id('1', 64) + "\"}");
    auto reply = peer.reply();
    ASSERT_TRUE(reply);
    EXPECT_NE(reply->find("\"error\""), std::string::npos) << *reply;
    EXPECT_TRUE(peer.closed_by_collector());
  }
  // 2. A peer with a run of its own that writes a record for the victim's run.
  std::string forger_run = hex_id('f', 32);
  {
    RawPeer peer(collector.socket());
    ASSERT_TRUE(peer.connected());
    peer.send(R"({"hello":"enclosure-audit/1","run":")" + forger_run + R"(","token":")" +
              hex_id('2', 64) + "\"}");
    auto welcome = peer.reply();
    ASSERT_TRUE(welcome);
    EXPECT_NE(welcome->find("\"welcome\""), std::string::npos) << *welcome;
    peer.send(event_line(forger_run, 0, "start"));
    auto ack = peer.reply();
    ASSERT_TRUE(ack);
    EXPECT_EQ(*ack, "{\"ack\":0}");
    peer.send(event_line(victim_run, 7, "deny", {{"forged", true}}));
    peer.send(event_line(forger_run, 1, "open", {{"after_refusal", true}}));
    auto refusal = peer.reply();
    ASSERT_TRUE(refusal);
    EXPECT_NE(refusal->find("on a connection bound to run " + forger_run), std::string::npos)
        << *refusal;
    EXPECT_TRUE(peer.closed_by_collector());
  }
  touch(share + "/go");
  auto r = victim.wait(30000);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto log = records_of(collector.log());
  expect_every_event_once(r, log);
  size_t refusals = 0;
  for (const auto& rec : log) {
    EXPECT_FALSE(rec.contains("forged")) << "a forged record reached the log: " << rec.dump();
    EXPECT_FALSE(rec.contains("after_refusal"))
        << "a line after the refusal was written: " << rec.dump();
    if (rec.value("type", "") == "collector" && rec.value("event", "") == "refused") {
      ++refusals;
      EXPECT_EQ(rec["about_run"], victim_run) << rec.dump();
      EXPECT_EQ(rec["peer"]["pid"], ::getpid()) << "the refused peer's credentials are recorded";
    }
  }
  EXPECT_EQ(refusals, 2u);
  auto v = verify({collector.log()});
  EXPECT_EQ(v.exit_code, 0) << v.out;
  EXPECT_NE(v.out.find("open: run " + forger_run), std::string::npos) << v.out;
}

// Ownership of a run is the token: a launcher that reconnects with it gets its run back (even
// before its old connection's end was noticed), from the seq the collector already holds.
TEST(Collector, TheTokenTakesARunBackAndNothingElseDoes) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  std::string run = hex_id('a', 32), token = hex_id('7', 64);
  std::string hello = R"({"hello":"enclosure-audit/1","run":")" + run + R"(","token":")";
  RawPeer first(collector.socket());
  first.send(hello + token + "\"}");
  ASSERT_TRUE(first.reply());
  first.send(event_line(run, 0, "start"));
  first.send(event_line(run, 1, "open"));
  ASSERT_TRUE(wait_until(
      [&] { return first.reply(200) == std::optional<std::string>("{\"ack\":1}"); }, 5000));
  RawPeer intruder(collector.socket());
  intruder.send(hello + hex_id('8', 64) + "\"}");
  auto refusal = intruder.reply();
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->find("belongs to another connection"), std::string::npos) << *refusal;
  RawPeer again(collector.socket());
  again.send(hello + token + "\"}");
  auto welcome = again.reply();
  ASSERT_TRUE(welcome);
  EXPECT_NE(welcome->find("\"next_seq\":2"), std::string::npos) << *welcome;
  EXPECT_TRUE(first.closed_by_collector()) << "the old connection was kept";
  again.send(event_line(run, 1, "open"));  // a resend: dropped as a duplicate
  again.send(event_line(run, 2, "exit"));
  EXPECT_TRUE(wait_until(
      [&] { return again.reply(200) == std::optional<std::string>("{\"ack\":2}"); }, 5000));
  auto audit = audit_records_of(records_of(collector.log()), run);
  ASSERT_EQ(audit.size(), 3u);
  for (const auto& [seq, recs] : audit)
    EXPECT_EQ(recs.size(), 1u) << "seq " << seq;
  auto v = verify({collector.log()}, {"--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out;
}

// Under systemd socket activation the collector adopts the socket it is passed: the first
// launcher's connection starts it, and nothing is lost in between.
TEST(Collector, TakesTheSocketSystemdPasses) {
  TempDir dir;
  CollectorProcess activator(dir, {}, true);
  ASSERT_TRUE(activator.ready()) << activator.errors();
  auto r = run_enclosure(dir, python_manifest("activated"), python_agent("print('ran')"),
                         {.extra_args = {"--events", activator.events_arg()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe() << activator.errors();
  auto log = records_of(activator.log());
  ASSERT_FALSE(log.empty()) << activator.errors();
  EXPECT_EQ(log[0]["event"], "started");
  EXPECT_EQ(log[0]["socket_activation"], true) << log[0].dump();
  expect_every_event_once(r, log);
  auto v = verify({activator.log()}, {"--require-closed"});
  EXPECT_EQ(v.exit_code, 0) << v.out;
}

TEST(Collector, AnUnreachableCollectorRefusesTheRunWith125) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest("unreachable"), python_agent("print('ran')"),
                         {.extra_args = {"--events", "unix:" + dir.file("nobody.sock")}});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("cannot reach the collector"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("enclosure collect --listen unix:" + dir.file("nobody.sock")),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("another --events destination"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("ran"), std::string::npos) << "the agent ran";
  EXPECT_FALSE(r.first("start")) << r.describe();
}

TEST(Collector, AuditRequiredEndsTheRunWhenTheCollectorDies) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  BackgroundRun run(
      dir, python_manifest("required"),
      python_agent("import time\nprint('ready', flush=True)\ntime.sleep(30)\nprint('survived')"),
      {.extra_args = {"--events", collector.events_arg(), "--audit-required"}});
  ASSERT_EQ(run.read_line(20000), std::optional<std::string>("ready"));
  // The start record was acknowledged before the agent ran.
  bool started = false;
  for (const auto& rec : records_of(collector.log()))
    started = started || rec.value("type", "") == "start";
  EXPECT_TRUE(started);
  auto killed = std::chrono::steady_clock::now();
  collector.stop(SIGKILL);
  auto r = run.wait(30000);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_LT(took, 10.0) << "the agent was not ended promptly";
  EXPECT_EQ(r.out.find("survived"), std::string::npos);
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["ended_by"], "audit_unavailable");
  EXPECT_EQ((*exit)["exit_code"], 125);
  EXPECT_NE(r.err.find("--audit-required"), std::string::npos) << r.err;
}

TEST(Collector, AuditRequiredNeedsACollector) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest("required"), python_agent("print('ran')"),
                         {.extra_args = {"--audit-required"}});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("--audit-required needs a collector"), std::string::npos) << r.err;
}

TEST(Collector, MetricsEndpointServesPrometheusText) {
  TempDir dir;
  CollectorProcess collector(dir, {"--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(collector.ready()) << collector.errors();
  int port = collector.metrics_port();
  ASSERT_GT(port, 0) << collector.errors();
  // One run with a denied system call.
  auto r = run_enclosure(dir, python_manifest("metrics"),
                         python_agent("import ctypes\nR['ptrace'] = sc(101, 0, 0, 0, 0)\n"),
                         {.extra_args = {"--events", collector.events_arg()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_FALSE(r.denials("ptrace").empty()) << r.describe();
  auto scrape = [&](const std::string& request) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      ::send(s, request.data(), request.size(), MSG_NOSIGNAL);
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(s, buf, sizeof buf, 0)) > 0)
        response.append(buf, static_cast<size_t>(n));
    }
    ::close(s);
    return response;
  };
  std::string response = scrape("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(response.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos)
      << response;
  std::string body = response.substr(response.find("\r\n\r\n") + 4);
  // Valid exposition: every line a comment (HELP/TYPE) or a sample with a numeric value, each
  // sample's metric declared by a TYPE line before it (a histogram's by its family's).
  std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)$)");
  std::regex type_line(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::set<std::string> declared;
  std::map<std::string, double> values;
  auto is_declared = [&](const std::string& name) {
    if (declared.count(name)) return true;
    std::smatch part;
    static const std::regex histogram_sample("^(.*)_(bucket|sum|count)$");
    return std::regex_match(name, part, histogram_sample) &&
           declared.count(std::string(part[1]) + " histogram");
  };
  for (const std::string& line : lines_of(body)) {
    std::smatch m;
    if (std::regex_match(line, m, type_line)) {
      declared.insert(m[1]);
      declared.insert(std::string(m[1]) + " " + std::string(m[2]));
    } else if (line.rfind("# HELP ", 0) == 0) {
      continue;
    } else {
      ASSERT_TRUE(std::regex_match(line, m, sample)) << "not exposition text: " << line;
      EXPECT_TRUE(is_declared(m[1])) << "no TYPE before " << line;
      values[line.substr(0, line.rfind(' '))] = std::stod(m[6]);
    }
  }
  EXPECT_EQ(values["enclosure_runs_finished_total{manifest=\"metrics\"}"], 1);
  EXPECT_EQ(values["enclosure_runs_started_total{manifest=\"metrics\"}"], 1);
  EXPECT_EQ(values["enclosure_run_duration_seconds_count"], 1);
  EXPECT_GT(values["enclosure_run_duration_seconds_sum"], 0);
  EXPECT_EQ(values["enclosure_run_duration_seconds_bucket{le=\"+Inf\"}"], 1);
  EXPECT_EQ(values["enclosure_runs_active"], 0);
  EXPECT_EQ(values["enclosure_events_total{type=\"start\"}"], 1);
  EXPECT_GE(values["enclosure_denies_total{section=\"syscalls\"}"], 1);
  EXPECT_EQ(values["enclosure_lost_events_total"], 0);
  EXPECT_TRUE(values.count("enclosure_denies_total{section=\"network\"}")) << "zero series";
  EXPECT_TRUE(values.count("enclosure_budget_terminations_total{budget=\"wall_clock\"}"));
  EXPECT_EQ(values["enclosure_build_info{version=\"" ENCLOSURE_VERSION "\"}"], 1);
  EXPECT_TRUE(values.count("enclosure_collector_connections_open"));
  // Asked for OpenMetrics, as Prometheus asks: that format, ending with # EOF.
  std::string om = scrape(
      "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text;version=1.0.0,"
      "text/plain;version=0.0.4;q=0.5\r\n\r\n");
  ASSERT_EQ(om.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << om;
  EXPECT_NE(om.find("Content-Type: application/openmetrics-text; version=1.0.0"), std::string::npos)
      << om;
  EXPECT_EQ(om.substr(om.size() - 6), "# EOF\n");
  EXPECT_NE(om.find("# TYPE enclosure_runs_finished counter\n"), std::string::npos) << om;
  EXPECT_EQ(scrape("GET / HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 404", 0), 0u);
  // Non-loopback addresses are refused.
  TempDir other;
  auto refused = run_command({harness::enclosure_binary(), "collect", "--listen",
                              "unix:" + other.file("c.sock"), "--audit-log",
                              other.file("audit.log"), "--metrics", "0.0.0.0:0"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("not a loopback address"), std::string::npos) << refused.err;
}

TEST(Collector, AuditShowTellsWhoApprovedWhatRanAndWhatWasDenied) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  auto r = run_enclosure(
      dir, python_manifest("shown"),
      python_agent("R['ptrace'] = sc(101, 0, 0, 0, 0)\nopen('/usr/lib/os-release').close()\n"),
      {.extra_args = {"--events", collector.events_arg()}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string run = run_id_of(r);
  auto show =
      run_command({harness::enclosure_binary(), "audit", "show", collector.log(), "--run", run});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  for (const std::string& expected :
       {"run " + run, std::string("approved by:  sec-review@example.com"),
        std::string("reason:       CHG-42: collector tests"),
        std::string("may read:     /usr, /lib, /lib64, /bin"), std::string("DENY"),
        std::string("ptrace"), std::string("ended:"), std::string("exec")}) {
    EXPECT_NE(show.out.find(expected), std::string::npos) << expected << "\n" << show.out;
  }
  auto denies = run_command({harness::enclosure_binary(), "audit", "show", collector.log(), "--run",
                             run, "--type", "deny", "--json"});
  ASSERT_EQ(denies.exit_code, 0);
  auto lines = lines_of(denies.out);
  ASSERT_FALSE(lines.empty());
  for (const std::string& l : lines)
    EXPECT_EQ(nlohmann::json::parse(l)["type"], "deny") << l;
}

TEST(Metering, AReportOverTheCostBudgetEndsTheRunWith124) {
  TempDir dir;
  auto m = python_manifest("metered");
  m["budgets"]["cost_usd"] = 0.01;
  auto agent = python_agent(R"(
import time
fd = int(os.environ["ENCLOSURE_METER_FD"])
for i in range(3):
    os.write(fd, b'{"cost_usd": 0.004, "note": "gpt call %d"}\n' % i)
    time.sleep(0.1)
print("still running", flush=True)
time.sleep(30)
print("survived", flush=True)
)");
  auto started = std::chrono::steady_clock::now();
  auto r = run_enclosure(dir, m, agent, {.extra_args = {"--grace", "500ms"}});
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_LT(took, 10.0);
  EXPECT_EQ(r.out.find("survived"), std::string::npos);
  auto costs = r.of_type("cost");
  ASSERT_EQ(costs.size(), 3u) << r.describe();
  EXPECT_EQ(costs[0]["cost_usd"], "$0.004");
  EXPECT_EQ(costs[0]["note"], "gpt call 0");
  EXPECT_EQ(costs[1]["total_reported"], "$0.008");
  EXPECT_EQ(costs[2]["total_reported"], "$0.012");
  EXPECT_EQ(costs[2]["total"], "$0.012");
  auto budgets = r.of_type("budget");
  ASSERT_EQ(budgets.size(), 1u) << r.describe();
  EXPECT_EQ(budgets[0]["name"], "cost_usd");
  EXPECT_EQ(budgets[0]["limit"], "$0.01");
  EXPECT_EQ(budgets[0]["value"], "$0.012");
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_EQ((*exit)["ended_by"], "budget");
  EXPECT_EQ((*exit)["budget"], "cost_usd");
  EXPECT_EQ((*exit)["budgets"]["cost_usd"]["reported"], "$0.012");
}

// The kernel's tool-price check sees the reported sum: a tool call that alone would fit the
// budget ends the run because of what was reported before it.
TEST(Metering, ReportedCostCountsInTheKernelsToolPriceCheck) {
  TempDir dir;
  auto m = base_manifest("metered-tools", {"/usr/bin/python3", "/usr/bin/true"});
  m["tools"][1]["cost_usd"] = 0.004;
  m["budgets"]["cost_usd"] = 0.01;
  auto agent = python_agent(R"(
import subprocess, time
fd = int(os.environ["ENCLOSURE_METER_FD"])
os.write(fd, b'{"cost_usd": 0.008}\n')
time.sleep(0.3)
subprocess.run(["/usr/bin/true"])
time.sleep(30)
print("survived", flush=True)
)");
  auto r = run_enclosure(dir, m, agent, {.extra_args = {"--grace", "500ms"}});
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  auto budgets = r.of_type("budget");
  ASSERT_EQ(budgets.size(), 1u) << r.describe();
  EXPECT_EQ(budgets[0]["name"], "cost_usd");
  EXPECT_EQ(budgets[0]["enforced_by"], "bpf") << budgets[0].dump();
  EXPECT_EQ(budgets[0]["value"], "$0.012");
}

TEST(Metering, MalformedReportsAreIgnoredAndLogged) {
  TempDir dir;
  auto m = python_manifest("malformed");
  m["budgets"]["cost_usd"] = 1;
  auto agent = python_agent(R"(
fd = int(os.environ["ENCLOSURE_METER_FD"])
os.write(fd, b'not json\n')
os.write(fd, b'{"cost_usd": -1}\n')
os.write(fd, b'{"cost_usd": "0.5"}\n')
os.write(fd, b'{"cost_usd": 1e999}\n')
os.write(fd, b'{"cost_usd": 0.1, "note": "' + b'x' * 5000 + b'"}\n')
os.write(fd, b'{"cost_usd": 0.25, "note": "ok"}\n')
)");
  auto r = run_enclosure(dir, m, agent);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto costs = r.of_type("cost");
  ASSERT_EQ(costs.size(), 6u) << r.describe();
  std::vector<std::string> reasons = {"not JSON", "negative", "not a number", "not finite",
                                      "longer than 4096"};
  for (size_t i = 0; i < reasons.size(); ++i) {
    ASSERT_TRUE(costs[i].contains("rejected")) << costs[i].dump();
    EXPECT_NE(costs[i]["rejected"].get<std::string>().find(reasons[i]), std::string::npos)
        << costs[i].dump();
    EXPECT_FALSE(costs[i].contains("total_reported")) << costs[i].dump();
  }
  EXPECT_EQ(costs[5]["total_reported"], "$0.25");
  EXPECT_EQ(costs[5]["note"], "ok");
  EXPECT_TRUE(r.of_type("budget").empty());
  auto exit = r.first("exit");
  ASSERT_TRUE(exit);
  EXPECT_EQ((*exit)["budgets"]["cost_usd"]["reported"], "$0.25");
  EXPECT_EQ((*exit)["budgets"]["cost_usd"]["rejected_reports"], 5);
  EXPECT_EQ((*exit)["budgets"]["cost_usd"]["reports"], 1);
}

// Under systemd (Type=notify) the collector says when it listens and when it stops.
TEST(Collector, NotifiesSystemdWhenReadyAndWhenStopping) {
  TempDir dir;
  std::string path = dir.file("notify.sock");
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto receive = [fd]() -> std::string {
    struct pollfd p {
      fd, POLLIN, 0
    };
    if (::poll(&p, 1, 10000) != 1) return "";
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  };
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  CollectorProcess collector(dir);
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(collector.ready()) << collector.errors();
  std::string ready = receive();
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_NE(ready.find("STATUS=listening on unix:" + collector.socket()), std::string::npos)
      << ready;
  EXPECT_EQ(collector.stop(SIGTERM), 0) << collector.errors();
  std::string stopping = receive();
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
  ::close(fd);
}

namespace {

// utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
uint64_t cpu_ticks(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

// `count` connections to 127.0.0.1:port that send nothing (non-blocking connects: past the
// listen backlog they stay pending).
std::vector<int> idle_connections(int port, int count) {
  std::vector<int> fds;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < count; ++i) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) break;
    ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fds.push_back(s);
  }
  return fds;
}

// One GET /metrics; the response, or "" when none came within 15 s.
std::string scrape_metrics(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    ::send(s, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[8192];
    struct pollfd p = {s, POLLIN, 0};
    while (::poll(&p, 1, 15000) == 1) {
      ssize_t n = ::recv(s, buf, sizeof buf, 0);
      if (n <= 0) break;
      response.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(s);
  return response;
}

// The endpoint under a pile of idle connections: the collector stays idle (a resource check:
// its CPU time over 2 s) and serves a fresh scrape once they are gone.
void expect_idle_under_connection_flood(const CollectorProcess& collector, int port) {
  std::vector<int> idle = idle_connections(port, 300);
  ASSERT_EQ(idle.size(), 300u);
  ::usleep(300000);  // let the collector take what it will
  uint64_t before = cpu_ticks(collector.pid());
  ::sleep(2);
  uint64_t used = cpu_ticks(collector.pid()) - before;
  long hz = ::sysconf(_SC_CLK_TCK);
  EXPECT_LT(used, static_cast<uint64_t>(hz / 5))
      << "the collector used " << used << " ticks of CPU in 2 s with idle metrics connections";
  for (int fd : idle)
    ::close(fd);
  std::string response = scrape_metrics(port);
  EXPECT_EQ(response.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << response;
}

}  // namespace

TEST(Collector, RetentionKeepsTwoRotatedFilesAndTheKeptChainVerifies) {
  TempDir dir;
  CollectorProcess collector(dir, {"--rotate-size", "4KiB", "--keep", "2"});
  ASSERT_TRUE(collector.ready()) << collector.errors();
  for (int i = 0; i < 6; ++i) {
    auto r = run_enclosure(dir, python_manifest("retention"), python_agent("R['i'] = 1\n"),
                           {.extra_args = {"--events", collector.events_arg()}});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  ASSERT_EQ(collector.stop(SIGTERM), 0) << collector.errors();
  std::string log = collector.log();
  struct stat st {};
  ASSERT_EQ(::stat((log + ".1").c_str(), &st), 0);
  ASSERT_EQ(::stat((log + ".2").c_str(), &st), 0);
  EXPECT_NE(::stat((log + ".3").c_str(), &st), 0) << "a third rotated file was kept";
  // What was pruned is named in rotation records, with the hash of its last line.
  std::set<std::string> pruned;
  for (const std::string& file : {log + ".2", log + ".1", log}) {
    for (const nlohmann::json& rec : records_of(file)) {
      if (rec.value("event", "") != "rotated" || !rec.contains("pruned")) continue;
      for (const nlohmann::json& p : rec["pruned"]) {
        pruned.insert(p["file"].get<std::string>());
        EXPECT_EQ(p["last_sha256"].get<std::string>().size(), 64u) << p.dump();
        EXPECT_GT(p["lines"].get<uint64_t>(), 0u) << p.dump();
      }
    }
  }
  EXPECT_TRUE(pruned.count("audit.log.3")) << "no rotation record names a pruned file";
  auto v = verify({log + ".2", log + ".1", log});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("pruned by the collector's retention"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("audit.log.3"), std::string::npos) << v.out;
}

TEST(Collector, MetricsConnectionsAreCappedAndIdleOnesCostNothing) {
  TempDir dir;
  CollectorProcess collector(dir, {"--metrics", "127.0.0.1:0", "--metrics-max-connections", "8"});
  ASSERT_TRUE(collector.ready()) << collector.errors();
  int port = collector.metrics_port();
  ASSERT_GT(port, 0) << collector.errors();
  // The cap: 8 served at once, the rest wait in the backlog.
  expect_idle_under_connection_flood(collector, port);
  // Out of descriptors (the 1024-descriptor case, made small): accept4 fails with EMFILE, and
  // the listener waits for the next tick instead of spinning.
  size_t open_fds = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(collector.pid()) + "/fd"))
    ++open_fds;
  struct rlimit few = {open_fds + 2, open_fds + 2};
  ASSERT_EQ(::prlimit(collector.pid(), RLIMIT_NOFILE, &few, nullptr), 0) << std::strerror(errno);
  expect_idle_under_connection_flood(collector, port);
  EXPECT_EQ(collector.stop(SIGTERM), 0) << collector.errors();
}

// Launchers' connections when the collector is out of descriptors: accept4 fails with EMFILE and
// the listener waits for the next tick (or a closed connection) instead of spinning; once
// descriptors are free again, a run's records still reach the log.
TEST(Collector, OutOfDescriptorsTheListenerWaitsInsteadOfSpinning) {
  TempDir dir;
  CollectorProcess collector(dir);
  ASSERT_TRUE(collector.ready()) << collector.errors();
  size_t open_fds = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(collector.pid()) + "/fd"))
    ++open_fds;
  // The soft limit only: raising it back needs no privilege.
  struct rlimit old {};
  ASSERT_EQ(::prlimit(collector.pid(), RLIMIT_NOFILE, nullptr, &old), 0) << std::strerror(errno);
  struct rlimit few = {open_fds + 2, old.rlim_max};
  ASSERT_EQ(::prlimit(collector.pid(), RLIMIT_NOFILE, &few, nullptr), 0) << std::strerror(errno);
  std::vector<int> waiting;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string path = collector.events_arg().substr(5);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  for (int i = 0; i < 50; ++i) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) break;
    ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    waiting.push_back(s);
  }
  ::usleep(300000);
  uint64_t before = cpu_ticks(collector.pid());
  ::sleep(2);
  uint64_t used = cpu_ticks(collector.pid()) - before;
  EXPECT_LT(used, static_cast<uint64_t>(::sysconf(_SC_CLK_TCK) / 5))
      << "the collector used " << used << " ticks of CPU in 2 s, out of descriptors";
  for (int fd : waiting)
    ::close(fd);
  ASSERT_EQ(::prlimit(collector.pid(), RLIMIT_NOFILE, &old, nullptr), 0);
  auto r = run_enclosure(dir, python_manifest("after-emfile"), python_agent("R['i'] = 1\n"),
                         {.extra_args = {"--events", collector.events_arg()}});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(collector.stop(SIGTERM), 0) << collector.errors();
}
