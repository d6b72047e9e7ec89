// A minimal HTTP/1.0 responder for `GET /metrics` on a TCP address, driven by the collector's
// epoll loop (non-blocking sockets, one request per connection, idle clients closed).
// Loopback addresses only, unless the operator allows others explicitly. Bounded: at most
// `max_clients` connections at once (at the cap, or when accept4 fails for lack of descriptors,
// the listener is taken out of the epoll set until a client closes or the next tick, so a full
// table can never make the loop spin), and each one has kIdleLimitNs for its whole request
// and response.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "launcher/base/fd.h"
#include "launcher/events/metrics.h"

namespace launcher {

class MetricsEndpoint {
 public:
  static constexpr size_t kDefaultMaxClients = 64;
  static constexpr uint64_t kIdleLimitNs = 5'000'000'000ULL;

  // `address`: HOST:PORT with HOST an IPv4 address, [IPv6] or localhost; port 0 lets the kernel
  // choose. Registers its listener with `epoll_fd`. Throws LaunchError.
  MetricsEndpoint(const std::string& address, bool allow_remote, int epoll_fd,
                  size_t max_clients = kDefaultMaxClients);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  bool handles(int fd) const { return fd == listener_.get() || clients_.count(fd) > 0; }
  // `render` writes the page in the format the request's Accept header asks for.
  using Render = std::function<std::string(ExpositionFormat)>;
  void on_ready(int fd, uint32_t events, const Render& render);
  // Closes clients past kIdleLimitNs and re-arms a listener disarmed by a failed accept; call it
  // about once a second.
  void expire_idle();
  const std::string& url() const { return url_; }
  size_t clients() const { return clients_.size(); }

 private:
  struct Client {
    UniqueFd fd;
    std::string request;
    std::string response;
    size_t sent = 0;
    uint64_t since_ns = 0;  // monotonic_ns() when accepted
  };
  void accept_clients();
  void respond(Client& client, const Render& render);
  bool send_pending(Client& client);  // true when done
  void close_client(int fd);
  void arm_listener(bool armed);

  int epoll_fd_;
  size_t max_clients_;
  bool listener_armed_ = true;
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
