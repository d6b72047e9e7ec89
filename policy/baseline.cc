#include "policy/baseline.h"

#include <cmath>

#include "policy/syscall_table.h"

namespace policy {

using nlohmann::json;

json BaselineProfile::to_json() const {
  json j = {{"version", 1},
            {"window_ms", window_ms},
            {"peaks", peaks},
            {"syscalls", std::vector<std::string>(syscalls.begin(), syscalls.end())}};
  if (!learned_from.empty()) j["learned_from"] = learned_from;
  return j;
}

std::optional<BaselineProfile> parse_baseline_profile(const std::string& text, Diagnostics& d) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    d.error("", "not valid JSON: " + what);
    return std::nullopt;
  }
  if (!j.is_object()) {
    d.error("", "expected a behaviour profile object, got " + describe(j));
    return std::nullopt;
  }
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (key != "version" && key != "window_ms" && key != "peaks" && key != "syscalls" &&
        key != "learned_from") {
      d.error(pointer_join("", key),
              "unknown key; expected one of: version, window_ms, peaks, syscalls, learned_from");
    }
  }
  BaselineProfile p;
  if (!j.contains("version") || j["version"] != 1) {
    d.error("/version", "expected 1 (a profile written by `enclosure learn`)");
  }
  if (j.contains("window_ms")) {
    if (!j["window_ms"].is_number_unsigned() || j["window_ms"].get<uint64_t>() < 100 ||
        j["window_ms"].get<uint64_t>() > 3600000) {
      d.error("/window_ms",
              "expected milliseconds from 100 to 3600000, got " + describe(j["window_ms"]));
    } else {
      p.window_ms = j["window_ms"].get<uint64_t>();
    }
  }
  if (!j.contains("peaks") || !j["peaks"].is_object()) {
    d.error("/peaks", "expected an object of per-window peaks");
  } else {
    for (const auto& [metric, value] : j["peaks"].items()) {
      std::string path = pointer_join("/peaks", metric);
      bool known = false;
      for (const std::string& m : baseline_metrics())
        known = known || m == metric;
      if (!known) {
        d.error(path, "unknown metric; expected one of: syscalls, opens, connects, execs");
      } else if (!value.is_number_unsigned() &&
                 !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
        d.error(path, "expected a non-negative count, got " + describe(value));
      } else {
        p.peaks[metric] = value.get<uint64_t>();
      }
    }
  }
  if (!j.contains("syscalls") || !j["syscalls"].is_array()) {
    d.error("/syscalls", "expected the array of syscall names seen while learning");
  } else {
    for (size_t i = 0; i < j["syscalls"].size(); ++i) {
      const json& s = j["syscalls"][i];
      if (!s.is_string() || !known_syscall(s.get<std::string>())) {
        d.error(pointer_join("/syscalls", i), "expected a system call name, got " + describe(s));
      } else {
        p.syscalls.insert(s.get<std::string>());
      }
    }
  }
  if (j.contains("learned_from") && j["learned_from"].is_string())
    p.learned_from = j["learned_from"];
  if (!d.ok()) return std::nullopt;
  return p;
}

std::vector<Anomaly> check_baseline_window(const BaselineProfile& profile, double tolerance,
                                           const BaselineWindow& window,
                                           std::set<std::string>& reported) {
  std::vector<Anomaly> out;
  for (const auto& [metric, count] : window.counts) {
    auto it = profile.peaks.find(metric);
    if (it == profile.peaks.end()) continue;  // not profiled: nothing to compare with
    double limit = static_cast<double>(it->second) * tolerance;
    if (static_cast<double>(count) > limit)
      out.push_back({"rate", metric, count, it->second, limit});
  }
  for (const std::string& name : window.syscalls) {
    if (profile.syscalls.count(name) || reported.count(name)) continue;
    reported.insert(name);
    out.push_back({"syscall", name, 1, 0, 0});
  }
  return out;
}

}  // namespace policy
