#include "launcher/daemon/service.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "bpf/enclosure_bpf.h"
#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/base/file.h"
#include "launcher/base/service_notify.h"
#include "launcher/daemon/framing.h"
#include "launcher/daemon/protocol.h"
#include "launcher/daemon/protocol_conversion.h"
#include "launcher/run/cgroup.h"
#include "launcher/run/memfd_noexec.h"
#include "launcher/run/peer_process.h"

namespace launcher {
namespace {

constexpr size_t kMaxControlBuffer = 2 * kMaxDaemonFrame;
constexpr size_t kMaxEventBuffer = 16u << 20;  // records waiting for a slow or absent launcher
constexpr int kKillWaitMs = 1000;
constexpr size_t kMaxConnectionsPerUser = 64;             // beyond the two each run uses
constexpr uint64_t kDeadlineMarginNs = 5'000'000'000ULL;  // after wall clock + grace

std::string random_token() {
  std::random_device rd;
  std::string out;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i)
    out += hex[rd() % 16];
  return out;
}

// Whether the four ids of a status line ("Uid:" or "Gid:": real, effective, saved, file system)
// are all `id`.
bool all_ids_are(const std::string& field, unsigned id) {
  std::istringstream in(field);
  unsigned value;
  int count = 0;
  while (in >> value) {
    if (value != id) return false;
    ++count;
  }
  return count == 4;
}

// AT_SECURE of the process's image; nullopt when its auxiliary vector cannot be read.
std::optional<unsigned long> at_secure(int proc) {
  std::string auxv = read_at(proc, "auxv");
  unsigned long pair[2];
  for (size_t at = 0; at + sizeof pair <= auxv.size(); at += sizeof pair) {
    std::memcpy(pair, auxv.data() + at, sizeof pair);
    if (pair[0] == AT_SECURE) return pair[1];
    if (pair[0] == AT_NULL) break;
  }
  return std::nullopt;
}

// Why the process whose /proc directory is `proc` may not be placed in the run of `caller`; ""
// when it may: a process (not a thread) that is the caller's child, whose every user and group id
// is the caller's, that has not changed credentials since its last exec (then /proc/PID belongs
// to root: the kernel makes such a task non-dumpable) and whose image is not setuid, setgid or
// file-capability (AT_SECURE). Its capabilities are not asked about: the launcher's first process
// holds them in its own user namespace, which grants nothing on the host.
std::string refusal_to_enter(int proc, const ucred& caller) {
  std::string status = read_at(proc, "status");
  if (status.empty()) return "its status cannot be read";
  if (status_field(status, "Tgid") != status_field(status, "Pid")) return "it is a thread";
  if (std::strtol(status_field(status, "PPid").c_str(), nullptr, 10) != caller.pid) {
    return "it is not a child of the caller";
  }
  if (!all_ids_are(status_field(status, "Uid"), caller.uid) ||
      !all_ids_are(status_field(status, "Gid"), caller.gid)) {
    return "its user and group ids (real, effective, saved, file system: Uid " +
           status_field(status, "Uid") + ", Gid " + status_field(status, "Gid") +
           ") are not all the caller's";
  }
  std::optional<unsigned long> secure = at_secure(proc);
  if (!secure) return "its auxiliary vector cannot be read";
  if (*secure != 0) return "it runs a setuid, setgid or file-capability program (AT_SECURE)";
  struct stat st {};
  if (::fstat(proc, &st) != 0 || st.st_uid != caller.uid) {
    return "it changed credentials (its /proc entry is not the caller's)";
  }
  return "";
}

// Writes `text` to a cgroup file; false when it could not.
bool write_cgroup_file(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

// A refusal for the caller: the reply names the field or the reason.
[[noreturn]] void refuse(const std::string& why) {
  throw std::invalid_argument(why);
}

struct Connection {
  UniqueFd fd;
  ucred peer{};
  UniqueFd peer_pidfd;  // the caller's process (SO_PEERPIDFD)
  std::string in;
  std::string out;
  std::vector<UniqueFd> fds;  // received with the bytes in `in`
  std::string run;            // the token of the run this connection acts on
  bool events = false;        // an events connection (records flow out)
  std::string after_reply;    // records that follow the reply to "events"
  // Descriptors for the reply being served, then, once it is encoded, those of every reply still
  // in `out`, by the offset in `out` where that reply starts: they go with its first byte.
  std::vector<UniqueFd> reply_fds;
  std::deque<std::pair<size_t, std::vector<UniqueFd>>> out_fds;
  bool closing = false;
};

struct DaemonRun {
  std::string token;
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t launcher = 0;
  uint64_t cgroup_id = 0;
  std::unique_ptr<RunCgroup> cgroup;
  policy::EnforcementPlan plan;  // the part the eBPF layer applies (policy/bpf_plan.h)
  bpf::LayerNeeds needs;
  int control = -1;  // connection fds, -1 when none
  int events = -1;
  std::string pending;  // records while no events connection is attached (bounded)
  uint64_t forward_lost = 0;
  uint64_t forward_suppressed = 0;  // over its user's --event-rate
  // audit.files: the entries of file_opens as read for the launcher's request from offset 0;
  // later pages come from here (a consistent whole, and the map is read once).
  std::vector<bpf::FileOpenCount> file_opens;
  // On monotonic_ns(): wall clock + grace + margin, a backstop kill; and, for a run a
  // predecessor left, when it is killed unless its launcher re-adopts it.
  std::optional<uint64_t> deadline_ns;
  std::optional<uint64_t> adopt_deadline_ns;
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
  UniqueFd v2_root_fd_;  // the cgroup2 mount's root, where cgroup paths of callers resolve
  uint64_t v2_root_id_ = 0;
  // Each user's forwarded-record budget (--event-rate, --event-burst): tokens and when refilled.
  struct EventBucket {
    double tokens = 0;
    uint64_t refilled_ns = 0;
  };
  std::map<uid_t, EventBucket> event_buckets_;
  std::unique_ptr<bpf::EnclosureBpf> bpf_;
  UniqueFd listener_, epoll_, signals_, timer_;
  std::map<int, Connection> connections_;
  std::map<std::string, DaemonRun> runs_;
  std::map<uint64_t, std::string> by_cgroup_;
  // Cgroup ids of released runs whose entries in the eBPF maps are still to be deleted: after
  // the replies of the loop's turn are sent (forget_released).
  std::vector<uint64_t> released_cgroups_;

  // Start and stop.
  void prepare_state_dir();
  void start_layers();
  void set_up_subtree();
  void load_bpf();
  void load_state();
  void adopt_from_state(const std::string& path);
  void remove_unadoptable(const std::string& path, const std::string& text);
  void undo_start();
  void listen();
  void set_up_event_loop();
  void serve_until_stopped();
  void shut_down();

  // Connections.
  void watch(int fd, uint32_t events);
  void accept_all();
  std::string refusal_for(Connection& c);
  void on_connection(int fd, uint32_t events);
  void read_requests(Connection& c);
  void flush_out(Connection& c);
  void close_connection(int fd);
  void handle(Connection& c, const std::string& payload);

  // Requests: one serve() per type.
  DaemonRun& run_of(Connection& c, const char* op);
  DaemonRun& run_of_caller(Connection& c, const std::string& token);
  HelloReply serve(Connection& c, const HelloRequest& request);
  RunReply serve(Connection& c, const CreateRequest& request);
  RunReply serve(Connection& c, const AdoptRequest& request);
  EmptyReply serve(Connection& c, const EventsRequest& request);
  EmptyReply serve(Connection& c, const EnterRequest& request);
  CountersReply serve(Connection& c, const CountersRequest& request);
  FileOpensReply serve(Connection& c, const FileOpensRequest& request);
  RulesFiredReply serve(Connection& c, const RulesFiredRequest& request);
  EmptyReply serve(Connection& c, const CostRequest& request);
  EmptyReply serve(Connection& c, const AdmitRequest& request);
  EmptyReply serve(Connection& c, const RevokeRequest& request);
  EmptyReply serve(Connection& c, const FlushRequest& request);
  KillReply serve(Connection& c, const KillRequest& request);
  EmptyReply serve(Connection& c, const ReleaseRequest& request);
  void check_run_quota(const Connection& c) const;
  DaemonRun new_run(Connection& c, const CreateRequest& request);
  RunReply run_reply(const DaemonRun& r, Connection& c) const;
  void enter(Connection& c, DaemonRun& r);
  void move_checked(DaemonRun& r, int pidfd, pid_t pid);
  void evict_all(const DaemonRun& r);

  // Records, runs.
  void forward(const void* data, size_t size);
  bool within_event_rate(uid_t uid);
  void drain_ring();
  void release(const std::string& token, const std::string& why);
  void forget_released();
  void update_syscall_tracing();
  void on_tick();
  void write_state(const DaemonRun& r);
  std::string state_file(const std::string& token) const {
    return options_.state_dir + "/" + token + ".json";
  }
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
  std::istringstream cs(read_file(v2_dir + "/cgroup.controllers"));
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
  v2_root_fd_.reset(::open(host_layout_.v2_mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::optional<uint64_t> root_id = v2_root_fd_ ? cgroup_id_of(v2_root_fd_.get()) : std::nullopt;
  if (!root_id) throw_errno("daemon: the cgroup id of " + host_layout_.v2_mount);
  v2_root_id_ = *root_id;
}

void EnclosureDaemon::write_state(const DaemonRun& r) {
  RunState state;
  state.token = r.token;
  state.uid = r.uid;
  state.gid = r.gid;
  state.launcher = r.launcher;
  state.cgroup_id = r.cgroup_id;
  state.cgroup = to_protocol(r.cgroup->describe());
  state.plan = r.plan;
  state.needs = to_protocol(r.needs);
  std::string path = state_file(r.token);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << state.to_json().dump() << "\n";
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
    adopt_from_state(path);
  }
}

void EnclosureDaemon::adopt_from_state(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
    std::string why;
    std::optional<RunState> state =
        RunState::from_json(nlohmann::json::parse(text, nullptr, false), why);
    if (!state) throw std::invalid_argument(why);
    CgroupDirectories dirs = to_cgroup(state->cgroup);
    if (dirs.v2.rfind(subtree_dirs_.front() + "/", 0) != 0) {
      throw std::invalid_argument("its cgroup is not in this daemon's subtree");
    }
    DaemonRun r;
    r.token = state->token;
    r.uid = state->uid;
    r.gid = state->gid;
    r.launcher = state->launcher;
    r.cgroup_id = state->cgroup_id;
    r.plan = std::move(state->plan);
    r.needs = to_bpf(state->needs);
    try {
      r.cgroup = std::make_unique<RunCgroup>(dirs, /*owner=*/true);
    } catch (const LaunchError&) {
      // The cgroup is gone (the enclosure ended while no daemon ran): forget it.
      bpf_->forget(r.cgroup_id);
      RunCgroup::remove_directories({dirs.v2});
      ::unlink(path.c_str());
      return;
    }
    if (r.cgroup->v2_id() != r.cgroup_id) throw std::invalid_argument("its cgroup id changed");
    bpf_->adopt(r.cgroup_id, r.plan);
    r.adopt_deadline_ns = monotonic_ns() + options_.adopt_timeout_ns;
    std::cerr << "enclosure daemon: re-adopted run " << r.token.substr(0, 8) << " of uid " << r.uid
              << " (" << r.cgroup->v2_path() << "); waiting for its launcher" << std::endl;
    by_cgroup_[r.cgroup_id] = r.token;
    std::string token = r.token;
    runs_.emplace(token, std::move(r));
  } catch (const std::exception& e) {
    std::cerr << "enclosure daemon: WARNING: " << path << ": cannot adopt: " << e.what()
              << "; removed" << std::endl;
    remove_unadoptable(path, text);
  }
}

// Removes a state file and, when it names them in this daemon's subtree, its run's cgroups.
void EnclosureDaemon::remove_unadoptable(const std::string& path, const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  std::string why;
  std::optional<ProtocolCgroup> cgroup = j.is_object() && j.contains("cgroup")
                                             ? ProtocolCgroup::from_json(j["cgroup"], why)
                                             : std::nullopt;
  if (cgroup && cgroup->v2.rfind(subtree_dirs_.front() + "/", 0) == 0) {
    std::vector<std::string> all{cgroup->v2};
    for (const auto& [c, d] : cgroup->v1)
      all.push_back(d);
    RunCgroup::remove_directories(all);
  }
  ::unlink(path.c_str());
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

std::string EnclosureDaemon::refusal_for(Connection& c) {
  pid_t pid = 0;
  UniqueFd proc = c.peer_pidfd ? open_process(c.peer_pidfd.get(), pid) : UniqueFd();
  if (!proc || pid != c.peer.pid) return "the caller's process cannot be identified";
  // A process inside an enclosure must never reach the layer that confines it (an agent could
  // otherwise admit addresses into its own egress map).
  std::string inside =
      enclosure_of(proc.get(), v2_root_fd_.get(), v2_root_id_,
                   [this](uint64_t id) { return id == subtree_id_ || by_cgroup_.count(id) > 0; });
  if (!inside.empty()) return inside;
  if (c.peer.uid == 0 || options_.allow_groups.empty()) return "";
  std::set<gid_t> groups{c.peer.gid};
  std::istringstream listed(status_field(read_at(proc.get(), "status"), "Groups"));
  gid_t g;
  while (listed >> g)
    groups.insert(g);
  for (gid_t allowed : options_.allow_groups) {
    if (groups.count(allowed)) return "";
  }
  return "uid " + std::to_string(c.peer.uid) + " is in none of the groups --allow-group names";
}

void EnclosureDaemon::accept_all() {
  while (true) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Connection c;
    c.fd.reset(fd);
    socklen_t len = sizeof c.peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c.peer, &len) != 0) continue;
    c.peer_pidfd = peer_pidfd(fd, c.peer.pid);
    std::string refusal = refusal_for(c);
    size_t mine = std::count_if(connections_.begin(), connections_.end(), [&](const auto& other) {
      return other.second.peer.uid == c.peer.uid;
    });
    if (refusal.empty() && c.peer.uid != 0 &&
        mine >= kMaxConnectionsPerUser + 2 * options_.max_runs_per_user) {
      refusal = "uid " + std::to_string(c.peer.uid) + " has too many connections open";
    }
    if (!refusal.empty()) {
      std::cerr << "enclosure daemon: refused pid " << c.peer.pid << " (uid " << c.peer.uid
                << "): " << refusal << std::endl;
      // The refusal is all the caller gets; the connection closes once the caller has sent its
      // request (or at the next tick), so that a caller still sending reads it, not EPIPE.
      encode_frame(c.out, RefusalReply{"refused: " + refusal}.to_json().dump());
      c.closing = true;
    }
    watch(fd, EPOLLIN | EPOLLRDHUP);
    Connection& added = connections_.emplace(fd, std::move(c)).first->second;
    if (added.closing) flush_out(added);
  }
}

// Sends what `c.out` holds; a reply's descriptors go with its first byte, so a send stops where
// the next reply with descriptors starts.
void EnclosureDaemon::flush_out(Connection& c) {
  while (!c.out.empty()) {
    std::vector<int> fds;
    size_t end = c.out.size();
    if (!c.out_fds.empty() && c.out_fds.front().first == 0) {
      for (const UniqueFd& fd : c.out_fds.front().second)
        fds.push_back(fd.get());
      if (c.out_fds.size() > 1) end = c.out_fds[1].first;
    } else if (!c.out_fds.empty()) {
      end = c.out_fds.front().first;
    }
    ssize_t n = send_with_descriptors(c.fd.get(), std::string_view(c.out).substr(0, end), fds, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      c.closing = true;
      return;
    }
    if (!fds.empty()) c.out_fds.pop_front();
    for (auto& [at, descriptors] : c.out_fds)
      at -= static_cast<size_t>(n);
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
    read_requests(c);
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

// Reads what the connection has sent (and its descriptors) into `c.in`.
void EnclosureDaemon::read_requests(Connection& c) {
  while (!c.closing) {
    char buf[65536];
    ssize_t n = receive_with_descriptors(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT, c.fds);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) c.closing = true;
      return;
    }
    if (n == 0) {
      c.closing = true;
      return;
    }
    if (c.events) continue;  // nothing is read from an events connection
    c.in.append(buf, static_cast<size_t>(n));
    if (c.in.size() > kMaxControlBuffer || c.fds.size() > 4) c.closing = true;
  }
}

void EnclosureDaemon::handle(Connection& c, const std::string& payload) {
  nlohmann::json reply;
  try {
    std::string error;
    std::optional<DaemonRequest> request =
        request_from_json(nlohmann::json::parse(payload, nullptr, false), error);
    if (!request) refuse(error);
    reply = std::visit([&](const auto& r) { return serve(c, r).to_json(); }, *request);
  } catch (const std::exception& e) {
    reply = RefusalReply{e.what()}.to_json();
  }
  c.fds.clear();  // a descriptor belongs to the request it came with
  if (!c.reply_fds.empty() && reply.value("ok", false)) {
    c.out_fds.emplace_back(c.out.size(), std::move(c.reply_fds));
  }
  c.reply_fds.clear();
  encode_frame(c.out, reply.dump());
  c.out += c.after_reply;
  c.after_reply.clear();
  if (c.out.size() > kMaxControlBuffer) c.closing = true;
  flush_out(c);
}

// The run this connection created or adopted; a refusal naming `op` when it has none.
DaemonRun& EnclosureDaemon::run_of(Connection& c, const char* op) {
  auto it = runs_.find(c.run);
  if (c.run.empty() || it == runs_.end()) {
    refuse("\"" + std::string(op) + "\" needs a run: create or adopt one first");
  }
  return it->second;
}

// The caller's run named by `token`, for a connection that has none yet.
DaemonRun& EnclosureDaemon::run_of_caller(Connection& c, const std::string& token) {
  if (!c.run.empty()) refuse("this connection already has a run");
  auto it = runs_.find(token);
  // The same answer for an unknown token and another user's: nothing is learnt by guessing.
  if (it == runs_.end() || it->second.uid != c.peer.uid) {
    refuse("no such run of uid " + std::to_string(c.peer.uid));
  }
  return it->second;
}

RunReply EnclosureDaemon::run_reply(const DaemonRun& r, Connection& c) const {
  RunReply reply;
  CgroupDirectoryFds fds = r.cgroup->duplicate_fds();
  reply.descriptors.push_back("v2");
  c.reply_fds.push_back(std::move(fds.v2));
  for (auto& [controller, fd] : fds.v1) {
    reply.descriptors.push_back(controller);
    c.reply_fds.push_back(std::move(fd));
  }
  reply.token = r.token;
  reply.cgroup_id = r.cgroup_id;
  reply.cgroup = to_protocol(r.cgroup->describe());
  reply.cgroup_report = r.cgroup->report();
  reply.bpf.programs = bpf::EnclosureBpf::programs_for(r.needs);
  reply.bpf.daemon = options_.socket_path;
  reply.bpf.ring_buffer_bytes = bpf_->report().value("ring_buffer_bytes", uint64_t{0});
  return reply;
}

HelloReply EnclosureDaemon::serve(Connection& c, const HelloRequest&) {
  CgroupPlacement placement = place_limits(layout_);
  HelloReply reply;
  reply.uid = c.peer.uid;
  reply.programs = bpf_->report().value("programs", nlohmann::json::object());
  reply.cgroup_pids = placement.pids;
  reply.cgroup_memory = placement.memory;
  return reply;
}

void EnclosureDaemon::check_run_quota(const Connection& c) const {
  if (!c.run.empty()) refuse("this connection already has a run");
  size_t mine = std::count_if(runs_.begin(), runs_.end(),
                              [&](const auto& r) { return r.second.uid == c.peer.uid; });
  if (mine >= options_.max_runs_per_user) {
    refuse("uid " + std::to_string(c.peer.uid) + " already has " + std::to_string(mine) +
           " enclosures (--max-runs-per-user)");
  }
}

// The run's cgroup, its maps configured and its state written; undone when a step fails.
DaemonRun EnclosureDaemon::new_run(Connection& c, const CreateRequest& request) {
  DaemonRun r;
  r.token = random_token();
  r.uid = c.peer.uid;
  r.gid = c.peer.gid;
  r.launcher = c.peer.pid;
  r.needs = to_bpf(request.needs);
  r.plan = request.plan;
  r.cgroup = std::make_unique<RunCgroup>(layout_, "run-" + r.token.substr(0, 16),
                                         to_cgroup(request.limits), /*watchdog=*/false);
  r.cgroup_id = r.cgroup->v2_id();
  try {
    r.cgroup->restrict_to_group(r.gid);
    bpf_->configure(r.cgroup_id, r.plan, r.needs, to_bpf(request.files), request.dns_ports);
    if (r.plan.budgets.wall_clock_ns) {
      r.deadline_ns =
          monotonic_ns() + *r.plan.budgets.wall_clock_ns + request.grace_ns + kDeadlineMarginNs;
    }
    r.control = c.fd.get();
    c.run = r.token;
    write_state(r);
  } catch (...) {
    bpf_->forget(r.cgroup_id);
    c.run.clear();
    throw;
  }
  return r;
}

RunReply EnclosureDaemon::serve(Connection& c, const CreateRequest& request) {
  check_run_quota(c);
  DaemonRun r = new_run(c, request);
  by_cgroup_[r.cgroup_id] = r.token;
  std::string token = r.token;
  auto [it, inserted] = runs_.emplace(token, std::move(r));
  update_syscall_tracing();
  std::cerr << "enclosure daemon: run " << token.substr(0, 8) << " for uid " << c.peer.uid
            << " (launcher pid " << c.peer.pid << ", manifest " << request.plan.manifest_name
            << ") in " << it->second.cgroup->v2_path() << std::endl;
  return run_reply(it->second, c);
}

RunReply EnclosureDaemon::serve(Connection& c, const AdoptRequest& request) {
  DaemonRun& r = run_of_caller(c, request.token);
  if (r.control >= 0) refuse("the run has a launcher connected");
  r.control = c.fd.get();
  r.launcher = c.peer.pid;
  r.adopt_deadline_ns.reset();
  c.run = r.token;
  write_state(r);
  std::cerr << "enclosure daemon: run " << r.token.substr(0, 8) << " re-attached to launcher pid "
            << c.peer.pid << std::endl;
  return run_reply(r, c);
}

EmptyReply EnclosureDaemon::serve(Connection& c, const EventsRequest& request) {
  DaemonRun& r = run_of_caller(c, request.token);
  if (r.events >= 0) refuse("the run already has an events connection");
  c.run = r.token;
  c.events = true;
  r.events = c.fd.get();
  // The reply goes first (written by handle()); the records kept meanwhile follow it.
  c.after_reply = std::move(r.pending);
  r.pending.clear();
  return {};
}

EmptyReply EnclosureDaemon::serve(Connection& c, const EnterRequest& request) {
  enter(c, run_of(c, request.kOp));
  return {};
}

// Moves a child of the caller, named by the pidfd that comes with the request, into the run. The
// process is checked through its pidfd end to end (open_process, refusal_to_enter) and, after
// the cgroup.procs write, shown to be still the same process (move_checked).
void EnclosureDaemon::enter(Connection& c, DaemonRun& r) {
  if (c.fds.empty()) refuse("enter: expected a pidfd with the request");
  int pidfd = c.fds.front().get();
  if (!c.peer_pidfd || !pidfd_alive(c.peer_pidfd.get()) ||
      pid_of_pidfd(c.peer_pidfd.get()) != c.peer.pid) {
    refuse("enter: the caller's process cannot be identified");
  }
  pid_t pid = 0;
  UniqueFd proc = open_process(pidfd, pid);
  if (!proc) refuse("enter: the descriptor is not a pidfd of a live process");
  std::string why = refusal_to_enter(proc.get(), c.peer);
  if (!why.empty()) {
    refuse("enter: process " + std::to_string(pid) + " may not enter the caller's run: " + why);
  }
  // The run was empty: whatever a failed move leaves in it is not the caller's (evict_all).
  if (r.cgroup->populated()) refuse("enter: the run already has processes");
  // Its launcher cannot write /proc/sys; a run without it would run memfd copies of tools. The
  // write goes on in a child while the move waits for its grace period; the reply (after which
  // pid 1 starts the agent) waits for both.
  std::optional<MemfdNoexecWrite> memfds;
  try {
    memfds.emplace(pidfd);
  } catch (const LaunchError& e) {
    refuse(std::string("enter: ") + e.what());
  }
  move_checked(r, pidfd, pid);
  try {
    memfds->wait();
  } catch (const LaunchError& e) {
    evict_all(r);
    refuse(std::string("enter: ") + e.what());
  }
}

// Writes `pid` to the run's cgroup.procs, then shows through the pidfd that the process was
// alive after the write: it held that pid from before the checks until after the write, so the
// write moved it. Otherwise it exited meanwhile and the pid may name another process by now:
// the enter is refused and every process in the run is moved out, none signalled.
void EnclosureDaemon::move_checked(DaemonRun& r, int pidfd, pid_t pid) {
  std::string failure;
  try {
    r.cgroup->enter(pid);
  } catch (const LaunchError& e) {
    failure = e.what();
  }
  bool same = pidfd_alive(pidfd) && pid_of_pidfd(pidfd) == pid;
  if (failure.empty() && same) return;
  evict_all(r);
  if (!same) {
    refuse("enter: process " + std::to_string(pid) +
           " exited while it was moved; nothing was left in the run");
  }
  refuse("enter: " + failure);
}

// Moves every process in the run's cgroups to the root of each hierarchy, and says so.
void EnclosureDaemon::evict_all(const DaemonRun& r) {
  CgroupDirectories dirs = r.cgroup->describe();
  std::vector<std::pair<std::string, std::string>> moves{{dirs.v2, host_layout_.v2_mount}};
  for (const auto& [controller, dir] : dirs.v1) {
    auto root = host_layout_.v1_mount.find(controller);
    if (root != host_layout_.v1_mount.end()) moves.emplace_back(dir, root->second);
  }
  for (const auto& [from, to] : moves) {
    std::istringstream procs(read_proc_file(from + "/cgroup.procs"));
    pid_t p;
    while (procs >> p) {
      bool moved = write_cgroup_file(to + "/cgroup.procs", std::to_string(p));
      std::cerr << "enclosure daemon: run " << r.token.substr(0, 8) << ": after a failed enter, "
                << (moved ? "moved" : "could not move") << " pid " << p << " from " << from
                << " to " << to << std::endl;
    }
  }
}

CountersReply EnclosureDaemon::serve(Connection& c, const CountersRequest& request) {
  DaemonRun& r = run_of(c, request.kOp);
  bpf::EnclosureCounters k = bpf_->counters(r.cgroup_id);
  CountersReply reply;
  // The state struct travels as bytes: the launcher decodes it with the same ABI header.
  reply.state.assign(reinterpret_cast<const char*>(&k.state), sizeof k.state);
  reply.syscalls_pending = k.syscalls_pending;
  reply.histogram = k.histogram;
  reply.forward_lost = r.forward_lost;
  reply.forward_suppressed = r.forward_suppressed;
  return reply;
}

static_assert(kFileOpenEntryBytes == sizeof(enc_open_key) + sizeof(enc_open_count));

// Only the caller's own run is read (run_of: the run this connection created or adopted); the
// offset is the one thing taken from the request.
FileOpensReply EnclosureDaemon::serve(Connection& c, const FileOpensRequest& request) {
  DaemonRun& r = run_of(c, request.kOp);
  if (request.offset == 0) r.file_opens = bpf_->file_opens(r.cgroup_id);
  if (request.offset > r.file_opens.size()) {
    refuse("file_opens: offset " + std::to_string(request.offset) + " is past the " +
           std::to_string(r.file_opens.size()) + " entries (ask from offset 0 first)");
  }
  FileOpensReply reply;
  reply.offset = request.offset;
  reply.total = r.file_opens.size();
  uint64_t end = std::min<uint64_t>(reply.total, request.offset + kFileOpensPerPage);
  reply.entries.reserve((end - request.offset) * kFileOpenEntryBytes);
  // Key and count travel as bytes: the launcher decodes them with the same ABI header.
  for (uint64_t i = request.offset; i < end; ++i) {
    const bpf::FileOpenCount& f = r.file_opens[i];
    reply.entries.append(reinterpret_cast<const char*>(&f.key), sizeof f.key);
    reply.entries.append(reinterpret_cast<const char*>(&f.count), sizeof f.count);
  }
  if (end == reply.total) r.file_opens = {};  // all served: up to 10 MB the daemon need not keep
  return reply;
}

RulesFiredReply EnclosureDaemon::serve(Connection& c, const RulesFiredRequest& request) {
  return {bpf_->rules_fired(run_of(c, request.kOp).cgroup_id)};
}

EmptyReply EnclosureDaemon::serve(Connection& c, const CostRequest& request) {
  bpf_->set_reported_cost(run_of(c, request.kOp).cgroup_id, request.micro_usd);
  return {};
}

EmptyReply EnclosureDaemon::serve(Connection& c, const AdmitRequest& request) {
  bpf_->admit(run_of(c, request.kOp).cgroup_id, request.cidr, request.protocol, request.ports,
              request.rule);
  return {};
}

EmptyReply EnclosureDaemon::serve(Connection& c, const RevokeRequest& request) {
  bpf_->revoke(run_of(c, request.kOp).cgroup_id, request.cidr, request.protocol);
  return {};
}

EmptyReply EnclosureDaemon::serve(Connection& c, const FlushRequest& request) {
  DaemonRun& r = run_of(c, request.kOp);
  // Every record written so far is queued on the events connection, then an empty frame that
  // tells the launcher it has seen all of them.
  drain_ring();
  auto e = connections_.find(r.events);
  if (e == connections_.end()) refuse("the run has no events connection");
  encode_frame(e->second.out, "");
  flush_out(e->second);
  return {};
}

KillReply EnclosureDaemon::serve(Connection& c, const KillRequest& request) {
  return {run_of(c, request.kOp).cgroup->kill_and_wait(kKillWaitMs)};
}

EmptyReply EnclosureDaemon::serve(Connection& c, const ReleaseRequest& request) {
  DaemonRun& r = run_of(c, request.kOp);
  std::string token = r.token;
  r.control = -1;
  c.run.clear();
  release(token, "");
  return {};
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
  if (!within_event_rate(r.uid)) {
    ++r.forward_suppressed;  // reported to the launcher with its counters, as `lost` records
    return;
  }
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

// Takes one record from the user's budget: at most --event-burst at once, refilled at
// --event-rate per second, shared by all the user's runs.
bool EnclosureDaemon::within_event_rate(uid_t uid) {
  uint64_t now = monotonic_ns();
  auto [it, fresh] =
      event_buckets_.try_emplace(uid, EventBucket{static_cast<double>(options_.event_burst), now});
  EventBucket& b = it->second;
  double refill =
      static_cast<double>(now - b.refilled_ns) * 1e-9 * static_cast<double>(options_.event_rate);
  b.tokens = std::min(static_cast<double>(options_.event_burst), b.tokens + refill);
  b.refilled_ns = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
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
  if (r.forward_suppressed || r.forward_lost) {
    std::cerr << "enclosure daemon: run " << token.substr(0, 8) << " of uid " << r.uid << ": "
              << r.forward_suppressed << " record(s) over the user's --event-rate and "
              << r.forward_lost << " over the buffer were not forwarded (counted as lost)"
              << std::endl;
  }
  // Its map entries go once this turn's replies are out: scanning the per-file maps (sized for
  // every run of the host) took ~2 ms that the launcher's exit used to wait for. Nothing can use
  // them meanwhile: its processes are gone and cgroup ids are never reused.
  released_cgroups_.push_back(r.cgroup_id);
  by_cgroup_.erase(r.cgroup_id);
  ::unlink(state_file(token).c_str());
  if (r.events >= 0) {
    auto e = connections_.find(r.events);
    if (e != connections_.end()) e->second.closing = true;
  }
  runs_.erase(it);  // removes the cgroup directories
  update_syscall_tracing();
}

void EnclosureDaemon::forget_released() {
  for (uint64_t cgid : released_cgroups_)
    bpf_->forget(cgid);
  released_cgroups_.clear();
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
  uint64_t now = monotonic_ns();
  std::vector<std::string> expired;
  for (auto& [token, r] : runs_) {
    if (r.adopt_deadline_ns && now > *r.adopt_deadline_ns) expired.push_back(token);
    if (r.deadline_ns && now > *r.deadline_ns && !r.deadline_killed) {
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
  forget_released();
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

void EnclosureDaemon::prepare_state_dir() {
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
}

void EnclosureDaemon::load_bpf() {
  bpf::LayerNeeds all;
  all.egress = all.egress_bytes = all.exec = all.sys_enter = all.sys_exit = all.behaviour = true;
  all.file_log = true;
  all.unix_sockets = true;
  all.ring_bytes = options_.ring_bytes;
  try {
    bpf_ = std::make_unique<bpf::EnclosureBpf>(all, options_.pin_dir);
    bpf_->attach_cgroup(subtree_fd_.get(), subtree_id_);
    bpf_->attach_tracing(/*with_syscalls=*/false);
  } catch (const bpf::BpfError& e) {
    throw LaunchError(std::string("daemon: ") + e.what());
  }
}

// The subtree, the programs, the runs a predecessor left and the socket; nothing of them stays
// behind when a step fails.
void EnclosureDaemon::start_layers() {
  try {
    set_up_subtree();
    load_bpf();
    load_state();
    update_syscall_tracing();
    listen();
  } catch (...) {
    undo_start();
    throw;
  }
}

// Nothing of a daemon that did not start stays behind, unless it holds runs (then rmdir fails
// and a later daemon re-adopts them).
void EnclosureDaemon::undo_start() {
  if (!runs_.empty()) {
    for (auto& [token, r] : runs_)
      r.cgroup->leave_in_place();
    return;
  }
  if (bpf_) bpf_->unpin_all();
  bpf_.reset();
  subtree_fd_.reset();
  for (auto it = subtree_dirs_.rbegin(); it != subtree_dirs_.rend(); ++it)
    ::rmdir(it->c_str());
  ::rmdir(options_.state_dir.c_str());
}

void EnclosureDaemon::set_up_event_loop() {
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
}

// Until SIGTERM or SIGINT (SIGHUP is ignored).
void EnclosureDaemon::serve_until_stopped() {
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
    forget_released();
  }
}

int EnclosureDaemon::run() {
  prepare_state_dir();
  start_layers();
  set_up_event_loop();
  std::cerr << "enclosure daemon: listening on " << options_.socket_path << "; cgroup subtree "
            << subtree_dirs_.front() << ", pins in " << options_.pin_dir << ", " << runs_.size()
            << " run(s) re-adopted" << std::endl;
  notify_service_manager("READY=1\nSTATUS=listening on " + options_.socket_path);
  serve_until_stopped();
  try {
    notify_service_manager("STOPPING=1");
  } catch (const LaunchError& e) {
    std::cerr << "enclosure daemon: " << e.what() << std::endl;  // the shutdown goes on
  }
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
