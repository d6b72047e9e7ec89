// `enclosure explain` and `enclosure diff`: the account names every permission, and a diff
// classifies each change as widening or narrowing; plus their command lines.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/diff.h"
#include "policy/explain.h"
#include "policy/load.h"
#include "policy/units.h"

namespace {

using nlohmann::json;
using policy::ChangeKind;
using policy::DiffEntry;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

policy::Manifest load(const std::string& text, const policy::ContextValues& context = {}) {
  policy::LoadResult r = policy::load_manifest(text, context, {.allow_unresolved = true});
  std::string errors;
  for (const policy::Diagnostic& d : r.diagnostics.errors()) {
    errors += d.path + ": " + d.message + "\n";
  }
  EXPECT_TRUE(r.manifest) << text << "\n" << errors;
  return r.manifest ? *r.manifest : policy::Manifest{};
}

policy::Manifest load_example(const std::string& name, const policy::ContextValues& context = {}) {
  return load(read_file(std::filesystem::path(ENCLOSURE_SOURCE_DIR) / "examples" / name), context);
}

// The manifest most diff cases start from.
json base_manifest() {
  return json::parse(R"({
    "apiVersion": "enclosure/v1",
    "metadata": {"name": "svc", "revision": 1, "approved_by": "lead@example.com",
                 "reason": "CHG-1", "labels": {"team": "data"}},
    "context": {"id": {"pattern": "^[0-9]+$", "default": "7"}},
    "filesystem": {"read": ["/usr", "/data/${id}"], "write": ["/srv/out"], "tmpfs": ["/tmp"]},
    "tools": [{"name": "sh", "path": "/usr/bin/sh", "max_calls": 5}],
    "network": {"mode": "filtered", "egress": [{"cidr": "10.0.0.0/8", "ports": [5432]}],
                "dns": false},
    "syscalls": {"profile": "default"},
    "budgets": {"wall_clock": "5m", "memory": "1GiB", "cost_usd": 1},
    "rules": [{"id": "quiet-after-data", "after": {"read": ["/data/${id}"]}, "deny": ["network"]}],
    "audit": {"files": true}
  })");
}

std::vector<DiffEntry> diff_patch(const json& patch, json before = base_manifest()) {
  json after = before;
  after.merge_patch(patch);
  return policy::diff_manifests(load(before.dump()), load(after.dump()));
}

std::string describe(const std::vector<DiffEntry>& entries) {
  return policy::diff_text(entries);
}

// Every entry is of `kind` in `section`, and there is at least one.
void expect_only(const std::vector<DiffEntry>& entries, ChangeKind kind,
                 const std::string& section) {
  EXPECT_FALSE(entries.empty()) << "no change reported";
  for (const DiffEntry& e : entries) {
    EXPECT_EQ(e.kind, kind) << describe(entries);
    EXPECT_EQ(e.section, section) << describe(entries);
  }
}

bool mentions(const std::vector<DiffEntry>& entries, const std::string& text) {
  for (const DiffEntry& e : entries) {
    if (e.what.find(text) != std::string::npos) return true;
  }
  return false;
}

// ---- explain ---------------------------------------------------------------------------------

void expect_explains_everything(const policy::Manifest& m) {
  std::string text = policy::explain_text(m);
  auto has = [&](const std::string& s) {
    EXPECT_NE(text.find(s), std::string::npos) << "explain does not mention \"" << s << "\"\n"
                                               << text;
  };
  has(m.metadata.name);
  has(m.metadata.approved_by);
  has(m.metadata.reason);
  has(m.digest);
  for (const auto* list :
       {&m.filesystem.read, &m.filesystem.write, &m.filesystem.tmpfs, &m.filesystem.hide}) {
    for (const std::string& p : *list)
      has(p);
  }
  for (const policy::Tool& t : m.tools) {
    has(t.name + ": " + t.path);
    if (t.max_calls) has("at most " + std::to_string(*t.max_calls) + " calls");
    if (t.cost_micro_usd) has(policy::format_usd(t.cost_micro_usd) + " per call");
  }
  for (const policy::EgressRule& r : m.network.egress) {
    has(r.is_host() ? r.host : r.cidr->to_string());
    has(policy::format_port_ranges(r.ports));
  }
  const policy::Budgets& b = m.budgets;
  if (b.wall_clock_ns) has("wall_clock: " + policy::format_duration(*b.wall_clock_ns));
  if (b.cpu_time_ns) has("cpu_time: " + policy::format_duration(*b.cpu_time_ns));
  if (b.tool_calls) has("tool_calls: " + std::to_string(*b.tool_calls));
  if (b.syscalls) has("syscalls: " + std::to_string(*b.syscalls));
  if (b.processes) has("processes: " + std::to_string(*b.processes));
  if (b.memory_bytes) has("memory: " + policy::format_size(*b.memory_bytes));
  if (b.egress_bytes) has("egress_bytes: " + policy::format_size(*b.egress_bytes));
  if (b.cost_micro_usd) has("cost_usd: " + policy::format_usd(*b.cost_micro_usd));
  for (const policy::Rule& r : m.rules) {
    has(r.id);
    for (const std::string& p : r.after.read)
      has("reading " + p);
  }
  has(std::string("profile ") + m.syscalls.profile);
}

TEST(Explain, TextMentionsEveryPermissionBudgetRuleApproverAndReason) {
  expect_explains_everything(load_example("coding-agent.json"));
  expect_explains_everything(load_example("data-agent.json", {{"customer_id", "1042"}}));
  expect_explains_everything(load_example("browsing-agent.json"));
  policy::Manifest data = load_example("data-agent.json", {{"customer_id", "1042"}});
  std::string text = policy::explain_text(data);
  EXPECT_NE(text.find("/data/customers/1042/payment-cards"), std::string::npos);
  EXPECT_NE(text.find("file-access log: every open is recorded"), std::string::npos);
  EXPECT_NE(text.find("${customer_id} = 1042"), std::string::npos) << text;
  EXPECT_NE(text.find("profile strict"), std::string::npos);
  // Unlimited budgets are said to be unlimited.
  EXPECT_NE(text.find("cost_usd: unlimited"), std::string::npos) << text;
  EXPECT_NE(text.find("syscalls: unlimited"), std::string::npos) << text;

  // A template says so, and shows the placeholder it keeps.
  policy::Manifest templ = load_example("data-agent.json");
  std::string t = policy::explain_text(templ);
  EXPECT_NE(t.find("template"), std::string::npos);
  EXPECT_NE(t.find("/data/customers/${customer_id}"), std::string::npos);
  EXPECT_NE(t.find("no value yet"), std::string::npos);
}

TEST(Explain, JsonHasOneEntryPerPermissionInBaseUnits) {
  policy::Manifest m = load_example("browsing-agent.json");
  json j = policy::explain_json(m);
  EXPECT_EQ(j["name"], "research-browser");
  EXPECT_EQ(j["revision"], 2);
  EXPECT_EQ(j["digest"], m.digest);
  EXPECT_EQ(j["template"], false);
  EXPECT_EQ(j["approved_by"], m.metadata.approved_by);
  EXPECT_EQ(j["reason"], m.metadata.reason);
  EXPECT_EQ(j["labels"]["team"], "research");
  EXPECT_EQ(j["files"]["read"], json(m.filesystem.read));
  EXPECT_EQ(j["files"]["write"], json::array());
  EXPECT_EQ(j["files"]["tmpfs"], json({"/work", "/tmp"}));
  ASSERT_EQ(j["tools"].size(), 2u);
  EXPECT_EQ(j["tools"][1]["name"], "search");
  EXPECT_EQ(j["tools"][1]["path"], "/opt/tools/web-search");
  EXPECT_EQ(j["tools"][1]["max_calls"], 30);
  EXPECT_DOUBLE_EQ(j["tools"][1]["cost_usd"].get<double>(), 0.005);
  EXPECT_TRUE(j["tools"][0]["cost_usd"].is_number());
  EXPECT_EQ(j["network"]["mode"], "filtered");
  EXPECT_EQ(j["network"]["dns"], true);
  ASSERT_EQ(j["network"]["egress"].size(), 2u);
  EXPECT_EQ(j["network"]["egress"][1], json({{"index", 1},
                                             {"destination", "*.wikipedia.org"},
                                             {"kind", "host"},
                                             {"protocol", "tcp"},
                                             {"ports", "443"}}));
  EXPECT_EQ(j["syscalls"]["profile"], "default");
  EXPECT_FALSE(j["syscalls"]["groups"].empty());
  for (const json& g : j["syscalls"]["groups"])
    EXPECT_EQ(g["verdict"], "denied");
  EXPECT_FALSE(j["syscalls"]["argument_filters"].empty());

  // Budgets: all eight, in manifest order, with limits in the stated unit.
  std::vector<std::string> names;
  std::map<std::string, json> budgets;
  for (const json& b : j["budgets"]) {
    names.push_back(b["name"]);
    budgets[b["name"]] = b;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"wall_clock", "cpu_time", "tool_calls", "syscalls",
                                             "processes", "memory", "egress_bytes", "cost_usd"}));
  EXPECT_EQ(budgets["wall_clock"]["limit"], 20ULL * 60 * 1000 * 1000 * 1000);
  EXPECT_EQ(budgets["wall_clock"]["unit"], "ns");
  EXPECT_EQ(budgets["wall_clock"]["text"], "20m");
  EXPECT_EQ(budgets["memory"]["limit"], 1ULL << 30);
  EXPECT_EQ(budgets["memory"]["unit"], "bytes");
  EXPECT_EQ(budgets["egress_bytes"]["limit"], 50ULL << 20);
  EXPECT_EQ(budgets["cost_usd"]["limit"], 2000000);
  EXPECT_EQ(budgets["cost_usd"]["unit"], "micro_usd");
  EXPECT_EQ(budgets["cost_usd"]["text"], "$2.00");
  EXPECT_TRUE(budgets["syscalls"]["limit"].is_null());
  EXPECT_EQ(budgets["syscalls"]["text"], "unlimited");
  EXPECT_EQ(budgets["tool_calls"]["unit"], "calls");

  policy::Manifest data = load_example("data-agent.json", {{"customer_id", "1042"}});
  json d = policy::explain_json(data);
  ASSERT_EQ(d["rules"].size(), 1u);
  EXPECT_EQ(d["rules"][0]["id"], "no-network-after-customer-files");
  EXPECT_EQ(d["rules"][0]["after"], json({"reading /data/customers/1042"}));
  EXPECT_EQ(d["rules"][0]["deny"], json({"all network access"}));
  EXPECT_EQ(d["files"]["hidden"], json({"/data/customers/1042/payment-cards"}));
  ASSERT_EQ(d["context"].size(), 1u);
  EXPECT_EQ(d["context"][0]["name"], "customer_id");
  EXPECT_EQ(d["context"][0]["value"], "1042");
  EXPECT_EQ(d["context"][0]["source"], "given");
  EXPECT_EQ(d["audit"]["files"], true);
  EXPECT_EQ(d["syscalls"]["profile"], "strict");
  for (const json& g : d["syscalls"]["groups"])
    EXPECT_EQ(g["verdict"], "allowed");

  json coding = policy::explain_json(load_example("coding-agent.json"));
  EXPECT_EQ(coding["context"][0]["value"], "/srv/repos/scratch");
  EXPECT_EQ(coding["context"][0]["source"], "default");
  EXPECT_EQ(coding["network"]["mode"], "none");
  EXPECT_TRUE(coding["network"]["egress"].empty());
}

// ---- diff ------------------------------------------------------------------------------------

TEST(Diff, IdenticalManifestsHaveNoEntries) {
  std::vector<DiffEntry> entries = diff_patch(json::object());
  EXPECT_TRUE(entries.empty()) << describe(entries);
  EXPECT_FALSE(policy::differs(entries));
  EXPECT_FALSE(policy::widens(entries));
  EXPECT_NE(policy::diff_text(entries).find("permission sets are equal"), std::string::npos);
  json j = policy::diff_json(entries);
  EXPECT_EQ(j["equal_permissions"], true);
  EXPECT_TRUE(j["changes"].empty());
}

TEST(Diff, FilesystemChanges) {
  auto read_added = diff_patch({{"filesystem", {{"read", {"/usr", "/data/${id}", "/opt/x"}}}}});
  expect_only(read_added, ChangeKind::widened, "filesystem");
  EXPECT_TRUE(mentions(read_added, "/opt/x"));
  EXPECT_TRUE(policy::widens(read_added));
  EXPECT_TRUE(policy::differs(read_added));

  auto write_to_read = diff_patch(
      {{"filesystem", {{"read", {"/usr", "/data/${id}", "/srv/out"}}, {"write", json::array()}}}});
  expect_only(write_to_read, ChangeKind::narrowed, "filesystem");
  EXPECT_TRUE(mentions(write_to_read, "/srv/out"));
  EXPECT_FALSE(policy::widens(write_to_read));
  EXPECT_TRUE(policy::differs(write_to_read));

  auto hidden = diff_patch({{"filesystem", {{"hide", {"/usr/share/secret"}}}}});
  expect_only(hidden, ChangeKind::narrowed, "filesystem");
  EXPECT_TRUE(mentions(hidden, "/usr/share/secret"));

  auto unhidden = diff_patch({{"filesystem", {{"hide", nullptr}}}}, [] {
    json b = base_manifest();
    b["filesystem"]["hide"] = {"/usr/share/secret"};
    return b;
  }());
  expect_only(unhidden, ChangeKind::widened, "filesystem");

  // A context value is part of the permission: another customer is another folder.
  policy::Manifest a = load(base_manifest().dump(), {{"id", "7"}});
  policy::Manifest b = load(base_manifest().dump(), {{"id", "8"}});
  auto other = policy::diff_manifests(a, b);
  EXPECT_TRUE(mentions(other, "/data/8")) << describe(other);
  EXPECT_TRUE(policy::widens(other));
}

TEST(Diff, RulesAndBudgets) {
  auto rule_removed = diff_patch({{"rules", json::array()}});
  expect_only(rule_removed, ChangeKind::widened, "rules");
  EXPECT_TRUE(mentions(rule_removed, "quiet-after-data"));

  auto rule_added = diff_patch(
      {{"rules",
        {{{"id", "quiet-after-data"},
          {"after", {{"read", {"/data/${id}"}}}},
          {"deny", {"network"}}},
         {{"id", "no-write-after-sh"}, {"after", {{"exec", {"sh"}}}}, {"deny", {"write"}}}}}});
  expect_only(rule_added, ChangeKind::narrowed, "rules");

  auto larger = diff_patch({{"budgets", {{"wall_clock", "10m"}}}});
  expect_only(larger, ChangeKind::widened, "budgets");
  EXPECT_TRUE(mentions(larger, "5m -> 10m")) << describe(larger);

  auto smaller = diff_patch({{"budgets", {{"memory", "512MiB"}}}});
  expect_only(smaller, ChangeKind::narrowed, "budgets");

  auto removed = diff_patch({{"budgets", {{"memory", nullptr}}}});
  expect_only(removed, ChangeKind::widened, "budgets");
  EXPECT_TRUE(mentions(removed, "unlimited")) << describe(removed);

  auto added = diff_patch({{"budgets", {{"syscalls", 1000}}}});
  expect_only(added, ChangeKind::narrowed, "budgets");

  auto cost = diff_patch({{"budgets", {{"cost_usd", 2.5}}}});
  expect_only(cost, ChangeKind::widened, "budgets");
  EXPECT_TRUE(mentions(cost, "$1.00 -> $2.50")) << describe(cost);
}

TEST(Diff, NetworkChanges) {
  auto port =
      diff_patch({{"network", {{"egress", {{{"cidr", "10.0.0.0/8"}, {"ports", {5432, 6432}}}}}}}});
  expect_only(port, ChangeKind::widened, "network");
  EXPECT_TRUE(mentions(port, "6432"));

  auto narrower =
      diff_patch({{"network", {{"egress", {{{"cidr", "10.20.0.0/16"}, {"ports", {5432}}}}}}}});
  expect_only(narrower, ChangeKind::narrowed, "network");

  auto fewer_ports = diff_patch(
      {{"network", {{"egress", {{{"cidr", "10.0.0.0/8"}, {"ports", {"5432-5433"}}}}}}}}, [] {
        json b = base_manifest();
        b["network"]["egress"][0]["ports"] = {"5432-5440"};
        return b;
      }());
  expect_only(fewer_ports, ChangeKind::narrowed, "network");

  auto dns = diff_patch({{"network", {{"dns", true}}}});
  expect_only(dns, ChangeKind::widened, "network");

  auto udp = diff_patch(
      {{"network",
        {{"egress", {{{"cidr", "10.0.0.0/8"}, {"ports", {5432}}, {"protocol", "udp"}}}}}}});
  EXPECT_TRUE(policy::widens(udp));

  auto none =
      diff_patch({{"network", {{"mode", "none"}, {"egress", nullptr}}}, {"rules", nullptr}});
  for (const DiffEntry& e : none) {
    if (e.section == "network") EXPECT_EQ(e.kind, ChangeKind::narrowed) << describe(none);
  }

  // Every IPv6 address admits every IPv4 address too (IPv4-mapped sockets): going from ::/0 to
  // 0.0.0.0/0 only narrows.
  json v6 = base_manifest();
  v6["network"]["egress"] = {{{"cidr", "::/0"}, {"ports", {443}}}};
  auto v6_to_v4 =
      diff_patch({{"network", {{"egress", {{{"cidr", "0.0.0.0/0"}, {"ports", {443}}}}}}}}, v6);
  expect_only(v6_to_v4, ChangeKind::narrowed, "network");
  auto v4_to_v6 =
      diff_patch({{"network", {{"egress", {{{"cidr", "::/0"}, {"ports", {443}}}}}}}}, [] {
        json b = base_manifest();
        b["network"]["egress"] = {{{"cidr", "0.0.0.0/0"}, {"ports", {443}}}};
        return b;
      }());
  expect_only(v4_to_v6, ChangeKind::widened, "network");

  // Mode host admits every destination: leaving "filtered" for it widens and narrows nothing,
  // and coming back only narrows.
  json host = base_manifest();
  host["network"] = {{"mode", "host"}};
  host["enforcement"] = {{"allow_degraded", {"network"}}};
  host.erase("rules");
  json filtered = base_manifest();
  filtered["enforcement"] = {{"allow_degraded", {"network"}}};
  filtered.erase("rules");
  auto to_host = policy::diff_manifests(load(filtered.dump()), load(host.dump()));
  expect_only(to_host, ChangeKind::widened, "network");
  auto from_host = policy::diff_manifests(load(host.dump()), load(filtered.dump()));
  expect_only(from_host, ChangeKind::narrowed, "network");
}

TEST(Diff, SyscallsEnforcementAndContext) {
  auto ptrace = diff_patch({{"syscalls", {{"allow", {"ptrace"}}}}});
  expect_only(ptrace, ChangeKind::widened, "syscalls");
  EXPECT_TRUE(mentions(ptrace, "ptrace: denied -> allowed")) << describe(ptrace);

  auto deny = diff_patch({{"syscalls", {{"deny", {"memfd_create"}}}}});
  expect_only(deny, ChangeKind::narrowed, "syscalls");

  auto strict = diff_patch({{"syscalls", {{"profile", "strict"}}}});
  expect_only(strict, ChangeKind::narrowed, "syscalls");

  auto degraded = diff_patch({{"enforcement", {{"allow_degraded", {"cgroup"}}}}});
  expect_only(degraded, ChangeKind::widened, "enforcement");

  auto audit_off = diff_patch({{"audit", {{"files", false}}}});
  expect_only(audit_off, ChangeKind::widened, "audit");

  auto pattern = diff_patch({{"context", {{"id", {{"pattern", "^[0-9]{1,3}$"}}}}}});
  expect_only(pattern, ChangeKind::changed, "context");
  EXPECT_TRUE(policy::widens(pattern));
  EXPECT_TRUE(policy::differs(pattern));
  EXPECT_EQ(policy::diff_json(pattern)["changed"], 1);

  auto tool_price =
      diff_patch({{"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}, {"max_calls", 50}}}}});
  expect_only(tool_price, ChangeKind::widened, "tools");
}

TEST(Diff, MetadataChangesAreInformationOnly) {
  auto meta = diff_patch({{"metadata",
                           {{"revision", 2},
                            {"approved_by", "ciso@example.com"},
                            {"reason", "CHG-2"},
                            {"labels", {{"team", "platform"}}}}}});
  expect_only(meta, ChangeKind::info, "metadata");
  EXPECT_FALSE(policy::differs(meta));
  EXPECT_FALSE(policy::widens(meta));
  EXPECT_TRUE(mentions(meta, "ciso@example.com"));
  EXPECT_TRUE(mentions(meta, "CHG-1")) << describe(meta);
  EXPECT_TRUE(mentions(meta, "CHG-2"));
  EXPECT_TRUE(mentions(meta, "platform")) << describe(meta);
  EXPECT_EQ(policy::diff_json(meta)["equal_permissions"], true);
}

// ---- command line ----------------------------------------------------------------------------

class DiffCommandLine : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/enclosure-explain-diff-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const json& manifest) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << manifest.dump(2);
    return path;
  }
  std::string write_text(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // Runs the enclosure binary; returns the exit status and standard output.
  std::pair<int, std::string> run(const std::string& args) {
    std::string command = std::string(ENCLOSURE_BINARY) + " " + args + " 2>/dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    EXPECT_NE(pipe, nullptr);
    if (!pipe) return {-1, ""};
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
      out.append(buf, n);
    int status = ::pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  }

  json patched(const json& patch) {
    json m = base_manifest();
    m.merge_patch(patch);
    return m;
  }

  std::string dir_;
};

TEST_F(DiffCommandLine, ExitStatusSaysWhetherAndHowPermissionsDiffer) {
  std::string base = write("base.json", base_manifest());
  std::string same = write("same.json", base_manifest());
  std::string wider = write("wider.json", patched({{"network", {{"dns", true}}}}));
  std::string narrower = write("narrower.json", patched({{"filesystem", {{"hide", {"/usr/x"}}}}}));
  std::string meta = write("meta.json", patched({{"metadata", {{"revision", 9}}}}));
  std::string invalid = write_text("invalid.json", R"({"apiVersion": "enclosure/v1"})");

  EXPECT_EQ(run("diff " + base + " " + same).first, 0);
  EXPECT_EQ(run("diff " + base + " " + meta).first, 0);
  EXPECT_EQ(run("diff " + base + " " + wider).first, 1);
  EXPECT_EQ(run("diff " + base + " " + narrower).first, 1);
  EXPECT_EQ(run("diff --fail-on-widen " + base + " " + narrower).first, 0);
  EXPECT_EQ(run("diff --fail-on-widen " + base + " " + wider).first, 1);
  EXPECT_EQ(run("diff --fail-on-widen " + base + " " + same).first, 0);
  EXPECT_EQ(run("diff " + base + " " + invalid).first, 2);
  EXPECT_EQ(run("diff " + invalid + " " + base).first, 2);
  EXPECT_EQ(run("diff " + base + " " + dir_ + "/missing.json").first, 2);
  EXPECT_EQ(run("diff " + base).first, 2);

  auto [status, out] = run("diff --json " + base + " " + wider);
  EXPECT_EQ(status, 1);
  json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["widened"], 1);
  EXPECT_EQ(j["equal_permissions"], false);
}

TEST_F(DiffCommandLine, ExplainJsonIsValidJson) {
  std::string base = write("base.json", base_manifest());
  auto [status, out] = run("explain --json " + base);
  EXPECT_EQ(status, 0);
  json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["name"], "svc");
  EXPECT_EQ(j["files"]["read"], json({"/usr", "/data/7"}));
  EXPECT_EQ(j, policy::explain_json(load(base_manifest().dump())));

  auto [text_status, text] = run("explain " + base);
  EXPECT_EQ(text_status, 0);
  EXPECT_EQ(text, policy::explain_text(load(base_manifest().dump())));
  EXPECT_EQ(run("explain " + write_text("bad.json", "{")).first, 2);
}

}  // namespace

// "private": true on a host rule admits loopback and private answers: a widening of its own,
// told in explain and diff.
TEST(Diff, PrivateOnAHostRuleWidens) {
  json before = base_manifest();
  before["network"]["dns"] = true;
  before["network"]["egress"] = {{{"host", "db.internal.example"}, {"ports", {5432}}}};
  json after = before;
  after["network"]["egress"][0]["private"] = true;
  auto gained = policy::diff_manifests(load(before.dump()), load(after.dump()));
  expect_only(gained, ChangeKind::widened, "network");
  EXPECT_TRUE(mentions(gained, "admits private/loopback answers")) << describe(gained);
  auto lost = policy::diff_manifests(load(after.dump()), load(before.dump()));
  expect_only(lost, ChangeKind::narrowed, "network");
}

TEST(Explain, PrivateHostRuleIsSaid) {
  json doc = base_manifest();
  doc["network"]["dns"] = true;
  doc["network"]["egress"] = {
      {{"host", "db.internal.example"}, {"ports", {5432}}, {"private", true}},
      {{"host", "api.example.com"}, {"ports", {443}}}};
  policy::Manifest m = load(doc.dump());
  json j = policy::explain_json(m);
  EXPECT_EQ(j["network"]["egress"][0]["private"], true);
  EXPECT_FALSE(j["network"]["egress"][1].contains("private"));
  std::string text = policy::explain_text(m);
  EXPECT_NE(text.find("db.internal.example tcp port(s) 5432 (admits private/loopback answers)"),
            std::string::npos)
      << text;
}

// network.unix: a named socket is a widening of the network section, its removal a narrowing;
// explain lists the names and says every other path socket is refused.
TEST(Diff, UnixSocketNamesWidenAndNarrow) {
  json before = base_manifest();
  json after = before;
  after["network"]["unix"] = {"/usr/run/app.sock"};
  auto gained = policy::diff_manifests(load(before.dump()), load(after.dump()));
  expect_only(gained, ChangeKind::widened, "network");
  EXPECT_TRUE(mentions(gained, "may now connect to the unix socket /usr/run/app.sock"))
      << describe(gained);
  auto lost = policy::diff_manifests(load(after.dump()), load(before.dump()));
  expect_only(lost, ChangeKind::narrowed, "network");
  EXPECT_TRUE(mentions(lost, "may no longer connect to the unix socket /usr/run/app.sock"))
      << describe(lost);
}

TEST(Explain, UnixSocketsAreSaid) {
  json doc = base_manifest();
  doc["network"]["unix"] = {"/usr/run/app.sock"};
  policy::Manifest m = load(doc.dump());
  EXPECT_EQ(policy::explain_json(m)["network"]["unix"], json({"/usr/run/app.sock"}));
  std::string text = policy::explain_text(m);
  EXPECT_NE(text.find("    /usr/run/app.sock   [/network/unix/0]"), std::string::npos) << text;
  EXPECT_NE(text.find("any other path socket is refused (EACCES), also under a read grant"),
            std::string::npos)
      << text;
  std::string without = policy::explain_text(load(base_manifest().dump()));
  EXPECT_NE(without.find("unix sockets: only its own (under its write grants and tmpfs)"),
            std::string::npos)
      << without;
}
