// policy::bpf_plan_to_json / bpf_plan_from_json: what `enclosure run --daemon` sends to the
// daemon survives the trip, and a malformed request (from an unprivileged local user) is
// refused with the field named, never half-applied.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "policy/bpf_plan.h"
#include "policy/compile.h"
#include "policy/load.h"

namespace {

using nlohmann::json;

policy::EnforcementPlan compiled_plan() {
  json doc = {{"apiVersion", "enclosure/v1"},
              {"metadata", {{"name", "bpf-plan-test"}}},
              {"filesystem", {{"read", {"/usr"}}}},
              {"tools",
               {{{"name", "sh"}, {"path", "/usr/bin/sh"}, {"max_calls", 3}},
                {{"name", "curl"}, {"path", "/usr/bin/curl"}, {"cost_usd", 0.25}}}},
              {"network",
               {{"mode", "filtered"},
                {"dns", true},
                {"unix", {"/usr/run/app.sock"}},
                {"egress",
                 {{{"cidr", "10.0.0.0/8"}, {"ports", {443, "8000-8080"}}},
                  {{"cidr", "2001:db8::/32"}, {"ports", {53}}, {"protocol", "udp"}},
                  {{"host", "api.example.com"}, {"ports", {443}}}}}}},
              {"budgets",
               {{"syscalls", 100000},
                {"tool_calls", 10},
                {"egress_bytes", "1MiB"},
                {"memory", "64MiB"},
                {"processes", 8},
                {"wall_clock", "30s"}}},
              {"audit", {{"files", true}}},
              {"rules",
               {{{"id", "pii"},
                 {"after", {{"read", {"/usr/share"}}, {"exec", {"curl"}}}},
                 {"deny", {"network", "tool:sh", "host:api.example.com"}}}}}};
  policy::LoadResult r = policy::load_manifest(doc.dump());
  EXPECT_TRUE(r.manifest);
  policy::CompileResult c = policy::compile(*r.manifest);
  EXPECT_TRUE(c.plan) << c.error;
  return *c.plan;
}

TEST(BpfPlan, RoundTripKeepsWhatTheEbpfLayerApplies) {
  policy::EnforcementPlan plan = compiled_plan();
  std::string error;
  std::optional<policy::EnforcementPlan> back =
      policy::bpf_plan_from_json(json::parse(policy::bpf_plan_to_json(plan).dump()), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->manifest_name, "bpf-plan-test");
  EXPECT_EQ(back->network.mode, policy::NetworkMode::filtered);
  EXPECT_TRUE(back->network.dns);
  ASSERT_EQ(back->network.cidrs.size(), plan.network.cidrs.size());
  for (size_t i = 0; i < plan.network.cidrs.size(); ++i) {
    EXPECT_EQ(back->network.cidrs[i].cidr, plan.network.cidrs[i].cidr);
    EXPECT_EQ(back->network.cidrs[i].protocol, plan.network.cidrs[i].protocol);
    EXPECT_EQ(back->network.cidrs[i].ports, plan.network.cidrs[i].ports);
    EXPECT_EQ(back->network.cidrs[i].rule_index, plan.network.cidrs[i].rule_index);
  }
  ASSERT_EQ(back->network.egress_rules.size(), 3u);
  EXPECT_EQ(back->network.egress_rules[2].host, "api.example.com");
  EXPECT_EQ(back->budgets.syscalls, plan.budgets.syscalls);
  EXPECT_EQ(back->budgets.tool_calls, plan.budgets.tool_calls);
  EXPECT_EQ(back->budgets.egress_bytes, plan.budgets.egress_bytes);
  EXPECT_EQ(back->budgets.memory_bytes, plan.budgets.memory_bytes);
  EXPECT_EQ(back->budgets.processes, plan.budgets.processes);
  EXPECT_EQ(back->budgets.wall_clock_ns, plan.budgets.wall_clock_ns);
  EXPECT_TRUE(back->audit.files);
  ASSERT_EQ(back->network.unix_sockets.size(), plan.network.unix_sockets.size());
  for (size_t i = 0; i < plan.network.unix_sockets.size(); ++i) {
    EXPECT_EQ(back->network.unix_sockets[i].path, plan.network.unix_sockets[i].path);
    EXPECT_EQ(back->network.unix_sockets[i].access, plan.network.unix_sockets[i].access);
    EXPECT_EQ(back->network.unix_sockets[i].origin, plan.network.unix_sockets[i].origin);
  }
  ASSERT_EQ(back->tools.size(), 2u);
  EXPECT_EQ(back->tools[0].max_calls, 3u);
  EXPECT_EQ(back->tools[1].cost_micro_usd, 250000u);
  ASSERT_EQ(back->rules.size(), 1u);
  EXPECT_EQ(back->rules[0].after.read, plan.rules[0].after.read);
  EXPECT_EQ(back->rules[0].after.exec, std::vector<std::string>{"curl"});
  EXPECT_TRUE(back->rules[0].deny.network);
  EXPECT_EQ(back->rules[0].deny.tools, std::vector<std::string>{"sh"});
  EXPECT_EQ(back->rules[0].deny.hosts, std::vector<std::string>{"api.example.com"});
}

TEST(BpfPlan, MalformedRequestsAreRefusedWithTheFieldNamed) {
  json good = policy::bpf_plan_to_json(compiled_plan());
  struct Case {
    const char* pointer;
    json value;
    const char* field;
  };
  const Case cases[] = {
      {"/network/mode", "everything", "/network/mode"},
      {"/network/cidrs/0/cidr", "10.0.0.0/33", "/network/cidrs/0/cidr"},
      {"/network/cidrs/0/ports/0", json::array({443, 70000}), "/network/cidrs/0/ports/0"},
      {"/network/cidrs/0/ports/0", json::array({444, 443}), "/network/cidrs/0/ports/0"},
      {"/network/cidrs/0/protocol", "icmp", "/network/cidrs/0/protocol"},
      {"/budgets/syscalls", -5, "/budgets/syscalls"},
      {"/budgets/memory_bytes", "lots", "/budgets/memory_bytes"},
      {"/tools/0/path", "relative/sh", "/tools/0/path"},
      {"/rules/0/deny_tools", "sh", "/rules/0/deny_tools"},
      {"/audit", json::array(), "/audit"},
      {"/network/unix_sockets/0/path", "run/app.sock", "/network/unix_sockets/0/path"},
      {"/network/unix_sockets/0/path", "/usr/../x", "/network/unix_sockets/0/path"},
      {"/network/unix_sockets/0/path", "/" + std::string(107, 'a'), "/network/unix_sockets/0/path"},
      {"/network/unix_sockets/0/access", "everyone", "/network/unix_sockets/0/access"},
  };
  for (const Case& c : cases) {
    json bad = good;
    bad[json::json_pointer(c.pointer)] = c.value;
    std::string error;
    EXPECT_FALSE(policy::bpf_plan_from_json(bad, error)) << c.pointer;
    EXPECT_NE(error.find(c.field), std::string::npos) << c.pointer << ": " << error;
  }
  json missing = good;
  missing.erase("tools");
  std::string error;
  EXPECT_FALSE(policy::bpf_plan_from_json(missing, error));
  EXPECT_NE(error.find("/tools"), std::string::npos) << error;
  EXPECT_FALSE(policy::bpf_plan_from_json(json::array(), error));
}

}  // namespace
