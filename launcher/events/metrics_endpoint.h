// A minimal HTTP/1.0 responder for `GET /metrics` on a TCP address, driven by the collector's
// epoll loop (non-blocking sockets, one request per connection, idle clients closed).
// Loopback addresses only, unless the operator allows others explicitly.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "launcher/base/fd.h"

namespace launcher {

class MetricsEndpoint {
 public:
  // `address`: HOST:PORT with HOST an IPv4 address, [IPv6] or localhost; port 0 lets the kernel
  // choose. Registers its listener with `epoll_fd`. Throws LaunchError.
  MetricsEndpoint(const std::string& address, bool allow_remote, int epoll_fd);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  bool handles(int fd) const { return fd == listener_.get() || clients_.count(fd) > 0; }
  void on_ready(int fd, uint32_t events, const std::function<std::string()>& render);
  void expire_idle();
  const std::string& url() const { return url_; }

 private:
  struct Client {
    UniqueFd fd;
    std::string request;
    std::string response;
    size_t sent = 0;
    uint64_t since_ns = 0;  // monotonic_ns() when accepted
  };
  void accept_clients();
  void respond(Client& client, const std::function<std::string()>& render);
  bool send_pending(Client& client);  // true when done
  void close_client(int fd);

  int epoll_fd_;
  UniqueFd listener_;
  std::string url_;
  std::map<int, Client> clients_;
};

// A socket address and its length.
struct TcpAddress {
  sockaddr_storage address{};
  socklen_t length = 0;
};
// Parses HOST:PORT (IPv4, [IPv6] or localhost; names are not resolved); throws LaunchError
// saying why not.
TcpAddress parse_tcp_address(const std::string& text);
bool is_loopback(const sockaddr_storage& address);

}  // namespace launcher
