/* Process escapes: signals to processes outside, fork, thread and memory bombs, floods of
 * events followed by one that must not be lost, log injection through path names. */
#include "attack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* kill PID: signal a process of the host by its pid, then everything we can see. */
static void kill_outside(int argc, char** argv) {
  if (argc < 1) return;
  report_call("kill", kill(atoi(argv[0]), SIGKILL), argv[0]);
}

static void fork_bomb(int argc, char** argv) {
  (void)argc, (void)argv;
  int forked = 0;
  for (int i = 0; i < 100000; ++i) {
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    if (p < 0) break;
    ++forked;
  }
  char detail[64];
  snprintf(detail, sizeof detail, "%d processes", forked);
  report("fork-bomb", forked >= 100000, errno, detail);
}

static void* idle(void* arg) {
  (void)arg;
  pause();
  return NULL;
}

static void thread_bomb(int argc, char** argv) {
  (void)argc, (void)argv;
  int made = 0;
  for (int i = 0; i < 100000; ++i) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 65536);
    int rc = pthread_create(&t, &attr, idle, NULL);
    if (rc != 0) {
      errno = rc;
      break;
    }
    ++made;
  }
  char detail[64];
  snprintf(detail, sizeof detail, "%d threads", made);
  report("thread-bomb", made >= 100000, errno, detail);
}

static void memory_bomb(int argc, char** argv) {
  (void)argc, (void)argv;
  size_t total = 0;
  for (;;) {
    char* p = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) break;
    memset(p, 1, 16 << 20);
    total += 16 << 20;
  }
  char detail[64];
  snprintf(detail, sizeof detail, "survived after %zu MiB", total >> 20);
  report("memory-bomb", 1, 0, detail);
}

/* flood PATH N IP PORT: open PATH, then the N-1 distinct missing names PATH.1 to PATH.N-1 (a
 * flood of audit records: the kernel counts the repeats of one file instead of recording them),
 * then one denied connect whose deny event must not be lost. */
static void flood_then_deny(int argc, char** argv) {
  if (argc < 4) return;
  long n = atol(argv[1]);
  char name[4096];
  for (long i = 0; i < n; ++i) {
    snprintf(name, sizeof name, "%s.%ld", argv[0], i);
    int fd = open(i == 0 ? argv[0] : name, O_RDONLY);
    if (fd >= 0) close(fd);
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[3]));
  inet_pton(AF_INET, argv[2], &a.sin_addr);
  report_call("flood-then-deny", connect(s, (struct sockaddr*)&a, sizeof a), argv[2]);
}

/* inject DIR: open files whose names carry newlines, quotes, escape sequences and invalid
 * UTF-8, to forge or garble audit records. */
static void inject(int argc, char** argv) {
  if (argc < 1) return;
  const char* names[] = {"a\n{\"type\":\"exit\",\"forged\":true}", "q\"uote\\back",
                         "esc\x1b[2J\x1b]0;pwned\x07", "bad\xff\xfe\xc3\x28utf8"};
  int opened = 0;
  for (unsigned i = 0; i < sizeof names / sizeof *names; ++i) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", argv[0], names[i]);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0) {
      ++opened;
      close(fd);
    }
  }
  char detail[32];
  snprintf(detail, sizeof detail, "%d files", opened);
  report("inject", 0, 0, detail);
}

/* pidfd-getfd: take a descriptor of a sibling process through its pidfd (a copy of another
 * process's open file, like ptrace would give): a raw syscall, so no libc wrapper decides. */
static void pidfd_getfd_of_sibling(int argc, char** argv) {
  (void)argc, (void)argv;
  int fds[2];
  if (pipe(fds) != 0) {
    report("pidfd-getfd", 0, errno, "pipe");
    return;
  }
  pid_t sibling = fork();
  if (sibling == 0) {
    close(fds[0]);
    pause(); /* holds the pipe's write end as descriptor fds[1] */
    _exit(0);
  }
  close(fds[1]);
  long pidfd = syscall(SYS_pidfd_open, sibling, 0);
  if (pidfd < 0) {
    report("pidfd-getfd", 0, errno, "pidfd_open");
  } else {
    long fd = syscall(SYS_pidfd_getfd, (int)pidfd, fds[1], 0);
    report_call("pidfd-getfd", fd, "write end of the sibling's pipe");
  }
  kill(sibling, SIGKILL);
  waitpid(sibling, NULL, 0);
}

static const struct attack attacks[] = {{"pidfd-getfd", pidfd_getfd_of_sibling},
                                        {"kill", kill_outside},
                                        {"fork-bomb", fork_bomb},
                                        {"thread-bomb", thread_bomb},
                                        {"memory-bomb", memory_bomb},
                                        {"flood", flood_then_deny},
                                        {"inject", inject},
                                        {NULL, NULL}};

int main(int argc, char** argv) {
  return run_attack(attacks, argc, argv);
}
