#include "launcher/run/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"

namespace launcher {
namespace {

// The most the relay reads at once, and so the most it holds in each direction.
constexpr size_t kChunk = 4096;
// Transfers per direction in one on_ready(): the supervisor's other descriptors get their turn.
constexpr int kRoundsPerWakeUp = 16;

// Raw input (bytes as typed, no signals, no echo) and output (the agent's terminal already
// turned its newlines into CR LF), as cfmakeraw makes it.
struct termios raw_mode_of(struct termios t) {
  t.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  t.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
                                      IXON | IXOFF);
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
  t.c_cflag |= CS8;
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  return t;
}

bool transient(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

}  // namespace

AgentTerminal::AgentTerminal() {
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
    if (::isatty(fd)) {
      size_source_ = fd;
      break;
    }
  }
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("terminal: epoll_create1");
}

AgentTerminal::~AgentTerminal() {
  restore();
}

std::optional<struct winsize> AgentTerminal::window_size() const {
  struct winsize size {};
  if (size_source_ < 0 || ::ioctl(size_source_, TIOCGWINSZ, &size) != 0) return std::nullopt;
  return size;
}

void AgentTerminal::copy_window_size() {
  if (!master_) return;
  if (std::optional<struct winsize> size = window_size())
    ::ioctl(master_.get(), TIOCSWINSZ, &*size);
}

void AgentTerminal::attach_master(UniqueFd master) {
  if (master_ || !master) return;
  int flags = ::fcntl(master.get(), F_GETFL);
  if (flags < 0 || ::fcntl(master.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    throw_errno("terminal: the agent's terminal's master O_NONBLOCK");
  master_ = std::move(master);
  // The size may have changed since pid 1 gave the agent's terminal the one it had then.
  copy_window_size();
  if (relaying_) watch_master();
}

void AgentTerminal::watch_master() {
  master_end_.fd = master_.get();
  master_end_.nonblocking = true;
  open_endpoint(master_end_, -1, 0);
  update_interest();
}

void AgentTerminal::start_relay() {
  if (::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp()) {
    if (::tcgetattr(STDIN_FILENO, &saved_) != 0) throw_errno("terminal: tcgetattr on stdin");
    struct termios raw = raw_mode_of(saved_);
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) throw_errno("terminal: raw mode on stdin");
    raw_ = true;
  }
  open_endpoint(input_, STDIN_FILENO, O_RDONLY);
  open_endpoint(output_, STDOUT_FILENO, O_WRONLY);
  relaying_ = true;
  if (master_) {
    watch_master();
  } else {
    update_interest();
  }
}

// A descriptor of the relay. A terminal or a pipe gets a description of its own, opened again
// through /proc, that can be non-blocking without changing the one the launcher shares with
// its parent (a shell would find its terminal non-blocking after the run).
void AgentTerminal::open_endpoint(Endpoint& endpoint, int fd, int flags) {
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      endpoint.closed = true;  // not open: nothing to relay
      return;
    }
    endpoint.fd = fd;
    if (::isatty(fd) || S_ISFIFO(st.st_mode)) {
      std::string path = "/proc/self/fd/" + std::to_string(fd);
      endpoint.reopened.reset(::open(path.c_str(), flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
      if (endpoint.reopened) {
        endpoint.fd = endpoint.reopened.get();
        endpoint.nonblocking = true;
      }
    }
  }
  struct epoll_event e {};
  e.events = 0;
  e.data.ptr = &endpoint;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, endpoint.fd, &e) == 0) {
    endpoint.pollable = true;
    endpoint.in_epoll = true;
  } else if (errno != EPERM) {
    throw_errno("terminal: epoll_ctl");
  }
}

void AgentTerminal::on_ready() {
  struct epoll_event events[3];
  int n = ::epoll_wait(epoll_.get(), events, 3, 0);
  for (int i = 0; i < n; ++i) {
    auto* endpoint = static_cast<Endpoint*>(events[i].data.ptr);
    endpoint->ready = true;
    // A reader of the launcher's output that went away: its output is dropped from now on.
    if (endpoint == &output_ && (events[i].events & (EPOLLERR | EPOLLHUP))) output_.closed = true;
  }
  move_input();
  move_output();
  update_interest();
}

// Standard input to the master: one chunk at a time, never more held than one read. Nothing
// is read before the master is here.
void AgentTerminal::move_input() {
  if (!master_) return;
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (to_agent_.empty() && !input_.closed && input_.may_transfer()) {
      input_.ready = false;
      char buf[kChunk];
      ssize_t n = ::read(input_.fd, buf, sizeof buf);
      if (n > 0) {
        to_agent_.assign(buf, static_cast<size_t>(n));
      } else if (n == 0 || !transient(errno)) {
        end_input();
      }
    }
    if (to_agent_.empty()) return;
    if (master_end_.closed) {
      to_agent_.clear();
      return;
    }
    ssize_t w = ::write(master_.get(), to_agent_.data(), to_agent_.size());
    if (w < 0) {
      if (!transient(errno)) to_agent_.clear();  // EIO: the agent's side is gone
      return;
    }
    to_agent_.erase(0, static_cast<size_t>(w));
    if (!to_agent_.empty() || input_.closed) return;
  }
}

// The end of standard input: the agent reads end-of-file too (its terminal's VEOF character,
// as typing Ctrl-D would give), when its terminal is in canonical mode.
void AgentTerminal::end_input() {
  input_.closed = true;
  struct termios t {};
  if (::tcgetattr(master_.get(), &t) == 0 && (t.c_lflag & ICANON) && t.c_cc[VEOF] != 0) {
    to_agent_.push_back(static_cast<char>(t.c_cc[VEOF]));
  }
}

// The master to standard output.
void AgentTerminal::move_output() {
  if (!master_) return;
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (from_agent_.empty() && !master_end_.closed) {
      char buf[kChunk];
      ssize_t n = ::read(master_.get(), buf, sizeof buf);
      if (n > 0) {
        from_agent_.assign(buf, static_cast<size_t>(n));
      } else if (n == 0 || !transient(errno)) {
        master_end_.closed = true;  // EIO: every descriptor of the slave is closed
      }
    }
    if (from_agent_.empty()) return;
    if (output_.closed) {
      from_agent_.clear();
      continue;
    }
    if (!output_.may_transfer()) return;
    output_.ready = false;
    ssize_t w = ::write(output_.fd, from_agent_.data(), from_agent_.size());
    if (w < 0) {
      if (transient(errno)) return;
      output_.closed = true;  // EPIPE, EIO: nobody reads the launcher's output any more
      from_agent_.clear();
      continue;
    }
    from_agent_.erase(0, static_cast<size_t>(w));
    if (!from_agent_.empty()) return;
  }
}

// What each descriptor waits for now. Standard input that epoll cannot watch (a regular file)
// is read whenever the master can take more; none is read before the master is here.
void AgentTerminal::update_interest() {
  set_interest(input_, master_ && to_agent_.empty() ? EPOLLIN : 0);
  bool unwatched_input = !input_.pollable && !input_.closed;
  set_interest(master_end_, (from_agent_.empty() ? EPOLLIN : 0) |
                                (!to_agent_.empty() || unwatched_input ? EPOLLOUT : 0));
  set_interest(output_, from_agent_.empty() ? 0 : EPOLLOUT);
}

void AgentTerminal::set_interest(Endpoint& endpoint, uint32_t events) {
  if (!endpoint.in_epoll) return;
  if (endpoint.closed) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, endpoint.fd, nullptr);
    endpoint.in_epoll = false;
    return;
  }
  if (events == endpoint.registered) return;
  struct epoll_event e {};
  e.events = events;
  e.data.ptr = &endpoint;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, endpoint.fd, &e) != 0)
    throw_errno("terminal: epoll_ctl");
  endpoint.registered = events;
}

void AgentTerminal::drain_output(int timeout_ms) {
  if (!relaying_ || !master_) return;
  Deadline deadline(static_cast<uint64_t>(timeout_ms));
  while (true) {
    move_output();
    if (from_agent_.empty() && master_end_.closed) return;
    int left = deadline.milliseconds_left();
    if (left <= 0) return;
    bool writing = !from_agent_.empty();
    struct pollfd p {};
    p.fd = writing ? output_.fd : master_.get();
    p.events = writing ? POLLOUT : POLLIN;
    if (::poll(&p, 1, left) <= 0) return;
    if (writing) output_.ready = true;
  }
}

void AgentTerminal::restore() {
  if (!raw_) return;
  raw_ = false;
  // A launcher moved to the background meanwhile would be stopped by SIGTTOU.
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  ::sigprocmask(SIG_BLOCK, &ttou, &old);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace launcher
