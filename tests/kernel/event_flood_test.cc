// Floods are bounded, never silent: an agent doing 200,000 denied connects leaves an events
// file bounded by the per-run event rate, with `suppressed` events that account for every
// denial it did not write, a gap-free seq, and exact totals in the exit event and the summary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::TempDir;

namespace {

constexpr int kDeniedConnects = 200000;
constexpr uint64_t kBurst = 1000;
constexpr uint64_t kRate = 200;  // per second

// 200,000 connects to a port no rule allows, on one socket (a refused connect leaves it
// unconnected); a socket is replaced only when a connect fails otherwise.
const char* kFloodAgent = R"(
import socket, errno
port = int(A[0])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
eperm = 0
other = {}
for i in range(int(A[1])):
    try:
        s.connect(("127.0.0.1", port))
        other["connected"] = other.get("connected", 0) + 1
    except OSError as e:
        if e.errno == errno.EPERM:
            eperm += 1
        else:
            other[errname(e.errno)] = other.get(errname(e.errno), 0) + 1
            s.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
R["eperm"] = eperm
R["other"] = other
)";

// Lines of the events file(s) run_enclosure wrote in `dir` (events-N.jsonl).
size_t event_lines_in(const TempDir& dir) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    std::string name = entry.path().filename().string();
    if (name.rfind("events-", 0) != 0) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    while (std::getline(in, line))
      ++n;
  }
  return n;
}

}  // namespace

TEST(EventFlood, TwoHundredThousandDenialsLeaveABoundedLogWithExactTotals) {
  TempDir dir;
  auto m = base_manifest("event-flood", {"/usr/bin/python3"});
  // Only 127.0.0.1:1 is allowed; the agent connects to port 9.
  m["network"] = {{"mode", "filtered"},
                  {"egress", {{{"cidr", "127.0.0.1/32"}, {"ports", {1}}, {"protocol", "tcp"}}}}};
  // The ring buffer holds every record of the flood, so that no kernel record is lost and the
  // accounting below is exact.
  auto r =
      run_enclosure(dir, m, python_agent(kFloodAgent, {"9", std::to_string(kDeniedConnects)}),
                    {.extra_args = {"--event-rate", std::to_string(kRate) + "/s", "--event-burst",
                                    std::to_string(kBurst), "--ring-buffer", "64MiB"},
                     .timeout_seconds = 300});
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 4000);
  auto res = python_result(r);
  ASSERT_EQ(res["eperm"], kDeniedConnects) << res.dump();
  ASSERT_EQ(res["other"], nlohmann::json::object()) << res.dump();
  ASSERT_FALSE(r.events.empty());
  const nlohmann::json& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit");
  ASSERT_EQ(exit["budgets"]["kernel_events"]["lost"], 0) << exit.dump();
  EXPECT_EQ(exit["budgets"]["kernel_events"]["network_denials"], kDeniedConnects);
  uint64_t denials = exit["denials"].get<uint64_t>();
  EXPECT_GE(denials, static_cast<uint64_t>(kDeniedConnects));

  // seq is gap-free: nothing suppressed took a number.
  for (size_t i = 0; i < r.events.size(); ++i)
    ASSERT_EQ(r.events[i]["seq"], i) << r.events[i].dump();

  // Written deny events plus the counts of the `suppressed` events of deny: every denial.
  uint64_t written = r.of_type("deny").size();
  uint64_t suppressed = 0;
  uint64_t previous_total = 0;
  for (const auto& s : r.of_type("suppressed")) {
    if (s["of"] != "deny") continue;
    ASSERT_GT(s["count"].get<uint64_t>(), 0u) << s.dump();
    suppressed += s["count"].get<uint64_t>();
    EXPECT_EQ(s["total"].get<uint64_t>(), previous_total + s["count"].get<uint64_t>());
    previous_total = s["total"].get<uint64_t>();
    EXPECT_EQ(s["rate"], std::to_string(kRate) + "/s");
    EXPECT_EQ(s["burst"], kBurst);
    EXPECT_LE(s["since"].get<std::string>(), s["until"].get<std::string>());
  }
  EXPECT_GT(suppressed, 0u);
  EXPECT_EQ(written + suppressed, denials) << "written " << written << " suppressed " << suppressed;
  EXPECT_EQ(exit["events"]["deny"], denials) << exit["events"].dump();
  EXPECT_EQ(exit["suppressed"]["deny"], suppressed) << exit["suppressed"].dump();

  // Bounded: the burst, the sustained rate over the run, the `suppressed` lines.
  double seconds = static_cast<double>(exit["duration_ns"].get<uint64_t>()) / 1e9;
  EXPECT_LE(static_cast<double>(written), static_cast<double>(kBurst) + kRate * (seconds + 1))
      << seconds << " s";
  size_t lines = event_lines_in(dir);
  EXPECT_EQ(lines, r.events.size());
  EXPECT_LT(lines, 10000u);
  EXPECT_EQ(r.of_type("start").size(), 1u);
  EXPECT_EQ(r.first("start").value()["event_rate"]["rate"], std::to_string(kRate) + "/s");

  // The summary line on stderr has the exact total too.
  EXPECT_NE(r.err.find(std::to_string(denials) + " operations"), std::string::npos)
      << r.err.substr(0, 2000);
}

TEST(EventFlood, TheRateOptionsAreChecked) {
  TempDir dir;
  auto m = base_manifest("event-rate-options", {"/usr/bin/true"});
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--event-rate", "0/s"},
                                              {"--event-rate", "fast"},
                                              {"--event-burst", "0"},
                                              {"--event-burst", "-3"}}) {
    auto r = run_enclosure(dir, m, {"/usr/bin/true"}, {.extra_args = bad});
    EXPECT_EQ(r.exit_code, 125) << bad[0] << " " << bad[1] << ": " << r.err;
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
  }
  auto ok = run_enclosure(dir, m, {"/usr/bin/true"},
                          {.extra_args = {"--event-rate", "unlimited", "--event-burst", "5"}});
  EXPECT_EQ(ok.exit_code, 0) << ok.describe();
  ASSERT_TRUE(ok.first("start"));
  EXPECT_EQ(ok.first("start").value()["event_rate"]["rate"], "unlimited");
}
