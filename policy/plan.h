// EnforcementPlan: what each kernel mechanism must do for one manifest. Produced by the pure
// function policy::compile; the launcher applies it and decides nothing about meaning.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/manifest.h"

namespace policy {

// ---- filesystem view -------------------------------------------------------------------------

enum class MountKind {
  bind_read,   // read-only bind of the host path at the same path (nosuid, nodev)
  bind_write,  // writable bind of the host path (nosuid, nodev)
  tmpfs,       // fresh private writable tmpfs
  mask,        // hide: an empty read-only directory or file over the path
  tool,        // read-only bind of a tool file not otherwise reachable (and its interpreter)
};

struct MountStep {
  MountKind kind;
  std::string path;
  std::string origin;  // JSON pointer of the manifest entry, e.g. "/filesystem/read/2"
  // Mounted noexec: nothing in it can be executed or mapped executable. Set for write grants and
  // tmpfs, except a write grant that is a tree tool's directory; a tree tool inside a write grant
  // adds a bind_write step of its directory with this unset, after (under) the grant.
  bool noexec = false;
};

struct MountPlan {
  // Ordered so that every step's parent mounts come first and masks follow what they mask.
  std::vector<MountStep> steps;
};

// ---- Landlock ----------------------------------------------------------------------------------

// Abstract access rights; the launcher maps them to the ABI it negotiated.
enum LandlockAccess : uint32_t {
  kLandlockRead = 1u << 0,     // read files, list directories
  kLandlockWrite = 1u << 1,    // create, write, remove, rename (refer), truncate
  kLandlockExecute = 1u << 2,  // execute
  kLandlockDevice = 1u << 3,   // ioctl on device files
};

struct LandlockGrant {
  std::string path;
  uint32_t access = 0;
  std::string origin;
  // A tree tool's directory: it must be a directory, and the access covers its whole hierarchy.
  bool directory = false;
};

struct LandlockPlan {
  std::vector<LandlockGrant> grants;
  // TCP connect ports allowed (ABI 4+), a second layer under network mode "filtered". Empty
  // with restrict_tcp_connect set means no TCP connect at all.
  bool restrict_tcp_connect = false;
  std::vector<PortRange> tcp_connect_ports;
  bool scope_abstract_unix = true;  // ABI 6+
  bool scope_signals = true;        // ABI 6+
};

// ---- seccomp -----------------------------------------------------------------------------------

enum class SeccompVerdict {
  allow,
  deny,    // user notification: the supervisor logs it, answers EPERM (or kills, per action)
  enosys,  // answered ENOSYS without a record (clone3: libc falls back to clone)
  gate     // user notification decided by composition rules: allowed until a rule that denies
           // it fires (the decision reads no memory of the caller, so it cannot be raced)
};

enum class SeccompOp { eq, ne, gt, masked_eq };

struct SeccompCondition {
  unsigned arg = 0;
  SeccompOp op = SeccompOp::eq;
  uint64_t mask = 0;  // masked_eq only
  uint64_t value = 0;
  auto operator<=>(const SeccompCondition&) const = default;
};

struct SeccompRule {
  std::string syscall;
  SeccompVerdict verdict = SeccompVerdict::deny;
  std::vector<SeccompCondition> conditions;  // all must hold
  std::string origin;                        // "/syscalls/deny/0", "profile default: @mount"
};

// One system call as the supervisor answers its notifications: built from the profile's rules,
// origins and gates by index_notified_calls (policy/seccomp_verdict.h), so that a notification
// is a lookup by name, not a scan of every rule.
struct SeccompCallEntry {
  std::vector<SeccompRule> rules;  // its allow, deny and enosys rules (no gate rules), in order
  std::string origin;              // why it is denied, for the deny event (empty: the default's)
  std::string gate;                // "write" or "exec" when composition rules gate it; else empty
};

struct SeccompProfile {
  std::string name;                                        // "default" or "strict"
  SeccompVerdict default_verdict = SeccompVerdict::allow;  // allow (default) / deny (strict)
  std::vector<SeccompRule> rules;
  SyscallAction action = SyscallAction::errno_eperm;
  // Why a system call is denied, by name, for the `deny` event ("/syscalls/deny/0").
  std::map<std::string, std::string> origins;
  // Calls gated by composition rules: name -> "write" or "exec", and the rules (indices) that
  // deny that class once fired.
  std::map<std::string, std::string> gates;
  std::vector<size_t> write_denied_by;
  std::vector<size_t> exec_denied_by;
  // Every system call with a rule, an origin or a gate, by name (see SeccompCallEntry).
  std::map<std::string, SeccompCallEntry, std::less<>> calls;
};

// ---- network -----------------------------------------------------------------------------------

struct CidrEgress {
  Cidr cidr;
  Protocol protocol = Protocol::tcp;
  std::vector<PortRange> ports;
  size_t rule_index = 0;  // /network/egress/N
};

struct HostEgress {
  std::string pattern;
  Protocol protocol = Protocol::tcp;
  std::vector<PortRange> ports;
  size_t rule_index = 0;
  bool private_ok = false;  // admits loopback, private, link-local, ... answers (`"private"`)
};

// How the eBPF hooks treat a path unix socket, by the path as the agent spells it (they run
// before the kernel resolves it).
enum class UnixSocketAccess {
  named,    // /network/unix/N: that path exactly
  own,      // a write grant or tmpfs: every path beneath it (the agent's own sockets)
  foreign,  // a read grant, /proc, /dev: every path beneath it is refused with a deny event
};

inline const char* to_string(UnixSocketAccess a) {
  return a == UnixSocketAccess::named ? "named" : a == UnixSocketAccess::own ? "own" : "foreign";
}

// Paths that no entry covers lie in the view's empty skeleton, where no socket exists: refused
// as not found, without an event.
struct UnixSocketPath {
  std::string path;
  UnixSocketAccess access = UnixSocketAccess::named;
  std::string origin;  // /network/unix/N, /filesystem/{read,write,tmpfs}/N, /proc, /dev
};

struct NetworkPlan {
  NetworkMode mode = NetworkMode::none;
  bool new_namespace = true;      // mode none: an empty network namespace with loopback only
  std::vector<CidrEgress> cidrs;  // IPv4 and IPv6; an IPv6 block covering ::ffff:0:0/96 also
                                  // yields the IPv4 block it maps to
  std::vector<HostEgress> hosts;
  bool dns = false;
  std::vector<EgressRule> egress_rules;      // as the manifest lists them (/network/egress/N)
  std::vector<UnixSocketPath> unix_sockets;  // every other path socket is refused
};

// ---- the whole plan ----------------------------------------------------------------------------

struct ToolEntry {
  size_t index = 0;
  std::string name;
  std::string path;
  std::optional<uint64_t> max_calls;
  uint64_t cost_micro_usd = 0;
  bool tree = false;  // `path` is a directory; every regular file beneath it is this tool
};

// A kernel layer the plan needs, and why; the launcher refuses to start when the host lacks it
// and the manifest does not allow that layer to be degraded.
struct Requirement {
  std::string layer;    // "landlock", "bpf", "cgroup", "userns", "network", "seccomp"
  std::string feature;  // e.g. "landlock abi>=4 (tcp connect)", "cgroup memory controller"
  std::string origin;   // JSON pointer of what needs it, e.g. "/budgets/memory"
};

struct EnforcementPlan {
  std::string manifest_name;
  std::optional<int64_t> manifest_revision;
  std::string digest;

  Process process;
  MountPlan mounts;
  LandlockPlan landlock;
  SeccompProfile seccomp;
  NetworkPlan network;
  std::vector<ToolEntry> tools;
  Budgets budgets;
  std::vector<Rule> rules;
  Audit audit;
  std::optional<Baseline> baseline;
  OnViolation on_violation = OnViolation::deny;
  Enforcement enforcement;
  std::vector<Requirement> requirements;

  const ToolEntry* tool_by_path(const std::string& path) const {
    for (const ToolEntry& t : tools) {
      if (t.path == path) return &t;
    }
    return nullptr;
  }
};

}  // namespace policy
