// An OCI seccomp profile imported as /syscalls/profile is what the kernel enforces: its denials
// fail with EPERM and are logged with the file's entry as origin, the enclosure's argument
// filters and clone3's ENOSYS still hold on top of it, and a profile that `enclosure export`
// wrote decides like the manifest it came from.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_command;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;

namespace {

const char* const kErr = R"(
def e(v):
    return errname(-v) if v < 0 else v
)";

// socket(AF_PACKET, SOCK_RAW, 0), socket(AF_UNIX, SOCK_STREAM, 0), unshare(CLONE_NEWUSER),
// clone3(NULL, 0), getppid(), getsid(0): raw numbers, so that libc takes no other path.
const char* const kProbe = R"(
R["packet"] = e(sc(41, 17, 3, 0))
def ok(v):
    return "ok" if v >= 0 else e(v)
R["unix"] = ok(sc(41, 1, 1, 0))
R["newuser"] = e(sc(272, 0x10000000))
R["clone3"] = e(sc(435, 0, 0))
R["getppid"] = ok(sc(110))
R["getsid"] = ok(sc(124, 0))
)";

nlohmann::json importing(const std::string& profile) {
  auto m = base_manifest("oci-import", {"/usr/bin/python3"});
  m["syscalls"] = {{"profile", profile}};
  return m;
}

std::string origin_of(const nlohmann::json& d) {
  return d.value("origin", "");
}

}  // namespace

TEST(RunOciProfile, ImportedDenyListIsEnforcedWithTheFiltersOnTop) {
  TempDir dir;
  std::string profile = dir.write("deny.json", R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [{"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
  })");
  auto r = run_enclosure(dir, importing(profile), python_agent(std::string(kErr) + kProbe));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto res = python_result(r);
  ASSERT_TRUE(res.is_object()) << r.describe();
  EXPECT_EQ(res["getsid"], "EPERM");
  EXPECT_EQ(res["getppid"], "ok");
  EXPECT_EQ(res["unix"], "ok");
  EXPECT_EQ(res["packet"], "EPERM");   // the socket family filter, kept
  EXPECT_EQ(res["newuser"], "EPERM");  // the namespace filter, kept
  EXPECT_EQ(res["clone3"], "ENOSYS");
  auto getsid = r.denials("getsid");
  ASSERT_EQ(getsid.size(), 1u) << r.describe();
  EXPECT_EQ(origin_of(getsid[0]), "/syscalls/profile (" + profile + ": /syscalls/0)");
  auto packet = r.denials("socket");
  ASSERT_EQ(packet.size(), 1u) << r.describe();
  EXPECT_NE(origin_of(packet[0]).find("argument filter"), std::string::npos) << packet[0].dump();
  // The start event's document carries the file's digest.
  auto start = r.first("start");
  ASSERT_TRUE(start) << r.describe();
  std::string digest = (*start)["manifest_document"]["syscalls"].value("profile_digest", "");
  EXPECT_EQ(digest.rfind("sha256:", 0), 0u) << start->dump();
}

TEST(RunOciProfile, ExportedStrictProfileDecidesLikeTheStrictManifest) {
  TempDir dir;
  auto strict = base_manifest("oci-strict", {"/usr/bin/python3"});
  strict["syscalls"] = {{"profile", "strict"}};
  std::string strict_path = dir.write("strict-manifest.json", strict.dump());
  std::string profile = dir.file("strict.json");
  auto exported = run_command(
      {ENCLOSURE_BINARY, "export", "--format", "oci-seccomp", "-o", profile, strict_path});
  ASSERT_EQ(exported.exit_code, 0) << exported.describe();

  auto direct = run_enclosure(dir, strict, python_agent(std::string(kErr) + kProbe));
  auto imported = run_enclosure(dir, importing(profile), python_agent(std::string(kErr) + kProbe));
  ASSERT_EQ(direct.exit_code, 0) << direct.describe();
  ASSERT_EQ(imported.exit_code, 0) << imported.describe();
  auto a = python_result(direct), b = python_result(imported);
  ASSERT_TRUE(a.is_object() && b.is_object()) << direct.describe() << imported.describe();
  EXPECT_EQ(a, b);
  EXPECT_EQ(b["packet"], "EPERM");
  EXPECT_EQ(b["unix"], "ok");
  EXPECT_EQ(b["clone3"], "ENOSYS");
  // A call outside the allow-list is denied and logged as such.
  auto ptrace = run_enclosure(dir, importing(profile),
                              python_agent(std::string(kErr) + "R['ptrace'] = e(sc(101, 0))\n"));
  ASSERT_EQ(ptrace.exit_code, 0) << ptrace.describe();
  EXPECT_EQ(python_result(ptrace)["ptrace"], "EPERM");
  auto d = ptrace.denials("ptrace");
  ASSERT_EQ(d.size(), 1u) << ptrace.describe();
  EXPECT_EQ(origin_of(d[0]), "/syscalls/profile (" + profile + ": not in the allow-list)");
}
