#include "launcher/events/meter.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace launcher {
namespace {

constexpr double kMaxReportUsd = 1'000'000.0;

MeterReport rejected(std::string why) {
  MeterReport r;
  r.rejected = std::move(why);
  return r;
}

// Millionths of a dollar, rounded up; a value within floating-point noise of a whole
// millionth (0.0031 is 3099.9999999999995e-6) is that millionth.
uint64_t to_micro_usd(double usd) {
  double micro = usd * 1e6;
  double nearest = std::round(micro);
  if (std::fabs(micro - nearest) <= 1e-6 * std::max(1.0, micro))
    return static_cast<uint64_t>(nearest);
  return static_cast<uint64_t>(std::ceil(micro));
}

}  // namespace

MeterReport parse_meter_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kMeterLineMax) {
    return rejected("line longer than " + std::to_string(kMeterLineMax) + " bytes");
  }
  nlohmann::json doc = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (doc.is_discarded()) {
    // JSON has no NaN or infinities; numbers beyond a double's range do not parse either.
    bool non_finite = line.find("NaN") != std::string_view::npos ||
                      line.find("Infinity") != std::string_view::npos;
    for (size_t i = 0; !non_finite && i + 1 < line.size(); ++i) {
      if ((line[i] == 'e' || line[i] == 'E') && i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') {
        size_t j = i + 1;
        if (j < line.size() && (line[j] == '+' || line[j] == '-')) ++j;
        size_t digits = 0;
        while (j < line.size() && line[j] >= '0' && line[j] <= '9') {
          ++j;
          ++digits;
        }
        non_finite = digits >= 3;
      }
    }
    return rejected(non_finite ? "cost_usd is not finite (NaN, Infinity or out of range): not JSON"
                               : "not JSON");
  }
  if (!doc.is_object()) return rejected("not a JSON object");
  MeterReport r;
  bool has_cost = false;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == "cost_usd") {
      if (!v.is_number()) return rejected("cost_usd is not a number");
      double usd = v.get<double>();
      if (!std::isfinite(usd)) return rejected("cost_usd is not finite");
      if (usd < 0 || (v.is_number_integer() && v.get<int64_t>() < 0)) {
        return rejected("cost_usd is negative (reports can only add)");
      }
      has_cost = true;
      r.micro_usd = to_micro_usd(std::min(usd, kMaxReportUsd));
    } else if (key == "note") {
      if (!v.is_string()) return rejected("note is not a string");
      r.note = v.get<std::string>();
      if (r.note.size() > kMeterNoteMax) {
        size_t cut = kMeterNoteMax;
        // Never cut a UTF-8 sequence in two.
        while (cut > 0 && (static_cast<unsigned char>(r.note[cut]) & 0xc0) == 0x80)
          --cut;
        r.note.resize(cut);
        r.note += "...";
      }
    } else {
      return rejected("unknown key \"" + key.substr(0, 64) + "\" (expected cost_usd and note)");
    }
  }
  if (!has_cost) return rejected("cost_usd is missing");
  return r;
}

void MeterLineSplitter::feed(std::string_view bytes,
                             const std::function<void(const Line&)>& on_line) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view chunk = bytes.substr(0, nl);
    bool complete = nl != std::string_view::npos;
    bytes = complete ? bytes.substr(nl + 1) : std::string_view();
    if (skipping_) {
      if (complete) skipping_ = false;
      continue;
    }
    if (pending_.size() + chunk.size() > kMeterLineMax) {
      size_t room = kMeterLineMax - pending_.size();
      pending_.append(chunk.substr(0, room));
      on_line({pending_, true});
      pending_.clear();
      skipping_ = !complete;
      continue;
    }
    if (!complete) {
      pending_.append(chunk);
      continue;
    }
    if (pending_.empty()) {
      on_line({chunk, false});
    } else {
      pending_.append(chunk);
      on_line({pending_, false});
      pending_.clear();
    }
  }
}

void MeterLineSplitter::finish(const std::function<void(const Line&)>& on_line) {
  if (!skipping_ && !pending_.empty()) on_line({pending_, false});
  pending_.clear();
  skipping_ = false;
}

}  // namespace launcher
