#include "launcher/events/collector_sink.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/events/audit_chain.h"
#include "launcher/events/collector_protocol.h"

namespace launcher {
namespace {

std::string random_token() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("getrandom for the collector token");
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

// A collector that runs but whose socket this user may not connect to: who owns it, who this
// is, and the two ways out.
std::string permission_advice(const std::string& path) {
  struct stat st {};
  std::string owner = "?";
  if (::stat(path.c_str(), &st) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    owner = "uid " + std::to_string(st.st_uid) + ", gid " + std::to_string(st.st_gid) + ", mode " +
            mode;
  }
  return "--events unix:" + path + ": permission denied: the collector's socket is " + owner +
         " and this launcher runs as uid " + std::to_string(::getuid()) + ", gid " +
         std::to_string(::getgid()) +
         "; add the user to the socket's group (enclosure collect "
         "--socket-group), or for pods with their own user namespace start the collector with "
         "--socket-mode 0666";
}

}  // namespace

CollectorSink::CollectorSink(const CollectorSinkOptions& options, const std::string& run_id)
    : options_(options), run_id_(run_id), token_(random_token()) {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("--events unix:" + options_.socket_path + ": epoll_create1");
  std::string advice =
      "; start the collector (enclosure collect --listen unix:" + options_.socket_path +
      " --audit-log FILE) or choose another --events destination";
  try {
    connect_now(true);
  } catch (const LaunchError& e) {
    // throw_errno ends the message with the errno text.
    std::string what = e.what(), denied = std::strerror(EACCES);
    if (what.size() >= denied.size() && what.ends_with(denied)) {
      throw LaunchError(permission_advice(options_.socket_path));
    }
    throw LaunchError("--events unix:" + options_.socket_path +
                      ": cannot reach the collector: " + e.what() + advice);
  }
  // The hello is answered before anything else is sent.
  Deadline deadline(
      options_.connect_timeout_ms > 0 ? static_cast<uint64_t>(options_.connect_timeout_ms) : 0);
  while (state_ == State::handshaking) {
    struct pollfd p = {socket_.get(), POLLIN, 0};
    int left = deadline.milliseconds_left();
    if (left == 0 || ::poll(&p, 1, left) == 0) {
      throw LaunchError("--events unix:" + options_.socket_path +
                        ": the collector did not answer within " +
                        std::to_string(options_.connect_timeout_ms) + " ms" + advice);
    }
    on_readable();
  }
  if (state_ == State::refused) {
    throw LaunchError("--events unix:" + options_.socket_path +
                      ": the collector refused the run: " + refusal_);
  }
  if (state_ != State::connected) {
    throw LaunchError("--events unix:" + options_.socket_path +
                      ": the collector closed the connection" + advice);
  }
}

CollectorSink::~CollectorSink() = default;

void CollectorSink::connect_now(bool blocking) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.socket_path.size() >= sizeof addr.sun_path)
    throw LaunchError("the socket path is too long");
  std::memcpy(addr.sun_path, options_.socket_path.c_str(), options_.socket_path.size() + 1);
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0));
  if (!s) throw_errno("socket");
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("connect");
  std::string hello = encode_hello({run_id_, token_});
  if (::send(s.get(), hello.data(), hello.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(hello.size())) {
    throw_errno("send the hello");
  }
  if (blocking && ::fcntl(s.get(), F_SETFL, O_NONBLOCK) != 0) throw_errno("fcntl O_NONBLOCK");
  if (socket_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, socket_.get(), nullptr);
  socket_ = std::move(s);
  struct epoll_event e {};
  e.events = EPOLLIN | EPOLLRDHUP;
  e.data.fd = socket_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, socket_.get(), &e) != 0) throw_errno("epoll_ctl");
  writable_wanted_ = false;
  in_.clear();
  send_index_ = 0;
  send_offset_ = 0;
  state_ = State::handshaking;
}

void CollectorSink::lost_connection(const std::string& why) {
  if (socket_) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, socket_.get(), nullptr);
    socket_.reset();
  }
  writable_wanted_ = false;
  send_index_ = 0;
  send_offset_ = 0;
  in_.clear();
  if (state_ == State::refused) return;
  if (state_ == State::connected) {
    std::string msg = "enclosure run: WARNING: lost the collector at unix:" + options_.socket_path +
                      " (" + why + "); buffering events and reconnecting\n";
    write_all(STDERR_FILENO, msg.data(), msg.size());
  }
  state_ = State::disconnected;
}

void CollectorSink::handle_reply(std::string_view line) {
  std::optional<CollectorReply> reply = parse_reply(line);
  if (!reply) return;
  switch (reply->kind) {
    case CollectorReply::Kind::welcome: {
      if (state_ != State::handshaking) return;
      // The collector already holds everything before next_seq.
      while (!queue_.empty() && queue_.front().last_seq < reply->seq) {
        queued_bytes_ -= queue_.front().line.size();
        queue_.pop_front();
        ++duplicates_resent_;
      }
      if (reconnects_ > 0 || acked_) {
        std::string msg =
            "enclosure run: reconnected to the collector at unix:" + options_.socket_path +
            "; resending " + std::to_string(queue_.size()) + " events\n";
        write_all(STDERR_FILENO, msg.data(), msg.size());
      }
      state_ = State::connected;
      send_index_ = 0;
      send_offset_ = 0;
      pump();
      break;
    }
    case CollectorReply::Kind::ack: {
      acked_ = acked_ ? std::max(*acked_, reply->seq) : reply->seq;
      // A line partly sent stays until it is sent whole: the stream must stay line-aligned.
      while (!queue_.empty() && queue_.front().last_seq <= reply->seq &&
             (send_index_ > 0 || send_offset_ == 0)) {
        queued_bytes_ -= queue_.front().line.size();
        queue_.pop_front();
        if (send_index_ > 0) --send_index_;
      }
      break;
    }
    case CollectorReply::Kind::error: {
      refusal_ = reply->error;
      std::string msg = "enclosure run: the collector at unix:" + options_.socket_path +
                        " refused the run: " + reply->error + "\n";
      write_all(STDERR_FILENO, msg.data(), msg.size());
      state_ = State::refused;
      lost_connection("refused");
      break;
    }
  }
}

void CollectorSink::on_readable() {
  if (!socket_) return;
  char buf[8192];
  while (socket_) {
    ssize_t n = ::recv(socket_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      lost_connection(n == 0 ? "connection closed" : std::strerror(errno));
      return;
    }
    in_.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    while (socket_ && (nl = in_.find('\n', start)) != std::string::npos) {
      std::string line = in_.substr(start, nl - start);
      start = nl + 1;
      handle_reply(line);
    }
    if (!socket_) return;
    in_.erase(0, start);
    if (in_.size() > kCollectorLineMax) {
      lost_connection("a reply line too long");
      return;
    }
  }
  pump();
}

void CollectorSink::watch_writable(bool want) {
  if (!socket_ || want == writable_wanted_) return;
  struct epoll_event e {};
  e.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0);
  e.data.fd = socket_.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, socket_.get(), &e);
  writable_wanted_ = want;
}

void CollectorSink::pump() {
  constexpr size_t kLinesPerSend = 64;
  if (state_ != State::connected || !socket_) return;
  while (send_index_ < queue_.size()) {
    // Up to kLinesPerSend lines in one sendmsg(2).
    struct iovec iov[kLinesPerSend];
    size_t count = 0;
    for (size_t i = send_index_; i < queue_.size() && count < kLinesPerSend; ++i, ++count) {
      const std::string& line = queue_[i].line;
      size_t skip = i == send_index_ ? send_offset_ : 0;
      iov[count] = {const_cast<char*>(line.data()) + skip, line.size() - skip};
    }
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      watch_writable(true);
      return;
    }
    if (n <= 0) {
      lost_connection(std::strerror(errno));
      return;
    }
    advance_sent(static_cast<size_t>(n));
  }
  watch_writable(false);
}

void CollectorSink::advance_sent(size_t bytes) {
  while (bytes > 0 && send_index_ < queue_.size()) {
    size_t left = queue_[send_index_].line.size() - send_offset_;
    if (bytes < left) {
      send_offset_ += bytes;
      return;
    }
    bytes -= left;
    ++send_index_;
    send_offset_ = 0;
  }
}

bool CollectorSink::has_room(size_t lines, size_t bytes, bool durable) const {
  // The records that matter (start, deny, budget, rule, exit) may use twice the bound: an
  // overflow loses the agent's file opens and connects before it loses a denial or the exit.
  size_t factor = durable ? 2 : 1;
  return queue_.size() + lines <= factor * options_.max_lines &&
         queued_bytes_ + bytes <= factor * options_.max_bytes;
}

void CollectorSink::enqueue(Entry entry) {
  queued_bytes_ += entry.line.size();
  queue_.push_back(std::move(entry));
}

void CollectorSink::report_gap() {
  nlohmann::ordered_json e;
  e["ts"] = rfc3339_now();
  e["run"] = run_id_;
  e["seq"] = gap_->first_seq;
  e["type"] = "lost";
  e["pid"] = ::getpid();
  if (identity_.contains("manifest")) e["manifest"] = identity_["manifest"];
  e["count"] = gap_->count;
  e["first_seq"] = gap_->first_seq;
  e["last_seq"] = gap_->last_seq;
  e["source"] = "launcher buffer for the collector (" + std::to_string(options_.max_lines) +
                " lines, " + std::to_string(options_.max_bytes >> 20) +
                " MiB) overflowed while the collector was unreachable or slow";
  lost_ += gap_->count;
  enqueue({gap_->first_seq, gap_->last_seq, encode_event(e) + "\n"});
  gap_.reset();
}

bool CollectorSink::write(const std::string& line) {
  nlohmann::ordered_json event = nlohmann::ordered_json::parse(line, nullptr, false);
  if (!event.is_object() || !event.contains("seq") || !event["seq"].is_number_unsigned())
    return false;
  return write_event(event, line);
}

bool CollectorSink::write_event(const nlohmann::ordered_json& event, const std::string& line) {
  if (identity_.empty() && event.contains("manifest")) identity_["manifest"] = event["manifest"];
  uint64_t seq = event["seq"].get<uint64_t>();
  bool durable = event.contains("type") && event["type"].is_string() &&
                 is_durable_record_type(event["type"].get_ref<const std::string&>());
  return take_line(seq, durable, line);
}

bool CollectorSink::write_line(uint64_t seq, const std::string& type, const std::string& line) {
  if (identity_.empty()) {
    nlohmann::ordered_json event = nlohmann::ordered_json::parse(line, nullptr, false);
    if (event.is_object() && event.contains("manifest")) identity_["manifest"] = event["manifest"];
  }
  return take_line(seq, is_durable_record_type(type), line);
}

uint64_t CollectorSink::release_writes() {
  holding_ = false;
  pump();
  return 0;
}

bool CollectorSink::take_line(uint64_t seq, bool durable, const std::string& line) {
  if (gap_ && has_room(2, line.size() + 1024, durable)) report_gap();
  if (gap_ || !has_room(1, line.size(), durable)) {
    if (!gap_) gap_ = Gap{seq, seq, 0};
    gap_->last_seq = seq;
    ++gap_->count;
    return true;  // counted, and reported as lost once there is room
  }
  enqueue({seq, seq, line});
  if (!holding_) pump();
  return true;
}

void CollectorSink::on_tick() {
  if (state_ != State::disconnected) {
    pump();
    return;
  }
  try {
    connect_now(false);
    ++reconnects_;
  } catch (const LaunchError&) {
    // Still away; the next tick tries again.
  }
}

bool CollectorSink::flush(int timeout_ms) {
  constexpr uint64_t kReconnectInterval_ns = 100'000'000;
  Deadline deadline(timeout_ms > 0 ? static_cast<uint64_t>(timeout_ms) : 0);
  uint64_t next_attempt_ns = monotonic_ns();
  while (true) {
    if (gap_) report_gap();
    if (queue_.empty()) return true;
    if (state_ == State::refused) return false;
    int left = deadline.milliseconds_left();
    if (left == 0) return false;
    if (state_ == State::disconnected && monotonic_ns() >= next_attempt_ns) {
      on_tick();
      next_attempt_ns = monotonic_ns() + kReconnectInterval_ns;
    }
    pump();
    struct pollfd p = {epoll_.get(), POLLIN, 0};
    if (::poll(&p, 1, std::min(left, 100)) > 0) on_readable();
  }
}

nlohmann::json CollectorSink::report() const {
  nlohmann::json r = {{"destination", describe()},
                      {"reconnects", reconnects_},
                      {"lost", lost_ + (gap_ ? gap_->count : 0)},
                      {"pending", queue_.size()}};
  if (acked_) r["acknowledged_seq"] = *acked_;
  if (!refusal_.empty()) r["refused"] = refusal_;
  return r;
}

}  // namespace launcher
