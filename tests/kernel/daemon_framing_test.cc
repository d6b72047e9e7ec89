// The daemon's framing over a real unix socket pair: a reply carries several descriptors (the
// run's cgroup directories) with its first byte, and they arrive with that reply, in order, and
// not with the reply before it.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "launcher/base/fd.h"
#include "launcher/daemon/framing.h"

namespace launcher {
namespace {

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

void send_all(int socket, const std::string& frame, const std::vector<int>& fds) {
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = send_with_descriptors(socket, std::string_view(frame).substr(done),
                                      done == 0 ? fds : std::vector<int>{}, 0);
    ASSERT_GT(n, 0) << "sendmsg: " << std::strerror(errno);
    done += static_cast<size_t>(n);
  }
}

TEST(DaemonFraming, AReplyCarriesSeveralDescriptorsInOrder) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd daemon(pair[0]), launcher(pair[1]);
  UniqueFd root(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd proc(::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd tmp(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root && proc && tmp);

  std::string first, second;
  encode_frame(first, R"({"ok":true})");
  encode_frame(second, R"({"ok":true,"descriptors":["v2","memory","pids"]})");
  send_all(daemon.get(), first, {});
  send_all(daemon.get(), second, {root.get(), proc.get(), tmp.get()});

  std::optional<Frame> a = receive_frame(launcher.get(), "test");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->payload, R"({"ok":true})");
  EXPECT_TRUE(a->fds.empty()) << "the descriptors of the next reply came with this one";
  std::optional<Frame> b = receive_frame(launcher.get(), "test");
  ASSERT_TRUE(b);
  ASSERT_EQ(b->fds.size(), 3u);
  EXPECT_EQ(inode_of(b->fds[0].get()), inode_of(root.get()));
  EXPECT_EQ(inode_of(b->fds[1].get()), inode_of(proc.get()));
  EXPECT_EQ(inode_of(b->fds[2].get()), inode_of(tmp.get()));
  // Received descriptors are close-on-exec, as everything the launcher holds.
  EXPECT_EQ(::fcntl(b->fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(DaemonFraming, MoreDescriptorsThanAFrameCarriesAreRefused) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  std::vector<int> many(kMaxFramedDescriptors + 1, a.get());
  errno = 0;
  EXPECT_EQ(send_with_descriptors(a.get(), "x", many, 0), -1);
  EXPECT_EQ(errno, E2BIG);
}

}  // namespace
}  // namespace launcher
