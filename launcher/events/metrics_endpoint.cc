#include "launcher/events/metrics_endpoint.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"

namespace launcher {
namespace {

constexpr size_t kRequestMax = 8192;

std::string http_response(const std::string& status, const std::string& type,
                          const std::string& body) {
  return "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

// The value of the request's first header named `name` (lower case), or "".
std::string header_value(const std::string& request, std::string_view name) {
  size_t line_start = request.find('\n');
  while (line_start != std::string::npos) {
    ++line_start;
    size_t line_end = request.find('\n', line_start);
    std::string line = request.substr(
        line_start, line_end == std::string::npos ? std::string::npos : line_end - line_start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;  // the end of the headers
    size_t colon = line.find(':');
    if (colon == name.size() &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      size_t value = line.find_first_not_of(" \t", colon + 1);
      return value == std::string::npos ? "" : line.substr(value);
    }
    line_start = line_end;
  }
  return "";
}

}  // namespace

TcpAddress parse_tcp_address(const std::string& text) {
  TcpAddress out;
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw LaunchError("expected HOST:PORT (127.0.0.1:9464, [::1]:9464)");
  }
  std::string host = text.substr(0, colon), port_text = text.substr(colon + 1);
  char* end = nullptr;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (*end != '\0' || port > 65535 ||
      port_text.find_first_not_of("0123456789") != std::string::npos) {
    throw LaunchError("\"" + port_text + "\" is not a port number");
  }
  if (host == "localhost") host = "127.0.0.1";
  auto* a4 = reinterpret_cast<sockaddr_in*>(&out.address);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&out.address);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6->sin6_addr) != 1) {
      throw LaunchError("\"" + host + "\" is not an IPv6 address");
    }
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    out.length = sizeof *a6;
    return out;
  }
  if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) {
    throw LaunchError(
        "\"" + host +
        "\" is not an IPv4 address, [IPv6] address or localhost (names are not resolved)");
  }
  a4->sin_family = AF_INET;
  a4->sin_port = htons(static_cast<uint16_t>(port));
  out.length = sizeof *a4;
  return out;
}

bool is_loopback(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(&address);
    return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
  }
  if (address.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&address);
    return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
  }
  return false;
}

MetricsEndpoint::MetricsEndpoint(const std::string& address, bool allow_remote, int epoll_fd,
                                 size_t max_clients)
    : epoll_fd_(epoll_fd), max_clients_(max_clients == 0 ? 1 : max_clients) {
  TcpAddress parsed;
  try {
    parsed = parse_tcp_address(address);
  } catch (const LaunchError& e) {
    throw LaunchError("--metrics " + address + ": " + e.what());
  }
  sockaddr_storage& ss = parsed.address;
  socklen_t& len = parsed.length;
  if (!allow_remote && !is_loopback(ss)) {
    throw LaunchError(
        "--metrics " + address +
        ": not a loopback address; the metrics name runs and manifests, so they are served on "
        "loopback unless --metrics-allow-remote is given");
  }
  listener_.reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener_) throw_errno("--metrics " + address + ": socket");
  int one = 1;
  ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    throw_errno("--metrics " + address + ": bind");
  if (::listen(listener_.get(), 64) != 0) throw_errno("--metrics " + address + ": listen");
  if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    throw_errno("--metrics " + address + ": getsockname");
  }
  char host[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
    port = ntohs(a4->sin_port);
    url_ = "http://" + std::string(host) + ":" + std::to_string(port) + "/metrics";
  } else {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
    port = ntohs(a6->sin6_port);
    url_ = "http://[" + std::string(host) + "]:" + std::to_string(port) + "/metrics";
  }
  struct epoll_event e {};
  e.events = EPOLLIN;
  e.data.fd = listener_.get();
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listener_.get(), &e) != 0)
    throw_errno("--metrics: epoll_ctl");
}

MetricsEndpoint::~MetricsEndpoint() = default;

// Level-triggered: a listener with pending connections stays readable, so it leaves the epoll
// set (events 0) while no connection can be taken, and comes back when one can.
void MetricsEndpoint::arm_listener(bool armed) {
  if (armed == listener_armed_) return;
  struct epoll_event e {};
  e.events = armed ? EPOLLIN : 0;
  e.data.fd = listener_.get();
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listener_.get(), &e) == 0) listener_armed_ = armed;
}

void MetricsEndpoint::accept_clients() {
  while (true) {
    if (clients_.size() >= max_clients_) {
      arm_listener(false);  // until a client closes
      return;
    }
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM...: retried on the next tick, not at once.
      if (errno != EAGAIN) arm_listener(false);
      return;
    }
    struct epoll_event e {};
    e.events = EPOLLIN;
    e.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &e) != 0) {
      ::close(fd);
      continue;
    }
    Client& c = clients_[fd];
    c.fd.reset(fd);
    c.since_ns = monotonic_ns();
  }
}

void MetricsEndpoint::close_client(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  clients_.erase(fd);
  if (clients_.size() < max_clients_) arm_listener(true);
}

bool MetricsEndpoint::send_pending(Client& c) {
  while (c.sent < c.response.size()) {
    ssize_t n =
        ::send(c.fd.get(), c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    if (n <= 0) return true;  // the client went away
    c.sent += static_cast<size_t>(n);
  }
  return true;
}

void MetricsEndpoint::respond(Client& c, const Render& render) {
  size_t line_end = c.request.find_first_of("\r\n");
  std::string line = c.request.substr(0, line_end);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  std::string method = line.substr(0, sp1);
  std::string target =
      sp1 == std::string::npos
          ? ""
          : line.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
  if (method != "GET" && method != "HEAD") {
    c.response = http_response("405 Method Not Allowed", "text/plain", "only GET /metrics\n");
  } else if (target == "/metrics" || target.rfind("/metrics?", 0) == 0) {
    ExpositionFormat format = exposition_format_for_accept(header_value(c.request, "accept"));
    std::string body = render(format);
    c.response = http_response("200 OK", std::string(exposition_content_type(format)), body);
    if (method == "HEAD") c.response.resize(c.response.size() - body.size());
  } else {
    c.response = http_response("404 Not Found", "text/plain", "only GET /metrics\n");
  }
}

void MetricsEndpoint::on_ready(int fd, uint32_t events, const Render& render) {
  if (fd == listener_.get()) {
    accept_clients();
    return;
  }
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = it->second;
  if (c.response.empty()) {
    char buf[2048];
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        close_client(fd);
        return;
      }
      c.request.append(buf, static_cast<size_t>(n));
      if (c.request.size() > kRequestMax) {
        close_client(fd);
        return;
      }
    }
    if (c.request.find("\r\n\r\n") == std::string::npos &&
        c.request.find("\n\n") == std::string::npos) {
      if (!(events & (EPOLLHUP | EPOLLRDHUP))) return;
    }
    respond(c, render);
  }
  if (send_pending(c)) {
    close_client(fd);
    return;
  }
  struct epoll_event e {};
  e.events = EPOLLOUT;
  e.data.fd = fd;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &e);
}

void MetricsEndpoint::expire_idle() {
  uint64_t now_ns = monotonic_ns();
  std::vector<int> idle;
  for (const auto& [fd, c] : clients_) {
    if (now_ns - c.since_ns > kIdleLimitNs) idle.push_back(fd);
  }
  for (int fd : idle)
    close_client(fd);
  if (clients_.size() < max_clients_) arm_listener(true);
}

}  // namespace launcher
