// `enclosure collect`: one epoll loop that accepts many launchers on a unix socket (their peer
// credentials recorded), binds each run id to the connection that started it, writes every
// record into the hash-chained audit log (audit_log.h) and acknowledges it once it is written
// (and fsync'd, for the records that matter), and serves its counters in the Prometheus text
// format. The protocol is in collector_protocol.h. Under systemd socket activation it takes the
// listening socket it is passed (LISTEN_FDS) instead of binding one.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "launcher/base/fd.h"
#include "launcher/events/audit_log.h"
#include "launcher/events/collector_protocol.h"
#include "launcher/events/event.h"
#include "launcher/events/metrics.h"
#include "launcher/events/metrics_endpoint.h"

namespace launcher {

enum class FsyncPolicy {
  durable,   // start, deny, budget, rule, exit, lost and collector records are fsync'd before
             // they are acknowledged; the rest is written at once and fsync'd every second
  interval,  // everything is acknowledged once written, and fsync'd every second
};

struct CollectorOptions {
  std::string socket_path;
  mode_t socket_mode = 0660;
  std::optional<gid_t> socket_group;  // --socket-group: the socket's group (who may connect)
  std::string audit_log;
  uint64_t rotate_bytes = 64ULL << 20;
  std::string metrics;  // HOST:PORT, or empty
  bool metrics_allow_remote = false;
  size_t metrics_max_connections = MetricsEndpoint::kDefaultMaxClients;
  AuditRetention retention;  // --keep, --keep-size
  AuditSigning signing;      // --sign-key, --next-key, --sign-interval
  FsyncPolicy fsync = FsyncPolicy::durable;
  bool journal = false;  // --events journal: every run record also to the systemd journal
};

class Collector {
 public:
  // Opens the log (recovering it), binds the socket and the metrics endpoint. Throws LaunchError.
  explicit Collector(const CollectorOptions& options);
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Serves until SIGTERM or SIGINT; returns the exit status.
  int run();

 private:
  struct Connection {
    UniqueFd fd;
    ucred peer{};
    std::string in;
    std::string out;
    std::string run;  // bound by its hello
    std::string token_sha256;
    bool closing = false;  // refused: its reply is flushed, then it is closed
    bool writable_wanted = false;
    std::optional<uint64_t> ack;
  };
  struct Run {
    std::string token_sha256;
    uint64_t next_seq = 0;
    bool started = false;  // its start record is in the log
    bool closed = false;
    int connection = -1;
    std::string manifest;
  };

  // The constructor's steps.
  void open_log();
  void listen_on_socket();
  void watch_signals_and_timer();
  nlohmann::ordered_json started_record();
  void accept_launchers();
  void arm_listener(bool armed);
  void on_connection(int fd, uint32_t events);
  void on_line(Connection& c, std::string_view line);
  void on_hello(Connection& c, std::string_view line);
  void refuse(Connection& c, const std::string& reason, const std::string& claimed_run = "",
              std::string_view line = {});
  void disconnect(int fd);
  void finish_iteration();
  void flush_output(Connection& c);
  void write_collector_record(nlohmann::ordered_json record);
  nlohmann::json peer_json(const ucred& peer) const;
  nlohmann::json open_runs() const;
  std::string render_metrics(ExpositionFormat format) const;
  void forget_old_closed_runs();

  CollectorOptions options_;
  std::string hostname_;
  std::unique_ptr<AuditLog> log_;
  UniqueFd epoll_;
  UniqueFd listener_;
  bool listener_armed_ = true;  // off while no connection can be taken (EMFILE...)
  UniqueFd signals_;
  UniqueFd sync_timer_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  CollectorMetrics metrics_;
  std::map<int, Connection> connections_;
  std::unordered_map<std::string, Run> runs_;
  std::deque<std::string> closed_runs_;  // oldest first, forgotten beyond a bound
  bool socket_bound_ = false;            // bound here: removed at exit
  bool socket_activated_ = false;        // passed by systemd (LISTEN_FDS)
  uint64_t commit_bytes_read_ = 0;       // read from launchers since the last commit
  std::unique_ptr<EventSink> journal_;   // --events journal
};

}  // namespace launcher
