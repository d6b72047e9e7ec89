// Turns decoded ring-buffer records of the eBPF layer into events of the run's stream: exec and
// tool_call, connect, deny (network; file and exec syscalls the mount view, Landlock or a noexec
// mount refused), budget, open.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/event_decoder.h"
#include "bpf/kernel_layer.h"
#include "policy/plan.h"

namespace launcher {

struct KernelEvent {
  std::string type;
  int64_t pid = 0;
  nlohmann::json fields;
};

// What a record means for this plan (tool names, egress rules). An unknown or malformed record
// is not an event of the agent: the caller counts it.
std::vector<KernelEvent> kernel_events(const bpf::DecodedRecord& record,
                                       const policy::EnforcementPlan& plan);

// audit.files at the run's end: an `open_count` event per file and access mode (or failed path
// and errno) the enclosure opened, saying how often (policy/MANIFEST.md, events).
std::vector<KernelEvent> open_count_events(const std::vector<bpf::FileOpenCount>& counts);
// The totals of the exit event's `file_opens` figure: every audited open, the distinct keys, the
// repeats they counted, and the opens recorded one by one for want of room.
nlohmann::json file_open_totals(const enc_state& state);

// "budget" name of a kernel budget as policy/MANIFEST.md spells it, its limit and value for people.
nlohmann::json budget_fields(const bpf::BudgetRecord& b, const policy::EnforcementPlan& plan);

}  // namespace launcher
