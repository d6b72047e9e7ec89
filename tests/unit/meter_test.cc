// The metering channel's parser: what an agent may report (a finite, non-negative cost_usd and
// an optional note), how amounts are rounded (up, to whole millionths), and how the byte
// stream is split into bounded lines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "launcher/events/meter.h"

using launcher::kMeterLineMax;
using launcher::MeterLineSplitter;
using launcher::parse_meter_line;

namespace {

uint64_t micro(const std::string& line) {
  auto r = parse_meter_line(line);
  EXPECT_TRUE(r.accepted()) << line << ": " << r.rejected;
  return r.micro_usd.value_or(~0ULL);
}

std::string rejection(const std::string& line) {
  auto r = parse_meter_line(line);
  EXPECT_FALSE(r.accepted()) << line;
  return r.rejected;
}

struct Seen {
  std::string text;
  bool oversized;
  bool operator==(const Seen&) const = default;
};

std::vector<Seen> split(const std::vector<std::string>& chunks, bool finish = true) {
  MeterLineSplitter s;
  std::vector<Seen> out;
  auto take = [&](const MeterLineSplitter::Line& l) {
    out.push_back({std::string(l.text), l.oversized});
  };
  for (const std::string& c : chunks)
    s.feed(c, take);
  if (finish) s.finish(take);
  return out;
}

}  // namespace

TEST(Meter, AcceptsCostAndNote) {
  auto r = parse_meter_line(R"({"cost_usd": 0.0031, "note": "gpt call"})");
  ASSERT_TRUE(r.accepted()) << r.rejected;
  EXPECT_EQ(*r.micro_usd, 3100u);
  EXPECT_EQ(r.note, "gpt call");
  EXPECT_TRUE(r.rejected.empty());
}

TEST(Meter, AmountsAreWholeMillionthsRoundedUp) {
  EXPECT_EQ(micro(R"({"cost_usd": 1})"), 1000000u);
  EXPECT_EQ(micro(R"({"cost_usd": 0})"), 0u);
  EXPECT_EQ(micro(R"({"cost_usd": 0.000001})"), 1u);
  // Floating-point noise around a whole millionth is that millionth.
  EXPECT_EQ(micro(R"({"cost_usd": 0.0031})"), 3100u);
  EXPECT_EQ(micro(R"({"cost_usd": 0.29})"), 290000u);
  // Less than a millionth is never free.
  EXPECT_EQ(micro(R"({"cost_usd": 1e-9})"), 1u);
  EXPECT_EQ(micro(R"({"cost_usd": 0.0000011})"), 2u);
  // Amounts beyond $1,000,000 are clamped (they trip any budget anyway).
  EXPECT_EQ(micro(R"({"cost_usd": 1e300})"), 1000000000000u);
}

TEST(Meter, NoteIsOptionalAndBounded) {
  auto r = parse_meter_line(R"({"cost_usd": 0.5})");
  ASSERT_TRUE(r.accepted());
  EXPECT_EQ(r.note, "");
  std::string long_note(2000, 'x');
  r = parse_meter_line(R"({"cost_usd": 0.5, "note": ")" + long_note + "\"}");
  ASSERT_TRUE(r.accepted());
  EXPECT_EQ(r.note.size(), launcher::kMeterNoteMax + 3);
  // A cut never splits a UTF-8 sequence.
  std::string accents;
  for (int i = 0; i < 600; ++i)
    accents += "\xc3\xa9";
  r = parse_meter_line(R"({"cost_usd": 0.5, "note": ")" + accents + "\"}");
  ASSERT_TRUE(r.accepted());
  std::string kept = r.note.substr(0, r.note.size() - 3);
  EXPECT_EQ(kept.size() % 2, 0u);
}

TEST(Meter, TrailingCarriageReturnIsIgnored) {
  EXPECT_EQ(micro("{\"cost_usd\": 0.25}\r"), 250000u);
}

TEST(Meter, NegativeReportsAreRejected) {
  EXPECT_NE(rejection(R"({"cost_usd": -0.01})").find("negative"), std::string::npos);
  EXPECT_NE(rejection(R"({"cost_usd": -1})").find("negative"), std::string::npos);
}

TEST(Meter, NonFiniteReportsAreRejected) {
  EXPECT_NE(rejection(R"({"cost_usd": NaN})").find("not finite"), std::string::npos);
  EXPECT_NE(rejection(R"({"cost_usd": Infinity})").find("not finite"), std::string::npos);
  EXPECT_NE(rejection(R"({"cost_usd": 1e999})").find("not finite"), std::string::npos);
  EXPECT_NE(rejection(R"({"cost_usd": -1E+400})").find("not finite"), std::string::npos);
}

TEST(Meter, MalformedReportsAreRejectedWithTheirReason) {
  EXPECT_EQ(rejection("not json"), "not JSON");
  EXPECT_EQ(rejection(R"({"cost_usd": 0.1)"), "not JSON");
  EXPECT_EQ(rejection("[1, 2]"), "not a JSON object");
  EXPECT_EQ(rejection("0.5"), "not a JSON object");
  EXPECT_EQ(rejection(R"({"note": "no cost"})"), "cost_usd is missing");
  EXPECT_EQ(rejection(R"({"cost_usd": "0.1"})"), "cost_usd is not a number");
  EXPECT_EQ(rejection(R"({"cost_usd": true})"), "cost_usd is not a number");
  EXPECT_EQ(rejection(R"({"cost_usd": null})"), "cost_usd is not a number");
  EXPECT_EQ(rejection(R"({"cost_usd": 0.1, "note": 7})"), "note is not a string");
  EXPECT_NE(rejection(R"({"cost_usd": 0.1, "tokens": 7})").find("unknown key \"tokens\""),
            std::string::npos);
  EXPECT_EQ(rejection(""), "not JSON");
}

TEST(Meter, OversizedLinesAreRejected) {
  std::string line = R"({"cost_usd": 0.1, "note": ")" + std::string(kMeterLineMax, 'a') + "\"}";
  EXPECT_NE(rejection(line).find("longer than 4096"), std::string::npos);
}

TEST(Meter, SplitterJoinsLinesAcrossChunks) {
  auto lines = split({"{\"cost_usd\":", " 0.1}\n{\"cost", "_usd\": 0.2}\n"});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], (Seen{"{\"cost_usd\": 0.1}", false}));
  EXPECT_EQ(lines[1], (Seen{"{\"cost_usd\": 0.2}", false}));
}

TEST(Meter, SplitterGivesEmptyLinesAndALastLineWithoutNewline) {
  auto lines = split({"a\n\nb"});
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "a");
  EXPECT_EQ(lines[1].text, "");
  EXPECT_EQ(lines[2].text, "b");
  EXPECT_EQ(split({"a\nb"}, false).size(), 1u);
}

TEST(Meter, SplitterReportsAnOversizedLineOnceAndSkipsItsRest) {
  std::string exact(kMeterLineMax, 'x');
  auto lines = split({exact + "\n"});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_FALSE(lines[0].oversized);
  // One byte more, delivered in pieces, then a good line.
  std::string big(kMeterLineMax + 1, 'y');
  lines = split({big.substr(0, 1000), big.substr(1000), std::string(5000, 'z'), "\nok\n"});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0].oversized);
  EXPECT_EQ(lines[0].text.size(), kMeterLineMax);
  EXPECT_EQ(lines[1], (Seen{"ok", false}));
  // An oversized line cut off by the end of input is not reported twice.
  lines = split({std::string(3 * kMeterLineMax, 'q')});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].oversized);
}
