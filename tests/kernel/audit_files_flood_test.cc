// audit.files under an open flood loses no file: the kernel records the first open of each file
// and access mode and counts the repeats (bpf/syscalls.bpf.c, audit_open), so 4 processes
// opening 2,000 files 50,000 times each leave an `open` event per file, an `open_count` per file
// whose counts add up to every open, and no lost record.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "bpf/enclosure_abi.h"
#include "harness.h"

using harness::base_manifest;
using harness::python_agent;
using harness::python_result;
using harness::run_enclosure;
using harness::TempDir;

namespace {

constexpr int kProcesses = 4;
constexpr int kOpensEach = 50000;
constexpr int kFiles = 2000;

// kProcesses processes, each opening the kFiles files of A[0] in turn, kOpensEach times in all.
const char* kOpenFloodAgent = R"(
directory, processes, opens, files = A[0], int(A[1]), int(A[2]), int(A[3])
paths = [directory + "/f%04d" % i for i in range(files)]
children = []
for p in range(processes):
    pid = os.fork()
    if pid == 0:
        done = 0
        for i in range(opens):
            os.close(os.open(paths[(i + p * 7) % files], os.O_RDONLY))
            done += 1
        os._exit(0 if done == opens else 1)
    children.append(pid)
R["failed"] = sum(1 for c in children if os.waitpid(c, 0)[1] != 0)
)";

}  // namespace

TEST(AuditFilesFlood, FourProcessesOpeningTwoThousandFilesLoseNoFile) {
  TempDir dir;
  for (int i = 0; i < kFiles; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "data/f%04d", i);
    dir.write(name, "x");
  }
  std::string data = dir.file("data");
  auto m = base_manifest("audit-files-flood", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(data);
  m["audit"] = {{"files", true}};
  // The default ring buffer; no event rate: what reaches the log is what the kernel delivered.
  auto r = run_enclosure(
      dir, m,
      python_agent(kOpenFloodAgent, {data, std::to_string(kProcesses), std::to_string(kOpensEach),
                                     std::to_string(kFiles)}),
      {.extra_args = {"--event-rate", "unlimited"}, .timeout_seconds = 300});
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 4000);
  ASSERT_EQ(python_result(r)["failed"], 0) << r.err.substr(0, 4000);

  // Every file's first open is an `open` event.
  std::map<std::string, int> first_opens;
  for (const auto& e : r.of_type("open")) {
    std::string path = e.value("path", "");
    if (path.rfind(data + "/f", 0) != 0) continue;
    EXPECT_EQ(e["aggregated"], true) << e.dump();
    EXPECT_EQ(e["ok"], true) << e.dump();
    ++first_opens[path];
  }
  EXPECT_EQ(first_opens.size(), static_cast<size_t>(kFiles));
  for (const auto& [path, n] : first_opens)
    EXPECT_EQ(n, 1) << path;

  // Every file has one `open_count`, and the counts add up to every open.
  std::map<std::string, uint64_t> counts;
  uint64_t total = 0;
  for (const auto& e : r.of_type("open_count")) {
    std::string path = e.value("path", "");
    if (path.rfind(data + "/f", 0) != 0) continue;
    EXPECT_EQ(e["access"], "O_RDONLY") << e.dump();
    EXPECT_EQ(e["repeats"].get<uint64_t>() + 1, e["opens"].get<uint64_t>()) << e.dump();
    EXPECT_EQ(counts.count(path), 0u) << "two open_count events for " << path;
    counts[path] = e["opens"].get<uint64_t>();
    total += e["opens"].get<uint64_t>();
  }
  EXPECT_EQ(counts.size(), static_cast<size_t>(kFiles));
  EXPECT_EQ(total, static_cast<uint64_t>(kProcesses) * kOpensEach);
  // Each file was opened kProcesses * kOpensEach / kFiles times.
  for (const auto& [path, n] : counts)
    EXPECT_EQ(n, static_cast<uint64_t>(kProcesses * kOpensEach / kFiles)) << path;

  // No record lost; the exit event's totals agree.
  const auto& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  EXPECT_EQ(exit["budgets"]["kernel_events"]["lost"], 0) << exit.dump();
  const auto& f = exit["budgets"]["file_opens"];
  ASSERT_TRUE(f.is_object()) << exit.dump();
  EXPECT_GE(f["opens"].get<uint64_t>(), static_cast<uint64_t>(kProcesses) * kOpensEach) << f;
  EXPECT_GE(f["files"].get<uint64_t>(), static_cast<uint64_t>(kFiles)) << f;
  EXPECT_EQ(f["unaggregated"], 0) << f;
  EXPECT_EQ(f["opens"].get<uint64_t>(), f["files"].get<uint64_t>() + f["repeats"].get<uint64_t>() +
                                            f["unaggregated"].get<uint64_t>())
      << f;
  EXPECT_TRUE(r.of_type("lost").empty()) << r.describe();
}

// A hostile agent opening more distinct names than a run may key: past the cap each open is an
// `open` event of its own (aggregated: false), counted in `unaggregated`; nothing is silent.
TEST(AuditFilesFlood, OpensPastTheRunsKeysAreRecordedOneByOneAndCounted) {
  TempDir dir;
  dir.write("data/a.txt", "x");
  auto m = base_manifest("audit-files-cap", {"/usr/bin/python3"});
  m["filesystem"]["read"].push_back(dir.file("data"));
  m["audit"] = {{"files", true}};
  constexpr int kMissing = 40000;  // ENC_FILE_OPENS_PER_RUN is 32768
  auto r = run_enclosure(dir, m,
                         python_agent(R"(
for i in range(int(A[1])):
    t("missing", lambda: os.open(A[0] + "/missing-" + str(i), os.O_RDONLY))
)",
                                      {dir.file("data"), std::to_string(kMissing)}),
                         {.extra_args = {"--event-rate", "unlimited", "--ring-buffer", "64MiB"},
                          .timeout_seconds = 300});
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 4000);
  const auto& exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit") << r.describe();
  const auto& f = exit["budgets"]["file_opens"];
  ASSERT_TRUE(f.is_object()) << exit.dump();
  EXPECT_EQ(f["files"], ENC_FILE_OPENS_PER_RUN) << f;
  uint64_t unaggregated = f["unaggregated"].get<uint64_t>();
  EXPECT_GE(unaggregated, static_cast<uint64_t>(kMissing - ENC_FILE_OPENS_PER_RUN)) << f;
  EXPECT_EQ(f["opens"].get<uint64_t>(),
            f["files"].get<uint64_t>() + f["repeats"].get<uint64_t>() + unaggregated)
      << f;
  // Every open of a missing name is in the log: a first open or one recorded by itself.
  size_t missing_events = 0, unaggregated_events = 0;
  for (const auto& e : r.of_type("open")) {
    if (e.value("path", "").find("/missing-") == std::string::npos) continue;
    ++missing_events;
    unaggregated_events += e["aggregated"] == false;
  }
  EXPECT_EQ(exit["budgets"]["kernel_events"]["lost"], 0) << exit.dump();
  EXPECT_EQ(missing_events, static_cast<size_t>(kMissing));
  EXPECT_GE(unaggregated_events, static_cast<size_t>(kMissing - ENC_FILE_OPENS_PER_RUN));
  EXPECT_LE(unaggregated_events, unaggregated);
}
