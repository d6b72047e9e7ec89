// Tools are the agent's permissions: only the manifest's tools can be executed inside the
// enclosure, and a script runs only when its interpreter is a tool too.
#include <gtest/gtest.h>

#include <filesystem>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::TempDir;

namespace {

// The agent starts programs with posix_spawn-like subprocess and reports what happened: the
// exit code when it ran, or the errno name when execve failed.
const char* const kSpawn = R"(
import subprocess
def run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).returncode
)";

}  // namespace

TEST(RunTools, ExecOfANonToolIsDeniedWhileToolsRun) {
  TempDir dir;
  auto m = base_manifest("tools", {"/usr/bin/python3", "/usr/bin/sh", "/usr/bin/true"});
  auto r = run_enclosure(dir, m, python_agent(std::string(kSpawn) + R"(
R["id_visible"] = os.path.exists("/usr/bin/id")
t("id", lambda: run(["/usr/bin/id"]))
t("cat", lambda: run(["/usr/bin/cat", "/dev/null"]))
t("execv_id", lambda: os.execv("/usr/bin/id", ["id"]))
t("true", lambda: run(["/usr/bin/true"]))
t("sh", lambda: run(["/usr/bin/sh", "-c", "exit 3"]))
t("sh_runs_id", lambda: run(["/usr/bin/sh", "-c", "/usr/bin/id; exit $?"]))
t("copy_to_tmp", lambda: (open("/tmp/mytool", "wb").write(open("/usr/bin/id", "rb").read()),
                          os.chmod("/tmp/mytool", 0o755)) and None)
t("copied", lambda: run(["/tmp/mytool"]))
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  // /usr/bin/id is in the view (under the /usr read grant), but it is not a tool.
  EXPECT_EQ(res["id_visible"], true);
  EXPECT_EQ(res["id"], "EACCES") << r.out;
  EXPECT_EQ(res["cat"], "EACCES") << r.out;
  EXPECT_EQ(res["execv_id"], "EACCES") << r.out;
  EXPECT_EQ(res["true"], 0) << r.out;
  EXPECT_EQ(res["sh"], 3) << r.out;
  // The shell (a tool) cannot start a non-tool either: 126 is the shell's "cannot execute".
  EXPECT_EQ(res["sh_runs_id"], 126) << r.out;
  // A copy of a binary into a writable place is not a tool.
  EXPECT_EQ(res["copy_to_tmp"], "ok") << r.out;
  EXPECT_EQ(res["copied"], "EACCES") << r.out;
}

TEST(RunTools, InitialScriptWhoseInterpreterIsNotAToolIsRefusedWith126) {
  TempDir dir;
  std::string marker = dir.file("script-ran");
  std::string script =
      dir.write("bin/agent.sh", "#!/usr/bin/sh\necho ran > " + marker + "\nexit 0\n", 0755);
  auto m = base_manifest("tools", {script});
  auto r = run_enclosure(dir, m, {script});
  EXPECT_EQ(r.exit_code, 126) << r.describe();
  EXPECT_NE(r.err.find("/usr/bin/sh"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("interpreter"), std::string::npos) << r.err;
  EXPECT_FALSE(r.first("exec")) << r.describe();
  EXPECT_FALSE(std::filesystem::exists(marker));

  // With its interpreter as a tool the same script runs.
  auto with_sh = base_manifest("tools", {script, "/usr/bin/sh"});
  auto ok = run_enclosure(dir, with_sh, {script});
  EXPECT_EQ(ok.exit_code, 0) << ok.describe();
}

TEST(RunTools, ScriptToolWhoseInterpreterIsNotAToolCannotBeStartedInside) {
  TempDir dir;
  std::string script = dir.write("bin/helper.sh", "#!/usr/bin/sh\nexit 5\n", 0755);
  std::string py_script =
      dir.write("bin/helper.py", "#!/usr/bin/python3\nraise SystemExit(6)\n", 0755);
  auto m = base_manifest("tools", {"/usr/bin/python3", script, py_script});
  auto r = run_enclosure(dir, m,
                         python_agent(std::string(kSpawn) + R"(
t("sh_script", lambda: run([A[0]]))
t("py_script", lambda: run([A[1]]))
)",
                                      {script, py_script}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  // /usr/bin/sh is readable in the view but not a tool: the kernel cannot load it.
  EXPECT_EQ(res["sh_script"], "EACCES") << r.out;
  // python3 is a tool: its script runs.
  EXPECT_EQ(res["py_script"], 6) << r.out;
}

// The dynamic loader is executable implicitly (every dynamically linked tool needs it); it
// must not become a way to start any readable program that is not a tool.
TEST(RunTools, NonToolCannotBeStartedThroughTheDynamicLoader) {
  TempDir dir;
  auto m = base_manifest("tools", {"/usr/bin/python3"});
  auto r = run_enclosure(dir, m, python_agent(std::string(kSpawn) + R"(
import glob
loaders = sorted(glob.glob("/lib64/ld-linux-*.so*") + glob.glob("/usr/lib64/ld-linux-*.so*"))
R["loaders"] = loaders
for i, loader in enumerate(loaders):
    t("loader %d" % i, lambda: run([loader, "/usr/bin/id", "-u"]))
    t("loader_out %d" % i, lambda: subprocess.run([loader, "/usr/bin/id", "-u"],
                                                 stdout=subprocess.PIPE).stdout.decode())
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  ASSERT_FALSE(res["loaders"].empty()) << r.out;
  for (size_t i = 0; i < res["loaders"].size(); ++i) {
    std::string n = std::to_string(i);
    EXPECT_NE(res["loader " + n], 0) << res["loaders"][i] << " ran /usr/bin/id: " << r.out;
    EXPECT_NE(res["loader_out " + n], "65534\n") << res["loaders"][i] << " ran /usr/bin/id";
  }
}

// A copy of a binary in memory is not a tool: vm.memfd_noexec=2 in the enclosure's pid
// namespace refuses executing a memfd by every route (its /proc/self/fd path, fexecve,
// execveat with AT_EMPTY_PATH) and refuses creating one executable (MFD_EXEC: the sysctl alone
// does that; the execs are refused by Landlock too, the memfd being no tool file). Outside, on
// the host, the same memfd runs: the setting is the enclosure's alone.
TEST(RunTools, AMemfdCopyOfAToolIsNeverExecutable) {
  TempDir dir;
  nlohmann::json m = base_manifest("memfd", {"/usr/bin/python3", "/usr/bin/true"});
  harness::RunResult r = run_enclosure(dir, m, python_agent(R"(
import os
fd = os.memfd_create("copy", 0)
os.write(fd, open("/usr/bin/true", "rb").read())
def run(how):
    pid = os.fork()
    if pid == 0:
        try:
            how()
        except OSError as e:
            os._exit(e.errno)
        os._exit(99)
    return errname(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
R["proc_fd"] = run(lambda: os.execv("/proc/self/fd/%d" % fd, ["true"]))
R["fexecve"] = run(lambda: os.execve(fd, ["true"], {}))
R["execveat"] = sc(322, fd, b"", 0, 0, 0x1000)
t("mfd_exec", lambda: os.memfd_create("exec", 0x10))
)"));
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["proc_fd"], "EACCES") << res;
  EXPECT_EQ(res["fexecve"], "EACCES") << res;
  EXPECT_EQ(res["execveat"], -13) << res;
  EXPECT_EQ(res["mfd_exec"], "EACCES") << res;
  harness::RunResult host =
      harness::run_command({"python3", "-c",
                            "import os\nfd = os.memfd_create('copy', 0)\n"
                            "os.write(fd, open('/usr/bin/true', 'rb').read())\n"
                            "os.execv('/proc/self/fd/%d' % fd, ['true'])"});
  EXPECT_EQ(host.exit_code, 0) << "the host's memfds stay executable: " << host.describe();
}

// Without root and without the daemon nobody can set vm.memfd_noexec in the run's pid namespace:
// a run that allows the eBPF layer degraded must say that this protection is missing too.
TEST(RunTools, AnUnprivilegedRunWithoutTheDaemonNamesTheMissingMemfdProtection) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 01777);  // the run's user writes its events file here
  std::string binary = dir.file("enclosure");
  std::filesystem::copy_file(harness::enclosure_binary(), binary);
  ::chmod(binary.c_str(), 0755);
  nlohmann::json m = base_manifest("memfd-degraded", {"/usr/bin/true"});
  m["enforcement"] = {{"allow_degraded", {"bpf", "cgroup"}}};
  harness::RunOptions o;
  o.as_user = "65534:65534";
  o.binary = binary;
  harness::RunResult r = run_enclosure(dir, m, {"/usr/bin/true"}, o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::optional<nlohmann::json> start = r.first("start");
  ASSERT_TRUE(start) << r.describe();
  bool named = false;
  for (const nlohmann::json& d : (*start)["enforcement"]["degraded"]) {
    if (d.value("feature", "").find("vm.memfd_noexec=2") != std::string::npos) {
      named = d.value("origin", "") == "/tools";
    }
  }
  EXPECT_TRUE(named) << (*start)["enforcement"].dump();
  EXPECT_NE(r.err.find("vm.memfd_noexec=2"), std::string::npos) << r.err;
}
