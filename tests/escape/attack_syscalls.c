/* Syscall escapes: io_uring, foreign ABIs (x32, int 0x80), TIOCSTI with the upper bits set,
 * ptrace, namespaces (unshare, clone, clone3, setns), and the kernel interfaces an agent never
 * needs (keyctl, bpf, perf_event_open, userfaultfd, open_by_handle_at, personality). */
#include "attack.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

static void io_uring(int argc, char** argv) {
  (void)argc, (void)argv;
  char params[120] = {0};
  report_call("io_uring_setup", syscall(SYS_io_uring_setup, 8, params), "");
}

/* The x32 ABI: getpid with bit 30 set. The process should not survive this call. */
static void x32(int argc, char** argv) {
  (void)argc, (void)argv;
  report("x32-before", 0, 0, "about to call x32 getpid");
  long rc = syscall(0x40000000 | SYS_getpid);
  report_call("x32", rc, "survived an x32 syscall");
}

/* int 0x80 from a 64-bit process: the i386 ABI (getpid is 20 there). */
static void int80(int argc, char** argv) {
  (void)argc, (void)argv;
  report("int80-before", 0, 0, "about to call int 0x80");
  long rc;
  __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20) : "memory");
  report("int80", rc >= 0, rc < 0 ? (int)-rc : 0, "survived int 0x80");
}

/* TIOCSTI on a real pty, with the upper 32 bits of the request set (the kernel ignores them). */
static void tiocsti(int argc, char** argv) {
  (void)argc, (void)argv;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) || unlockpt(master)) {
    report_call("tiocsti", -1, "no pty");
    return;
  }
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  if (slave < 0) {
    report_call("tiocsti", -1, "open slave");
    return;
  }
  char c = 'x';
  long rc = syscall(SYS_ioctl, slave, 0x100000000UL | 0x5412UL, &c);
  report_call("tiocsti", rc, "ioctl(TIOCSTI | 1<<32)");
  rc = syscall(SYS_ioctl, slave, 0x5412UL, &c);
  report_call("tiocsti-plain", rc, "ioctl(TIOCSTI)");
}

static void ptrace_attach(int argc, char** argv) {
  pid_t target = argc > 0 ? atoi(argv[0]) : 1;
  report_call("ptrace", ptrace(PTRACE_ATTACH, target, 0, 0), "PTRACE_ATTACH");
  report_call("ptrace-traceme", ptrace(PTRACE_TRACEME, 0, 0, 0), "PTRACE_TRACEME");
}

static void unshare_user(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("unshare", syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS),
              "CLONE_NEWUSER|CLONE_NEWNS");
}

static void clone_ns(int argc, char** argv) {
  (void)argc, (void)argv;
  long rc = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
  if (rc == 0) _exit(0);
  report_call("clone", rc, "clone(CLONE_NEWNET)");
}

static void clone3_ns(int argc, char** argv) {
  (void)argc, (void)argv;
  struct clone_args args = {0};
  args.flags = CLONE_NEWUSER;
  args.exit_signal = SIGCHLD;
  long rc = syscall(SYS_clone3, &args, sizeof args);
  if (rc == 0) _exit(0);
  report_call("clone3", rc, "clone3(CLONE_NEWUSER)");
}

static void setns_net(int argc, char** argv) {
  (void)argc, (void)argv;
  int fd = open("/proc/self/ns/net", O_RDONLY);
  report_call("setns", syscall(SYS_setns, fd, CLONE_NEWNET), "setns(own netns)");
}

static void kernel_interfaces(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), "");
  char attr[128] = {0};
  report_call("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr), "");
  char perf[128] = {0};
  report_call("perf_event_open", syscall(SYS_perf_event_open, perf, 0, -1, -1, 0), "");
  report_call("userfaultfd", syscall(SYS_userfaultfd, 0), "");
  char handle[136] = {0};
  ((unsigned int*)handle)[0] = 8;
  report_call("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY), "");
  report_call("personality", syscall(SYS_personality, READ_IMPLIES_EXEC), "READ_IMPLIES_EXEC");
}

static const struct attack attacks[] = {{"io_uring", io_uring},
                                        {"x32", x32},
                                        {"int80", int80},
                                        {"tiocsti", tiocsti},
                                        {"ptrace", ptrace_attach},
                                        {"unshare", unshare_user},
                                        {"clone", clone_ns},
                                        {"clone3", clone3_ns},
                                        {"setns", setns_net},
                                        {"kernel-interfaces", kernel_interfaces},
                                        {NULL, NULL}};

int main(int argc, char** argv) {
  return run_attack(attacks, argc, argv);
}
