// The agent's own terminal: a pseudo-terminal of the enclosure's devpts (so that ttyname() names
// a path that exists inside), whose slave the enclosure's pid 1 makes the agent's standard
// input, output, error and controlling terminal, and whose master pid 1 sends to the launcher
// over the child channel; the launcher relays it to its own standard input and output (as
// `systemd-run --pty` does). When the launcher's standard input is a terminal, that terminal is
// put into raw mode for the run (so that Ctrl-C, Ctrl-Z and the like reach the agent's line
// discipline as bytes) and its window size follows the agent's; the saved settings come back on
// every way out (restore(), the destructor).
#pragma once

#include <sys/ioctl.h>
#include <termios.h>

#include <cstdint>
#include <optional>
#include <string>

#include "launcher/base/fd.h"

namespace launcher {

class AgentTerminal {
 public:
  // Finds the launcher's terminal the window size comes from (the first of its standard
  // descriptors that is one), if any. Throws LaunchError.
  AgentTerminal();
  ~AgentTerminal();  // restore()
  AgentTerminal(const AgentTerminal&) = delete;
  AgentTerminal& operator=(const AgentTerminal&) = delete;

  // The launcher's terminal's window size now, for the agent's terminal to start with.
  std::optional<struct winsize> window_size() const;

  // Raw mode on the launcher's standard input when it is a terminal of which the launcher's
  // process group is the foreground (a launcher in the background leaves its terminal alone);
  // then starts relaying, standard input once the master is here. Throws LaunchError.
  void start_relay();
  // The master of the agent's terminal, from pid 1 (the first one only): relayed from now on,
  // and given the launcher's window size. It reads EOF once the agent's side is all closed.
  void attach_master(UniqueFd master);
  // Readable when the relay can move bytes; on_ready() moves them, without blocking.
  int poll_fd() const { return epoll_.get(); }
  void on_ready();
  // SIGWINCH: the launcher's terminal changed size; the agent's follows (and gets SIGWINCH).
  // Nothing before the master is here.
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

  void watch_master();

  UniqueFd master_;  // the agent's terminal's, once pid 1 sent it
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
