#include "launcher/daemon/framing.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "launcher/base/error.h"

namespace launcher {

ssize_t receive_with_descriptors(int socket, char* buf, size_t size, int flags,
                                 std::vector<UniqueFd>& fds) {
  iovec iov{buf, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFramedDescriptors)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(socket, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  return n;
}

void encode_frame(std::string& out, std::string_view payload) {
  auto size = static_cast<uint32_t>(payload.size());
  out.append(reinterpret_cast<const char*>(&size), sizeof size);
  out.append(payload);
}

ssize_t send_with_descriptors(int socket, std::string_view data, const std::vector<int>& fds,
                              int flags) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFramedDescriptors)] = {};
  if (!fds.empty()) {
    if (fds.size() > kMaxFramedDescriptors) {
      errno = E2BIG;
      return -1;
    }
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(socket, &msg, flags | MSG_NOSIGNAL);
}

void send_frame(int socket, std::string_view payload, int fd, const std::string& what) {
  if (payload.size() > kMaxDaemonFrame) throw LaunchError(what + ": the message is too large");
  std::string data;
  encode_frame(data, payload);
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send_with_descriptors(socket, std::string_view(data).substr(done),
                                      done == 0 ? fds : std::vector<int>{}, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(what + ": send");
    }
    done += static_cast<size_t>(n);
  }
}

std::optional<Frame> receive_frame(int socket, const std::string& what) {
  Frame frame;
  auto read_exact = [&](char* buf, size_t size, bool at_boundary) -> bool {
    size_t done = 0;
    while (done < size) {
      std::vector<UniqueFd> fds;
      ssize_t n = receive_with_descriptors(socket, buf + done, size - done, 0, fds);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno(what + ": receive");
      }
      for (UniqueFd& fd : fds)
        frame.fds.push_back(std::move(fd));
      if (n == 0) {
        if (at_boundary && done == 0) return false;
        throw LaunchError(what + ": the connection closed in the middle of a message");
      }
      done += static_cast<size_t>(n);
    }
    return true;
  };
  uint32_t size = 0;
  if (!read_exact(reinterpret_cast<char*>(&size), sizeof size, true)) return std::nullopt;
  if (size > kMaxDaemonFrame) throw LaunchError(what + ": a message above the size limit");
  frame.payload.resize(size);
  if (size > 0) read_exact(frame.payload.data(), size, false);
  return frame;
}

std::optional<std::string> take_frame(std::string& buffer, bool& bad) {
  bad = false;
  if (buffer.size() < sizeof(uint32_t)) return std::nullopt;
  uint32_t size;
  std::memcpy(&size, buffer.data(), sizeof size);
  if (size > kMaxDaemonFrame) {
    bad = true;
    return std::nullopt;
  }
  if (buffer.size() < sizeof size + size) return std::nullopt;
  std::string payload = buffer.substr(sizeof size, size);
  buffer.erase(0, sizeof size + size);
  return payload;
}

nlohmann::json daemon_call(int socket, const DaemonRequest& request, int fd,
                           std::vector<UniqueFd>* reply_fds) {
  std::string what = std::string("enclosure daemon: ") + op_of(request);
  send_frame(socket, to_json(request).dump(), fd, what);
  std::optional<Frame> reply = receive_frame(socket, what);
  if (!reply) throw LaunchError(what + ": the daemon closed the connection");
  nlohmann::json j = nlohmann::json::parse(reply->payload, nullptr, false);
  if (!j.is_object()) throw LaunchError(what + ": the daemon's reply is not a JSON object");
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean() || !ok->get<bool>()) {
    std::string why;
    std::optional<RefusalReply> refusal = RefusalReply::from_json(j, why);
    throw DaemonRefusal(refusal ? refusal->error : "refused");
  }
  if (reply_fds) *reply_fds = std::move(reply->fds);
  return j;
}

UniqueFd connect_daemon(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return UniqueFd();
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    fd.reset();
    errno = err;
  }
  return fd;
}

}  // namespace launcher
