// The collector's counters and their exposition: runs active, started and finished (by manifest
// name), run durations, events by type, denies by section, lost events, budget terminations by
// budget, the build, and the collector's own figures.
//
// Two formats, chosen by the scraper's Accept header (launcher/events/metrics_endpoint.h): the
// Prometheus text format 0.0.4 by default (what `promtool check metrics` and the classic parsers
// read) and OpenMetrics 1.0.0 on request (application/openmetrics-text; it ends with `# EOF`).
// One text cannot be both: a counter's HELP and TYPE lines name `x_total` in 0.0.4 and `x` in
// OpenMetrics, and each parser refuses the other's form. The samples are the same in both.
//
// Every family name is distinct under OpenMetrics, suffixes included (a counter `x` reserves
// `x`, `x_total` and `x_created`; a histogram `x` reserves `x_bucket`, `x_count`, `x_sum` and
// `x_created`). Label values come from launchers: they are escaped, and bounded per metric: at
// most kMaxLabelValues distinct values (the rest count as "other"), and at most
// kMaxManifestNames manifest names (the names past the first kMaxManifestNames seen since the
// collector started count as "other"). The known event types, deny sections and budget names
// have a series from the start, at 0, so that `increase()` sees their first event.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "launcher/events/collector_protocol.h"

namespace launcher {

enum class ExpositionFormat { prometheus_text, openmetrics };

// The Content-Type of a page in that format.
std::string_view exposition_content_type(ExpositionFormat format);
// The format an HTTP Accept header value asks for: OpenMetrics when it names
// application/openmetrics-text (without q=0), else the Prometheus text format.
ExpositionFormat exposition_format_for_accept(std::string_view accept);

struct CollectorGauges {
  uint64_t runs_active = 0;
  uint64_t connections = 0;
  uint64_t log_lines = 0;  // in the active file
  uint64_t log_bytes = 0;
  uint64_t fsyncs = 0;
  uint64_t rotations = 0;
};

class CollectorMetrics {
 public:
  static constexpr size_t kMaxLabelValues = 64;
  static constexpr size_t kMaxManifestNames = 32;
  // Upper bounds of enclosure_run_duration_seconds's buckets, in seconds (then +Inf).
  static constexpr std::array<uint64_t, 12> kRunDurationBucketsSeconds{
      1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 86400};

  CollectorMetrics();

  // One record written to the log for a run of the manifest named `manifest_name`.
  void record(const EventLineFields& fields, const std::string& manifest_name = "");
  void refused() { ++refused_; }
  void duplicate() { ++duplicates_; }
  void connection_accepted() { ++connections_total_; }

  std::string render(const CollectorGauges& gauges,
                     ExpositionFormat format = ExpositionFormat::prometheus_text) const;

 private:
  static void bump(std::map<std::string, uint64_t>& counts, const std::string& label);
  // The manifest label of a run: its name while fewer than kMaxManifestNames are known.
  std::string manifest_label(const std::string& manifest_name);
  void observe_run_duration(uint64_t duration_ns);

  uint64_t lost_events_ = 0;
  uint64_t refused_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t connections_total_ = 0;
  std::set<std::string> manifest_names_;
  std::map<std::string, uint64_t> runs_started_;   // by manifest label
  std::map<std::string, uint64_t> runs_finished_;  // by manifest label
  std::map<std::string, uint64_t> events_;
  std::map<std::string, uint64_t> denies_;
  std::map<std::string, uint64_t> budget_terminations_;
  // Runs per bucket of kRunDurationBucketsSeconds (not cumulative), then the runs past the last.
  std::array<uint64_t, kRunDurationBucketsSeconds.size() + 1> run_duration_buckets_{};
  uint64_t run_duration_count_ = 0;
  uint64_t run_duration_sum_ns_ = 0;
};

// A label value in the exposition format: \\, \" and \n escaped.
std::string prometheus_label_value(const std::string& value);

}  // namespace launcher
