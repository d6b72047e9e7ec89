// `enclosure audit show`: the audit log as a readable timeline per run, for auditors: who
// approved the permission set and why, what the agent ran, what it may read and write, what it
// opened, where it connected, what was denied, and the budgets at exit. Pure: records in, text
// out.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace launcher {

// Seconds and nanoseconds since the epoch of an RFC 3339 time ("2026-11-28T16:02:44.1Z",
// "2026-11-28T17:02:44+01:00"), or nullopt.
std::optional<std::pair<int64_t, int64_t>> parse_rfc3339(std::string_view text);

struct TimelineFilter {
  std::string run;              // only this run (and collector records about it)
  std::set<std::string> types;  // only these record types; empty: all
  std::optional<std::pair<int64_t, int64_t>> since;  // only records at or after
};

// The one-line human summary of an event (what the timeline prints after its type).
std::string event_summary(const nlohmann::json& record);

// Whether one record passes the filter (for --json, which prints records as they are).
bool timeline_selects(const nlohmann::json& record, const TimelineFilter& filter);

// The text timeline of the records (in log order) that pass the filter.
std::string render_timeline(const std::vector<nlohmann::json>& records,
                            const TimelineFilter& filter);

}  // namespace launcher
