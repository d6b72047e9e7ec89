// What the compiled seccomp profile says about one call the kernel filter handed to the
// supervisor (a user notification): deny it, naming why, or let composition rules decide it
// (a gated call). Pure: the supervisor looks the answer up here and carries it out; it evaluates
// no rule of the profile itself.
//
// compile_seccomp and add_rule_gates (policy/compile.h) finish by indexing the profile per
// system call (SeccompProfile::calls), so an answer is one map lookup plus the conditions of
// that call's own rules.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/plan.h"

namespace policy {

// Whether a condition holds for the argument value `value`, as the kernel filter compares it.
bool condition_holds(const SeccompCondition& condition, uint64_t value);

// The profile's own verdict on a native-ABI call, from its rules and without the
// composition-rule gates: true when one of its deny rules matches these arguments, or when an
// allow-list (default deny) has no allow rule that matches them. A gated call counts as allowed
// by an allow-list: the gate replaced its outright allowance.
bool profile_denies(const SeccompProfile& profile, std::string_view syscall,
                    const std::array<uint64_t, 6>& args);

// What the supervisor does with a notified call.
struct NotifiedCallVerdict {
  enum class Kind {
    deny,  // answer EPERM (after killing the caller when `kill`), with a deny event
    gate,  // decided by composition rules: allowed until a rule in `denied_by` has fired
  };
  Kind kind = Kind::deny;
  std::string origin;             // deny: the deny event's origin ("/syscalls/deny/0")
  bool kill = false;              // deny: the caller is killed first
  std::string gate;               // gate: the class the call belongs to, "write" or "exec"
  std::vector<size_t> denied_by;  // gate: rules (indices into plan.rules) denying that class
};

// The verdict on a native-ABI call: a gate when composition rules gate it and the profile itself
// does not deny it; otherwise a denial with the origin the profile gives (or its default's), and
// `kill` when the profile's action is kill.
NotifiedCallVerdict verdict_for(const SeccompProfile& profile, std::string_view syscall,
                                const std::array<uint64_t, 6>& args);

// The verdict on a call made through another ABI ("x32", "i386", ...): always killed.
NotifiedCallVerdict foreign_abi_verdict(std::string_view abi);

// For a gated call: the first rule of `denied_by` that has fired (bit i of `rules_fired` is rule
// i), which denies the call; nullopt when none has, and the call is allowed.
std::optional<size_t> gate_denied_by(const NotifiedCallVerdict& verdict, uint64_t rules_fired);

// (Re)builds profile.calls from its rules, origins and gates. compile_seccomp and add_rule_gates
// call it last; a profile built or changed by hand must call it before verdict_for.
void index_notified_calls(SeccompProfile& profile);

}  // namespace policy
