// System call groups as data tables (in the manner of systemd's seccomp-util.c), the two
// profiles of policy/MANIFEST.md built from them, and the argument filters both profiles share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace policy {

// Where a group's name and members come from. A group that borrows a systemd name has exactly
// systemd's members (src/shared/seccomp-util.c, syscall_filter_sets[], at kSystemdGroupsVersion);
// a group of this project's own has a name systemd does not use.
enum class GroupOrigin { systemd, enclosure };
inline constexpr const char* kSystemdGroupsVersion = "v259";

struct SyscallGroup {
  const char* name;         // "@mount"
  const char* description;  // for `explain`
  GroupOrigin origin;
  // The members the profiles apply: those libseccomp numbers on x86_64.
  std::vector<const char*> syscalls;
  // Members of the definition left out: other architectures' calls (systemd's lists name them,
  // e.g. "chown32") and calls too new for the libseccomp of this build. Empty for our own groups.
  std::vector<const char*> skipped;
};

// Every group known to this build.
const std::vector<SyscallGroup>& syscall_groups();
const SyscallGroup* find_syscall_group(std::string_view name);

// Groups the "default" profile denies (everything else is allowed).
const std::vector<const char*>& default_profile_denied_groups();
// Groups the "strict" profile allows (everything else is denied).
const std::vector<const char*>& strict_profile_allowed_groups();

// True when libseccomp knows the name on the native architecture.
bool known_syscall(const std::string& name);

// Argument filters applied by both profiles (unless the manifest allows the call outright).
// Each describes, for one system call, which argument values are refused.
enum class ArgumentFilter {
  socket_family,      // socket(): only AF_UNIX, AF_INET, AF_INET6 (no raw, packet or ICMP),
                      // AF_NETLINK/NETLINK_ROUTE
  socketpair_family,  // socketpair(): only AF_UNIX
  namespace_flags,    // clone(), unshare(): no CLONE_NEW* flag
  tty_injection,      // ioctl(): no TIOCSTI or TIOCLINUX, compared on the low 32 bits
  personality_query,  // personality(): only the query 0xffffffff
  device_nodes,       // mknod(), mknodat(): no character or block devices
};

struct FilteredSyscall {
  const char* syscall;
  ArgumentFilter filter;
  const char* description;
};
const std::vector<FilteredSyscall>& filtered_syscalls();

// Constants the filters use (kept here so that policy and its tests agree with the launcher).
inline constexpr uint64_t kNamespaceCloneFlags =
    0x00020000ULL /* NEWNS */ | 0x02000000ULL /* NEWCGROUP */ | 0x04000000ULL /* NEWUTS */ |
    0x08000000ULL /* NEWIPC */ | 0x10000000ULL /* NEWUSER */ | 0x20000000ULL /* NEWPID */ |
    0x40000000ULL /* NEWNET */ | 0x00000080ULL /* NEWTIME */;
inline constexpr uint64_t kTiocsti = 0x5412;
inline constexpr uint64_t kTioclinux = 0x541C;
inline constexpr uint64_t kPersonalityQuery = 0xffffffffULL;
inline constexpr uint64_t kAfUnix = 1, kAfInet = 2, kAfInet6 = 10, kAfNetlink = 16;
inline constexpr uint64_t kNetlinkRoute = 0;
inline constexpr uint64_t kSockTypeMask = 0xf, kSockStream = 1, kSockDgram = 2, kSockRaw = 3,
                          kSockPacket = 10;
inline constexpr uint64_t kIpprotoIcmp = 1, kIpprotoTcp = 6, kIpprotoUdp = 17, kIpprotoIcmpv6 = 58,
                          kIpprotoMptcp = 262;
inline constexpr uint64_t kAfMax = 46;  // families are 0..45 on Linux 6.x

}  // namespace policy
