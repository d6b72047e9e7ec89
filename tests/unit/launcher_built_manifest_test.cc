// Manifests the launcher builds itself — `enclosure learn`'s observation manifest and the
// manifest it learns — always load: a working directory or a path a manifest cannot name is a
// clear error or is left out, never an invalid manifest the user has to debug.
#include <gtest/gtest.h>

#include "policy/compile.h"
#include "policy/learn.h"
#include "policy/load.h"
#include "policy/observation_manifest.h"

namespace {

// The working directories and commands a user may start `learn` from: the root, /tmp and
// inside it, system trees, pseudo file systems, and spellings a manifest cannot hold.
const std::vector<std::string> kDirectories = {"/",
                                               "/tmp",
                                               "/tmp/work",
                                               "/tmp/a b",
                                               "/var/tmp/x",
                                               "/root",
                                               "/home/alice",
                                               "/srv/repos/agent",
                                               "/usr",
                                               "/usr/src/linux",
                                               "/etc",
                                               "/proc",
                                               "/proc/self",
                                               "/sys/fs",
                                               "/dev",
                                               "/dev/shm",
                                               "/run/user/1000",
                                               "/tmp/${x}",
                                               "/tmp/\xff",
                                               "/tmp/t\x01",
                                               "/tmp/ü",
                                               std::string(300, 'a').insert(0, "/")};

void expect_loads_and_compiles(const nlohmann::json& manifest, const std::string& what) {
  policy::LoadResult loaded = policy::load_manifest(manifest.dump());
  for (const policy::Diagnostic& d : loaded.diagnostics.errors())
    ADD_FAILURE() << what << ": " << d.path << ": " << d.message << "\n" << manifest.dump(2);
  if (!loaded.manifest) return;
  policy::CompileResult compiled = policy::compile(*loaded.manifest);
  EXPECT_TRUE(compiled.plan) << what << ": " << compiled.error;
}

}  // namespace

TEST(ObservationManifest, LoadsFromEveryWorkingDirectoryOrSaysWhyNot) {
  for (const std::string& cwd : kDirectories) {
    policy::ObservationManifest o = policy::observation_manifest(cwd, "/usr/bin/python3", "10m");
    if (!o.error.empty()) {
      EXPECT_NE(o.error.find(cwd.substr(0, 20)), std::string::npos) << o.error;
      continue;
    }
    expect_loads_and_compiles(o.manifest, "cwd " + cwd);
  }
}

TEST(ObservationManifest, AWorkingDirectoryInTmpIsWritableAndNotHiddenByATmpfs) {
  policy::ObservationManifest o = policy::observation_manifest("/tmp/work", "/usr/bin/true", "1m");
  ASSERT_EQ(o.error, "");
  EXPECT_EQ(o.manifest["filesystem"]["write"], nlohmann::json::array({"/tmp/work"}));
  EXPECT_FALSE(o.manifest["filesystem"].contains("tmpfs"));
  o = policy::observation_manifest("/srv/work", "/usr/bin/true", "1m");
  EXPECT_EQ(o.manifest["filesystem"]["tmpfs"], nlohmann::json::array({"/tmp"}));
}

TEST(ObservationManifest, UnnameablePathsAndBadTimeoutsAreErrorsNamingThem) {
  EXPECT_NE(policy::observation_manifest("/tmp/${x}", "/usr/bin/true", "1m").error.find("${"),
            std::string::npos);
  EXPECT_NE(policy::observation_manifest("/tmp/\xff", "/usr/bin/true", "1m").error.find("UTF-8"),
            std::string::npos);
  EXPECT_NE(policy::observation_manifest("/tmp", "/opt/${y}/tool", "1m").error.find("command"),
            std::string::npos);
  EXPECT_NE(policy::observation_manifest("/tmp", "/usr/bin/true", "soon").error.find("--timeout"),
            std::string::npos);
}

TEST(LearnedManifest, LoadsWhateverPathsTheRunTouched) {
  for (const std::string& cwd : kDirectories) {
    policy::Observation o;
    o.command = {"tool"};
    o.command_path = "/usr/bin/python3";
    o.execs = {{"/usr/bin/python3", 1}, {cwd + "/built-tool", 1}};
    for (const std::string& p : kDirectories) {
      o.opens.push_back({p + "/file", false, false, true});
      o.opens.push_back({p + "/out/new", true, false, true});
    }
    o.cwd = cwd;
    o.created_dirs = {cwd + "/out"};
    o.duration_ns = 1'000'000'000;
    policy::LearnResult r = policy::learn_manifest(o, {2.0, "agent", "2026-12-03"}, std::nullopt);
    expect_loads_and_compiles(r.manifest, "learned from cwd " + cwd);
  }
}
