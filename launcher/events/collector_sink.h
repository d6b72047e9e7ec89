// `--events unix:PATH`: the run's events go to a collector (`enclosure collect`) over the
// protocol of collector_protocol.h. The collector must be reachable when the run starts. If it
// goes away later, enforcement goes on: events are buffered (bounded), the sink reconnects on
// the supervisor's tick and resends everything not yet acknowledged (the collector drops
// duplicates), and what did not fit in the buffer is reported to the collector as one `lost`
// record carrying the first and last seq of the gap, in the gap's place.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"
#include "launcher/events/event.h"

namespace launcher {

struct CollectorSinkOptions {
  std::string socket_path;
  size_t max_lines = 100000;       // buffered, not yet acknowledged (twice that for the
  size_t max_bytes = 64ULL << 20;  // records that matter: start, deny, budget, rule, exit)
  int connect_timeout_ms = 5000;   // for the first connection, at start
};

class CollectorSink : public EventSink {
 public:
  // Connects and introduces the run (hello, welcome). Throws LaunchError (exit 125) saying to
  // start the collector or to choose another --events destination when it cannot be reached.
  CollectorSink(const CollectorSinkOptions& options, const std::string& run_id);
  ~CollectorSink() override;

  bool write(const std::string& line) override;
  bool write_event(const nlohmann::ordered_json& event, const std::string& line) override;
  bool write_line(uint64_t seq, const std::string& type, const std::string& line) override;
  // Held lines are queued and sent together (sendmsg of many lines) at release_writes().
  void hold_writes() override { holding_ = true; }
  uint64_t release_writes() override;
  std::string describe() const override { return "unix:" + options_.socket_path; }
  int poll_fd() const override { return epoll_.get(); }
  void on_readable() override;
  void on_tick() override;
  bool healthy() const override {
    return state_ == State::connected || state_ == State::handshaking;
  }
  bool flush(int timeout_ms) override;
  nlohmann::json report() const override;

 private:
  enum class State { connected, handshaking, disconnected, refused };
  struct Entry {
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    std::string line;  // with its newline
  };
  struct Gap {
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    uint64_t count = 0;
  };

  void connect_now(bool blocking);
  void lost_connection(const std::string& why);
  void handle_reply(std::string_view line);
  bool take_line(uint64_t seq, bool durable, const std::string& line);
  void pump();
  void advance_sent(size_t bytes);
  void watch_writable(bool want);
  bool has_room(size_t lines, size_t bytes, bool durable) const;
  void enqueue(Entry entry);
  void report_gap();

  CollectorSinkOptions options_;
  std::string run_id_;
  std::string token_;
  State state_ = State::disconnected;
  UniqueFd epoll_;
  UniqueFd socket_;
  std::string in_;
  std::deque<Entry> queue_;
  size_t queued_bytes_ = 0;
  size_t send_index_ = 0;   // first entry of queue_ not completely sent on this connection
  size_t send_offset_ = 0;  // bytes of it already sent
  bool writable_wanted_ = false;
  bool holding_ = false;
  std::optional<Gap> gap_;
  nlohmann::ordered_json identity_;  // run and manifest, for the lost record
  uint64_t lost_ = 0;
  uint64_t reconnects_ = 0;
  uint64_t duplicates_resent_ = 0;
  std::optional<uint64_t> acked_;
  std::string refusal_;
};

}  // namespace launcher
