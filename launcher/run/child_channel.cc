#include "launcher/run/child_channel.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace launcher {

bool send_message(int sock, const nlohmann::json& body, int fd) {
  return send_prepared(sock, body.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace),
                       fd);
}

bool send_prepared(int sock, const std::string& text, int fd) {
  struct iovec iov {};
  iov.iov_base = const_cast<char*>(text.data());
  iov.iov_len = text.size();
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  while (true) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(text.size());
  }
}

std::optional<ChannelMessage> receive_message(int sock) {
  char buf[65536];
  struct iovec iov {};
  iov.iov_base = buf;
  iov.iov_len = sizeof buf;
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  ChannelMessage out;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (!out.fd) {
        out.fd.reset(fd);
      } else {
        ::close(fd);
      }
    }
  }
  try {
    out.body = nlohmann::json::parse(std::string(buf, static_cast<size_t>(n)));
  } catch (const nlohmann::json::exception&) {
    out.body = {{"type", "malformed"}};
  }
  return out;
}

}  // namespace launcher
