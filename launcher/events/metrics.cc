#include "launcher/events/metrics.h"

#include <sstream>

namespace launcher {
namespace {

constexpr size_t kMaxLabelValues = 64;

void header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

void labelled(std::ostringstream& o, const char* name, const char* label,
              const std::map<std::string, uint64_t>& counts) {
  for (const auto& [value, count] : counts) {
    o << name << "{" << label << "=\"" << prometheus_label_value(value) << "\"} " << count << "\n";
  }
}

}  // namespace

std::string prometheus_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void CollectorMetrics::bump(std::map<std::string, uint64_t>& counts, const std::string& label) {
  auto it = counts.find(label);
  if (it != counts.end()) {
    ++it->second;
  } else if (counts.size() < kMaxLabelValues) {
    counts.emplace(label, 1);
  } else {
    ++counts["other"];
  }
}

void CollectorMetrics::record(const EventLineFields& f) {
  bump(events_, f.type);
  if (f.type == "start") ++runs_started_;
  if (f.type == "exit") ++runs_finished_;
  if (f.type == "deny") bump(denies_, f.section.empty() ? "unknown" : f.section);
  if (f.type == "lost") lost_events_ += f.count.value_or(0);
  if (f.type == "budget" && f.action == "terminate")
    bump(budget_terminations_, f.name.empty() ? "unknown" : f.name);
}

std::string CollectorMetrics::render(const CollectorGauges& g) const {
  std::ostringstream o;
  header(o, "enclosure_runs_active", "gauge",
         "Runs whose start is in the audit log and whose exit is not.");
  o << "enclosure_runs_active " << g.runs_active << "\n";
  header(o, "enclosure_runs_started_total", "counter", "Start records written.");
  o << "enclosure_runs_started_total " << runs_started_ << "\n";
  header(o, "enclosure_runs_finished_total", "counter", "Exit records written.");
  o << "enclosure_runs_finished_total " << runs_finished_ << "\n";
  header(o, "enclosure_events_total", "counter",
         "Event records written to the audit log, by type.");
  labelled(o, "enclosure_events_total", "type", events_);
  header(o, "enclosure_denies_total", "counter", "Deny records, by manifest section.");
  labelled(o, "enclosure_denies_total", "section", denies_);
  header(o, "enclosure_lost_events_total", "counter",
         "Events reported lost (kernel ring buffer full, launcher buffer overflowed while the "
         "collector was away).");
  o << "enclosure_lost_events_total " << lost_events_ << "\n";
  header(o, "enclosure_budget_terminations_total", "counter",
         "Runs terminated by a budget, by budget.");
  labelled(o, "enclosure_budget_terminations_total", "budget", budget_terminations_);
  header(o, "enclosure_collector_connections", "gauge", "Launcher connections open.");
  o << "enclosure_collector_connections " << g.connections << "\n";
  header(o, "enclosure_collector_connections_total", "counter", "Launcher connections accepted.");
  o << "enclosure_collector_connections_total " << connections_total_ << "\n";
  header(o, "enclosure_collector_refused_total", "counter",
         "Connections refused (forged run ids, wrong tokens, protocol violations).");
  o << "enclosure_collector_refused_total " << refused_ << "\n";
  header(o, "enclosure_collector_duplicates_total", "counter",
         "Records resent by launchers and dropped as duplicates.");
  o << "enclosure_collector_duplicates_total " << duplicates_ << "\n";
  header(o, "enclosure_audit_log_lines", "gauge", "Lines in the active audit log file.");
  o << "enclosure_audit_log_lines " << g.log_lines << "\n";
  header(o, "enclosure_audit_log_bytes", "gauge", "Size of the active audit log file.");
  o << "enclosure_audit_log_bytes " << g.log_bytes << "\n";
  header(o, "enclosure_audit_log_fsyncs_total", "counter", "fsyncs of the audit log.");
  o << "enclosure_audit_log_fsyncs_total " << g.fsyncs << "\n";
  header(o, "enclosure_audit_log_rotations_total", "counter", "Rotations of the audit log.");
  o << "enclosure_audit_log_rotations_total " << g.rotations << "\n";
  return o.str();
}

}  // namespace launcher
