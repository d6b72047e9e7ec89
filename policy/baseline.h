// Behaviour baselines (policy/MANIFEST.md `baseline`): the profile `enclosure learn` writes
// (per-window peaks of syscalls, opens, connects and execs, and the set of syscalls seen), and the
// check of one window of a run against it. Pure: the launcher reads the file and samples the
// counters.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/diagnostics.h"

namespace policy {

inline const std::vector<std::string>& baseline_metrics() {
  static const std::vector<std::string> kMetrics{"syscalls", "opens", "connects", "execs"};
  return kMetrics;
}

struct BaselineProfile {
  uint64_t window_ms = 1000;
  std::map<std::string, uint64_t> peaks;  // metric -> highest count seen in one window
  std::set<std::string> syscalls;         // every syscall seen while learning
  std::string learned_from;
  nlohmann::json to_json() const;
};

// Parses a profile file's text; errors carry the JSON pointer.
std::optional<BaselineProfile> parse_baseline_profile(const std::string& text, Diagnostics& d);

struct BaselineWindow {
  std::map<std::string, uint64_t> counts;  // metric -> count in this window
  std::set<std::string> syscalls;          // syscalls seen so far in the run
};

struct Anomaly {
  std::string what;    // "rate" or "syscall"
  std::string metric;  // for rate: the metric; for syscall: the syscall name
  uint64_t value = 0;  // the window's count
  uint64_t peak = 0;   // the profile's peak
  double limit = 0;    // peak x tolerance
};

// Anomalies of one window: a rate above peak x tolerance, a syscall never seen while learning
// (each reported once: `reported` remembers them across windows).
std::vector<Anomaly> check_baseline_window(const BaselineProfile& profile, double tolerance,
                                           const BaselineWindow& window,
                                           std::set<std::string>& reported);

}  // namespace policy
