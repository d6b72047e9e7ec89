// `run --events journal` and `collect --events journal`: a run's events reach a journal socket
// ($ENCLOSURE_JOURNAL_SOCKET, here a test-owned AF_UNIX datagram socket) in the native protocol,
// one entry per event, with the documented fields; and a journal that is not there is a launch
// error naming it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using harness::base_manifest;
using harness::run_enclosure;
using harness::RunResult;
using harness::TempDir;
using nlohmann::json;

namespace {

// The fields of one entry in the native protocol: KEY=VALUE lines, or KEY, newline, 64-bit
// little-endian length, value, newline (a value with a newline: the agent's command here).
std::map<std::string, std::string> native_fields(const std::string& data) {
  std::map<std::string, std::string> out;
  size_t at = 0;
  while (at < data.size()) {
    size_t nl = data.find('\n', at);
    if (nl == std::string::npos) break;
    std::string line = data.substr(at, nl - at);
    size_t eq = line.find('=');
    if (eq != std::string::npos) {
      out[line.substr(0, eq)] = line.substr(eq + 1);
      at = nl + 1;
      continue;
    }
    if (data.size() < nl + 9) break;
    uint64_t size = 0;
    for (int i = 7; i >= 0; --i)
      size = (size << 8) | static_cast<uint8_t>(data[nl + 1 + i]);
    if (data.size() < nl + 9 + size + 1) break;
    out[line] = data.substr(nl + 9, size);
    at = nl + 9 + size + 1;
  }
  return out;
}

int bound_datagram_socket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::vector<std::map<std::string, std::string>> received(int fd) {
  std::vector<std::map<std::string, std::string>> out;
  std::string buf(1 << 20, '\0');
  struct pollfd p = {fd, POLLIN, 0};
  while (::poll(&p, 1, 200) == 1) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    out.push_back(native_fields(buf.substr(0, static_cast<size_t>(n))));
  }
  return out;
}

}  // namespace

TEST(JournalEvents, EveryEventOfARunIsAJournalEntryWithTheDocumentedFields) {
  TempDir dir;
  std::string socket_path = dir.file("journal.socket");
  int fd = bound_datagram_socket(socket_path);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto m = base_manifest("journal", {"/usr/bin/python3"});
  RunResult r = run_enclosure(
      dir, m, harness::python_agent("t('ptrace', lambda: libc.ptrace(0, 0, 0, 0))"),
      {.extra_args = {"--events", "journal"}, .env = {{"ENCLOSURE_JOURNAL_SOCKET", socket_path}}});
  std::vector<std::map<std::string, std::string>> entries = received(fd);
  ::close(fd);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(entries.size(), r.events.size()) << r.describe();
  for (size_t i = 0; i < entries.size(); ++i) {
    const json& e = r.events[i];
    auto& f = entries[i];
    std::string type = e["type"];
    EXPECT_EQ(f["ENCLOSURE_TYPE"], type);
    EXPECT_EQ(f["ENCLOSURE_SEQ"], std::to_string(e["seq"].get<uint64_t>()));
    EXPECT_EQ(f["ENCLOSURE_RUN"], e["run"].get<std::string>());
    EXPECT_EQ(f["SYSLOG_IDENTIFIER"], "enclosure");
    EXPECT_EQ(f["PRIORITY"], type == "deny" || type == "budget" ? "4" : "6") << type;
    EXPECT_EQ(f["MESSAGE_ID"].size(), 32u) << type;
    EXPECT_EQ(f["MESSAGE"].rfind("enclosure " + type + ": ", 0), 0u) << f["MESSAGE"];
    EXPECT_EQ(json::parse(f["ENCLOSURE_JSON"]), e) << "the entry's JSON is the event";
  }
  ASSERT_TRUE(r.first("deny")) << r.describe();
  json exit = r.events.back();
  ASSERT_EQ(exit["type"], "exit");
  bool reported = false;
  for (const json& d : exit.value("delivery", json::array())) {
    if (d.value("destination", "").find("journal") != std::string::npos) {
      reported = true;
      EXPECT_EQ(d["failed"], 0) << d.dump();
    }
  }
  EXPECT_TRUE(reported) << exit.dump();
}

TEST(JournalEvents, AMissingJournalIsALaunchErrorNamingIt) {
  TempDir dir;
  std::string socket_path = dir.file("no-journal.socket");
  RunResult r = run_enclosure(
      dir, base_manifest("journal", {"/usr/bin/true"}), {"/usr/bin/true"},
      {.extra_args = {"--events", "journal"}, .env = {{"ENCLOSURE_JOURNAL_SOCKET", socket_path}}});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find(socket_path), std::string::npos) << r.err;
}

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `enclosure collect ... --events journal` in the background, sending to `journal_socket`.
pid_t start_collector(const TempDir& dir, const std::string& journal_socket) {
  std::string err = dir.file("collector.err");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("ENCLOSURE_JOURNAL_SOCKET", journal_socket.c_str(), 1);
    int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::dup2(fd, 2);
    std::string bin = harness::enclosure_binary();
    std::string listen = "unix:" + dir.file("collector.sock");
    std::string log = dir.file("audit.log");
    ::execl(bin.c_str(), bin.c_str(), "collect", "--listen", listen.c_str(), "--audit-log",
            log.c_str(), "--events", "journal", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  harness::wait_until([&] { return slurp(err).find("listening on") != std::string::npos; }, 10000);
  return pid;
}

}  // namespace

TEST(JournalEvents, TheCollectorSendsEveryRunRecordToTheJournal) {
  TempDir dir;
  std::string socket_path = dir.file("journal.socket");
  int fd = bound_datagram_socket(socket_path);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  pid_t collector = start_collector(dir, socket_path);
  ASSERT_GT(collector, 0);
  RunResult r = run_enclosure(dir, base_manifest("journal", {"/usr/bin/true"}), {"/usr/bin/true"},
                              {.extra_args = {"--events", "unix:" + dir.file("collector.sock")}});
  ::kill(collector, SIGTERM);
  int status = 0;
  ::waitpid(collector, &status, 0);
  std::vector<std::map<std::string, std::string>> entries = received(fd);
  ::close(fd);
  ASSERT_EQ(r.exit_code, 0) << r.describe() << slurp(dir.file("collector.err"));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir.file("collector.err"));
  std::vector<json> logged;
  std::istringstream lines(slurp(dir.file("audit.log")));
  std::string line;
  while (std::getline(lines, line)) {
    json record = json::parse(line);
    if (record.value("type", "") != "collector") logged.push_back(record);
  }
  ASSERT_FALSE(logged.empty());
  ASSERT_EQ(entries.size(), logged.size()) << slurp(dir.file("audit.log"));
  for (size_t i = 0; i < entries.size(); ++i) {
    json sent = json::parse(entries[i]["ENCLOSURE_JSON"]);
    EXPECT_EQ(sent["seq"], logged[i]["seq"]);
    EXPECT_EQ(sent["type"], logged[i]["type"]);
    EXPECT_EQ(entries[i]["ENCLOSURE_TYPE"], logged[i]["type"].get<std::string>());
    EXPECT_EQ(entries[i]["SYSLOG_IDENTIFIER"], "enclosure");
  }
  EXPECT_EQ(entries.front()["ENCLOSURE_TYPE"], "start");
  EXPECT_EQ(entries.back()["ENCLOSURE_TYPE"], "exit");
}
