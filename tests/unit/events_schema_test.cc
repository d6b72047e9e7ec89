// policy/events.schema.json: valid JSON Schema (draft 2020-12) that takes well-formed events of
// every type and rejects an unknown type, a missing required field and a field the type does not
// have (tests/kernel/event_schema_test.cc checks it against what the launcher writes).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

using nlohmann::json;

namespace {

const std::string kSource = ENCLOSURE_SOURCE_DIR;

json base(const std::string& type) {
  return {{"ts", "2026-11-28T16:02:44.123456789Z"},
          {"run", "0123456789abcdef0123456789abcdef"},
          {"seq", 1},
          {"type", type},
          {"pid", 42},
          {"manifest",
           {{"name", "m"}, {"revision", nullptr}, {"digest", "sha256:" + std::string(64, 'a')}}}};
}

json with(json e, const json& fields) {
  for (auto it = fields.begin(); it != fields.end(); ++it)
    e[it.key()] = it.value();
  return e;
}

// Exit status of tests/validate_events.py on the one event, and its output.
int validate(const json& event, std::string& output, const std::string& schema = "") {
  std::string dir =
      std::filesystem::temp_directory_path() / ("enclosure-schema-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string file = dir + "/event.jsonl";
  std::ofstream(file) << event.dump() << "\n";
  std::string command = "python3 " + kSource + "/tests/validate_events.py " +
                        (schema.empty() ? kSource + "/policy/events.schema.json" : schema) + " " +
                        file + " 2>&1";
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

void expect_valid(const json& event) {
  std::string out;
  EXPECT_EQ(validate(event, out), 0) << event.dump() << "\n" << out;
}

void expect_invalid(const json& event, const std::string& why) {
  std::string out;
  EXPECT_EQ(validate(event, out), 1) << why << ": " << event.dump() << "\n" << out;
}

}  // namespace

TEST(EventsSchema, AcceptsWellFormedEvents) {
  expect_valid(with(base("exec"), {{"path", "/usr/bin/git"}, {"ppid", 1}, {"kseq", 3}}));
  expect_valid(with(base("deny"), {{"section", "syscalls"},
                                   {"syscall", "ptrace"},
                                   {"nr", 101},
                                   {"abi", "x86_64"},
                                   {"args", {"0x0"}},
                                   {"origin", "/syscalls/profile (default: @debug)"},
                                   {"action", "EPERM"}}));
  expect_valid(with(
      base("budget"),
      {{"name", "cost_usd"}, {"limit", "$0.50"}, {"value", "$0.60"}, {"action", "terminate"}}));
  expect_valid(with(base("open"), {{"path", "bad\xef\xbf\xbd"},
                                   {"path_hex", "6261640a"},
                                   {"flags", "O_RDONLY"},
                                   {"result", "-ENOENT"},
                                   {"ok", false}}));
}

TEST(EventsSchema, RejectsAnUnknownType) {
  expect_invalid(with(base("teleport"), {{"path", "/x"}}), "unknown type");
}

TEST(EventsSchema, RejectsAMissingRequiredField) {
  json deny = with(base("deny"), {{"section", "network"}, {"action", "EPERM"}});
  expect_invalid(deny, "deny without origin");
  json exec = with(base("exec"), {{"path", "/bin/true"}});
  exec.erase("run");
  expect_invalid(exec, "an event without run");
  expect_invalid(with(base("exit"), {{"ended_by", "exited"}}), "exit without its totals");
}

TEST(EventsSchema, RejectsAFieldTheTypeDoesNotHave) {
  expect_invalid(with(base("exec"), {{"path", "/bin/true"}, {"section", "tools"}}),
                 "section is a deny field");
  expect_invalid(with(base("exec"), {{"path", "/bin/true"}, {"rogue", 1}}), "an unknown field");
  expect_invalid(with(base("exec"), {{"path", "/bin/true"}, {"ts", "yesterday"}}),
                 "ts not RFC 3339");
}
