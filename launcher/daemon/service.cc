#include "launcher/daemon/service.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include "bpf/enclosure_bpf.h"
#include "launcher/run/cgroup.h"
#include "launcher/daemon/protocol.h"
#include "launcher/base/error.h"
#include "policy/bpf_plan.h"

namespace launcher {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxControlBuffer = 2 * kMaxDaemonFrame;
constexpr size_t kMaxEventBuffer = 16u << 20;  // records waiting for a slow or absent launcher
constexpr int kKillWaitMs = 1000;
constexpr size_t kMaxConnectionsPerUser = 64;  // beyond the two each run uses

std::string random_token() {
  std::random_device rd;
  std::string out;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i)
    out += hex[rd() % 16];
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A "Key:\tvalue" line of a /proc status-like file.
std::string status_field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      size_t start = line.find_first_not_of(" \t", key.size() + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "";
}

// The v2 cgroup of a process, as this process sees it.
std::string v2_cgroup_of(pid_t pid) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

// A port number in a request: a whole number from 0 to 65535, or an error naming `what`.
uint16_t port_from_json(const nlohmann::json& j, const char* what) {
  if (!j.is_number_unsigned() || j.get<uint64_t>() > 65535) {
    throw std::invalid_argument(std::string(what) + ": expected a port from 0 to 65535");
  }
  return static_cast<uint16_t>(j.get<uint64_t>());
}

bpf::LayerNeeds needs_from_json(const nlohmann::json& j) {
  bpf::LayerNeeds n;
  auto flag = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  };
  n.egress = flag("egress");
  n.egress_bytes = flag("egress_bytes");
  n.exec = flag("exec");
  n.sys_enter = flag("sys_enter");
  n.sys_exit = flag("sys_exit");
  n.behaviour = flag("behaviour");
  return n;
}

nlohmann::json needs_to_json(const bpf::LayerNeeds& n) {
  return {{"egress", n.egress},       {"egress_bytes", n.egress_bytes}, {"exec", n.exec},
          {"sys_enter", n.sys_enter}, {"sys_exit", n.sys_exit},         {"behaviour", n.behaviour}};
}

// The files part of a create request: indices, loaders and keys, checked against the plan.
bpf::EnclosureFiles files_from_json(const nlohmann::json& j, const policy::EnforcementPlan& plan) {
  bpf::EnclosureFiles files;
  for (const nlohmann::json& i : j.at("script_tools")) {
    size_t index = i.get<size_t>();
    if (index >= plan.tools.size()) throw std::invalid_argument("script tool index out of range");
    files.script_tools.push_back(index);
  }
  files.loaders = j.at("loaders").get<std::vector<std::string>>();
  for (const auto& [path, key] : j.at("keys").items()) {
    files.keys[path] = {key.at(0).get<uint64_t>(), key.at(1).get<uint64_t>()};
  }
  return files;
}

struct Connection {
  UniqueFd fd;
  ucred peer{};
  std::string in;
  std::string out;
  std::vector<UniqueFd> fds;  // received with the bytes in `in`
  std::string run;            // the token of the run this connection acts on
  bool events = false;        // an events connection (records flow out)
  std::string after_reply;    // records that follow the reply to "events"
  bool closing = false;
};

struct DaemonRun {
  std::string token;
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t launcher = 0;
  uint64_t cgroup_id = 0;
  std::unique_ptr<RunCgroup> cgroup;
  nlohmann::json plan_json;
  bpf::LayerNeeds needs;
  int control = -1;  // connection fds, -1 when none
  int events = -1;
  std::string pending;  // records while no events connection is attached (bounded)
  uint64_t forward_lost = 0;
  std::optional<Clock::time_point> deadline;        // wall clock + grace + margin: backstop kill
  std::optional<Clock::time_point> adopt_deadline;  // orphaned: killed unless re-adopted by then
  bool deadline_killed = false;
};

class EnclosureDaemon {
 public:
  explicit EnclosureDaemon(const DaemonOptions& options) : options_(options) {}
  int run();

 private:
  DaemonOptions options_;
  CgroupLayout host_layout_;
  CgroupLayout layout_;  // own_ paths point at the subtree: runs are created beneath it
  std::vector<std::string> subtree_dirs_;
  UniqueFd subtree_fd_;
  uint64_t subtree_id_ = 0;
  std::unique_ptr<bpf::EnclosureBpf> bpf_;
  UniqueFd listener_, epoll_, signals_, timer_;
  std::map<int, Connection> connections_;
  std::map<std::string, DaemonRun> runs_;
  std::map<uint64_t, std::string> by_cgroup_;

  void set_up_subtree();
  void load_state();
  void listen();
  void watch(int fd, uint32_t events);
  void accept_all();
  std::string refusal_for(const ucred& peer);
  void on_connection(int fd, uint32_t events);
  void flush_out(Connection& c);
  void close_connection(int fd);
  void handle(Connection& c, const std::string& payload);
  nlohmann::json dispatch(Connection& c, const nlohmann::json& request);
  nlohmann::json create(Connection& c, const nlohmann::json& request);
  nlohmann::json run_reply(const DaemonRun& r) const;
  void enter(Connection& c, DaemonRun& r);
  nlohmann::json counters(DaemonRun& r);
  void attach_events(Connection& c, DaemonRun& r);
  void forward(const void* data, size_t size);
  void drain_ring();
  void release(const std::string& token, const std::string& why);
  void update_syscall_tracing();
  void on_tick();
  void write_state(const DaemonRun& r);
  std::string state_file(const std::string& token) const {
    return options_.state_dir + "/" + token + ".json";
  }
  void shut_down();
};

void EnclosureDaemon::set_up_subtree() {
  host_layout_ = discover_cgroups();
  if (host_layout_.v2_mount.empty()) throw LaunchError("daemon: no cgroup2 hierarchy is mounted");
  layout_ = host_layout_;
  std::string sub = "/" + options_.cgroup_name;
  std::string v2_dir = host_layout_.v2_mount + sub;
  if (::mkdir(v2_dir.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("daemon: mkdir " + v2_dir);
  subtree_dirs_.push_back(v2_dir);
  layout_.v2_own = sub;
  layout_.v2_controllers.clear();
  std::istringstream cs(slurp(v2_dir + "/cgroup.controllers"));
  std::string c;
  while (cs >> c)
    layout_.v2_controllers.insert(c);
  layout_.v1_own.clear();
  for (const auto& [controller, mount] : host_layout_.v1_mount) {
    if (controller != "pids" && controller != "memory") continue;
    std::string dir = mount + sub;
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("daemon: mkdir " + dir);
    subtree_dirs_.push_back(dir);
    layout_.v1_own[controller] = sub;
  }
  subtree_fd_.reset(::open(v2_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!subtree_fd_) throw_errno("daemon: open " + v2_dir);
  struct stat st {};
  if (::fstat(subtree_fd_.get(), &st) != 0) throw_errno("daemon: stat " + v2_dir);
  subtree_id_ = st.st_ino;
}

void EnclosureDaemon::write_state(const DaemonRun& r) {
  nlohmann::json j = {{"token", r.token},
                      {"uid", r.uid},
                      {"gid", r.gid},
                      {"launcher", r.launcher},
                      {"cgroup_id", r.cgroup_id},
                      {"cgroup", r.cgroup->describe().to_json()},
                      {"plan", r.plan_json},
                      {"needs", needs_to_json(r.needs)}};
  std::string path = state_file(r.token);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out.flush()) throw LaunchError("daemon: write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("daemon: rename " + tmp);
}

// Runs a predecessor left: each is adopted and waits for its launcher to come back.
void EnclosureDaemon::load_state() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.state_dir, ec)) {
    std::string path = entry.path();
    if (entry.path().extension() != ".json") {
      ::unlink(path.c_str());
      continue;
    }
    nlohmann::json j = nlohmann::json::parse(slurp(path), nullptr, false);
    std::string why;
    try {
      DaemonRun r;
      r.token = j.at("token").get<std::string>();
      r.uid = j.at("uid").get<uid_t>();
      r.gid = j.at("gid").get<gid_t>();
      r.launcher = j.at("launcher").get<pid_t>();
      r.cgroup_id = j.at("cgroup_id").get<uint64_t>();
      r.plan_json = j.at("plan");
      r.needs = needs_from_json(j.at("needs"));
      auto dirs = CgroupDirectories::from_json(j.at("cgroup"));
      if (!dirs || dirs->v2.rfind(subtree_dirs_.front() + "/", 0) != 0) {
        throw std::invalid_argument("its cgroup is not in this daemon's subtree");
      }
      auto plan = policy::bpf_plan_from_json(r.plan_json, why);
      if (!plan) throw std::invalid_argument(why);
      try {
        r.cgroup = std::make_unique<RunCgroup>(*dirs, /*owner=*/true);
      } catch (const LaunchError&) {
        // The cgroup is gone (the enclosure ended while no daemon ran): forget it.
        bpf_->forget(r.cgroup_id);
        RunCgroup::remove_directories({dirs->v2});
        ::unlink(path.c_str());
        continue;
      }
      if (r.cgroup->v2_id() != r.cgroup_id) throw std::invalid_argument("its cgroup id changed");
      bpf_->adopt(r.cgroup_id, *plan);
      r.adopt_deadline = Clock::now() + std::chrono::nanoseconds(options_.adopt_timeout_ns);
      std::cerr << "enclosure daemon: re-adopted run " << r.token.substr(0, 8) << " of uid "
                << r.uid << " (" << r.cgroup->v2_path() << "); waiting for its launcher"
                << std::endl;
      by_cgroup_[r.cgroup_id] = r.token;
      std::string token = r.token;
      runs_.emplace(token, std::move(r));
    } catch (const std::exception& e) {
      std::cerr << "enclosure daemon: WARNING: " << path << ": cannot adopt: " << e.what()
                << "; removed" << std::endl;
      if (auto dirs = j.is_object() && j.contains("cgroup")
                          ? CgroupDirectories::from_json(j["cgroup"])
                          : std::nullopt;
          dirs && dirs->v2.rfind(subtree_dirs_.front() + "/", 0) == 0) {
        std::vector<std::string> all{dirs->v2};
        for (const auto& [c, d] : dirs->v1)
          all.push_back(d);
        RunCgroup::remove_directories(all);
      }
      ::unlink(path.c_str());
    }
  }
}

void EnclosureDaemon::watch(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("daemon: epoll_ctl");
}

void EnclosureDaemon::listen() {
  std::filesystem::path p(options_.socket_path);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  struct stat st {};
  if (::lstat(options_.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw LaunchError("daemon: " + options_.socket_path + " exists and is not a socket");
    }
    ::unlink(options_.socket_path.c_str());  // stale: run() checked that nobody listens
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.socket_path.size() >= sizeof addr.sun_path) {
    throw LaunchError("daemon: --socket " + options_.socket_path + ": path too long");
  }
  std::memcpy(addr.sun_path, options_.socket_path.data(), options_.socket_path.size());
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_) throw_errno("daemon: socket");
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw_errno("daemon: bind " + options_.socket_path);
  }
  // Anyone may connect; peer credentials decide who may ask for what.
  if (::chmod(options_.socket_path.c_str(), 0666) != 0) {
    throw_errno("daemon: chmod " + options_.socket_path);
  }
  if (::listen(listener_.get(), 128) != 0) throw_errno("daemon: listen");
}

std::string EnclosureDaemon::refusal_for(const ucred& peer) {
  // A process inside an enclosure must never reach the layer that confines it (an agent could
  // otherwise admit addresses into its own egress map).
  std::string cg = v2_cgroup_of(peer.pid);
  if (cg.empty()) return "the caller's cgroup cannot be read";
  std::string sub = "/" + options_.cgroup_name;
  if (cg == sub || cg.rfind(sub + "/", 0) == 0) return "the caller runs inside an enclosure";
  std::istringstream parts(cg);
  std::string part;
  while (std::getline(parts, part, '/')) {
    // A standalone run's cgroup: "enclosure-" and its 32-digit run id.
    if (part.size() == 42 && part.rfind("enclosure-", 0) == 0 &&
        part.find_first_not_of("0123456789abcdef", 10) == std::string::npos) {
      return "the caller runs inside an enclosure";
    }
  }
  if (peer.uid == 0 || options_.allow_groups.empty()) return "";
  std::set<gid_t> groups{peer.gid};
  std::istringstream listed(
      status_field(slurp("/proc/" + std::to_string(peer.pid) + "/status"), "Groups"));
  gid_t g;
  while (listed >> g)
    groups.insert(g);
  for (gid_t allowed : options_.allow_groups) {
    if (groups.count(allowed)) return "";
  }
  return "uid " + std::to_string(peer.uid) + " is in none of the groups --allow-group names";
}

void EnclosureDaemon::accept_all() {
  while (true) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Connection c;
    c.fd.reset(fd);
    socklen_t len = sizeof c.peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c.peer, &len) != 0) continue;
    std::string refusal = refusal_for(c.peer);
    size_t mine = std::count_if(connections_.begin(), connections_.end(), [&](const auto& other) {
      return other.second.peer.uid == c.peer.uid;
    });
    if (refusal.empty() && c.peer.uid != 0 &&
        mine >= kMaxConnectionsPerUser + 2 * options_.max_runs_per_user) {
      refusal = "uid " + std::to_string(c.peer.uid) + " has too many connections open";
    }
    if (!refusal.empty()) {
      std::string out;
      encode_frame(out, nlohmann::json({{"ok", false}, {"error", "refused: " + refusal}}).dump());
      [[maybe_unused]] ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      std::cerr << "enclosure daemon: refused pid " << c.peer.pid << " (uid " << c.peer.uid
                << "): " << refusal << std::endl;
      continue;
    }
    watch(fd, EPOLLIN | EPOLLRDHUP);
    connections_.emplace(fd, std::move(c));
  }
}

void EnclosureDaemon::flush_out(Connection& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      c.closing = true;
      return;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (c.out.empty() ? 0 : EPOLLOUT);
  ev.data.fd = c.fd.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
}

void EnclosureDaemon::close_connection(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  std::string token = it->second.run;
  bool events = it->second.events;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  connections_.erase(it);
  auto r = runs_.find(token);
  if (r == runs_.end()) return;
  if (events && r->second.events == fd) r->second.events = -1;
  if (!events && r->second.control == fd) {
    // The launcher is gone (or dropped its connection): nothing supervises the run any more.
    r->second.control = -1;
    release(token, "its launcher disconnected");
  }
}

void EnclosureDaemon::on_connection(int fd, uint32_t events) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  if (events & EPOLLOUT) flush_out(c);
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    while (!c.closing) {
      char buf[65536];
      ssize_t n = receive_with_descriptors(fd, buf, sizeof buf, MSG_DONTWAIT, c.fds);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) c.closing = true;
        break;
      }
      if (n == 0) {
        c.closing = true;
        break;
      }
      if (c.events) continue;  // nothing is read from an events connection
      c.in.append(buf, static_cast<size_t>(n));
      if (c.in.size() > kMaxControlBuffer || c.fds.size() > 4) c.closing = true;
    }
    while (!c.closing && !c.events) {
      bool bad = false;
      std::optional<std::string> frame = take_frame(c.in, bad);
      if (bad) c.closing = true;
      if (!frame) break;
      handle(c, *frame);
    }
  }
  if (c.closing && c.out.empty()) close_connection(fd);
}

void EnclosureDaemon::handle(Connection& c, const std::string& payload) {
  nlohmann::json reply;
  nlohmann::json request = nlohmann::json::parse(payload, nullptr, false);
  try {
    if (!request.is_object() || !request.contains("op") || !request["op"].is_string()) {
      throw std::invalid_argument("expected a JSON object with \"op\"");
    }
    reply = dispatch(c, request);
    reply["ok"] = true;
  } catch (const std::exception& e) {
    reply = {{"ok", false}, {"error", e.what()}};
  }
  c.fds.clear();  // a descriptor belongs to the request it came with
  encode_frame(c.out, reply.dump());
  c.out += c.after_reply;
  c.after_reply.clear();
  if (c.out.size() > kMaxControlBuffer) c.closing = true;
  flush_out(c);
}

nlohmann::json EnclosureDaemon::run_reply(const DaemonRun& r) const {
  return {{"token", r.token},
          {"cgroup_id", r.cgroup_id},
          {"cgroup", r.cgroup->describe().to_json()},
          {"cgroup_report", r.cgroup->report()},
          {"bpf",
           {{"programs", bpf::EnclosureBpf::programs_for(r.needs)},
            {"daemon", options_.socket_path},
            {"ring_buffer_bytes", bpf_->report().value("ring_buffer_bytes", 0)}}}};
}

nlohmann::json EnclosureDaemon::dispatch(Connection& c, const nlohmann::json& request) {
  std::string op = request["op"].get<std::string>();
  if (op == "hello") {
    CgroupPlacement placement = place_limits(layout_);
    return {{"version", kDaemonProtocolVersion},
            {"uid", c.peer.uid},
            {"programs", bpf_->report().value("programs", nlohmann::json::object())},
            {"cgroup", {{"pids", placement.pids}, {"memory", placement.memory}}}};
  }
  if (op == "create") return create(c, request);
  if (op == "adopt" || op == "events") {
    if (!c.run.empty()) throw std::invalid_argument("this connection already has a run");
    std::string token = request.at("token").get<std::string>();
    auto it = runs_.find(token);
    // The same answer for an unknown token and another user's: nothing is learnt by guessing.
    if (it == runs_.end() || it->second.uid != c.peer.uid) {
      throw std::invalid_argument("no such run of uid " + std::to_string(c.peer.uid));
    }
    DaemonRun& r = it->second;
    if (op == "events") {
      attach_events(c, r);
      return nlohmann::json::object();
    }
    if (r.control >= 0) throw std::invalid_argument("the run has a launcher connected");
    r.control = c.fd.get();
    r.launcher = c.peer.pid;
    r.adopt_deadline.reset();
    c.run = token;
    write_state(r);
    std::cerr << "enclosure daemon: run " << token.substr(0, 8) << " re-attached to launcher pid "
              << c.peer.pid << std::endl;
    return run_reply(r);
  }
  auto it = runs_.find(c.run);
  if (c.run.empty() || it == runs_.end()) {
    throw std::invalid_argument("\"" + op + "\" needs a run: create or adopt one first");
  }
  DaemonRun& r = it->second;
  if (op == "enter") {
    enter(c, r);
    return nlohmann::json::object();
  }
  if (op == "counters") return counters(r);
  if (op == "rules_fired") return {{"bits", bpf_->rules_fired(r.cgroup_id)}};
  if (op == "cost") {
    bpf_->set_reported_cost(r.cgroup_id, request.at("micro_usd").get<uint64_t>());
    return nlohmann::json::object();
  }
  if (op == "admit" || op == "revoke") {
    policy::Parsed<policy::Cidr> cidr = policy::parse_cidr(request.at("cidr").get<std::string>());
    if (!cidr) throw std::invalid_argument("cidr: expected " + cidr.error);
    std::string proto = request.at("protocol").get<std::string>();
    if (proto != "tcp" && proto != "udp") throw std::invalid_argument("protocol: tcp or udp");
    policy::Protocol p = proto == "udp" ? policy::Protocol::udp : policy::Protocol::tcp;
    if (op == "revoke") {
      bpf_->revoke(r.cgroup_id, *cidr.value, p);
      return nlohmann::json::object();
    }
    std::vector<policy::PortRange> ports;
    for (const nlohmann::json& range : request.at("ports")) {
      uint16_t first = port_from_json(range.at(0), "ports");
      uint16_t last = port_from_json(range.at(1), "ports");
      if (first > last) throw std::invalid_argument("ports: the first port is above the last");
      ports.push_back({first, last});
    }
    bpf_->admit(r.cgroup_id, *cidr.value, p, ports, request.at("rule").get<size_t>());
    return nlohmann::json::object();
  }
  if (op == "flush") {
    // Every record written so far is queued on the events connection, then an empty frame
    // that tells the launcher it has seen all of them.
    drain_ring();
    auto e = connections_.find(r.events);
    if (e == connections_.end()) throw std::invalid_argument("the run has no events connection");
    encode_frame(e->second.out, "");
    flush_out(e->second);
    return nlohmann::json::object();
  }
  if (op == "kill") {
    bool empty = r.cgroup->kill_and_wait(kKillWaitMs);
    return {{"empty", empty}};
  }
  if (op == "release") {
    std::string token = r.token;
    r.control = -1;
    c.run.clear();
    release(token, "");
    return nlohmann::json::object();
  }
  throw std::invalid_argument("unknown op \"" + op + "\"");
}

nlohmann::json EnclosureDaemon::create(Connection& c, const nlohmann::json& request) {
  if (!c.run.empty()) throw std::invalid_argument("this connection already has a run");
  size_t mine = std::count_if(runs_.begin(), runs_.end(),
                              [&](const auto& r) { return r.second.uid == c.peer.uid; });
  if (mine >= options_.max_runs_per_user) {
    throw std::invalid_argument("uid " + std::to_string(c.peer.uid) + " already has " +
                                std::to_string(mine) + " enclosures (--max-runs-per-user)");
  }
  std::string why;
  std::optional<policy::EnforcementPlan> plan = policy::bpf_plan_from_json(request.at("plan"), why);
  if (!plan) throw std::invalid_argument("plan" + why);
  bpf::LayerNeeds needs = needs_from_json(request.at("needs"));
  bpf::EnclosureFiles files = files_from_json(request.at("files"), *plan);
  std::optional<std::pair<uint16_t, uint16_t>> dns_ports;
  if (const auto& d = request.at("dns_ports"); !d.is_null()) {
    dns_ports =
        std::make_pair(port_from_json(d.at(0), "dns_ports"), port_from_json(d.at(1), "dns_ports"));
  }
  CgroupLimits limits;
  const nlohmann::json& l = request.at("limits");
  if (!l.at("pids_max").is_null()) limits.pids_max = l.at("pids_max").get<uint64_t>();
  if (!l.at("memory_max").is_null()) limits.memory_max = l.at("memory_max").get<uint64_t>();
  uint64_t grace_ns = request.at("grace_ns").get<uint64_t>();

  DaemonRun r;
  r.token = random_token();
  r.uid = c.peer.uid;
  r.gid = c.peer.gid;
  r.launcher = c.peer.pid;
  r.needs = needs;
  r.plan_json = request.at("plan");
  r.cgroup = std::make_unique<RunCgroup>(layout_, "run-" + r.token.substr(0, 16), limits,
                                         /*watchdog=*/false);
  r.cgroup_id = r.cgroup->v2_id();
  try {
    r.cgroup->restrict_to_group(r.gid);
    bpf_->configure(r.cgroup_id, *plan, needs, files, dns_ports);
    if (plan->budgets.wall_clock_ns) {
      r.deadline = Clock::now() +
                   std::chrono::nanoseconds(*plan->budgets.wall_clock_ns + grace_ns) +
                   std::chrono::seconds(5);
    }
    r.control = c.fd.get();
    c.run = r.token;
    write_state(r);
  } catch (...) {
    bpf_->forget(r.cgroup_id);
    c.run.clear();
    throw;
  }
  by_cgroup_[r.cgroup_id] = r.token;
  std::string token = r.token;
  auto [it, inserted] = runs_.emplace(token, std::move(r));
  update_syscall_tracing();
  std::cerr << "enclosure daemon: run " << token.substr(0, 8) << " for uid " << c.peer.uid
            << " (launcher pid " << c.peer.pid << ", manifest " << plan->manifest_name << ") in "
            << it->second.cgroup->v2_path() << std::endl;
  return run_reply(it->second);
}

void EnclosureDaemon::enter(Connection& c, DaemonRun& r) {
  if (c.fds.empty()) throw std::invalid_argument("enter: expected a pidfd with the request");
  int pidfd = c.fds.front().get();
  pid_t pid = 0;
  std::string pid_text = status_field(slurp("/proc/self/fdinfo/" + std::to_string(pidfd)), "Pid");
  if (!pid_text.empty()) pid = static_cast<pid_t>(std::strtol(pid_text.c_str(), nullptr, 10));
  if (pid <= 0)
    throw std::invalid_argument("enter: the descriptor is not a pidfd of a live process");
  // Only a child of the caller, running as the caller, may be placed in the caller's run.
  std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  std::istringstream uids(status_field(status, "Uid"));
  uid_t real = 0;
  uids >> real;
  pid_t parent = static_cast<pid_t>(std::strtol(status_field(status, "PPid").c_str(), nullptr, 10));
  if (parent != c.peer.pid || real != c.peer.uid) {
    throw std::invalid_argument("enter: process " + std::to_string(pid) +
                                " is not a child of the caller running as its user");
  }
  r.cgroup->enter(pid);
  // The pid could have been reused only if the process died (its pidfd then says Pid: -1).
  if (status_field(slurp("/proc/self/fdinfo/" + std::to_string(pidfd)), "Pid") != pid_text) {
    throw std::invalid_argument("enter: the process exited");
  }
}

nlohmann::json EnclosureDaemon::counters(DaemonRun& r) {
  bpf::EnclosureCounters k = bpf_->counters(r.cgroup_id);
  const enc_state& s = k.state;
  nlohmann::json histogram = nlohmann::json::array();
  for (const auto& [nr, count] : k.histogram)
    histogram.push_back({nr, count});
  std::string state(reinterpret_cast<const char*>(&s), sizeof s);
  // The state struct travels as hex: the launcher decodes it with the same ABI header.
  std::string hex;
  const char* digits = "0123456789abcdef";
  for (unsigned char ch : state) {
    hex += digits[ch >> 4];
    hex += digits[ch & 15];
  }
  return {{"state", hex},
          {"syscalls_pending", k.syscalls_pending},
          {"histogram", histogram},
          {"forward_lost", r.forward_lost}};
}

void EnclosureDaemon::attach_events(Connection& c, DaemonRun& r) {
  if (r.events >= 0) throw std::invalid_argument("the run already has an events connection");
  c.run = r.token;
  c.events = true;
  r.events = c.fd.get();
  // The reply goes first (written by handle()); the records kept meanwhile follow it.
  c.after_reply = std::move(r.pending);
  r.pending.clear();
}

void EnclosureDaemon::forward(const void* data, size_t size) {
  if (size < sizeof(enc_header)) return;
  enc_header h;
  std::memcpy(&h, data, sizeof h);
  auto t = by_cgroup_.find(h.cgroup_id);
  if (t == by_cgroup_.end()) return;
  auto it = runs_.find(t->second);
  if (it == runs_.end()) return;
  DaemonRun& r = it->second;
  std::string* out = &r.pending;
  Connection* c = nullptr;
  if (r.events >= 0) {
    auto e = connections_.find(r.events);
    if (e != connections_.end()) {
      c = &e->second;
      out = &c->out;
    }
  }
  if (out->size() + size > kMaxEventBuffer) {
    ++r.forward_lost;  // reported to the launcher with its counters, as `lost` records
    return;
  }
  encode_frame(*out, std::string_view(static_cast<const char*>(data), size));
}

void EnclosureDaemon::drain_ring() {
  bpf_->drain([this](const void* data, size_t size) { forward(data, size); });
  for (auto& [fd, c] : connections_) {
    if (c.events && !c.out.empty()) flush_out(c);
  }
}

void EnclosureDaemon::release(const std::string& token, const std::string& why) {
  auto it = runs_.find(token);
  if (it == runs_.end()) return;
  DaemonRun& r = it->second;
  if (!why.empty()) {
    std::cerr << "enclosure daemon: run " << token.substr(0, 8) << ": " << why << "; killing it"
              << std::endl;
  }
  r.cgroup->kill_and_wait(kKillWaitMs);
  bpf_->forget(r.cgroup_id);
  by_cgroup_.erase(r.cgroup_id);
  ::unlink(state_file(token).c_str());
  if (r.events >= 0) {
    auto e = connections_.find(r.events);
    if (e != connections_.end()) e->second.closing = true;
  }
  runs_.erase(it);  // removes the cgroup directories
  update_syscall_tracing();
}

void EnclosureDaemon::update_syscall_tracing() {
  bool enter = false, exit = false;
  for (const auto& [token, r] : runs_) {
    enter |= r.needs.sys_enter;
    exit |= r.needs.sys_exit;
  }
  bpf_->set_syscall_tracing(enter, exit);
}

void EnclosureDaemon::on_tick() {
  uint64_t expirations;
  while (::read(timer_.get(), &expirations, sizeof expirations) > 0) {
  }
  Clock::time_point now = Clock::now();
  std::vector<std::string> expired;
  for (auto& [token, r] : runs_) {
    if (r.adopt_deadline && now > *r.adopt_deadline) expired.push_back(token);
    if (r.deadline && now > *r.deadline && !r.deadline_killed) {
      // The launcher should have ended the run at its wall clock; it has not.
      std::cerr << "enclosure daemon: run " << token.substr(0, 8)
                << ": wall clock and grace are over; killing its processes" << std::endl;
      r.cgroup->kill_and_wait(kKillWaitMs);
      r.deadline_killed = true;
    }
  }
  for (const std::string& token : expired)
    release(token, "its launcher did not come back within --adopt-timeout");
  std::vector<int> closing;
  for (auto& [fd, c] : connections_) {
    if (c.closing && c.out.empty()) closing.push_back(fd);
  }
  for (int fd : closing)
    close_connection(fd);
}

void EnclosureDaemon::shut_down() {
  ::unlink(options_.socket_path.c_str());
  listener_.reset();
  if (runs_.empty()) {
    // Nothing left to enforce: no pins, no subtree, no state.
    bpf_->unpin_all();
    for (auto it = subtree_dirs_.rbegin(); it != subtree_dirs_.rend(); ++it)
      ::rmdir(it->c_str());
    ::rmdir(options_.state_dir.c_str());
    std::cerr << "enclosure daemon: stopped; no enclosure was running" << std::endl;
    return;
  }
  // The pinned programs go on enforcing; the next daemon re-adopts these runs.
  for (auto& [token, r] : runs_)
    r.cgroup->leave_in_place();
  std::cerr << "enclosure daemon: stopped; " << runs_.size()
            << " enclosure(s) left running under the pinned programs in " << options_.pin_dir
            << " for the next daemon to re-adopt" << std::endl;
}

int EnclosureDaemon::run() {
  if (::geteuid() != 0) {
    throw LaunchError("daemon: needs root (it loads eBPF programs and owns a cgroup subtree)");
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  if (ec) throw LaunchError("daemon: create " + options_.state_dir + ": " + ec.message());
  ::chmod(options_.state_dir.c_str(), 0700);
  // Another daemon on the same socket would share (and fight over) pins, state and subtree.
  if (UniqueFd probe = connect_daemon(options_.socket_path)) {
    throw LaunchError("daemon: another daemon listens on " + options_.socket_path);
  }
  try {
    set_up_subtree();
    bpf::LayerNeeds all;
    all.egress = all.egress_bytes = all.exec = all.sys_enter = all.sys_exit = all.behaviour = true;
    all.ring_bytes = options_.ring_bytes;
    try {
      bpf_ = std::make_unique<bpf::EnclosureBpf>(all, options_.pin_dir);
      bpf_->attach_cgroup(subtree_fd_.get(), subtree_id_);
      bpf_->attach_tracing(/*with_syscalls=*/false);
    } catch (const bpf::BpfError& e) {
      throw LaunchError(std::string("daemon: ") + e.what());
    }
    load_state();
    update_syscall_tracing();
    listen();
  } catch (...) {
    // Nothing of a daemon that did not start stays behind, unless it holds runs (then rmdir
    // fails and a later daemon re-adopts them).
    if (runs_.empty()) {
      if (bpf_) bpf_->unpin_all();
      bpf_.reset();
      subtree_fd_.reset();
      for (auto it = subtree_dirs_.rbegin(); it != subtree_dirs_.rend(); ++it)
        ::rmdir(it->c_str());
      ::rmdir(options_.state_dir.c_str());
    } else {
      for (auto& [token, r] : runs_)
        r.cgroup->leave_in_place();
    }
    throw;
  }

  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("daemon: epoll_create1");
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signals_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) throw_errno("daemon: signalfd");
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  itimerspec tick{{0, 100'000'000}, {0, 100'000'000}};
  ::timerfd_settime(timer_.get(), 0, &tick, nullptr);
  watch(listener_.get(), EPOLLIN);
  watch(signals_.get(), EPOLLIN);
  watch(timer_.get(), EPOLLIN);
  watch(bpf_->ring_fd(), EPOLLIN);
  std::cerr << "enclosure daemon: listening on " << options_.socket_path << "; cgroup subtree "
            << subtree_dirs_.front() << ", pins in " << options_.pin_dir << ", " << runs_.size()
            << " run(s) re-adopted" << std::endl;
  sd_notify(0, ("READY=1\nSTATUS=listening on " + options_.socket_path).c_str());
  bool stopping = false;
  epoll_event evs[64];
  while (!stopping) {
    int n = ::epoll_wait(epoll_.get(), evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("daemon: epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == listener_.get()) {
        accept_all();
      } else if (fd == signals_.get()) {
        signalfd_siginfo info{};
        while (::read(signals_.get(), &info, sizeof info) == sizeof info) {
          if (info.ssi_signo != SIGHUP) stopping = true;
        }
      } else if (fd == timer_.get()) {
        on_tick();
      } else if (fd == bpf_->ring_fd()) {
        drain_ring();
      } else {
        on_connection(fd, evs[i].events);
      }
    }
  }
  sd_notify(0, "STOPPING=1");
  drain_ring();
  connections_.clear();
  shut_down();
  return 0;
}

}  // namespace

int run_daemon(const DaemonOptions& options) {
  EnclosureDaemon daemon(options);
  return daemon.run();
}

}  // namespace launcher
