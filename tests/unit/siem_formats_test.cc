// `audit show --format ocsf|ecs`: events of every mapped type become the documented OCSF classes
// and ECS categories, carry the run, manifest, digest and approver, and validate against the
// minimal class schemas pinned in tests/siem-schemas/ (written from the published OCSF 1.3 and
// ECS 8 definitions); a record of no class maps to nothing; the schemas reject what the classes
// do not allow.
#include "launcher/events/siem_formats.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using launcher::SiemFormat;
using launcher::SiemMapper;
using nlohmann::json;

namespace {

const std::string kSource = ENCLOSURE_SOURCE_DIR;
const std::string kRun = "0123456789abcdef0123456789abcdef";
const std::string kDigest = "sha256:" + std::string(64, 'c');

json event(const std::string& type, uint64_t seq, const json& fields) {
  json e = {{"ts", "2026-11-28T16:02:44.123456789Z"},
            {"run", kRun},
            {"seq", seq},
            {"type", type},
            {"pid", 4242},
            {"manifest", {{"name", "coding-agent"}, {"revision", 3}, {"digest", kDigest}}}};
  for (auto it = fields.begin(); it != fields.end(); ++it)
    e[it.key()] = it.value();
  return e;
}

// The start of the sample run and its process and file events (seq 0 to 4).
std::vector<json> process_and_file_events() {
  return {
      event("start", 0,
            {{"approved_by", "security@example.com"},
             {"reason", "nightly refactoring"},
             {"invoked_by", {{"uid", 1000}, {"gid", 1000}, {"name", "ci"}}},
             {"agent_user", {{"uid", 65534}, {"gid", 65534}}},
             {"command", {"python3", "agent.py"}},
             {"tool", "python3"},
             {"received", {{"hostname", "node-7"}}}}),
      event("exec", 1,
            {{"path", "/usr/bin/python3"}, {"ppid", 1}, {"argv", {"python3", "agent.py"}}}),
      event("tool_call", 2,
            {{"tool", "git"}, {"calls", 1}, {"total_calls", 1}, {"cost_usd", "$0.00"}}),
      event("open", 3,
            {{"path", "/work/src/main.cc"}, {"flags", "O_RDONLY"}, {"result", 3}, {"ok", true}}),
      event("open_count", 4,
            {{"path", "/work/src/main.cc"},
             {"access", "O_RDONLY"},
             {"flags", "O_RDONLY"},
             {"ok", true},
             {"opens", 5},
             {"repeats", 4}}),
  };
}

// A run with an event of every type the formats map, and some they do not.
std::vector<json> sample_run() {
  std::vector<json> run = process_and_file_events();
  std::vector<json> rest = {
      event("connect", 5,
            {{"hook", "connect4"},
             {"protocol", "tcp"},
             {"address", "140.82.112.3"},
             {"port", 443},
             {"destination", "140.82.112.3:443"},
             {"name", "github.com"}}),
      event("dns", 6,
            {{"name", "github.com"},
             {"query_type", "A"},
             {"transport", "udp"},
             {"result", "answered"},
             {"answers", {{{"address", "140.82.112.3"}, {"ttl", 60}}}}}),
      event("dns", 7,
            {{"name", "evil.example"},
             {"query_type", "A"},
             {"transport", "udp"},
             {"result", "refused"},
             {"reason", "no egress host rule allows it"}}),
      event("deny", 8,
            {{"section", "network"},
             {"origin", "/network/egress"},
             {"hook", "connect4"},
             {"protocol", "tcp"},
             {"address", "10.0.0.1"},
             {"port", 22},
             {"destination", "10.0.0.1:22"},
             {"action", "EPERM"},
             {"reason", "no egress rule admits this address"}}),
      event("deny", 9,
            {{"section", "filesystem"},
             {"origin", "/filesystem/read/0"},
             {"syscall", "unlinkat"},
             {"nr", 263},
             {"path", "/usr/lib/x"},
             {"action", "EROFS"},
             {"reason", "not under a write grant"}}),
      event("deny", 10,
            {{"section", "syscalls"},
             {"syscall", "ptrace"},
             {"nr", 101},
             {"origin", "/syscalls/profile (default: @debug)"},
             {"action", "EPERM"}}),
      event("deny", 11,
            {{"section", "tools"},
             {"origin", "/tools"},
             {"path", "/tmp/x"},
             {"syscall", "execve"},
             {"action", "EACCES"},
             {"reason", "not a tool"}}),
      event("rule", 12,
            {{"rule", "no-net-after-pii"},
             {"origin", "/rules/0"},
             {"denies", {"network"}},
             {"trigger", "read"},
             {"file", "/data/pii"}}),
      event("budget", 13,
            {{"name", "tool_calls"},
             {"limit", 10},
             {"value", 10},
             {"action", "terminate"},
             {"origin", "/budgets/tool_calls"}}),
      event("anomaly", 14,
            {{"what", "syscall"},
             {"syscall", "getpriority"},
             {"window_ms", 1000},
             {"action", "alert"}}),
      event("cost", 15, {{"cost_usd", "$0.25"}}),
      event("exit", 16,
            {{"ended_by", "budget"},
             {"exit_code", 137},
             {"duration_ns", 5},
             {"denials", 4},
             {"budgets", json::object()},
             {"events", json::object()},
             {"suppressed", json::object()},
             {"sink_failures", 0}}),
  };
  run.insert(run.end(), rest.begin(), rest.end());
  return run;
}

std::vector<json> mapped(SiemFormat format, const std::vector<json>& records) {
  SiemMapper mapper(format, "0.1.0");
  std::vector<json> out;
  for (const json& r : records)
    out.push_back(mapper.map(r));
  return out;
}

// Exit status of tests/validate_events.py on the documents (its output in `output`).
int validate(const std::vector<json>& docs, const std::string& schema, std::string& output) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("enclosure-siem-" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  std::string file = dir + "/out.jsonl";
  {
    std::ofstream out(file);
    for (const json& d : docs) {
      if (!d.is_null()) out << d.dump() << "\n";
    }
  }
  std::string command = "python3 " + kSource + "/tests/validate_events.py " + kSource +
                        "/tests/siem-schemas/" + schema + " " + file + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  output.clear();
  char buf[4096];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof buf, p)) > 0)
    output.append(buf, n);
  int status = p ? ::pclose(p) : -1;
  std::filesystem::remove_all(dir);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(SiemFormats, OcsfClassesPerEventType) {
  std::vector<json> records = sample_run();
  std::vector<json> o = mapped(SiemFormat::ocsf, records);
  std::map<uint64_t, int> expected = {
      {0, 1007}, {1, 1007}, {2, 1007},  {3, 1001},  {4, 1001},  {5, 4001},  {6, 4003},  {7, 4003},
      {8, 4001}, {9, 1001}, {10, 2004}, {11, 1007}, {12, 2004}, {13, 2004}, {14, 2004}, {16, 1007}};
  for (size_t i = 0; i < records.size(); ++i) {
    SCOPED_TRACE(records[i].dump());
    if (!expected.count(i)) {
      EXPECT_TRUE(o[i].is_null()) << o[i].dump();
      continue;
    }
    ASSERT_TRUE(o[i].is_object());
    EXPECT_EQ(o[i]["class_uid"], expected[i]);
    EXPECT_EQ(o[i]["type_uid"], expected[i] * 100 + o[i]["activity_id"].get<int>());
    EXPECT_EQ(o[i]["metadata"]["correlation_uid"], kRun);
    const json& labels = o[i]["metadata"]["labels"];
    EXPECT_NE(std::find(labels.begin(), labels.end(), "enclosure.manifest_digest=" + kDigest),
              labels.end())
        << labels.dump();
    EXPECT_NE(
        std::find(labels.begin(), labels.end(), json("enclosure.approved_by=security@example.com")),
        labels.end())
        << labels.dump();
    EXPECT_EQ(o[i]["unmapped"]["enclosure"]["manifest"]["digest"], kDigest);
    EXPECT_EQ(o[i]["device"]["hostname"], "node-7");
    EXPECT_EQ(json::parse(o[i]["raw_data"].get<std::string>()), records[i]);
  }
  EXPECT_EQ(o[0]["actor"]["user"]["uid"], "1000");   // start: the invoking user
  EXPECT_EQ(o[1]["actor"]["user"]["uid"], "65534");  // the agent's events: its user
  EXPECT_EQ(o[5]["dst_endpoint"]["ip"], "140.82.112.3");
  EXPECT_EQ(o[5]["dst_endpoint"]["hostname"], "github.com");
  EXPECT_EQ(o[8]["activity_name"], "Refuse");
  EXPECT_EQ(o[8]["disposition_id"], 2);
  EXPECT_EQ(o[9]["activity_name"], "Delete");
  EXPECT_EQ(o[9]["status_id"], 2);
  EXPECT_EQ(o[7]["rcode"], "Refused");
  EXPECT_EQ(o[4]["count"], 5);
  EXPECT_EQ(o[16]["exit_code"], 137);
}

TEST(SiemFormats, OcsfOutputValidatesAgainstThePinnedClassSchemas) {
  std::string out;
  EXPECT_EQ(validate(mapped(SiemFormat::ocsf, sample_run()), "ocsf-1.3", out), 0) << out;
  for (const char* cls :
       {"class_uid=1001", "class_uid=1007", "class_uid=2004", "class_uid=4001", "class_uid=4003"})
    EXPECT_NE(out.find(cls), std::string::npos) << cls << "\n" << out;
}

TEST(SiemFormats, EcsOutputValidatesAgainstThePinnedSchema) {
  std::vector<json> e = mapped(SiemFormat::ecs, sample_run());
  std::string out;
  EXPECT_EQ(validate(e, "ecs-8/event.schema.json", out), 0) << out;
  EXPECT_EQ(e[5]["destination"]["ip"], "140.82.112.3");
  EXPECT_EQ(e[5]["event"]["category"], json::array({"network"}));
  EXPECT_EQ(e[6]["dns"]["question"]["name"], "github.com");
  EXPECT_EQ(e[10]["event"]["kind"], "alert");
  EXPECT_EQ(e[10]["event"]["outcome"], "failure");
  EXPECT_EQ(e[12]["rule"]["id"], "no-net-after-pii");
  EXPECT_EQ(e[1]["labels"]["enclosure_manifest_digest"], kDigest);
  EXPECT_EQ(e[1]["labels"]["enclosure_approved_by"], "security@example.com");
  EXPECT_TRUE(e[15].is_null());  // cost: no class
}

TEST(SiemFormats, ThePinnedSchemasRejectWhatTheClassesDoNotAllow) {
  json process = mapped(SiemFormat::ocsf, sample_run())[1];
  std::string out;
  json no_process = process;
  no_process.erase("process");
  EXPECT_EQ(validate({no_process}, "ocsf-1.3", out), 1) << "process is required\n" << out;
  json invented = process;
  invented["made_up_attribute"] = 1;
  EXPECT_EQ(validate({invented}, "ocsf-1.3", out), 1) << "not an attribute\n" << out;
  json wrong_type_uid = process;
  wrong_type_uid["type_uid"] = 100701;
  wrong_type_uid["activity_id"] = 2;
  EXPECT_EQ(validate({wrong_type_uid}, "ocsf-1.3", out), 1) << "type_uid mismatch\n" << out;

  json ecs = mapped(SiemFormat::ecs, sample_run())[3];
  ecs["event"]["type"] = json::array({"connection"});  // not a type of the file category
  EXPECT_EQ(validate({ecs}, "ecs-8/event.schema.json", out), 1) << out;
}
