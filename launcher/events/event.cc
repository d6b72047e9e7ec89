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

#include "bpf/event_decoder.h"
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
  std::string out;
  append_rfc3339_now(out);
  return out;
}

namespace {

// Appends `value` as exactly `digits` decimal digits.
void append_digits(std::string& out, uint64_t value, int digits) {
  char buf[20];
  for (int i = digits - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(buf, static_cast<size_t>(digits));
}

void append_decimal(std::string& out, uint64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, end);
}

void append_decimal(std::string& out, int64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, end);
}

}  // namespace

void append_rfc3339_now(std::string& out) {
  // "2026-11-28T16:02:44." of the current second, formatted when the second changes.
  thread_local time_t cached_second = -1;
  thread_local std::string cached_prefix;
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != cached_second) {
    cached_prefix = rfc3339(ts.tv_sec, 0);
    cached_prefix.resize(cached_prefix.size() - 10);  // without "000000000Z"
    cached_second = ts.tv_sec;
  }
  out += cached_prefix;
  append_digits(out, static_cast<uint64_t>(ts.tv_nsec), 9);
  out += 'Z';
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

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

void append_unicode_escape(std::string& out, uint32_t unit) {
  char buf[6] = {'\\',
                 'u',
                 kHexDigits[(unit >> 12) & 0xf],
                 kHexDigits[(unit >> 8) & 0xf],
                 kHexDigits[(unit >> 4) & 0xf],
                 kHexDigits[unit & 0xf]};
  out.append(buf, sizeof buf);
}

// One code point of valid UTF-8 at `s[i]`: its value, and `i` moved past it.
uint32_t next_code_point(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : 4;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k < len && i + k < s.size(); ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  i += len;
  return cp;
}

// The escape of one code point as nlohmann's serializer writes it with ensure_ascii.
void append_escaped_code_point(std::string& out, uint32_t cp) {
  switch (cp) {
    case 0x08:
      out += "\\b";
      return;
    case 0x09:
      out += "\\t";
      return;
    case 0x0a:
      out += "\\n";
      return;
    case 0x0c:
      out += "\\f";
      return;
    case 0x0d:
      out += "\\r";
      return;
    case 0x22:
      out += "\\\"";
      return;
    case 0x5c:
      out += "\\\\";
      return;
    default:
      break;
  }
  if (cp >= 0x20 && cp < 0x7f) {
    out += static_cast<char>(cp);
  } else if (cp <= 0xffff) {
    append_unicode_escape(out, cp);
  } else {
    append_unicode_escape(out, 0xd7c0 + (cp >> 10));
    append_unicode_escape(out, 0xdc00 + (cp & 0x3ff));
  }
}

bool plain_ascii(std::string_view s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

// The text of an open flag set, formatted once per distinct set.
const std::string& open_flags_text_cached(uint32_t flags) {
  thread_local std::map<uint32_t, std::string> texts;
  auto it = texts.find(flags);
  if (it != texts.end()) return it->second;
  if (texts.size() > 1024) texts.clear();
  return texts.emplace(flags, bpf::open_flags_text(flags)).first->second;
}

class FdSink : public EventSink {
 public:
  // Lines held beyond this size are written at once, batch or not.
  static constexpr size_t kHeldBytesMax = 1 << 20;

  FdSink(int fd, bool owned, std::string name) : fd_(fd), owned_(owned), name_(std::move(name)) {}
  ~FdSink() override {
    release_writes();
    if (owned_) ::close(fd_);
  }
  bool write(const std::string& line) override {
    if (!holding_) return write_all(fd_, line.data(), line.size());
    held_ += line;
    ++held_lines_;
    if (held_.size() >= kHeldBytesMax) failed_lines_ += write_held();
    return true;
  }
  bool write_line(uint64_t, const std::string&, const std::string& line) override {
    return write(line);
  }
  void hold_writes() override { holding_ = true; }
  uint64_t release_writes() override {
    holding_ = false;
    uint64_t failed = failed_lines_ + write_held();
    failed_lines_ = 0;
    return failed;
  }
  std::string describe() const override { return name_; }

 private:
  // Writes the held lines in one write(2); returns how many of them were not written.
  uint64_t write_held() {
    bool ok = held_.empty() || write_all(fd_, held_.data(), held_.size());
    uint64_t failed = ok ? 0 : held_lines_;
    held_.clear();
    held_lines_ = 0;
    return failed;
  }

  int fd_;
  bool owned_;
  std::string name_;
  bool holding_ = false;
  std::string held_;
  uint64_t held_lines_ = 0;
  uint64_t failed_lines_ = 0;
};

}  // namespace

std::string encode_event(const nlohmann::ordered_json& event) {
  // ensure_ascii keeps every line 7-bit: no terminal or log viewer can be tricked by it.
  return event.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);
}

void append_json_string(std::string& out, std::string_view utf8) {
  out += '"';
  if (plain_ascii(utf8)) {
    out += utf8;
  } else {
    size_t i = 0;
    while (i < utf8.size())
      append_escaped_code_point(out, next_code_point(utf8, i));
  }
  out += '"';
}

void append_json_bytes(std::string& out, std::string_view key, std::string_view bytes) {
  out += '"';
  out += key;
  out += "\":";
  if (plain_ascii(bytes)) {
    out += '"';
    out += bytes;
    out += '"';
    return;
  }
  bool exact = true;
  append_json_string(out, to_valid_utf8(bytes, exact));
  if (exact) return;
  out += ",\"";
  out += key;
  out += "_hex\":\"";
  for (unsigned char b : bytes) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 0xf];
  }
  out += '"';
}

void append_open_fields(std::string& out, const bpf::OpenRecord& o, uint64_t kseq) {
  // kernel_events()' open event: its fields in key order (a nlohmann::json object).
  out += o.counted ? "\"aggregated\":true," : "\"aggregated\":false,";
  if (o.dev || o.ino) {
    out += "\"dev\":";
    append_decimal(out, o.dev);
    out += ',';
  }
  if (o.dirfd != -100) {  // AT_FDCWD is not shown
    out += "\"dirfd\":";
    append_decimal(out, static_cast<int64_t>(o.dirfd));
    out += ',';
  }
  out += "\"flags\":";
  append_json_string(out, open_flags_text_cached(o.flags));
  if (o.dev || o.ino) {
    out += ",\"ino\":";
    append_decimal(out, o.ino);
  }
  out += ",\"kseq\":";
  append_decimal(out, kseq);
  out += o.result >= 0 ? ",\"ok\":true," : ",\"ok\":false,";
  append_json_bytes(out, "path", o.path);
  if (o.path_unreadable) out += ",\"path_unreadable\":true";
  out += ",\"result\":";
  if (o.result >= 0) {
    append_decimal(out, o.result);
  } else {
    int err = static_cast<int>(-o.result);
    const char* name = strerrorname_np(err);
    append_json_string(out, "-" + (name ? std::string(name) : "E" + std::to_string(err)));
  }
}

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
  // anomaly: at most one per metric and window; open_count: the access log's per-file figures,
  // at most ENC_FILE_OPENS_PER_RUN (32,768) of them, once, before exit, so that the log names
  // every file however many `open` events the rate suppressed; the rest are the run's frame and
  // its accounting.
  for (std::string_view t :
       {"start", "exit", "budget", "rule", "lost", "suppressed", "anomaly", "open_count"}) {
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

bool EventStream::emit_members(const std::string& type, int64_t pid, std::string_view members) {
  uint64_t now = clock_();
  ++counts_[type];
  bool admitted = admit(type, now);
  if (!admitted) count_suppressed(type, now);
  if (window_start_ns_ && now - *window_start_ns_ >= kSuppressedReportNs) flush_suppressed(true);
  if (!admitted) return false;
  // write()'s line, stamped and encoded without a document.
  std::string& line = line_;
  line.assign("{\"ts\":\"");
  append_rfc3339_now(line);
  line += "\",\"run\":";
  append_json_string(line, identity_.run_id);
  line += ",\"seq\":";
  uint64_t seq = seq_++;
  append_decimal(line, seq);
  line += ",\"type\":";
  append_json_string(line, type);
  line += ",\"pid\":";
  append_decimal(line, pid);
  line += encoded_manifest();
  if (!members.empty()) line += ',';
  line += members;
  line += "}\n";
  for (auto& sink : sinks_) {
    if (!sink->write_line(seq, type, line)) ++sink_failures_;
  }
  return true;
}

const std::string& EventStream::encoded_manifest() {
  if (!manifest_member_.empty()) return manifest_member_;
  nlohmann::ordered_json e;
  e["manifest"] = {{"name", identity_.manifest_name},
                   {"revision", identity_.manifest_revision
                                    ? nlohmann::ordered_json(*identity_.manifest_revision)
                                    : nlohmann::ordered_json(nullptr)},
                   {"digest", identity_.manifest_digest}};
  std::string object = encode_event(e);  // {"manifest":{...}}
  manifest_member_ = "," + object.substr(1, object.size() - 2);
  return manifest_member_;
}

EventStream::WriteBatch::WriteBatch(EventStream& stream) : stream_(stream) {
  for (auto& sink : stream_.sinks_)
    sink->hold_writes();
}

EventStream::WriteBatch::~WriteBatch() {
  for (auto& sink : stream_.sinks_)
    stream_.sink_failures_ += sink->release_writes();
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
