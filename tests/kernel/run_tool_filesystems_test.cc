// A tool is the file executed, identified by device and inode on any file system: the launcher
// names each tool's file by what stat() reports in the host's view, the eBPF programs by the
// inode of the file the kernel executes or opens. The two must agree where they differ from a
// plain block device file system: a btrfs subvolume (stat reports the subvolume's own device,
// not the super block's), xfs, and overlayfs (stat of a file whose layers are on different file
// systems reports the layer's device, not the overlay's), a copied-up file included. On each,
// max_calls, a read trigger and a tool denial by a composition rule must hold.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using harness::python_agent;
using harness::python_result;
using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

// The loop devices and mounts one test made, undone in reverse order when it ends (also when
// an assertion failed half way): before its TempDir is removed, which is declared first.
class TestMounts {
 public:
  TestMounts() = default;
  TestMounts(const TestMounts&) = delete;
  TestMounts& operator=(const TestMounts&) = delete;
  ~TestMounts() {
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it) {
      if (run_command({"umount", *it}).exit_code != 0) run_command({"umount", "-l", *it});
    }
    for (auto it = loops_.rbegin(); it != loops_.rend(); ++it)
      run_command({"losetup", "-d", *it});
  }

  // A sparse image file of `mib` MiB attached to a free loop device; its path, or "" (with a
  // test failure) when it cannot be attached.
  std::string attach_image(const std::string& image, int mib) {
    RunResult made = run_command({"truncate", "-s", std::to_string(mib) + "M", image});
    EXPECT_EQ(made.exit_code, 0) << made.describe();
    RunResult r = run_command({"losetup", "--find", "--show", image});
    EXPECT_EQ(r.exit_code, 0) << "losetup " << image << ": " << r.describe();
    if (r.exit_code != 0) return "";
    std::string device = r.out.substr(0, r.out.find('\n'));
    loops_.push_back(device);
    return device;
  }

  // mount `args...` at `target` (created); false (with a test failure) when it fails.
  bool mount(std::vector<std::string> args, const std::string& target) {
    std::filesystem::create_directories(target);
    args.insert(args.begin(), "mount");
    args.push_back(target);
    RunResult r = run_command(args);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    if (r.exit_code != 0) return false;
    mounted_.push_back(target);
    return true;
  }

 private:
  std::vector<std::string> loops_;
  std::vector<std::string> mounted_;
};

// The file systems' tools must be there: a CI run fails, it does not skip.
bool have_program(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    if (::access((std::string(dir) + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// A file system of `type` made on a fresh loop device image and mounted at dir/`name`; the
// mount point, or "" after a test failure.
std::string mount_image(const TempDir& dir, TestMounts& mounts, const std::string& type,
                        const std::string& name, int mib) {
  std::string mkfs = "mkfs." + type;
  EXPECT_TRUE(have_program(mkfs)) << mkfs << " is missing: install "
                                  << (type == "xfs" ? "xfsprogs" : "btrfs-progs")
                                  << " (scripts/install-deps.sh)";
  if (!have_program(mkfs)) return "";
  std::string device = mounts.attach_image(dir.file(name + ".img"), mib);
  if (device.empty()) return "";
  RunResult made = run_command({mkfs, "-q", "-f", device});
  EXPECT_EQ(made.exit_code, 0) << made.describe();
  if (made.exit_code != 0) return "";
  std::string target = dir.file(name);
  if (!mounts.mount({"-t", type, device}, target)) return "";
  ::chmod(target.c_str(), 0755);
  return target;
}

// Copies `from` to `to` with `mode`.
void copy_file(const std::string& from, const std::string& to, int mode) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  ::chmod(to.c_str(), mode);
}

// The files every test puts into the directory `at` on the file system under test:
//   tool        a copy of /usr/bin/true, a tool with max_calls 1
//   late        a copy of /usr/bin/true, a tool that the rule denies once secret.txt was read
//   other       a copy of /usr/bin/true that is no tool
//   script.sh   a `#!/bin/sh` script tool (/bin/sh is a tool too)
//   secret.txt  the rule's read trigger
void put_files(const std::string& at) {
  copy_file("/usr/bin/true", at + "/tool", 0755);
  copy_file("/usr/bin/true", at + "/late", 0755);
  copy_file("/usr/bin/true", at + "/other", 0755);
  {
    std::ofstream script(at + "/script.sh");
    script << "#!/bin/sh\nexit 7\n";
  }
  ::chmod((at + "/script.sh").c_str(), 0755);
  std::ofstream(at + "/secret.txt") << "secret\n";
  ::chmod((at + "/secret.txt").c_str(), 0644);
}

json identity_manifest(const std::string& at) {
  json tools = json::array();
  tools.push_back({{"name", "python3"}, {"path", "/usr/bin/python3"}});
  tools.push_back({{"name", "sh"}, {"path", "/bin/sh"}});
  tools.push_back({{"name", "fstool"}, {"path", at + "/tool"}, {"max_calls", 1}});
  tools.push_back({{"name", "fslate"}, {"path", at + "/late"}});
  tools.push_back({{"name", "fsscript"}, {"path", at + "/script.sh"}});
  return {{"apiVersion", "enclosure/v1"},
          {"metadata", {{"name", "tool-identity"}}},
          {"filesystem", {{"read", {"/usr", "/lib", "/lib64", "/bin", at}}, {"tmpfs", {"/tmp"}}}},
          {"process", {{"user", {{"uid", 65534}, {"gid", 65534}}}, {"env", {{"pass", {"PATH"}}}}}},
          {"tools", tools},
          {"network", {{"mode", "none"}}},
          {"rules",
           {{{"id", "no-late-after-secret"},
             {"after", {{"read", {at + "/secret.txt"}}}},
             {"deny", {"tool:fslate"}}}}},
          {"budgets", {{"wall_clock", "60s"}}}};
}

// The agent: a non-tool, the script tool, the late tool before and after reading the secret,
// then the tool twice (the second call is past max_calls: the run ends with exit 124).
const char* const kAgent = R"(import subprocess, time
def run(p):
    return subprocess.run([p], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).returncode
d = A[0]
t("other", lambda: run(d + "/other"))
t("script", lambda: run(d + "/script.sh"))
t("late_before", lambda: run(d + "/late"))
t("read", lambda: open(d + "/secret.txt").read() and None)
t("late_after", lambda: run(d + "/late"))
t("tool_first", lambda: run(d + "/tool"))
print("RESULT " + json.dumps(R), flush=True)
t("tool_second", lambda: run(d + "/tool"))
print("RESULT " + json.dumps(R), flush=True)
time.sleep(20)
)";

std::vector<json> events_of(const RunResult& r, const std::string& type, const std::string& key,
                            const std::string& value) {
  std::vector<json> out;
  for (const json& e : r.of_type(type)) {
    if (e.value(key, "") == value) out.push_back(e);
  }
  return out;
}

// Runs the agent on the files in `at` and checks that the kernel recognised every tool there.
void expect_tools_recognised(const TempDir& dir, const std::string& at, const std::string& fs) {
  RunResult r = run_enclosure(dir, identity_manifest(at), python_agent(kAgent, {at}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << fs << ": " << r.describe();
  EXPECT_EQ(res["other"], "EACCES") << fs << ": a file that is no tool ran\n" << r.describe();
  EXPECT_EQ(res["script"], 7) << fs << "\n" << r.describe();
  EXPECT_EQ(events_of(r, "tool_call", "tool", "fsscript").size(), 1u)
      << fs << ": the script tool's call\n"
      << r.describe();
  EXPECT_EQ(res["late_before"], 0) << fs << "\n" << r.describe();
  EXPECT_EQ(res["read"], "ok") << fs << "\n" << r.describe();
  EXPECT_EQ(events_of(r, "rule", "rule", "no-late-after-secret").size(), 1u)
      << fs << ": reading the trigger file did not fire the rule\n"
      << r.describe();
  EXPECT_EQ(res["late_after"], -9) << fs << ": the denied tool ran\n" << r.describe();
  EXPECT_EQ(res["tool_first"], 0) << fs << "\n" << r.describe();
  std::vector<json> calls = events_of(r, "tool_call", "tool", "fstool");
  ASSERT_FALSE(calls.empty()) << fs << ": no tool_call names the tool\n" << r.describe();
  EXPECT_EQ(calls[0]["calls"], 1) << calls[0].dump();
  // The second call is past max_calls: killed at its exec, and the run ends for that budget.
  EXPECT_EQ(r.exit_code, 124) << fs << ": max_calls did not hold\n" << r.describe();
  std::vector<json> budgets = events_of(r, "budget", "name", "max_calls");
  ASSERT_EQ(budgets.size(), 1u) << fs << "\n" << r.describe();
  EXPECT_EQ(budgets[0].value("tool", ""), "fstool") << budgets[0].dump();
  EXPECT_EQ(budgets[0]["limit"], 1) << budgets[0].dump();
  if (res.contains("tool_second")) EXPECT_EQ(res["tool_second"], -9) << r.describe();
}

// st_dev of `path` as stat() reports it.
dev_t stat_dev(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_dev;
}

}  // namespace

// stat() of a file in a btrfs subvolume reports the subvolume's anonymous device; the super
// block (the eBPF programs' inode->i_sb) has another one.
TEST(RunToolFileSystems, ToolsInABtrfsSubvolumeAreRecognised) {
  TempDir dir;
  TestMounts mounts;
  std::string fs = mount_image(dir, mounts, "btrfs", "btrfs", 256);
  ASSERT_FALSE(fs.empty());
  std::string subvolume = fs + "/subvolume";
  RunResult made = run_command({"btrfs", "-q", "subvolume", "create", subvolume});
  ASSERT_EQ(made.exit_code, 0) << made.describe();
  ::chmod(subvolume.c_str(), 0755);
  put_files(subvolume);
  ASSERT_NE(stat_dev(subvolume + "/tool"), stat_dev(fs))
      << "the subvolume has no device of its own";
  expect_tools_recognised(dir, subvolume, "btrfs subvolume");
}

// Every subvolume numbers its inodes from the same start: keyed by the super block's device, a
// file in one subvolume would be the same file as the one with its inode number in another.
TEST(RunToolFileSystems, AFileInAnotherBtrfsSubvolumeWithTheSameInodeIsAnotherFile) {
  TempDir dir;
  TestMounts mounts;
  std::string fs = mount_image(dir, mounts, "btrfs", "btrfs", 256);
  ASSERT_FALSE(fs.empty());
  std::string first = fs + "/first", second = fs + "/second";
  for (const std::string& subvolume : {first, second}) {
    RunResult made = run_command({"btrfs", "-q", "subvolume", "create", subvolume});
    ASSERT_EQ(made.exit_code, 0) << made.describe();
    ::chmod(subvolume.c_str(), 0755);
    put_files(subvolume);
  }
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((first + "/secret.txt").c_str(), &a), 0);
  ASSERT_EQ(::stat((second + "/secret.txt").c_str(), &b), 0);
  ASSERT_EQ(a.st_ino, b.st_ino) << "the subvolumes' files were to have the same inode numbers";
  json m = identity_manifest(first);
  m["filesystem"]["read"].push_back(second);
  RunResult r = run_enclosure(dir, m,
                              python_agent(R"(import subprocess
def run(p):
    return subprocess.run([p]).returncode
t("read_second", lambda: open(A[1] + "/secret.txt").read() and None)
t("late_after_second", lambda: run(A[0] + "/late"))
t("read_first", lambda: open(A[0] + "/secret.txt").read() and None)
t("late_after_first", lambda: run(A[0] + "/late"))
)",
                                           {first, second}));
  json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["read_second"], "ok") << r.describe();
  EXPECT_EQ(res["late_after_second"], 0) << "reading the other subvolume's file fired the rule\n"
                                         << r.describe();
  EXPECT_EQ(res["read_first"], "ok") << r.describe();
  EXPECT_EQ(res["late_after_first"], -9) << r.describe();
  EXPECT_EQ(events_of(r, "rule", "rule", "no-late-after-secret").size(), 1u) << r.describe();
}

// The top level of a btrfs file system is a subvolume too (id 5).
TEST(RunToolFileSystems, ToolsAtTheTopOfABtrfsFileSystemAreRecognised) {
  TempDir dir;
  TestMounts mounts;
  std::string fs = mount_image(dir, mounts, "btrfs", "btrfs", 256);
  ASSERT_FALSE(fs.empty());
  put_files(fs);
  expect_tools_recognised(dir, fs, "btrfs");
}

TEST(RunToolFileSystems, ToolsOnXfsAreRecognised) {
  TempDir dir;
  TestMounts mounts;
  // mkfs.xfs makes nothing smaller than 300 MiB.
  std::string fs = mount_image(dir, mounts, "xfs", "xfs", 320);
  ASSERT_FALSE(fs.empty());
  put_files(fs);
  expect_tools_recognised(dir, fs, "xfs");
}

namespace {

// An overlay of a lower layer on one tmpfs and an upper layer on another tmpfs (inode numbers
// of 64 bits, so no xino): stat() of a non-directory reports its layer's device, while the
// kernel executes and opens the overlay's inode. `tool` and `secret.txt` stay in the lower
// layer; `late` and `script.sh` are copied up (a chmod through the overlay) before the run.
std::string mount_overlay(const TempDir& dir, TestMounts& mounts, bool one_tmpfs) {
  std::string lower_fs = dir.file("lowerfs"), upper_fs = dir.file("upperfs");
  if (!mounts.mount({"-t", "tmpfs", "-o", "mode=0755", "lowerfs"}, lower_fs)) return "";
  if (!one_tmpfs && !mounts.mount({"-t", "tmpfs", "-o", "mode=0755", "upperfs"}, upper_fs))
    return "";
  std::string upper_root = one_tmpfs ? lower_fs : upper_fs;
  std::string lower = lower_fs + "/lower", upper = upper_root + "/upper",
              work = upper_root + "/work";
  for (const std::string& d : {lower, upper, work})
    std::filesystem::create_directories(d);
  ::chmod(lower.c_str(), 0755);
  ::chmod(upper.c_str(), 0755);
  put_files(lower);
  std::string merged = dir.file("merged");
  if (!mounts.mount({"-t", "overlay", "overlay", "-o",
                     "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work},
                    merged)) {
    return "";
  }
  for (const char* name : {"late", "script.sh"}) {
    ::chmod((merged + "/" + name).c_str(), 0755);  // copies the file up
    EXPECT_TRUE(std::filesystem::exists(upper + "/" + name)) << name << " was not copied up";
  }
  return merged;
}

}  // namespace

TEST(RunToolFileSystems, ToolsOnAnOverlayOfTwoFileSystemsAreRecognisedCopiedUpOrNot) {
  TempDir dir;
  TestMounts mounts;
  std::string merged = mount_overlay(dir, mounts, false);
  ASSERT_FALSE(merged.empty());
  ASSERT_NE(stat_dev(merged + "/tool"), stat_dev(merged))
      << "stat of an overlay file reports the overlay's device: the layers share an inode space";
  expect_tools_recognised(dir, merged, "overlay (two file systems)");
}

TEST(RunToolFileSystems, ToolsOnAnOverlayOfOneFileSystemAreRecognisedCopiedUpOrNot) {
  TempDir dir;
  TestMounts mounts;
  std::string merged = mount_overlay(dir, mounts, true);
  ASSERT_FALSE(merged.empty());
  expect_tools_recognised(dir, merged, "overlay (one file system)");
}
