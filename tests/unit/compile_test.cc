// policy::compile on small manifests: mount order, tool mounts, egress blocks, seccomp profiles
// and their argument filters.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/compile.h"
#include "policy/load.h"
#include "policy/path.h"
#include "policy/syscall_table.h"

namespace {

using nlohmann::json;
using policy::EnforcementPlan;
using policy::MountKind;
using policy::PortRange;
using policy::SeccompCondition;
using policy::SeccompOp;
using policy::SeccompProfile;
using policy::SeccompRule;
using policy::SeccompVerdict;

// A minimal manifest with `patch` merged in (RFC 7386).
policy::Manifest manifest_with(const json& patch) {
  json doc = {{"apiVersion", "enclosure/v1"},
              {"metadata", {{"name", "compile-test"}}},
              {"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}}}}};
  doc.merge_patch(patch);
  policy::LoadResult r = policy::load_manifest(doc.dump());
  std::string errors;
  for (const policy::Diagnostic& d : r.diagnostics.errors()) {
    errors += d.path + ": " + d.message + "\n";
  }
  EXPECT_TRUE(r.manifest) << doc.dump(2) << "\n" << errors;
  return r.manifest ? *r.manifest : policy::Manifest{};
}

EnforcementPlan plan_with(const json& patch) {
  policy::CompileResult c = policy::compile(manifest_with(patch));
  EXPECT_TRUE(c.plan) << c.error;
  return c.plan ? *c.plan : EnforcementPlan{};
}

SeccompProfile profile_with(const json& syscalls) {
  return policy::compile_seccomp(manifest_with({{"syscalls", syscalls}}).syscalls);
}

struct Step {
  MountKind kind;
  std::string path;
  std::string origin;
  bool operator==(const Step&) const = default;
};

std::vector<Step> steps_of(const EnforcementPlan& plan) {
  std::vector<Step> out;
  for (const policy::MountStep& s : plan.mounts.steps)
    out.push_back({s.kind, s.path, s.origin});
  return out;
}

std::ostream& operator<<(std::ostream& o, const Step& s) {
  return o << "{" << static_cast<int>(s.kind) << " " << s.path << " " << s.origin << "}";
}

bool allows(const SeccompProfile& profile, const std::string& name) {
  std::vector<std::string> allowed = policy::allowed_syscalls(profile);
  return std::binary_search(allowed.begin(), allowed.end(), name);
}

std::vector<const SeccompRule*> rules_for(const SeccompProfile& p, const std::string& name) {
  std::vector<const SeccompRule*> out;
  for (const SeccompRule& r : p.rules) {
    if (r.syscall == name) out.push_back(&r);
  }
  return out;
}

bool has_unconditional(const SeccompProfile& p, const std::string& name, SeccompVerdict verdict) {
  for (const SeccompRule* r : rules_for(p, name)) {
    if (r->verdict == verdict && r->conditions.empty()) return true;
  }
  return false;
}

// The condition sets of the rules for `name` with `verdict`.
std::set<std::vector<SeccompCondition>> condition_sets(const SeccompProfile& p,
                                                       const std::string& name,
                                                       SeccompVerdict verdict) {
  std::set<std::vector<SeccompCondition>> out;
  for (const SeccompRule* r : rules_for(p, name)) {
    if (r->verdict == verdict) out.insert(r->conditions);
  }
  return out;
}

using Args = std::array<uint64_t, 6>;

// How the kernel filter evaluates one condition on 64-bit argument values.
bool holds(const SeccompCondition& c, const Args& args) {
  uint64_t v = args.at(c.arg);
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

// True when some rule for `name` with `verdict` matches: all of its conditions hold.
bool matches(const SeccompProfile& p, const std::string& name, SeccompVerdict verdict,
             const Args& args) {
  for (const SeccompRule* r : rules_for(p, name)) {
    if (r->verdict != verdict) continue;
    if (std::all_of(r->conditions.begin(), r->conditions.end(),
                    [&](const SeccompCondition& c) { return holds(c, args); })) {
      return true;
    }
  }
  return false;
}

SeccompCondition masked(unsigned arg, uint64_t mask, uint64_t value) {
  return {arg, SeccompOp::masked_eq, mask, value};
}
SeccompCondition eq(unsigned arg, uint64_t value) {
  return {arg, SeccompOp::eq, 0, value};
}
SeccompCondition ne(unsigned arg, uint64_t value) {
  return {arg, SeccompOp::ne, 0, value};
}
SeccompCondition gt(unsigned arg, uint64_t value) {
  return {arg, SeccompOp::gt, 0, value};
}

// ---- mounts ----------------------------------------------------------------------------------

TEST(CompileMounts, ParentsComeFirstAndMasksFollowTheirGrant) {
  EnforcementPlan plan = plan_with({{"filesystem",
                                     {{"read", {"/a/b/c", "/a", "/q/r/s"}},
                                      {"write", {"/a/b"}},
                                      {"tmpfs", {"/z"}},
                                      {"hide", {"/a/b/c/secret", "/a/b/hidden"}}}}});
  std::vector<Step> expected{
      {MountKind::bind_read, "/a", "/filesystem/read/1"},
      {MountKind::tmpfs, "/z", "/filesystem/tmpfs/0"},
      {MountKind::bind_write, "/a/b", "/filesystem/write/0"},
      {MountKind::bind_read, "/a/b/c", "/filesystem/read/0"},
      {MountKind::bind_read, "/q/r/s", "/filesystem/read/2"},
      {MountKind::mask, "/a/b/hidden", "/filesystem/hide/1"},
      {MountKind::mask, "/a/b/c/secret", "/filesystem/hide/0"},
      {MountKind::tool, "/usr/bin/sh", "/tools/0/path"},
  };
  // The tool lies outside every grant, so it is mounted on its own; only its place relative to
  // its parents matters, so compare it separately.
  std::vector<Step> steps = steps_of(plan);
  auto tool = std::find_if(steps.begin(), steps.end(),
                           [](const Step& s) { return s.kind == MountKind::tool; });
  ASSERT_NE(tool, steps.end());
  EXPECT_EQ(*tool, expected.back());
  steps.erase(tool);
  expected.pop_back();
  EXPECT_EQ(steps, expected);
  for (size_t i = 0; i < plan.mounts.steps.size(); ++i) {
    for (size_t j = i + 1; j < plan.mounts.steps.size(); ++j) {
      const std::string &a = plan.mounts.steps[i].path, &b = plan.mounts.steps[j].path;
      EXPECT_FALSE(a != b && policy::path_is_under(a, b)) << b << " after its child " << a;
    }
  }
}

TEST(CompileMounts, AMaskAtTheDepthOfAGrantComesAfterIt) {
  // "/m/n/o" (a grant) and "/a/b/x" (a mask) have the same depth; the mask sorts first by name,
  // yet must come after the grants of its depth.
  EnforcementPlan plan =
      plan_with({{"filesystem", {{"read", {"/a/b", "/m/n/o", "/usr"}}, {"hide", {"/a/b/x"}}}}});
  std::vector<Step> steps = steps_of(plan);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].path, "/usr");
  EXPECT_EQ(steps[1].path, "/a/b");
  EXPECT_EQ(steps[2].path, "/m/n/o");
  EXPECT_EQ(steps[3], (Step{MountKind::mask, "/a/b/x", "/filesystem/hide/0"}));
}

// A tool inside a write grant gets one too: the grant is noexec, the tool's own bind (read-only,
// exec) lets it run and keeps the agent from rewriting it.
TEST(CompileMounts, ToolsOutsideTheReadGrantsGetAToolStep) {
  EnforcementPlan plan = plan_with({{"filesystem", {{"read", {"/usr"}}, {"write", {"/srv/w"}}}},
                                    {"tools",
                                     {{{"name", "sh"}, {"path", "/usr/bin/sh"}},
                                      {{"name", "build"}, {"path", "/srv/w/bin/build"}},
                                      {{"name", "run"}, {"path", "/opt/x/run"}}}}});
  std::vector<Step> tool_steps;
  for (const Step& s : steps_of(plan)) {
    if (s.kind == MountKind::tool) tool_steps.push_back(s);
  }
  EXPECT_EQ(tool_steps,
            (std::vector<Step>{{MountKind::tool, "/opt/x/run", "/tools/2/path"},
                               {MountKind::tool, "/srv/w/bin/build", "/tools/1/path"}}));
  EXPECT_EQ(plan.mounts.steps.back().path, "/srv/w/bin/build");
  // Every tool, and only a tool, may be executed.
  std::map<std::string, uint32_t> access;
  for (const policy::LandlockGrant& g : plan.landlock.grants)
    access[g.path] |= g.access;
  for (const char* tool : {"/usr/bin/sh", "/srv/w/bin/build", "/opt/x/run"}) {
    EXPECT_EQ(access.at(tool), policy::kLandlockRead | policy::kLandlockExecute) << tool;
  }
  EXPECT_EQ(access.at("/usr"), policy::kLandlockRead);
  EXPECT_EQ(access.at("/srv/w"), policy::kLandlockRead | policy::kLandlockWrite);
  for (const policy::LandlockGrant& g : plan.landlock.grants) {
    EXPECT_EQ((g.access & policy::kLandlockExecute) != 0, plan.tool_by_path(g.path) != nullptr)
        << g.path;
  }
  ASSERT_EQ(plan.tools.size(), 3u);
  EXPECT_EQ(plan.tools[2].index, 2u);
  EXPECT_EQ(plan.tool_by_path("/opt/x/run"), &plan.tools[2]);
}

TEST(CompileMounts, ATemplateCannotBeCompiled) {
  json doc = {{"apiVersion", "enclosure/v1"},
              {"metadata", {{"name", "t"}}},
              {"context", {{"id", {{"pattern", "^[0-9]+$"}}}}},
              {"filesystem", {{"read", {"/data/${id}"}}}},
              {"tools", {{{"name", "sh"}, {"path", "/usr/bin/sh"}}}}};
  policy::LoadResult r = policy::load_manifest(doc.dump(), {}, {.allow_unresolved = true});
  ASSERT_TRUE(r.manifest);
  policy::CompileResult c = policy::compile(*r.manifest);
  EXPECT_FALSE(c.plan);
  EXPECT_NE(c.error.find("id"), std::string::npos);
}

// ---- network ---------------------------------------------------------------------------------

std::map<std::string, std::vector<PortRange>> cidr_ports(const EnforcementPlan& plan,
                                                         policy::Protocol protocol) {
  std::map<std::string, std::vector<PortRange>> out;
  for (const policy::CidrEgress& c : plan.network.cidrs) {
    if (c.protocol != protocol) continue;
    EXPECT_FALSE(out.count(c.cidr.to_string())) << c.cidr.to_string() << " listed twice";
    out[c.cidr.to_string()] = c.ports;
  }
  return out;
}

json filtered(const json& egress) {
  return {{"network", {{"mode", "filtered"}, {"egress", egress}}}};
}

TEST(CompileNetwork, AllIpv6AddressesAlsoAdmitEveryIpv4Address) {
  EnforcementPlan plan = plan_with(filtered({{{"cidr", "::/0"}, {"ports", {443}}}}));
  auto tcp = cidr_ports(plan, policy::Protocol::tcp);
  EXPECT_EQ(tcp, (std::map<std::string, std::vector<PortRange>>{{"::/0", {{443, 443}}},
                                                                {"0.0.0.0/0", {{443, 443}}}}));
  for (const policy::CidrEgress& c : plan.network.cidrs)
    EXPECT_EQ(c.rule_index, 0u);

  // A block that covers ::ffff:0:0/96 does too; one that does not, does not.
  EXPECT_EQ(cidr_ports(plan_with(filtered({{{"cidr", "::/80"}, {"ports", {443}}}})),
                       policy::Protocol::tcp)
                .count("0.0.0.0/0"),
            1u);
  auto v6_only = cidr_ports(plan_with(filtered({{{"cidr", "2001:db8::/32"}, {"ports", {443}}}})),
                            policy::Protocol::tcp);
  EXPECT_EQ(v6_only.size(), 1u);
  EXPECT_EQ(v6_only.count("2001:db8::/32"), 1u);
  // An IPv4-mapped block is the IPv4 block itself.
  auto mapped =
      cidr_ports(plan_with(filtered({{{"cidr", "::ffff:10.0.0.0/104"}, {"ports", {5432}}}})),
                 policy::Protocol::tcp);
  EXPECT_EQ(mapped,
            (std::map<std::string, std::vector<PortRange>>{{"10.0.0.0/8", {{5432, 5432}}}}));
}

TEST(CompileNetwork, PortsOfTheSameBlockAndProtocolAreMerged) {
  EnforcementPlan plan = plan_with(filtered({
      {{"cidr", "0.0.0.0/0"}, {"ports", {80, "8000-8080"}}},
      {{"cidr", "::/0"}, {"ports", {81, "8081-8090", 443}}},
      {{"cidr", "0.0.0.0/0"}, {"ports", {53}}, {"protocol", "udp"}},
  }));
  auto tcp = cidr_ports(plan, policy::Protocol::tcp);
  EXPECT_EQ(tcp.at("0.0.0.0/0"), (std::vector<PortRange>{{80, 81}, {443, 443}, {8000, 8090}}));
  EXPECT_EQ(tcp.at("::/0"), (std::vector<PortRange>{{81, 81}, {443, 443}, {8081, 8090}}));
  EXPECT_EQ(tcp.size(), 2u);
  auto udp = cidr_ports(plan, policy::Protocol::udp);
  EXPECT_EQ(udp, (std::map<std::string, std::vector<PortRange>>{{"0.0.0.0/0", {{53, 53}}}}));
  // Landlock's TCP connect ports: every TCP port of every rule, merged; UDP does not count.
  EXPECT_TRUE(plan.landlock.restrict_tcp_connect);
  EXPECT_EQ(plan.landlock.tcp_connect_ports,
            (std::vector<PortRange>{{80, 81}, {443, 443}, {8000, 8090}}));
}

TEST(CompileNetwork, DnsAddsPort53ToTheTcpConnectPorts) {
  EnforcementPlan plan =
      plan_with({{"network",
                  {{"mode", "filtered"},
                   {"dns", true},
                   {"egress", {{{"host", "*.example.com"}, {"ports", {443}}}}}}}});
  EXPECT_EQ(plan.landlock.tcp_connect_ports, (std::vector<PortRange>{{53, 53}, {443, 443}}));
  ASSERT_EQ(plan.network.hosts.size(), 1u);
  EXPECT_EQ(plan.network.hosts[0].pattern, "*.example.com");
  EXPECT_TRUE(plan.network.cidrs.empty());

  EnforcementPlan none = plan_with(json::object());
  EXPECT_EQ(none.network.mode, policy::NetworkMode::none);
  EXPECT_TRUE(none.network.new_namespace);
  EXPECT_FALSE(none.landlock.restrict_tcp_connect);
}

// ---- seccomp ---------------------------------------------------------------------------------

TEST(CompileSeccomp, DefaultProfileDeniesEveryMemberOfItsGroups) {
  SeccompProfile p = profile_with(json::object());
  EXPECT_EQ(p.name, "default");
  EXPECT_EQ(p.default_verdict, SeccompVerdict::allow);
  size_t members = 0;
  for (const char* group : policy::default_profile_denied_groups()) {
    const policy::SyscallGroup* g = policy::find_syscall_group(group);
    ASSERT_NE(g, nullptr) << group;
    for (const char* name : g->syscalls) {
      ++members;
      EXPECT_TRUE(has_unconditional(p, name, SeccompVerdict::deny)) << group << " " << name;
      EXPECT_FALSE(allows(p, name)) << name;
      EXPECT_NE(p.origins.at(name).find(group), std::string::npos) << p.origins.at(name);
    }
  }
  EXPECT_GT(members, 50u);
  for (const char* name : {"read", "write", "openat", "execve", "mmap", "futex", "exit_group"}) {
    EXPECT_TRUE(allows(p, name)) << name;
  }
}

TEST(CompileSeccomp, AllowRemovesANameFromTheDenyListAndDenyAddsOne) {
  SeccompProfile allowed = profile_with({{"allow", {"ptrace"}}});
  EXPECT_TRUE(rules_for(allowed, "ptrace").empty());
  EXPECT_TRUE(allows(allowed, "ptrace"));
  EXPECT_FALSE(allows(allowed, "process_vm_readv"));  // @cross-process stays denied
  EXPECT_FALSE(allows(allowed, "pidfd_getfd"));       // the rest of @debug stays denied

  SeccompProfile denied = profile_with({{"deny", {"uname", "memfd_create"}}});
  EXPECT_TRUE(has_unconditional(denied, "memfd_create", SeccompVerdict::deny));
  EXPECT_FALSE(allows(denied, "memfd_create"));
  EXPECT_FALSE(allows(denied, "uname"));
  EXPECT_EQ(denied.origins.at("uname"), "/syscalls/deny/0");
  EXPECT_EQ(denied.origins.at("memfd_create"), "/syscalls/deny/1");
  EXPECT_TRUE(allows(profile_with(json::object()), "memfd_create"));

  // Denying a filtered call denies it outright, without its argument filter.
  SeccompProfile ioctl = profile_with({{"deny", {"ioctl"}}});
  ASSERT_EQ(rules_for(ioctl, "ioctl").size(), 1u);
  EXPECT_TRUE(has_unconditional(ioctl, "ioctl", SeccompVerdict::deny));
  // Allowing one lifts its filter.
  EXPECT_TRUE(rules_for(profile_with({{"allow", {"ioctl"}}}), "ioctl").empty());

  SeccompProfile kill = profile_with({{"action", "kill"}});
  EXPECT_EQ(kill.action, policy::SyscallAction::kill);
}

TEST(CompileSeccomp, StrictProfileAllowsOnlyTheStrictGroups) {
  SeccompProfile p = profile_with({{"profile", "strict"}});
  EXPECT_EQ(p.name, "strict");
  EXPECT_EQ(p.default_verdict, SeccompVerdict::deny);
  std::set<std::string> expected;
  for (const char* group : policy::strict_profile_allowed_groups()) {
    const policy::SyscallGroup* g = policy::find_syscall_group(group);
    ASSERT_NE(g, nullptr) << group;
    expected.insert(g->syscalls.begin(), g->syscalls.end());
  }
  std::vector<std::string> allowed = policy::allowed_syscalls(p);
  EXPECT_EQ(std::set<std::string>(allowed.begin(), allowed.end()), expected);
  for (const char* name : {"ptrace", "mount", "bpf", "io_uring_setup", "setns", "keyctl"}) {
    EXPECT_FALSE(allows(p, name)) << name;
  }
  for (const SeccompRule& r : p.rules) {
    EXPECT_NE(r.verdict, SeccompVerdict::deny) << r.syscall << ": the default verdict denies";
  }

  SeccompProfile adjusted =
      profile_with({{"profile", "strict"}, {"allow", {"ptrace"}}, {"deny", {"read"}}});
  EXPECT_TRUE(allows(adjusted, "ptrace"));
  EXPECT_FALSE(allows(adjusted, "read"));
  EXPECT_EQ(adjusted.origins.at("read"), "/syscalls/deny/0");
}

TEST(CompileSeccomp, DefaultProfileFiltersArguments) {
  SeccompProfile p = profile_with(json::object());
  // socket: every family but unix, inet, inet6 and netlink (route only) is refused.
  std::set<std::vector<SeccompCondition>> socket;
  for (uint64_t family = 0; family < policy::kAfMax; ++family) {
    if (family != 1 && family != 2 && family != 10 && family != 16) socket.insert({eq(0, family)});
  }
  socket.insert({gt(0, policy::kAfMax - 1)});
  socket.insert({eq(0, 16), ne(2, 0)});
  // inet and inet6: raw, packet and ICMP sockets.
  for (uint64_t family : {2, 10}) {
    socket.insert({eq(0, family), masked(1, 0xf, 3)});
    socket.insert({eq(0, family), masked(1, 0xf, 10)});
    socket.insert({eq(0, family), masked(2, 0xffffffffULL, family == 2 ? 1 : 58)});
  }
  EXPECT_EQ(condition_sets(p, "socket", SeccompVerdict::deny), socket);
  EXPECT_EQ(condition_sets(p, "socketpair", SeccompVerdict::deny),
            (std::set<std::vector<SeccompCondition>>{{ne(0, 1)}}));
  // ioctl: TIOCSTI and TIOCLINUX, on the low 32 bits of the command.
  EXPECT_EQ(condition_sets(p, "ioctl", SeccompVerdict::deny),
            (std::set<std::vector<SeccompCondition>>{{masked(1, 0xffffffffULL, 0x5412)},
                                                     {masked(1, 0xffffffffULL, 0x541C)}}));
  // clone and unshare: one rule per namespace flag.
  for (const char* name : {"clone", "unshare"}) {
    uint64_t bits = 0;
    for (const auto& conditions : condition_sets(p, name, SeccompVerdict::deny)) {
      ASSERT_EQ(conditions.size(), 1u);
      const SeccompCondition& c = conditions[0];
      EXPECT_EQ(c.arg, 0u);
      EXPECT_EQ(c.op, SeccompOp::masked_eq);
      EXPECT_EQ(c.mask, c.value);
      EXPECT_EQ(__builtin_popcountll(c.mask), 1);
      bits |= c.mask;
    }
    EXPECT_EQ(bits, policy::kNamespaceCloneFlags) << name;
  }
  EXPECT_EQ(__builtin_popcountll(policy::kNamespaceCloneFlags), 8);
  EXPECT_EQ(condition_sets(p, "personality", SeccompVerdict::deny),
            (std::set<std::vector<SeccompCondition>>{{ne(0, 0xffffffffULL)}}));
  EXPECT_EQ(condition_sets(p, "mknod", SeccompVerdict::deny),
            (std::set<std::vector<SeccompCondition>>{{masked(1, 0xF000, 0x2000)},
                                                     {masked(1, 0xF000, 0x6000)}}));
  EXPECT_EQ(condition_sets(p, "mknodat", SeccompVerdict::deny),
            (std::set<std::vector<SeccompCondition>>{{masked(2, 0xF000, 0x2000)},
                                                     {masked(2, 0xF000, 0x6000)}}));
  // The filtered calls stay allowed for the arguments the filters admit.
  for (const policy::FilteredSyscall& f : policy::filtered_syscalls()) {
    EXPECT_TRUE(allows(p, f.syscall)) << f.syscall;
    EXPECT_FALSE(has_unconditional(p, f.syscall, SeccompVerdict::deny)) << f.syscall;
  }
}

TEST(CompileSeccomp, Clone3IsAnsweredEnosys) {
  for (const char* profile : {"default", "strict"}) {
    SeccompProfile p = profile_with({{"profile", profile}});
    auto rules = rules_for(p, "clone3");
    ASSERT_EQ(rules.size(), 1u) << profile;
    EXPECT_EQ(rules[0]->verdict, SeccompVerdict::enosys) << profile;
    EXPECT_TRUE(rules[0]->conditions.empty());
    EXPECT_FALSE(allows(p, "clone3")) << profile;
  }
  SeccompProfile allowed = profile_with({{"allow", {"clone3"}}});
  EXPECT_TRUE(rules_for(allowed, "clone3").empty());
  EXPECT_TRUE(allows(allowed, "clone3"));
  SeccompProfile denied = profile_with({{"deny", {"clone3"}}});
  ASSERT_EQ(rules_for(denied, "clone3").size(), 1u);
  EXPECT_TRUE(has_unconditional(denied, "clone3", SeccompVerdict::deny));
  SeccompProfile strict_allowed = profile_with({{"profile", "strict"}, {"allow", {"clone3"}}});
  EXPECT_TRUE(has_unconditional(strict_allowed, "clone3", SeccompVerdict::allow));
  EXPECT_FALSE(has_unconditional(strict_allowed, "clone3", SeccompVerdict::enosys));
}

TEST(CompileSeccomp, StrictAdmitsExactlyTheIoctlsTheDefaultProfileDoesNotRefuse) {
  SeccompProfile strict = profile_with({{"profile", "strict"}});
  SeccompProfile standard = profile_with(json::object());
  const std::vector<std::pair<uint64_t, bool>> kSamples{
      {0x5412, false},            // TIOCSTI
      {0x1'0000'5412ULL, false},  // TIOCSTI with upper bits set: the kernel sees TIOCSTI
      {0xffffffff'00005412ULL, false},
      {0x541C, false},  // TIOCLINUX
      {0x8000'0000'0000'541CULL, false},
      {0x5413, true},  // TIOCGWINSZ
      {0x5401, true},  // TCGETS
      {0, true},
      {0xffffffff, true},
      {0xffffffff'ffffffffULL, true},
      {0x1'0000'0000ULL, true},
      {0x5410, true},
      {0x5414, true},
      {0x541A, true},
      {0x541E, true},
      {0x5416, true},
      {0x5412 ^ 0x80000000ULL, true},
  };
  for (const auto& [cmd, admitted] : kSamples) {
    Args args{3, cmd, 0, 0, 0, 0};
    EXPECT_EQ(matches(strict, "ioctl", SeccompVerdict::allow, args), admitted)
        << std::hex << "strict, ioctl 0x" << cmd;
    EXPECT_EQ(matches(standard, "ioctl", SeccompVerdict::deny, args), !admitted)
        << std::hex << "default, ioctl 0x" << cmd;
  }
  // Every command 0x5400..0x54ff, with and without upper bits: admitted exactly when the low
  // 32 bits are neither TIOCSTI nor TIOCLINUX.
  for (uint64_t upper : {0ULL, 0x1'0000'0000ULL, 0xdead'beef'0000'0000ULL}) {
    for (uint64_t low = 0x5400; low <= 0x54ff; ++low) {
      Args args{0, upper | low, 0, 0, 0, 0};
      bool expected = low != 0x5412 && low != 0x541C;
      EXPECT_EQ(matches(strict, "ioctl", SeccompVerdict::allow, args), expected)
          << std::hex << (upper | low);
    }
  }
}

// For every argument filter, the strict profile's admitted arguments are the complement of the
// default profile's refused ones (over well-formed arguments: strict names socket protocols by
// exact number, so junk in their upper bits is refused by strict alone).
TEST(CompileSeccomp, StrictFiltersAreTheComplementOfTheDefaultFilters) {
  SeccompProfile strict = profile_with({{"profile", "strict"}});
  SeccompProfile standard = profile_with(json::object());
  std::map<std::string, std::vector<Args>> samples;
  for (uint64_t family : std::vector<uint64_t>{0, 1, 2, 3, 9, 10, 11, 16, 17, 44, 45, 46, 47, 255,
                                               1ULL << 32, (1ULL << 32) | 2, ~0ULL}) {
    for (uint64_t protocol : {0ULL, 1ULL, 6ULL, 17ULL, 58ULL, 262ULL}) {
      for (uint64_t type : {1ULL, 2ULL, 3ULL, 10ULL, 1ULL | 0x80000ULL}) {
        bool well_formed = (type & 0xf) == 1 ? (protocol == 0 || protocol == 6 || protocol == 262 ||
                                                protocol == 1 || protocol == 58)
                                             : true;
        if ((type & 0xf) == 1 && (protocol == 17)) well_formed = false;  // udp stream: not a socket
        if ((type & 0xf) == 2 && (protocol == 6 || protocol == 262)) well_formed = false;
        if (family == 2 && protocol == 58) well_formed = false;
        if (family == 10 && protocol == 1) well_formed = false;
        if (well_formed) samples["socket"].push_back({family, type, protocol, 0, 0, 0});
      }
    }
    samples["socketpair"].push_back({family, 1, 0, 0, 0, 0});
  }
  const uint64_t kThread = 0x3d0f00;  // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|...
  std::vector<uint64_t> flags{0, 17, kThread, 1ULL << 32, ~0ULL, policy::kNamespaceCloneFlags};
  for (uint64_t bit = 1; bit != 0; bit <<= 1) {
    if (policy::kNamespaceCloneFlags & bit) {
      flags.push_back(bit);
      flags.push_back(bit | kThread);
    }
  }
  for (uint64_t f : flags) {
    samples["clone"].push_back({f, 0, 0, 0, 0, 0});
    samples["unshare"].push_back({f, 0, 0, 0, 0, 0});
  }
  for (uint64_t persona : {0ULL, 0x0040000ULL, 0xffffffffULL, 0x1'ffffffffULL, 8ULL}) {
    samples["personality"].push_back({persona, 0, 0, 0, 0, 0});
  }
  // The file types mknod(2) accepts: regular (0 or S_IFREG), fifo, socket, character, block.
  for (uint64_t type : {0x0000ULL, 0x8000ULL, 0x1000ULL, 0xC000ULL, 0x2000ULL, 0x6000ULL}) {
    samples["mknod"].push_back({0, type | 0644, 0, 0, 0, 0});
    samples["mknodat"].push_back({3, 0, type | 0600, 0, 0, 0});
  }
  samples["ioctl"].push_back({0, 0x5412, 0, 0, 0, 0});
  samples["ioctl"].push_back({0, 0x5413, 0, 0, 0, 0});
  for (const policy::FilteredSyscall& f : policy::filtered_syscalls()) {
    ASSERT_TRUE(samples.count(f.syscall)) << "no samples for " << f.syscall;
    for (const Args& a : samples[f.syscall]) {
      bool refused = matches(standard, f.syscall, SeccompVerdict::deny, a);
      bool admitted = matches(strict, f.syscall, SeccompVerdict::allow, a);
      EXPECT_NE(refused, admitted)
          << f.syscall << std::hex << " args 0x" << a[0] << " 0x" << a[1] << " 0x" << a[2];
    }
  }
  // Spot checks of what the filters mean.
  EXPECT_TRUE(matches(strict, "socket", SeccompVerdict::allow, {2, 1, 0, 0, 0, 0}));
  EXPECT_FALSE(matches(strict, "socket", SeccompVerdict::allow, {17, 3, 0, 0, 0, 0}));  // packet
  EXPECT_FALSE(matches(strict, "socket", SeccompVerdict::allow, {16, 3, 9, 0, 0, 0}));  // audit
  EXPECT_FALSE(matches(strict, "socket", SeccompVerdict::allow, {2, 3, 1, 0, 0, 0}));   // raw
  EXPECT_FALSE(matches(strict, "socket", SeccompVerdict::allow, {2, 2, 1, 0, 0, 0}));   // ping
  EXPECT_TRUE(matches(standard, "socket", SeccompVerdict::deny, {2, 2, (1ULL << 32) | 1, 0, 0, 0}));
  EXPECT_TRUE(matches(standard, "socket", SeccompVerdict::deny, {10, 3 | 0x80000, 0, 0, 0, 0}));
  EXPECT_FALSE(matches(strict, "clone", SeccompVerdict::allow, {0x10000000, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(matches(strict, "clone", SeccompVerdict::allow, {kThread, 0, 0, 0, 0, 0}));
}

TEST(SyscallTable, EveryNameResolvesWithLibseccomp) {
  std::set<std::string> groups;
  size_t names = 0;
  for (const policy::SyscallGroup& g : policy::syscall_groups()) {
    EXPECT_EQ(g.name[0], '@') << g.name;
    EXPECT_TRUE(groups.insert(g.name).second) << g.name << " defined twice";
    EXPECT_FALSE(std::string(g.description).empty()) << g.name;
    for (const char* name : g.syscalls) {
      ++names;
      EXPECT_TRUE(policy::known_syscall(name)) << g.name << ": " << name;
    }
  }
  EXPECT_GT(names, 200u);
  for (const policy::FilteredSyscall& f : policy::filtered_syscalls()) {
    EXPECT_TRUE(policy::known_syscall(f.syscall)) << f.syscall;
  }
  EXPECT_FALSE(policy::known_syscall("not_a_syscall"));
  EXPECT_FALSE(policy::known_syscall(""));
  // The two profiles' groups exist and do not overlap.
  std::set<std::string> denied;
  for (const char* group : policy::default_profile_denied_groups()) {
    ASSERT_NE(policy::find_syscall_group(group), nullptr) << group;
    for (const char* n : policy::find_syscall_group(group)->syscalls)
      denied.insert(n);
  }
  for (const char* group : policy::strict_profile_allowed_groups()) {
    ASSERT_NE(policy::find_syscall_group(group), nullptr) << group;
    for (const char* n : policy::find_syscall_group(group)->syscalls) {
      EXPECT_FALSE(denied.count(n)) << n << " is both denied by default and allowed by strict";
    }
  }
}

}  // namespace

TEST(CompileRules, RulesThatDenyWriteOrExecNeedTheSeccompGatesAndSaySo) {
  EnforcementPlan plan = plan_with(
      {{"filesystem", {{"read", {"/usr"}}, {"write", {"/srv/out"}}}},
       {"network",
        {{"mode", "filtered"}, {"egress", {{{"cidr", "10.0.0.0/8"}, {"ports", {443}}}}}}},
       {"rules",
        {{{"id", "no-write"}, {"after", {{"read", {"/usr/share"}}}}, {"deny", {"write"}}},
         {{"id", "no-net"}, {"after", {{"read", {"/usr/share"}}}}, {"deny", {"network"}}}}}});
  EXPECT_EQ(plan.seccomp.gates.count("openat"), 1u);
  EXPECT_EQ(plan.seccomp.gates.at("openat"), "write");
  EXPECT_EQ(plan.seccomp.gates.count("execve"), 0u) << "no rule denies exec";
  auto needs = [&](const std::string& layer, const std::string& origin) {
    for (const policy::Requirement& r : plan.requirements) {
      if (r.layer == layer && r.origin == origin) return true;
    }
    return false;
  };
  // Without seccomp the gates would vanish: allowing it degraded must say which rule loses.
  EXPECT_TRUE(needs("seccomp", "/rules/0"));
  EXPECT_FALSE(needs("seccomp", "/rules/1"));
  EXPECT_TRUE(needs("bpf", "/rules/0"));
  EXPECT_TRUE(needs("bpf", "/rules/1"));
}

TEST(CompileSeccomp, TheProfileIsIndexedPerSystemCallForTheSupervisor) {
  SeccompProfile p = profile_with({{"deny", {"uname"}}});
  ASSERT_EQ(p.calls.count("uname"), 1u);
  EXPECT_EQ(p.calls.at("uname").origin, "/syscalls/deny/0");
  ASSERT_EQ(p.calls.at("uname").rules.size(), 1u);
  EXPECT_EQ(p.calls.at("uname").rules[0].verdict, SeccompVerdict::deny);
  EXPECT_EQ(p.calls.at("socket").rules.size(), rules_for(p, "socket").size());
  EXPECT_TRUE(p.calls.at("socket").gate.empty());
  EXPECT_EQ(p.calls.count("read"), 0u) << "no rule, origin or gate";

  EnforcementPlan plan = plan_with(
      {{"filesystem", {{"read", {"/usr"}}, {"write", {"/srv/out"}}}},
       {"network",
        {{"mode", "filtered"}, {"egress", {{{"cidr", "10.0.0.0/8"}, {"ports", {443}}}}}}},
       {"rules",
        {{{"id", "freeze"}, {"after", {{"read", {"/usr/share"}}}}, {"deny", {"write", "exec"}}}}}});
  // add_rule_gates re-indexes: the gates are in the index, their gate rules are not.
  ASSERT_EQ(plan.seccomp.calls.count("openat"), 1u);
  EXPECT_EQ(plan.seccomp.calls.at("openat").gate, "write");
  EXPECT_TRUE(plan.seccomp.calls.at("openat").rules.empty());
  EXPECT_EQ(plan.seccomp.calls.at("execve").gate, "exec");
  for (const auto& [name, call] : plan.seccomp.calls) {
    for (const SeccompRule& r : call.rules) {
      EXPECT_NE(r.verdict, SeccompVerdict::gate) << name;
      EXPECT_EQ(r.syscall, name);
    }
  }
}

// The plan's unix socket paths: the named ones exactly, the write grants and tmpfs as the
// agent's own directories, the read grants, /proc and /dev as where others' sockets are, each
// with the manifest entry it comes from; the eBPF layer needs its unix socket hooks.
TEST(Compile, UnixSocketPathsAreTheNamesTheAgentsOwnAndOthers) {
  using policy::UnixSocketAccess;
  EnforcementPlan plan =
      plan_with({{"filesystem", {{"read", {"/usr"}}, {"write", {"/srv/out"}}, {"tmpfs", {"/tmp"}}}},
                 {"network", {{"unix", {"/usr/run/app.sock"}}}}});
  struct Expected {
    const char* path;
    UnixSocketAccess access;
    const char* origin;
  };
  const Expected expected[] = {{"/usr/run/app.sock", UnixSocketAccess::named, "/network/unix/0"},
                               {"/srv/out", UnixSocketAccess::own, "/filesystem/write/0"},
                               {"/tmp", UnixSocketAccess::own, "/filesystem/tmpfs/0"},
                               {"/usr", UnixSocketAccess::foreign, "/filesystem/read/0"},
                               {"/proc", UnixSocketAccess::foreign, "/proc"},
                               {"/dev", UnixSocketAccess::foreign, "/dev"}};
  const auto& u = plan.network.unix_sockets;
  ASSERT_EQ(u.size(), std::size(expected));
  for (size_t i = 0; i < u.size(); ++i) {
    EXPECT_EQ(u[i].path, expected[i].path);
    EXPECT_EQ(u[i].access, expected[i].access) << u[i].path;
    EXPECT_EQ(u[i].origin, expected[i].origin);
  }
  bool hooks = std::any_of(
      plan.requirements.begin(), plan.requirements.end(),
      [](const policy::Requirement& r) { return r.layer == "bpf" && r.origin == "/network/unix"; });
  EXPECT_TRUE(hooks);
}
