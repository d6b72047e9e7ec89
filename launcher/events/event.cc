#include "launcher/events/event.h"

#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"

namespace launcher {

std::string new_run_id() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("getrandom for the run id");
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 0xf]);
  }
  return id;
}

std::string rfc3339(int64_t seconds, int64_t nanoseconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(nanoseconds));
  return buf;
}

std::string rfc3339_now() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return rfc3339(ts.tv_sec, ts.tv_nsec);
}

std::string to_valid_utf8(std::string_view s, bool& exact) {
  exact = true;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    bool ok = len != 0 && i + len <= s.size();
    uint32_t cp = 0;
    if (ok) {
      cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
      for (size_t k = 1; k < len && ok; ++k) {
        unsigned char cc = static_cast<unsigned char>(s[i + k]);
        ok = (cc >> 6) == 0x2;
        cp = (cp << 6) | (cc & 0x3f);
      }
      static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
      ok = ok && cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD
      exact = false;
      ++i;
    }
  }
  return out;
}

void set_bytes(nlohmann::json& obj, const std::string& key, std::string_view bytes) {
  bool exact = true;
  obj[key] = to_valid_utf8(bytes, exact);
  if (!exact) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned char b : bytes) {
      hex.push_back(kHex[b >> 4]);
      hex.push_back(kHex[b & 0xf]);
    }
    obj[key + "_hex"] = hex;
  }
}

std::string quote_for_terminal(std::string_view bytes) {
  bool exact = true;
  return nlohmann::json(to_valid_utf8(bytes, exact)).dump(-1, ' ', true);
}

std::string encode_event(const nlohmann::ordered_json& event) {
  // ensure_ascii keeps every line 7-bit: no terminal or log viewer can be tricked by it.
  return event.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);
}

namespace {

class FdSink : public EventSink {
 public:
  FdSink(int fd, bool owned, std::string name) : fd_(fd), owned_(owned), name_(std::move(name)) {}
  ~FdSink() override {
    if (owned_) ::close(fd_);
  }
  bool write(const std::string& line) override { return write_all(fd_, line.data(), line.size()); }
  std::string describe() const override { return name_; }

 private:
  int fd_;
  bool owned_;
  std::string name_;
};

}  // namespace

std::unique_ptr<EventSink> open_fd_sink(const std::string& destination, std::string& error) {
  if (destination == "-") return std::make_unique<FdSink>(STDERR_FILENO, false, "stderr");
  int fd = ::open(destination.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    error = "--events " + destination + ": cannot open for appending: " + std::strerror(errno);
    return nullptr;
  }
  return std::make_unique<FdSink>(fd, true, destination);
}

std::string EventRateLimit::describe() const {
  return unlimited() ? "unlimited" : std::to_string(per_second) + "/s";
}

namespace {

// A whole number from 1 to EventRateLimit::kMax, nothing else.
std::optional<uint64_t> parse_count(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  if (value < 1 || value > EventRateLimit::kMax) return std::nullopt;
  return value;
}

}  // namespace

std::optional<uint64_t> parse_event_rate(std::string_view text, std::string& error) {
  if (text == "unlimited") return 0;
  std::string_view number = text;
  if (number.size() > 2 && number.substr(number.size() - 2) == "/s") number.remove_suffix(2);
  if (std::optional<uint64_t> rate = parse_count(number)) return rate;
  error = "--event-rate " + std::string(text) +
          ": expected events per second, N/s or N (1 to 10000000), or unlimited";
  return std::nullopt;
}

std::optional<uint64_t> parse_event_burst(std::string_view text, std::string& error) {
  if (std::optional<uint64_t> burst = parse_count(text)) return burst;
  error = "--event-burst " + std::string(text) + ": expected a number of events, 1 to 10000000";
  return std::nullopt;
}

bool never_suppressed(std::string_view type) {
  // anomaly: at most one per metric and window; the rest are the run's frame and its accounting.
  for (std::string_view t : {"start", "exit", "budget", "rule", "lost", "suppressed", "anomaly"}) {
    if (type == t) return true;
  }
  return false;
}

TokenBucket::TokenBucket(uint64_t per_second, uint64_t burst, uint64_t now_ns)
    : per_ns_(static_cast<double>(per_second) / 1e9),
      burst_(static_cast<double>(burst)),
      tokens_(static_cast<double>(burst)),
      last_ns_(now_ns) {}

bool TokenBucket::take(uint64_t now_ns) {
  if (now_ns > last_ns_) {
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ns - last_ns_) * per_ns_);
    last_ns_ = now_ns;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

EventStream::EventStream(RunIdentity identity)
    : identity_(std::move(identity)), clock_(&monotonic_ns) {}

nlohmann::ordered_json EventStream::emit(const std::string& type, int64_t pid,
                                         const nlohmann::json& fields) {
  uint64_t now = clock_();
  ++counts_[type];
  bool admitted = admit(type, now);
  if (!admitted) count_suppressed(type, now);
  if (window_start_ns_ && now - *window_start_ns_ >= kSuppressedReportNs) flush_suppressed(true);
  if (!admitted) return nullptr;
  return write(type, pid, fields);
}

// The first event of a type always passes: its bucket starts full.
bool EventStream::admit(const std::string& type, uint64_t now_ns) {
  if (limit_.unlimited() || never_suppressed(type)) return true;
  auto it = buckets_.try_emplace(type, limit_.per_second, limit_.burst, now_ns).first;
  return it->second.take(now_ns);
}

void EventStream::count_suppressed(const std::string& type, uint64_t now_ns) {
  ++suppressed_[type];
  Pending& p = pending_[type];
  struct timespec real {};
  clock_gettime(CLOCK_REALTIME, &real);
  if (p.count++ == 0) p.first = real;
  p.last = real;
  if (!window_start_ns_) window_start_ns_ = now_ns;
}

void EventStream::flush_suppressed(bool force) {
  if (!window_start_ns_) return;
  if (!force && clock_() - *window_start_ns_ < kSuppressedReportNs) return;
  window_start_ns_.reset();
  std::map<std::string, Pending> pending;
  pending.swap(pending_);
  for (const auto& [type, p] : pending) {
    ++counts_["suppressed"];
    write("suppressed", ::getpid(),
          {{"of", type},
           {"count", p.count},
           {"total", suppressed_[type]},
           {"since", rfc3339(p.first.tv_sec, p.first.tv_nsec)},
           {"until", rfc3339(p.last.tv_sec, p.last.tv_nsec)},
           {"rate", limit_.describe()},
           {"burst", limit_.burst}});
  }
}

int EventStream::suppressed_due_in_ms() const {
  if (!window_start_ns_) return -1;
  uint64_t age = clock_() - *window_start_ns_;
  if (age >= kSuppressedReportNs) return 0;
  return static_cast<int>((kSuppressedReportNs - age + 999'999ULL) / 1'000'000ULL);
}

nlohmann::ordered_json EventStream::write(const std::string& type, int64_t pid,
                                          const nlohmann::json& fields) {
  nlohmann::ordered_json e;
  e["ts"] = rfc3339_now();
  e["run"] = identity_.run_id;
  e["seq"] = seq_++;
  e["type"] = type;
  e["pid"] = pid;
  e["manifest"] = {{"name", identity_.manifest_name},
                   {"revision", identity_.manifest_revision
                                    ? nlohmann::ordered_json(*identity_.manifest_revision)
                                    : nlohmann::ordered_json(nullptr)},
                   {"digest", identity_.manifest_digest}};
  for (auto it = fields.begin(); it != fields.end(); ++it)
    e[it.key()] = it.value();
  std::string line = encode_event(e) + "\n";
  for (auto& sink : sinks_) {
    if (!sink->write_event(e, line)) ++sink_failures_;
  }
  return e;
}

}  // namespace launcher
