#include "policy/seccomp_verdict.h"

#include <algorithm>

namespace policy {
namespace {

const SeccompCallEntry* find_call(const SeccompProfile& profile, std::string_view syscall) {
  auto it = profile.calls.find(syscall);
  return it == profile.calls.end() ? nullptr : &it->second;
}

bool rule_matches(const SeccompRule& rule, const std::array<uint64_t, 6>& args) {
  return std::all_of(rule.conditions.begin(), rule.conditions.end(),
                     [&](const SeccompCondition& c) {
                       return condition_holds(c, c.arg < args.size() ? args[c.arg] : 0);
                     });
}

// The deny event's origin for a call the profile denies.
std::string deny_origin(const SeccompProfile& profile, const SeccompCallEntry* call) {
  if (call && !call->origin.empty()) return call->origin;
  if (profile.default_verdict == SeccompVerdict::deny) {
    return "/syscalls/profile (" + profile.name + ": not in the allow-list)";
  }
  return "/syscalls";
}

}  // namespace

bool condition_holds(const SeccompCondition& c, uint64_t value) {
  switch (c.op) {
    case SeccompOp::eq:
      return value == c.value;
    case SeccompOp::ne:
      return value != c.value;
    case SeccompOp::gt:
      return value > c.value;
    case SeccompOp::masked_eq:
      return (value & c.mask) == c.value;
  }
  return false;
}

bool profile_denies(const SeccompProfile& profile, std::string_view syscall,
                    const std::array<uint64_t, 6>& args) {
  const SeccompCallEntry* call = find_call(profile, syscall);
  bool allowed = false;
  if (call) {
    for (const SeccompRule& r : call->rules) {
      if (!rule_matches(r, args)) continue;
      if (r.verdict == SeccompVerdict::deny) return true;
      if (r.verdict == SeccompVerdict::allow) allowed = true;
    }
  }
  if (profile.default_verdict != SeccompVerdict::deny) return false;
  // An allow-list: a gated call was allowed outright before the gate replaced its allowance.
  return !allowed && !(call && !call->gate.empty());
}

NotifiedCallVerdict verdict_for(const SeccompProfile& profile, std::string_view syscall,
                                const std::array<uint64_t, 6>& args) {
  const SeccompCallEntry* call = find_call(profile, syscall);
  NotifiedCallVerdict v;
  if (call && !call->gate.empty() && !profile_denies(profile, syscall, args)) {
    v.kind = NotifiedCallVerdict::Kind::gate;
    v.gate = call->gate;
    v.denied_by = call->gate == "write" ? profile.write_denied_by : profile.exec_denied_by;
    return v;
  }
  v.origin = deny_origin(profile, call);
  v.kill = profile.action == SyscallAction::kill;
  return v;
}

NotifiedCallVerdict foreign_abi_verdict(std::string_view abi) {
  NotifiedCallVerdict v;
  v.origin = "/syscalls (foreign ABI " + std::string(abi) + ": always killed)";
  v.kill = true;
  return v;
}

std::optional<size_t> gate_denied_by(const NotifiedCallVerdict& verdict, uint64_t rules_fired) {
  if (verdict.kind != NotifiedCallVerdict::Kind::gate) return std::nullopt;
  for (size_t i : verdict.denied_by) {
    if (i < 64 && (rules_fired & (1ULL << i))) return i;
  }
  return std::nullopt;
}

void index_notified_calls(SeccompProfile& profile) {
  profile.calls.clear();
  for (const SeccompRule& r : profile.rules) {
    SeccompCallEntry& call = profile.calls[r.syscall];
    if (r.verdict != SeccompVerdict::gate) call.rules.push_back(r);
  }
  for (const auto& [name, origin] : profile.origins)
    profile.calls[name].origin = origin;
  for (const auto& [name, kind] : profile.gates)
    profile.calls[name].gate = kind;
}

}  // namespace policy
