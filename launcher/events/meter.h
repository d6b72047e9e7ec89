// The metering channel (policy/MANIFEST.md, "Reported usage"): the agent writes one JSON object per
// line to the descriptor named by ENCLOSURE_METER_FD, e.g. {"cost_usd": 0.0031, "note": "gpt
// call"}. This file is the pure part: splitting the byte stream into bounded lines and judging each
// line. No I/O; fuzzed by tests/fuzz/fuzz_meter.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace launcher {

// The longest report line, without its newline. Longer lines are rejected whole.
inline constexpr size_t kMeterLineMax = 4096;
// The longest note kept in the `cost` event.
inline constexpr size_t kMeterNoteMax = 512;

struct MeterReport {
  // Set when the report is accepted: its amount in whole millionths of a dollar, rounded up
  // (so that no report, however small, is free), and the agent's note.
  std::optional<uint64_t> micro_usd;
  std::string note;
  // Set when the report is rejected: why ("not JSON", "cost_usd is negative", ...).
  std::string rejected;
  bool accepted() const { return micro_usd.has_value(); }
};

// Judges one line (without its newline; a trailing carriage return is ignored). Accepted: a
// JSON object with "cost_usd" (a finite number >= 0) and optionally "note" (a string); nothing
// else. Amounts above $1,000,000 per report are clamped to that (they trip any budget).
MeterReport parse_meter_line(std::string_view line);

// Splits the channel's bytes into lines. A line longer than kMeterLineMax is reported once as
// oversized (with its first bytes) and the rest of it, up to its newline, is skipped.
class MeterLineSplitter {
 public:
  struct Line {
    std::string_view text;  // the line, or the first kMeterLineMax bytes of an oversized one
    bool oversized = false;
  };
  void feed(std::string_view bytes, const std::function<void(const Line&)>& on_line);
  // At end of input: a last line without a newline counts as a line.
  void finish(const std::function<void(const Line&)>& on_line);

 private:
  std::string pending_;
  bool skipping_ = false;
};

}  // namespace launcher
