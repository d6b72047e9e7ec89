// Finding this process's cgroups from mountinfo and /proc/self/cgroup, in the shapes hosts and
// container runtimes make: a whole hierarchy (the host), a bind mount of the container's own
// cgroup (runc and podman on cgroup v1 and hybrid nodes: mountinfo's root field), a cgroup
// namespace, a cgroup outside the mounted part, and escaped mount points. Pure parsing; no root.
#include <gtest/gtest.h>

#include "launcher/run/cgroup.h"

using launcher::CgroupLayout;
using launcher::parse_cgroup_layout;

namespace {

const char* kHybridHost =
    "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n"
    "35 25 0:31 / /sys/fs/cgroup/pids rw,nosuid shared:15 - cgroup cgroup rw,pids\n"
    "36 25 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory\n";

const char* kHostCgroup =
    "12:pids:/user.slice/session-1.scope\n"
    "11:memory:/user.slice/session-1.scope\n"
    "0::/user.slice/session-1.scope\n";

}  // namespace

TEST(CgroupLayout, AWholeHierarchyGivesTheOwnPathUnderTheMountPoint) {
  CgroupLayout l = parse_cgroup_layout(kHybridHost, kHostCgroup);
  EXPECT_EQ(l.v2_mount, "/sys/fs/cgroup/unified");
  EXPECT_EQ(l.v2_own_dir(), "/sys/fs/cgroup/unified/user.slice/session-1.scope");
  EXPECT_EQ(l.v1_mount.at("pids") + l.v1_own.at("pids"),
            "/sys/fs/cgroup/pids/user.slice/session-1.scope");
}

TEST(CgroupLayout, ABindMountOfTheContainersOwnCgroupIsCutByItsRoot) {
  // runc on a v1/hybrid node without a cgroup namespace: each hierarchy is the container's own
  // cgroup, bind-mounted at /sys/fs/cgroup/CONTROLLER; /proc/self/cgroup names the host's path.
  std::string mountinfo =
      "700 690 0:31 /libpod_parent/libpod-abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup "
      "rw,pids\n"
      "701 690 0:26 /libpod_parent/libpod-abc /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  std::string cgroup = "12:pids:/libpod_parent/libpod-abc\n0::/libpod_parent/libpod-abc/agent\n";
  CgroupLayout l = parse_cgroup_layout(mountinfo, cgroup);
  EXPECT_EQ(l.v1_mount.at("pids") + l.v1_own.at("pids"), "/sys/fs/cgroup/pids/");
  EXPECT_EQ(l.v1_own.at("pids"), "/");
  EXPECT_EQ(l.v2_own_dir(), "/sys/fs/cgroup/unified/agent");
}

TEST(CgroupLayout, ACgroupNamespaceSeesItsRootAsSlash) {
  CgroupLayout l = parse_cgroup_layout(
      "800 790 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n", "0::/\n");
  EXPECT_EQ(l.v2_own_dir(), "/sys/fs/cgroup");
  EXPECT_EQ(l.v2_unreachable, "");
}

TEST(CgroupLayout, ACgroupOutsideTheMountedPartIsUnreachableWithAReason) {
  std::string mountinfo =
      "700 690 0:31 /kubepods/pod1 /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n"
      "701 690 0:26 /kubepods/pod1 /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  CgroupLayout l = parse_cgroup_layout(mountinfo, "12:pids:/kubepods/pod10\n0::/system.slice\n");
  EXPECT_TRUE(l.v2_mount.empty());
  EXPECT_NE(l.v2_unreachable.find("cgroupns"), std::string::npos) << l.v2_unreachable;
  EXPECT_FALSE(l.v1_own.count("pids"));  // /kubepods/pod10 is not under /kubepods/pod1
  EXPECT_NE(l.v1_unreachable.at("pids").find("/kubepods/pod10"), std::string::npos);
}

TEST(CgroupLayout, EscapedMountPointsAreDecoded) {
  CgroupLayout l =
      parse_cgroup_layout("30 25 0:26 / /mnt/cgroup\\040two rw - cgroup2 cgroup2 rw\n", "0::/a\n");
  EXPECT_EQ(l.v2_own_dir(), "/mnt/cgroup two/a");
}
