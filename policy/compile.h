// policy::compile: Manifest -> EnforcementPlan. Pure: no syscalls, no file access.
#pragma once

#include <optional>
#include <string>

#include "policy/manifest.h"
#include "policy/plan.h"

namespace policy {

struct CompileResult {
  std::optional<EnforcementPlan> plan;
  std::string error;  // set when the manifest cannot be compiled (a template)
};

CompileResult compile(const Manifest& manifest);

// The seccomp part alone (also used by `explain` and `export`), indexed per system call for the
// supervisor (policy/seccomp_verdict.h).
SeccompProfile compile_seccomp(const Syscalls& syscalls);

// Composition rules that deny "write" or "exec" gate those calls with user notifications:
// opens for writing (decided on the flags register), calls that change the file system, and
// execve/execveat. Re-indexes the profile. Called by compile(); exposed for tests.
void add_rule_gates(SeccompProfile& profile, const std::vector<Rule>& rules);

// The system calls a profile lets through at all (outright or under an argument filter),
// sorted; for explain and diff.
std::vector<std::string> allowed_syscalls(const SeccompProfile& profile);

// Built-in grants every enclosure has (/proc read-only, the minimal /dev).
const std::vector<LandlockGrant>& builtin_landlock_grants();

}  // namespace policy
