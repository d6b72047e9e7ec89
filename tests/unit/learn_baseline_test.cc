// `enclosure learn`'s synthesis of a least-privilege manifest, and behaviour baselines.
#include <gtest/gtest.h>

#include "policy/baseline.h"
#include "policy/learn.h"
#include "policy/load.h"

using policy::BaselineProfile;
using policy::Observation;

namespace {

Observation sample() {
  Observation o;
  o.command = {"python3", "/srv/work/agent.py"};
  o.command_path = "/usr/bin/python3";
  o.execs = {{"/usr/bin/python3", 1}, {"/usr/bin/git", 3}};
  o.opens = {{"/usr/lib/python3.11/os.py", false, false, true},
             {"/srv/work/agent.py", false, false, true},
             {"/srv/work/input/a.txt", false, false, true},
             {"/srv/work/out/report.md", true, false, true},
             {"/root/.ssh/id_rsa", false, false, true},
             {"/home/alice/.aws/credentials", false, false, true},
             {"/proc/self/status", false, false, true},
             {"/tmp/scratch.txt", true, false, true},
             {"/etc/ssl/certs/ca.pem", false, false, true},
             {"/etc/hostname", false, false, true},
             {"/does/not/exist", false, false, false}};
  o.connects = {{"127.0.0.1", 8080, policy::Protocol::tcp, ""},
                {"10.1.2.3", 443, policy::Protocol::tcp, "api.example.com"},
                {"10.1.2.3", 8443, policy::Protocol::tcp, "api.example.com"}};
  o.dns_names = {"api.example.com"};
  o.syscalls = {"read", "write", "openat", "getppid", "ptrace"};
  o.syscall_count = 123456;
  o.duration_ns = 2'500'000'000ULL;
  o.cpu_ns = 800'000'000ULL;
  o.peak_processes = 5;
  o.peak_memory_bytes = 50ULL << 20;
  o.cwd = "/srv/work";
  o.profile.peaks = {{"syscalls", 5000}, {"opens", 40}, {"connects", 2}, {"execs", 3}};
  return o;
}

}  // namespace

TEST(Learn, LearnedManifestPassesCheckAndIsLeastPrivilege) {
  policy::LearnResult r =
      policy::learn_manifest(sample(), {2.0, "agent", "2026-11-28"}, std::nullopt);
  policy::LoadResult loaded = policy::load_manifest(r.manifest.dump());
  for (const auto& d : loaded.diagnostics.errors())
    ADD_FAILURE() << d.path << ": " << d.message << "\n" << r.manifest.dump(2);
  ASSERT_TRUE(loaded.manifest);
  const policy::Manifest& m = *loaded.manifest;
  // System trees whole; data by directory; writes by directory; /tmp as tmpfs.
  EXPECT_NE(std::find(m.filesystem.read.begin(), m.filesystem.read.end(), "/usr"),
            m.filesystem.read.end());
  // agent.py was read from /srv/work itself, so /srv/work/input is covered by that grant.
  EXPECT_NE(std::find(m.filesystem.read.begin(), m.filesystem.read.end(), "/srv/work"),
            m.filesystem.read.end());
  EXPECT_EQ(std::find(m.filesystem.read.begin(), m.filesystem.read.end(), "/srv/work/input"),
            m.filesystem.read.end());
  EXPECT_NE(std::find(m.filesystem.read.begin(), m.filesystem.read.end(), "/etc/ssl/certs"),
            m.filesystem.read.end());
  // Never /etc or a home directory as a whole: the file itself.
  EXPECT_NE(std::find(m.filesystem.read.begin(), m.filesystem.read.end(), "/etc/hostname"),
            m.filesystem.read.end());
  for (const std::string& p : m.filesystem.read) {
    EXPECT_NE(p, "/");
    EXPECT_NE(p, "/etc");
    EXPECT_EQ(p.find(".ssh"), std::string::npos);
    EXPECT_EQ(p.find(".aws"), std::string::npos);
    EXPECT_EQ(p.rfind("/proc", 0), std::string::npos);
  }
  EXPECT_EQ(m.filesystem.write, std::vector<std::string>{"/srv/work/out"});
  EXPECT_EQ(m.filesystem.tmpfs, std::vector<std::string>{"/tmp"});
  // Secrets were flagged and said so.
  EXPECT_EQ(r.flagged.size(), 2u);
  EXPECT_NE(m.metadata.reason.find("/root/.ssh/id_rsa"), std::string::npos);
  // Tools: the command and what it ran, with headroom on the calls beyond the first.
  ASSERT_EQ(m.tools.size(), 2u);
  EXPECT_EQ(m.tools[0].path, "/usr/bin/python3");
  EXPECT_EQ(*m.find_tool("git")->max_calls, 6u);
  // Network: by name where resolved, by address otherwise.
  ASSERT_EQ(m.network.mode, policy::NetworkMode::filtered);
  EXPECT_TRUE(m.network.dns);
  ASSERT_EQ(m.network.egress.size(), 2u);
  bool host = false, cidr = false;
  for (const auto& e : m.network.egress) {
    if (e.is_host() && e.host == "api.example.com") host = e.ports.size() == 2;
    if (!e.is_host() && e.cidr_text == "127.0.0.1/32") cidr = true;
  }
  EXPECT_TRUE(host);
  EXPECT_TRUE(cidr);
  // Strict profile, plus what it lacked.
  EXPECT_EQ(m.syscalls.profile, "strict");
  EXPECT_EQ(m.syscalls.allow, std::vector<std::string>{"ptrace"});
  // Budgets at observed x headroom.
  EXPECT_EQ(*m.budgets.wall_clock_ns, 6'000'000'000ULL);
  EXPECT_EQ(*m.budgets.processes, 10u);
  EXPECT_EQ(*m.budgets.memory_bytes, 100ULL << 20);
  EXPECT_EQ(*m.budgets.syscalls, 246912u);
  EXPECT_EQ(m.process.cwd, "/srv/work");
}

TEST(Learn, BaseKeepsMetadataAndWhatTheRunDidNotExercise) {
  auto base = policy::load_manifest(R"({"apiVersion":"enclosure/v1",
    "metadata":{"name":"agent","revision":4,"approved_by":"sec@example.com"},
    "filesystem":{"read":["/usr","/data"]},
    "tools":[{"name":"python3","path":"/usr/bin/python3"}],
    "network":{"mode":"filtered","egress":[{"cidr":"10.0.0.0/8","ports":[5432]}]}})");
  ASSERT_TRUE(base.manifest);
  Observation o = sample();
  o.connects.clear();
  policy::LearnResult r = policy::learn_manifest(o, {}, base.manifest);
  policy::LoadResult loaded = policy::load_manifest(r.manifest.dump());
  for (const auto& d : loaded.diagnostics.errors())
    ADD_FAILURE() << d.path << ": " << d.message;
  ASSERT_TRUE(loaded.manifest);
  EXPECT_EQ(loaded.manifest->metadata.name, "agent");
  EXPECT_EQ(*loaded.manifest->metadata.revision, 5);
  EXPECT_EQ(loaded.manifest->metadata.approved_by, "sec@example.com");
  ASSERT_EQ(loaded.manifest->network.egress.size(), 1u);
  EXPECT_EQ(loaded.manifest->network.egress[0].cidr_text, "10.0.0.0/8");
}

TEST(Learn, WorkingDirectoryUnderTmpStaysARealGrant) {
  Observation o = sample();
  o.cwd = "/tmp/job";
  o.opens = {{"/tmp/job/data/a.txt", false, false, true},
             {"/tmp/job/out/new/report.md", true, false, true},
             {"/tmp/scratch.txt", true, false, true}};
  o.created_dirs = {"/tmp/job/out", "/tmp/job/out/new"};
  policy::LearnResult r = policy::learn_manifest(o, {2.0, "agent", "2026-11-28"}, std::nullopt);
  const nlohmann::json& fs = r.manifest["filesystem"];
  // Scratch under /tmp is a tmpfs; the job's files are real grants; directories the run
  // created are granted through the ancestor that existed.
  EXPECT_EQ(fs["tmpfs"], nlohmann::json::array({"/tmp"})) << fs.dump();
  EXPECT_EQ(fs["write"], nlohmann::json::array({"/tmp/job"})) << fs.dump();
  EXPECT_EQ(r.manifest["process"]["cwd"], "/tmp/job");
}

TEST(Learn, SecretLookingPaths) {
  for (const char* p :
       {"/home/a/.ssh/config", "/root/.aws/config", "/home/a/.netrc", "/x/id_rsa", "/x/id_rsa.pub",
        "/srv/.env", "/etc/shadow", "/home/a/.config/gcloud/creds.db"}) {
    EXPECT_TRUE(policy::looks_secret(p)) << p;
  }
  for (const char* p : {"/usr/lib/x.py", "/srv/work/env.txt", "/data/sshd_notes"})
    EXPECT_FALSE(policy::looks_secret(p)) << p;
}

TEST(Baseline, ProfileRoundTripsAndIsStrict) {
  BaselineProfile p;
  p.peaks = {{"syscalls", 100}, {"opens", 5}};
  p.syscalls = {"read", "write"};
  policy::Diagnostics d;
  auto back = policy::parse_baseline_profile(p.to_json().dump(), d);
  ASSERT_TRUE(back) << (d.ok() ? "" : d.errors()[0].message);
  EXPECT_EQ(back->peaks, p.peaks);
  EXPECT_EQ(back->syscalls, p.syscalls);
  policy::Diagnostics bad;
  EXPECT_FALSE(policy::parse_baseline_profile(
      R"({"version":1,"peaks":{"sockets":3,"opens":-1},"syscalls":["read","nosuchcall"],"extra":1})",
      bad));
  std::set<std::string> paths;
  for (const auto& e : bad.errors())
    paths.insert(e.path);
  EXPECT_EQ(paths,
            (std::set<std::string>{"/peaks/sockets", "/peaks/opens", "/syscalls/1", "/extra"}));
}

TEST(Baseline, RateAboveToleranceAndNewSyscallsAreAnomalies) {
  BaselineProfile p;
  p.peaks = {{"opens", 10}, {"connects", 0}};
  p.syscalls = {"read", "openat"};
  std::set<std::string> reported;
  policy::BaselineWindow quiet{{{"opens", 30}, {"connects", 0}}, {"read", "openat"}};
  EXPECT_TRUE(policy::check_baseline_window(p, 3.0, quiet, reported).empty());
  policy::BaselineWindow burst{{{"opens", 100}, {"connects", 1}}, {"read", "openat", "ptrace"}};
  auto a = policy::check_baseline_window(p, 3.0, burst, reported);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].metric, "connects");
  EXPECT_EQ(a[1].metric, "opens");
  EXPECT_EQ(a[1].value, 100u);
  EXPECT_DOUBLE_EQ(a[1].limit, 30.0);
  EXPECT_EQ(a[2].what, "syscall");
  EXPECT_EQ(a[2].metric, "ptrace");
  // A new syscall is reported once.
  EXPECT_EQ(policy::check_baseline_window(p, 3.0, burst, reported).size(), 2u);
}
