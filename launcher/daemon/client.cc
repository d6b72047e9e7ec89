#include "launcher/daemon/client.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/daemon/protocol.h"
#include "launcher/base/error.h"

namespace launcher {
namespace {

constexpr auto kReconnectInterval = std::chrono::milliseconds(100);
constexpr int kFlushTimeoutMs = 2000;

nlohmann::json port_list(const std::vector<policy::PortRange>& ports) {
  nlohmann::json out = nlohmann::json::array();
  for (const policy::PortRange& p : ports)
    out.push_back({p.first, p.last});
  return out;
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
    features_ = daemon_call(control_.get(), {{"op", "hello"}});
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + ": " + e.what());
  }
  if (features_.value("version", 0) != kDaemonProtocolVersion) {
    throw LaunchError("enclosure daemon at " + path_ + " speaks protocol version " +
                      std::to_string(features_.value("version", 0)) + ", this launcher " +
                      std::to_string(kDaemonProtocolVersion));
  }
}

void DaemonClient::create(const nlohmann::json& request) {
  nlohmann::json r;
  try {
    nlohmann::json full = request;
    full["op"] = "create";
    r = daemon_call(control_.get(), full);
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + " refused the run: " + e.what());
  }
  token_ = r.at("token").get<std::string>();
  cgroup_id_ = r.at("cgroup_id").get<uint64_t>();
  auto dirs = CgroupDirectories::from_json(r.at("cgroup"));
  if (!dirs) throw LaunchError("enclosure daemon at " + path_ + ": a malformed cgroup reply");
  cgroup_ = *dirs;
  cgroup_report_ = r.at("cgroup_report");
  bpf_report_ = r.at("bpf");
  open_events();
}

void DaemonClient::open_events() const {
  UniqueFd fd = connect_daemon(path_);
  if (!fd) throw_errno("daemon client: connect the events connection to " + path_);
  try {
    daemon_call(fd.get(), {{"op", "events"}, {"token", token_}});
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
    daemon_call(control_.get(), {{"op", "enter"}}, pidfd);
  } catch (const DaemonRefusal& e) {
    throw LaunchError("enclosure daemon at " + path_ + ": enter: " + e.what());
  }
}

std::optional<nlohmann::json> DaemonClient::call(const nlohmann::json& request, int fd) const {
  if (!connected() && !reconnect()) return std::nullopt;
  try {
    return daemon_call(control_.get(), request, fd);
  } catch (const LaunchError&) {
    // The daemon went away (restart): the pinned programs go on enforcing; come back later.
    control_.reset();
    return std::nullopt;
  }
}

bool DaemonClient::reconnect() const {
  auto now = std::chrono::steady_clock::now();
  if (now - last_attempt_ < kReconnectInterval) return false;
  last_attempt_ = now;
  UniqueFd fd = connect_daemon(path_);
  if (!fd) return false;
  try {
    daemon_call(fd.get(), {{"op", "hello"}});
    daemon_call(fd.get(), {{"op", "adopt"}, {"token", token_}});
    control_ = std::move(fd);
    open_events();
  } catch (const std::exception&) {
    control_.reset();
    return false;
  }
  std::vector<nlohmann::json> pending = std::move(pending_admissions_);
  pending_admissions_.clear();
  for (const nlohmann::json& request : pending) {
    if (!call(request)) pending_admissions_.push_back(request);
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
  if (!call({{"op", "flush"}})) return;
  // Read until the daemon's mark: every record written before the flush is then here.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kFlushTimeoutMs);
  while (events_ && std::chrono::steady_clock::now() < deadline) {
    // Look for an empty frame among the whole frames received so far.
    size_t at = 0;
    bool marked = false;
    while (at + sizeof(uint32_t) <= events_buffer_.size()) {
      uint32_t size;
      std::memcpy(&size, events_buffer_.data() + at, sizeof size);
      if (size == 0) {
        marked = true;
        break;
      }
      at += sizeof size + size;
    }
    if (marked) return;
    pollfd p{events_.get(), POLLIN, 0};
    ::poll(&p, 1, 50);
    read_events();
  }
}

bpf::EnclosureCounters DaemonClient::counters(uint64_t) const {
  std::optional<nlohmann::json> r = call({{"op", "counters"}});
  if (!r) return last_counters_;
  bpf::EnclosureCounters c;
  std::string hex = r->at("state").get<std::string>();
  if (hex.size() == 2 * sizeof c.state) {
    auto* bytes = reinterpret_cast<unsigned char*>(&c.state);
    for (size_t i = 0; i < sizeof c.state; ++i) {
      bytes[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    }
  }
  c.state.lost += r->value("forward_lost", uint64_t{0});
  c.syscalls_pending = r->value("syscalls_pending", uint64_t{0});
  for (const nlohmann::json& h : r->at("histogram"))
    c.histogram.emplace_back(h.at(0).get<int>(), h.at(1).get<uint64_t>());
  last_counters_ = c;
  return c;
}

uint64_t DaemonClient::rules_fired(uint64_t) const {
  std::optional<nlohmann::json> r = call({{"op", "rules_fired"}});
  // Unknown while the daemon restarts: every rule counts as fired, so gates deny.
  if (!r) return ~0ULL;
  return r->at("bits").get<uint64_t>();
}

void DaemonClient::set_reported_cost(uint64_t, uint64_t micro_usd) {
  nlohmann::json request = {{"op", "cost"}, {"micro_usd", micro_usd}};
  if (!call(request)) pending_admissions_.push_back(request);
}

void DaemonClient::admit(uint64_t, const policy::Cidr& address, policy::Protocol protocol,
                         const std::vector<policy::PortRange>& ports, size_t rule_index) {
  nlohmann::json request = {{"op", "admit"},
                            {"cidr", address.to_string()},
                            {"protocol", protocol == policy::Protocol::udp ? "udp" : "tcp"},
                            {"ports", port_list(ports)},
                            {"rule", rule_index}};
  if (!call(request)) pending_admissions_.push_back(request);
}

void DaemonClient::revoke(uint64_t, const policy::Cidr& address, policy::Protocol protocol) {
  nlohmann::json request = {{"op", "revoke"},
                            {"cidr", address.to_string()},
                            {"protocol", protocol == policy::Protocol::udp ? "udp" : "tcp"}};
  if (!call(request)) pending_admissions_.push_back(request);
}

bool DaemonClient::kill_all() {
  return call({{"op", "kill"}}).has_value();
}

void DaemonClient::release() {
  // While the daemon restarts, wait a little for it to come back; without an answer the daemon
  // still kills and removes the run (when this connection closes, or at its adopt timeout).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!connected() && std::chrono::steady_clock::now() < deadline) {
    if (!reconnect()) ::poll(nullptr, 0, 50);
  }
  call({{"op", "release"}});
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
  const nlohmann::json& cg = daemon.features().value("cgroup", nlohmann::json::object());
  auto controller = [&](const char* name) -> Feature {
    std::string where = cg.value(name, std::string());
    if (where.empty()) return {false, via + " has no " + std::string(name) + " controller"};
    return {true, via + " (cgroup " + where + ")"};
  };
  host.bpf = {true, via};
  host.cgroup_v2 = {true, via};
  host.cgroup_cpu = {true, via};
  host.cgroup_pids = controller("pids");
  host.cgroup_memory = controller("memory");
}

}  // namespace launcher
