// policy::verdict_for and its helpers: what the compiled seccomp profile says about a call the
// kernel filter handed to the supervisor (deny it, with which origin, or let composition rules
// decide it), on compiled and on hand-built profiles.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "policy/compile.h"
#include "policy/load.h"
#include "policy/seccomp_verdict.h"

namespace {

using nlohmann::json;
using policy::NotifiedCallVerdict;
using policy::SeccompCondition;
using policy::SeccompOp;
using policy::SeccompProfile;
using policy::SeccompVerdict;
using Args = std::array<uint64_t, 6>;
using Kind = NotifiedCallVerdict::Kind;

constexpr uint64_t kAfUnix = 1, kAfInet = 2, kAfPacket = 17;
constexpr uint64_t kSockStream = 1, kSockRaw = 3, kSockNonblock = 04000;
constexpr uint64_t kOWronly = 01, kOCreat = 0100, kOTrunc = 01000;
constexpr uint64_t kSIfReg = 0100000, kSIfChr = 0020000;
constexpr uint64_t kCloneNewuser = 0x10000000, kSigchld = 17;

policy::EnforcementPlan plan_with(const json& patch) {
  json doc = {{"apiVersion", "enclosure/v1"},
              {"metadata", {{"name", "seccomp-verdict-test"}}},
              {"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}}}}};
  doc.merge_patch(patch);
  policy::LoadResult r = policy::load_manifest(doc.dump());
  std::string errors;
  for (const policy::Diagnostic& d : r.diagnostics.errors())
    errors += d.path + ": " + d.message + "\n";
  EXPECT_TRUE(r.manifest) << doc.dump(2) << "\n" << errors;
  if (!r.manifest) return {};
  policy::CompileResult c = policy::compile(*r.manifest);
  EXPECT_TRUE(c.plan) << c.error;
  return c.plan ? *c.plan : policy::EnforcementPlan{};
}

// Composition rules: rule 0 denies network, rule 1 write, rule 2 exec, rule 3 write and exec.
json gating_rules() {
  json after = {{"read", {"/usr/share"}}};
  return {{{"id", "no-net"}, {"after", after}, {"deny", {"network"}}},
          {{"id", "no-write"}, {"after", after}, {"deny", {"write"}}},
          {{"id", "no-exec"}, {"after", after}, {"deny", {"exec"}}},
          {{"id", "freeze"}, {"after", after}, {"deny", {"write", "exec"}}}};
}

// A plan whose composition rules gate writes and execs (`patch` merged in).
policy::EnforcementPlan gated_plan(json patch = json::object()) {
  json doc = {
      {"filesystem", {{"read", {"/usr"}}, {"write", {"/srv/out"}}}},
      {"network", {{"mode", "filtered"}, {"egress", {{{"cidr", "10.0.0.0/8"}, {"ports", {443}}}}}}},
      {"rules", gating_rules()}};
  doc.merge_patch(patch);
  return plan_with(doc);
}

// A hand-built allow-by-default profile with one conditional deny rule for `syscall`.
SeccompProfile one_rule_profile(const std::string& syscall, SeccompCondition condition) {
  SeccompProfile p;
  p.name = "hand-built";
  p.rules.push_back({syscall, SeccompVerdict::deny, {condition}, "/syscalls/test"});
  p.origins[syscall] = "/syscalls/test";
  policy::index_notified_calls(p);
  return p;
}

TEST(SeccompVerdict, ConditionsCompareAsTheKernelFilterDoes) {
  using policy::condition_holds;
  EXPECT_TRUE(condition_holds({0, SeccompOp::eq, 0, 5}, 5));
  EXPECT_FALSE(condition_holds({0, SeccompOp::eq, 0, 5}, 6));
  EXPECT_TRUE(condition_holds({0, SeccompOp::ne, 0, 5}, 6));
  EXPECT_FALSE(condition_holds({0, SeccompOp::ne, 0, 5}, 5));
  EXPECT_TRUE(condition_holds({0, SeccompOp::gt, 0, 5}, 6));
  EXPECT_FALSE(condition_holds({0, SeccompOp::gt, 0, 5}, 5));
  EXPECT_TRUE(condition_holds({0, SeccompOp::gt, 0, 5}, UINT64_MAX)) << "unsigned comparison";
  EXPECT_TRUE(condition_holds({0, SeccompOp::masked_eq, 0xF0, 0x20}, 0x2F));
  EXPECT_FALSE(condition_holds({0, SeccompOp::masked_eq, 0xF0, 0x20}, 0x12));
}

TEST(SeccompVerdict, EachConditionOpOnTheArgumentItNames) {
  struct Case {
    SeccompCondition condition;
    Args denied, allowed;
  };
  const Case cases[] = {
      {{2, SeccompOp::eq, 0, 7}, {0, 0, 7}, {7, 7, 8}},
      {{1, SeccompOp::ne, 0, 0}, {0, 3}, {3, 0}},
      {{0, SeccompOp::gt, 0, 10}, {11}, {10, 99}},
      {{5, SeccompOp::masked_eq, 0x6, 0x2}, {0, 0, 0, 0, 0, 0x3}, {0, 0, 0, 0, 0, 0x4}},
  };
  for (const Case& c : cases) {
    SeccompProfile p = one_rule_profile("demo", c.condition);
    EXPECT_TRUE(policy::profile_denies(p, "demo", c.denied)) << static_cast<int>(c.condition.op);
    EXPECT_FALSE(policy::profile_denies(p, "demo", c.allowed)) << static_cast<int>(c.condition.op);
    EXPECT_FALSE(policy::profile_denies(p, "other", c.denied)) << "allow by default";
  }
}

TEST(SeccompVerdict, AllConditionsOfARuleMustHold) {
  SeccompProfile p;
  p.rules.push_back({"demo",
                     SeccompVerdict::deny,
                     {{0, SeccompOp::eq, 0, 1}, {1, SeccompOp::gt, 0, 4}},
                     "/syscalls/test"});
  policy::index_notified_calls(p);
  EXPECT_TRUE(policy::profile_denies(p, "demo", {1, 5}));
  EXPECT_FALSE(policy::profile_denies(p, "demo", {1, 4}));
  EXPECT_FALSE(policy::profile_denies(p, "demo", {2, 5}));
}

TEST(SeccompVerdict, DefaultProfileArgumentFiltersOnRealCalls) {
  SeccompProfile p = plan_with(json::object()).seccomp;
  // socket: eq on the family, gt on larger families, masked_eq on the type.
  EXPECT_FALSE(policy::profile_denies(p, "socket", {kAfInet, kSockStream | kSockNonblock}));
  EXPECT_FALSE(policy::profile_denies(p, "socket", {kAfUnix, kSockStream}));
  EXPECT_TRUE(policy::profile_denies(p, "socket", {kAfPacket, kSockRaw}));
  EXPECT_TRUE(policy::profile_denies(p, "socket", {kAfInet, kSockRaw | kSockNonblock}));
  EXPECT_TRUE(policy::profile_denies(p, "socket", {1000, kSockStream}));
  // personality: ne on the query value.
  EXPECT_FALSE(policy::profile_denies(p, "personality", {0xffffffff}));
  EXPECT_TRUE(policy::profile_denies(p, "personality", {0x0008}));
  // clone: masked_eq on a namespace flag.
  EXPECT_FALSE(policy::profile_denies(p, "clone", {kSigchld}));
  EXPECT_TRUE(policy::profile_denies(p, "clone", {kSigchld | kCloneNewuser}));

  NotifiedCallVerdict v = policy::verdict_for(p, "socket", {kAfPacket, kSockRaw});
  EXPECT_EQ(v.kind, Kind::deny);
  EXPECT_EQ(v.origin.rfind("/syscalls/profile (argument filter: ", 0), 0u) << v.origin;
  EXPECT_FALSE(v.kill);
}

TEST(SeccompVerdict, DeniedCallsNameTheManifestEntryAndTheAction) {
  SeccompProfile p =
      plan_with({{"syscalls", {{"deny", {"uname", "ptrace"}}, {"action", "kill"}}}}).seccomp;
  NotifiedCallVerdict v = policy::verdict_for(p, "ptrace", {});
  EXPECT_EQ(v.kind, Kind::deny);
  EXPECT_EQ(v.origin, "/syscalls/deny/1");
  EXPECT_TRUE(v.kill) << "action kill";
  EXPECT_EQ(policy::verdict_for(p, "uname", {}).origin, "/syscalls/deny/0");
  EXPECT_EQ(policy::verdict_for(p, "mount", {}).origin, "/syscalls/profile (default: @mount)");
  // A call the profile has no word on (an allow-by-default profile never hands it over).
  EXPECT_EQ(policy::verdict_for(p, "nr 999", {}).origin, "/syscalls");
  EXPECT_FALSE(policy::verdict_for(plan_with(json::object()).seccomp, "ptrace", {}).kill)
      << "action errno";
}

TEST(SeccompVerdict, AllowListDeniesWhatItDoesNotAllow) {
  SeccompProfile p =
      plan_with({{"syscalls", {{"profile", "strict"}, {"allow", {"uname"}}}}}).seccomp;
  EXPECT_FALSE(policy::profile_denies(p, "read", {}));
  EXPECT_FALSE(policy::profile_denies(p, "uname", {}));
  EXPECT_TRUE(policy::profile_denies(p, "ptrace", {}));
  EXPECT_TRUE(policy::profile_denies(p, "nr 999", {}));
  NotifiedCallVerdict v = policy::verdict_for(p, "ptrace", {});
  EXPECT_EQ(v.kind, Kind::deny);
  EXPECT_EQ(v.origin, "/syscalls/profile (strict: not in the allow-list)");
  // An argument filter of the allow-list: only the admitted arguments are allowed.
  EXPECT_FALSE(policy::profile_denies(p, "socket", {kAfInet, kSockStream}));
  EXPECT_TRUE(policy::profile_denies(p, "socket", {kAfPacket, kSockRaw}));
  EXPECT_EQ(policy::verdict_for(p, "socket", {kAfPacket, kSockRaw})
                .origin.rfind("/syscalls/profile (argument filter: ", 0),
            0u);
}

TEST(SeccompVerdict, GatedCallsGoToTheCompositionRulesOfTheirClass) {
  policy::EnforcementPlan plan = gated_plan();
  const SeccompProfile& p = plan.seccomp;
  NotifiedCallVerdict open = policy::verdict_for(p, "openat", {0, 0, kOWronly | kOCreat});
  EXPECT_EQ(open.kind, Kind::gate);
  EXPECT_EQ(open.gate, "write");
  EXPECT_EQ(open.denied_by, (std::vector<size_t>{1, 3}));
  NotifiedCallVerdict unlink = policy::verdict_for(p, "unlinkat", {});
  EXPECT_EQ(unlink.kind, Kind::gate);
  EXPECT_EQ(unlink.gate, "write");
  NotifiedCallVerdict exec = policy::verdict_for(p, "execve", {});
  EXPECT_EQ(exec.kind, Kind::gate);
  EXPECT_EQ(exec.gate, "exec");
  EXPECT_EQ(exec.denied_by, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(policy::verdict_for(p, "ptrace", {}).kind, Kind::deny) << "not a gated call";
}

TEST(SeccompVerdict, AGatedCallIsAllowedUntilARuleOfItsClassHasFired) {
  policy::EnforcementPlan plan = gated_plan();
  NotifiedCallVerdict exec = policy::verdict_for(plan.seccomp, "execve", {});
  EXPECT_EQ(policy::gate_denied_by(exec, 0), std::nullopt);
  EXPECT_EQ(policy::gate_denied_by(exec, 1ULL << 0 | 1ULL << 1), std::nullopt)
      << "rules that deny network and write do not deny exec";
  EXPECT_EQ(policy::gate_denied_by(exec, 1ULL << 3), std::optional<size_t>(3));
  EXPECT_EQ(policy::gate_denied_by(exec, 1ULL << 2 | 1ULL << 3), std::optional<size_t>(2))
      << "the first rule that denies it";
}

TEST(SeccompVerdict, GateDeniedByIgnoresRulesPastTheKernelsBitmaskAndDenials) {
  NotifiedCallVerdict gate;
  gate.kind = Kind::gate;
  gate.denied_by = {70, 5};
  EXPECT_EQ(policy::gate_denied_by(gate, ~0ULL), std::optional<size_t>(5));
  NotifiedCallVerdict deny;
  deny.denied_by = {5};
  EXPECT_EQ(policy::gate_denied_by(deny, ~0ULL), std::nullopt) << "not a gated call";
}

TEST(SeccompVerdict, AGatedCallThatTheProfileItselfDeniesStaysDenied) {
  // mknodat is gated for write and also under the default profile's device-node filter.
  policy::EnforcementPlan plan = gated_plan();
  const SeccompProfile& p = plan.seccomp;
  ASSERT_EQ(p.gates.count("mknodat"), 1u);
  NotifiedCallVerdict device = policy::verdict_for(p, "mknodat", {0, 0, kSIfChr | 0600});
  EXPECT_EQ(device.kind, Kind::deny);
  EXPECT_EQ(device.origin,
            "/syscalls/profile (argument filter: files, fifos and sockets, no device nodes)");
  NotifiedCallVerdict file = policy::verdict_for(p, "mknodat", {0, 0, kSIfReg | 0600});
  EXPECT_EQ(file.kind, Kind::gate);
  EXPECT_EQ(file.gate, "write");
}

TEST(SeccompVerdict, AGatedCallUnderAnAllowListIsGatedNotDenied) {
  policy::EnforcementPlan plan = gated_plan({{"syscalls", {{"profile", "strict"}}}});
  const SeccompProfile& p = plan.seccomp;
  // The gate replaced openat's outright allowance by one for opens that do not write.
  EXPECT_FALSE(policy::profile_denies(p, "openat", {0, 0, kOWronly | kOTrunc}));
  NotifiedCallVerdict open = policy::verdict_for(p, "openat", {0, 0, kOWronly | kOTrunc});
  EXPECT_EQ(open.kind, Kind::gate);
  EXPECT_EQ(open.gate, "write");
  NotifiedCallVerdict ptrace = policy::verdict_for(p, "ptrace", {});
  EXPECT_EQ(ptrace.kind, Kind::deny);
  EXPECT_EQ(ptrace.origin, "/syscalls/profile (strict: not in the allow-list)");
}

TEST(SeccompVerdict, ForeignAbiCallsAreAlwaysKilled) {
  NotifiedCallVerdict v = policy::foreign_abi_verdict("x32");
  EXPECT_EQ(v.kind, Kind::deny);
  EXPECT_TRUE(v.kill);
  EXPECT_EQ(v.origin, "/syscalls (foreign ABI x32: always killed)");
  EXPECT_EQ(policy::foreign_abi_verdict("i386").origin,
            "/syscalls (foreign ABI i386: always killed)");
}

TEST(SeccompVerdict, TheIndexFollowsTheProfile) {
  SeccompProfile p;
  p.default_verdict = SeccompVerdict::deny;
  p.rules.push_back({"read", SeccompVerdict::allow, {}, "/syscalls/allow/0"});
  policy::index_notified_calls(p);
  EXPECT_FALSE(policy::profile_denies(p, "read", {}));
  EXPECT_TRUE(policy::profile_denies(p, "write", {}));
  p.rules.push_back({"write", SeccompVerdict::allow, {}, "/syscalls/allow/1"});
  policy::index_notified_calls(p);
  EXPECT_FALSE(policy::profile_denies(p, "write", {})) << "re-indexed";
  p.rules.clear();
  policy::index_notified_calls(p);
  EXPECT_TRUE(p.calls.empty());
}

}  // namespace
