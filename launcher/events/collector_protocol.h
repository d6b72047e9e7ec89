// The protocol between `enclosure run` (launcher/collector_sink.h) and `enclosure collect`
// (launcher/collector.h): JSON objects, one per line, over a SOCK_STREAM unix socket.
//
//   launcher -> collector   {"hello":"enclosure-audit/1","run":RUN,"token":HEX64}
//   collector -> launcher   {"welcome":"enclosure-audit/1","run":RUN,"next_seq":N}
//   launcher -> collector   event lines, in seq order, exactly as the run's other sinks get them
//   collector -> launcher   {"ack":SEQ}   every record of the run up to SEQ is in the audit log
//                                         (durable records fsync'd)
//   collector -> launcher   {"error":"..."} then the connection is closed
//
// A run id belongs to the connection whose hello introduced it and whose first record was its
// `start`; the collector keeps only the SHA-256 of the token (in the start record), so that a
// launcher that reconnects (after a collector restart, say) proves ownership by the token.
// `next_seq` in the welcome is what the collector already holds; the launcher resends from there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace launcher {

inline constexpr std::string_view kAuditProtocol = "enclosure-audit/1";
// The longest line either side accepts (a start record carries the whole manifest).
inline constexpr size_t kCollectorLineMax = 16 * 1024 * 1024;

struct CollectorHello {
  std::string run;
  std::string token;
};

std::string encode_hello(const CollectorHello& hello);
std::optional<CollectorHello> parse_hello(std::string_view line, std::string& error);

struct CollectorReply {
  enum class Kind { welcome, ack, error } kind = Kind::error;
  uint64_t seq = 0;  // welcome: next_seq; ack: the acknowledged seq
  std::string run;   // welcome
  std::string error;
};

std::string encode_welcome(const std::string& run, uint64_t next_seq);
std::string encode_ack(uint64_t seq);
std::string encode_error(const std::string& message);
std::optional<CollectorReply> parse_reply(std::string_view line);

// The members of an event line the collector acts on, read without building the document.
// Top-level duplicate keys are refused (a reader must not see another value than the
// collector), and so are "prev" and "received", which only the collector writes.
struct EventLineFields {
  std::string run;
  uint64_t seq = 0;
  std::string type;
  std::optional<uint64_t> first_seq;  // lost
  std::optional<uint64_t> last_seq;   // lost
  std::optional<uint64_t> count;      // lost
  std::string section;                // deny
  std::string name;                   // budget
  std::string action;                 // budget
  // exit: the run's duration
  std::optional<uint64_t> duration_ns;
};
std::optional<EventLineFields> scan_event_line(std::string_view line, std::string& error);

// 32 lower-case hex digits (a run id) / 64 (a token or a SHA-256).
bool is_lower_hex(std::string_view s, size_t length);

}  // namespace launcher
