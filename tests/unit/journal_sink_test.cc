// `--events journal`: the sink's datagrams, received on a test-owned AF_UNIX datagram socket and
// parsed as journald parses the native protocol, carry the documented fields; a value with a
// newline uses the length-prefixed form; an entry too large for one datagram arrives as a
// sealed memfd passed with SCM_RIGHTS.
#include "launcher/events/journal_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "launcher/events/event.h"

using launcher::EventSink;
using nlohmann::ordered_json;

namespace {

using Entry = std::multimap<std::string, std::string>;

// Parses one entry of the native protocol as journald does (KEY=VALUE lines, or KEY, newline,
// 64-bit little-endian length, value, newline). Fails the test on malformed input.
Entry parse_native(const std::string& data) {
  Entry out;
  size_t at = 0;
  while (at < data.size()) {
    size_t nl = data.find('\n', at);
    EXPECT_NE(nl, std::string::npos) << "an unterminated field";
    if (nl == std::string::npos) break;
    std::string line = data.substr(at, nl - at);
    size_t eq = line.find('=');
    if (eq != std::string::npos) {
      out.emplace(line.substr(0, eq), line.substr(eq + 1));
      at = nl + 1;
      continue;
    }
    EXPECT_GE(data.size(), nl + 9) << "a binary field without its length";
    if (data.size() < nl + 9) break;
    uint64_t size = 0;
    for (int i = 7; i >= 0; --i)
      size = (size << 8) | static_cast<uint8_t>(data[nl + 1 + i]);
    EXPECT_GE(data.size(), nl + 9 + size + 1);
    out.emplace(line, data.substr(nl + 9, size));
    EXPECT_EQ(data[nl + 9 + size], '\n');
    at = nl + 9 + size + 1;
  }
  for (const auto& [key, value] : out) {
    (void)value;
    for (char c : key)
      EXPECT_TRUE(std::isupper(static_cast<unsigned char>(c)) || std::isdigit(c) || c == '_')
          << "not a journal field name: " << key;
  }
  return out;
}

// A datagram socket standing in for journald's.
class TestJournal {
 public:
  TestJournal() {
    dir_ = std::filesystem::temp_directory_path() /
           ("enclosure-journal-" + std::to_string(::getpid()) + "-" + std::to_string(++count_));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "socket").string();
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
  }
  ~TestJournal() {
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }

  // The next entry: the datagram's bytes, or the content of the memfd it passed.
  std::optional<std::string> receive(bool& via_memfd) {
    struct pollfd p = {fd_, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return std::nullopt;
    std::string buf(1 << 20, '\0');
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct iovec iov = {buf.data(), buf.size()};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return std::nullopt;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    via_memfd = c && c->cmsg_type == SCM_RIGHTS;
    if (!via_memfd) return buf.substr(0, static_cast<size_t>(n));
    EXPECT_EQ(n, 0) << "a memfd entry carries no data";
    int memfd;
    std::memcpy(&memfd, CMSG_DATA(c), sizeof memfd);
    int seals = ::fcntl(memfd, F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE),
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
        << "journald only takes a sealed memfd";
    struct stat st {};
    ::fstat(memfd, &st);
    std::string content(static_cast<size_t>(st.st_size), '\0');
    EXPECT_EQ(::pread(memfd, content.data(), content.size(), 0), st.st_size);
    ::close(memfd);
    return content;
  }

 private:
  static inline int count_ = 0;
  std::filesystem::path dir_;
  std::string path_;
  int fd_ = -1;
};

ordered_json event(const std::string& type, uint64_t seq, const nlohmann::json& fields) {
  ordered_json e;
  e["ts"] = "2026-11-28T16:02:44.123456789Z";
  e["run"] = "0123456789abcdef0123456789abcdef";
  e["seq"] = seq;
  e["type"] = type;
  e["pid"] = 4242;
  e["manifest"] = {{"name", "coding-agent"}, {"revision", 3}, {"digest", "sha256:ab"}};
  for (auto it = fields.begin(); it != fields.end(); ++it)
    e[it.key()] = it.value();
  return e;
}

std::string value(const Entry& e, const std::string& key) {
  auto it = e.find(key);
  return it == e.end() ? "(missing " + key + ")" : it->second;
}

}  // namespace

TEST(JournalSink, EveryTypeHasItsOwnFixedMessageId) {
  std::set<std::string_view> ids;
  for (const char* type :
       {"start", "exec", "tool_call", "open", "open_count", "connect", "dns", "deny", "budget",
        "rule", "anomaly", "cost", "lost", "suppressed", "window", "exit"}) {
    std::string_view id = launcher::journal_message_id(type);
    EXPECT_EQ(id.size(), 32u) << type;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string_view::npos) << type;
    EXPECT_TRUE(ids.insert(id).second) << type << " shares its MESSAGE_ID";
  }
  EXPECT_EQ(launcher::journal_message_id("start"), "194eb78bfb4c4e9fb49ebd8b7e068e93");
  EXPECT_TRUE(launcher::journal_message_id("no-such-type").empty());
  EXPECT_EQ(launcher::journal_priority("deny"), 4);
  EXPECT_EQ(launcher::journal_priority("budget"), 4);
  EXPECT_EQ(launcher::journal_priority("exec"), 6);
}

TEST(JournalSink, DatagramsCarryTheDocumentedFields) {
  TestJournal journal;
  std::string error;
  std::unique_ptr<EventSink> sink = launcher::open_journal_sink(journal.path(), error);
  ASSERT_TRUE(sink) << error;
  ordered_json deny = event("deny", 7,
                            {{"section", "syscalls"},
                             {"syscall", "ptrace"},
                             {"origin", "/syscalls/profile (default: @debug)"},
                             {"action", "EPERM"}});
  std::string line = launcher::encode_event(deny) + "\n";
  ASSERT_TRUE(sink->write_event(deny, line));
  bool via_memfd = true;
  std::optional<std::string> data = journal.receive(via_memfd);
  ASSERT_TRUE(data);
  EXPECT_FALSE(via_memfd);
  Entry e = parse_native(*data);
  EXPECT_EQ(value(e, "MESSAGE_ID"), "b91be3087ed040bca6dbd41e331a9d02");
  EXPECT_EQ(value(e, "PRIORITY"), "4");
  EXPECT_EQ(value(e, "SYSLOG_IDENTIFIER"), "enclosure");
  EXPECT_EQ(value(e, "ENCLOSURE_RUN"), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(value(e, "ENCLOSURE_SEQ"), "7");
  EXPECT_EQ(value(e, "ENCLOSURE_TYPE"), "deny");
  EXPECT_EQ(value(e, "ENCLOSURE_PID"), "4242");
  EXPECT_EQ(value(e, "ENCLOSURE_MANIFEST"), "coding-agent");
  EXPECT_EQ(value(e, "ENCLOSURE_MANIFEST_DIGEST"), "sha256:ab");
  EXPECT_EQ(value(e, "ENCLOSURE_JSON"), line.substr(0, line.size() - 1));
  EXPECT_NE(value(e, "MESSAGE").find("ptrace"), std::string::npos) << value(e, "MESSAGE");
  EXPECT_EQ(value(e, "MESSAGE").rfind("enclosure deny: ", 0), 0u) << value(e, "MESSAGE");
  EXPECT_EQ(e.count("MESSAGE"), 1u);

  // An exec: info, and its own id; write() (a line only) gives the same entry.
  ordered_json exec = event("exec", 8, {{"path", "/usr/bin/git"}, {"argv0", "git"}});
  ASSERT_TRUE(sink->write(launcher::encode_event(exec) + "\n"));
  data = journal.receive(via_memfd);
  ASSERT_TRUE(data);
  e = parse_native(*data);
  EXPECT_EQ(value(e, "PRIORITY"), "6");
  EXPECT_EQ(value(e, "MESSAGE_ID"), "8b44c36ad7444860ae6205ace08fd9a6");
  EXPECT_EQ(value(e, "ENCLOSURE_SEQ"), "8");
  nlohmann::json report = sink->report();
  EXPECT_EQ(report["sent"], 2) << report.dump();
  EXPECT_EQ(report["failed"], 0) << report.dump();
}

TEST(JournalSink, AValueWithANewlineUsesTheLengthPrefixedForm) {
  std::string entry = launcher::journal_entry({{"MESSAGE", "two\nlines"}, {"A", "b"}});
  EXPECT_EQ(entry, std::string("MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\nA=b\n", 30));
  Entry e = parse_native(entry);
  EXPECT_EQ(value(e, "MESSAGE"), "two\nlines");
  EXPECT_EQ(value(e, "A"), "b");
}

TEST(JournalSink, AnEntryTooLargeForADatagramGoesThroughASealedMemfd) {
  TestJournal journal;
  std::string error;
  std::unique_ptr<EventSink> sink = launcher::open_journal_sink(journal.path(), error);
  ASSERT_TRUE(sink) << error;
  // Larger than any AF_UNIX datagram the kernel takes (its send buffer, at most a few MiB).
  std::string big(8 << 20, 'x');
  ordered_json start = event("start", 0, {{"manifest_document", {{"huge", big}}}});
  std::string line = launcher::encode_event(start) + "\n";
  ASSERT_TRUE(sink->write_event(start, line));
  bool via_memfd = false;
  std::optional<std::string> data = journal.receive(via_memfd);
  ASSERT_TRUE(data);
  EXPECT_TRUE(via_memfd);
  Entry e = parse_native(*data);
  EXPECT_EQ(value(e, "ENCLOSURE_TYPE"), "start");
  EXPECT_EQ(value(e, "ENCLOSURE_JSON"), line.substr(0, line.size() - 1));
}

TEST(JournalSink, ANonexistentSocketIsAnErrorNamingIt) {
  std::string error;
  EXPECT_FALSE(launcher::open_journal_sink("/nonexistent/journal/socket", error));
  EXPECT_NE(error.find("/nonexistent/journal/socket"), std::string::npos) << error;
}
