#include "launcher/events/journal_sink.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "launcher/events/siem_formats.h"

namespace launcher {
namespace {

struct TypeId {
  std::string_view type;
  std::string_view id;
};

// Generated once at random; never change one (journalctl filters and SIEM rules name them).
constexpr std::array<TypeId, 16> kMessageIds = {{
    {"start", "194eb78bfb4c4e9fb49ebd8b7e068e93"},
    {"exec", "8b44c36ad7444860ae6205ace08fd9a6"},
    {"tool_call", "13bc99725e8b429db1ef79f755582f7b"},
    {"open", "a08fa49aca194f2c94cc095d9b2da4ea"},
    {"open_count", "48abafa3b9a440a4932cc3f01a036f95"},
    {"connect", "f7444ed46b7b46539441d7db3fb19902"},
    {"dns", "f769426d1f0e4a1cafa703cdf0eb15ba"},
    {"deny", "b91be3087ed040bca6dbd41e331a9d02"},
    {"budget", "d5a6177f39df4338881f1104643ce5ad"},
    {"rule", "934a0d1ff39148bda3b9255d0eef6adf"},
    {"anomaly", "d7ff78185af74582b2898cd5a2dc6b00"},
    {"cost", "874738cddb2e4d0fb7885d4e4bb39580"},
    {"lost", "5e562accd55c4f4a88971dc0fc464db6"},
    {"suppressed", "e0ee788f5ed94abf87b76ef3634ed047"},
    {"window", "d2d5cddc54cf4106b4b63a43e52c5d3f"},
    {"exit", "716a85ac8b4947e19e01ea6ad7a3723f"},
}};

std::string text_of(const nlohmann::ordered_json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string member(const nlohmann::ordered_json& event, const char* key) {
  return event.contains(key) ? text_of(event[key]) : std::string();
}

// A sealed memfd holding `entry`: journald reads an entry too large for one datagram from it.
int sealed_memfd(const std::string& entry) {
  int fd = ::memfd_create("enclosure-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < entry.size()) {
    ssize_t n = ::write(fd, entry.data() + done, entry.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class JournalSink : public EventSink {
 public:
  JournalSink(int fd, std::string socket_path) : fd_(fd), socket_path_(std::move(socket_path)) {}
  ~JournalSink() override { ::close(fd_); }
  JournalSink(const JournalSink&) = delete;
  JournalSink& operator=(const JournalSink&) = delete;

  bool write(const std::string& line) override {
    nlohmann::ordered_json event = nlohmann::ordered_json::parse(line, nullptr, false);
    if (!event.is_object()) return false;
    return write_event(event, line);
  }

  bool write_event(const nlohmann::ordered_json& event, const std::string& line) override {
    std::string entry = journal_entry(journal_fields(event, line));
    bool sent = send_datagram(entry) || send_memfd(entry);
    ++(sent ? sent_ : failed_);
    return sent;
  }

  std::string describe() const override { return "journal (" + socket_path_ + ")"; }

  nlohmann::json report() const override {
    return {{"destination", describe()}, {"sent", sent_}, {"failed", failed_}};
  }

 private:
  bool send_datagram(const std::string& entry) {
    ssize_t n;
    do {
      n = ::send(fd_, entry.data(), entry.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(entry.size());
  }

  // The entry in a sealed memfd passed with SCM_RIGHTS and no data, as journald expects of an
  // entry larger than its socket takes in one datagram.
  bool send_memfd(const std::string& entry) {
    if (errno != EMSGSIZE && errno != ENOBUFS) return false;
    int memfd = sealed_memfd(entry);
    if (memfd < 0) return false;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &memfd, sizeof(int));
    ssize_t n;
    do {
      n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    ::close(memfd);
    return n >= 0;
  }

  int fd_;
  std::string socket_path_;
  uint64_t sent_ = 0;
  uint64_t failed_ = 0;
};

}  // namespace

std::string_view journal_message_id(std::string_view type) {
  for (const TypeId& t : kMessageIds) {
    if (t.type == type) return t.id;
  }
  return {};
}

int journal_priority(std::string_view type) {
  return type == "deny" || type == "budget" ? 4 : 6;
}

std::vector<std::pair<std::string, std::string>> journal_fields(const nlohmann::ordered_json& event,
                                                                const std::string& line) {
  std::string type = member(event, "type");
  std::string json_line = line;
  while (!json_line.empty() && json_line.back() == '\n')
    json_line.pop_back();
  std::vector<std::pair<std::string, std::string>> f = {
      {"MESSAGE", event_message(nlohmann::json(event))},
      {"PRIORITY", std::to_string(journal_priority(type))},
      {"SYSLOG_IDENTIFIER", "enclosure"}};
  if (std::string_view id = journal_message_id(type); !id.empty())
    f.emplace_back("MESSAGE_ID", std::string(id));
  f.emplace_back("ENCLOSURE_RUN", member(event, "run"));
  f.emplace_back("ENCLOSURE_SEQ", member(event, "seq"));
  f.emplace_back("ENCLOSURE_TYPE", type);
  f.emplace_back("ENCLOSURE_PID", member(event, "pid"));
  if (event.contains("manifest") && event["manifest"].is_object()) {
    f.emplace_back("ENCLOSURE_MANIFEST", member(event["manifest"], "name"));
    f.emplace_back("ENCLOSURE_MANIFEST_DIGEST", member(event["manifest"], "digest"));
  }
  f.emplace_back("ENCLOSURE_JSON", json_line);
  return f;
}

std::string journal_entry(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [key, value] : fields) {
    out += key;
    if (value.find('\n') == std::string::npos) {
      out += '=';
      out += value;
    } else {
      out += '\n';
      uint64_t size = value.size();
      for (int i = 0; i < 8; ++i)
        out += static_cast<char>((size >> (8 * i)) & 0xff);
      out += value;
    }
    out += '\n';
  }
  return out;
}

std::unique_ptr<EventSink> open_journal_sink(const std::string& socket_path, std::string& error) {
  std::string path = socket_path;
  if (path.empty()) {
    const char* env = std::getenv(kJournalSocketEnv);
    path = env && *env ? env : kJournalSocket;
  }
  struct sockaddr_un addr {};
  if (path.size() >= sizeof addr.sun_path) {
    error = "--events journal: the socket path " + path + " is too long";
    return nullptr;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("--events journal: socket: ") + std::strerror(errno);
    return nullptr;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    error = "--events journal: cannot reach the journal at " + path + ": " + std::strerror(errno) +
            " (is systemd-journald running?)";
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<JournalSink>(fd, path);
}

}  // namespace launcher
