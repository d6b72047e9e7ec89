#include "launcher/events/metrics.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>
#include <vector>

#include "policy/load.h"

#ifndef ENCLOSURE_VERSION
#error "ENCLOSURE_VERSION (the project version) must be defined for enclosure_build_info"
#endif

namespace launcher {
namespace {

// The event types of policy/MANIFEST.md, "Events".
constexpr std::string_view kEventTypes[] = {"start", "exec", "tool_call",  "open",   "connect",
                                            "dns",   "deny", "budget",     "rule",   "anomaly",
                                            "cost",  "lost", "suppressed", "window", "exit"};
// The sections a deny event names (policy/MANIFEST.md, "Events": deny).
constexpr std::string_view kDenySections[] = {"syscalls", "network", "rules", "tools"};
// A tool's max_calls, besides the manifest's budgets.
constexpr std::string_view kToolBudget = "max_calls";

// "1.0", "300.0": the canonical float form OpenMetrics asks of `le`.
std::string bucket_bound(uint64_t seconds) {
  return std::to_string(seconds) + ".0";
}

std::string seconds_text(uint64_t ns) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<double>(ns) / 1e9);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

// Writes families in one format. Counter families are given without `_total`: the name of a
// counter family is `x_total` in the Prometheus text format and `x` in OpenMetrics, and its
// samples are `x_total` in both.
class ExpositionWriter {
 public:
  explicit ExpositionWriter(ExpositionFormat format) : format_(format) {}

  void gauge(std::string_view name, std::string_view help, uint64_t value) {
    header(name, "gauge", help);
    out_ << name << " " << value << "\n";
  }
  void counter(std::string_view name, std::string_view help, uint64_t value) {
    counter_header(name, help);
    out_ << name << "_total " << value << "\n";
  }
  void counter(std::string_view name, std::string_view help, std::string_view label,
               const std::map<std::string, uint64_t>& counts) {
    counter_header(name, help);
    for (const auto& [value, count] : counts) {
      out_ << name << "_total{" << label << "=\"" << prometheus_label_value(value) << "\"} "
           << count << "\n";
    }
  }
  void info_gauge(std::string_view name, std::string_view help, std::string_view label,
                  const std::string& value) {
    header(name, "gauge", help);
    out_ << name << "{" << label << "=\"" << prometheus_label_value(value) << "\"} 1\n";
  }
  // `buckets`: the count of each bound's bucket (not cumulative), then of the +Inf bucket.
  template <size_t N>
  void histogram(std::string_view name, std::string_view help,
                 const std::array<uint64_t, N>& bounds_seconds,
                 const std::array<uint64_t, N + 1>& buckets, uint64_t count, uint64_t sum_ns) {
    header(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < N; ++i) {
      cumulative += buckets[i];
      out_ << name << "_bucket{le=\"" << bucket_bound(bounds_seconds[i]) << "\"} " << cumulative
           << "\n";
    }
    out_ << name << "_bucket{le=\"+Inf\"} " << count << "\n";
    out_ << name << "_sum " << seconds_text(sum_ns) << "\n";
    out_ << name << "_count " << count << "\n";
  }
  std::string finish() {
    if (format_ == ExpositionFormat::openmetrics) out_ << "# EOF\n";
    return out_.str();
  }

 private:
  void header(std::string_view family, std::string_view type, std::string_view help) {
    out_ << "# HELP " << family << " " << help << "\n# TYPE " << family << " " << type << "\n";
  }
  void counter_header(std::string_view name, std::string_view help) {
    if (format_ == ExpositionFormat::openmetrics)
      header(name, "counter", help);
    else
      header(std::string(name) + "_total", "counter", help);
  }

  ExpositionFormat format_;
  std::ostringstream out_;
};

void zero_series(std::map<std::string, uint64_t>& counts, const auto& labels) {
  for (const auto& label : labels)
    counts.emplace(std::string(label), 0);
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

// True unless the media range's parameters include q=0 (q=0, q=0.0, q=0.000).
bool acceptable(std::string_view media_range) {
  size_t semicolon = media_range.find(';');
  while (semicolon != std::string_view::npos) {
    media_range.remove_prefix(semicolon + 1);
    semicolon = media_range.find(';');
    std::string_view parameter = trimmed(media_range.substr(0, semicolon));
    if (parameter.size() >= 2 && (parameter[0] == 'q' || parameter[0] == 'Q') &&
        parameter[1] == '=') {
      std::string_view q = parameter.substr(2);
      return q.find_first_not_of("0.") != std::string_view::npos;
    }
  }
  return true;
}

}  // namespace

std::string_view exposition_content_type(ExpositionFormat format) {
  return format == ExpositionFormat::openmetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

ExpositionFormat exposition_format_for_accept(std::string_view accept) {
  std::string text = lower(accept);
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view range = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    std::string_view type = trimmed(range.substr(0, range.find(';')));
    if (type == "application/openmetrics-text" && acceptable(range))
      return ExpositionFormat::openmetrics;
  }
  return ExpositionFormat::prometheus_text;
}

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

CollectorMetrics::CollectorMetrics() {
  zero_series(events_, kEventTypes);
  zero_series(denies_, kDenySections);
  zero_series(budget_terminations_, policy::accepted_keys().at("/budgets"));
  budget_terminations_.emplace(std::string(kToolBudget), 0);
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

std::string CollectorMetrics::manifest_label(const std::string& manifest_name) {
  std::string name = manifest_name.empty() ? "unknown" : manifest_name;
  if (manifest_names_.count(name)) return name;
  if (manifest_names_.size() >= kMaxManifestNames) return "other";
  manifest_names_.insert(name);
  return name;
}

void CollectorMetrics::observe_run_duration(uint64_t duration_ns) {
  size_t bucket = 0;
  while (bucket < kRunDurationBucketsSeconds.size() &&
         duration_ns > kRunDurationBucketsSeconds[bucket] * 1'000'000'000ULL) {
    ++bucket;
  }
  ++run_duration_buckets_[bucket];
  ++run_duration_count_;
  run_duration_sum_ns_ += duration_ns;
}

void CollectorMetrics::record(const EventLineFields& f, const std::string& manifest_name) {
  bump(events_, f.type);
  if (f.type == "start") ++runs_started_[manifest_label(manifest_name)];
  if (f.type == "exit") {
    ++runs_finished_[manifest_label(manifest_name)];
    if (f.duration_ns) observe_run_duration(*f.duration_ns);
  }
  if (f.type == "deny") bump(denies_, f.section.empty() ? "unknown" : f.section);
  if (f.type == "lost") lost_events_ += f.count.value_or(0);
  if (f.type == "budget" && f.action == "terminate")
    bump(budget_terminations_, f.name.empty() ? "unknown" : f.name);
}

std::string CollectorMetrics::render(const CollectorGauges& g, ExpositionFormat format) const {
  ExpositionWriter w(format);
  w.info_gauge("enclosure_build_info", "The collector's version.", "version", ENCLOSURE_VERSION);
  w.gauge("enclosure_runs_active", "Runs whose start is in the audit log and whose exit is not.",
          g.runs_active);
  w.counter("enclosure_runs_started", "Start records written, by manifest name.", "manifest",
            runs_started_);
  w.counter("enclosure_runs_finished", "Exit records written, by manifest name.", "manifest",
            runs_finished_);
  w.histogram("enclosure_run_duration_seconds",
              "Durations of finished runs (the duration_ns of exit records).",
              kRunDurationBucketsSeconds, run_duration_buckets_, run_duration_count_,
              run_duration_sum_ns_);
  w.counter("enclosure_events", "Event records written to the audit log, by type.", "type",
            events_);
  w.counter("enclosure_denies", "Deny records, by manifest section.", "section", denies_);
  w.counter("enclosure_lost_events",
            "Events reported lost (kernel ring buffer full, launcher buffer overflowed while the "
            "collector was away).",
            lost_events_);
  w.counter("enclosure_budget_terminations", "Runs terminated by a budget, by budget.", "budget",
            budget_terminations_);
  w.gauge("enclosure_collector_connections_open", "Launcher connections open.", g.connections);
  w.counter("enclosure_collector_connections", "Launcher connections accepted.",
            connections_total_);
  w.counter("enclosure_collector_refused",
            "Connections refused (forged run ids, wrong tokens, protocol violations).", refused_);
  w.counter("enclosure_collector_duplicates",
            "Records resent by launchers and dropped as duplicates.", duplicates_);
  w.gauge("enclosure_audit_log_lines", "Lines in the active audit log file.", g.log_lines);
  w.gauge("enclosure_audit_log_bytes", "Size of the active audit log file.", g.log_bytes);
  w.counter("enclosure_audit_log_fsyncs", "fsyncs of the audit log.", g.fsyncs);
  w.counter("enclosure_audit_log_rotations", "Rotations of the audit log.", g.rotations);
  return w.finish();
}

}  // namespace launcher
