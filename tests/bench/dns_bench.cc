// Added latency of the enclosure's resolver: UDP queries for an allowed name sent straight to an
// upstream responder on 127.0.0.1 vs sent to the resolver, which checks the name, forwards it,
// checks the answer and admits its addresses (here into a no-op table). The eBPF redirection of
// port 53 is not part of this figure (it rewrites a socket address once per connect/sendmsg).
// Prints: "direct_us resolver_us added_us" (medians over N queries).
#include <stdbool.h>  // before ldns, whose common.h would otherwise #define bool

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "launcher/dns/resolver.h"

namespace {

uint64_t now_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

int udp_socket(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::exit(1);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// Answers every query with one A record, 127.0.0.1, TTL 300.
void serve(int fd, const std::atomic<bool>& stop) {
  std::vector<uint8_t> buf(4096);
  while (!stop) {
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0) continue;
    ldns_pkt* q = nullptr;
    if (ldns_wire2pkt(&q, buf.data(), static_cast<size_t>(n)) != LDNS_STATUS_OK) continue;
    ldns_pkt* r = ldns_pkt_clone(q);
    ldns_pkt_set_qr(r, true);
    ldns_pkt_set_aa(r, true);
    ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
    char* owner = ldns_rdf2str(ldns_rr_owner(question));
    ldns_rr* answer = nullptr;
    std::string text = std::string(owner) + " 300 IN A 127.0.0.1";
    if (ldns_rr_new_frm_str(&answer, text.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK) {
      ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, answer);
    }
    uint8_t* wire = nullptr;
    size_t size = 0;
    if (ldns_pkt2wire(&wire, r, &size) == LDNS_STATUS_OK) {
      ::sendto(fd, wire, size, 0, reinterpret_cast<sockaddr*>(&from), len);
      std::free(wire);
    }
    std::free(owner);
    ldns_pkt_free(q);
    ldns_pkt_free(r);
  }
}

std::vector<uint8_t> query_wire() {
  ldns_pkt* q = nullptr;
  ldns_pkt_query_new_frm_str(&q, "api.bench.example", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
  uint8_t* wire = nullptr;
  size_t size = 0;
  ldns_pkt2wire(&wire, q, &size);
  std::vector<uint8_t> out(wire, wire + size);
  std::free(wire);
  ldns_pkt_free(q);
  return out;
}

double median_us(int port, int n) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<uint16_t>(port));
  ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  std::vector<uint8_t> q = query_wire();
  std::vector<double> times;
  uint8_t buf[4096];
  for (int i = 0; i < n; ++i) {
    uint64_t t0 = now_ns();
    ::send(fd, q.data(), q.size(), 0);
    if (::recv(fd, buf, sizeof buf, 0) <= 0) std::exit(1);
    times.push_back(static_cast<double>(now_ns() - t0) / 1000.0);
  }
  ::close(fd);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  uint16_t upstream_port = 0;
  int upstream = udp_socket(upstream_port);
  std::atomic<bool> stop{false};
  std::thread server([&] { serve(upstream, stop); });
  launcher::ResolverConfig config;
  config.hosts = {{"*.bench.example", policy::Protocol::tcp, {{443, 443}}, 0}};
  config.upstream = "127.0.0.1:" + std::to_string(upstream_port);
  launcher::DnsResolver resolver(config, [](const launcher::DnsAdmission&) {});
  resolver.start();
  std::thread drain([&] {
    while (!stop) {
      resolver.take_events();
      ::usleep(10000);
    }
  });
  median_us(upstream_port, 100);  // warm up
  median_us(resolver.port4(), 100);
  double direct = median_us(upstream_port, n);
  double through = median_us(resolver.port4(), n);
  std::printf("%.1f %.1f %.1f\n", direct, through, through - direct);
  std::fflush(stdout);
  stop = true;
  ::shutdown(upstream, SHUT_RDWR);  // wakes the server's recvfrom
  server.join();
  drain.join();
  return 0;
}
