// The filesystem view of `enclosure run`: what is granted is there with the access granted,
// what is not granted does not exist, tmpfs is private, hide masks, /proc and /dev are the
// enclosure's own, and a symlink an agent could plant never widens the view.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::TempDir;

namespace {

constexpr uid_t kAgentUid = 65534;

nlohmann::json python_manifest() {
  return base_manifest("filesystem", {"/usr/bin/python3"});
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unique_name(const std::string& prefix) {
  std::random_device rd;
  return prefix + std::to_string(::getpid()) + "-" + std::to_string(rd());
}

bool one_of(const nlohmann::json& v, const std::set<std::string>& allowed) {
  return v.is_string() && allowed.count(v.get<std::string>()) > 0;
}

}  // namespace

TEST(RunFilesystem, PathsOutsideTheGrantsDoNotExist) {
  TempDir dir;
  std::string secret = dir.write("not-granted/secret.txt", "host secret\n");
  auto r = run_enclosure(dir, python_manifest(),
                         python_agent(R"(
t("etc_passwd", lambda: open("/etc/passwd").read())
t("root_dir", lambda: os.listdir("/root"))
t("sys", lambda: os.listdir("/sys"))
t("not_granted", lambda: open(A[0]).read())
t("stat_not_granted", lambda: os.stat(A[1]) and None)
for p in ["etc", "root", "home", "var", "sys", "boot", "srv", "opt", "usr", "proc", "dev", "tmp"]:
    R["exists /" + p] = os.path.exists("/" + p)
)",
                                      {secret, dir.path()}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["etc_passwd"], "ENOENT") << r.describe();
  EXPECT_EQ(res["root_dir"], "ENOENT") << r.describe();
  EXPECT_EQ(res["sys"], "ENOENT") << r.describe();
  EXPECT_EQ(res["not_granted"], "ENOENT") << r.describe();
  EXPECT_EQ(res["stat_not_granted"], "ENOENT") << r.describe();
  for (const char* absent : {"etc", "root", "home", "var", "sys", "boot", "srv", "opt"}) {
    EXPECT_EQ(res[std::string("exists /") + absent], false) << "/" << absent << " is in the view";
  }
  for (const char* present : {"usr", "proc", "dev", "tmp"}) {
    EXPECT_EQ(res[std::string("exists /") + present], true) << "/" << present << " is missing";
  }
  EXPECT_EQ(r.out.find("host secret"), std::string::npos);
}

TEST(RunFilesystem, GrantedFileIsReadableWithItsContent) {
  TempDir dir;
  dir.write("data/report.txt", "quarterly numbers 42\n");
  dir.write("data/nested/deeper.txt", "nested content\n");
  auto m = python_manifest();
  m["filesystem"]["read"].push_back(dir.file("data"));
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
t("read", lambda: open(A[0] + "/report.txt").read())
t("nested", lambda: open(A[0] + "/nested/deeper.txt").read())
t("list", lambda: sorted(os.listdir(A[0])))
)",
                                      {dir.file("data")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["read"], "quarterly numbers 42\n");
  EXPECT_EQ(res["nested"], "nested content\n");
  EXPECT_EQ(res["list"], nlohmann::json::array({"nested", "report.txt"}));
}

TEST(RunFilesystem, ReadOnlyGrantRefusesEveryWrite) {
  TempDir dir;
  // Host permissions would let the agent write: only the enclosure stops it.
  std::string file = dir.write("ro/file.txt", "original\n", 0666);
  ::chmod(dir.file("ro").c_str(), 0777);
  ASSERT_EQ(::chown(file.c_str(), kAgentUid, kAgentUid), 0);
  auto m = python_manifest();
  m["filesystem"]["read"].push_back(dir.file("ro"));
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
d = A[0]
t("open_write", lambda: open(d + "/file.txt", "w").write("changed"))
t("open_append", lambda: open(d + "/file.txt", "a").write("more"))
t("create", lambda: open(d + "/new.txt", "w").write("new"))
t("truncate", lambda: os.truncate(d + "/file.txt", 0))
t("unlink", lambda: os.unlink(d + "/file.txt"))
t("mkdir", lambda: os.mkdir(d + "/sub"))
t("symlink", lambda: os.symlink("/x", d + "/link"))
)",
                                      {dir.file("ro")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* op :
       {"open_write", "open_append", "create", "truncate", "unlink", "mkdir", "symlink"}) {
    EXPECT_TRUE(one_of(res[op], {"EROFS", "EACCES"})) << op << ": " << res[op];
  }
  EXPECT_EQ(res["open_write"], "EROFS");
  EXPECT_EQ(slurp(file), "original\n");
  EXPECT_FALSE(std::filesystem::exists(dir.file("ro/new.txt")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("ro/sub")));
}

TEST(RunFilesystem, WriteGrantWritesLandOnTheHost) {
  TempDir dir;
  std::string existing = dir.write("work/existing.txt", "line 1\n", 0666);
  ::chmod(dir.file("work").c_str(), 0777);
  auto m = python_manifest();
  m["filesystem"]["write"] = {dir.file("work")};
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
d = A[0]
t("create", lambda: open(d + "/result.txt", "w").write("written inside\n") and None)
t("append", lambda: open(d + "/existing.txt", "a").write("line 2\n") and None)
t("mkdir", lambda: os.mkdir(d + "/made"))
t("nested", lambda: open(d + "/made/x.txt", "w").write("x") and None)
t("rename", lambda: os.rename(d + "/made/x.txt", d + "/made/y.txt"))
)",
                                      {dir.file("work")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* op : {"create", "append", "mkdir", "nested", "rename"}) {
    EXPECT_EQ(res[op], "ok") << op;
  }
  EXPECT_EQ(slurp(dir.file("work/result.txt")), "written inside\n");
  EXPECT_EQ(slurp(existing), "line 1\nline 2\n");
  EXPECT_EQ(slurp(dir.file("work/made/y.txt")), "x");
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("work/result.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAgentUid);  // written by the agent's uid, on the host's file system
}

TEST(RunFilesystem, TmpfsIsWritableEmptyPrivateAndGoneAfterTheRun) {
  TempDir dir;
  std::string marker = unique_name("enclosure-tmpfs-marker-");
  auto r = run_enclosure(dir, python_manifest(),
                         python_agent(R"(
t("tmp_before", lambda: sorted(os.listdir("/tmp")))
t("write", lambda: open("/tmp/" + A[0], "w").write("inside") and None)
t("mkdir", lambda: os.mkdir("/tmp/d"))
t("read_back", lambda: open("/tmp/" + A[0]).read())
mounts = open("/proc/self/mountinfo").read().splitlines()
R["tmp_fstype"] = [l.split(" - ")[1].split()[0] for l in mounts if l.split()[4] == "/tmp"]
)",
                                      {marker}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["tmp_before"], nlohmann::json::array());
  EXPECT_EQ(res["write"], "ok");
  EXPECT_EQ(res["mkdir"], "ok");
  EXPECT_EQ(res["read_back"], "inside");
  EXPECT_EQ(res["tmp_fstype"], nlohmann::json::array({"tmpfs"})) << r.describe();
  // Not on the host's /tmp, and not there for the next run either.
  EXPECT_FALSE(std::filesystem::exists("/tmp/" + marker));
  auto again = run_enclosure(dir, python_manifest(), python_agent(R"(
t("tmp", lambda: sorted(os.listdir("/tmp")))
)"));
  ASSERT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(python_result(again)["tmp"], nlohmann::json::array()) << again.describe();
}

// A tmpfs is a fresh directory of the enclosure's own: it needs nothing on the host.
TEST(RunFilesystem, TmpfsAtAPathTheHostDoesNotHaveIsCreated) {
  TempDir dir;
  std::string where = "/" + unique_name("enclosure-scratch-");
  ASSERT_FALSE(std::filesystem::exists(where));
  auto m = python_manifest();
  m["filesystem"]["tmpfs"] = {"/tmp", where};
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
t("list", lambda: sorted(os.listdir(A[0])))
t("write", lambda: open(A[0] + "/f", "w").write("inside") and None)
t("read_back", lambda: open(A[0] + "/f").read())
)",
                                      {where}));
  EXPECT_FALSE(std::filesystem::exists(where));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["list"], nlohmann::json::array()) << r.out;
  EXPECT_EQ(res["write"], "ok") << r.out;
  EXPECT_EQ(res["read_back"], "inside") << r.out;
  auto exec = r.first("exec");
  ASSERT_TRUE(exec);
  EXPECT_EQ((*exec)["absent"], nlohmann::json::array()) << exec->dump();
}

TEST(RunFilesystem, HideMasksAPathUnderAGrantWhileSiblingsStayReadable) {
  TempDir dir;
  dir.write("customer/public.txt", "public\n");
  dir.write("customer/payment-cards/card.txt", "4111-TOPSECRET\n");
  dir.write("customer/secret.txt", "TOPSECRET file\n", 0666);
  auto m = python_manifest();
  m["filesystem"]["read"].push_back(dir.file("customer"));
  m["filesystem"]["hide"] = {dir.file("customer/payment-cards"), dir.file("customer/secret.txt")};
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
d = A[0]
t("public", lambda: open(d + "/public.txt").read())
t("listing", lambda: sorted(os.listdir(d)))
t("hidden_dir_list", lambda: os.listdir(d + "/payment-cards"))
t("hidden_dir_file", lambda: open(d + "/payment-cards/card.txt").read())
t("hidden_file", lambda: open(d + "/secret.txt").read())
t("hidden_file_write", lambda: open(d + "/secret.txt", "w").write("x"))
t("hidden_dir_create", lambda: open(d + "/payment-cards/new", "w").write("x"))
)",
                                      {dir.file("customer")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["public"], "public\n");
  EXPECT_EQ(res["hidden_dir_list"], nlohmann::json::array()) << r.out;
  EXPECT_EQ(res["hidden_dir_file"], "ENOENT") << r.out;
  // A masked file is empty (or unreadable), never its content.
  EXPECT_TRUE(res["hidden_file"] == "" || res["hidden_file"] == "EACCES") << r.out;
  EXPECT_TRUE(one_of(res["hidden_file_write"], {"EROFS", "EACCES"})) << r.out;
  EXPECT_TRUE(one_of(res["hidden_dir_create"], {"EROFS", "EACCES"})) << r.out;
  EXPECT_EQ(r.out.find("TOPSECRET"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(dir.file("customer/secret.txt")), "TOPSECRET file\n");
}

TEST(RunFilesystem, HardLinkAndRenameFromAReadOnlyGrantIntoAWritableOneFail) {
  TempDir dir;
  std::string original = dir.write("ro/doc.txt", "read-only document\n", 0666);
  ::chmod(dir.file("ro").c_str(), 0777);
  ASSERT_EQ(::chown(original.c_str(), kAgentUid, kAgentUid), 0);
  ::chmod(dir.write("rw/.keep", "").c_str(), 0666);
  ::chmod(dir.file("rw").c_str(), 0777);
  auto m = python_manifest();
  m["filesystem"]["read"].push_back(dir.file("ro"));
  m["filesystem"]["write"] = {dir.file("rw")};
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
ro, rw = A
t("link", lambda: os.link(ro + "/doc.txt", rw + "/doc-link.txt"))
t("rename", lambda: os.rename(ro + "/doc.txt", rw + "/doc-moved.txt"))
t("rename_back", lambda: os.rename(rw + "/.keep", ro + "/keep"))
t("symlink", lambda: os.symlink(ro + "/doc.txt", rw + "/doc-symlink.txt"))
t("write_through_symlink", lambda: open(rw + "/doc-symlink.txt", "w").write("changed"))
)",
                                      {dir.file("ro"), dir.file("rw")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* op : {"link", "rename", "rename_back", "write_through_symlink"}) {
    EXPECT_TRUE(one_of(res[op], {"EXDEV", "EACCES", "EROFS"})) << op << ": " << res[op];
  }
  // A symlink itself may be created in the writable grant; it grants nothing.
  EXPECT_EQ(res["symlink"], "ok") << r.out;
  EXPECT_EQ(slurp(original), "read-only document\n");
  EXPECT_FALSE(std::filesystem::exists(dir.file("rw/doc-link.txt")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("rw/doc-moved.txt")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("rw/.keep")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("ro/keep")));
}

TEST(RunFilesystem, ChmodChownAndUtimeOnAReadOnlyGrantFail) {
  TempDir dir;
  // The agent owns the file on the host: only the read-only view refuses.
  std::string file = dir.write("ro/owned.txt", "mine\n", 0644);
  ASSERT_EQ(::chown(file.c_str(), kAgentUid, kAgentUid), 0);
  auto m = python_manifest();
  m["filesystem"]["read"].push_back(dir.file("ro"));
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
f = A[0]
t("chmod", lambda: os.chmod(f, 0o4777))
t("chown", lambda: os.chown(f, 65534, 65534))
t("utime", lambda: os.utime(f, (0, 0)))
t("setxattr", lambda: os.setxattr(f, "user.x", b"1"))
)",
                                      {file}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["chmod"], "EROFS") << r.out;
  for (const char* op : {"chown", "utime", "setxattr"}) {
    EXPECT_TRUE(one_of(res[op], {"EROFS", "EACCES", "EPERM"})) << op << ": " << res[op];
  }
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_NE(st.st_mtime, 0);
}

TEST(RunFilesystem, SymlinkPlantedInAWritableGrantThatANestedGrantPassesThroughIsRefused) {
  TempDir dir;
  ::chmod(dir.write("work/.keep", "").c_str(), 0666);
  std::filesystem::create_symlink("/etc", dir.file("work/sub"));
  auto m = python_manifest();
  m["filesystem"]["write"] = {dir.file("work")};
  m["filesystem"]["read"].push_back(dir.file("work/sub"));
  std::string marker = dir.file("agent-ran");
  auto r = run_enclosure(dir, m, python_agent("open(A[0], 'w')", {marker}));
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("symlink " + dir.file("work/sub")), std::string::npos) << r.err;
  EXPECT_FALSE(r.first("exec")) << r.describe();
  EXPECT_FALSE(std::filesystem::exists(marker));
}

// The same planted symlink, reached by a grant whose manifest path is shorter than the writable
// grant's (through a symlink the host owns): the check must not depend on the order in which
// the grants are resolved.
TEST(RunFilesystem, SymlinkPlantedInAWritableGrantIsRefusedWhicheverGrantIsResolvedFirst) {
  TempDir dir;
  ::chmod(dir.write("deep/er/work/.keep", "").c_str(), 0666);
  std::filesystem::create_symlink("/etc", dir.file("deep/er/work/sub"));  // planted by an agent
  std::filesystem::create_symlink(dir.file("deep/er/work"), dir.file("alias"));  // the host's
  auto m = python_manifest();
  m["filesystem"]["write"] = {dir.file("deep/er/work")};
  m["filesystem"]["read"].push_back(dir.file("alias/sub"));
  auto r = run_enclosure(dir, m, python_agent(R"(
t("etc_hostname", lambda: open("/etc/hostname").read())
)"));
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("symlink " + dir.file("deep/er/work/sub")), std::string::npos) << r.err;
  EXPECT_FALSE(r.first("exec")) << r.out;
  EXPECT_EQ(r.out.find("etc_hostname\": \""), std::string::npos)
      << "/etc is in the view: " << r.out;
}

TEST(RunFilesystem, ProcIsTheEnclosuresOwnWithSensitiveEntriesMasked) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(R"(
t("init_comm", lambda: open("/proc/1/comm").read().strip())
R["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
R["self"] = os.getpid()
for name in ["kcore", "kallsyms", "keys", "timer_list", "kmsg", "sysrq-trigger"]:
    t("read " + name, lambda: len(open("/proc/" + name, "rb").read(4096)))
    t("write " + name, lambda: open("/proc/" + name, "wb", buffering=0).write(b"h"))
t("sysctl_write", lambda: open("/proc/sys/kernel/hostname", "w").write("evil"))
t("hostname", lambda: open("/proc/sys/kernel/hostname").read().strip())
t("proc_create", lambda: open("/proc/x", "w"))
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["init_comm"], "enclosure-init") << r.out;
  // Only pid 1 and the agent: no host process is visible.
  EXPECT_EQ(res["pids"], nlohmann::json::array({1, res["self"]})) << r.out;
  for (const char* name : {"kcore", "kallsyms", "keys", "timer_list", "kmsg", "sysrq-trigger"}) {
    const nlohmann::json& read = res[std::string("read ") + name];
    const nlohmann::json& write = res[std::string("write ") + name];
    if (!std::filesystem::exists(std::string("/proc/") + name)) {
      // Not in this kernel: not in the enclosure's /proc either.
      EXPECT_EQ(read, "ENOENT") << name;
      EXPECT_EQ(write, "ENOENT") << name;
      continue;
    }
    // Masked: empty or unreadable, never the kernel's content; never writable.
    EXPECT_TRUE(read == 0 || read == "EACCES") << name << ": " << read;
    EXPECT_TRUE(one_of(write, {"EROFS", "EACCES"})) << name << ": " << write;
  }
  EXPECT_TRUE(one_of(res["sysctl_write"], {"EROFS", "EACCES"})) << r.out;
  EXPECT_EQ(res["hostname"], "enclosure");
  EXPECT_TRUE(res["proc_create"].is_string() && res["proc_create"] != "ok") << r.out;
}

TEST(RunFilesystem, DevHoldsOnlyTheHarmlessDevices) {
  TempDir dir;
  auto r = run_enclosure(dir, python_manifest(), python_agent(R"(
import stat
def kind(p):
    mode = os.stat(p).st_mode
    return "chr" if stat.S_ISCHR(mode) else "dir" if stat.S_ISDIR(mode) else "other"
for name in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
             "sda", "mem", "kmem", "port", "kmsg", "vda", "nvme0n1", "loop0", "console", "tty0"]:
    t("stat " + name, lambda: kind("/dev/" + name))
t("null_write", lambda: open("/dev/null", "w").write("discarded"))
t("zero_read", lambda: open("/dev/zero", "rb").read(8) == bytes(8))
t("full_write", lambda: open("/dev/full", "wb", buffering=0).write(b"x"))
t("urandom_read", lambda: len(open("/dev/urandom", "rb").read(16)))
t("random_read", lambda: len(open("/dev/random", "rb").read(16)))
t("dev_create", lambda: open("/dev/new", "w"))
t("mknod_char", lambda: os.mknod("/tmp/mem", 0o20600, os.makedev(1, 1)))
)"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  for (const char* chr : {"null", "zero", "full", "random", "urandom", "tty"}) {
    EXPECT_EQ(res[std::string("stat ") + chr], "chr") << "/dev/" << chr;
  }
  for (const char* d : {"pts", "shm"}) {
    EXPECT_EQ(res[std::string("stat ") + d], "dir") << "/dev/" << d;
  }
  EXPECT_EQ(res["stat ptmx"], "chr") << "/dev/ptmx (a link to the private pts/ptmx)";
  for (const char* absent :
       {"sda", "mem", "kmem", "port", "kmsg", "vda", "nvme0n1", "loop0", "console", "tty0"}) {
    EXPECT_EQ(res[std::string("stat ") + absent], "ENOENT") << "/dev/" << absent;
  }
  EXPECT_EQ(res["null_write"], 9);
  EXPECT_EQ(res["zero_read"], true);
  EXPECT_EQ(res["full_write"], "ENOSPC");
  EXPECT_EQ(res["urandom_read"], 16);
  EXPECT_EQ(res["random_read"], 16);
  EXPECT_TRUE(one_of(res["dev_create"], {"EACCES", "EROFS"})) << r.out;
  // A device node cannot be made anywhere, not even in a writable tmpfs.
  EXPECT_EQ(res["mknod_char"], "EPERM") << r.out;
  EXPECT_EQ(r.denials("mknodat").size() + r.denials("mknod").size(), 1u) << r.describe();
}

TEST(RunFilesystem, ContextVariableInAWriteGrantScopesAccessToTheTask) {
  TempDir dir;
  for (std::string task : {"alpha", "beta"}) {
    dir.write("tasks/" + task + "/input.txt", "input of " + task + "\n");
    ::chmod(dir.file("tasks/" + task).c_str(), 0777);
  }
  auto m = python_manifest();
  m["context"] = {{"task", {{"pattern", "^[a-z0-9-]{1,32}$"}}}};
  m["filesystem"]["write"] = {dir.file("tasks") + "/${task}"};
  auto agent = python_agent(R"(
d = A[0]
t("own_read", lambda: open(d + "/alpha/input.txt").read())
t("own_write", lambda: open(d + "/alpha/out.txt", "w").write("done") and None)
t("other_read", lambda: open(d + "/beta/input.txt").read())
t("other_write", lambda: open(d + "/beta/out.txt", "w").write("done") and None)
t("listing", lambda: sorted(os.listdir(d)))
)",
                            {dir.file("tasks")});
  auto r = run_enclosure(dir, m, agent, {.extra_args = {"--context", "task=alpha"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["own_read"], "input of alpha\n");
  EXPECT_EQ(res["own_write"], "ok");
  EXPECT_EQ(res["other_read"], "ENOENT") << r.out;
  EXPECT_EQ(res["other_write"], "ENOENT") << r.out;
  EXPECT_EQ(res["listing"], nlohmann::json::array({"alpha"})) << r.out;
  EXPECT_EQ(slurp(dir.file("tasks/alpha/out.txt")), "done");
  EXPECT_FALSE(std::filesystem::exists(dir.file("tasks/beta/out.txt")));
  auto start = r.first("start");
  ASSERT_TRUE(start);
  EXPECT_EQ((*start)["context"]["task"], "alpha");

  // A value that would add a path segment or climb out is refused before anything runs.
  for (const char* bad : {"task=../beta", "task=alpha/../beta", "task=.."}) {
    auto refused = run_enclosure(dir, m, agent, {.extra_args = {"--context", bad}});
    EXPECT_EQ(refused.exit_code, 125) << bad << "\n" << refused.err;
    EXPECT_FALSE(refused.first("exec")) << bad;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("tasks/beta/out.txt")));
}

// A grant of "/" covers the view's root: the steps after it (tmpfs, write grants, hide, the
// enclosure's own /proc) must still take effect on top of it, not vanish beneath it.
TEST(RunFilesystem, GrantOfTheWholeHostStillAppliesEveryLaterStep) {
  TempDir dir;
  std::string hidden = dir.write("secret.txt", "hidden\n");
  std::string visible = dir.write("visible.txt", "visible\n");
  dir.write("work/keep", "");
  ::chmod(dir.file("work").c_str(), 0777);  // the agent runs as uid 65534
  nlohmann::json m = base_manifest("fs-root", {"/usr/bin/python3"});
  m["filesystem"] = {
      {"read", {"/"}}, {"write", {dir.file("work")}}, {"tmpfs", {"/var/tmp"}}, {"hide", {hidden}}};
  std::string body =
      "D = A[0]\n"
      "t('visible', lambda: open(D + '/visible.txt').read())\n"
      "t('hidden', lambda: open(D + '/secret.txt').read())\n"
      "t('write', lambda: open(D + '/work/out', 'w').write('x'))\n"
      "t('ro', lambda: open(D + '/new', 'w'))\n"
      "t('tmpfs', lambda: open('/var/tmp/' + os.path.basename(D), 'w').write('y'))\n"
      "t('proc_pids', lambda: sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[0])\n";
  harness::RunResult r = run_enclosure(dir, m, python_agent(body, {dir.path()}));
  nlohmann::json res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["visible"], "visible\n") << r.describe();
  EXPECT_NE(res["hidden"], "hidden\n") << r.describe();
  EXPECT_EQ(res["write"], 1) << r.describe();
  EXPECT_EQ(res["ro"], "EROFS") << r.describe();
  EXPECT_EQ(res["tmpfs"], 1) << r.describe();
  EXPECT_EQ(res["proc_pids"], 1)
      << "the enclosure's own /proc (its pid namespace) must cover the host's\n"
      << r.describe();
  EXPECT_FALSE(
      std::filesystem::exists("/var/tmp/" + std::filesystem::path(dir.path()).filename().string()))
      << "a write to the tmpfs reached the host";

  // A mount point the read-only host tree does not have cannot be made: a clear error.
  m["filesystem"]["tmpfs"] = {dir.file("no-such-dir")};
  harness::RunResult refused = run_enclosure(dir, m, python_agent("", {dir.path()}));
  EXPECT_EQ(refused.exit_code, 125) << refused.describe();
  EXPECT_NE(refused.err.find("create it on the host"), std::string::npos) << refused.describe();
}
