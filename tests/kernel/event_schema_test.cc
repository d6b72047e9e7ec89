// policy/events.schema.json is what the launcher writes: enclosures that produce every event
// type (start, exec, tool_call, open, connect, dns, deny of the syscalls, network and filesystem
// sections, budget, rule, anomaly, cost, lost, suppressed, window, exit) write their events to
// files, and every line of them must validate against the schema (python3-jsonschema,
// tests/validate_events.py), which rejects unknown types and fields; and their OCSF and ECS forms
// (`audit show --format ocsf|ecs`) validate against the class schemas in tests/siem-schemas/.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::LoopbackListener;
using harness::python_agent;
using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

const std::string kSource = ENCLOSURE_SOURCE_DIR;

// Runs `enclosure audit show --format FORMAT` on the events files and validates its output
// against the class schemas pinned in tests/siem-schemas/ (SCHEMA: a directory or a file).
void expect_valid_siem_output(const TempDir& dir, const std::vector<std::string>& files,
                              const std::string& format, const std::string& schema) {
  std::vector<std::string> argv = {harness::enclosure_binary(), "audit", "show", "--format",
                                   format};
  argv.insert(argv.end(), files.begin(), files.end());
  RunResult shown = run_command(argv);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_FALSE(shown.out.empty()) << format << ": nothing mapped";
  std::string out = dir.write(format + ".out", shown.out);
  RunResult v = run_command({"python3", kSource + "/tests/validate_events.py",
                             kSource + "/tests/siem-schemas/" + schema, out});
  EXPECT_EQ(v.exit_code, 0) << format << ":\n" << v.out << v.err;
}

// Validates every *.jsonl file under `dir` against policy/events.schema.json, and their OCSF and
// ECS forms against the pinned class schemas; returns the types seen (the validator's
// "TYPE COUNT" lines).
std::set<std::string> expect_valid_events(const TempDir& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path().string());
  }
  EXPECT_FALSE(files.empty()) << "no events file in " << dir.path();
  std::vector<std::string> argv = {"python3", kSource + "/tests/validate_events.py",
                                   kSource + "/policy/events.schema.json"};
  argv.insert(argv.end(), files.begin(), files.end());
  RunResult v = run_command(argv);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  expect_valid_siem_output(dir, files, "ocsf", "ocsf-1.3");
  expect_valid_siem_output(dir, files, "ecs", "ecs-8/event.schema.json");
  std::set<std::string> types;
  std::istringstream lines(v.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find(' ') != std::string::npos && line.find(':') == std::string::npos &&
        line.front() != ' ')
      types.insert(line.substr(0, line.find(' ')));
  }
  return types;
}

void expect_types(const std::set<std::string>& seen, const std::set<std::string>& wanted) {
  for (const std::string& t : wanted)
    EXPECT_TRUE(seen.count(t)) << "no " << t << " event was produced (or validated)";
}

json meter_and_tools_manifest(const TempDir& dir, uint16_t port) {
  json m = base_manifest("schema-all", {"/usr/bin/python3", "/usr/bin/true"});
  m["tools"][1]["max_calls"] = 2;
  m["filesystem"]["read"].push_back(dir.path());
  m["audit"] = {{"files", true}};
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {port}}}}}};
  m["rules"] = {{{"id", "no-write-after-pii"},
                 {"after", {{"read", {dir.file("pii")}}}},
                 {"deny", {"write"}}}};
  m["budgets"] = {{"cost_usd", 100}};
  return m;
}

}  // namespace

// One run with most event types: exec, tool_call, open, connect, deny (syscalls, network,
// filesystem, tools), rule, cost (accepted and rejected), budget (max_calls), start and exit.
TEST(EventSchema, EventsOfAnEnforcedRunValidate) {
  TempDir dir;
  std::string pii = dir.write("pii/data.csv", "name,card\n");
  LoopbackListener listener(LoopbackListener::Protocol::tcp, "127.0.0.1");
  ASSERT_TRUE(listener.ok());
  std::string body = R"(import socket, subprocess, ctypes
meter = os.fdopen(3, "w", buffering=1)
t('meter', lambda: meter.write('{"cost_usd": 0.25, "note": "a call"}\n'))
t('bad_meter', lambda: meter.write('{"cost": "lots"}\n'))
t('ptrace', lambda: libc.ptrace(0, 0, 0, 0))
t('write_usr', lambda: open('/usr/enclosure-schema-test', 'w'))
t('exec_tmp', lambda: subprocess.run(['/tmp/not-a-tool']))
t('connect', lambda: socket.create_connection(('127.0.0.1', int(A[0])), timeout=3).close())
t('connect_other', lambda: socket.create_connection(('127.0.0.1', int(A[0]) + 1), timeout=3).close())
t('read_pii', lambda: open(A[1]).read())
t('true1', lambda: subprocess.run(['/usr/bin/true']))
t('true2', lambda: subprocess.run(['/usr/bin/true']))
t('true3', lambda: subprocess.run(['/usr/bin/true']))
)";
  RunResult r = run_enclosure(dir, meter_and_tools_manifest(dir, listener.port()),
                              python_agent(body, {std::to_string(listener.port()), pii}));
  ASSERT_FALSE(r.events.empty()) << r.describe();
  std::set<std::string> seen = expect_valid_events(dir);
  expect_types(seen, {"start", "exec", "tool_call", "open", "open_count", "connect", "deny", "rule",
                      "cost", "budget", "exit"});
  std::set<std::string> sections;
  for (const json& d : r.of_type("deny"))
    sections.insert(d.value("section", ""));
  for (const char* s : {"syscalls", "network", "filesystem"})
    EXPECT_TRUE(sections.count(s)) << "no deny of section " << s << "\n" << r.describe();
}

// dns events (refused, and an error when the upstream does not answer) and the deny of a
// connect no rule admits.
TEST(EventSchema, DnsEventsValidate) {
  TempDir dir;
  json m = base_manifest("schema-dns", {"/usr/bin/python3"});
  m["network"] = {{"mode", "filtered"},
                  {"dns", true},
                  {"egress", {{{"host", "api.test.example"}, {"ports", {443}}}}}};
  std::string body = R"(import socket, struct
def query(name):
    q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split('.'): q += bytes([len(label)]) + label.encode()
    return q + b'\0' + struct.pack('>HH', 1, 1)
def ask(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    s.sendto(query(name), ('127.0.0.1', 53)); return s.recvfrom(4096)[0][3] & 15
def ask_malformed():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    s.sendto(b'\x12\x34\x01', ('127.0.0.1', 53)); return s.recvfrom(4096)[0][3] & 15
t('refused', lambda: ask('secret.test.example'))
t('error', lambda: ask('api.test.example'))
t('malformed', ask_malformed)
t('connect', lambda: socket.create_connection(('127.0.0.1', 9), timeout=3).close())
)";
  // An upstream that is not there: the allowed name's query is an error.
  RunResult r =
      run_enclosure(dir, m, python_agent(body), {.extra_args = {"--dns-upstream", "127.0.0.1:9"}});
  ASSERT_FALSE(r.events.empty()) << r.describe();
  expect_types(expect_valid_events(dir), {"start", "dns", "deny", "exit"});
  std::set<std::string> results;
  for (const json& d : r.of_type("dns"))
    results.insert(d.value("result", ""));
  EXPECT_TRUE(results.count("refused")) << r.describe();
}

// suppressed events: a rate of 1/s with a burst of 1 turns a flood of opens into counts.
TEST(EventSchema, SuppressedEventsValidate) {
  TempDir dir;
  std::string file = dir.write("data/a.txt", "x");
  json m = base_manifest("schema-rate", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("data"));
  m["audit"] = {{"files", true}};
  RunResult r = run_enclosure(dir, m,
                              python_agent(R"(
for i in range(200):
    os.close(os.open(A[0], os.O_RDONLY))
)",
                                           {file}),
                              {.extra_args = {"--event-rate", "1/s", "--event-burst", "1"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  expect_types(expect_valid_events(dir), {"start", "open", "suppressed", "exit"});
}

// window events of an observation run (what learn records), and the anomaly of a run against
// the baseline learn wrote.
TEST(EventSchema, WindowAndAnomalyEventsValidate) {
  TempDir dir;
  RunResult observed = run_enclosure(dir, base_manifest("schema-window", {"/usr/bin/python3"}),
                                     {"/usr/bin/python3", "-c", "import time; time.sleep(1.5)"},
                                     {.extra_args = {"--observe"}});
  EXPECT_EQ(observed.exit_code, 0) << observed.describe();
  // learn and the run in `dir`: learn grants the directory it ran in.
  auto in_dir = [&dir](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", dir.path(),
                                     harness::enclosure_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, {.timeout_seconds = 120});
  };
  RunResult learned = in_dir({"learn", "-o", dir.file("learned.json"), "--", "/usr/bin/python3",
                              "-c", "import time; time.sleep(1.5)"});
  ASSERT_EQ(learned.exit_code, 0) << learned.describe();
  json m = json::parse(std::ifstream(dir.file("learned.json")));
  m["syscalls"] = {{"profile", "default"}};
  m["baseline"]["action"] = "alert";
  std::ofstream(dir.file("baseline.json")) << m.dump(2);
  RunResult r = in_dir({"run", "-m", dir.file("baseline.json"), "--events",
                        dir.file("events.jsonl"), "--", "/usr/bin/python3", "-c",
                        "import os, time; os.getpriority(os.PRIO_PROCESS, 0); time.sleep(1.5)"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  expect_types(expect_valid_events(dir), {"start", "exec", "window", "anomaly", "exit"});
}

// lost events: a flood of opens through a tiny ring buffer (of distinct missing paths: repeats
// of one file are counted in the kernel, not recorded), in a tight loop: the faster supervisor
// kept up with a slower flood of 2,000 through the 4 KiB ring (about a dozen records) once.
namespace {

// The lines of the events files under `from` into `to`/events.jsonl, as written, but at most
// `per_type` of each type in `thinned` (the validator takes ~1 ms a line, a flood is 40,000).
void copy_thinned_events(const TempDir& from, TempDir& to, const std::set<std::string>& thinned,
                         size_t per_type) {
  std::map<std::string, size_t> kept;
  std::string out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(from.path())) {
    if (entry.path().extension() != ".jsonl") continue;
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      std::string type = json::parse(line).value("type", "");
      if (thinned.count(type) && ++kept[type] > per_type) continue;
      out += line + "\n";
    }
  }
  to.write("events.jsonl", out);
}

}  // namespace

TEST(EventSchema, LostEventsValidate) {
  TempDir dir;
  dir.write("data/a.txt", "x");
  json m = base_manifest("schema-lost", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("data"));
  m["audit"] = {{"files", true}};
  // 20,000 distinct missing paths, each a record, made while the launcher is stopped: a 4 KiB
  // ring buffer with no reader overflows (bpf_events_test.cc counts the same flood).
  RunResult r = harness::run_flood_with_launcher_stopped(
      dir, m, R"(
for i in range(20000):
    try:
        os.open(A[0] + "/missing-" + str(i), os.O_RDONLY)
    except FileNotFoundError:
        pass
)",
      {dir.file("data")}, {.extra_args = {"--ring-buffer", "4KiB", "--event-rate", "unlimited"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_FALSE(r.of_type("lost").empty()) << "no lost event\n" << r.describe();
  TempDir sample;
  copy_thinned_events(dir, sample, {"open", "open_count"}, 50);
  expect_types(expect_valid_events(sample), {"start", "open", "open_count", "lost", "exit"});
}
