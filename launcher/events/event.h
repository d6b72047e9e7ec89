// The event model of a run and its JSON Lines encoding (policy/MANIFEST.md, "Events"): every event
// carries ts (RFC 3339, UTC, ns), run, seq (gap-free per run), manifest {name, revision,
// digest}, type and pid, plus the type's fields.
#pragma once

#include <time.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace bpf {
struct OpenRecord;
}

namespace launcher {

struct RunIdentity {
  std::string run_id;
  std::string manifest_name;
  std::optional<int64_t> manifest_revision;
  std::string manifest_digest;
};

// A fresh run id: 32 lower-case hex digits from getrandom(2).
std::string new_run_id();

// "2026-11-28T16:02:44.123456789Z" for a CLOCK_REALTIME instant.
std::string rfc3339(int64_t seconds, int64_t nanoseconds);
std::string rfc3339_now();
// Appends rfc3339_now() to `out` (the date and time of the current second are formatted once).
void append_rfc3339_now(std::string& out);

// Valid UTF-8 for any byte string: invalid sequences become U+FFFD. `exact` is false when a
// replacement happened.
std::string to_valid_utf8(std::string_view bytes, bool& exact);
// Sets obj[key] to the bytes as a JSON string; when they are not valid UTF-8, also sets
// obj[key + "_hex"] to their hex encoding, so that no byte of a path is lost.
void set_bytes(nlohmann::json& obj, const std::string& key, std::string_view bytes);

// Quotes a byte string for one line of human-readable text (the exit summary): JSON escaping,
// so newlines, escape sequences and quotes cannot forge or garble terminal output.
std::string quote_for_terminal(std::string_view bytes);

// One line (no trailing newline) of the JSON object, fields in the documented order.
std::string encode_event(const nlohmann::ordered_json& event);

// Appends a JSON string of valid UTF-8 text exactly as encode_event writes it (ensure_ascii:
// \uXXXX for control characters and everything past 0x7e, surrogate pairs past U+FFFF).
void append_json_string(std::string& out, std::string_view utf8);
// Appends `"key":"..."` for any byte string, and `,"key_hex":"..."` when it is not valid UTF-8:
// the bytes set_bytes() then encode_event() give, without building the document.
void append_json_bytes(std::string& out, std::string_view key, std::string_view bytes);
// The members (no braces) of an `open` event's fields for a kernel record, in the order and with
// the bytes of kernel_events()'s open event through encode_event(): the supervisor's fast path
// for the access log (audit.files), where one record a microsecond must be encoded.
void append_open_fields(std::string& out, const bpf::OpenRecord& record, uint64_t kseq);

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Takes one complete line (with its newline). Returns false when the line could not be
  // written or queued.
  virtual bool write(const std::string& line) = 0;
  // Takes one event and its encoded line (with its newline); sinks that need its seq or type
  // read them here instead of parsing the line again.
  virtual bool write_event(const nlohmann::ordered_json& event, const std::string& line) {
    (void)event;
    return write(line);
  }
  // Takes one event encoded without a document (EventStream::emit_members): its seq, type and
  // line (with its newline). Sinks that need the document get it parsed from the line.
  virtual bool write_line(uint64_t seq, const std::string& type, const std::string& line) {
    (void)seq;
    (void)type;
    return write_event(nlohmann::ordered_json::parse(line), line);
  }
  // Between hold_writes() and release_writes() a sink may buffer lines (one write for many);
  // release_writes() writes them and returns how many of them could not be written.
  virtual void hold_writes() {}
  virtual uint64_t release_writes() { return 0; }
  virtual std::string describe() const = 0;
  // A descriptor the supervisor polls for this sink (acknowledgements, hang-ups), or -1.
  virtual int poll_fd() const { return -1; }
  // Called when poll_fd() is readable or hung up.
  virtual void on_readable() {}
  // Periodic work (reconnecting, resending), about every 100 ms while the run lasts.
  virtual void on_tick() {}
  // False while the sink cannot deliver (a collector that is gone); `--audit-required` ends the
  // run then.
  virtual bool healthy() const { return true; }
  // At exit: waits up to `timeout_ms` until everything written has been delivered.
  virtual bool flush(int timeout_ms) {
    (void)timeout_ms;
    return true;
  }
  // What the sink did, for the exit event (delivery figures), or null.
  virtual nlohmann::json report() const { return nullptr; }
};

// stderr ("-") or a file opened for appending (created 0600); one write(2) per line, or per
// batch of lines between hold_writes() and release_writes().
std::unique_ptr<EventSink> open_fd_sink(const std::string& destination, std::string& error);

// The per-run event rate (policy/MANIFEST.md, "Events"): one token bucket per event type, full
// (`burst` tokens) at its first event and refilled at `per_second`. Past it, events are counted,
// not written. `per_second` 0 means no limit.
struct EventRateLimit {
  static constexpr uint64_t kDefaultPerSecond = 500;
  static constexpr uint64_t kDefaultBurst = 2000;
  static constexpr uint64_t kMax = 10'000'000;
  uint64_t per_second = kDefaultPerSecond;
  uint64_t burst = kDefaultBurst;
  bool unlimited() const { return per_second == 0; }
  // "500/s" (or "unlimited") for the start event and the `suppressed` events.
  std::string describe() const;
};

// `--event-rate`: "N/s" or "N" (events per second, 1 to 10,000,000) or "unlimited" (0).
// nullopt with `error` set otherwise.
std::optional<uint64_t> parse_event_rate(std::string_view text, std::string& error);
// `--event-burst`: N, 1 to 10,000,000. nullopt with `error` set otherwise.
std::optional<uint64_t> parse_event_burst(std::string_view text, std::string& error);

// Types never suppressed: bounded by construction, and what an auditor needs to read the rest.
bool never_suppressed(std::string_view type);

// A token bucket on the monotonic clock: `burst` tokens at first, `per_second` more each second,
// never more than `burst`.
class TokenBucket {
 public:
  TokenBucket(uint64_t per_second, uint64_t burst, uint64_t now_ns);
  // Takes one token; false when none is left.
  bool take(uint64_t now_ns);

 private:
  double per_ns_;
  double burst_;
  double tokens_;
  uint64_t last_ns_;
};

class EventStream {
 public:
  using MonotonicClock = uint64_t (*)();
  // A window of counted-not-written events is reported at the latest this long after it opened.
  static constexpr uint64_t kSuppressedReportNs = 1'000'000'000ULL;

  explicit EventStream(RunIdentity identity);

  void add_sink(std::unique_ptr<EventSink> sink) { sinks_.push_back(std::move(sink)); }
  const std::vector<std::unique_ptr<EventSink>>& sinks() const { return sinks_; }

  // Stamps ts, run, seq, manifest, type and pid, merges `fields`, writes to every sink, and
  // returns the event. Past the type's rate the event is only counted (no seq, nothing written)
  // and null is returned. Writes the due `suppressed` events first.
  nlohmann::ordered_json emit(const std::string& type, int64_t pid, const nlohmann::json& fields);
  // The same for fields already encoded: `members` are the JSON members of the fields (no braces,
  // in the order emit() would write them, none of them a stamped key), as append_open_fields()
  // writes them. Returns false when the event was only counted.
  bool emit_members(const std::string& type, int64_t pid, std::string_view members);

  // While a WriteBatch lives, sinks may buffer the lines written (one write for the batch); its
  // end writes them. The supervisor holds one around each drain of the ring buffer.
  class WriteBatch {
   public:
    explicit WriteBatch(EventStream& stream);
    ~WriteBatch();
    WriteBatch(const WriteBatch&) = delete;
    WriteBatch& operator=(const WriteBatch&) = delete;

   private:
    EventStream& stream_;
  };

  void set_rate_limit(EventRateLimit limit) { limit_ = limit; }
  const EventRateLimit& rate_limit() const { return limit_; }
  // For tests: the clock the buckets and the report window read (default monotonic_ns).
  void set_clock(MonotonicClock clock) { clock_ = clock; }
  // Writes one `suppressed` event per type counted since the last ones: all of them when
  // `force` (before `exit`), otherwise only once the window is kSuppressedReportNs old.
  void flush_suppressed(bool force);
  // Milliseconds until flush_suppressed(false) has work (an epoll timeout); -1 when none.
  int suppressed_due_in_ms() const;

  uint64_t next_seq() const { return seq_; }
  const RunIdentity& identity() const { return identity_; }
  // Events emitted so far, by type: written and suppressed alike (every decision counts).
  const std::map<std::string, uint64_t>& counts() const { return counts_; }
  // Of those, the ones counted but not written (past the rate), by type.
  const std::map<std::string, uint64_t>& suppressed() const { return suppressed_; }
  // Lines a sink failed to take (reported in the exit event).
  uint64_t sink_failures() const { return sink_failures_; }

 private:
  // Counted-not-written events of one type since its last `suppressed` event.
  struct Pending {
    uint64_t count = 0;
    struct timespec first {};
    struct timespec last {};
  };

  bool admit(const std::string& type, uint64_t now_ns);
  void count_suppressed(const std::string& type, uint64_t now_ns);
  nlohmann::ordered_json write(const std::string& type, int64_t pid, const nlohmann::json& fields);
  // `"manifest":{...}` as write() encodes it, built once.
  const std::string& encoded_manifest();

  RunIdentity identity_;
  std::vector<std::unique_ptr<EventSink>> sinks_;
  uint64_t seq_ = 0;
  uint64_t sink_failures_ = 0;
  std::map<std::string, uint64_t> counts_;
  std::map<std::string, uint64_t> suppressed_;
  EventRateLimit limit_;
  MonotonicClock clock_;
  std::map<std::string, TokenBucket> buckets_;
  std::map<std::string, Pending> pending_;
  std::optional<uint64_t> window_start_ns_;  // when the oldest pending event was counted
  std::string manifest_member_;              // encoded_manifest(), once built
  std::string line_;                         // emit_members()' line, reused
};

}  // namespace launcher
