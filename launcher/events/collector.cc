#include "launcher/events/collector.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <vector>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/base/service_notify.h"
#include "launcher/events/event.h"
#include "launcher/events/journal_sink.h"
#include "policy/digest.h"

namespace launcher {
namespace {

constexpr size_t kReadBudgetPerWakeup = 1 << 20;  // bytes read from one launcher per loop turn
constexpr uint64_t kGroupCommitBytes = 4 << 20;   // bytes read into one commit, at most about
constexpr size_t kOutputMax = 1 << 20;            // replies a launcher does not read
constexpr size_t kClosedRunsKept = 100000;        // closed runs remembered for resends
constexpr uint64_t kSyncIntervalNs = 1'000'000'000ULL;

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw LaunchError("--listen unix:" + path + ": the path is too long");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// systemd socket activation (sd_listen_fds(3)): the listening socket for `path`, passed as
// fd 3 and up with LISTEN_PID naming this process; -1 when none was passed.
int activated_socket(const std::string& path) {
  const char* pid = ::getenv("LISTEN_PID");
  const char* fds = ::getenv("LISTEN_FDS");
  if (!pid || !fds || std::to_string(::getpid()) != pid) return -1;
  int count = std::atoi(fds);
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  for (int fd = 3; fd < 3 + count; ++fd) {
    sockaddr_un a{};
    socklen_t len = sizeof a;
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || a.sun_family != AF_UNIX)
      continue;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || !listening)
      continue;
    if (std::string(a.sun_path) != path) continue;
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
  }
  throw LaunchError("--listen unix:" + path + ": systemd passed " + std::to_string(count) +
                    " socket(s) (LISTEN_FDS), none listening on " + path);
}

std::string user_name(uid_t uid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return {};
}

}  // namespace

Collector::Collector(const CollectorOptions& options) : options_(options) {
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  hostname_ = host;
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("collect: epoll_create1");
  open_log();
  if (options_.journal) {
    std::string error;
    journal_ = open_journal_sink("", error);
    if (!journal_) throw LaunchError("collect: " + error);
  }
  listen_on_socket();
  if (!options_.metrics.empty()) {
    metrics_endpoint_ =
        std::make_unique<MetricsEndpoint>(options_.metrics, options_.metrics_allow_remote,
                                          epoll_.get(), options_.metrics_max_connections);
  }
  watch_signals_and_timer();
  write_collector_record(started_record());
  log_->append_head("start", open_runs().size());
  log_->commit();
}

// Opens (recovers) the audit log and resumes the runs it holds.
void Collector::open_log() {
  log_ = std::make_unique<AuditLog>(options_.audit_log, options_.rotate_bytes, options_.retention,
                                    options_.signing);
  const AuditLogRecovery& rec = log_->recovery();
  for (const auto& [id, state] : rec.runs) {
    Run r;
    r.token_sha256 = state.token_sha256;
    r.next_seq = state.next_seq;
    r.started = true;
    r.closed = state.closed;
    r.manifest = state.manifest;
    runs_.emplace(id, r);
    if (state.closed) closed_runs_.push_back(id);
  }
  if (rec.rotation_interrupted) log_->begin_rotated_file(open_runs());
}

// SIGINT, SIGTERM and SIGHUP through a signalfd, the periodic fsync through a timerfd; both and
// the listener on the epoll set.
void Collector::watch_signals_and_timer() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP})
    sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signals_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) throw_errno("collect: signalfd");
  sync_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!sync_timer_) throw_errno("collect: timerfd_create");
  struct itimerspec spec {};
  spec.it_value.tv_sec = kSyncIntervalNs / 1'000'000'000ULL;
  spec.it_interval = spec.it_value;
  if (::timerfd_settime(sync_timer_.get(), 0, &spec, nullptr) != 0)
    throw_errno("collect: timerfd_settime");
  for (int fd : {listener_.get(), signals_.get(), sync_timer_.get()}) {
    struct epoll_event e {};
    e.events = EPOLLIN;
    e.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &e) != 0) throw_errno("collect: epoll_ctl");
  }
}

// The collector's "started" record: where it listens, and what recovering the log found.
nlohmann::ordered_json Collector::started_record() {
  const AuditLogRecovery& rec = log_->recovery();
  nlohmann::ordered_json started;
  started["ts"] = rfc3339_now();
  started["type"] = "collector";
  started["event"] = "started";
  started["pid"] = ::getpid();
  started["hostname"] = hostname_;
  started["listen"] = "unix:" + options_.socket_path;
  if (socket_activated_) started["socket_activation"] = true;
  started["fsync"] = options_.fsync == FsyncPolicy::durable ? "durable" : "interval";
  if (!rec.file.empty()) {
    nlohmann::ordered_json r;
    r["file"] = rec.file;
    r["lines"] = rec.lines;
    r["open_runs"] = open_runs().size();
    if (rec.truncated_bytes) r["truncated_incomplete_line_bytes"] = rec.truncated_bytes;
    if (rec.lines_after_head) r["lines_after_head"] = rec.lines_after_head;
    started["recovered"] = r;
  }
  if (!rec.head_mismatch.empty()) started["head_mismatch"] = rec.head_mismatch;
  return started;
}

Collector::~Collector() {
  if (socket_bound_) ::unlink(options_.socket_path.c_str());
}

void Collector::listen_on_socket() {
  const std::string& path = options_.socket_path;
  sockaddr_un addr = unix_address(path);
  int activated = activated_socket(path);
  if (activated >= 0) {
    // systemd owns the socket file (and its mode); records sent while this collector started
    // waited in its backlog.
    listener_.reset(activated);
    socket_activated_ = true;
    return;
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw LaunchError("--listen unix:" + path + ": exists and is not a socket");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      throw LaunchError("--listen unix:" + path + ": another collector is listening there");
    }
    ::unlink(path.c_str());  // a stale socket of a collector that is gone
  }
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener_) throw_errno("--listen unix:" + path + ": socket");
  mode_t old_mask = ::umask(0177);
  int rc = ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old_mask);
  if (rc != 0) throw_errno("--listen unix:" + path + ": bind", err);
  socket_bound_ = true;
  if (::chmod(path.c_str(), options_.socket_mode) != 0)
    throw_errno("--listen unix:" + path + ": chmod");
  if (options_.socket_group &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), *options_.socket_group) != 0)
    throw_errno("--socket-group: chown unix:" + path);
  if (::listen(listener_.get(), 512) != 0) throw_errno("--listen unix:" + path + ": listen");
}

nlohmann::json Collector::peer_json(const ucred& peer) const {
  nlohmann::json p = {{"pid", peer.pid}, {"uid", peer.uid}, {"gid", peer.gid}};
  std::string name = user_name(peer.uid);
  if (!name.empty()) p["user"] = name;
  return p;
}

nlohmann::json Collector::open_runs() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [id, r] : runs_) {
    if (!r.started || r.closed) continue;
    out[id] = {
        {"token_sha256", r.token_sha256}, {"next_seq", r.next_seq}, {"manifest", r.manifest}};
  }
  return out;
}

void Collector::write_collector_record(nlohmann::ordered_json record) {
  log_->append(encode_event(record), true, AuditRecordKind::collector);
}

// Level-triggered: a listener with pending connections stays readable, so while none can be
// taken (out of descriptors) it leaves the epoll set (events 0) until the next fsync tick or a
// closed connection, instead of waking the loop at once, forever.
void Collector::arm_listener(bool armed) {
  if (armed == listener_armed_) return;
  struct epoll_event e {};
  e.events = armed ? EPOLLIN : 0;
  e.data.fd = listener_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener_.get(), &e) == 0) listener_armed_ = armed;
}

void Collector::accept_launchers() {
  while (true) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM...: retried on the next tick, not at once.
      if (errno != EAGAIN) arm_listener(false);
      return;
    }
    Connection c;
    c.fd.reset(fd);
    socklen_t len = sizeof c.peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c.peer, &len) != 0) continue;
    struct epoll_event e {};
    e.events = EPOLLIN | EPOLLRDHUP;
    e.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &e) != 0) continue;
    metrics_.connection_accepted();
    connections_.emplace(fd, std::move(c));
  }
}

void Collector::refuse(Connection& c, const std::string& reason, const std::string& claimed_run,
                       std::string_view line) {
  nlohmann::ordered_json r;
  r["ts"] = rfc3339_now();
  r["type"] = "collector";
  r["event"] = "refused";
  r["reason"] = reason;
  r["peer"] = peer_json(c.peer);
  if (!c.run.empty()) r["bound_run"] = c.run;
  if (!claimed_run.empty()) r["about_run"] = claimed_run;
  if (!line.empty()) {
    r["line_sha256"] = policy::sha256_hex(line);
    nlohmann::json start = nlohmann::json::object();
    set_bytes(start, "s", line.substr(0, 256));
    r["line_start"] = start["s"];
  }
  write_collector_record(r);
  metrics_.refused();
  std::cerr << "enclosure collect: refused a launcher (pid " << c.peer.pid << ", uid " << c.peer.uid
            << "): " << reason << "\n";
  c.out += encode_error(reason);
  c.closing = true;
  c.in.clear();
  c.ack.reset();
  if (!c.run.empty()) {
    auto it = runs_.find(c.run);
    if (it != runs_.end() && it->second.connection == c.fd.get()) {
      if (!it->second.started) {
        runs_.erase(it);
      } else {
        it->second.connection = -1;
      }
    }
  }
}

void Collector::on_hello(Connection& c, std::string_view line) {
  std::string error;
  std::optional<CollectorHello> hello = parse_hello(line, error);
  if (!hello) return refuse(c, error, "", line);
  std::string token_sha256 = policy::sha256_hex(hello->token);
  auto it = runs_.find(hello->run);
  if (it == runs_.end()) {
    Run r;
    r.token_sha256 = token_sha256;
    r.connection = c.fd.get();
    runs_.emplace(hello->run, r);
    c.run = hello->run;
    c.token_sha256 = token_sha256;
    c.out += encode_welcome(hello->run, 0);
    return;
  }
  Run& r = it->second;
  bool proven = r.started && token_sha256 == r.token_sha256;
  if (r.connection >= 0 && !proven) {
    auto owner = connections_.find(r.connection);
    std::string who =
        owner == connections_.end() ? "" : " (pid " + std::to_string(owner->second.peer.pid) + ")";
    return refuse(c, "run " + hello->run + " belongs to another connection" + who, hello->run);
  }
  if (!proven) {
    return refuse(c, "the token does not prove ownership of run " + hello->run, hello->run);
  }
  bool replaced = false;
  if (r.connection >= 0) {
    // The launcher itself, back before its old connection's end was seen here: the token
    // proves it, and the old connection is dropped.
    int old = r.connection;
    r.connection = -1;
    auto stale = connections_.find(old);
    if (stale != connections_.end()) stale->second.run.clear();
    disconnect(old);
    replaced = true;
  }
  r.connection = c.fd.get();
  c.run = hello->run;
  c.token_sha256 = token_sha256;
  c.out += encode_welcome(hello->run, r.next_seq);
  nlohmann::ordered_json resumed;
  resumed["ts"] = rfc3339_now();
  resumed["type"] = "collector";
  resumed["event"] = "resumed";
  resumed["about_run"] = hello->run;
  resumed["next_seq"] = r.next_seq;
  resumed["peer"] = peer_json(c.peer);
  if (replaced) resumed["replaced_connection"] = true;
  write_collector_record(resumed);
}

void Collector::on_line(Connection& c, std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (c.run.empty()) return on_hello(c, line);
  std::string error;
  std::optional<EventLineFields> f = scan_event_line(line, error);
  if (!f) return refuse(c, "malformed record: " + error, "", line);
  if (f->run != c.run) {
    return refuse(c, "record for run " + f->run + " on a connection bound to run " + c.run, f->run,
                  line);
  }
  if (f->type == "collector")
    return refuse(c, "launchers do not write collector records", f->run, line);
  Run& r = runs_[c.run];
  bool start_record = false;
  if (!r.started) {
    if (f->type != "start" || f->seq != 0) {
      return refuse(c, "the first record of a new run must be its start (seq 0)", f->run, line);
    }
    start_record = true;
  }
  if (f->seq < r.next_seq) {
    metrics_.duplicate();
    c.ack = r.next_seq - 1;
    return;
  }
  if (r.closed) return refuse(c, "run " + c.run + " has ended", f->run, line);
  if (f->type == "lost" && f->first_seq && f->last_seq &&
      (*f->first_seq != f->seq || *f->last_seq < f->seq)) {
    return refuse(c, "a lost record's first_seq/last_seq must start at its own seq", f->run, line);
  }
  bool durable = options_.fsync == FsyncPolicy::durable && is_durable_record_type(f->type);
  if (start_record) {
    nlohmann::ordered_json received;
    received["ts"] = rfc3339_now();
    received["hostname"] = hostname_;
    received["peer"] = peer_json(c.peer);
    received["token_sha256"] = c.token_sha256;
    std::string members =
        "\"received\":" + received.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    log_->append(append_members(line, members), durable, AuditRecordKind::run_start);
    r.started = true;
    r.token_sha256 = c.token_sha256;
    nlohmann::json doc = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (doc.is_object() && doc.contains("manifest") && doc["manifest"].is_object()) {
      r.manifest = doc["manifest"].value("name", "");
    }
  } else {
    log_->append(line, durable);
  }
  if (journal_) journal_->write(std::string(line) + "\n");
  uint64_t last = f->type == "lost" && f->last_seq ? *f->last_seq : f->seq;
  r.next_seq = std::max(r.next_seq, last + 1);
  if (f->type == "exit") {
    r.closed = true;
    closed_runs_.push_back(c.run);
  }
  metrics_.record(*f, r.manifest);
  c.ack = r.next_seq - 1;
}

void Collector::on_connection(int fd, uint32_t events) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  if (events & EPOLLOUT) flush_output(c);
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR))) return;
  size_t budget = kReadBudgetPerWakeup;
  bool eof = false;
  char buf[1 << 16];
  while (budget > 0 && !c.closing) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      eof = true;
      break;
    }
    budget -= std::min(budget, static_cast<size_t>(n));
    commit_bytes_read_ += static_cast<uint64_t>(n);
    size_t scanned = c.in.size();
    c.in.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    size_t nl;
    while (!c.closing && (nl = c.in.find('\n', std::max(start, scanned))) != std::string::npos) {
      on_line(c, std::string_view(c.in).substr(start, nl - start));
      start = nl + 1;
    }
    if (c.closing) break;
    c.in.erase(0, start);
    if (c.in.size() > kCollectorLineMax) {
      refuse(c, "a line longer than " + std::to_string(kCollectorLineMax) + " bytes");
      break;
    }
  }
  if (eof && !c.closing) disconnect(fd);
}

void Collector::disconnect(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  if (!c.run.empty()) {
    auto r = runs_.find(c.run);
    if (r != runs_.end() && r->second.connection == fd) {
      r->second.connection = -1;
      if (!r->second.started) {
        runs_.erase(r);
      } else if (!r->second.closed && !c.closing) {
        nlohmann::ordered_json d;
        d["ts"] = rfc3339_now();
        d["type"] = "collector";
        d["event"] = "disconnected";
        d["about_run"] = c.run;
        d["next_seq"] = r->second.next_seq;
        d["peer"] = peer_json(c.peer);
        write_collector_record(d);
      }
    }
  }
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  connections_.erase(it);
  arm_listener(true);  // a descriptor is free again
}

void Collector::flush_output(Connection& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      c.out.clear();
      c.closing = true;
      break;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
  bool want = !c.out.empty();
  if (want != c.writable_wanted) {
    struct epoll_event e {};
    e.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0);
    e.data.fd = c.fd.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &e);
    c.writable_wanted = want;
  }
}

void Collector::finish_iteration() {
  // Everything read in this turn is written (and fsync'd when it matters) before any of it is
  // acknowledged.
  log_->commit();
  std::vector<int> done;
  for (auto& [fd, c] : connections_) {
    if (c.ack) {
      c.out += encode_ack(*c.ack);
      c.ack.reset();
    }
    if (!c.out.empty()) flush_output(c);
    if (c.out.size() > kOutputMax) c.closing = true;
    if (c.closing && c.out.empty()) done.push_back(fd);
    if (c.closing && c.out.size() > kOutputMax) done.push_back(fd);
  }
  for (int fd : done)
    disconnect(fd);
  if (log_->needs_rotation()) log_->rotate(open_runs());
  forget_old_closed_runs();
}

void Collector::forget_old_closed_runs() {
  while (closed_runs_.size() > kClosedRunsKept) {
    auto it = runs_.find(closed_runs_.front());
    if (it != runs_.end() && it->second.closed && it->second.connection < 0) runs_.erase(it);
    closed_runs_.pop_front();
  }
}

std::string Collector::render_metrics(ExpositionFormat format) const {
  CollectorGauges g;
  for (const auto& [id, r] : runs_) {
    if (r.started && !r.closed) ++g.runs_active;
  }
  g.connections = connections_.size();
  g.log_lines = log_->lines();
  g.log_bytes = log_->bytes();
  g.fsyncs = log_->fsyncs();
  g.rotations = log_->rotations();
  return metrics_.render(g, format);
}

int Collector::run() {
  std::cerr << "enclosure collect: listening on unix:" << options_.socket_path << ", audit log "
            << options_.audit_log;
  if (metrics_endpoint_) std::cerr << ", metrics " << metrics_endpoint_->url();
  std::cerr << std::endl;
  // Readiness for systemd (Type=notify): the socket listens and the log is open. A no-op
  // without $NOTIFY_SOCKET.
  std::string status = "STATUS=listening on unix:" + options_.socket_path;
  notify_service_manager("READY=1\n" + status);
  struct epoll_event evs[64];
  bool stopping = false;
  int timeout_ms = -1;  // 0 while a group commit gathers the records ready at once
  while (!stopping) {
    int n = ::epoll_wait(epoll_.get(), evs, 64, timeout_ms);
    uint64_t read_before = commit_bytes_read_;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("collect: epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == listener_.get()) {
        accept_launchers();
      } else if (fd == signals_.get()) {
        struct signalfd_siginfo info {};
        while (::read(signals_.get(), &info, sizeof info) == sizeof info) {
          if (info.ssi_signo != SIGHUP) stopping = true;
        }
      } else if (fd == sync_timer_.get()) {
        uint64_t expirations;
        while (::read(fd, &expirations, sizeof expirations) > 0) {
        }
        if (log_->head_due()) log_->append_head("interval", open_runs().size());
        log_->sync();
        arm_listener(true);
        if (metrics_endpoint_) metrics_endpoint_->expire_idle();
      } else if (metrics_endpoint_ && metrics_endpoint_->handles(fd)) {
        metrics_endpoint_->on_ready(
            fd, evs[i].events, [this](ExpositionFormat format) { return render_metrics(format); });
      } else {
        on_connection(fd, evs[i].events);
      }
    }
    // Group commit: records that arrived meanwhile join this commit (one write, one fdatasync,
    // then the acknowledgements), while the turn reads more and the commit stays bounded.
    if (!stopping && commit_bytes_read_ > read_before && commit_bytes_read_ < kGroupCommitBytes) {
      timeout_ms = 0;
      continue;
    }
    finish_iteration();
    commit_bytes_read_ = 0;
    timeout_ms = -1;
  }
  nlohmann::ordered_json stopped;
  stopped["ts"] = rfc3339_now();
  stopped["type"] = "collector";
  stopped["event"] = "stopped";
  try {
    notify_service_manager("STOPPING=1");
  } catch (const LaunchError& e) {
    std::cerr << "enclosure collect: " << e.what() << std::endl;  // the shutdown record follows
  }
  stopped["pid"] = ::getpid();
  stopped["open_runs"] = open_runs().size();
  write_collector_record(stopped);
  log_->append_head("shutdown", open_runs().size());
  log_->commit();
  log_->sync();
  std::cerr << "enclosure collect: stopped; " << log_->lines() << " lines in " << options_.audit_log
            << "\n";
  return exit_code::kSuccess;
}

}  // namespace launcher
