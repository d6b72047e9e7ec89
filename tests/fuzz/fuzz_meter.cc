// Fuzz target: the metering channel (bytes an agent writes, never trusted) through the line
// splitter, in chunks whose sizes the input chooses, and each line through the report parser.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "launcher/events/meter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte sets the chunk size, as read(2) would split the stream.
  size_t chunk = 1 + data[0] % 64 * 97;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  launcher::MeterLineSplitter splitter;
  auto judge = [](const launcher::MeterLineSplitter::Line& line) {
    if (line.text.size() > launcher::kMeterLineMax) std::abort();
    if (line.oversized) return;
    launcher::MeterReport r = launcher::parse_meter_line(line.text);
    if (r.accepted() == !r.rejected.empty()) std::abort();
    if (r.accepted() && *r.micro_usd > 1'000'000'000'000ULL) std::abort();
    if (r.note.size() > launcher::kMeterNoteMax + 3) std::abort();
  };
  while (!bytes.empty()) {
    size_t n = std::min(chunk, bytes.size());
    splitter.feed(bytes.substr(0, n), judge);
    bytes.remove_prefix(n);
  }
  splitter.finish(judge);
  return 0;
}
