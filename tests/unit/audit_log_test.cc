// The audit log: how the chain is built, and that `audit verify` finds every kind of tampering
// at the right line (one byte changed, a line deleted, two lines swapped, a line appended or
// inserted by hand, the file truncated); seq gaps and their `lost` records; the writer's
// rotation, recovery after a crash and single-instance lock; the collector protocol's line
// scanner; metrics exposition; the `audit show` timeline.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "launcher/base/error.h"
#include "launcher/events/audit_chain.h"
#include "launcher/events/audit_log.h"
#include "launcher/events/audit_timeline.h"
#include "launcher/events/collector_protocol.h"
#include "launcher/events/event.h"
#include "launcher/events/metrics.h"

using namespace launcher;

namespace {

const std::string kRunA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kRunB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

std::string event(const std::string& run, uint64_t seq, const std::string& type,
                  const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) {
  nlohmann::ordered_json e;
  e["ts"] = "2026-11-28T16:02:" + std::to_string(10 + seq) + ".000000000Z";
  e["run"] = run;
  e["seq"] = seq;
  e["type"] = type;
  e["pid"] = 42;
  e["manifest"] = {{"name", "agent-" + run.substr(0, 1)}, {"revision", 1}, {"digest", "sha256:00"}};
  for (auto it = extra.begin(); it != extra.end(); ++it)
    e[it.key()] = it.value();
  return encode_event(e);
}

std::string collector_record(const std::string& what) {
  nlohmann::ordered_json e;
  e["ts"] = "2026-11-28T16:02:00.000000000Z";
  e["type"] = "collector";
  e["event"] = what;
  return encode_event(e);
}

// Lines of a log, chained as the collector chains them.
struct Chain {
  std::vector<std::string> lines;
  std::string prev = std::string(kGenesisHash);
  void add(const std::string& object_line) {
    lines.push_back(chain_line(prev, object_line));
    prev = line_hash(lines.back());
  }
  std::string content() const {
    std::string s;
    for (const std::string& l : lines)
      s += l + "\n";
    return s;
  }
  AuditHead head() const { return {lines.size(), line_hash(lines.back())}; }
};

// Two runs, interleaved; 12 lines.
//  1 collector started   2 A start   3 B start   4 A open    5 B open   6 A open
//  7 A deny              8 B exit    9 A open   10 A budget 11 A exit  12 collector stopped
Chain sample() {
  Chain c;
  c.add(collector_record("started"));
  c.add(event(kRunA, 0, "start", {{"approved_by", "sec@example.com"}}));
  c.add(event(kRunB, 0, "start"));
  c.add(event(kRunA, 1, "open", {{"path", "/data/a"}}));
  c.add(event(kRunB, 1, "open", {{"path", "/data/b"}}));
  c.add(event(kRunA, 2, "open", {{"path", "/data/c"}}));
  c.add(event(kRunA, 3, "deny", {{"section", "syscalls"}, {"syscall", "ptrace"}}));
  c.add(event(kRunB, 2, "exit", {{"ended_by", "exited"}}));
  c.add(event(kRunA, 4, "open", {{"path", "/data/d"}}));
  c.add(event(kRunA, 5, "budget", {{"name", "cost_usd"}, {"action", "terminate"}}));
  c.add(event(kRunA, 6, "exit", {{"ended_by", "budget"}}));
  c.add(collector_record("stopped"));
  return c;
}

AuditVerification verify(const std::string& content, std::optional<AuditHead> head = std::nullopt) {
  return verify_audit({{"audit.log", content, head}});
}

std::string describe(const AuditVerification& v) {
  std::string s;
  for (const auto& p : v.problems)
    s += "line " + std::to_string(p.line) + ": " + p.why + "\n";
  return s.empty() ? "(no problems)" : s;
}

// The first problem must be at `line`, and one of the problems there must mention `word`.
void expect_first_problem(const AuditVerification& v, uint64_t line, const std::string& word) {
  ASSERT_FALSE(v.ok()) << "tampering not detected";
  EXPECT_EQ(v.problems[0].line, line) << describe(v);
  bool said = false;
  for (const auto& p : v.problems)
    said = said || (p.line == line && p.why.find(word) != std::string::npos);
  EXPECT_TRUE(said) << "no problem at line " << line << " mentions \"" << word << "\"\n"
                    << describe(v);
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines)
    s += l + "\n";
  return s;
}

class TempDirectory {
 public:
  TempDirectory() {
    char tmpl[] = "/tmp/audit-log-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDirectory() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<AuditHead> head_of(const std::string& path) {
  std::string error;
  return AuditHead::parse(slurp(path + ".head"), error);
}

}  // namespace

TEST(AuditChain, LineHashIsSha256OfTheBytes) {
  EXPECT_EQ(line_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(kGenesisHash, std::string(64, '0'));
}

TEST(AuditChain, EachLineCarriesTheHashOfThePreviousOne) {
  Chain c = sample();
  ASSERT_EQ(c.lines.size(), 12u);
  for (size_t i = 0; i < c.lines.size(); ++i) {
    auto j = nlohmann::json::parse(c.lines[i]);
    std::string expected = i == 0 ? std::string(kGenesisHash) : line_hash(c.lines[i - 1]);
    EXPECT_EQ(j["prev"], expected) << "line " << i + 1;
    // "prev" is the first member, the rest is the record unchanged.
    EXPECT_EQ(c.lines[i].rfind("{\"prev\":\"", 0), 0u);
  }
  EXPECT_EQ(append_members(R"({"a":1})", R"("b":2)"), R"({"a":1,"b":2})");
}

TEST(AuditChain, AnIntactLogVerifies) {
  Chain c = sample();
  auto v = verify(c.content(), c.head());
  EXPECT_TRUE(v.ok()) << describe(v);
  EXPECT_EQ(v.lines, 12u);
  ASSERT_EQ(v.runs.size(), 2u);
  EXPECT_TRUE(v.runs[0].closed);
  EXPECT_EQ(v.runs[0].ended_by, "budget");
  EXPECT_EQ(v.runs[0].records, 7u);
  EXPECT_TRUE(v.runs[1].closed);
  EXPECT_TRUE(verify(c.content()).ok());
}

TEST(AuditChain, OneByteChangedInALineIsFoundAtThatLine) {
  Chain c = sample();
  std::string& line = c.lines[5];  // line 6: A open /data/c
  line[line.find("/data/c") + 6] = 'x';
  expect_first_problem(verify(join(c.lines), c.head()), 6, "altered");
  // Without the head too: the next line vouches for the one after it.
  expect_first_problem(verify(join(c.lines)), 6, "altered");
}

TEST(AuditChain, OneByteChangedInAPrevIsFoundAtThatLine) {
  Chain c = sample();
  std::string& line = c.lines[6];  // line 7
  line[10] = line[10] == 'a' ? 'b' : 'a';
  expect_first_problem(verify(join(c.lines), c.head()), 7, "altered");
}

TEST(AuditChain, OneByteChangedInTheLastLineIsFoundThroughTheHead) {
  Chain c = sample();
  AuditHead head = c.head();
  std::string& line = c.lines.back();
  line[line.find("stopped")] = 'S';
  expect_first_problem(verify(join(c.lines), head), 12, "altered");
}

TEST(AuditChain, AByteChangeThatBreaksTheJsonIsFoundAtThatLine) {
  Chain c = sample();
  c.lines[3].back() = ']';  // line 4
  expect_first_problem(verify(join(c.lines), c.head()), 4, "not a JSON object");
}

TEST(AuditChain, ADeletedLineIsFoundWhereItWas) {
  Chain c = sample();
  AuditHead head = c.head();
  head.lines -= 1;
  c.lines.erase(c.lines.begin() + 5);  // line 6 (A open seq 2); line 7 becomes line 6
  expect_first_problem(verify(join(c.lines), head), 6, "removed");
}

TEST(AuditChain, TheFirstLineDeletedIsFound) {
  Chain c = sample();
  c.lines.erase(c.lines.begin());
  expect_first_problem(verify(join(c.lines)), 1, "does not start here");
}

TEST(AuditChain, TwoSwappedLinesAreFoundAtTheFirstOfThem) {
  Chain c = sample();
  std::swap(c.lines[6], c.lines[7]);  // lines 7 and 8
  expect_first_problem(verify(join(c.lines), c.head()), 7, "out of order");
  Chain d = sample();
  std::swap(d.lines[2], d.lines[8]);  // lines 3 and 9, far apart
  expect_first_problem(verify(join(d.lines), d.head()), 3, "out of order");
}

TEST(AuditChain, ALineAppendedByHandIsFound) {
  // With a correct prev: the chain holds, the head does not.
  Chain c = sample();
  AuditHead head = c.head();
  c.add(event(kRunA, 7, "open", {{"path", "/forged"}}));
  expect_first_problem(verify(c.content(), head), 13, "appended");
  // With a made-up prev and no head: the chain breaks at that line.
  Chain d = sample();
  std::string forged = d.lines[8];  // a copy of line 9, edited
  forged.replace(forged.find("/data/d"), 7, "/data/x");
  d.lines.push_back(forged);
  expect_first_problem(verify(join(d.lines)), 13, "appended");
}

TEST(AuditChain, ALineInsertedByHandIsFoundAtThatLine) {
  Chain c = sample();
  // Inserted after line 6 with a prev computed from line 6: line 8 (the old 7) no longer fits.
  std::string inserted =
      chain_line(line_hash(c.lines[5]), event(kRunA, 3, "open", {{"path", "/forged"}}));
  c.lines.insert(c.lines.begin() + 6, inserted);
  expect_first_problem(verify(join(c.lines)), 7, "inserted");
}

TEST(AuditChain, ATruncatedFileIsFound) {
  Chain c = sample();
  AuditHead head = c.head();
  std::string content = c.content();
  // Cut in the middle of line 9.
  size_t line9 = 0;
  for (int i = 0; i < 8; ++i)
    line9 = content.find('\n', line9) + 1;
  auto mid = verify(content.substr(0, line9 + 30), head);
  expect_first_problem(mid, 9, "incomplete");
  // Cut at a line boundary: the head says what is missing.
  auto clean = verify(content.substr(0, line9), head);
  expect_first_problem(clean, 9, "truncated");
  // Without the head a clean cut leaves runs without an exit, reported as open.
  auto headless = verify(content.substr(0, line9));
  EXPECT_TRUE(headless.ok()) << describe(headless);
  ASSERT_EQ(headless.runs.size(), 2u);
  EXPECT_FALSE(headless.runs[0].closed);
  EXPECT_TRUE(headless.runs[1].closed);
}

TEST(AuditChain, SeqGapsMustBeCoveredByLostRecords) {
  Chain covered;
  covered.add(event(kRunA, 0, "start"));
  covered.add(event(kRunA, 1, "open"));
  covered.add(event(kRunA, 2, "lost", {{"count", 5}, {"first_seq", 2}, {"last_seq", 6}}));
  covered.add(event(kRunA, 7, "open"));
  covered.add(event(kRunA, 8, "exit"));
  auto v = verify(covered.content(), covered.head());
  EXPECT_TRUE(v.ok()) << describe(v);
  EXPECT_EQ(v.runs[0].lost, 5u);

  Chain gap;
  gap.add(event(kRunA, 0, "start"));
  gap.add(event(kRunA, 1, "open"));
  gap.add(event(kRunA, 4, "open"));
  gap.add(event(kRunA, 5, "exit"));
  expect_first_problem(verify(gap.content(), gap.head()), 3, "jumps from 2 to 4");

  // A kernel `lost` record (no first_seq) covers no seq of its own.
  Chain kernel;
  kernel.add(event(kRunA, 0, "start"));
  kernel.add(event(kRunA, 1, "lost", {{"count", 9}, {"source", "bpf ring buffer"}}));
  kernel.add(event(kRunA, 2, "exit"));
  EXPECT_TRUE(verify(kernel.content()).ok());
}

TEST(AuditChain, RunsStartWithStartAndEndWithExit) {
  Chain before;
  before.add(event(kRunA, 1, "open"));
  expect_first_problem(verify(before.content()), 1, "before its start");
  Chain after;
  after.add(event(kRunA, 0, "start"));
  after.add(event(kRunA, 1, "exit"));
  after.add(event(kRunA, 2, "open"));
  expect_first_problem(verify(after.content()), 3, "after its exit");
  Chain repeated;
  repeated.add(event(kRunA, 0, "start"));
  repeated.add(event(kRunA, 1, "open"));
  repeated.add(event(kRunA, 1, "open"));
  expect_first_problem(verify(repeated.content()), 3, "repeats");
}

TEST(AuditChain, RotatedFilesVerifyInOrderOnly) {
  Chain c = sample();
  std::string first, second;
  for (size_t i = 0; i < 6; ++i)
    first += c.lines[i] + "\n";
  // The second file starts with a rotation record chained to the first file's last line.
  Chain tail;
  tail.lines.assign(c.lines.begin(), c.lines.begin() + 6);
  tail.prev = line_hash(c.lines[5]);
  tail.add(AuditLog::rotation_record(
      "audit.log.1", 6,
      {{kRunA, {{"token_sha256", ""}, {"next_seq", 3}, {"manifest", "agent-a"}}},
       {kRunB, {{"token_sha256", ""}, {"next_seq", 2}, {"manifest", "agent-b"}}}}));
  for (size_t i = 6; i < c.lines.size(); ++i) {
    // Re-chained after the rotation record.
    auto record = nlohmann::ordered_json::parse(c.lines[i]);
    record.erase("prev");
    tail.add(encode_event(record));
  }
  for (size_t i = 6; i < tail.lines.size(); ++i)
    second += tail.lines[i] + "\n";
  AuditHead head{tail.lines.size() - 6, line_hash(tail.lines.back())};
  auto v = verify_audit({{"audit.log.1", first, std::nullopt}, {"audit.log", second, head}});
  EXPECT_TRUE(v.ok()) << describe(v);
  // The newest file alone: it continues a file that was not given, and knows the open runs.
  auto alone = verify_audit({{"audit.log", second, head}});
  EXPECT_TRUE(alone.ok()) << describe(alone);
  EXPECT_TRUE(alone.continues_earlier_file);
  // Out of order.
  auto swapped =
      verify_audit({{"audit.log", second, std::nullopt}, {"audit.log.1", first, std::nullopt}});
  EXPECT_FALSE(swapped.ok());
}

TEST(AuditLogFile, WritesAChainThatVerifiesAndRotatesWithoutBreakingIt) {
  TempDirectory dir;
  std::string path = dir.file("audit.log");
  {
    AuditLog log(path, 4096);
    log.append(event(kRunA, 0, "start"), true);
    log.commit();
    for (uint64_t seq = 1; seq < 60; ++seq) {
      log.append(event(kRunA, seq, "open", {{"path", "/usr/lib/file-" + std::to_string(seq)}}),
                 false);
      log.commit();
      if (log.needs_rotation()) {
        log.rotate(
            {{kRunA,
              {{"token_sha256", std::string(64, 'f')}, {"next_seq", seq + 1}, {"manifest", "a"}}}});
      }
    }
    log.append(event(kRunA, 60, "exit"), true);
    log.commit();
    EXPECT_GE(log.rotations(), 2u);
    EXPECT_GE(log.fsyncs(), 2u);
  }
  std::vector<std::string> files;
  for (int n = 10; n >= 1; --n) {
    if (std::filesystem::exists(path + "." + std::to_string(n)))
      files.push_back(path + "." + std::to_string(n));
  }
  files.push_back(path);
  ASSERT_GE(files.size(), 3u);
  std::vector<AuditInput> inputs;
  for (const std::string& f : files)
    inputs.push_back({f, slurp(f), std::nullopt});
  inputs.back().head = head_of(path);
  ASSERT_TRUE(inputs.back().head);
  auto v = verify_audit(inputs);
  EXPECT_TRUE(v.ok()) << describe(v);
  ASSERT_EQ(v.runs.size(), 1u);
  EXPECT_TRUE(v.runs[0].closed);
  EXPECT_EQ(v.runs[0].records, 61u);
  // The first line of each newer file chains to the last line of the older one.
  for (size_t i = 1; i < files.size(); ++i) {
    std::string older = slurp(files[i - 1]);
    older.pop_back();
    std::string last = older.substr(older.rfind('\n') + 1);
    auto first = nlohmann::json::parse(slurp(files[i]).substr(0, slurp(files[i]).find('\n')));
    EXPECT_EQ(first["prev"], line_hash(last)) << files[i];
    EXPECT_EQ(first["event"], "rotated");
  }
  // Files are private to the collector's user.
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(AuditLogFile, RecoversAfterACrashMidLine) {
  TempDirectory dir;
  std::string path = dir.file("audit.log");
  {
    AuditLog log(path, 0);
    log.append(event(kRunA, 0, "start", {{"received", {{"token_sha256", std::string(64, 'e')}}}}),
               true);
    log.append(event(kRunA, 1, "open"), false);
    log.commit();
  }
  {
    std::ofstream out(path, std::ios::app);
    out << R"({"prev":"0123","ts":"half a li)";  // a write cut short by a crash
  }
  {
    AuditLog log(path, 0);
    const AuditLogRecovery& r = log.recovery();
    EXPECT_EQ(r.lines, 2u);
    EXPECT_GT(r.truncated_bytes, 0u);
    EXPECT_TRUE(r.head_mismatch.empty()) << r.head_mismatch;
    ASSERT_EQ(r.runs.count(kRunA), 1u);
    EXPECT_EQ(r.runs.at(kRunA).next_seq, 2u);
    EXPECT_EQ(r.runs.at(kRunA).token_sha256, std::string(64, 'e'));
    EXPECT_FALSE(r.runs.at(kRunA).closed);
    log.append(event(kRunA, 2, "exit"), true);
    log.commit();
  }
  auto v = verify_audit({{"audit.log", slurp(path), head_of(path)}});
  EXPECT_TRUE(v.ok()) << describe(v);
  EXPECT_TRUE(v.runs[0].closed);
}

TEST(AuditLogFile, NoticesALogTruncatedWhileNoCollectorRan) {
  TempDirectory dir;
  std::string path = dir.file("audit.log");
  {
    AuditLog log(path, 0);
    for (uint64_t seq = 0; seq < 5; ++seq)
      log.append(event(kRunA, seq, seq ? "open" : "start"), false);
    log.commit();
  }
  std::string content = slurp(path);
  content.pop_back();
  content = content.substr(0, content.rfind('\n') + 1);
  { std::ofstream(path, std::ios::trunc) << content; }
  AuditLog log(path, 0);
  EXPECT_NE(log.recovery().head_mismatch.find("records 5 lines; the file has 4"), std::string::npos)
      << log.recovery().head_mismatch;
}

TEST(AuditLogFile, OneCollectorPerLog) {
  TempDirectory dir;
  std::string path = dir.file("audit.log");
  AuditLog first(path, 0);
  try {
    AuditLog second(path, 0);
    FAIL() << "a second writer was allowed";
  } catch (const LaunchError& e) {
    EXPECT_NE(std::string(e.what()).find("another collector"), std::string::npos) << e.what();
  }
}

TEST(CollectorProtocol, EventLinesAreScannedStrictly) {
  std::string error;
  auto f = scan_event_line(
      event(kRunA, 3, "lost", {{"count", 4}, {"first_seq", 3}, {"last_seq", 6}}), error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(f->run, kRunA);
  EXPECT_EQ(f->seq, 3u);
  EXPECT_EQ(f->type, "lost");
  EXPECT_EQ(f->last_seq, 6u);
  EXPECT_EQ(f->count, 4u);
  // Nested members with the same names do not count.
  f = scan_event_line(
      R"({"run":")" + kRunA +
          R"(","seq":1,"type":"deny","x":{"run":"z","seq":-1},"section":"network"})",
      error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(f->section, "network");
  struct Case {
    std::string line;
    std::string why;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"run":")" + kRunA + R"(","run":")" + kRunB + R"(","seq":1,"type":"open"})",
            "duplicate key \"run\""},
           {R"({"prev":"00","run":")" + kRunA + R"(","seq":1,"type":"open"})", "collector alone"},
           {R"({"received":{},"run":")" + kRunA + R"(","seq":1,"type":"open"})", "collector alone"},
           {R"({"run":")" + kRunA + R"(","seq":-1,"type":"open"})", "negative"},
           {R"({"run":")" + kRunA + R"(","seq":1.5,"type":"open"})", "unsigned integer"},
           {R"({"run":"short","seq":1,"type":"open"})", "run id"},
           {R"({"run":")" + kRunA + R"(","type":"open"})", "no \"seq\""},
           {R"({"run":")" + kRunA + R"(","seq":1})", "no \"type\""},
           {R"([1,2])", "not a JSON object"},
           {R"({"run":)", "not a JSON object"},
           {R"({"run":")" + kRunA + R"(","seq":1,"type":"open",})", "not JSON"},
       }) {
    error.clear();
    EXPECT_FALSE(scan_event_line(c.line, error)) << c.line;
    EXPECT_NE(error.find(c.why), std::string::npos) << c.line << ": " << error;
  }
}

TEST(CollectorProtocol, HelloAndRepliesRoundTrip) {
  std::string token(64, 'c'), error;
  auto h = parse_hello(encode_hello({kRunA, token}), error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->run, kRunA);
  EXPECT_EQ(h->token, token);
  EXPECT_FALSE(parse_hello(R"({"hello":"enclosure-audit/9","run":"x","token":"y"})", error));
  EXPECT_NE(error.find("unsupported protocol"), std::string::npos);
  EXPECT_FALSE(parse_hello(
      R"({"hello":"enclosure-audit/1","run":")" + kRunA + R"(","token":"short"})", error));
  EXPECT_FALSE(parse_hello(event(kRunA, 0, "start"), error));
  auto w = parse_reply(encode_welcome(kRunA, 17));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->kind, CollectorReply::Kind::welcome);
  EXPECT_EQ(w->seq, 17u);
  auto a = parse_reply(encode_ack(5));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, CollectorReply::Kind::ack);
  EXPECT_EQ(a->seq, 5u);
  auto e = parse_reply(encode_error("no\nway"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error, "no\nway");
  EXPECT_EQ(encode_error("x").find('\n'), encode_error("x").size() - 1);
}

TEST(CollectorMetrics, ExpositionHasOneSampleLinePerSeries) {
  CollectorMetrics m;
  std::string error;
  for (const std::string& line :
       {event(kRunA, 0, "start"), event(kRunA, 1, "deny", {{"section", "network"}}),
        event(kRunA, 2, "deny", {{"section", "sys\"calls\n"}}),
        event(kRunA, 3, "lost", {{"count", 7}}),
        event(kRunA, 4, "budget", {{"name", "cost_usd"}, {"action", "terminate"}}),
        event(kRunA, 5, "budget", {{"name", "processes"}, {"action", "fork fails"}}),
        event(kRunA, 6, "exit")}) {
    m.record(*scan_event_line(line, error), "agent-a");
  }
  std::string text = m.render({.runs_active = 2, .connections = 3});
  for (const std::string& expected :
       {"enclosure_runs_active 2\n", "enclosure_runs_finished_total{manifest=\"agent-a\"} 1\n",
        "enclosure_events_total{type=\"deny\"} 2\n",
        "enclosure_denies_total{section=\"network\"} 1\n",
        "enclosure_denies_total{section=\"sys\\\"calls\\n\"} 1\n",
        "enclosure_lost_events_total 7\n",
        "enclosure_budget_terminations_total{budget=\"cost_usd\"} 1\n",
        "# TYPE enclosure_events_total counter\n"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_NE(text.find("enclosure_budget_terminations_total{budget=\"processes\"} 0\n"),
            std::string::npos)
      << "a budget that does not terminate is not a termination\n"
      << text;
}

// Before the first event, every known event type, deny section and budget has a series at 0,
// so that increase() sees the first one.
TEST(CollectorMetrics, KnownLabelValuesStartAtZero) {
  std::string text = CollectorMetrics().render({});
  for (const std::string& expected :
       {"enclosure_events_total{type=\"start\"} 0\n", "enclosure_events_total{type=\"deny\"} 0\n",
        "enclosure_events_total{type=\"exit\"} 0\n",
        "enclosure_denies_total{section=\"syscalls\"} 0\n",
        "enclosure_denies_total{section=\"network\"} 0\n",
        "enclosure_denies_total{section=\"rules\"} 0\n",
        "enclosure_denies_total{section=\"tools\"} 0\n",
        "enclosure_budget_terminations_total{budget=\"wall_clock\"} 0\n",
        "enclosure_budget_terminations_total{budget=\"cost_usd\"} 0\n",
        "enclosure_budget_terminations_total{budget=\"max_calls\"} 0\n",
        "enclosure_build_info{version=\"" ENCLOSURE_VERSION "\"} 1\n",
        "enclosure_run_duration_seconds_count 0\n"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
}

TEST(CollectorMetrics, RunDurationsFromExitRecords) {
  CollectorMetrics m;
  std::string error;
  m.record(*scan_event_line(event(kRunA, 0, "start"), error), "agent-a");
  m.record(*scan_event_line(event(kRunA, 1, "exit", {{"duration_ns", 2'500'000'000ULL}}), error),
           "agent-a");
  m.record(*scan_event_line(event(kRunB, 0, "start"), error), "agent-b");
  m.record(*scan_event_line(event(kRunB, 1, "exit", {{"duration_ns", 100'000ULL}}), error),
           "agent-b");
  std::string text = m.render({});
  for (const std::string& expected :
       {"# TYPE enclosure_run_duration_seconds histogram\n",
        "enclosure_run_duration_seconds_bucket{le=\"1.0\"} 1\n",
        "enclosure_run_duration_seconds_bucket{le=\"5.0\"} 2\n",
        "enclosure_run_duration_seconds_bucket{le=\"86400.0\"} 2\n",
        "enclosure_run_duration_seconds_bucket{le=\"+Inf\"} 2\n",
        "enclosure_run_duration_seconds_sum 2.5001\n", "enclosure_run_duration_seconds_count 2\n",
        "enclosure_runs_started_total{manifest=\"agent-b\"} 1\n",
        "enclosure_runs_finished_total{manifest=\"agent-a\"} 1\n"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
}

TEST(CollectorMetrics, ManifestNamesAreBounded) {
  CollectorMetrics m;
  std::string error;
  auto start = *scan_event_line(event(kRunA, 0, "start"), error);
  for (size_t i = 0; i < CollectorMetrics::kMaxManifestNames + 5; ++i)
    m.record(start, "manifest-" + std::to_string(i));
  m.record(start, "manifest-0");
  std::string text = m.render({});
  EXPECT_NE(text.find("enclosure_runs_started_total{manifest=\"manifest-0\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("enclosure_runs_started_total{manifest=\"other\"} 5\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("manifest-" + std::to_string(CollectorMetrics::kMaxManifestNames) + "\""),
            std::string::npos)
      << text;
}

// Under OpenMetrics a counter family is named without _total and reserves NAME, NAME_total and
// NAME_created; a histogram reserves NAME, NAME_bucket, NAME_count, NAME_sum and NAME_created.
// No two families may reserve the same name (the Python client refuses such a page).
TEST(CollectorMetrics, OpenMetricsFamiliesDoNotClash) {
  std::string text = CollectorMetrics().render({}, ExpositionFormat::openmetrics);
  ASSERT_GE(text.size(), 6u);
  EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
  std::map<std::string, std::string> reserved;  // name -> family
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::string family = line.substr(7, line.find(' ', 7) - 7);
    std::string type = line.substr(line.rfind(' ') + 1);
    std::vector<std::string> suffixes = {""};
    if (type == "counter") suffixes = {"", "_total", "_created"};
    if (type == "histogram") suffixes = {"", "_bucket", "_count", "_sum", "_created"};
    EXPECT_FALSE(type == "counter" && family.size() > 6 &&
                 family.substr(family.size() - 6) == "_total")
        << line;
    for (const std::string& suffix : suffixes) {
      auto [it, inserted] = reserved.emplace(family + suffix, family);
      EXPECT_TRUE(inserted) << family << suffix << " clashes with family " << it->second;
    }
  }
  EXPECT_NE(text.find("# TYPE enclosure_collector_connections counter\n"), std::string::npos);
  EXPECT_NE(text.find("enclosure_collector_connections_total 0\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE enclosure_collector_connections_open gauge\n"), std::string::npos);
  // The Prometheus text format names the counter family with its _total.
  std::string classic = CollectorMetrics().render({});
  EXPECT_NE(classic.find("# TYPE enclosure_collector_connections_total counter\n"),
            std::string::npos);
  EXPECT_EQ(classic.find("# EOF"), std::string::npos);
}

TEST(CollectorMetrics, AcceptHeaderChoosesTheFormat) {
  EXPECT_EQ(exposition_format_for_accept(""), ExpositionFormat::prometheus_text);
  EXPECT_EQ(exposition_format_for_accept("text/plain"), ExpositionFormat::prometheus_text);
  EXPECT_EQ(exposition_format_for_accept("*/*"), ExpositionFormat::prometheus_text);
  // What Prometheus sends.
  EXPECT_EQ(exposition_format_for_accept(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(exposition_format_for_accept("Application/OpenMetrics-Text; version=1.0.0"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(exposition_format_for_accept("text/plain, application/openmetrics-text;q=0"),
            ExpositionFormat::prometheus_text);
  EXPECT_EQ(exposition_content_type(ExpositionFormat::prometheus_text),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(exposition_content_type(ExpositionFormat::openmetrics),
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

TEST(AuditTimeline, ParsesRfc3339) {
  auto t = parse_rfc3339("2026-11-28T16:02:44.123456789Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->second, 123456789);
  auto offset = parse_rfc3339("2026-11-28T17:02:44.123456789+01:00");
  ASSERT_TRUE(offset);
  EXPECT_EQ(*offset, *t);
  EXPECT_EQ(parse_rfc3339("2026-11-28T16:02:44Z")->first, t->first);
  EXPECT_FALSE(parse_rfc3339("2026-11-28 16:02"));
  EXPECT_FALSE(parse_rfc3339("2026-13-28T16:02:44Z"));
  EXPECT_FALSE(parse_rfc3339("2026-11-28T16:02:44"));
}

TEST(AuditTimeline, ShowsWhoApprovedWhatRanAndWhatWasDenied) {
  Chain c = sample();
  std::vector<nlohmann::json> records;
  for (const std::string& l : c.lines)
    records.push_back(nlohmann::json::parse(l));
  records[1]["manifest_document"] = {
      {"filesystem", {{"read", {"/usr", "/data/customers/42"}}}},
      {"tools", {{{"name", "python"}, {"path", "/usr/bin/python3"}}}}};
  records[1]["reason"] = "CHG-1234";
  records[3]["path"] = "/evil\n  2026-01-01  DENY forged";
  std::string text = render_timeline(records, {});
  for (const std::string& expected : std::vector<std::string>{
           "run " + kRunA, "approved by:  sec@example.com", "reason:       CHG-1234",
           "may read:     /usr, /data/customers/42", "python (/usr/bin/python3)", "DENY",
           "syscalls: ptrace", "ended:", "budget", "collector"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_EQ(text.find("\n  2026-01-01  DENY forged"), std::string::npos)
      << "a path forged a line:\n"
      << text;
  TimelineFilter only_b;
  only_b.run = kRunB;
  std::string b = render_timeline(records, only_b);
  EXPECT_EQ(b.find(kRunA), std::string::npos);
  EXPECT_NE(b.find(kRunB), std::string::npos);
  TimelineFilter denies;
  denies.types = {"deny"};
  std::string d = render_timeline(records, denies);
  EXPECT_NE(d.find("ptrace"), std::string::npos);
  EXPECT_EQ(d.find("/data/a"), std::string::npos);
  TimelineFilter later;
  later.since = parse_rfc3339("2026-11-28T16:02:14Z");  // seq >= 4 of the sample's clock
  EXPECT_TRUE(timeline_selects(records[8], later));
  EXPECT_FALSE(timeline_selects(records[3], later));
}

TEST(AuditLogFile, ASymbolicLinkIsNotALog) {
  TempDirectory dir;
  std::string target = dir.file("elsewhere");
  { std::ofstream(target) << "not a log\n"; }
  std::string path = dir.file("audit.log");
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  try {
    AuditLog log(path, 0);
    FAIL() << "a symbolic link was opened as the log";
  } catch (const LaunchError& e) {
    EXPECT_NE(std::string(e.what()).find("audit log: open " + path), std::string::npos) << e.what();
  }
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "not a log\n");  // recovery did not touch what the link points to
}

TEST(AuditChain, AFirstFileThatBeginsWithARotationContinuesAnEarlierOne) {
  Chain earlier;
  earlier.add(event(kRunA, 0, "start"));
  Chain later;
  later.prev = earlier.prev;
  later.add(collector_record("rotated"));
  later.add(event(kRunB, 0, "start"));
  AuditVerification v = verify_audit({{"audit.log", later.content(), std::nullopt}});
  EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems[0].why);
  EXPECT_TRUE(v.continues_earlier_file);
  EXPECT_EQ(v.lines, 2u);
}

namespace {

// Writes run A's events into a log with `retention`, rotating at 4 KiB; returns the rotated
// files that remain, oldest first, then the active file.
std::vector<std::string> write_rotating_log(const std::string& path, AuditRetention retention,
                                            uint64_t* pruned) {
  {
    AuditLog log(path, 4096, retention);
    log.append(event(kRunA, 0, "start"), true);
    log.commit();
    for (uint64_t seq = 1; seq < 120; ++seq) {
      log.append(event(kRunA, seq, "open", {{"path", "/usr/lib/file-" + std::to_string(seq)}}),
                 false);
      log.commit();
      if (log.needs_rotation()) {
        log.rotate(
            {{kRunA,
              {{"token_sha256", std::string(64, 'f')}, {"next_seq", seq + 1}, {"manifest", "a"}}}});
      }
    }
    log.append(event(kRunA, 120, "exit"), true);
    log.commit();
    *pruned = log.pruned_files();
  }
  std::vector<std::string> files;
  for (int n = 40; n >= 1; --n) {
    if (std::filesystem::exists(path + "." + std::to_string(n)))
      files.push_back(path + "." + std::to_string(n));
  }
  files.push_back(path);
  return files;
}

AuditVerification verify_files(const std::vector<std::string>& files) {
  std::vector<AuditInput> inputs;
  for (const std::string& f : files)
    inputs.push_back({f.substr(f.rfind('/') + 1), slurp(f), std::nullopt});
  return verify_audit(inputs);
}

}  // namespace

TEST(AuditLogFile, KeepPrunesTheOldestRotatedFilesAndWhatIsKeptVerifies) {
  TempDirectory dir;
  std::string path = dir.file("audit.log");
  uint64_t pruned = 0;
  std::vector<std::string> files = write_rotating_log(path, {2, 0}, &pruned);
  ASSERT_EQ(files.size(), 3u);  // audit.log.2, audit.log.1, audit.log
  EXPECT_EQ(files[0], path + ".2");
  EXPECT_GT(pruned, 0u);
  auto v = verify_files(files);
  EXPECT_TRUE(v.ok()) << describe(v);
  EXPECT_TRUE(v.continues_earlier_file);
  // The active file's rotation record names the file the oldest kept one chains to.
  auto rotated = nlohmann::json::parse(slurp(path).substr(0, slurp(path).find('\n')));
  ASSERT_TRUE(rotated.contains("pruned")) << rotated.dump();
  EXPECT_EQ(rotated["pruned"][0]["file"], "audit.log.3");
  auto oldest = nlohmann::json::parse(slurp(files[0]).substr(0, slurp(files[0]).find('\n')));
  EXPECT_EQ(rotated["pruned"][0]["last_sha256"], oldest["prev"]);
  EXPECT_EQ(v.pruned_predecessor.rfind("audit.log.3 (", 0), 0u) << v.pruned_predecessor;
  // The run that began in a pruned file continues in what is kept.
  ASSERT_EQ(v.runs.size(), 1u);
  EXPECT_TRUE(v.runs[0].closed);
}

TEST(AuditLogFile, KeepSizeBoundsTheRotatedFilesButKeepsTheNewest) {
  TempDirectory dir;
  std::string path = dir.file("audit.log");
  uint64_t pruned = 0;
  std::vector<std::string> files = write_rotating_log(path, {0, 9000}, &pruned);
  EXPECT_GT(pruned, 0u);
  uint64_t rotated_bytes = 0;
  for (size_t i = 0; i + 1 < files.size(); ++i)
    rotated_bytes += std::filesystem::file_size(files[i]);
  EXPECT_LE(rotated_bytes, 9000u);
  EXPECT_GE(files.size(), 2u);
  EXPECT_TRUE(verify_files(files).ok()) << describe(verify_files(files));
  // Smaller than one rotated file: the newest rotated file is kept all the same.
  TempDirectory tiny_dir;
  std::string tiny = tiny_dir.file("audit.log");
  files = write_rotating_log(tiny, {0, 1}, &pruned);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], tiny + ".1");
  EXPECT_TRUE(verify_files(files).ok()) << describe(verify_files(files));
}

TEST(AuditLogFile, WithoutRetentionEveryRotatedFileStays) {
  TempDirectory dir;
  uint64_t pruned = 0;
  std::vector<std::string> files = write_rotating_log(dir.file("audit.log"), {}, &pruned);
  EXPECT_EQ(pruned, 0u);
  EXPECT_GE(files.size(), 4u);
  auto v = verify_files(files);
  EXPECT_TRUE(v.ok()) << describe(v);
  EXPECT_FALSE(v.continues_earlier_file);
}
