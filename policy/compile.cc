#include "policy/compile.h"

#include <seccomp.h>

#include <algorithm>
#include <optional>
#include <set>

#include "policy/diagnostics.h"
#include "policy/launch.h"
#include "policy/path.h"
#include "policy/seccomp_verdict.h"
#include "policy/syscall_table.h"

namespace policy {
namespace {

constexpr uint64_t kModeTypeMask = 0xF000;  // S_IFMT
constexpr uint64_t kLow32 = 0xffffffffULL;

SeccompCondition eq(unsigned arg, uint64_t value) {
  return {arg, SeccompOp::eq, 0, value};
}
SeccompCondition ne(unsigned arg, uint64_t value) {
  return {arg, SeccompOp::ne, 0, value};
}
SeccompCondition gt(unsigned arg, uint64_t value) {
  return {arg, SeccompOp::gt, 0, value};
}
SeccompCondition masked(unsigned arg, uint64_t mask, uint64_t value) {
  return {arg, SeccompOp::masked_eq, mask, value};
}

// Condition sets under which `filter` refuses a call (for the allow-by-default profile).
std::vector<std::vector<SeccompCondition>> refused_arguments(ArgumentFilter filter,
                                                             const std::string& syscall) {
  std::vector<std::vector<SeccompCondition>> out;
  switch (filter) {
    case ArgumentFilter::socket_family:
      for (uint64_t family = 0; family < kAfMax; ++family) {
        if (family == kAfUnix || family == kAfInet || family == kAfInet6 || family == kAfNetlink) {
          continue;
        }
        out.push_back({eq(0, family)});
      }
      // Larger values, including any with upper bits set (the kernel reads an int).
      out.push_back({gt(0, kAfMax - 1)});
      out.push_back({eq(0, kAfNetlink), ne(2, kNetlinkRoute)});
      // inet and inet6: no raw or packet sockets (refused by the kernel too without
      // CAP_NET_RAW, but unlogged), no ICMP "ping" sockets. The type is compared on its low four
      // bits (the rest are SOCK_NONBLOCK/SOCK_CLOEXEC), the protocol on its low 32 bits.
      for (uint64_t family : {kAfInet, kAfInet6}) {
        out.push_back({eq(0, family), masked(1, kSockTypeMask, kSockRaw)});
        out.push_back({eq(0, family), masked(1, kSockTypeMask, kSockPacket)});
        out.push_back(
            {eq(0, family), masked(2, kLow32, family == kAfInet ? kIpprotoIcmp : kIpprotoIcmpv6)});
      }
      break;
    case ArgumentFilter::socketpair_family:
      out.push_back({ne(0, kAfUnix)});
      break;
    case ArgumentFilter::namespace_flags:
      for (uint64_t bit = 1; bit != 0; bit <<= 1) {
        if (kNamespaceCloneFlags & bit) out.push_back({masked(0, bit, bit)});
      }
      break;
    case ArgumentFilter::tty_injection:
      // The kernel reads the command as a 32-bit int: compare the low 32 bits only.
      out.push_back({masked(1, kLow32, kTiocsti)});
      out.push_back({masked(1, kLow32, kTioclinux)});
      break;
    case ArgumentFilter::personality_query:
      out.push_back({ne(0, kPersonalityQuery)});
      break;
    case ArgumentFilter::device_nodes: {
      unsigned arg = syscall == "mknodat" ? 2 : 1;
      out.push_back({masked(arg, kModeTypeMask, 0x2000)});  // S_IFCHR
      out.push_back({masked(arg, kModeTypeMask, 0x6000)});  // S_IFBLK
      break;
    }
  }
  return out;
}

// Condition sets under which `filter` admits a call (for the deny-by-default profile). Their
// union is the complement of refused_arguments(), except that the strict profile admits only
// what it names: for device_nodes the file types mknod can create, for socket_family the
// stream and datagram protocols TCP, MPTCP and UDP by exact number.
std::vector<std::vector<SeccompCondition>> admitted_arguments(ArgumentFilter filter,
                                                              const std::string& syscall) {
  std::vector<std::vector<SeccompCondition>> out;
  switch (filter) {
    case ArgumentFilter::socket_family:
      out.push_back({eq(0, kAfUnix)});
      // inet and inet6: stream sockets of TCP or MPTCP, datagram sockets of UDP, by exact
      // protocol number (so an argument with junk in its upper bits is refused too).
      for (uint64_t family : {kAfInet, kAfInet6}) {
        for (uint64_t protocol : {uint64_t{0}, kIpprotoTcp, kIpprotoMptcp}) {
          out.push_back({eq(0, family), masked(1, kSockTypeMask, kSockStream), eq(2, protocol)});
        }
        for (uint64_t protocol : {uint64_t{0}, kIpprotoUdp}) {
          out.push_back({eq(0, family), masked(1, kSockTypeMask, kSockDgram), eq(2, protocol)});
        }
      }
      out.push_back({eq(0, kAfNetlink), eq(2, kNetlinkRoute)});
      break;
    case ArgumentFilter::socketpair_family:
      out.push_back({eq(0, kAfUnix)});
      break;
    case ArgumentFilter::namespace_flags:
      out.push_back({masked(0, kNamespaceCloneFlags, 0)});
      break;
    case ArgumentFilter::tty_injection: {
      // Admit every command whose low 32 bits differ from both TIOCSTI and TIOCLINUX, as a
      // union of single masked comparisons: a differing bit where the two agree, or a value of
      // the bits where they disagree that is neither's.
      const uint64_t a = kTiocsti, b = kTioclinux;
      const uint64_t differing = (a ^ b) & kLow32;
      for (unsigned bit = 0; bit < 32; ++bit) {
        uint64_t m = 1ULL << bit;
        if (differing & m) continue;
        out.push_back({masked(1, m, (~a) & m)});
      }
      std::vector<uint64_t> bits;
      for (unsigned bit = 0; bit < 32; ++bit) {
        if (differing & (1ULL << bit)) bits.push_back(1ULL << bit);
      }
      for (uint64_t combo = 0; combo < (1ULL << bits.size()); ++combo) {
        uint64_t v = 0;
        for (size_t k = 0; k < bits.size(); ++k) {
          if (combo & (1ULL << k)) v |= bits[k];
        }
        if (v == (a & differing) || v == (b & differing)) continue;
        out.push_back({masked(1, differing, v)});
      }
      break;
    }
    case ArgumentFilter::personality_query:
      out.push_back({eq(0, kPersonalityQuery)});
      break;
    case ArgumentFilter::device_nodes: {
      unsigned arg = syscall == "mknodat" ? 2 : 1;
      for (uint64_t type : {0x0000ULL, 0x8000ULL, 0x1000ULL, 0xC000ULL}) {  // file, fifo, socket
        out.push_back({masked(arg, kModeTypeMask, type)});
      }
      break;
    }
  }
  return out;
}

const FilteredSyscall* find_filtered(const std::string& name) {
  for (const FilteredSyscall& f : filtered_syscalls()) {
    if (name == f.syscall) return &f;
  }
  return nullptr;
}

// Whether every value that satisfies `a` satisfies `b` (both on one argument); false when
// unsure.
bool condition_implies(const SeccompCondition& a, const SeccompCondition& b) {
  if (a.arg != b.arg) return false;
  if (a == b) return true;
  if (a.op == SeccompOp::eq) return condition_holds(b, a.value);
  if (a.op == SeccompOp::masked_eq && b.op == SeccompOp::masked_eq) {
    return (b.mask & ~a.mask) == 0 && (a.value & b.mask) == b.value;
  }
  if (a.op == SeccompOp::gt && b.op == SeccompOp::gt) return a.value >= b.value;
  return false;
}

// Whether every argument vector satisfying all of `a` satisfies all of `b`.
bool conditions_imply(const std::vector<SeccompCondition>& a,
                      const std::vector<SeccompCondition>& b) {
  for (const SeccompCondition& need : b) {
    bool found = false;
    for (const SeccompCondition& have : a)
      found = found || condition_implies(have, need);
    if (!found) return false;
  }
  return true;
}

// One condition equivalent to both `a` and `b` on one argument; nullopt when nothing satisfies
// both, or when no single comparison states the pair (the caller then admits nothing there,
// which only narrows).
std::optional<SeccompCondition> merge_conditions(const SeccompCondition& a,
                                                 const SeccompCondition& b) {
  if (a == b) return a;
  if (a.op == SeccompOp::eq) return condition_holds(b, a.value) ? std::optional(a) : std::nullopt;
  if (b.op == SeccompOp::eq) return condition_holds(a, b.value) ? std::optional(b) : std::nullopt;
  if (a.op == SeccompOp::masked_eq && b.op == SeccompOp::masked_eq) {
    if ((a.value & ~a.mask) || (b.value & ~b.mask)) return std::nullopt;  // never holds
    if ((a.value ^ b.value) & a.mask & b.mask) return std::nullopt;       // disagree
    return SeccompCondition{a.arg, SeccompOp::masked_eq, a.mask | b.mask, a.value | b.value};
  }
  if (a.op == SeccompOp::gt && b.op == SeccompOp::gt) return a.value > b.value ? a : b;
  return std::nullopt;
}

// The conditions under which both `a` and `b` hold, as one rule; nullopt as above.
std::optional<std::vector<SeccompCondition>> intersect(const std::vector<SeccompCondition>& a,
                                                       const std::vector<SeccompCondition>& b) {
  std::map<unsigned, SeccompCondition> by_arg;
  for (const SeccompCondition& c : a)
    by_arg.emplace(c.arg, c);
  for (const SeccompCondition& c : b) {
    auto it = by_arg.find(c.arg);
    if (it == by_arg.end()) {
      by_arg.emplace(c.arg, c);
      continue;
    }
    std::optional<SeccompCondition> merged = merge_conditions(it->second, c);
    if (!merged) return std::nullopt;
    it->second = *merged;
  }
  std::vector<SeccompCondition> out;
  for (const auto& [arg, c] : by_arg)
    out.push_back(c);
  return out;
}

// Adds `rule` to `p`: an equal rule is added once; the same comparisons with two verdicts keep
// the refusal.
void add_imported_rule(SeccompProfile& p, SeccompRule rule) {
  for (SeccompRule& r : p.rules) {
    if (r.syscall != rule.syscall || r.conditions != rule.conditions) continue;
    if (r.verdict == SeccompVerdict::allow && rule.verdict != SeccompVerdict::allow) {
      r.verdict = rule.verdict;
      r.origin = rule.origin;
    }
    return;
  }
  if (rule.verdict == SeccompVerdict::deny && !p.origins.count(rule.syscall)) {
    p.origins[rule.syscall] = rule.origin;
  }
  p.rules.push_back(std::move(rule));
}

// Whether the imported profile refuses `name` whatever its arguments.
bool refused_outright(const SeccompProfile& in, const std::string& name) {
  for (const SeccompRule& r : in.rules) {
    if (r.syscall == name && r.verdict != SeccompVerdict::allow && r.conditions.empty())
      return true;
  }
  return false;
}

std::string filter_origin(const FilteredSyscall& f) {
  return std::string("/syscalls/profile (argument filter: ") + f.description + ")";
}

// An allow-list admits a filtered call `r`: only where the filter admits it too.
void add_filtered_allow(SeccompProfile& p, const SeccompRule& r, const FilteredSyscall& f) {
  std::vector<std::vector<SeccompCondition>> admitted = admitted_arguments(f.filter, r.syscall);
  if (r.conditions.empty()) {
    for (auto& conditions : admitted) {
      add_imported_rule(p, {r.syscall, SeccompVerdict::allow, conditions, filter_origin(f)});
    }
  } else if (std::any_of(admitted.begin(), admitted.end(),
                         [&](const auto& b) { return conditions_imply(r.conditions, b); })) {
    add_imported_rule(p, r);
  } else {
    for (const auto& b : admitted) {
      if (auto both = intersect(r.conditions, b)) {
        add_imported_rule(
            p, {r.syscall, SeccompVerdict::allow, *both, r.origin + " and " + filter_origin(f)});
      }
    }
  }
  p.origins[r.syscall] = filter_origin(f);
}

// clone3's flags are out of the filter's reach: ENOSYS (libc falls back to clone, filtered),
// unless the file refuses it outright itself.
void add_imported_clone3(SeccompProfile& p, const SeccompProfile& in, bool allow_list) {
  bool file_allows = false;
  for (const SeccompRule& r : in.rules) {
    if (r.syscall == "clone3" && r.verdict == SeccompVerdict::allow) file_allows = true;
  }
  if (refused_outright(in, "clone3") || (allow_list && !file_allows)) {
    for (const SeccompRule& r : in.rules) {
      if (r.syscall == "clone3") add_imported_rule(p, r);
    }
  } else {
    add_imported_rule(
        p, {"clone3", SeccompVerdict::enosys, {}, "/syscalls/profile (clone3: libc uses clone)"});
  }
}

// compile_seccomp for a manifest whose profile is an imported OCI file: the file's rules, with
// the enclosure's argument filters and clone3 answer kept on top (an imported profile cannot
// widen them), then the manifest's deny and allow lists.
SeccompProfile compile_imported_seccomp(const Syscalls& s) {
  const SeccompProfile& in = *s.imported;
  SeccompProfile p;
  p.name = s.profile;
  p.action = s.action;
  p.default_verdict = in.default_verdict;
  const bool allow_list = in.default_verdict == SeccompVerdict::deny;
  std::map<std::string, std::string> denied_by_manifest, allowed_by_manifest;
  for (size_t i = 0; i < s.deny.size(); ++i) {
    denied_by_manifest[s.deny[i]] = pointer_join("/syscalls/deny", i);
  }
  for (size_t i = 0; i < s.allow.size(); ++i) {
    allowed_by_manifest[s.allow[i]] = pointer_join("/syscalls/allow", i);
  }
  auto decided = [&](const std::string& name) {
    return denied_by_manifest.count(name) || allowed_by_manifest.count(name);
  };

  for (const SeccompRule& r : in.rules) {
    if (decided(r.syscall) || r.syscall == "clone3") continue;
    const FilteredSyscall* f = find_filtered(r.syscall);
    if (!allow_list || !f || r.verdict != SeccompVerdict::allow) {
      add_imported_rule(p, r);
      continue;
    }
    add_filtered_allow(p, r, *f);
  }
  if (!allow_list) {
    for (const FilteredSyscall& f : filtered_syscalls()) {
      std::string name = f.syscall;
      if (decided(name) || refused_outright(in, name)) continue;
      for (auto& conditions : refused_arguments(f.filter, name)) {
        add_imported_rule(p, {name, SeccompVerdict::deny, conditions, filter_origin(f)});
      }
    }
  }
  if (!decided("clone3")) add_imported_clone3(p, in, allow_list);
  for (const auto& [name, origin] : denied_by_manifest) {
    if (!allow_list) add_imported_rule(p, {name, SeccompVerdict::deny, {}, origin});
    p.origins[name] = origin;
  }
  if (allow_list) {
    for (const auto& [name, origin] : allowed_by_manifest) {
      add_imported_rule(p, {name, SeccompVerdict::allow, {}, origin});
    }
  }
  return p;
}

size_t depth(const std::string& path) {
  return path == "/" ? 0 : static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
}

// compile_seccomp for the built-in profiles ("default" and "strict").
SeccompProfile compile_builtin_seccomp(const Syscalls& s) {
  SeccompProfile p;
  p.name = s.profile;
  p.action = s.action;
  std::map<std::string, std::string> denied_by_manifest, allowed_by_manifest;
  for (size_t i = 0; i < s.deny.size(); ++i) {
    denied_by_manifest[s.deny[i]] = pointer_join("/syscalls/deny", i);
  }
  for (size_t i = 0; i < s.allow.size(); ++i) {
    allowed_by_manifest[s.allow[i]] = pointer_join("/syscalls/allow", i);
  }
  auto add_rule = [&](const std::string& name, SeccompVerdict verdict,
                      std::vector<SeccompCondition> conditions, const std::string& origin) {
    p.rules.push_back({name, verdict, std::move(conditions), origin});
    if (verdict == SeccompVerdict::deny && !p.origins.count(name)) p.origins[name] = origin;
  };

  if (s.profile == "strict") {
    p.default_verdict = SeccompVerdict::deny;
    std::set<std::string> allowed;
    for (const char* group : strict_profile_allowed_groups()) {
      for (const char* name : find_syscall_group(group)->syscalls)
        allowed.insert(name);
    }
    for (const auto& [name, origin] : allowed_by_manifest)
      allowed.insert(name);
    for (const auto& [name, origin] : denied_by_manifest) {
      allowed.erase(name);
      p.origins[name] = origin;
    }
    for (const std::string& name : allowed) {
      const FilteredSyscall* f = find_filtered(name);
      if (f && !allowed_by_manifest.count(name)) {
        for (auto& conditions : admitted_arguments(f->filter, name)) {
          add_rule(name, SeccompVerdict::allow, conditions,
                   std::string("/syscalls/profile (argument filter: ") + f->description + ")");
        }
        p.origins[name] =
            std::string("/syscalls/profile (argument filter: ") + f->description + ")";
      } else {
        add_rule(name, SeccompVerdict::allow, {},
                 allowed_by_manifest.count(name) ? allowed_by_manifest[name]
                                                 : "/syscalls/profile (strict)");
      }
    }
    if (!allowed.count("clone3") && !denied_by_manifest.count("clone3")) {
      add_rule("clone3", SeccompVerdict::enosys, {}, "/syscalls/profile (clone3: libc uses clone)");
    }
    return p;
  }

  p.default_verdict = SeccompVerdict::allow;
  std::map<std::string, std::string> denied;  // name -> origin
  for (const char* group : default_profile_denied_groups()) {
    for (const char* name : find_syscall_group(group)->syscalls) {
      denied.emplace(name, std::string("/syscalls/profile (default: ") + group + ")");
    }
  }
  for (const auto& [name, origin] : allowed_by_manifest)
    denied.erase(name);
  for (const auto& [name, origin] : denied_by_manifest)
    denied[name] = origin;
  for (const auto& [name, origin] : denied)
    add_rule(name, SeccompVerdict::deny, {}, origin);
  for (const FilteredSyscall& f : filtered_syscalls()) {
    std::string name = f.syscall;
    if (denied.count(name) || allowed_by_manifest.count(name)) continue;
    std::string origin = std::string("/syscalls/profile (argument filter: ") + f.description + ")";
    for (auto& conditions : refused_arguments(f.filter, name)) {
      add_rule(name, SeccompVerdict::deny, conditions, origin);
    }
  }
  if (!denied.count("clone3") && !allowed_by_manifest.count("clone3")) {
    add_rule("clone3", SeccompVerdict::enosys, {}, "/syscalls/profile (clone3: libc uses clone)");
  }
  return p;
}

}  // namespace

SeccompProfile compile_seccomp(const Syscalls& s) {
  SeccompProfile p = s.imported ? compile_imported_seccomp(s) : compile_builtin_seccomp(s);
  index_notified_calls(p);
  return p;
}

std::vector<std::string> allowed_syscalls(const SeccompProfile& profile) {
  std::set<std::string> out;
  if (profile.default_verdict == SeccompVerdict::allow) {
    // Every name libseccomp knows, minus those with an unconditional deny or enosys.
    std::set<std::string> refused;
    for (const SeccompRule& r : profile.rules) {
      if (r.verdict != SeccompVerdict::allow && r.conditions.empty()) refused.insert(r.syscall);
    }
    for (int nr = 0; nr < 1024; ++nr) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      if (!name) continue;
      if (!refused.count(name)) out.insert(name);
      free(name);
    }
  } else {
    for (const SeccompRule& r : profile.rules) {
      if (r.verdict == SeccompVerdict::allow) out.insert(r.syscall);
    }
  }
  return {out.begin(), out.end()};
}

namespace {

// System calls that change the file system without opening a file for writing ...
const char* const kWriteClassSyscalls[] = {
    "creat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
    "link", "linkat", "symlink", "symlinkat", "truncate", "chmod", "fchmodat", "chown", "lchown",
    "fchownat", "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat", "setxattr",
    "lsetxattr", "removexattr", "lremovexattr", "openat2",
    // ... and through a descriptor opened earlier, whatever it was opened for.
    "ftruncate", "fallocate", "fchmod", "fchmodat2", "fchown", "fsetxattr", "fremovexattr"};
constexpr uint64_t kOpenWriteMask =
    03 /* O_ACCMODE */ | 0100 /* O_CREAT */ | 01000 /* O_TRUNC */ | 020000000 /* __O_TMPFILE */;

}  // namespace

void add_rule_gates(SeccompProfile& p, const std::vector<Rule>& rules) {
  for (size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].deny.write) p.write_denied_by.push_back(i);
    if (rules[i].deny.exec) p.exec_denied_by.push_back(i);
  }
  // A call the profile denies outright stays denied; a gate is added only for calls it lets
  // through (outright or with argument filters).
  std::set<std::string> outright_denied;
  for (const SeccompRule& r : p.rules) {
    if (r.verdict != SeccompVerdict::allow && r.conditions.empty())
      outright_denied.insert(r.syscall);
  }
  bool allow_list = p.default_verdict == SeccompVerdict::deny;
  std::set<std::string> allowed_outright;
  for (const SeccompRule& r : p.rules) {
    if (r.verdict == SeccompVerdict::allow && r.conditions.empty())
      allowed_outright.insert(r.syscall);
  }
  auto gate = [&](const std::string& name, const char* kind,
                  std::vector<std::vector<SeccompCondition>> when) {
    if (outright_denied.count(name)) return;
    if (allow_list && !allowed_outright.count(name)) return;  // denied by the allow-list already
    p.gates[name] = kind;
    std::string origin = std::string("/rules (deny ") + kind + " once a rule fires)";
    if (allow_list) {
      // Replace the outright allowance by one for the calls the gate does not cover; the rest
      // falls to the profile's default (a notification), where the supervisor decides.
      p.rules.erase(std::remove_if(p.rules.begin(), p.rules.end(),
                                   [&](const SeccompRule& r) {
                                     return r.syscall == name && r.verdict == SeccompVerdict::allow;
                                   }),
                    p.rules.end());
      if (!when.empty()) {
        unsigned arg = when[0][0].arg;
        p.rules.push_back({name,
                           SeccompVerdict::allow,
                           {{arg, SeccompOp::masked_eq, kOpenWriteMask, 0}},
                           origin});
      }
      return;
    }
    if (when.empty()) {
      p.rules.push_back({name, SeccompVerdict::gate, {}, origin});
    } else {
      for (auto& conditions : when)
        p.rules.push_back({name, SeccompVerdict::gate, conditions, origin});
    }
  };
  if (!p.write_denied_by.empty()) {
    // open and openat: only opens for writing (access mode, O_CREAT, O_TRUNC, O_TMPFILE).
    for (const auto& [name, arg] : {std::pair<const char*, unsigned>{"open", 1}, {"openat", 2}}) {
      std::vector<std::vector<SeccompCondition>> when;
      for (uint64_t bit : {01ULL, 02ULL, 0100ULL, 01000ULL, 020000000ULL}) {
        when.push_back({{arg, SeccompOp::masked_eq, bit, bit}});
      }
      gate(name, "write", when);
    }
    for (const char* name : kWriteClassSyscalls)
      gate(name, "write", {});
  }
  if (!p.exec_denied_by.empty()) {
    gate("execve", "exec", {});
    gate("execveat", "exec", {});
  }
  index_notified_calls(p);
}

const std::vector<LandlockGrant>& builtin_landlock_grants() {
  static const std::vector<LandlockGrant> kGrants{
      {"/proc", kLandlockRead, "built-in: /proc of the enclosure (read-only)"},
      {"/dev/null", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev"},
      {"/dev/zero", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev"},
      {"/dev/full", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev"},
      {"/dev/random", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev"},
      {"/dev/urandom", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev"},
      {"/dev/tty", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev"},
      {"/dev/pts", kLandlockRead | kLandlockWrite | kLandlockDevice, "built-in: /dev/pts"},
      {"/dev/shm", kLandlockRead | kLandlockWrite, "built-in: /dev/shm"},
  };
  return kGrants;
}

namespace {

// The deepest read or write grant (or tree bind) at or above `path` among `steps`, or null.
const MountStep* deepest_grant(const std::vector<MountStep>& steps, const std::string& path) {
  const MountStep* deepest = nullptr;
  for (const MountStep& s : steps) {
    if (s.kind != MountKind::bind_read && s.kind != MountKind::bind_write) continue;
    if (path_is_under(path, s.path) && (!deepest || s.path.size() > deepest->path.size())) {
      deepest = &s;
    }
  }
  return deepest;
}

// A tree tool's directory is executable: the write grant that is the tree itself loses its
// noexec, a tree deeper inside a write grant gets a writable, exec bind of its own (after the
// grant: deeper). A tree inside a read grant needs nothing (read grants are not noexec; Landlock
// gives execute to tools alone). The loader made sure every tree lies inside a read or write
// grant; the deepest one decides.
void add_tree_steps(const Manifest& m, std::vector<MountStep>& steps) {
  for (size_t i = 0; i < m.tools.size(); ++i) {
    const Tool& t = m.tools[i];
    if (!t.tree) continue;
    const MountStep* deepest = deepest_grant(steps, t.path);
    if (!deepest || deepest->kind != MountKind::bind_write) continue;
    if (deepest->path == t.path) {
      steps[static_cast<size_t>(deepest - steps.data())].noexec = false;
      continue;
    }
    steps.push_back({MountKind::bind_write, t.path, pointer_join("/tools", i) + "/path", false});
  }
}

// Mount plan: grants (write grants and tmpfs noexec), tree tools' directories, tool files
// outside the read grants and trees (a tool file inside a noexec write grant is bound over
// itself read-only and exec: it runs, and the agent cannot rewrite it), masks; parents before
// children.
std::vector<MountStep> mount_steps(const Manifest& m) {
  std::vector<MountStep> steps;
  const Filesystem& fs = m.filesystem;
  auto add_steps = [&](const std::vector<std::string>& paths, MountKind kind, const char* section) {
    for (size_t i = 0; i < paths.size(); ++i) {
      bool noexec = kind == MountKind::bind_write || kind == MountKind::tmpfs;
      steps.push_back(
          {kind, paths[i], pointer_join(std::string("/filesystem/") + section, i), noexec});
    }
  };
  add_steps(fs.read, MountKind::bind_read, "read");
  add_steps(fs.write, MountKind::bind_write, "write");
  add_steps(fs.tmpfs, MountKind::tmpfs, "tmpfs");
  add_steps(fs.hide, MountKind::mask, "hide");
  add_tree_steps(m, steps);
  for (size_t i = 0; i < m.tools.size(); ++i) {
    const Tool& t = m.tools[i];
    const MountStep* deepest = deepest_grant(steps, t.path);  // tool steps are not grants
    bool runs_there = deepest && !deepest->noexec;
    if (!t.tree && !runs_there) {
      steps.push_back({MountKind::tool, t.path, pointer_join("/tools", i) + "/path"});
    }
  }
  std::stable_sort(steps.begin(), steps.end(), [](const MountStep& a, const MountStep& b) {
    size_t da = depth(a.path), db = depth(b.path);
    if (da != db) return da < db;
    bool ma = a.kind == MountKind::mask, mb = b.kind == MountKind::mask;
    if (ma != mb) return mb;
    return a.path < b.path;
  });
  return steps;
}

// Landlock: what each granted path allows; tools alone carry EXECUTE (a tree tool for its whole
// directory).
std::vector<LandlockGrant> landlock_grants(const Manifest& m) {
  std::vector<LandlockGrant> grants;
  const Filesystem& fs = m.filesystem;
  for (size_t i = 0; i < fs.read.size(); ++i) {
    grants.push_back({fs.read[i], kLandlockRead, pointer_join("/filesystem/read", i)});
  }
  for (size_t i = 0; i < fs.write.size(); ++i) {
    grants.push_back(
        {fs.write[i], kLandlockRead | kLandlockWrite, pointer_join("/filesystem/write", i)});
  }
  for (size_t i = 0; i < fs.tmpfs.size(); ++i) {
    grants.push_back(
        {fs.tmpfs[i], kLandlockRead | kLandlockWrite, pointer_join("/filesystem/tmpfs", i)});
  }
  for (size_t i = 0; i < m.tools.size(); ++i) {
    grants.push_back({m.tools[i].path, kLandlockRead | kLandlockExecute,
                      pointer_join("/tools", i) + "/path", m.tools[i].tree});
  }
  for (const LandlockGrant& g : builtin_landlock_grants())
    grants.push_back(g);
  return grants;
}

// Network: the egress plan, and under mode "filtered" Landlock's TCP connect ports.
void plan_network(const Network& n, NetworkPlan& network, LandlockPlan& landlock) {
  network.mode = n.mode;
  network.new_namespace = n.mode == NetworkMode::none;
  network.dns = n.dns;
  network.egress_rules = n.egress;
  std::vector<PortRange> tcp_ports;
  std::map<std::pair<Cidr, Protocol>, size_t> cidr_index;
  for (size_t i = 0; i < n.egress.size(); ++i) {
    const EgressRule& r = n.egress[i];
    if (r.protocol == Protocol::tcp)
      tcp_ports.insert(tcp_ports.end(), r.ports.begin(), r.ports.end());
    if (r.is_host()) {
      network.hosts.push_back({r.host, r.protocol, r.ports, i, r.private_ok});
      continue;
    }
    auto add_cidr = [&](const Cidr& c) {
      auto key = std::make_pair(c, r.protocol);
      if (auto it = cidr_index.find(key); it != cidr_index.end()) {
        CidrEgress& existing = network.cidrs[it->second];
        existing.ports.insert(existing.ports.end(), r.ports.begin(), r.ports.end());
        existing.ports = merge_port_ranges(existing.ports);
        return;
      }
      cidr_index.emplace(key, network.cidrs.size());
      network.cidrs.push_back({c, r.protocol, r.ports, i});
    };
    add_cidr(*r.cidr);
    if (r.cidr->covers_ipv4_mapped()) add_cidr(*parse_cidr("0.0.0.0/0").value);
  }
  if (n.mode == NetworkMode::filtered) {
    if (n.dns) tcp_ports.push_back({53, 53});
    landlock.restrict_tcp_connect = true;
    landlock.tcp_connect_ports = merge_port_ranges(tcp_ports);
  }
}

// The path unix sockets the agent may reach (those /network/unix names, and its own under its
// write grants and tmpfs) and where the sockets of others may be (the read grants, and /proc and
// /dev, whose links lead back into the view). A directory whose path is too long for a socket
// address beneath it is left out.
std::vector<UnixSocketPath> plan_unix_sockets(const Manifest& m) {
  std::vector<UnixSocketPath> out;
  for (size_t i = 0; i < m.network.unix_sockets.size(); ++i) {
    out.push_back(
        {m.network.unix_sockets[i], UnixSocketAccess::named, pointer_join("/network/unix", i)});
  }
  auto add = [&](const std::vector<std::string>& dirs, UnixSocketAccess access, const char* where) {
    for (size_t i = 0; i < dirs.size(); ++i) {
      if (dirs[i].size() < kMaxUnixSocketPath)
        out.push_back({dirs[i], access, pointer_join(where, i)});
    }
  };
  add(m.filesystem.write, UnixSocketAccess::own, "/filesystem/write");
  add(m.filesystem.tmpfs, UnixSocketAccess::own, "/filesystem/tmpfs");
  add(m.filesystem.read, UnixSocketAccess::foreign, "/filesystem/read");
  out.push_back({"/proc", UnixSocketAccess::foreign, "/proc"});
  out.push_back({"/dev", UnixSocketAccess::foreign, "/dev"});
  return out;
}

// What the host must provide.
std::vector<Requirement> host_requirements(const Manifest& m) {
  std::vector<Requirement> requirements;
  auto need = [&](const char* layer, std::string feature, std::string origin) {
    requirements.push_back({layer, std::move(feature), std::move(origin)});
  };
  const Network& n = m.network;
  need("seccomp", "seccomp filter with user notification", "/syscalls");
  need("landlock", "landlock (filesystem access rights)", "/filesystem");
  need("landlock", "landlock (execute only granted tools)", "/tools");
  need("bpf",
       "bpf tp_btf/sched_process_exec (exec events; the dynamic loader is not runnable as a "
       "program)",
       "/tools");
  // Set from inside the run's pid namespace by a root launcher or by enclosure daemon: the
  // same provider as the eBPF layer, so it is missing exactly where that layer is.
  need("bpf",
       std::string(kMemfdNoexecFeature) +
           " in the enclosure's pid namespace, set by a root launcher or enclosure daemon (memfd "
           "copies of tools never execute)",
       "/tools");
  need("bpf",
       "bpf cgroup/connect_unix,sendmsg_unix, Linux 6.7 (path unix sockets only where named)",
       "/network/unix");
  if (n.mode == NetworkMode::none) need("network", "network namespace", "/network/mode");
  if (n.mode != NetworkMode::none) {
    need("landlock", "landlock abi>=6 (abstract unix socket scoping)", "/network/mode");
  }
  if (n.mode == NetworkMode::filtered) {
    need("bpf", "bpf cgroup/connect4,connect6,sendmsg4,sendmsg6,sock_create (egress filter)",
         "/network/egress");
  }
  if (n.dns) need("bpf", "bpf resolver redirection (dns)", "/network/dns");
  for (size_t i = 0; i < m.tools.size(); ++i) {
    if (m.tools[i].max_calls) {
      need("bpf", "bpf tracepoint sched_process_exec (tool call counting)",
           pointer_join("/tools", i) + "/max_calls");
    }
  }
  const Budgets& b = m.budgets;
  if (b.tool_calls)
    need("bpf", "bpf tracepoint sched_process_exec (tool call counting)", "/budgets/tool_calls");
  if (b.cost_micro_usd)
    need("bpf", "bpf tracepoint sched_process_exec (tool prices)", "/budgets/cost_usd");
  if (b.syscalls) need("bpf", "bpf tp_btf/sys_exit (syscall budget)", "/budgets/syscalls");
  if (b.egress_bytes) need("bpf", "bpf cgroup_skb/egress (byte counting)", "/budgets/egress_bytes");
  if (b.cpu_time_ns) need("cgroup", "cgroup cpu accounting (cpu.stat)", "/budgets/cpu_time");
  if (b.processes) need("cgroup", "cgroup pids controller", "/budgets/processes");
  if (b.memory_bytes) need("cgroup", "cgroup memory controller", "/budgets/memory");
  if (m.audit.files)
    need("bpf", "bpf tp_btf/sys_exit open family (file-access log)", "/audit/files");
  if (m.audit.syscalls) need("bpf", "bpf tp_btf/sys_exit (syscall histogram)", "/audit/syscalls");
  for (size_t i = 0; i < m.rules.size(); ++i) {
    need("bpf", "bpf rule state (composition rules)", pointer_join("/rules", i));
    // Writes and execs a rule denies are refused through seccomp notifications (gates).
    if (m.rules[i].deny.write || m.rules[i].deny.exec) {
      need("seccomp",
           "seccomp user notification (the write and exec calls a composition rule denies)",
           pointer_join("/rules", i));
    }
  }
  if (m.baseline) need("bpf", "bpf counters (behaviour baseline)", "/baseline");

  return requirements;
}

}  // namespace

CompileResult compile(const Manifest& m) {
  CompileResult result;
  if (m.is_template()) {
    std::string names;
    for (const std::string& n : m.unresolved)
      names += (names.empty() ? "" : ", ") + n;
    result.error = "context variables without a value: " + names + " (give them with --context)";
    return result;
  }
  EnforcementPlan plan;
  plan.manifest_name = m.metadata.name;
  plan.manifest_revision = m.metadata.revision;
  plan.digest = m.digest;
  plan.process = m.process;
  plan.mounts.steps = mount_steps(m);
  plan.landlock.grants = landlock_grants(m);
  plan_network(m.network, plan.network, plan.landlock);
  plan.network.unix_sockets = plan_unix_sockets(m);
  plan.seccomp = compile_seccomp(m.syscalls);
  add_rule_gates(plan.seccomp, m.rules);
  for (size_t i = 0; i < m.tools.size(); ++i) {
    const Tool& t = m.tools[i];
    plan.tools.push_back({i, t.name, t.path, t.max_calls, t.cost_micro_usd, t.tree});
  }
  plan.budgets = m.budgets;
  plan.rules = m.rules;
  plan.audit = m.audit;
  plan.baseline = m.baseline;
  plan.on_violation = m.on_violation;
  plan.enforcement = m.enforcement;
  plan.requirements = host_requirements(m);
  result.plan = std::move(plan);
  return result;
}

}  // namespace policy
