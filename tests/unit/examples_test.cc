// The example manifests in examples/ load, compile, and mean what a reader of them expects.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "policy/compile.h"
#include "policy/load.h"
#include "policy/path.h"
#include "policy/syscall_table.h"

namespace {

using policy::EnforcementPlan;
using policy::Manifest;
using policy::MountKind;

std::string example_text(const std::string& name) {
  std::ifstream in(std::filesystem::path(ENCLOSURE_SOURCE_DIR) / "examples" / name);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string errors_of(const policy::LoadResult& r) {
  std::string out;
  for (const policy::Diagnostic& d : r.diagnostics.errors())
    out += d.path + ": " + d.message + "\n";
  return out;
}

Manifest load_example(const std::string& name, const policy::ContextValues& context = {}) {
  std::string text = example_text(name);
  EXPECT_FALSE(text.empty()) << "examples/" << name << " is missing";
  policy::LoadResult r = policy::load_manifest(text, context);
  EXPECT_TRUE(r.manifest) << name << "\n" << errors_of(r);
  return r.manifest ? *r.manifest : Manifest{};
}

EnforcementPlan compile_example(const std::string& name,
                                const policy::ContextValues& context = {}) {
  Manifest m = load_example(name, context);
  policy::CompileResult c = policy::compile(m);
  EXPECT_TRUE(c.plan) << name << ": " << c.error;
  return c.plan ? *c.plan : EnforcementPlan{};
}

using Steps = std::vector<std::pair<MountKind, std::string>>;

Steps steps_of(const EnforcementPlan& plan) {
  Steps out;
  for (const policy::MountStep& s : plan.mounts.steps)
    out.emplace_back(s.kind, s.path);
  return out;
}

// No step is preceded by a step beneath it, and every mask follows the grant it lies under.
void expect_parent_first(const EnforcementPlan& plan) {
  const auto& steps = plan.mounts.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    for (size_t j = i + 1; j < steps.size(); ++j) {
      EXPECT_FALSE(steps[i].path != steps[j].path &&
                   policy::path_is_under(steps[i].path, steps[j].path))
          << steps[j].path << " (step " << j << ") is a parent of " << steps[i].path << " (step "
          << i << ") but comes after it";
    }
    if (steps[i].kind != MountKind::mask) continue;
    bool covered = false;
    for (size_t j = 0; j < i; ++j) {
      covered = covered || (steps[j].kind != MountKind::mask &&
                            policy::path_is_under(steps[i].path, steps[j].path));
    }
    EXPECT_TRUE(covered) << "mask " << steps[i].path << " precedes the grant it lies under";
  }
}

// Landlock access of the manifest's own grants (built-ins left out), by path.
std::map<std::string, uint32_t> grants_of(const EnforcementPlan& plan) {
  std::map<std::string, uint32_t> out;
  for (const policy::LandlockGrant& g : plan.landlock.grants) {
    if (g.origin.rfind("built-in", 0) == 0) continue;
    out[g.path] |= g.access;
  }
  return out;
}

std::set<std::string> layers_of(const EnforcementPlan& plan) {
  std::set<std::string> out;
  for (const policy::Requirement& r : plan.requirements)
    out.insert(r.layer);
  return out;
}

bool needs(const EnforcementPlan& plan, const std::string& layer, const std::string& origin) {
  return std::any_of(
      plan.requirements.begin(), plan.requirements.end(),
      [&](const policy::Requirement& r) { return r.layer == layer && r.origin == origin; });
}

bool allows(const policy::SeccompProfile& profile, const std::string& name) {
  std::vector<std::string> allowed = policy::allowed_syscalls(profile);
  return std::binary_search(allowed.begin(), allowed.end(), name);
}

constexpr uint64_t kMinute = 60ULL * 1000 * 1000 * 1000;
constexpr uint32_t kRead = policy::kLandlockRead;
constexpr uint32_t kReadWrite = policy::kLandlockRead | policy::kLandlockWrite;
constexpr uint32_t kReadExecute = policy::kLandlockRead | policy::kLandlockExecute;

// ---- coding agent -----------------------------------------------------------------------------

TEST(ExampleCodingAgent, RepositoryComesFromTheContextWithADefault) {
  Manifest m = load_example("coding-agent.json");
  EXPECT_EQ(m.context_values.at("repo"), "/srv/repos/scratch");
  EXPECT_EQ(m.filesystem.write, std::vector<std::string>{"/srv/repos/scratch"});
  EXPECT_EQ(m.process.cwd, "/srv/repos/scratch");
  EXPECT_FALSE(m.metadata.approved_by.empty());
  EXPECT_FALSE(m.metadata.reason.empty());

  Manifest given = load_example("coding-agent.json", {{"repo", "/srv/repos/enclosure"}});
  EXPECT_EQ(given.filesystem.write, std::vector<std::string>{"/srv/repos/enclosure"});
  EXPECT_NE(given.digest, m.digest);
  // A value cannot climb out of /srv/repos or reach deeper than one folder.
  for (const char* bad : {"/srv/repos/..", "/srv/repos/a/b", "/etc", "/srv/repos/A"}) {
    EXPECT_FALSE(policy::load_manifest(example_text("coding-agent.json"), {{"repo", bad}}).manifest)
        << bad;
  }
}

// The repository is also the `workspace` tree tool: what the agent builds there runs (and each
// run counts), mounted exec, while /tmp stays noexec.
TEST(ExampleCodingAgent, PlanGrantsTheRepositoryAndRunsOnlyGitPythonAndTheWorkspace) {
  EnforcementPlan plan = compile_example("coding-agent.json");
  expect_parent_first(plan);
  EXPECT_EQ(steps_of(plan), (Steps{{MountKind::bind_read, "/lib"},
                                   {MountKind::bind_read, "/lib64"},
                                   {MountKind::tmpfs, "/tmp"},
                                   {MountKind::bind_read, "/usr"},
                                   {MountKind::bind_read, "/etc/group"},
                                   {MountKind::bind_read, "/etc/nsswitch.conf"},
                                   {MountKind::bind_read, "/etc/passwd"},
                                   {MountKind::bind_write, "/srv/repos/scratch"}}));
  std::map<std::string, uint32_t> expected{
      {"/usr", kRead},
      {"/lib", kRead},
      {"/lib64", kRead},
      {"/etc/passwd", kRead},
      {"/etc/group", kRead},
      {"/etc/nsswitch.conf", kRead},
      {"/srv/repos/scratch", kReadWrite | policy::kLandlockExecute},
      {"/tmp", kReadWrite},
      {"/usr/bin/git", kReadExecute},
      {"/usr/lib/git-core/git", kReadExecute},
      {"/usr/bin/python3", kReadExecute},
  };
  EXPECT_EQ(grants_of(plan), expected);
  for (const auto& [path, access] : grants_of(plan)) {
    EXPECT_EQ((access & policy::kLandlockExecute) != 0, plan.tool_by_path(path) != nullptr) << path;
  }

  ASSERT_EQ(plan.tools.size(), 4u);
  EXPECT_EQ(plan.tools[3].name, "workspace");
  EXPECT_EQ(plan.tools[3].path, "/srv/repos/scratch");
  EXPECT_TRUE(plan.tools[3].tree);
  EXPECT_EQ(plan.tools[3].max_calls, 500u);
  EXPECT_EQ(plan.tools[0].name, "git");
  EXPECT_EQ(plan.tools[0].path, "/usr/bin/git");
  EXPECT_EQ(plan.tools[0].max_calls, 400u);
  EXPECT_EQ(plan.tools[1].name, "git-core");
  EXPECT_EQ(plan.tools[2].name, "python");
  EXPECT_EQ(plan.tools[2].path, "/usr/bin/python3");
  EXPECT_EQ(plan.tools[2].max_calls, 200u);
  EXPECT_EQ(plan.tools[2].cost_micro_usd, 0u);

  EXPECT_EQ(plan.seccomp.name, "default");
  EXPECT_EQ(plan.seccomp.default_verdict, policy::SeccompVerdict::allow);
  EXPECT_FALSE(allows(plan.seccomp, "ptrace"));
  EXPECT_FALSE(allows(plan.seccomp, "mount"));
  EXPECT_FALSE(allows(plan.seccomp, "io_uring_setup"));
  EXPECT_TRUE(allows(plan.seccomp, "read"));
  EXPECT_TRUE(allows(plan.seccomp, "execve"));

  EXPECT_EQ(plan.network.mode, policy::NetworkMode::none);
  EXPECT_TRUE(plan.network.new_namespace);
  EXPECT_TRUE(plan.network.cidrs.empty());
  EXPECT_TRUE(plan.network.hosts.empty());
  EXPECT_FALSE(plan.network.dns);
  EXPECT_FALSE(plan.landlock.restrict_tcp_connect);

  EXPECT_EQ(plan.budgets.wall_clock_ns, 30 * kMinute);
  EXPECT_EQ(plan.budgets.cpu_time_ns, 10 * kMinute);
  EXPECT_EQ(plan.budgets.tool_calls, 800u);
  EXPECT_EQ(plan.budgets.processes, 64u);
  EXPECT_EQ(plan.budgets.memory_bytes, 4ULL << 30);
  EXPECT_FALSE(plan.budgets.egress_bytes);
  EXPECT_FALSE(plan.budgets.cost_micro_usd);
  EXPECT_FALSE(plan.budgets.syscalls);

  EXPECT_EQ(layers_of(plan),
            (std::set<std::string>{"bpf", "cgroup", "landlock", "network", "seccomp"}));
  EXPECT_TRUE(needs(plan, "network", "/network/mode"));
  EXPECT_TRUE(needs(plan, "bpf", "/budgets/tool_calls"));
  EXPECT_TRUE(needs(plan, "bpf", "/tools/2/max_calls"));
  EXPECT_TRUE(needs(plan, "cgroup", "/budgets/memory"));
  EXPECT_TRUE(needs(plan, "cgroup", "/budgets/processes"));
  EXPECT_TRUE(needs(plan, "cgroup", "/budgets/cpu_time"));
  EXPECT_FALSE(needs(plan, "bpf", "/network/egress"));
  EXPECT_FALSE(needs(plan, "bpf", "/audit/files"));
  EXPECT_TRUE(plan.rules.empty());
  EXPECT_EQ(plan.on_violation, policy::OnViolation::deny);
}

// ---- data agent -------------------------------------------------------------------------------

TEST(ExampleDataAgent, NeedsACustomerIdThatIsOnlyDigits) {
  std::string text = example_text("data-agent.json");
  policy::LoadResult none = policy::load_manifest(text);
  ASSERT_FALSE(none.manifest);
  ASSERT_FALSE(none.diagnostics.errors().empty());
  EXPECT_EQ(none.diagnostics.errors()[0].path, "/context/customer_id");

  policy::LoadResult templ = policy::load_manifest(text, {}, {.allow_unresolved = true});
  ASSERT_TRUE(templ.manifest) << errors_of(templ);
  EXPECT_TRUE(templ.manifest->is_template());
  policy::CompileResult c = policy::compile(*templ.manifest);
  EXPECT_FALSE(c.plan);
  EXPECT_NE(c.error.find("customer_id"), std::string::npos) << c.error;

  for (const char* bad : {"12/34", "..", "1234567890123", "42 ", "*", ""}) {
    EXPECT_FALSE(policy::load_manifest(text, {{"customer_id", bad}}).manifest) << bad;
  }
  Manifest a = load_example("data-agent.json", {{"customer_id", "1042"}});
  Manifest b = load_example("data-agent.json", {{"customer_id", "1043"}});
  EXPECT_NE(a.digest, b.digest);
  EXPECT_EQ(a.process.cwd, "/srv/reports/1042");
  EXPECT_EQ(a.process.env_set.at("CUSTOMER_ID"), "1042");
}

TEST(ExampleDataAgent, PlanScopesFilesToTheCustomerAndCutsTheNetworkAfterReading) {
  EnforcementPlan plan = compile_example("data-agent.json", {{"customer_id", "1042"}});
  expect_parent_first(plan);
  EXPECT_EQ(steps_of(plan), (Steps{{MountKind::bind_read, "/lib"},
                                   {MountKind::bind_read, "/lib64"},
                                   {MountKind::tmpfs, "/tmp"},
                                   {MountKind::bind_read, "/usr"},
                                   {MountKind::bind_read, "/etc/group"},
                                   {MountKind::bind_read, "/etc/nsswitch.conf"},
                                   {MountKind::bind_read, "/etc/passwd"},
                                   {MountKind::bind_read, "/data/customers/1042"},
                                   {MountKind::bind_write, "/srv/reports/1042"},
                                   {MountKind::mask, "/data/customers/1042/payment-cards"}}));
  std::map<std::string, uint32_t> grants = grants_of(plan);
  EXPECT_EQ(grants.at("/data/customers/1042"), kRead);
  EXPECT_EQ(grants.at("/srv/reports/1042"), kReadWrite);
  EXPECT_EQ(grants.at("/usr/bin/python3"), kReadExecute);
  EXPECT_FALSE(grants.count("/data/customers/1042/payment-cards"));
  EXPECT_FALSE(grants.count("/data/customers"));
  for (const policy::LandlockGrant& g : plan.landlock.grants) {
    EXPECT_EQ((g.access & policy::kLandlockExecute) != 0, g.path == "/usr/bin/python3") << g.path;
  }

  EXPECT_EQ(plan.seccomp.name, "strict");
  EXPECT_EQ(plan.seccomp.default_verdict, policy::SeccompVerdict::deny);
  EXPECT_FALSE(allows(plan.seccomp, "ptrace"));
  EXPECT_FALSE(allows(plan.seccomp, "bpf"));
  EXPECT_TRUE(allows(plan.seccomp, "read"));
  EXPECT_TRUE(allows(plan.seccomp, "connect"));

  EXPECT_EQ(plan.network.mode, policy::NetworkMode::filtered);
  EXPECT_FALSE(plan.network.new_namespace);
  ASSERT_EQ(plan.network.cidrs.size(), 1u);
  EXPECT_EQ(plan.network.cidrs[0].cidr.to_string(), "10.20.0.0/16");
  EXPECT_EQ(plan.network.cidrs[0].protocol, policy::Protocol::tcp);
  EXPECT_EQ(plan.network.cidrs[0].ports, (std::vector<policy::PortRange>{{5432, 5432}}));
  EXPECT_TRUE(plan.network.hosts.empty());
  EXPECT_FALSE(plan.network.dns);
  EXPECT_TRUE(plan.landlock.restrict_tcp_connect);
  EXPECT_EQ(plan.landlock.tcp_connect_ports, (std::vector<policy::PortRange>{{5432, 5432}}));

  ASSERT_EQ(plan.rules.size(), 1u);
  EXPECT_EQ(plan.rules[0].id, "no-network-after-customer-files");
  EXPECT_EQ(plan.rules[0].after.read, std::vector<std::string>{"/data/customers/1042"});
  EXPECT_TRUE(plan.rules[0].deny.network);
  EXPECT_FALSE(plan.rules[0].deny.write);
  EXPECT_TRUE(plan.audit.files);
  EXPECT_FALSE(plan.audit.syscalls);

  ASSERT_EQ(plan.tools.size(), 1u);
  EXPECT_EQ(plan.tools[0].max_calls, 50u);
  EXPECT_EQ(plan.budgets.wall_clock_ns, 15 * kMinute);
  EXPECT_EQ(plan.budgets.cpu_time_ns, 5 * kMinute);
  EXPECT_EQ(plan.budgets.memory_bytes, 2ULL << 30);
  EXPECT_EQ(plan.budgets.egress_bytes, 10ULL << 20);
  EXPECT_EQ(plan.budgets.processes, 32u);

  EXPECT_EQ(layers_of(plan), (std::set<std::string>{"bpf", "cgroup", "landlock", "seccomp"}));
  EXPECT_TRUE(needs(plan, "bpf", "/rules/0"));
  EXPECT_TRUE(needs(plan, "bpf", "/network/egress"));
  EXPECT_TRUE(needs(plan, "bpf", "/audit/files"));
  EXPECT_TRUE(needs(plan, "bpf", "/budgets/egress_bytes"));
  EXPECT_TRUE(needs(plan, "landlock", "/network/mode"));
  EXPECT_FALSE(needs(plan, "network", "/network/mode"));
  EXPECT_FALSE(needs(plan, "bpf", "/network/dns"));
}

// ---- browsing agent ---------------------------------------------------------------------------

TEST(ExampleBrowsingAgent, PlanAdmitsTwoHostsOverHttpsWithDnsAndPricesTheSearchTool) {
  EnforcementPlan plan = compile_example("browsing-agent.json");
  expect_parent_first(plan);
  EXPECT_EQ(steps_of(plan), (Steps{{MountKind::bind_read, "/lib"},
                                   {MountKind::bind_read, "/lib64"},
                                   {MountKind::tmpfs, "/tmp"},
                                   {MountKind::bind_read, "/usr"},
                                   {MountKind::tmpfs, "/work"},
                                   {MountKind::bind_read, "/etc/hosts"},
                                   {MountKind::bind_read, "/etc/nsswitch.conf"},
                                   {MountKind::bind_read, "/etc/resolv.conf"},
                                   {MountKind::bind_read, "/etc/ssl/certs"},
                                   {MountKind::bind_read, "/opt/agents/research-browser"},
                                   {MountKind::tool, "/opt/tools/web-search"}}));
  ASSERT_FALSE(plan.mounts.steps.empty());
  EXPECT_EQ(plan.mounts.steps.back().origin, "/tools/1/path");
  std::map<std::string, uint32_t> grants = grants_of(plan);
  EXPECT_EQ(grants.at("/opt/tools/web-search"), kReadExecute);
  EXPECT_EQ(grants.at("/opt/agents/research-browser"), kRead);
  EXPECT_EQ(grants.at("/work"), kReadWrite);

  EXPECT_EQ(plan.network.mode, policy::NetworkMode::filtered);
  EXPECT_TRUE(plan.network.cidrs.empty());
  ASSERT_EQ(plan.network.hosts.size(), 2u);
  EXPECT_EQ(plan.network.hosts[0].pattern, "api.openai.com");
  EXPECT_EQ(plan.network.hosts[0].ports, (std::vector<policy::PortRange>{{443, 443}}));
  EXPECT_EQ(plan.network.hosts[0].rule_index, 0u);
  EXPECT_EQ(plan.network.hosts[1].pattern, "*.wikipedia.org");
  EXPECT_EQ(plan.network.hosts[1].protocol, policy::Protocol::tcp);
  EXPECT_EQ(plan.network.hosts[1].rule_index, 1u);
  EXPECT_TRUE(plan.network.dns);
  EXPECT_TRUE(plan.landlock.restrict_tcp_connect);
  EXPECT_EQ(plan.landlock.tcp_connect_ports,
            (std::vector<policy::PortRange>{{53, 53}, {443, 443}}));

  ASSERT_EQ(plan.tools.size(), 2u);
  EXPECT_EQ(plan.tools[1].name, "search");
  EXPECT_EQ(plan.tools[1].path, "/opt/tools/web-search");
  EXPECT_EQ(plan.tools[1].max_calls, 30u);
  EXPECT_EQ(plan.tools[1].cost_micro_usd, 5000u);
  EXPECT_EQ(plan.tools[0].cost_micro_usd, 0u);
  EXPECT_EQ(plan.budgets.cost_micro_usd, 2000000u);
  EXPECT_EQ(plan.budgets.egress_bytes, 50ULL << 20);
  EXPECT_EQ(plan.budgets.memory_bytes, 1ULL << 30);
  EXPECT_EQ(plan.budgets.wall_clock_ns, 20 * kMinute);
  EXPECT_EQ(plan.budgets.tool_calls, 60u);

  EXPECT_EQ(plan.seccomp.name, "default");
  EXPECT_FALSE(allows(plan.seccomp, "ptrace"));
  EXPECT_TRUE(allows(plan.seccomp, "read"));
  EXPECT_EQ(plan.on_violation, policy::OnViolation::kill);

  EXPECT_EQ(layers_of(plan), (std::set<std::string>{"bpf", "cgroup", "landlock", "seccomp"}));
  EXPECT_TRUE(needs(plan, "bpf", "/network/egress"));
  EXPECT_TRUE(needs(plan, "bpf", "/network/dns"));
  EXPECT_TRUE(needs(plan, "bpf", "/budgets/cost_usd"));
  EXPECT_TRUE(needs(plan, "bpf", "/budgets/egress_bytes"));
  EXPECT_TRUE(needs(plan, "bpf", "/tools/1/max_calls"));
  EXPECT_FALSE(needs(plan, "bpf", "/audit/files"));
  EXPECT_TRUE(plan.rules.empty());
}

// ---- the command line accepts them ------------------------------------------------------------

int run_binary(const std::string& args) {
  std::string command = std::string(ENCLOSURE_BINARY) + " " + args + " >/dev/null 2>&1";
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ExamplesOnTheCommandLine, CheckAndExplainAcceptEveryExample) {
  std::string dir = std::string(ENCLOSURE_SOURCE_DIR) + "/examples/";
  std::string files =
      dir + "coding-agent.json " + dir + "data-agent.json " + dir + "browsing-agent.json";
  EXPECT_EQ(run_binary("check " + files), 0);
  EXPECT_EQ(run_binary("check --context customer_id=1042 " + dir + "data-agent.json"), 0);
  EXPECT_EQ(run_binary("check --context customer_id=x/y " + dir + "data-agent.json"), 2);
  for (const char* name : {"coding-agent.json", "data-agent.json", "browsing-agent.json"}) {
    EXPECT_EQ(run_binary("explain " + dir + name), 0) << name;
  }
}

}  // namespace
