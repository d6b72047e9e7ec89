// tools[].tree: a directory whose every regular file is the tool. The loader accepts it only
// inside a read or write grant; the plan mounts write grants and tmpfs noexec except a tree's
// directory, gives Landlock execute to the tree's whole hierarchy, and explain, diff and the
// daemon's plan carry it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/bpf_plan.h"
#include "policy/compile.h"
#include "policy/diff.h"
#include "policy/explain.h"
#include "policy/load.h"

namespace {

using nlohmann::json;
using policy::MountKind;

json doc_with(const json& filesystem, const json& tree_tool) {
  json tools = json::array({{{"name", "sh"}, {"path", "/usr/bin/sh"}}});
  tools.push_back(tree_tool);
  return {{"apiVersion", "enclosure/v1"},
          {"metadata", {{"name", "tree-test"}}},
          {"filesystem", filesystem},
          {"tools", tools}};
}

policy::LoadResult load(const json& doc) {
  return policy::load_manifest(doc.dump());
}

std::string errors_of(const policy::LoadResult& r) {
  std::string out;
  for (const policy::Diagnostic& d : r.diagnostics.errors())
    out += d.path + ": " + d.message + "\n";
  return out;
}

const json kWrite = {{"read", {"/usr"}}, {"write", {"/srv/repo"}}, {"tmpfs", {"/tmp"}}};

policy::EnforcementPlan plan_of(const json& doc) {
  policy::LoadResult r = load(doc);
  EXPECT_TRUE(r.manifest) << errors_of(r);
  policy::CompileResult c = policy::compile(*r.manifest);
  EXPECT_TRUE(c.plan) << c.error;
  return c.plan ? *c.plan : policy::EnforcementPlan{};
}

const policy::MountStep* step_at(const policy::EnforcementPlan& plan, const std::string& path) {
  for (const policy::MountStep& s : plan.mounts.steps) {
    if (s.path == path) return &s;
  }
  return nullptr;
}

}  // namespace

TEST(ManifestTreeTool, LoadsWithDefaultFalse) {
  policy::LoadResult r =
      load(doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo/build"}, {"tree", true}}));
  ASSERT_TRUE(r.manifest) << errors_of(r);
  EXPECT_FALSE(r.manifest->tools[0].tree);
  EXPECT_TRUE(r.manifest->tools[1].tree);
  EXPECT_EQ(r.manifest->document["tools"][1]["tree"], true);
}

TEST(ManifestTreeTool, RefusesANonBooleanTree) {
  policy::LoadResult r =
      load(doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo"}, {"tree", "yes"}}));
  EXPECT_FALSE(r.manifest);
  EXPECT_NE(errors_of(r).find("/tools/1/tree"), std::string::npos) << errors_of(r);
}

TEST(ManifestTreeTool, MustLieInsideAReadOrWriteGrant) {
  for (const char* outside : {"/opt/bin", "/tmp/build", "/tmp"}) {
    policy::LoadResult r =
        load(doc_with(kWrite, {{"name", "ws"}, {"path", outside}, {"tree", true}}));
    EXPECT_FALSE(r.manifest) << outside;
    EXPECT_NE(errors_of(r).find("/tools/1/path"), std::string::npos) << errors_of(r);
  }
  // Inside a read grant (a toolchain directory) and as the write grant itself: accepted.
  for (const char* inside : {"/usr/lib/toolchain", "/srv/repo"}) {
    policy::LoadResult r =
        load(doc_with(kWrite, {{"name", "ws"}, {"path", inside}, {"tree", true}}));
    EXPECT_TRUE(r.manifest) << inside << "\n" << errors_of(r);
  }
  // "/" is never a tree.
  EXPECT_FALSE(
      load(doc_with({{"read", {"/"}}}, {{"name", "ws"}, {"path", "/"}, {"tree", true}})).manifest);
}

TEST(ManifestTreeTool, WriteGrantsAndTmpfsAreNoexecExceptTheTree) {
  auto plain = plan_of(doc_with(kWrite, {{"name", "cat"}, {"path", "/usr/bin/cat"}}));
  ASSERT_TRUE(step_at(plain, "/srv/repo"));
  EXPECT_TRUE(step_at(plain, "/srv/repo")->noexec);
  EXPECT_TRUE(step_at(plain, "/tmp")->noexec);
  EXPECT_FALSE(step_at(plain, "/usr")->noexec);

  // A tree deeper in the write grant: its own writable, exec bind after the grant.
  auto deeper =
      plan_of(doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo/build"}, {"tree", true}}));
  const policy::MountStep* tree = step_at(deeper, "/srv/repo/build");
  ASSERT_TRUE(tree);
  EXPECT_EQ(tree->kind, MountKind::bind_write);
  EXPECT_FALSE(tree->noexec);
  EXPECT_EQ(tree->origin, "/tools/1/path");
  EXPECT_TRUE(step_at(deeper, "/srv/repo")->noexec);
  size_t grant_at = 0, tree_at = 0;
  for (size_t i = 0; i < deeper.mounts.steps.size(); ++i) {
    if (deeper.mounts.steps[i].path == "/srv/repo") grant_at = i;
    if (deeper.mounts.steps[i].path == "/srv/repo/build") tree_at = i;
  }
  EXPECT_LT(grant_at, tree_at);
  ASSERT_EQ(deeper.tools.size(), 2u);
  EXPECT_TRUE(deeper.tools[1].tree);

  // The tree is the write grant: that grant is exec, nothing is added.
  auto same = plan_of(doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo"}, {"tree", true}}));
  EXPECT_FALSE(step_at(same, "/srv/repo")->noexec);
  EXPECT_EQ(same.mounts.steps.size(), plain.mounts.steps.size());

  // Inside a read grant: no mount step at all.
  auto read =
      plan_of(doc_with(kWrite, {{"name", "ws"}, {"path", "/usr/lib/toolchain"}, {"tree", true}}));
  EXPECT_FALSE(step_at(read, "/usr/lib/toolchain"));
}

TEST(ManifestTreeTool, LandlockExecuteCoversTheDirectory) {
  auto plan =
      plan_of(doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo/build"}, {"tree", true}}));
  bool found = false;
  for (const policy::LandlockGrant& g : plan.landlock.grants) {
    if (g.path != "/srv/repo/build") continue;
    found = true;
    EXPECT_TRUE(g.directory);
    EXPECT_EQ(g.access, policy::kLandlockRead | policy::kLandlockExecute);
    EXPECT_EQ(g.origin, "/tools/1/path");
  }
  EXPECT_TRUE(found);
  for (const policy::LandlockGrant& g : plan.landlock.grants) {
    if (g.path == "/usr/bin/sh") EXPECT_FALSE(g.directory);
  }
}

TEST(ManifestTreeTool, ExplainDiffAndTheDaemonPlanShowIt) {
  json with_tree = doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo"}, {"tree", true}});
  json without = doc_with(kWrite, {{"name", "ws"}, {"path", "/srv/repo"}});
  policy::Manifest a = *load(without).manifest;
  policy::Manifest b = *load(with_tree).manifest;

  EXPECT_EQ(policy::explain_json(b)["tools"][1]["tree"], true);
  EXPECT_EQ(policy::explain_json(a)["tools"][1]["tree"], false);
  std::string text = policy::explain_text(b);
  EXPECT_NE(text.find("every file under the directory"), std::string::npos) << text;
  EXPECT_NE(text.find("noexec"), std::string::npos) << text;

  auto widened = policy::diff_manifests(a, b);
  EXPECT_TRUE(policy::widens(widened));
  EXPECT_NE(policy::diff_text(widened).find("tree"), std::string::npos)
      << policy::diff_text(widened);
  auto narrowed = policy::diff_manifests(b, a);
  EXPECT_FALSE(policy::widens(narrowed)) << policy::diff_text(narrowed);
  EXPECT_TRUE(policy::differs(narrowed));

  policy::EnforcementPlan plan = plan_of(with_tree);
  std::string why;
  auto back = policy::bpf_plan_from_json(policy::bpf_plan_to_json(plan), why);
  ASSERT_TRUE(back) << why;
  ASSERT_EQ(back->tools.size(), 2u);
  EXPECT_FALSE(back->tools[0].tree);
  EXPECT_TRUE(back->tools[1].tree);
}
