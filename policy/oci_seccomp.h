// Seccomp profiles in the OCI runtime-spec format (config.json linux.seccomp, also read by Docker,
// runc and crun): export of a compiled SeccompProfile, and import of such a file as the rules of
// a manifest's `syscalls.profile`. Pure: no file access (the caller reads the file).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/diagnostics.h"
#include "policy/manifest.h"
#include "policy/plan.h"

namespace policy {

inline constexpr const char* kOciNativeArchitecture = "SCMP_ARCH_X86_64";
inline constexpr uint64_t kErrnoEperm = 1;
inline constexpr uint64_t kErrnoEnosys = 38;

// The profile as an OCI seccomp object: defaultAction (SCMP_ACT_ALLOW for a deny-list;
// SCMP_ACT_ERRNO with defaultErrnoRet 1, or SCMP_ACT_KILL_PROCESS with action kill, for an
// allow-list), architectures ["SCMP_ARCH_X86_64"], and syscalls: one entry per action and
// argument comparison list, its names sorted, entries in a canonical order (unconditional ones
// first), so that equal rule sets give identical text. A deny verdict becomes SCMP_ACT_ERRNO
// with errnoRet 1 (EPERM; OCI has no way to hand the call to the enclosure's supervisor), or
// SCMP_ACT_KILL_PROCESS with action kill; enosys becomes SCMP_ACT_ERRNO with errnoRet 38.
// Rules that repeat the default are left out. Returns nullopt with `error` set when a rule
// cannot be stated in OCI terms (two comparisons of one argument: runc would OR them).
std::optional<nlohmann::json> export_oci_seccomp(const SeccompProfile& profile, std::string& error);

struct OciImport {
  std::optional<SeccompProfile> profile;  // set when the file has no errors
  // JSON pointer (with the base) of the first SCMP_ACT_KILL* that takes effect, "" when none:
  // the enclosure answers every denial the same way, so such a file needs "action": "kill".
  std::string first_kill;
};

// Validates an OCI seccomp object strictly and converts it:
//  - defaultAction SCMP_ACT_ALLOW (or SCMP_ACT_LOG) gives a deny-list (default verdict allow);
//    SCMP_ACT_ERRNO (EPERM) and SCMP_ACT_KILL* give an allow-list (default verdict deny).
//  - Per entry, SCMP_ACT_ALLOW and SCMP_ACT_LOG allow; SCMP_ACT_ERRNO with errnoRet 1 (the
//    default) and SCMP_ACT_KILL* deny; SCMP_ACT_ERRNO with errnoRet 38 is enosys. Other errno
//    values, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_NOTIFY and listenerPath are errors.
//  - args become conditions: EQ, NE, GT and MASKED_EQ (value = mask, valueTwo = value) as they
//    are, GE as GT of value - 1, LT and LE as a union of masked comparisons (exact). When one
//    argument index appears twice in an entry, each comparison is its own rule (OR), as runc
//    does; otherwise all of them must hold (AND).
//  - Entries whose action is the default are dropped (runc skips them too).
//  - architectures (or Docker's archMap) must include SCMP_ARCH_X86_64 and may name only the
//    x86 family besides (SCMP_ARCH_X86, SCMP_ARCH_X32, which the enclosure kills outright).
//  - names must be system calls libseccomp knows on x86_64 (policy::known_syscall).
// Errors go to `diagnostics` at `base` followed by the pointer inside the file (for example
// "/syscalls/profile/syscalls/2/action"); each message starts with "in LABEL: ". `label`, the
// file's path, also goes into every rule's origin ("/syscalls/profile (LABEL: /syscalls/2)").
OciImport import_oci_seccomp(const nlohmann::json& document, const std::string& label,
                             const std::string& base, Diagnostics& diagnostics);

// The calls the launcher itself makes between loading the filter and the agent's execve (memory
// for the message, sendmsg of the filter's listener to the supervisor, close, execve). Until
// the supervisor holds the listener nobody can answer a notification, so an imported profile
// must allow these outright, or the manifest must (/syscalls/allow); the loader says so.
const std::vector<std::string>& launcher_start_syscalls();

// What compile_seccomp keeps over an imported profile, for `explain`: the system calls the file
// lets through (outright or under its own conditions) that the enclosure still filters by
// argument, and clone3, which it answers with ENOSYS unless the manifest allows it. A call is
// listed when its compiled rules differ from the file's (not when the file already says the
// same, as a profile exported by `enclosure export` does).
struct ImportAdjustment {
  std::string syscall;
  std::string kept;  // what the enclosure keeps, in words
};
std::vector<ImportAdjustment> imported_profile_adjustments(const Syscalls& syscalls);

}  // namespace policy
