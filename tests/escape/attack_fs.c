/* Filesystem escapes: secrets outside the view through symlinks, /proc/self/root, hard links
 * and renames out of read-only trees, the mount API, /proc writes, device nodes, the cgroup
 * file system, leaked descriptors, the environment. */
#include "attack.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

/* symlink-secret DIR SECRET: plant DIR/link -> SECRET and read through it. */
static void symlink_secret(int argc, char** argv) {
  if (argc < 2) return;
  char link[4096];
  snprintf(link, sizeof link, "%s/link-to-secret", argv[0]);
  unlink(link);
  if (symlink(argv[1], link) != 0) {
    report_call("symlink-secret", -1, "symlink");
    return;
  }
  int fd = open(link, O_RDONLY);
  report_call("symlink-secret", fd, argv[1]);
}

/* proc-root SECRET: reach SECRET through /proc/self/root and /proc/1/root. */
static void proc_root(int argc, char** argv) {
  if (argc < 1) return;
  char path[4096];
  snprintf(path, sizeof path, "/proc/self/root%s", argv[0]);
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    snprintf(path, sizeof path, "/proc/1/root%s", argv[0]);
    fd = open(path, O_RDONLY);
  }
  report_call("proc-root", fd, path);
}

/* hardlink SRC DST, rename SRC DST: move a file out of a read-only grant into a writable one. */
static void hard_link(int argc, char** argv) {
  if (argc < 2) return;
  report_call("hardlink", link(argv[0], argv[1]), argv[0]);
}
static void rename_out(int argc, char** argv) {
  if (argc < 2) return;
  report_call("rename", rename(argv[0], argv[1]), argv[0]);
}
static void chmod_ro(int argc, char** argv) {
  if (argc < 1) return;
  report_call("chmod", chmod(argv[0], 0777), argv[0]);
}

static void mount_tmpfs(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("mount", mount("none", "/tmp", "tmpfs", 0, NULL), "mount tmpfs on /tmp");
}
static void umount_proc(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("umount2", umount2("/proc", MNT_DETACH), "umount /proc");
}
static void pivot(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"), "pivot_root");
}
static void open_tree_attack(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | AT_RECURSIVE),
              "clone /");
}
static void move_mount_attack(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("move_mount", syscall(SYS_move_mount, AT_FDCWD, "/proc", AT_FDCWD, "/tmp", 0),
              "move /proc");
}
static void fsopen_attack(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("fsopen", syscall(SYS_fsopen, "tmpfs", 0), "fsopen tmpfs");
}

/* proc-write PATH: write to a /proc control file. */
static void proc_write(int argc, char** argv) {
  if (argc < 1) return;
  int fd = open(argv[0], O_WRONLY);
  if (fd >= 0) {
    ssize_t n = write(fd, "c", 1);
    report_call("proc-write", n < 0 ? -1 : 0, argv[0]);
    return;
  }
  report_call("proc-write", -1, argv[0]);
}

static void mknod_dev(int argc, char** argv) {
  (void)argc, (void)argv;
  report_call("mknod", mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1)),
              "char device 1:1 (/dev/mem)");
}

/* open-path PATH [w]: open a path that must not be reachable. */
static void open_path(int argc, char** argv) {
  if (argc < 1) return;
  int fd = open(argv[0], argc > 1 ? O_WRONLY : O_RDONLY);
  report_call("open", fd, argv[0]);
}

/* fds: any descriptor besides 0-2 and the metering one? */
static void leaked_fds(int argc, char** argv) {
  (void)argc, (void)argv;
  const char* meter = getenv("ENCLOSURE_METER_FD");
  int meter_fd = meter ? atoi(meter) : -1;
  char found[256] = "";
  for (int fd = 3; fd < 4096; ++fd) {
    if (fd == meter_fd) continue;
    if (fcntl(fd, F_GETFD) != -1) {
      char one[16];
      snprintf(one, sizeof one, "%d ", fd);
      strncat(found, one, sizeof found - strlen(found) - 1);
    }
  }
  report(found[0] ? "fds" : "fds", found[0] != 0, found[0] ? 0 : EBADF, found);
}

/* env NAME: is a variable of the launcher's environment visible? */
static void env_leak(int argc, char** argv) {
  if (argc < 1) return;
  const char* v = getenv(argv[0]);
  report("env", v != NULL, v ? 0 : ENOENT, v ? v : "");
}

static const struct attack attacks[] = {{"symlink-secret", symlink_secret},
                                        {"proc-root", proc_root},
                                        {"hardlink", hard_link},
                                        {"rename", rename_out},
                                        {"chmod", chmod_ro},
                                        {"mount", mount_tmpfs},
                                        {"umount", umount_proc},
                                        {"pivot_root", pivot},
                                        {"open_tree", open_tree_attack},
                                        {"move_mount", move_mount_attack},
                                        {"fsopen", fsopen_attack},
                                        {"proc-write", proc_write},
                                        {"mknod", mknod_dev},
                                        {"open", open_path},
                                        {"fds", leaked_fds},
                                        {"env", env_leak},
                                        {NULL, NULL}};

int main(int argc, char** argv) {
  return run_attack(attacks, argc, argv);
}
