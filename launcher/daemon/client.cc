#include "launcher/daemon/client.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bpf/enclosure_abi.h"
#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/daemon/framing.h"
#include "launcher/daemon/protocol_conversion.h"

namespace launcher {
namespace {

constexpr uint64_t kReconnectIntervalNs = 100'000'000;
constexpr uint64_t kFlushTimeoutMs = 2000;
constexpr uint64_t kReleaseWaitMs = 3000;

// Whether `buffer` holds, among its whole frames, an empty one: the daemon's flush mark.
bool holds_flush_mark(const std::string& buffer) {
  size_t at = 0;
  while (at + sizeof(uint32_t) <= buffer.size()) {
    uint32_t size;
    std::memcpy(&size, buffer.data() + at, sizeof size);
    if (size == 0) return true;
    at += sizeof size + size;
  }
  return false;
}

}  // namespace

DaemonClient::DaemonClient(std::string socket_path) : path_(std::move(socket_path)) {
  control_ = connect_daemon(path_);
  if (!control_) {
    throw LaunchError("cannot reach enclosure daemon at " + path_ + ": " + std::strerror(errno) +
                      " (start it as root: enclosure daemon --socket " + path_ + ")");
  }
  poll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!poll_) throw_errno("daemon client: epoll_create1");
  try {
    features_ = call_daemon<HelloReply>(control_.get(), HelloRequest{});
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + ": " + e.what());
  }
  if (features_.version != kDaemonProtocolVersion) {
    throw LaunchError("enclosure daemon at " + path_ + " speaks protocol version " +
                      std::to_string(features_.version) + ", this launcher " +
                      std::to_string(kDaemonProtocolVersion));
  }
}

// The descriptors of a create reply, by the names the reply gives them; throws when they disagree.
CgroupDirectoryFds DaemonClient::cgroup_fds_of(const RunReply& r,
                                               std::vector<UniqueFd>& fds) const {
  if (fds.size() != r.descriptors.size() || fds.empty() || r.descriptors.front() != "v2") {
    throw LaunchError("enclosure daemon at " + path_ + ": the run's cgroup directories did not " +
                      "come with the reply (" + std::to_string(fds.size()) + " descriptors for " +
                      std::to_string(r.descriptors.size()) + " names)");
  }
  CgroupDirectoryFds out;
  out.v2 = std::move(fds[0]);
  for (size_t i = 1; i < fds.size(); ++i)
    out.v1[r.descriptors[i]] = std::move(fds[i]);
  return out;
}

void DaemonClient::create(const CreateRequest& request) {
  RunReply r;
  std::vector<UniqueFd> fds;
  try {
    r = call_daemon<RunReply>(control_.get(), request, -1, &fds);
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + " refused the run: " + e.what());
  }
  token_ = r.token;
  cgroup_id_ = r.cgroup_id;
  cgroup_ = to_cgroup(r.cgroup);
  cgroup_fds_ = cgroup_fds_of(r, fds);
  cgroup_report_ = r.cgroup_report;
  bpf_report_ = r.bpf.to_json();
  open_events();
}

void DaemonClient::open_events() const {
  UniqueFd fd = connect_daemon(path_);
  if (!fd) throw_errno("daemon client: connect the events connection to " + path_);
  try {
    call_daemon<EmptyReply>(fd.get(), EventsRequest{token_});
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + ": events: " + e.what());
  }
  if (events_) ::epoll_ctl(poll_.get(), EPOLL_CTL_DEL, events_.get(), nullptr);
  events_ = std::move(fd);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = events_.get();
  if (::epoll_ctl(poll_.get(), EPOLL_CTL_ADD, events_.get(), &ev) != 0) {
    throw_errno("daemon client: epoll_ctl");
  }
}

void DaemonClient::enter(int pidfd) {
  try {
    call_daemon<EmptyReply>(control_.get(), EnterRequest{}, pidfd);
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + ": enter: " + e.what());
  }
}

template <class Reply>
std::optional<Reply> DaemonClient::call(const DaemonRequest& request) const {
  if (!connected() && !reconnect()) return std::nullopt;
  try {
    return call_daemon<Reply>(control_.get(), request);
  } catch (const LaunchError&) {
    // The daemon went away (restart): the pinned programs go on enforcing; come back later.
    control_.reset();
    return std::nullopt;
  }
}

void DaemonClient::send_or_keep(DaemonRequest request) {
  if (!call<EmptyReply>(request)) pending_admissions_.push_back(std::move(request));
}

bool DaemonClient::reconnect() const {
  uint64_t now = monotonic_ns();
  if (last_attempt_ns_ != 0 && now - last_attempt_ns_ < kReconnectIntervalNs) return false;
  last_attempt_ns_ = now;
  UniqueFd fd = connect_daemon(path_);
  if (!fd) return false;
  try {
    call_daemon<HelloReply>(fd.get(), HelloRequest{});
    call_daemon<RunReply>(fd.get(), AdoptRequest{token_});
    control_ = std::move(fd);
    open_events();
  } catch (const std::exception&) {
    control_.reset();
    return false;
  }
  std::vector<DaemonRequest> pending = std::move(pending_admissions_);
  pending_admissions_.clear();
  for (DaemonRequest& request : pending) {
    if (!call<EmptyReply>(request)) pending_admissions_.push_back(std::move(request));
  }
  return connected();
}

void DaemonClient::read_events() const {
  if (!events_) return;
  while (true) {
    char buf[65536];
    ssize_t n = ::recv(events_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      events_buffer_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // The daemon is gone; records it had not sent are counted by the kernel or the daemon.
    ::epoll_ctl(poll_.get(), EPOLL_CTL_DEL, events_.get(), nullptr);
    events_.reset();
    control_.reset();
    return;
  }
}

void DaemonClient::drain(const std::function<void(const void* data, size_t size)>& sink) {
  read_events();
  while (true) {
    bool bad = false;
    std::optional<std::string> frame = take_frame(events_buffer_, bad);
    if (bad) {
      events_buffer_.clear();
      break;
    }
    if (!frame) break;
    if (!frame->empty()) sink(frame->data(), frame->size());  // empty: a flush mark
  }
  if (!connected()) reconnect();
}

void DaemonClient::flush() {
  if (!call<EmptyReply>(FlushRequest{})) return;
  // Read until the daemon's mark: every record written before the flush is then here.
  Deadline deadline(kFlushTimeoutMs);
  while (events_ && !deadline.passed()) {
    if (holds_flush_mark(events_buffer_)) return;
    pollfd p{events_.get(), POLLIN, 0};
    ::poll(&p, 1, 50);
    read_events();
  }
}

bpf::EnclosureCounters DaemonClient::counters(uint64_t) const {
  std::optional<CountersReply> r = call<CountersReply>(CountersRequest{});
  if (!r) return last_counters_;
  bpf::EnclosureCounters c;
  // Another size is another ABI: the counters stay zero rather than misread.
  if (r->state.size() == sizeof c.state) std::memcpy(&c.state, r->state.data(), sizeof c.state);
  // Records the daemon dropped (its buffer full, or the user over its --event-rate) are lost to
  // this launcher like records the ring buffer could not take: `lost` events and exit totals.
  c.state.lost += r->forward_lost + r->forward_suppressed;
  c.syscalls_pending = r->syscalls_pending;
  c.histogram = r->histogram;
  last_counters_ = c;
  return c;
}

static_assert(kFileOpenEntryBytes == sizeof(enc_open_key) + sizeof(enc_open_count));

// One page of the run's open counts; the reply's sizes are checked by FileOpensReply::from_json.
FileOpensReply DaemonClient::file_opens_page(uint64_t offset) const {
  const std::string what = "enclosure daemon at " + path_ + ": file_opens: ";
  // While the daemon restarts, wait a little for it to come back, as release() does.
  Deadline deadline(kReleaseWaitMs);
  while (!connected() && !deadline.passed()) {
    if (!reconnect()) ::poll(nullptr, 0, 50);
  }
  if (!connected()) throw LaunchError(what + "the daemon cannot be reached");
  try {
    return call_daemon<FileOpensReply>(control_.get(), FileOpensRequest{offset});
  } catch (const DaemonRefusal& e) {
    throw LaunchError(what + "refused: " + e.what());
  } catch (const LaunchError& e) {
    control_.reset();  // the connection is in an unknown state: the next call reconnects
    throw LaunchError(what + e.what());
  }
}

std::vector<bpf::FileOpenCount> DaemonClient::file_opens(uint64_t) const {
  std::vector<bpf::FileOpenCount> out;
  std::optional<uint64_t> total;
  while (!total || out.size() < *total) {
    FileOpensReply page = file_opens_page(out.size());
    auto malformed = [&](const std::string& why) {
      return LaunchError("enclosure daemon at " + path_ + ": file_opens: a malformed reply: " +
                         why + " (entry " + std::to_string(out.size()) + ")");
    };
    if (page.offset != out.size()) throw malformed("at offset " + std::to_string(page.offset));
    if (total && page.total != *total) {
      throw malformed("a total of " + std::to_string(page.total) + " after " +
                      std::to_string(*total));
    }
    if (page.count() == 0 && page.offset < page.total) throw malformed("an empty page");
    total = page.total;
    for (size_t at = 0; at < page.entries.size(); at += kFileOpenEntryBytes) {
      bpf::FileOpenCount& f = out.emplace_back();
      std::memcpy(&f.key, page.entries.data() + at, sizeof f.key);
      std::memcpy(&f.count, page.entries.data() + at + sizeof f.key, sizeof f.count);
    }
  }
  return out;
}

uint64_t DaemonClient::rules_fired(uint64_t) const {
  std::optional<RulesFiredReply> r = call<RulesFiredReply>(RulesFiredRequest{});
  // Unknown while the daemon restarts: every rule counts as fired, so gates deny.
  if (!r) return ~0ULL;
  return r->bits;
}

void DaemonClient::set_reported_cost(uint64_t, uint64_t micro_usd) {
  send_or_keep(CostRequest{micro_usd});
}

void DaemonClient::admit(uint64_t, const policy::Cidr& address, policy::Protocol protocol,
                         const std::vector<policy::PortRange>& ports, size_t rule_index) {
  send_or_keep(AdmitRequest{address, protocol, ports, rule_index});
}

void DaemonClient::revoke(uint64_t, const policy::Cidr& address, policy::Protocol protocol) {
  send_or_keep(RevokeRequest{address, protocol});
}

bool DaemonClient::kill_all() {
  return call<KillReply>(KillRequest{}).has_value();
}

void DaemonClient::release() {
  // While the daemon restarts, wait a little for it to come back; without an answer the daemon
  // still kills and removes the run (when this connection closes, or at its adopt timeout).
  Deadline deadline(kReleaseWaitMs);
  while (!connected() && !deadline.passed()) {
    if (!reconnect()) ::poll(nullptr, 0, 50);
  }
  call<EmptyReply>(ReleaseRequest{});
  control_.reset();
  events_.reset();
}

std::string daemon_socket_for(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (::geteuid() != 0 && ::access(kDefaultDaemonSocket, F_OK) == 0) return kDefaultDaemonSocket;
  return "";
}

void apply_daemon_features(HostFeatures& host, const DaemonClient& daemon) {
  std::string via = "enclosure daemon at " + daemon.socket_path();
  auto controller = [&](const std::string& where, const char* name) -> Feature {
    if (where.empty()) return {false, via + " has no " + std::string(name) + " controller"};
    return {true, via + " (cgroup " + where + ")"};
  };
  host.bpf = {true, via};
  host.cgroup_v2 = {true, via};
  host.cgroup_cpu = {true, via};
  host.cgroup_pids = controller(daemon.features().cgroup_pids, "pids");
  host.cgroup_memory = controller(daemon.features().cgroup_memory, "memory");
}

}  // namespace launcher
