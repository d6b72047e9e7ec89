// Refusals of the mount view (EROFS), Landlock (EACCES, EXDEV) and noexec mounts (EACCES) are
// `deny` events, like seccomp's: the eBPF sys_exit program sees the agent's file or exec syscall
// fail and reports its name, path(s) and errno, with the grant the path lies in. A refused read
// (a hidden path's ENOENT, a read the file's mode refuses) is not reported, nor is anything a
// process outside the enclosure does, nor the launcher's own set-up; seccomp's own EPERM answers
// stay seccomp's deny events, not a second one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

using harness::BackgroundRun;
using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

constexpr uid_t kAgentUid = 65534;
// base_manifest reads /usr, /lib, /lib64 and /bin: the test's read grant comes after them.
const std::string kReadGrant = "/filesystem/read/4";

// dir/ro (a read grant) with doc.txt, owned by the agent, and secret.txt (root's, 0600);
// dir/rw1 and dir/rw2 (two write grants) with rw1/moving.txt; dir/outside (no grant: not in the
// agent's view).
json refusal_manifest(const TempDir& dir) {
  std::string doc = dir.write("ro/doc.txt", "read-only document\n", 0666);
  dir.write("ro/secret.txt", "root's\n", 0600);
  ::chmod(dir.file("ro").c_str(), 0777);
  EXPECT_EQ(::chown(doc.c_str(), kAgentUid, kAgentUid), 0);
  ::chmod(dir.write("rw1/moving.txt", "x", 0666).c_str(), 0666);
  ::chmod(dir.file("rw1").c_str(), 0777);
  ::chmod(dir.write("rw2/.keep", "", 0666).c_str(), 0666);
  ::chmod(dir.file("rw2").c_str(), 0777);
  dir.write("outside/secret.txt", "secret\n");
  json m = base_manifest("refusals", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("ro"));
  m["filesystem"]["write"] = {dir.file("rw1"), dir.file("rw2")};
  return m;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The deny event of one of `syscalls` whose path ends with `path_suffix`.
std::optional<json> deny_of(const RunResult& r, const std::vector<std::string>& syscalls,
                            const std::string& path_suffix) {
  for (const json& e : r.of_type("deny")) {
    for (const std::string& s : syscalls) {
      if (e.value("syscall", "") == s && ends_with(e.value("path", ""), path_suffix)) return e;
    }
  }
  return std::nullopt;
}

bool any_deny_mentions(const RunResult& r, const std::string& needle) {
  for (const json& e : r.of_type("deny")) {
    if (e.dump().find(needle) != std::string::npos) return true;
  }
  return false;
}

// A deny of the filesystem section, of the grant `origin`, whose action is the errno the agent
// saw for `op`.
void expect_filesystem_deny(const RunResult& r, const json& res, const std::string& op,
                            const std::vector<std::string>& syscalls, const std::string& path,
                            const std::string& origin) {
  SCOPED_TRACE(op);
  std::optional<json> d = deny_of(r, syscalls, path);
  ASSERT_TRUE(d) << "no deny event for " << op << " (" << res[op] << ")\n" << r.describe();
  EXPECT_EQ((*d)["section"], "filesystem") << *d;
  EXPECT_EQ((*d)["origin"], origin) << *d;
  EXPECT_EQ((*d)["action"], res[op]) << *d;
  EXPECT_FALSE((*d).value("reason", "").empty()) << *d;
}

bool is_refusal_errno(const json& v) {
  return v == "EROFS" || v == "EACCES" || v == "EPERM" || v == "EXDEV";
}

// In a child of uid 65534 in the host's cgroup: a write open, a chmod, an unlink and a rename of
// root's `file` (0644, in a root-owned directory), which all fail. Returns how many succeeded,
// or -1 when the child could not run.
int host_refusals(const std::string& file, const std::string& moved) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::setgid(kAgentUid) != 0 || ::setuid(kAgentUid) != 0) ::_exit(100);
    int succeeded = 0;
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    succeeded += fd >= 0;
    succeeded += ::chmod(file.c_str(), 0600) == 0;
    succeeded += ::unlink(file.c_str()) == 0;
    succeeded += ::rename(file.c_str(), moved.c_str()) == 0;
    ::_exit(succeeded);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status) == 100 ? -1 : WEXITSTATUS(status);
}

const char* const kRefusingAgent = R"(
import shutil, subprocess
ro, rw1, rw2, outside = A
doc = ro + "/doc.txt"
t("write", lambda: os.close(os.open(doc, os.O_WRONLY)))
t("rename", lambda: os.rename(rw1 + "/moving.txt", ro + "/moved.txt"))
t("link", lambda: os.link(rw1 + "/moving.txt", ro + "/linked.txt"))
t("rename_across_writes", lambda: os.rename(rw1 + "/moving.txt", rw2 + "/moved.txt"))
t("chmod", lambda: os.chmod(doc, 0o600))
t("chown", lambda: os.chown(doc, 65534, 65534))
t("truncate", lambda: os.truncate(doc, 0))
t("setxattr", lambda: os.setxattr(doc, "user.enclosure", b"x"))
t("utime", lambda: os.utime(doc, (1, 1)))
t("unlink", lambda: os.unlink(doc))
shutil.copy("/usr/bin/true", rw1 + "/true-copy")
t("exec", lambda: subprocess.run([rw1 + "/true-copy"]).returncode)
t("hidden_read", lambda: open(outside + "/secret.txt").read())
t("denied_read", lambda: open(ro + "/secret.txt").read())
)";

}  // namespace

TEST(RunRefusalEvents, EveryFileAndExecRefusalIsADenyEventWithItsSyscallPathErrnoAndGrant) {
  TempDir dir;
  json m = refusal_manifest(dir);
  RunResult r = run_enclosure(dir, m,
                              python_agent(kRefusingAgent, {dir.file("ro"), dir.file("rw1"),
                                                            dir.file("rw2"), dir.file("outside")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* op :
       {"write", "rename", "link", "chmod", "chown", "truncate", "setxattr", "utime", "unlink"}) {
    EXPECT_TRUE(is_refusal_errno(res[op])) << op << ": " << res;
  }
  EXPECT_EQ(res["rename_across_writes"], "EXDEV") << res;
  EXPECT_EQ(res["exec"], "EACCES") << res;
  EXPECT_EQ(res["hidden_read"], "ENOENT") << res;
  EXPECT_EQ(res["denied_read"], "EACCES") << res;

  expect_filesystem_deny(r, res, "write", {"openat", "open"}, "/ro/doc.txt", kReadGrant);
  if (auto d = deny_of(r, {"openat", "open"}, "/ro/doc.txt")) {
    EXPECT_EQ((*d)["flags"].get<std::string>().find("O_WRONLY"), 0u) << *d;
  }
  // From a write grant into the read grant: the path's grant, and the new path's.
  expect_filesystem_deny(r, res, "rename", {"rename", "renameat", "renameat2"}, "/rw1/moving.txt",
                         "/filesystem/write/0");
  for (const char* op : {"rename", "link"}) {
    std::vector<std::string> calls =
        std::string(op) == "rename" ? std::vector<std::string>{"rename", "renameat", "renameat2"}
                                    : std::vector<std::string>{"link", "linkat"};
    std::string target = std::string(op) == "rename" ? "moved.txt" : "linked.txt";
    std::optional<json> d;
    for (const json& e : r.of_type("deny")) {
      if (ends_with(e.value("new_path", ""), "/ro/" + target)) d = e;
    }
    ASSERT_TRUE(d) << op << "\n" << r.describe();
    EXPECT_NE(std::find(calls.begin(), calls.end(), (*d)["syscall"]), calls.end()) << *d;
    EXPECT_EQ((*d)["origin"], "/filesystem/write/0") << *d;
    EXPECT_EQ((*d)["new_origin"], kReadGrant) << *d;
    EXPECT_EQ((*d)["action"], res[op]) << *d;
  }
  std::optional<json> across = std::nullopt;
  for (const json& e : r.of_type("deny")) {
    if (ends_with(e.value("new_path", ""), "/rw2/moved.txt")) across = e;
  }
  ASSERT_TRUE(across) << r.describe();
  EXPECT_EQ((*across)["action"], "EXDEV") << *across;
  EXPECT_EQ((*across)["new_origin"], "/filesystem/write/1") << *across;

  expect_filesystem_deny(r, res, "chmod", {"chmod", "fchmodat", "fchmodat2"}, "/ro/doc.txt",
                         kReadGrant);
  expect_filesystem_deny(r, res, "chown", {"chown", "lchown", "fchownat"}, "/ro/doc.txt",
                         kReadGrant);
  expect_filesystem_deny(r, res, "truncate", {"truncate", "open", "openat"}, "/ro/doc.txt",
                         kReadGrant);
  expect_filesystem_deny(r, res, "setxattr", {"setxattr", "lsetxattr"}, "/ro/doc.txt", kReadGrant);
  expect_filesystem_deny(r, res, "utime", {"utimensat", "utime", "utimes"}, "/ro/doc.txt",
                         kReadGrant);
  expect_filesystem_deny(r, res, "unlink", {"unlink", "unlinkat"}, "/ro/doc.txt", kReadGrant);

  std::optional<json> exec = deny_of(r, {"execve", "execveat"}, "/rw1/true-copy");
  ASSERT_TRUE(exec) << r.describe();
  EXPECT_EQ((*exec)["section"], "tools") << *exec;
  EXPECT_EQ((*exec)["origin"], "/tools") << *exec;
  EXPECT_EQ((*exec)["action"], "EACCES") << *exec;
  EXPECT_NE((*exec)["reason"].get<std::string>().find("not a tool"), std::string::npos) << *exec;

  // Refused reads (a hidden path's ENOENT, the mode's EACCES) are not reported.
  EXPECT_FALSE(any_deny_mentions(r, "/outside")) << r.describe();
  EXPECT_FALSE(any_deny_mentions(r, "secret.txt")) << r.describe();

  // exit.denials counts them, and every one has its deny event (none were lost or suppressed).
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["denials"], r.of_type("deny").size()) << exit->dump();
  EXPECT_EQ((*exit)["budgets"]["kernel_events"]["file_and_exec_refusals"], r.of_type("deny").size())
      << exit->dump();
  auto start = r.first("start");
  ASSERT_TRUE(start) << r.describe();
  EXPECT_EQ((*start)["enforcement"]["bpf"]["programs"]["refusals"], "tp_btf/sys_exit") << *start;
}

TEST(RunRefusalEvents, RefusalsOfProcessesOutsideTheEnclosureAreNotReported) {
  TempDir dir;
  json m = refusal_manifest(dir);
  // The agent waits for the host's refusals, then makes one of its own (the program works).
  BackgroundRun run(dir, m,
                    python_agent(R"(
import time
print("ready", flush=True)
time.sleep(2)
t("write", lambda: os.close(os.open(A[0] + "/doc.txt", os.O_WRONLY)))
)",
                                 {dir.file("ro")}));
  ASSERT_EQ(run.read_line(30000), "ready");
  // The same refusals, on the host, by a process of uid 65534 outside the enclosure.
  std::string host_file = dir.write("host/refusal-host.txt", "root's\n", 0644);
  EXPECT_EQ(host_refusals(host_file, dir.file("host/refusal-host-moved.txt")), 0);
  RunResult r = run.wait();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_TRUE(deny_of(r, {"openat", "open"}, "/ro/doc.txt")) << r.describe();
  EXPECT_FALSE(any_deny_mentions(r, "refusal-host")) << r.describe();
}

TEST(RunRefusalEvents, ACleanRunHasNoDenyEventsFromTheLaunchersOwnSetUp) {
  TempDir dir;
  json m = base_manifest("refusals-clean", {"/usr/bin/true"});
  m["filesystem"]["write"] = {dir.path()};
  RunResult r = run_enclosure(dir, m, {"/usr/bin/true"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(r.of_type("deny").empty()) << r.describe();
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["denials"], 0) << exit->dump();
}

TEST(RunRefusalEvents, SeccompsOwnRefusalOfAFileCallIsOneDenyEventNotTwo) {
  TempDir dir;
  json m = refusal_manifest(dir);
  m["syscalls"] = {{"profile", "default"}, {"deny", {"chmod"}}};
  RunResult r = run_enclosure(dir, m,
                              python_agent(R"(
t("chmod", lambda: sc(90, (A[0] + "/doc.txt").encode(), 0o600))
)",
                                           {dir.file("rw1")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["chmod"], -EPERM) << res;
  std::vector<json> denies = r.of_type("deny");
  ASSERT_EQ(denies.size(), 1u) << r.describe();
  EXPECT_EQ(denies[0]["section"], "syscalls") << denies[0];
  auto exit = r.first("exit");
  ASSERT_TRUE(exit) << r.describe();
  EXPECT_EQ((*exit)["denials"], 1) << exit->dump();
}
