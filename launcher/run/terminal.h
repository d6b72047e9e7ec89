// The agent's own terminal: a pseudo-terminal whose slave becomes the agent's standard input,
// output, error and controlling terminal, and whose master stays with the launcher, which relays
// it to its own standard input and output (as `systemd-run --pty` does). When the launcher's
// standard input is a terminal, that terminal is put into raw mode for the run (so that Ctrl-C,
// Ctrl-Z and the like reach the agent's line discipline as bytes) and its window size follows
// the agent's; the saved settings come back on every way out (restore(), the destructor).
#pragma once

#include <termios.h>

#include <cstdint>
#include <string>

#include "launcher/base/fd.h"

namespace launcher {

class AgentTerminal {
 public:
  // Opens the pair and copies the window size of the launcher's terminal (the first of its
  // standard descriptors that is one), if any. Throws LaunchError.
  AgentTerminal();
  ~AgentTerminal();  // restore()
  AgentTerminal(const AgentTerminal&) = delete;
  AgentTerminal& operator=(const AgentTerminal&) = delete;

  // The slave, for the agent (open, close-on-exec, not the launcher's controlling terminal).
  int slave_fd() const { return slave_.get(); }
  // Once pid 1 holds its copy: the master then reads EOF when the agent's side is all closed.
  void close_slave() { slave_.reset(); }

  // Raw mode on the launcher's standard input when it is a terminal of which the launcher's
  // process group is the foreground (a launcher in the background leaves its terminal alone);
  // then starts relaying. Throws LaunchError.
  void start_relay();
  // Readable when the relay can move bytes; on_ready() moves them, without blocking.
  int poll_fd() const { return epoll_.get(); }
  void on_ready();
  // SIGWINCH: the launcher's terminal changed size; the agent's follows (and gets SIGWINCH).
  void copy_window_size();
  // After the agent is gone: what it wrote and the relay has not yet, up to `timeout_ms`.
  void drain_output(int timeout_ms);
  // The launcher's terminal settings as they were before start_relay(). Idempotent.
  void restore();

 private:
  struct Endpoint {
    int fd = -1;               // what the relay reads or writes
    UniqueFd reopened;         // a description of our own, when one could be made
    bool nonblocking = false;  // reopened (or the master): reads and writes never block
    bool pollable = false;     // epoll accepts it (not a regular file or /dev/null)
    bool in_epoll = false;
    bool ready = false;       // epoll said so since the last read or write
    bool closed = false;      // EOF, hang-up or an error: no more relaying on this side
    uint32_t registered = 0;  // the events it is in epoll for
    bool may_transfer() const { return !pollable || nonblocking || ready; }
  };

  void open_endpoint(Endpoint& endpoint, int fd, int flags);
  void move_input();
  void move_output();
  void end_input();
  void update_interest();
  void set_interest(Endpoint& endpoint, uint32_t events);

  UniqueFd master_, slave_;
  UniqueFd epoll_;
  int size_source_ = -1;  // the launcher's terminal the window size comes from, or -1
  bool raw_ = false;      // the launcher's standard input is in raw mode
  struct termios saved_ {};
  bool relaying_ = false;

  Endpoint input_;   // the launcher's standard input
  Endpoint output_;  // the launcher's standard output
  Endpoint master_end_;
  std::string to_agent_;    // read from standard input, not yet written to the master
  std::string from_agent_;  // read from the master, not yet written to standard output
};

}  // namespace launcher
