/* Network escapes (network mode "filtered" or "none"): UDP without connect, sendmmsg,
 * IPv4-mapped IPv6, raw, packet and ping sockets, odd address families, unix sockets of host
 * services (abstract and by path). */
#include "attack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

static struct sockaddr_in v4(const char* ip, int port) {
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

/* udp IP PORT: sendto without connect, then sendmmsg of two datagrams. */
static void udp(int argc, char** argv) {
  if (argc < 2) return;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = v4(argv[0], atoi(argv[1]));
  report_call("udp-sendto", sendto(s, "leak", 4, 0, (struct sockaddr*)&a, sizeof a), argv[0]);
  struct iovec iov = {"leak", 4};
  struct mmsghdr msgs[2] = {0};
  for (int i = 0; i < 2; ++i) {
    msgs[i].msg_hdr.msg_name = &a;
    msgs[i].msg_hdr.msg_namelen = sizeof a;
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  report_call("udp-sendmmsg", syscall(SYS_sendmmsg, s, msgs, 2, 0), argv[0]);
}

/* tcp IP PORT: a plain connect. */
static void tcp(int argc, char** argv) {
  if (argc < 2) return;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = v4(argv[0], atoi(argv[1]));
  report_call("tcp-connect", connect(s, (struct sockaddr*)&a, sizeof a), argv[0]);
}

/* mapped IPV4 PORT: connect to ::ffff:IPV4 from an IPv6 socket. */
static void mapped(int argc, char** argv) {
  if (argc < 2) return;
  int s = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {0};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons((unsigned short)atoi(argv[1]));
  char text[64];
  snprintf(text, sizeof text, "::ffff:%s", argv[0]);
  inet_pton(AF_INET6, text, &a.sin6_addr);
  report_call("mapped-v6", connect(s, (struct sockaddr*)&a, sizeof a), text);
}

static void raw_sockets(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("raw", socket(AF_INET, SOCK_RAW, IPPROTO_UDP), "AF_INET SOCK_RAW");
  report_call("raw6", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6), "AF_INET6 SOCK_RAW");
  report_call("packet", socket(AF_PACKET, SOCK_RAW, 0), "AF_PACKET");
  report_call("ping", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), "ICMP ping socket");
}

static void odd_families(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("af_alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0), "AF_ALG");
  report_call("af_vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0), "AF_VSOCK");
  report_call("af_bluetooth", socket(31 /* AF_BLUETOOTH */, SOCK_RAW, 0), "AF_BLUETOOTH");
  report_call("af_key", socket(15 /* AF_KEY */, SOCK_RAW, 2), "AF_KEY");
  report_call("netlink-audit", socket(AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */),
              "NETLINK_AUDIT");
  report_call("family-high-bits", syscall(SYS_socket, (1UL << 32) | AF_PACKET, SOCK_RAW, 0),
              "AF_PACKET|1<<32");
}

/* unix-abstract NAME / unix-path PATH: connect to a host service's unix socket. */
static void unix_abstract(int argc, char** argv) {
  if (argc < 1) return;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {0};
  a.sun_family = AF_UNIX;
  size_t n = strlen(argv[0]);
  memcpy(a.sun_path + 1, argv[0], n);
  report_call("unix-abstract",
              connect(s, (struct sockaddr*)&a, (socklen_t)(sizeof(sa_family_t) + 1 + n)), argv[0]);
}
static void unix_path(int argc, char** argv) {
  if (argc < 1) return;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {0};
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, argv[0], sizeof a.sun_path - 1);
  report_call("unix-path", connect(s, (struct sockaddr*)&a, sizeof a), argv[0]);
}

static const struct attack attacks[] = {{"udp", udp},
                                        {"tcp", tcp},
                                        {"mapped", mapped},
                                        {"raw", raw_sockets},
                                        {"families", odd_families},
                                        {"unix-abstract", unix_abstract},
                                        {"unix-path", unix_path},
                                        {NULL, NULL}};

int main(int argc, char** argv) {
  return run_attack(attacks, argc, argv);
}
