// Nothing the agent writes can run: write grants and tmpfs are mounted noexec, so a copy of a
// binary there fails execve with EACCES, cannot be mapped executable (EPERM) and cannot be run
// through the dynamic loader either. A tool with "tree": true names a directory inside a write
// grant that alone is mounted exec: every regular file under it is that tool, and each exec of
// one is a call of it (counted, bounded by max_calls).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

// A world-writable directory on the host (the agent runs as uid 65534).
std::string open_dir(const TempDir& dir, const std::string& name) {
  std::string path = dir.file(name);
  std::filesystem::create_directories(path);
  ::chmod(path.c_str(), 0777);
  return path;
}

// base_manifest with python3 and the dynamic loader's program name resolved; `work` granted
// for writing and `tree` (inside it, when given) a tree tool named "ws".
nlohmann::json noexec_manifest(const std::string& work, const std::string& tree) {
  auto m = base_manifest("noexec", {"/usr/bin/python3"});
  m["filesystem"]["write"] = {work};
  if (!tree.empty()) m["tools"].push_back({{"name", "ws"}, {"path", tree}, {"tree", true}});
  return m;
}

// The agent's helpers: copy(src, dst) makes an executable copy; run(argv) is the exit code or
// the errno name of a failed execve; mmap_exec(path) maps the file PROT_READ|PROT_EXEC and
// answers "ok" or the errno's name.
const char* const kPrelude = R"(
import shutil, subprocess
def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)
def run(argv):
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
def mmap_exec(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        v = sc(9, 0, 4096, 1 | 4, 2, fd, 0)   # mmap(NULL, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE)
        if -4096 < v < 0:
            return errname(-v)
        sc(11, v, 4096)
        return "ok"
    finally:
        os.close(fd)
)";

constexpr const char* kLoader = "/lib64/ld-linux-x86-64.so.2";

std::vector<nlohmann::json> tool_calls(const RunResult& r, const std::string& tool) {
  std::vector<nlohmann::json> out;
  for (const auto& e : r.of_type("tool_call")) {
    if (e.value("tool", "") == tool) out.push_back(e);
  }
  return out;
}

}  // namespace

// "after": a copy of /usr/bin/true into the write grant or the tmpfs is not runnable by any
// route.
TEST(RunNoexec, WrittenFilesNeverRunNorMapExecutable) {
  TempDir dir;
  std::string work = open_dir(dir, "work");
  auto m = noexec_manifest(work, "");
  auto r = run_enclosure(dir, m,
                         python_agent(std::string(kPrelude) + R"(
W = A[0]
t("copy_work", lambda: copy("/usr/bin/true", W + "/t"))
t("copy_tmp", lambda: copy("/usr/bin/true", "/tmp/t"))
t("exec_work", lambda: run([W + "/t"]))
t("exec_tmp", lambda: run(["/tmp/t"]))
t("mmap_work", lambda: mmap_exec(W + "/t"))
t("mmap_tmp", lambda: mmap_exec("/tmp/t"))
t("mmap_tool", lambda: mmap_exec("/usr/bin/python3"))
t("loader_work", lambda: run([A[1], W + "/t"]))
t("loader_tmp", lambda: run([A[1], "/tmp/t"]))
)",
                                      {work, kLoader}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["copy_work"], "ok") << r.out;
  EXPECT_EQ(res["copy_tmp"], "ok") << r.out;
  EXPECT_EQ(res["exec_work"], "EACCES") << r.out;
  EXPECT_EQ(res["exec_tmp"], "EACCES") << r.out;
  // The noexec mount refuses the executable mapping itself, whatever Landlock says.
  EXPECT_EQ(res["mmap_work"], "EPERM") << r.out;
  EXPECT_EQ(res["mmap_tmp"], "EPERM") << r.out;
  EXPECT_EQ(res["mmap_tool"], "ok") << r.out;
  // The dynamic loader as a program: refused (EACCES, or killed at its exec), never 0.
  EXPECT_NE(res["loader_work"], 0) << r.out;
  EXPECT_NE(res["loader_tmp"], 0) << r.out;
  // The files really were written on the host: the refusal is not their absence.
  EXPECT_TRUE(std::filesystem::exists(work + "/t"));
}

// "not before": the same binary copied into the tree runs and is a call of the tree tool; the
// copy next to it, outside the tree, still does not run.
TEST(RunNoexec, TreeToolRunsWhatTheAgentBuildsThereAndCountsEachExec) {
  TempDir dir;
  std::string work = open_dir(dir, "work");
  std::string tree = open_dir(dir, "work/tree");
  auto m = noexec_manifest(work, tree);
  auto r = run_enclosure(dir, m,
                         python_agent(std::string(kPrelude) + R"(
W, T = A[0], A[1]
t("copy_tree", lambda: copy("/usr/bin/true", T + "/t"))
t("copy_nested", lambda: copy("/usr/bin/true", T + "/sub/deeper/t"))
t("copy_outside", lambda: copy("/usr/bin/true", W + "/t"))
t("exec_tree", lambda: run([T + "/t"]))
t("exec_tree_again", lambda: run([T + "/t"]))
t("exec_nested", lambda: run([T + "/sub/deeper/t"]))
t("exec_outside", lambda: run([W + "/t"]))
t("mmap_tree", lambda: mmap_exec(T + "/t"))
t("mmap_outside", lambda: mmap_exec(W + "/t"))
t("write_tree", lambda: open(T + "/notes.txt", "w").write("x") and None)
)",
                                      {work, tree}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["copy_tree"], "ok") << r.out;
  EXPECT_EQ(res["copy_nested"], "ok") << r.out;
  EXPECT_EQ(res["copy_outside"], "ok") << r.out;
  EXPECT_EQ(res["exec_tree"], 0) << r.out;
  EXPECT_EQ(res["exec_tree_again"], 0) << r.out;
  EXPECT_EQ(res["exec_nested"], 0) << r.out;
  EXPECT_EQ(res["exec_outside"], "EACCES") << r.out;
  EXPECT_EQ(res["mmap_tree"], "ok") << r.out;
  EXPECT_EQ(res["mmap_outside"], "EPERM") << r.out;
  EXPECT_EQ(res["write_tree"], "ok") << r.out;
  // Each exec under the tree is one call of the tree tool.
  auto calls = tool_calls(r, "ws");
  ASSERT_EQ(calls.size(), 3u) << r.describe();
  for (size_t i = 0; i < calls.size(); ++i)
    EXPECT_EQ(calls[i]["calls"], i + 1) << calls[i].dump();
}

// max_calls bounds the tree tool: the call past it is killed at its exec and ends the run.
TEST(RunNoexec, TreeToolCallPastMaxCallsIsKilled) {
  TempDir dir;
  std::string work = open_dir(dir, "work");
  std::string tree = open_dir(dir, "work/tree");
  auto m = noexec_manifest(work, tree);
  m["tools"][1]["max_calls"] = 2;
  auto r = run_enclosure(dir, m,
                         python_agent(std::string(kPrelude) + R"(
import time
copy("/usr/bin/true", A[0] + "/t")
for _ in range(4):
    print("CODE", run([A[0] + "/t"]), flush=True)
time.sleep(20)
)",
                                      {tree}));
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  auto budgets = r.of_type("budget");
  ASSERT_EQ(budgets.size(), 1u) << r.describe();
  EXPECT_EQ(budgets[0]["name"], "max_calls") << budgets[0].dump();
  EXPECT_EQ(budgets[0].value("tool", ""), "ws") << budgets[0].dump();
  EXPECT_EQ(budgets[0]["limit"], 2) << budgets[0].dump();
  EXPECT_EQ(budgets[0]["value"], 3) << budgets[0].dump();
  EXPECT_NE(r.out.find("CODE 0\nCODE 0\n"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("CODE 0\nCODE 0\nCODE 0"), std::string::npos) << r.describe();
}

// A regular tool whose file lies inside a (noexec) write grant still runs: it is bound over
// itself read-only and exec, so the agent cannot rewrite the program it is allowed to run.
TEST(RunNoexec, AToolFileInsideAWriteGrantRunsAndCannotBeRewritten) {
  TempDir dir;
  std::string work = open_dir(dir, "work");
  std::string tool = work + "/bin/true";
  std::filesystem::create_directories(work + "/bin");
  std::filesystem::copy_file("/usr/bin/true", tool);
  ::chmod(tool.c_str(), 0777);
  auto m = noexec_manifest(work, "");
  m["tools"].push_back({{"name", "mytrue"}, {"path", tool}});
  auto r = run_enclosure(dir, m,
                         python_agent(std::string(kPrelude) + R"(
t("exec_tool", lambda: run([A[0]]))
t("rewrite_tool", lambda: open(A[0], "wb").write(b"#!/bin/sh\n") and None)
t("copy_next_to_it", lambda: copy("/usr/bin/true", A[1] + "/true.copy"))
t("exec_copy", lambda: run([A[1] + "/true.copy"]))
)",
                                      {tool, work}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["exec_tool"], 0) << r.out;
  // Refused by the read-only bind (EROFS) or, before it, by the permission check (EACCES).
  EXPECT_TRUE(res["rewrite_tool"] == "EROFS" || res["rewrite_tool"] == "EACCES") << r.out;
  EXPECT_EQ(res["copy_next_to_it"], "ok") << r.out;
  EXPECT_EQ(res["exec_copy"], "EACCES") << r.out;
}
