// The collector's counters and their Prometheus text exposition (format 0.0.4): runs active
// and finished, events by type, denies by section, lost events, budget terminations by budget,
// and the collector's own figures. Label values come from launchers: they are escaped, and
// the number of distinct values per metric is bounded (the rest count as "other").
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "launcher/events/collector_protocol.h"

namespace launcher {

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
  // One record written to the log for a run.
  void record(const EventLineFields& fields);
  void refused() { ++refused_; }
  void duplicate() { ++duplicates_; }
  void connection_accepted() { ++connections_total_; }

  std::string render(const CollectorGauges& gauges) const;

 private:
  static void bump(std::map<std::string, uint64_t>& counts, const std::string& label);

  uint64_t runs_started_ = 0;
  uint64_t runs_finished_ = 0;
  uint64_t lost_events_ = 0;
  uint64_t refused_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t connections_total_ = 0;
  std::map<std::string, uint64_t> events_;
  std::map<std::string, uint64_t> denies_;
  std::map<std::string, uint64_t> budget_terminations_;
};

// A label value in the exposition format: \\, \" and \n escaped.
std::string prometheus_label_value(const std::string& value);

}  // namespace launcher
