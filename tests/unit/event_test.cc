// Event model and encoding: stamping, gap-free seq, JSON escaping of any byte a path can hold,
// and the decoder of ring-buffer records (sizes and bounds checked, never trusted).
#include <gtest/gtest.h>

#include <cstring>

#include "bpf/enclosure_abi.h"
#include "bpf/event_decoder.h"
#include "launcher/events/event.h"
#include "launcher/events/kernel_events.h"
#include "policy/compile.h"
#include "policy/load.h"

namespace {

class MemorySink : public launcher::EventSink {
 public:
  explicit MemorySink(std::vector<std::string>* lines) : lines_(lines) {}
  bool write(const std::string& line) override {
    lines_->push_back(line);
    return true;
  }
  std::string describe() const override { return "memory"; }

 private:
  std::vector<std::string>* lines_;
};

launcher::RunIdentity identity() {
  return {"00112233445566778899aabbccddeeff", "m", 3, "sha256:ab"};
}

policy::EnforcementPlan test_plan() {
  auto r = policy::load_manifest(R"({"apiVersion":"enclosure/v1","metadata":{"name":"m"},
    "tools":[{"name":"git","path":"/usr/bin/git","max_calls":2,"cost_usd":0.25}],
    "network":{"mode":"filtered","egress":[{"cidr":"127.0.0.1/32","ports":[80]}]}})");
  EXPECT_TRUE(r.manifest);
  return *policy::compile(*r.manifest).plan;
}

}  // namespace

TEST(Events, StampsEveryFieldAndKeepsSeqGapFree) {
  std::vector<std::string> lines;
  launcher::EventStream s(identity());
  s.add_sink(std::make_unique<MemorySink>(&lines));
  s.emit("start", 10, {{"a", 1}});
  s.emit("deny", 11, {{"syscall", "ptrace"}});
  s.emit("exit", 10, {});
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].back(), '\n');
    auto j = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j["seq"], i);
    EXPECT_EQ(j["run"], "00112233445566778899aabbccddeeff");
    EXPECT_EQ(j["manifest"]["name"], "m");
    EXPECT_EQ(j["manifest"]["revision"], 3);
    EXPECT_EQ(j["manifest"]["digest"], "sha256:ab");
    EXPECT_TRUE(j.contains("ts") && j.contains("type") && j.contains("pid"));
    // ts: RFC 3339, UTC, nanoseconds.
    std::string ts = j["ts"];
    EXPECT_EQ(ts.size(), 30u) << ts;
    EXPECT_EQ(ts.back(), 'Z');
    EXPECT_EQ(ts[19], '.');
  }
  EXPECT_EQ(nlohmann::json::parse(lines[1])["syscall"], "ptrace");
  EXPECT_EQ(s.counts().at("deny"), 1u);
}

TEST(Events, Rfc3339Formatting) {
  EXPECT_EQ(launcher::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(launcher::rfc3339(1795884361, 5), "2026-11-28T16:46:01.000000005Z");
}

TEST(Events, AnyPathByteSurvivesAndCannotForgeLines) {
  // Newlines, quotes, escape sequences, NUL-free control bytes and invalid UTF-8.
  std::string path =
      "/tmp/a\nb\"c\x1b[31m\\d\xff\xfe\xc3\x28"
      "e\x7f";
  nlohmann::json f;
  launcher::set_bytes(f, "path", path);
  ASSERT_TRUE(f.contains("path_hex"));
  std::vector<std::string> lines;
  launcher::EventStream s(identity());
  s.add_sink(std::make_unique<MemorySink>(&lines));
  s.emit("open", 1, f);
  ASSERT_EQ(lines.size(), 1u);
  const std::string& line = lines[0];
  // Exactly one newline (the terminator); no raw control bytes or bytes >= 0x80.
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  for (unsigned char c : line.substr(0, line.size() - 1)) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << int(c);
  }
  auto j = nlohmann::json::parse(line);
  // The hex field restores every byte.
  std::string hex = j["path_hex"];
  std::string restored;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    restored.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  EXPECT_EQ(restored, path);
  EXPECT_EQ(j["path"].get<std::string>().substr(0, 7), "/tmp/a\n");
}

TEST(Events, ValidUtf8NeedsNoHexField) {
  nlohmann::json f;
  launcher::set_bytes(f, "path", "/data/caf\xc3\xa9/\xf0\x9f\x98\x80");
  EXPECT_FALSE(f.contains("path_hex"));
  bool exact = false;
  EXPECT_EQ(launcher::to_valid_utf8("\xed\xa0\x80", exact), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_FALSE(exact);
}

TEST(Events, TerminalQuotingEscapesControlBytes) {
  std::string q = launcher::quote_for_terminal("a\x1b]0;evil\x07\nb");
  EXPECT_EQ(q.find('\x1b'), std::string::npos);
  EXPECT_EQ(q.find('\n'), std::string::npos);
  EXPECT_EQ(q.front(), '"');
}

TEST(Decoder, RejectsShortAndUnknownRecords) {
  std::string error;
  EXPECT_FALSE(bpf::decode_record(nullptr, 0, error));
  char small[8] = {};
  EXPECT_FALSE(bpf::decode_record(small, sizeof small, error));
  enc_header h{};
  h.type = 999;
  h.size = sizeof h;
  EXPECT_FALSE(bpf::decode_record(&h, sizeof h, error));
  EXPECT_NE(error.find("unknown type"), std::string::npos) << error;
  // A header claiming more than was delivered.
  h.type = ENC_EV_EXEC;
  h.size = sizeof(enc_exec_event);
  EXPECT_FALSE(bpf::decode_record(&h, sizeof h, error));
  // The right type, truncated.
  enc_exec_event e{};
  e.h.type = ENC_EV_EXEC;
  e.h.size = 64;
  EXPECT_FALSE(bpf::decode_record(&e, 64, error));
}

TEST(Decoder, StringsAreBoundedEvenWithoutTerminator) {
  enc_exec_event e{};
  e.h.type = ENC_EV_EXEC;
  e.h.size = sizeof e;
  std::memset(e.filename, 'A', sizeof e.filename);  // no NUL anywhere
  std::memset(e.argv0, 'B', sizeof e.argv0);
  e.tool = 1000;  // out of range: not a tool
  std::string error;
  auto r = bpf::decode_record(&e, sizeof e, error);
  ASSERT_TRUE(r) << error;
  auto& x = std::get<bpf::ExecRecord>(r->body);
  EXPECT_EQ(x.filename.size(), sizeof e.filename);
  EXPECT_EQ(x.argv0.size(), sizeof e.argv0);
  EXPECT_EQ(x.tool, -1);
}

TEST(Decoder, NetworkDenialBecomesDenyEventNamingTheRule) {
  enc_net_event e{};
  e.h.type = ENC_EV_NET_DENY;
  e.h.size = sizeof e;
  e.h.pid = 42;
  e.hook = ENC_HOOK_CONNECT4;
  e.reason = ENC_NET_PORT;
  e.family = 2;
  e.type = 1;
  e.protocol = 6;
  e.rule_index = 0;
  e.port = 8080;
  e.addr[0] = 127;
  e.addr[3] = 1;
  std::string error;
  auto r = bpf::decode_record(&e, sizeof e, error);
  ASSERT_TRUE(r) << error;
  auto events = launcher::kernel_events(*r, test_plan());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "deny");
  EXPECT_EQ(events[0].pid, 42);
  EXPECT_EQ(events[0].fields["destination"], "127.0.0.1:8080");
  EXPECT_EQ(events[0].fields["section"], "network");
  EXPECT_EQ(events[0].fields["origin"], "/network/egress/0");
  EXPECT_EQ(events[0].fields["action"], "EPERM");
  EXPECT_EQ(events[0].fields["protocol"], "tcp");
}

TEST(Decoder, ToolExecBecomesExecAndToolCall) {
  enc_exec_event e{};
  e.h.type = ENC_EV_EXEC;
  e.h.size = sizeof e;
  e.tool = 0;
  e.tool_count = 2;
  e.tool_calls = 5;
  e.cost_micro = 500000;
  std::strcpy(e.filename, "/usr/bin/git");
  std::strcpy(e.argv0, "git");
  std::string error;
  auto r = bpf::decode_record(&e, sizeof e, error);
  ASSERT_TRUE(r) << error;
  auto events = launcher::kernel_events(*r, test_plan());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, "exec");
  EXPECT_EQ(events[0].fields["path"], "/usr/bin/git");
  EXPECT_EQ(events[1].type, "tool_call");
  EXPECT_EQ(events[1].fields["tool"], "git");
  EXPECT_EQ(events[1].fields["calls"], 2);
  EXPECT_EQ(events[1].fields["max_calls"], 2);
  EXPECT_EQ(events[1].fields["cost_usd"], "$0.50");
  // The initial command's exec is an exec event marked initial, and no tool call.
  e.initial = 1;
  r = bpf::decode_record(&e, sizeof e, error);
  auto initial = launcher::kernel_events(*r, test_plan());
  ASSERT_EQ(initial.size(), 1u);
  EXPECT_EQ(initial[0].type, "exec");
  EXPECT_EQ(initial[0].fields["initial"], true);
  // A refused run of the dynamic loader is an exec and a deny naming /tools.
  e.initial = 0;
  e.tool = -1;
  e.killed = 1;
  e.refused = ENC_EXEC_LOADER;
  r = bpf::decode_record(&e, sizeof e, error);
  auto refused = launcher::kernel_events(*r, test_plan());
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[1].type, "deny");
  EXPECT_EQ(refused[1].fields["section"], "tools");
}

TEST(Decoder, BudgetRecordNamesTheBudgetAndTool) {
  enc_budget_event e{};
  e.h.type = ENC_EV_BUDGET;
  e.h.size = sizeof e;
  e.budget = ENC_BUDGET_TOOL_MAX_CALLS;
  e.tool = 0;
  e.limit = 2;
  e.value = 3;
  std::string error;
  auto r = bpf::decode_record(&e, sizeof e, error);
  ASSERT_TRUE(r) << error;
  auto events = launcher::kernel_events(*r, test_plan());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fields["name"], "max_calls");
  EXPECT_EQ(events[0].fields["tool"], "git");
  EXPECT_EQ(events[0].fields["origin"], "/tools/0/max_calls");
  EXPECT_EQ(events[0].fields["limit"], 2);
  EXPECT_EQ(events[0].fields["value"], 3);
  e.budget = 77;
  EXPECT_FALSE(bpf::decode_record(&e, sizeof e, error));
}

TEST(Decoder, OpenRecordShowsFlagsAndErrno) {
  enc_open_event e{};
  e.h.type = ENC_EV_OPEN;
  e.h.size = sizeof e;
  e.result = -2;
  e.dirfd = -100;
  e.flags = 02000000 | 0100 | 01;  // O_CLOEXEC|O_CREAT|O_WRONLY
  std::strcpy(e.path, "missing.txt");
  std::string error;
  auto r = bpf::decode_record(&e, sizeof e, error);
  ASSERT_TRUE(r) << error;
  auto events = launcher::kernel_events(*r, test_plan());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fields["result"], "-ENOENT");
  EXPECT_EQ(events[0].fields["ok"], false);
  EXPECT_EQ(events[0].fields["flags"], "O_WRONLY|O_CREAT|O_CLOEXEC");
  EXPECT_EQ(events[0].fields["path"], "missing.txt");
}

namespace {

// Grants /work (read), /work/out (write) and /scratch (tmpfs).
policy::EnforcementPlan grants_plan() {
  auto r = policy::load_manifest(R"({"apiVersion":"enclosure/v1","metadata":{"name":"m"},
    "tools":[{"name":"git","path":"/usr/bin/git"}],
    "filesystem":{"read":["/usr","/work"],"write":["/work/out"],"tmpfs":["/scratch"]}})");
  for (const policy::Diagnostic& d : r.diagnostics.errors())
    ADD_FAILURE() << d.path << ": " << d.message;
  if (!r.manifest) return {};
  return *policy::compile(*r.manifest).plan;
}

enc_refusal_event refusal(int64_t result, uint32_t syscall, uint32_t section, const char* path,
                          const char* path2 = "") {
  enc_refusal_event e{};
  e.h.type = ENC_EV_REFUSAL;
  e.h.size = sizeof e;
  e.result = result;
  e.syscall = syscall;
  e.section = section;
  e.dirfd = -100;
  e.dirfd2 = -100;
  std::strncpy(e.path, path, sizeof e.path - 1);
  std::strncpy(e.path2, path2, sizeof e.path2 - 1);
  return e;
}

std::vector<launcher::KernelEvent> refusal_events(const enc_refusal_event& e) {
  std::string error;
  auto r = bpf::decode_record(&e, sizeof e, error);
  EXPECT_TRUE(r) << error;
  return r ? launcher::kernel_events(*r, grants_plan()) : std::vector<launcher::KernelEvent>{};
}

}  // namespace

TEST(Decoder, RefusalRecordIsADenyWithSyscallPathsErrnoAndTheLongestGrant) {
  enc_refusal_event e = refusal(-18 /* EXDEV */, 316 /* renameat2 */, ENC_REFUSAL_FILES,
                                "/work/out/a.txt", "/work/b.txt");
  e.dirfd2 = 5;
  auto events = refusal_events(e);
  ASSERT_EQ(events.size(), 1u);
  nlohmann::json f = events[0].fields;
  EXPECT_EQ(events[0].type, "deny");
  EXPECT_EQ(f["section"], "filesystem");
  EXPECT_EQ(f["syscall"], "renameat2");
  EXPECT_EQ(f["action"], "EXDEV");
  EXPECT_EQ(f["path"], "/work/out/a.txt");
  EXPECT_EQ(f["origin"], "/filesystem/write/0");  // the longest grant: /work/out, not /work
  EXPECT_EQ(f["new_path"], "/work/b.txt");
  EXPECT_EQ(f["new_origin"], "/filesystem/read/1");
  EXPECT_EQ(f["new_dirfd"], 5);
  EXPECT_FALSE(f.contains("dirfd"));
  EXPECT_FALSE(f.value("reason", "").empty());

  // Paths are compared once ".", ".." and repeated slashes are resolved; "/workshop" is not
  // under "/work"; a relative path, or one under no grant, is "/filesystem".
  const std::pair<const char*, const char*> origins[] = {
      {"/scratch//x/../y", "/filesystem/tmpfs/0"},
      {"/work/./out/../c", "/filesystem/read/1"},
      {"/workshop/c", "/filesystem"},
      {"out/c", "/filesystem"},
      {"/etc/passwd", "/filesystem"},
      {"/work/out", "/filesystem/write/0"}};
  for (const auto& [path, origin] : origins) {
    auto ev = refusal_events(refusal(-30 /* EROFS */, 2 /* open */, ENC_REFUSAL_FILES, path));
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].fields["origin"], origin) << path;
    EXPECT_FALSE(ev[0].fields.contains("new_path")) << path;
  }

  auto exec =
      refusal_events(refusal(-13 /* EACCES */, 59 /* execve */, ENC_REFUSAL_EXEC, "/work/x"));
  ASSERT_EQ(exec.size(), 1u);
  EXPECT_EQ(exec[0].fields["section"], "tools");
  EXPECT_EQ(exec[0].fields["origin"], "/tools");
  EXPECT_EQ(exec[0].fields["syscall"], "execve");
  EXPECT_EQ(exec[0].fields["action"], "EACCES");
  EXPECT_NE(exec[0].fields["reason"].get<std::string>().find("not a tool"), std::string::npos);
}

TEST(Decoder, RefusalRecordOfAnUnknownSyscallSectionOrASuccessIsMalformed) {
  std::string error;
  enc_refusal_event e = refusal(-13, 1 /* write: not a refusal syscall */, ENC_REFUSAL_FILES, "/x");
  EXPECT_FALSE(bpf::decode_record(&e, sizeof e, error));
  e = refusal(-13, 59, 3 /* no such section */, "/x");
  EXPECT_FALSE(bpf::decode_record(&e, sizeof e, error));
  e = refusal(0, 59, ENC_REFUSAL_EXEC, "/x");
  EXPECT_FALSE(bpf::decode_record(&e, sizeof e, error));
  e = refusal(-13, 59, ENC_REFUSAL_EXEC, "/x");
  EXPECT_FALSE(bpf::decode_record(&e, sizeof e - 1, error));
  EXPECT_TRUE(bpf::decode_record(&e, sizeof e, error)) << error;
}

namespace {

uint64_t fake_now_ns = 0;
uint64_t fake_clock() {
  return fake_now_ns;
}

}  // namespace

TEST(EventRate, TokenBucketGivesTheBurstThenTheSustainedRate) {
  launcher::TokenBucket bucket(10, 5, 0);
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(bucket.take(0)) << i;
  EXPECT_FALSE(bucket.take(0));
  EXPECT_FALSE(bucket.take(99'000'000));  // 0.99 tokens after 99 ms at 10/s
  EXPECT_TRUE(bucket.take(100'000'000));
  EXPECT_FALSE(bucket.take(100'000'000));
  // Never more than the burst, however long it rested.
  int taken = 0;
  while (bucket.take(1'000'000'000'000ULL))
    ++taken;
  EXPECT_EQ(taken, 5);
}

TEST(EventRate, RatesAndBurstsParse) {
  std::string error;
  EXPECT_EQ(launcher::parse_event_rate("500/s", error), 500u);
  EXPECT_EQ(launcher::parse_event_rate("7", error), 7u);
  EXPECT_EQ(launcher::parse_event_rate("unlimited", error), 0u);
  for (const char* bad : {"0", "0/s", "-1", "1/m", "fast", "", "/s", "10000001"}) {
    error.clear();
    EXPECT_FALSE(launcher::parse_event_rate(bad, error)) << bad;
    EXPECT_NE(error.find("--event-rate"), std::string::npos) << bad;
  }
  EXPECT_EQ(launcher::parse_event_burst("2000", error), 2000u);
  EXPECT_FALSE(launcher::parse_event_burst("0", error));
  EXPECT_FALSE(launcher::parse_event_burst("1e3", error));
}

TEST(EventRate, PastTheRateEventsAreCountedNotWrittenAndSeqStaysGapFree) {
  std::vector<std::string> lines;
  launcher::EventStream s(identity());
  s.add_sink(std::make_unique<MemorySink>(&lines));
  s.set_clock(&fake_clock);
  s.set_rate_limit({10, 3});
  fake_now_ns = 1'000'000'000;
  s.emit("start", 1, {});
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(s.emit("deny", 1, {{"i", i}}).is_null(), i >= 3) << i;
  // The first event of another type passes; budget, lost and rule are never suppressed.
  EXPECT_FALSE(s.emit("open", 1, {}).is_null());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(s.emit("budget", 1, {}).is_null());
    EXPECT_FALSE(s.emit("lost", 1, {}).is_null());
    EXPECT_FALSE(s.emit("rule", 1, {}).is_null());
  }
  EXPECT_EQ(s.suppressed_due_in_ms(), 1000);
  EXPECT_EQ(lines.size(), 1u + 3 + 1 + 60);
  // A second later the next emit writes the `suppressed` event first.
  fake_now_ns += 1'000'000'000;
  EXPECT_EQ(s.suppressed_due_in_ms(), 0);
  s.emit("open", 1, {});
  ASSERT_EQ(lines.size(), 1u + 3 + 1 + 60 + 2);
  auto summary = nlohmann::json::parse(lines[lines.size() - 2]);
  EXPECT_EQ(summary["type"], "suppressed");
  EXPECT_EQ(summary["of"], "deny");
  EXPECT_EQ(summary["count"], 97);
  EXPECT_EQ(summary["total"], 97);
  EXPECT_EQ(summary["rate"], "10/s");
  EXPECT_EQ(summary["burst"], 3);
  EXPECT_EQ(s.suppressed_due_in_ms(), -1);
  // More of the flood, flushed before exit: counts add up to every decision.
  for (int i = 0; i < 50; ++i)
    s.emit("deny", 1, {});
  s.flush_suppressed(true);
  s.emit("exit", 1, {});
  uint64_t written_denies = 0, suppressed_denies = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto j = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j["seq"], i);
    if (j["type"] == "deny") ++written_denies;
    if (j["type"] == "suppressed" && j["of"] == "deny")
      suppressed_denies += j["count"].get<uint64_t>();
  }
  EXPECT_EQ(written_denies + suppressed_denies, 150u);
  EXPECT_EQ(s.counts().at("deny"), 150u);
  EXPECT_EQ(s.suppressed().at("deny"), suppressed_denies);
  EXPECT_EQ(s.counts().at("suppressed"), 2u);
  EXPECT_EQ(s.next_seq(), lines.size());
}

TEST(EventRate, AnUnlimitedStreamWritesEverything) {
  std::vector<std::string> lines;
  launcher::EventStream s(identity());
  s.add_sink(std::make_unique<MemorySink>(&lines));
  s.set_clock(&fake_clock);
  s.set_rate_limit({0, 0});
  for (int i = 0; i < 5000; ++i)
    s.emit("open", 1, {});
  EXPECT_EQ(lines.size(), 5000u);
  EXPECT_TRUE(s.suppressed().empty());
  EXPECT_EQ(s.suppressed_due_in_ms(), -1);
}
