// The part of an EnforcementPlan that the eBPF layer and the run's cgroup apply, as JSON: what
// `enclosure run` sends to `enclosure daemon`. The daemon rebuilds a plan from it and checks
// every field, since the sender is an unprivileged local user.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "policy/plan.h"

namespace policy {

nlohmann::json bpf_plan_to_json(const EnforcementPlan& plan);

// A plan holding only what bpf_plan_to_json wrote (network mode, CIDR and host rules, budgets,
// audit switches, whether a baseline is set, tools, composition rules); nullopt with `error`
// naming the first bad field.
std::optional<EnforcementPlan> bpf_plan_from_json(const nlohmann::json& j, std::string& error);

}  // namespace policy
