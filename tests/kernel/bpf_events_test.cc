// The kernel's records as events: loss is never silent (a flood through a tiny ring buffer is
// accounted for to the record), sequence numbers are gap-free; two enclosures at once keep
// their own egress rules; and nothing of the eBPF layer (programs, links, maps, cgroups)
// outlives a run.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

using harness::BackgroundRun;
using harness::base_manifest;
using harness::BpfObjects;
using harness::LoopbackListener;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using Protocol = harness::LoopbackListener::Protocol;

namespace {

void expect_gap_free_seq(const RunResult& r) {
  ASSERT_FALSE(r.events.empty()) << r.describe();
  for (size_t i = 0; i < r.events.size(); ++i) {
    ASSERT_EQ(r.events[i].value("seq", ~0ULL), i) << "event " << i << ": " << r.events[i].dump();
  }
}

// A python3 agent that prints READY, waits (at most 30 s) for the file A[0] to exist, then runs
// `body`.
std::vector<std::string> gated_agent(const std::string& body,
                                     const std::vector<std::string>& args) {
  return python_agent(R"(import socket, time
print("READY", flush=True)
for i in range(1500):
    if os.path.exists(A[0]):
        break
    time.sleep(0.02)
def tcp_connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(b"hello")
    finally:
        s.close()
)" + body,
                      args);
}

std::string run_id(const RunResult& r) {
  return r.events.empty() ? std::string() : r.events.front().value("run", "");
}

// Cgroups of one run (named after its run id) still present under any hierarchy.
std::vector<std::string> leftover_cgroups_of(const std::string& run) {
  std::vector<std::string> out;
  for (const std::string& path : harness::leftover_cgroups()) {
    if (path.find(run) != std::string::npos) out.push_back(path);
  }
  return out;
}

std::string names(const std::map<uint32_t, std::string>& objects) {
  std::string out;
  for (const auto& [id, name] : objects)
    out += std::to_string(id) + ":" + name + " ";
  return out;
}

}  // namespace

TEST(BpfEvents, FloodThroughATinyRingBufferIsAccountedForToTheRecord) {
  TempDir dir;
  dir.write("data/file.txt", "x");
  auto m = base_manifest("events-flood", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("data"));
  m["audit"] = {{"files", true}};
  // 20000 distinct missing paths: each is the first open of its key (repeats of one file are
  // counted in the kernel, not recorded), so each is a record; the launcher is stopped while the
  // agent makes them, so the ring buffer has no reader meanwhile (the supervisor alone drains
  // 20000 records through 4 KiB in time).
  auto r = harness::run_flood_with_launcher_stopped(
      dir, m, R"(
opened = 0
for i in range(20000):
    try:
        os.close(os.open(A[0] + "/missing-" + str(i), os.O_RDONLY))
    except FileNotFoundError:
        opened += 1
R["opened"] = opened
)",
      {dir.file("data")},
      // The ring buffer's accounting alone: no event rate on top of it
      // (event_flood_test.cc covers the rate).
      {.extra_args = {"--ring-buffer", "4KiB", "--event-rate", "unlimited"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(python_result(r)["opened"], 20000) << r.describe();
  expect_gap_free_seq(r);
  const auto& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  const auto& k = exit["budgets"]["kernel_events"];
  ASSERT_TRUE(k.is_object()) << exit.dump();
  uint64_t records = k["records"].get<uint64_t>();
  uint64_t lost_total = k["lost"].get<uint64_t>();
  EXPECT_GE(records, 20000u) << exit.dump();
  EXPECT_GT(lost_total, 0u) << "a 4KiB ring buffer cannot hold 20000 records\n" << exit.dump();
  EXPECT_EQ(k["malformed"], 0) << exit.dump();

  // The lost events: never silent, and they add up to the kernel's count.
  auto lost = r.of_type("lost");
  ASSERT_FALSE(lost.empty()) << "records were lost without a lost event";
  uint64_t lost_sum = 0;
  for (const auto& e : lost) {
    EXPECT_GT(e["count"].get<uint64_t>(), 0u) << e.dump();
    lost_sum += e["count"].get<uint64_t>();
    EXPECT_EQ(e["total"].get<uint64_t>(), lost_sum) << e.dump();
  }
  EXPECT_EQ(lost_sum, lost_total) << exit.dump();

  // Every kernel record is either an event (which carries its kernel sequence number) or
  // counted as lost: delivered + lost == the kernel's total.
  std::set<uint64_t> kseqs;
  size_t opens = 0;
  for (const auto& e : r.events) {
    if (!e.contains("kseq")) continue;
    uint64_t kseq = e["kseq"].get<uint64_t>();
    EXPECT_LT(kseq, records) << e.dump();
    // exec + tool_call share one record; every other record is one event.
    if (e["type"] != "tool_call") EXPECT_TRUE(kseqs.insert(kseq).second) << e.dump();
    opens += e["type"] == "open";
  }
  EXPECT_GT(opens, 0u) << "no open event was delivered at all";
  uint64_t first_undelivered = 0;
  while (kseqs.count(first_undelivered))
    ++first_undelivered;
  EXPECT_EQ(kseqs.size() + lost_sum, records)
      << "delivered kernel records: " << kseqs.size() << ", lost: " << lost_sum
      << ", kernel records: " << records << ", first kseq without an event: " << first_undelivered
      << "\n"
      << exit.dump();
}

TEST(BpfEvents, SequenceNumbersAreGapFreeInAnOrdinaryRun) {
  TempDir dir;
  auto m = base_manifest("events-seq", {"/usr/bin/python3", "/usr/bin/true"});
  m["audit"] = {{"files", true}, {"syscalls", true}};
  auto r = run_enclosure(dir, m, python_agent(R"(
import subprocess
for i in range(5):
    subprocess.run(["/usr/bin/true"])
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  expect_gap_free_seq(r);
  EXPECT_EQ(r.events.front()["type"], "start");
  EXPECT_EQ(r.events.back()["type"], "exit");
  EXPECT_EQ(r.of_type("tool_call").size(), 5u) << r.describe();
  EXPECT_TRUE(r.of_type("lost").empty()) << r.describe();
  const auto& k = r.events.back()["budgets"]["kernel_events"];
  EXPECT_EQ(k["lost"], 0) << k.dump();
  EXPECT_EQ(k["execs"], 6) << k.dump();  // the initial command and five calls
  // Every event of the run carries the same run id and manifest.
  for (const auto& e : r.events) {
    EXPECT_EQ(e["run"], r.events.front()["run"]) << e.dump();
    EXPECT_EQ(e["manifest"]["name"], "events-seq") << e.dump();
  }
}

TEST(BpfIsolation, TwoEnclosuresAtOnceKeepTheirOwnEgressRules) {
  TempDir dir;
  std::string gate_dir = dir.file("gate");
  std::string gate = gate_dir + "/go";
  dir.write("gate/.keep", "");
  LoopbackListener first_target(Protocol::tcp, "127.0.0.1");
  LoopbackListener second_target(Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(first_target.ok() && second_target.ok());
  auto manifest = [&](const std::string& name, int port) {
    auto m = base_manifest(name, {"/usr/bin/python3"});
    m["filesystem"]["read"].push_back(gate_dir);
    m["network"] = {
        {"mode", "filtered"},
        {"egress", nlohmann::json::array(
                       {{{"cidr", "127.0.0.1/32"}, {"ports", nlohmann::json::array({port})}}})}};
    return m;
  };
  std::string body = R"(
t("own", lambda: tcp_connect(int(A[1])))
t("other", lambda: tcp_connect(int(A[2])))
)";
  std::string p1 = std::to_string(first_target.port());
  std::string p2 = std::to_string(second_target.port());
  BackgroundRun first(dir, manifest("isolation-first", first_target.port()),
                      gated_agent(body, {gate, p1, p2}));
  BackgroundRun second(dir, manifest("isolation-second", second_target.port()),
                       gated_agent(body, {gate, p2, p1}));
  // Both agents are running (each with its own eBPF layer attached) before either connects.
  auto ready1 = first.read_line(30000);
  auto ready2 = second.read_line(30000);
  EXPECT_EQ(ready1.value_or("<none>"), "READY");
  EXPECT_EQ(ready2.value_or("<none>"), "READY");
  { std::ofstream(gate) << "go"; }
  RunResult r1 = first.wait(60000);
  RunResult r2 = second.wait(60000);
  ASSERT_EQ(r1.exit_code, 0) << r1.describe();
  ASSERT_EQ(r2.exit_code, 0) << r2.describe();
  auto res1 = python_result(r1);
  auto res2 = python_result(r2);
  EXPECT_EQ(res1["own"], "ok") << r1.describe();
  EXPECT_EQ(res1["other"], "EPERM") << r1.describe();
  EXPECT_EQ(res2["own"], "ok") << r2.describe();
  EXPECT_EQ(res2["other"], "EPERM") << r2.describe();
  // Each run logs only its own decisions.
  auto check_events = [](const RunResult& r, const std::string& own, const std::string& other) {
    auto connects = r.of_type("connect");
    ASSERT_EQ(connects.size(), 1u) << r.describe();
    EXPECT_EQ(connects[0]["destination"], "127.0.0.1:" + own) << r.describe();
    auto denies = r.of_type("deny");
    ASSERT_EQ(denies.size(), 1u) << r.describe();
    EXPECT_EQ(denies[0]["destination"], "127.0.0.1:" + other) << r.describe();
    EXPECT_EQ(denies[0]["hook"], "connect4") << r.describe();
    EXPECT_EQ(r.events.back()["budgets"]["kernel_events"]["network_denials"], 1) << r.describe();
  };
  check_events(r1, p1, p2);
  check_events(r2, p2, p1);
  first_target.collect();
  second_target.collect();
  EXPECT_EQ(first_target.connections(), 1u) << first_target.describe();
  EXPECT_EQ(second_target.connections(), 1u) << second_target.describe();
  EXPECT_EQ(first_target.bytes(), 5u) << first_target.describe();
  EXPECT_EQ(second_target.bytes(), 5u) << second_target.describe();
  EXPECT_NE(run_id(r1), run_id(r2));
  EXPECT_TRUE(leftover_cgroups_of(run_id(r1)).empty());
  EXPECT_TRUE(leftover_cgroups_of(run_id(r2)).empty());
}

TEST(BpfCleanup, NoProgramLinkMapOrCgroupOutlivesARun) {
  TempDir dir;
  std::string gate_dir = dir.file("gate");
  std::string gate = gate_dir + "/go";
  dir.write("gate/.keep", "");
  BpfObjects before = harness::bpf_objects_on_host();
  // Every program of the layer: filtered egress, exec tracing, syscall budget, both audits.
  auto m = base_manifest("cleanup", {"/usr/bin/python3", "/usr/bin/true"});
  m["filesystem"]["read"].push_back(gate_dir);
  m["network"] = {
      {"mode", "filtered"},
      {"egress",
       nlohmann::json::array({{{"cidr", "127.0.0.1/32"}, {"ports", nlohmann::json::array({9})}}})}};
  m["budgets"]["syscalls"] = 100000000;
  m["budgets"]["egress_bytes"] = "1MiB";
  m["budgets"]["tool_calls"] = 100;
  m["audit"] = {{"files", true}, {"syscalls", true}};
  BackgroundRun run(dir, m,
                    gated_agent(R"(
import subprocess
subprocess.run(["/usr/bin/true"])
)",
                                {gate}));
  auto ready = run.read_line(30000);
  ASSERT_EQ(ready.value_or("<none>"), "READY");
  BpfObjects held = harness::bpf_objects_held_by(run.pid());
  BpfObjects during = harness::bpf_objects_on_host();
  { std::ofstream(gate) << "go"; }
  RunResult r = run.wait(60000);
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  // While it ran, the launcher held the layer's programs, their links and its maps.
  std::set<std::string> program_names;
  for (const auto& [id, name] : held.programs) {
    if (during.programs.count(id)) program_names.insert(during.programs[id]);
  }
  for (const char* p : {"enc_connect4", "enc_connect6", "enc_sendmsg4", "enc_sendmsg6",
                        "enc_sock_create", "enc_skb_egress", "enc_exec", "enc_sys_exit"}) {
    EXPECT_TRUE(program_names.count(p))
        << p << " not held by the launcher: " << names(during.programs);
  }
  EXPECT_GE(held.links.size(), 9u) << names(held.links);
  std::set<std::string> map_names;
  for (const auto& [id, name] : held.maps) {
    if (during.maps.count(id)) map_names.insert(during.maps[id]);
  }
  for (const char* name : {"configs", "states", "events", "egress4", "egress6", "tools"}) {
    EXPECT_TRUE(map_names.count(name))
        << name << " not held by the launcher: " << names(during.maps);
  }

  // After it: none of them is left (the kernel frees them once the last reference is gone).
  BpfObjects after;
  auto none_left = [&] {
    after = harness::bpf_objects_on_host();
    for (const auto& [id, name] : held.programs) {
      if (after.programs.count(id)) return false;
    }
    for (const auto& [id, name] : held.links) {
      if (after.links.count(id)) return false;
    }
    for (const auto& [id, name] : held.maps) {
      if (after.maps.count(id)) return false;
    }
    return true;
  };
  EXPECT_TRUE(harness::wait_until(none_left, 10000))
      << "left behind: programs " << names(after.programs) << "; links " << names(after.links)
      << "; maps " << names(after.maps);
  // And no enc_ program that was not there before, unless another process (another run on
  // this host) holds it right now.
  BpfObjects anyone = harness::bpf_objects_held_by_any_process();
  for (const auto& [id, name] : after.programs) {
    if (name.rfind("enc_", 0) != 0 || before.programs.count(id)) continue;
    bool in_use = anyone.programs.count(id) > 0;
    EXPECT_TRUE(in_use || !harness::bpf_objects_on_host().programs.count(id))
        << "program " << id << " (" << name << ") outlived its run";
  }
  EXPECT_TRUE(leftover_cgroups_of(run_id(r)).empty()) << run_id(r);
}
