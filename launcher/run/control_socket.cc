#include "launcher/run/control_socket.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/run/cgroup.h"
#include "launcher/run/peer_process.h"

namespace launcher {
namespace {

constexpr const char* kRootControlDirectory = "/run/enclosure/runs";
constexpr size_t kMaxClients = 16;
constexpr size_t kMaxRequest = 64;

// Whether `dir` is a directory (not a link) of `uid` that no one else may enter.
std::string unsafe_directory(const std::string& dir, uid_t uid) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return dir + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return dir + ": not a directory";
  if (st.st_uid != uid) return dir + ": owned by uid " + std::to_string(st.st_uid);
  if (st.st_mode & 077) return dir + ": open to other users (mode must be 0700)";
  return "";
}

// `dir` and its parent, made when missing: the parent 0755 (root's /run/enclosure also holds
// the daemon's socket), the directory itself 0700.
void make_control_directory(const std::string& dir) {
  std::string parent = dir.substr(0, dir.rfind('/'));
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir " + parent);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir " + dir);
}

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    throw LaunchError(path + ": longer than a unix socket path may be (" +
                      std::to_string(sizeof addr.sun_path - 1) + " bytes)");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// The runtime directory of a user other than root, owned by it.
std::string runtime_directory(uid_t uid) {
  if (const char* xdg = ::getenv("XDG_RUNTIME_DIR"); xdg && *xdg == '/') {
    struct stat st {};
    if (::stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid) return xdg;
  }
  return "/run/user/" + std::to_string(uid);
}

}  // namespace

std::string control_directory(uid_t uid) {
  if (uid == 0) return kRootControlDirectory;
  return runtime_directory(uid) + "/enclosure/runs";
}

std::vector<std::string> control_directories_to_list(uid_t uid) {
  std::vector<std::string> out{control_directory(uid)};
  if (uid != 0) return out;
  DIR* users = ::opendir("/run/user");
  if (!users) return out;
  while (dirent* e = ::readdir(users)) {
    if (e->d_name[0] == '.') continue;
    out.push_back(std::string("/run/user/") + e->d_name + "/enclosure/runs");
  }
  ::closedir(users);
  return out;
}

ControlSocket::ControlSocket(const std::string& run_id) {
  uid_t uid = ::geteuid();
  std::string dir = control_directory(uid);
  if (struct stat st{}; uid != 0 && (::stat(runtime_directory(uid).c_str(), &st) != 0 ||
                                     st.st_uid != uid || !S_ISDIR(st.st_mode))) {
    throw LaunchError("no runtime directory of this user (" + runtime_directory(uid) +
                      "; set XDG_RUNTIME_DIR)");
  }
  make_control_directory(dir);
  if (std::string why = unsafe_directory(dir, uid); !why.empty()) throw LaunchError(why);
  CgroupLayout layout = discover_cgroups();
  v2_root_.reset(::open(layout.v2_mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::optional<uint64_t> root_id = v2_root_ ? cgroup_id_of(v2_root_.get()) : std::nullopt;
  if (!root_id) throw LaunchError("no cgroup2 hierarchy to tell enclosures' processes apart");
  v2_root_id_ = *root_id;
  path_ = dir + "/" + run_id + ".sock";
  sockaddr_un addr = socket_address(path_);
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_) throw_errno("control socket");
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw_errno("bind " + path_);
  }
  if (::listen(listener_.get(), 16) != 0) {
    ::unlink(path_.c_str());
    throw_errno("listen " + path_);
  }
}

ControlSocket::~ControlSocket() {
  ::unlink(path_.c_str());
  for (const auto& [fd, refusal] : clients_)
    ::close(fd);
}

// Why the peer of `fd` gets no answer ("" when it does): another user than this launcher's (root
// excepted), a process that cannot be identified, or one inside an enclosure.
std::string ControlSocket::refusal_for(int fd) const {
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) return "no peer credentials";
  if (peer.uid != 0 && peer.uid != ::geteuid()) return "another user's run";
  UniqueFd pidfd = peer_pidfd(fd, peer.pid);
  pid_t pid = 0;
  UniqueFd proc = pidfd ? open_process(pidfd.get(), pid) : UniqueFd();
  if (!proc || pid != peer.pid) return "the caller's process cannot be identified";
  return enclosure_of(proc.get(), v2_root_.get(), v2_root_id_, [](uint64_t) { return false; });
}

std::vector<int> ControlSocket::accept_clients() {
  std::vector<int> accepted;
  while (true) {
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client) return accepted;
    if (clients_.size() >= kMaxClients) continue;  // closed at once: the launcher is busy
    // Refused clients are answered once they have sent their request, so that a client still
    // sending reads the refusal rather than EPIPE.
    clients_[client.get()] = refusal_for(client.get());
    accepted.push_back(client.release());
  }
}

std::optional<std::string> ControlSocket::read_request(int fd) {
  char buf[kMaxRequest];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return std::nullopt;
  std::string request(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (std::string refusal = clients_[fd]; !refusal.empty()) {
    answer(fd, {{"refused", refusal}}, false);
    return std::nullopt;
  }
  while (!request.empty() && (request.back() == '\n' || request.back() == '\r'))
    request.pop_back();
  if (request == "status" || request == "stop") return request;
  close_client(fd);
  return std::nullopt;
}

void ControlSocket::answer(int fd, const nlohmann::json& reply, bool keep_open) {
  std::string line = reply.dump() + "\n";
  (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (!keep_open) {
    close_client(fd);
    return;
  }
  clients_.erase(fd);
  held_.emplace_back(fd);
}

void ControlSocket::close_client(int fd) {
  clients_.erase(fd);
  ::close(fd);
}

std::optional<nlohmann::json> ask_control_socket(const std::string& path,
                                                 const std::string& request, int timeout_ms,
                                                 bool& stale, UniqueFd* keep) {
  stale = false;
  sockaddr_un addr = socket_address(path);
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    stale = errno == ECONNREFUSED;
    return std::nullopt;
  }
  std::string line = request + "\n";
  if (::send(sock.get(), line.data(), line.size(), MSG_NOSIGNAL) < 0) return std::nullopt;
  std::string reply;
  Deadline deadline(static_cast<uint64_t>(timeout_ms));
  while (reply.find('\n') == std::string::npos) {
    pollfd p{sock.get(), POLLIN, 0};
    if (::poll(&p, 1, deadline.milliseconds_left()) <= 0) return std::nullopt;
    char buf[65536];
    ssize_t n = ::recv(sock.get(), buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    reply.append(buf, static_cast<size_t>(n));
  }
  if (keep) *keep = std::move(sock);
  return nlohmann::json::parse(reply.substr(0, reply.find('\n')), nullptr, false);
}

}  // namespace launcher
