// scan_event_line reads most lines with a plain scanner and leaves the rest to nlohmann's SAX
// parser: on lines mutated at random, whatever it accepts must be a JSON object whose run, seq
// and type it reports as a JSON parser reads them, and whatever a JSON parser rejects it rejects.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/events/collector_protocol.h"

namespace {

const std::vector<std::string> kLines = {
    R"({"ts":"2026-12-03T22:35:49.041188448Z","run":"0123456789abcdef0123456789abcdef","seq":7,"type":"open","pid":4242,"manifest":{"name":"b\u00e9nch","revision":null,"digest":"sha256:00"},"aggregated":true,"dev":42,"flags":"O_RDONLY","ino":1000,"kseq":1,"ok":true,"path":"/tmp/f\"0\\","result":3})",
    R"({"run":"0123456789abcdef0123456789abcdef","seq":3,"type":"lost","count":4,"first_seq":3,"last_seq":6,"x":[1,-2.5e3,{"a":[]},"\ud83d\ude00"]})",
    R"({"run":"0123456789abcdef0123456789abcdef","seq":18446744073709551615,"type":"exit","duration_ns":12, "section" : "s" ,"name":"n","action":"a"})",
};

TEST(CollectorScan, MutatedLinesAreReadAsAJsonParserReadsThem) {
  std::mt19937 rng(5);
  const std::string alphabet = "\"\\{}[]:,0123456789-+.eE tfnlu\x01\x1f\x7f\xc3\xa9\xed\xa0\xf4";
  size_t accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string line = kLines[rng() % kLines.size()];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && !line.empty(); ++k) {
      size_t at = rng() % line.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          line.insert(at, 1, c);
          break;
        case 1:
          line.erase(at, 1);
          break;
        default:
          line[at] = c;
      }
    }
    std::string error;
    std::optional<launcher::EventLineFields> f = launcher::scan_event_line(line, error);
    nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      ASSERT_FALSE(f) << line;
      continue;
    }
    if (!f) continue;
    ++accepted;
    ASSERT_TRUE(doc.contains("run") && doc["run"].is_string()) << line;
    EXPECT_EQ(f->run, doc["run"].get<std::string>()) << line;
    ASSERT_TRUE(doc["seq"].is_number_unsigned()) << line;
    EXPECT_EQ(f->seq, doc["seq"].get<uint64_t>()) << line;
    EXPECT_EQ(f->type, doc["type"].get<std::string>()) << line;
    EXPECT_FALSE(doc.contains("prev") || doc.contains("received")) << line;
    for (const char* key : {"first_seq", "last_seq", "count", "duration_ns"}) {
      if (!doc.contains(key) || !doc[key].is_number_unsigned()) continue;
      std::optional<uint64_t> got = key == std::string("first_seq")  ? f->first_seq
                                    : key == std::string("last_seq") ? f->last_seq
                                    : key == std::string("count")    ? f->count
                                                                     : f->duration_ns;
      EXPECT_EQ(got, doc[key].get<uint64_t>()) << key << " in " << line;
    }
  }
  EXPECT_GT(accepted, 1000u);
}

}  // namespace
