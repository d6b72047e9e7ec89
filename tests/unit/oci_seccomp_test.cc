// OCI seccomp profiles: export of the compiled profile, import of an OCI file as
// /syscalls/profile (strict validation with pointers into the file), round trips, the filters an
// import cannot widen, the digest over the file's content, and `enclosure export`.
#include <gtest/gtest.h>
#include <seccomp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/compile.h"
#include "policy/diff.h"
#include "policy/digest.h"
#include "policy/explain.h"
#include "policy/load.h"
#include "policy/oci_seccomp.h"
#include "policy/syscall_table.h"

namespace {

using nlohmann::json;
using policy::SeccompCondition;
using policy::SeccompOp;
using policy::SeccompProfile;
using policy::SeccompRule;
using policy::SeccompVerdict;

json base_manifest() {
  return {{"apiVersion", "enclosure/v1"},
          {"metadata", {{"name", "oci-test"}}},
          {"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}}}}};
}

// Profile files by path, served to the parser by the reader callback.
struct Files {
  std::map<std::string, std::string> by_path;
  policy::LoadOptions options(bool allow_unresolved = false) const {
    policy::LoadOptions o;
    o.allow_unresolved = allow_unresolved;
    o.read_profile = [this](const std::string& path,
                            std::string& error) -> std::optional<std::string> {
      auto it = by_path.find(path);
      if (it == by_path.end()) {
        error = path + ": cannot open: No such file or directory";
        return std::nullopt;
      }
      return it->second;
    };
    return o;
  }
};

std::string errors_of(const policy::LoadResult& r) {
  std::string out;
  for (const policy::Diagnostic& d : r.diagnostics.errors())
    out += d.path + ": " + d.message + "\n";
  return out;
}

policy::LoadResult load(const json& syscalls, const Files& files) {
  json doc = base_manifest();
  doc["syscalls"] = syscalls;
  return policy::load_manifest(doc.dump(), {}, files.options());
}

policy::Manifest load_ok(const json& syscalls, const Files& files) {
  policy::LoadResult r = load(syscalls, files);
  EXPECT_TRUE(r.manifest) << syscalls.dump() << "\n" << errors_of(r);
  return r.manifest ? *r.manifest : policy::Manifest{};
}

json export_of(const policy::Manifest& m) {
  std::string error;
  std::optional<json> out = policy::export_oci_seccomp(policy::compile_seccomp(m.syscalls), error);
  EXPECT_TRUE(out) << error;
  return out ? *out : json();
}

// Every system call name libseccomp knows on x86_64.
const std::vector<std::string>& all_syscalls() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> out;
    for (int nr = 0; nr < 1024; ++nr) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
      if (!name) continue;
      out.push_back(name);
      free(name);
    }
    return out;
  }();
  return kNames;
}

// Per system call: the rules (verdict and comparisons) a profile has for it, as a set.
std::map<std::string, std::set<std::pair<int, std::vector<SeccompCondition>>>> rule_sets(
    const SeccompProfile& p) {
  std::map<std::string, std::set<std::pair<int, std::vector<SeccompCondition>>>> out;
  for (const SeccompRule& r : p.rules) {
    if (r.verdict == p.default_verdict) continue;
    std::vector<SeccompCondition> c = r.conditions;
    std::sort(c.begin(), c.end());
    out[r.syscall].insert({static_cast<int>(r.verdict), c});
  }
  return out;
}

using Args = std::array<uint64_t, 6>;

bool holds(const SeccompCondition& c, const Args& a) {
  uint64_t v = a.at(c.arg);
  switch (c.op) {
    case SeccompOp::eq:
      return v == c.value;
    case SeccompOp::ne:
      return v != c.value;
    case SeccompOp::gt:
      return v > c.value;
    case SeccompOp::masked_eq:
      return (v & c.mask) == c.value;
  }
  return false;
}

// What the filter answers for one call: an unconditional rule decides; otherwise a matching
// refusal, then a matching allow, then the default.
SeccompVerdict verdict(const SeccompProfile& p, const std::string& name, const Args& a = {}) {
  std::optional<SeccompVerdict> matched;
  for (const SeccompRule& r : p.rules) {
    if (r.syscall != name) continue;
    if (r.conditions.empty()) return r.verdict;
    bool all = std::all_of(r.conditions.begin(), r.conditions.end(),
                           [&](const SeccompCondition& c) { return holds(c, a); });
    if (!all) continue;
    if (!matched || r.verdict != SeccompVerdict::allow) matched = r.verdict;
  }
  return matched.value_or(p.default_verdict);
}

// ---- export ------------------------------------------------------------------------------------

TEST(OciExport, DefaultProfileIsADenyListWithEpermAndEnosys) {
  Files files;
  json oci = export_of(load_ok({{"profile", "default"}}, files));
  EXPECT_EQ(oci["defaultAction"], "SCMP_ACT_ALLOW");
  EXPECT_FALSE(oci.contains("defaultErrnoRet"));
  EXPECT_EQ(oci["architectures"], json::array({"SCMP_ARCH_X86_64"}));
  ASSERT_TRUE(oci["syscalls"].is_array());
  bool ptrace_eperm = false, clone3_enosys = false, socket_filtered = false;
  for (const json& e : oci["syscalls"]) {
    const json& names = e["names"];
    ASSERT_TRUE(std::is_sorted(names.begin(), names.end())) << e.dump();
    auto has = [&](const char* n) {
      return std::find(names.begin(), names.end(), n) != names.end();
    };
    if (has("ptrace")) {
      ptrace_eperm = e["action"] == "SCMP_ACT_ERRNO" && e["errnoRet"] == 1 && !e.contains("args");
    }
    if (has("clone3")) clone3_enosys = e["action"] == "SCMP_ACT_ERRNO" && e["errnoRet"] == 38;
    if (has("socket") && e.contains("args")) {
      socket_filtered = true;
      EXPECT_EQ(e["action"], "SCMP_ACT_ERRNO") << e.dump();
      for (const json& a : e["args"]) {
        EXPECT_TRUE(a["index"].is_number_unsigned());
        EXPECT_TRUE(a.contains("valueTwo"));
        EXPECT_TRUE(a["op"].get<std::string>().rfind("SCMP_CMP_", 0) == 0);
      }
    }
  }
  EXPECT_TRUE(ptrace_eperm);
  EXPECT_TRUE(clone3_enosys);
  EXPECT_TRUE(socket_filtered);
  // The text is JSON that parses back to the same value.
  EXPECT_EQ(json::parse(oci.dump(2)), oci);
}

TEST(OciExport, StrictProfileIsAnAllowListAndKillBecomesKillProcess) {
  Files files;
  json strict = export_of(load_ok({{"profile", "strict"}}, files));
  EXPECT_EQ(strict["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(strict["defaultErrnoRet"], 1);
  bool read_allowed = false;
  for (const json& e : strict["syscalls"]) {
    if (e["action"] == "SCMP_ACT_ALLOW" && !e.contains("args")) {
      read_allowed = std::find(e["names"].begin(), e["names"].end(), "read") != e["names"].end();
      if (read_allowed) break;
    }
  }
  EXPECT_TRUE(read_allowed);
  json kill = export_of(load_ok({{"profile", "strict"}, {"action", "kill"}}, files));
  EXPECT_EQ(kill["defaultAction"], "SCMP_ACT_KILL_PROCESS");
  EXPECT_FALSE(kill.contains("defaultErrnoRet"));
  json default_kill = export_of(load_ok({{"profile", "default"}, {"action", "kill"}}, files));
  bool ptrace_killed = false;
  for (const json& e : default_kill["syscalls"]) {
    auto& n = e["names"];
    if (std::find(n.begin(), n.end(), "ptrace") != n.end()) {
      ptrace_killed = e["action"] == "SCMP_ACT_KILL_PROCESS";
    }
  }
  EXPECT_TRUE(ptrace_killed);
}

TEST(OciExport, RefusesTwoComparisonsOfOneArgument) {
  SeccompProfile p;
  p.rules.push_back({"socket",
                     SeccompVerdict::deny,
                     {{0, SeccompOp::eq, 0, 1}, {0, SeccompOp::ne, 0, 2}},
                     "test"});
  std::string error;
  EXPECT_FALSE(policy::export_oci_seccomp(p, error));
  EXPECT_NE(error.find("compares argument 0 twice"), std::string::npos) << error;
}

// ---- round trips -------------------------------------------------------------------------------

struct RoundTripCase {
  const char* name;
  json syscalls;
};

class OciRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(OciRoundTrip, ExportImportExportIsIdenticalAndDecidesEveryCallAlike) {
  Files files;
  policy::Manifest original = load_ok(GetParam().syscalls, files);
  json first = export_of(original);
  files.by_path["/etc/enclosure/exported.json"] = first.dump(2);
  json imported_syscalls = {{"profile", "/etc/enclosure/exported.json"}};
  if (GetParam().syscalls.contains("action"))
    imported_syscalls["action"] = GetParam().syscalls["action"];
  policy::Manifest imported = load_ok(imported_syscalls, files);
  ASSERT_TRUE(imported.syscalls.is_imported());
  json second = export_of(imported);
  EXPECT_EQ(first.dump(2), second.dump(2));

  SeccompProfile a = policy::compile_seccomp(original.syscalls);
  SeccompProfile b = policy::compile_seccomp(imported.syscalls);
  EXPECT_EQ(a.default_verdict, b.default_verdict);
  EXPECT_EQ(a.action, b.action);
  EXPECT_EQ(policy::allowed_syscalls(a), policy::allowed_syscalls(b));
  auto ra = rule_sets(a), rb = rule_sets(b);
  size_t checked = 0;
  for (const std::string& name : all_syscalls()) {
    EXPECT_EQ(ra[name], rb[name]) << name;
    EXPECT_EQ(verdict(a, name), verdict(b, name)) << name;
    ++checked;
  }
  EXPECT_GT(checked, 300u);
  // The diff of the two manifests finds no system call that changed.
  for (const policy::DiffEntry& e : policy::diff_manifests(original, imported)) {
    EXPECT_NE(e.section, "syscalls") << e.what;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Profiles, OciRoundTrip,
    ::testing::Values(
        RoundTripCase{"default", {{"profile", "default"}}},
        RoundTripCase{"strict", {{"profile", "strict"}}},
        RoundTripCase{"default_kill", {{"profile", "default"}, {"action", "kill"}}},
        RoundTripCase{"strict_kill", {{"profile", "strict"}, {"action", "kill"}}},
        RoundTripCase{"default_adjusted", {{"profile", "default"}, {"deny", {"memfd_create"}}}},
        RoundTripCase{"strict_adjusted",
                      {{"profile", "strict"}, {"deny", {"getcpu"}}, {"allow", {"ptrace"}}}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- import semantics --------------------------------------------------------------------------

// An allow-list in the style of Docker's default profile.
json docker_like() {
  return json::parse(R"({
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
    "syscalls": [
      {"names": ["read", "write", "exit_group", "socket", "ioctl", "clone", "ptrace", "brk",
                 "mmap", "munmap", "sendmsg", "close", "execve"],
       "action": "SCMP_ACT_ALLOW", "comment": "basics"},
      {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
       "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
      {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
      {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
       "args": [{"index": 1, "value": 16, "op": "SCMP_CMP_LT"}]}
    ]
  })");
}

TEST(OciImport, AllowListKeepsTheEnclosuresArgumentFiltersOnTop) {
  Files files;
  files.by_path["/etc/enclosure/docker.json"] = docker_like().dump();
  policy::Manifest m = load_ok({{"profile", "/etc/enclosure/docker.json"}}, files);
  ASSERT_TRUE(m.syscalls.is_imported());
  SeccompProfile p = policy::compile_seccomp(m.syscalls);
  EXPECT_EQ(p.default_verdict, SeccompVerdict::deny);
  EXPECT_EQ(p.name, "/etc/enclosure/docker.json");
  EXPECT_EQ(verdict(p, "read"), SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "ptrace"), SeccompVerdict::allow);  // the file's decision
  EXPECT_EQ(verdict(p, "mount"), SeccompVerdict::deny);    // not listed
  // socket is allowed by the file outright; the family filter is kept.
  EXPECT_EQ(verdict(p, "socket", {1, 1, 0}), SeccompVerdict::allow);   // AF_UNIX
  EXPECT_EQ(verdict(p, "socket", {2, 1, 6}), SeccompVerdict::allow);   // TCP
  EXPECT_EQ(verdict(p, "socket", {17, 3, 0}), SeccompVerdict::deny);   // AF_PACKET
  EXPECT_EQ(verdict(p, "socket", {2, 3, 1}), SeccompVerdict::deny);    // raw ICMP
  EXPECT_EQ(verdict(p, "ioctl", {0, 0x5412}), SeccompVerdict::deny);   // TIOCSTI
  EXPECT_EQ(verdict(p, "ioctl", {0, 0x5401}), SeccompVerdict::allow);  // TCGETS
  EXPECT_EQ(verdict(p, "clone", {0x10000000}), SeccompVerdict::deny);  // CLONE_NEWUSER
  EXPECT_EQ(verdict(p, "clone", {0x11}), SeccompVerdict::allow);
  // personality: the file allows 0 or the query (one index twice: either); the filter only
  // the query.
  EXPECT_EQ(verdict(p, "personality", {0}), SeccompVerdict::deny);
  EXPECT_EQ(verdict(p, "personality", {0xffffffff}), SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "clone3"), SeccompVerdict::enosys);
  // LT 16 on argument 1: exact, as a union of masked comparisons.
  for (uint64_t v : {0ULL, 1ULL, 15ULL, 16ULL, 17ULL, 1ULL << 40}) {
    EXPECT_EQ(verdict(p, "getppid", {0, v}), v < 16 ? SeccompVerdict::allow : SeccompVerdict::deny)
        << v;
  }
  // explain says what the enclosure kept.
  std::string text = policy::explain_text(m);
  EXPECT_NE(text.find("profile imported from /etc/enclosure/docker.json"), std::string::npos)
      << text;
  EXPECT_NE(text.find("an allow-list"), std::string::npos);
  for (const char* kept : {"socket: argument filter", "ioctl: argument filter",
                           "clone: argument filter", "personality: argument filter"}) {
    EXPECT_NE(text.find(kept), std::string::npos) << kept << "\n" << text;
  }
  json j = policy::explain_json(m);
  EXPECT_EQ(j["syscalls"]["imported"]["kind"], "allow-list");
  EXPECT_EQ(j["syscalls"]["imported"]["digest"], m.syscalls.imported_digest);
}

TEST(OciImport, DenyListCannotLiftTheFiltersOrClone3) {
  Files files;
  files.by_path["/p/deny.json"] = R"({"defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["ptrace", "mount"], "action": "SCMP_ACT_ERRNO"},
                 {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                  "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
                 {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]})";
  policy::Manifest m = load_ok({{"profile", "/p/deny.json"}}, files);
  SeccompProfile p = policy::compile_seccomp(m.syscalls);
  EXPECT_EQ(p.default_verdict, SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "ptrace"), SeccompVerdict::deny);
  EXPECT_EQ(verdict(p, "getpid"), SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "bpf"), SeccompVerdict::allow);  // the file's decision
  EXPECT_EQ(verdict(p, "socket", {40}), SeccompVerdict::enosys);
  EXPECT_EQ(verdict(p, "socket", {17, 3}), SeccompVerdict::deny);  // the filter, kept
  EXPECT_EQ(verdict(p, "unshare", {0x10000000}), SeccompVerdict::deny);
  EXPECT_EQ(verdict(p, "clone3"), SeccompVerdict::enosys);
  EXPECT_EQ(p.origins.at("ptrace"), "/syscalls/profile (/p/deny.json: /syscalls/0)");
  std::string text = policy::explain_text(m);
  EXPECT_NE(text.find("a deny-list"), std::string::npos) << text;
  EXPECT_NE(text.find("clone3: answered ENOSYS"), std::string::npos) << text;
  // The manifest's lists adjust the file: deny adds, allow lifts (and removes the filter, as
  // for the built-in profiles).
  policy::Manifest adjusted = load_ok(
      {{"profile", "/p/deny.json"}, {"deny", {"bpf"}}, {"allow", {"ptrace", "socket"}}}, files);
  SeccompProfile q = policy::compile_seccomp(adjusted.syscalls);
  EXPECT_EQ(verdict(q, "bpf"), SeccompVerdict::deny);
  EXPECT_EQ(q.origins.at("bpf"), "/syscalls/deny/0");
  EXPECT_EQ(verdict(q, "ptrace"), SeccompVerdict::allow);
  EXPECT_EQ(verdict(q, "socket", {17, 3}), SeccompVerdict::allow);
}

TEST(OciImport, ComparisonOperatorsConvertExactly) {
  Files files;
  files.by_path["/p/ops.json"] = R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["getuid"], "action": "SCMP_ACT_ERRNO",
     "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GE"}]},
    {"names": ["getgid"], "action": "SCMP_ACT_ERRNO",
     "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_LE"}, {"index": 1, "value": 3, "op": "SCMP_CMP_NE"}]},
    {"names": ["geteuid"], "action": "SCMP_ACT_ERRNO",
     "args": [{"index": 2, "value": 240, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["getegid"], "action": "SCMP_ACT_ERRNO",
     "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_GE"}]}]})";
  policy::Manifest m = load_ok({{"profile", "/p/ops.json"}}, files);
  const SeccompProfile& in = *m.syscalls.imported;
  for (uint64_t v : {0ULL, 9ULL, 10ULL, 11ULL, ~0ULL}) {
    EXPECT_EQ(verdict(in, "getuid", {v}), v >= 10 ? SeccompVerdict::deny : SeccompVerdict::allow)
        << v;
    EXPECT_EQ(verdict(in, "getgid", {v, 3}), SeccompVerdict::allow) << v;
    EXPECT_EQ(verdict(in, "getgid", {v, 4}), v <= 10 ? SeccompVerdict::deny : SeccompVerdict::allow)
        << v;
  }
  EXPECT_EQ(verdict(in, "geteuid", {0, 0, 0x1f}), SeccompVerdict::deny);
  EXPECT_EQ(verdict(in, "geteuid", {0, 0, 0x2f}), SeccompVerdict::allow);
  EXPECT_EQ(verdict(in, "getegid", {12345}), SeccompVerdict::deny);  // GE 0: always
}

// ---- malformed files
// -----------------------------------------------------------------------------

struct MalformedCase {
  const char* name;
  std::string file;  // the profile file's text
  json syscalls;     // /syscalls (profile "/p/x.json" unless given)
  std::string pointer;
  std::string message;  // a part of the message
};

class OciMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(OciMalformed, ErrorPointsIntoTheProfile) {
  const MalformedCase& c = GetParam();
  Files files;
  files.by_path["/p/x.json"] = c.file;
  json syscalls = c.syscalls.is_null() ? json{{"profile", "/p/x.json"}} : c.syscalls;
  policy::LoadResult r = load(syscalls, files);
  EXPECT_FALSE(r.manifest);
  bool found = false;
  for (const policy::Diagnostic& d : r.diagnostics.errors()) {
    if (d.path == c.pointer && d.message.find(c.message) != std::string::npos) found = true;
  }
  EXPECT_TRUE(found) << "expected " << c.pointer << ": ..." << c.message << "...\ngot:\n"
                     << errors_of(r);
}

const char* const kOk = R"({"defaultAction": "SCMP_ACT_ALLOW"})";

INSTANTIATE_TEST_SUITE_P(
    Files, OciMalformed,
    ::testing::Values(
        MalformedCase{"NotJson", "{\"defaultAction\": ", nullptr, "/syscalls/profile",
                      "in /p/x.json: not valid JSON"},
        MalformedCase{"DuplicateKey",
                      R"({"defaultAction": "SCMP_ACT_ALLOW", "defaultAction": "SCMP_ACT_ERRNO"})",
                      nullptr, "/syscalls/profile/defaultAction", "more than once"},
        MalformedCase{"NotAnObject", "[]", nullptr, "/syscalls/profile",
                      "expected an OCI seccomp object"},
        MalformedCase{"MissingDefault", R"({"syscalls": []})", nullptr,
                      "/syscalls/profile/defaultAction", "required key is missing"},
        MalformedCase{"UnknownTopKey", R"({"defaultAction": "SCMP_ACT_ALLOW", "syscals": []})",
                      nullptr, "/syscalls/profile/syscals", "unknown key"},
        MalformedCase{"UnknownDefaultAction", R"({"defaultAction": "SCMP_ACT_DENY"})", nullptr,
                      "/syscalls/profile/defaultAction", "expected one of SCMP_ACT_ALLOW"},
        MalformedCase{"EnosysDefault",
                      R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})", nullptr,
                      "/syscalls/profile/defaultAction", "a default of ENOSYS"},
        MalformedCase{"DefaultErrnoWithAllow",
                      R"({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})", nullptr,
                      "/syscalls/profile/defaultErrnoRet", "applies to SCMP_ACT_ERRNO only"},
        MalformedCase{"UnknownAction",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_BLOCK"}]})",
                      nullptr, "/syscalls/profile/syscalls/0/action", "expected one of"},
        MalformedCase{"TrapAction",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_TRAP"}]})",
                      nullptr, "/syscalls/profile/syscalls/0/action", "is not supported"},
        MalformedCase{"OtherErrno",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO",
                                        "errnoRet": 13}]})",
                      nullptr, "/syscalls/profile/syscalls/0/errnoRet",
                      "errno 13 is not supported"},
        MalformedCase{"UnknownSyscall",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["ptrace", "no_such_call"],
                                        "action": "SCMP_ACT_ERRNO"}]})",
                      nullptr, "/syscalls/profile/syscalls/0/names/1", "system call name"},
        MalformedCase{"EmptyNames",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]})",
                      nullptr, "/syscalls/profile/syscalls/0/names", "non-empty array"},
        MalformedCase{"UnknownOp",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_IN"}]}]})",
                      nullptr, "/syscalls/profile/syscalls/0/args/0/op", "expected one of"},
        MalformedCase{"IndexTooLarge",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})",
                      nullptr, "/syscalls/profile/syscalls/0/args/0/index", "from 0 to 5"},
        MalformedCase{"NegativeValue",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]})",
                      nullptr, "/syscalls/profile/syscalls/0/args/0/value", "unsigned"},
        MalformedCase{"ValueTwoOnEq",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 0, "value": 1, "valueTwo": 2,
                                                  "op": "SCMP_CMP_EQ"}]}]})",
                      nullptr, "/syscalls/profile/syscalls/0/args/0/valueTwo", "MASKED_EQ"},
        MalformedCase{
            "ForeignArchitecture",
            R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]})",
            nullptr, "/syscalls/profile/architectures/0", "not an x86 architecture"},
        MalformedCase{"NoNativeArchitecture",
                      R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"]})",
                      nullptr, "/syscalls/profile/architectures", "SCMP_ARCH_X86_64 is not listed"},
        MalformedCase{"UnknownArchitecture",
                      R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]})",
                      nullptr, "/syscalls/profile/architectures/0", "expected an architecture"},
        MalformedCase{"UnknownFlag",
                      R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]})",
                      nullptr, "/syscalls/profile/flags/0", "expected one of"},
        MalformedCase{"Listener",
                      R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"})",
                      nullptr, "/syscalls/profile/listenerPath", "not supported"},
        MalformedCase{"DockerIncludes",
                      R"({"defaultAction": "SCMP_ACT_ERRNO",
                          "syscalls": [{"names": ["bpf"], "action": "SCMP_ACT_ALLOW",
                                        "includes": {"caps": ["CAP_SYS_ADMIN"]}}]})",
                      nullptr, "/syscalls/profile/syscalls/0/includes",
                      "not part of the OCI format"},
        MalformedCase{"ConflictingActions",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                                       {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                        "errnoRet": 38}]})",
                      nullptr, "/syscalls/profile/syscalls/1", "also has an entry at /syscalls/0"},
        MalformedCase{"KillNeedsActionKill", R"({"defaultAction": "SCMP_ACT_KILL_PROCESS"})",
                      nullptr, "/syscalls/profile/defaultAction", "set \"action\": \"kill\""},
        MalformedCase{"AllowListWithoutTheLaunchersCalls",
                      R"({"defaultAction": "SCMP_ACT_ERRNO",
                          "syscalls": [{"names": ["read", "brk", "mmap", "munmap", "close"],
                                        "action": "SCMP_ACT_ALLOW"}]})",
                      nullptr, "/syscalls/profile", "needs sendmsg, execve allowed outright"},
        MalformedCase{"DenyListDenyingTheLaunchersCalls",
                      R"({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_ERRNO"}]})",
                      nullptr, "/syscalls/profile", "needs sendmsg allowed outright"},
        MalformedCase{"Unreadable", kOk, json{{"profile", "/p/missing.json"}}, "/syscalls/profile",
                      "cannot read the OCI seccomp profile: /p/missing.json: cannot open"},
        MalformedCase{"RelativePath", kOk, json{{"profile", "p/x.json"}}, "/syscalls/profile",
                      "absolute path of an OCI seccomp profile"},
        MalformedCase{"DotDotPath", kOk, json{{"profile", "/p/../p/x.json"}}, "/syscalls/profile",
                      "expected"},
        MalformedCase{
            "DigestMismatch", kOk,
            json{{"profile", "/p/x.json"}, {"profile_digest", "sha256:" + std::string(64, '0')}},
            "/syscalls/profile_digest", "changed since the manifest pinned it"},
        MalformedCase{
            "DigestWithoutFile", kOk,
            json{{"profile", "default"}, {"profile_digest", "sha256:" + std::string(64, '0')}},
            "/syscalls/profile_digest", "names none"},
        MalformedCase{"DigestMalformed", kOk,
                      json{{"profile", "/p/x.json"}, {"profile_digest", "sha256:XYZ"}},
                      "/syscalls/profile_digest", "64 lower-case hex digits"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(OciImport, TheManifestCanAllowWhatTheLauncherNeeds) {
  Files files;
  files.by_path["/p/x.json"] = R"({"defaultAction": "SCMP_ACT_ERRNO",
    "syscalls": [{"names": ["read", "brk", "mmap", "munmap", "close"], "action": "SCMP_ACT_ALLOW"}]})";
  policy::Manifest m = load_ok(
      {{"profile", "/p/x.json"}, {"allow", {"sendmsg", "execve"}}, {"deny", {"read"}}}, files);
  SeccompProfile p = policy::compile_seccomp(m.syscalls);
  EXPECT_EQ(verdict(p, "sendmsg"), SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "execve"), SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "brk"), SeccompVerdict::allow);
  EXPECT_EQ(verdict(p, "read"), SeccompVerdict::deny);
  EXPECT_EQ(p.origins.at("read"), "/syscalls/deny/0");
  bool sendmsg_by_manifest = false;
  for (const SeccompRule& r : p.rules) {
    if (r.syscall == "sendmsg") sendmsg_by_manifest = r.origin == "/syscalls/allow/0";
  }
  EXPECT_TRUE(sendmsg_by_manifest);
}

TEST(OciImport, WithoutAReaderAProfileFileIsRefused) {
  json doc = base_manifest();
  doc["syscalls"] = {{"profile", "/p/x.json"}};
  policy::LoadResult r = policy::load_manifest(doc.dump());
  ASSERT_FALSE(r.manifest);
  ASSERT_EQ(r.diagnostics.errors().size(), 1u);
  EXPECT_EQ(r.diagnostics.errors()[0].path, "/syscalls/profile");
  EXPECT_NE(r.diagnostics.errors()[0].message.find("no file reader"), std::string::npos);
}

TEST(OciImport, EveryErrorOfAFileIsReported) {
  Files files;
  files.by_path["/p/x.json"] = R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["nope"], "action": "SCMP_ACT_ERRNO"},
    {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"},
    {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]})";
  policy::LoadResult r = load({{"profile", "/p/x.json"}}, files);
  std::set<std::string> pointers;
  for (const policy::Diagnostic& d : r.diagnostics.errors())
    pointers.insert(d.path);
  EXPECT_EQ(pointers, (std::set<std::string>{"/syscalls/profile/syscalls/0/names/0",
                                             "/syscalls/profile/syscalls/1/action",
                                             "/syscalls/profile/syscalls/2/args/0/index"}))
      << errors_of(r);
}

// ---- digest ------------------------------------------------------------------------------------

TEST(OciImport, DigestCoversTheFilesContent) {
  Files a, b, c;
  a.by_path["/p/x.json"] = R"({"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]})";
  b.by_path["/p/x.json"] = R"({"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["bpf"], "action": "SCMP_ACT_ERRNO"}]})";
  // Same content as `a`, other white space and key order.
  c.by_path["/p/x.json"] =
      R"({ "syscalls" : [ { "action" : "SCMP_ACT_ERRNO", "names" : ["ptrace"] } ],
                               "defaultAction" : "SCMP_ACT_ALLOW" })";
  policy::Manifest ma = load_ok({{"profile", "/p/x.json"}}, a);
  policy::Manifest mb = load_ok({{"profile", "/p/x.json"}}, b);
  policy::Manifest mc = load_ok({{"profile", "/p/x.json"}}, c);
  EXPECT_NE(ma.digest, mb.digest);
  EXPECT_EQ(ma.digest, mc.digest);
  EXPECT_EQ(ma.syscalls.imported_digest, mc.syscalls.imported_digest);
  // The expanded document carries the file's digest, and the manifest digest is that document's.
  EXPECT_EQ(ma.document["syscalls"]["profile_digest"], ma.syscalls.imported_digest);
  EXPECT_EQ(ma.digest, policy::manifest_digest(ma.document));
  // Pinning the digest explicitly is accepted when it matches and gives the same manifest digest.
  policy::Manifest pinned =
      load_ok({{"profile", "/p/x.json"}, {"profile_digest", ma.syscalls.imported_digest}}, a);
  EXPECT_EQ(pinned.digest, ma.digest);
  // And the expanded document loads again as it is.
  policy::LoadResult again = policy::load_manifest(ma.document.dump(), {}, a.options());
  ASSERT_TRUE(again.manifest) << errors_of(again);
  EXPECT_EQ(again.manifest->digest, ma.digest);
  // diff compares what the two files decide.
  bool ptrace_widened = false, bpf_narrowed = false;
  for (const policy::DiffEntry& e : policy::diff_manifests(ma, mb)) {
    if (e.section != "syscalls") continue;
    if (e.what.rfind("ptrace:", 0) == 0) ptrace_widened = e.kind == policy::ChangeKind::widened;
    if (e.what.rfind("bpf:", 0) == 0) bpf_narrowed = e.kind == policy::ChangeKind::narrowed;
  }
  EXPECT_TRUE(ptrace_widened);
  EXPECT_TRUE(bpf_narrowed);
}

// ---- the command line
// ----------------------------------------------------------------------------

class ExportCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/enclosure-export-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  struct Result {
    int status = -1;
    std::string out;
  };
  Result run(const std::string& args) {
    std::string command = std::string(ENCLOSURE_BINARY) + " " + args + " 2>" + dir_ + "/err";
    Result r;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
      r.out.append(buf, n);
    int status = ::pclose(pipe);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }
  std::string err() {
    std::ifstream in(dir_ + "/err");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string dir_;
};

TEST_F(ExportCommand, WritesValidOciJsonThatAManifestCanImport) {
  std::string manifest = std::string(ENCLOSURE_SOURCE_DIR) + "/examples/coding-agent.json";
  Result r = run("export --format oci-seccomp " + manifest);
  ASSERT_EQ(r.status, 0) << err();
  json oci = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(oci.is_discarded()) << r.out;
  EXPECT_TRUE(oci["defaultAction"].is_string());
  EXPECT_EQ(oci["architectures"], json::array({"SCMP_ARCH_X86_64"}));
  EXPECT_GT(oci["syscalls"].size(), 3u);

  // -o writes the same text to a file, which a manifest then imports through the launcher's
  // reader; `check` accepts it and exporting that manifest gives the file back.
  std::string out = dir_ + "/profile.json";
  ASSERT_EQ(run("export --format oci-seccomp -o " + out + " " + manifest).status, 0) << err();
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), r.out);
  json doc = json::parse(std::ifstream(manifest));
  json action = doc["syscalls"].value("action", json("errno"));
  doc["syscalls"] = {{"profile", out}, {"action", action}};
  std::string importing = write("importing.json", doc.dump(2));
  Result check = run("check " + importing);
  EXPECT_EQ(check.status, 0) << err();
  Result again = run("export --format oci-seccomp " + importing);
  EXPECT_EQ(again.status, 0) << err();
  EXPECT_EQ(again.out, r.out);
}

TEST_F(ExportCommand, UsageErrorsExitTwo) {
  std::string manifest = std::string(ENCLOSURE_SOURCE_DIR) + "/examples/coding-agent.json";
  EXPECT_EQ(run("export " + manifest).status, 2);
  EXPECT_NE(err().find("--format is required"), std::string::npos) << err();
  EXPECT_EQ(run("export --format docker " + manifest).status, 2);
  EXPECT_EQ(run("export --format oci-seccomp").status, 2);
  std::string bad = write("bad.json", R"({"apiVersion": "enclosure/v1"})");
  EXPECT_EQ(run("export --format oci-seccomp " + bad).status, 2);
  EXPECT_NE(err().find("/metadata"), std::string::npos) << err();
  Result help = run("export --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--format"), std::string::npos);
  EXPECT_EQ(run("export --format oci-seccomp -o /nonexistent-dir/x.json " + manifest).status, 1);
}

}  // namespace
