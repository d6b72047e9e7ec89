/* syscall_loop KIND N: runs N iterations of one system call and prints the mean ns per call.
 * KIND: getppid (the cheapest call: measures per-syscall overhead of filters and tracepoints)
 *       openat   (open+close of a file: measures path-walk overhead, e.g. Landlock)
 *       connect  (connect+close to 127.0.0.1:PORT given as a third argument)
 *       refused  (an open for writing that must fail, e.g. of a file in a read grant: measures the
 *                 cost of a refusal and its deny record)
 *       create   (O_CREAT of N distinct new files in the directory DIR given as a third argument,
 *                 closed at once: N distinct paths, so N access-log records even when the kernel
 *                 counts repeats of a path instead of recording them) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s getppid|openat|connect|refused|create N [PORT|PATH|DIR]\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  const char* path = argc > 3 ? argv[3] : "/usr/lib/os-release";
  double start = now_ns();
  if (strcmp(argv[1], "getppid") == 0) {
    for (long i = 0; i < n; ++i)
      syscall(SYS_getppid);
  } else if (strcmp(argv[1], "openat") == 0) {
    for (long i = 0; i < n; ++i) {
      int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        perror(path);
        return 1;
      }
      close(fd);
    }
  } else if (strcmp(argv[1], "refused") == 0) {
    for (long i = 0; i < n; ++i) {
      int fd = openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        fprintf(stderr, "%s: opened for writing, expected a refusal\n", path);
        return 1;
      }
    }
  } else if (strcmp(argv[1], "create") == 0) {
    char name[4096];
    for (long i = 0; i < n; ++i) {
      snprintf(name, sizeof name, "%s/f%ld", path, i);
      int fd = openat(AT_FDCWD, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) {
        perror(name);
        return 1;
      }
      close(fd);
    }
  } else if (strcmp(argv[1], "cycle") == 0) {
    /* cycle N DIR K: N read-opens of DIR/f0 .. DIR/f(K-1), in turn */
    long k = argc > 4 ? atol(argv[4]) : 1;
    char name[4096];
    for (long i = 0; i < n; ++i) {
      snprintf(name, sizeof name, "%s/f%ld", path, k > 0 ? i % k : 0);
      int fd = openat(AT_FDCWD, name, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        perror(name);
        return 1;
      }
      close(fd);
    }
  } else if (strcmp(argv[1], "connect") == 0) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argc > 3 ? argv[3] : "0"));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (long i = 0; i < n; ++i) {
      int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
      }
      close(s);
    }
  } else {
    fprintf(stderr, "unknown kind %s\n", argv[1]);
    return 2;
  }
  printf("%.1f\n", (now_ns() - start) / (double)n);
  return 0;
}
