#include "launcher/run/enclosure_init.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "launcher/base/error.h"
#include "launcher/run/child_channel.h"
#include "launcher/run/credentials.h"
#include "launcher/run/landlock.h"
#include "launcher/run/loopback.h"
#include "launcher/run/memfd_noexec.h"
#include "launcher/run/mount_view.h"
#include "launcher/run/seccomp_filter.h"

namespace launcher {
namespace {

// Written to the exec pipe: an errno from execve, or this for a set-up failure before it.
constexpr int kAgentSetupFailed = -1;

// Moves the metering pipe to kMeterFd (without close-on-exec), first moving out of the way
// whatever else holds that number. Everything else is close-on-exec by now.
void place_meter_fd(int meter_fd, int& channel_fd, int& exec_fd) {
  for (int* fd : {&channel_fd, &exec_fd}) {
    if (*fd != kMeterFd) continue;
    int moved = ::fcntl(*fd, F_DUPFD_CLOEXEC, kMeterFd + 1);
    if (moved < 0)
      throw_errno("agent: move fd " + std::to_string(kMeterFd) + " out of the meter's way");
    *fd = moved;
  }
  if (meter_fd == kMeterFd) {
    if (::fcntl(meter_fd, F_SETFD, 0) != 0) throw_errno("agent: metering descriptor");
  } else if (::dup3(meter_fd, kMeterFd, 0) != kMeterFd) {
    throw_errno("agent: metering descriptor to fd " + std::to_string(kMeterFd));
  }
}

// The agent's pseudo-terminal, from the enclosure's own devpts (the view is in place), so that
// ttyname() names a /dev/pts path that exists inside: the slave is returned (owned by the
// agent's user, as a login's terminal is), the master is sent to the supervisor, which relays
// it. pid 1 keeps neither once the agent has its slave.
UniqueFd open_agent_terminal(const ChildSpec& spec, int channel) {
  const std::string what = "init: the agent's terminal: ";
  UniqueFd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) throw_errno(what + "open /dev/ptmx (the enclosure's devpts)");
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) throw_errno(what + "unlock (TIOCSPTLCK)");
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) {
    // Before Linux 4.13: by its name, which is in the enclosure's /dev/pts.
    unsigned index = 0;
    if (::ioctl(master.get(), TIOCGPTN, &index) != 0) throw_errno(what + "its number (TIOCGPTN)");
    std::string name = "/dev/pts/" + std::to_string(index);
    slave.reset(::open(name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) throw_errno(what + "open " + name);
  }
  if (::fchown(slave.get(), spec.uid, spec.gid) != 0) {
    throw_errno(what + "chown to " + std::to_string(spec.uid) + ":" + std::to_string(spec.gid));
  }
  if (spec.terminal_size && ::ioctl(slave.get(), TIOCSWINSZ, &*spec.terminal_size) != 0)
    throw_errno(what + "window size (TIOCSWINSZ)");
  if (!send_message(channel, {{"type", "terminal"}}, master.get()))
    throw_errno(what + "send its master to the supervisor");
  return slave;
}

// The agent's own pseudo-terminal as its standard descriptors and controlling terminal (it is
// the leader of a new session by now): /dev/tty and job control work; the launcher's
// terminal stays outside.
void attach_terminal(int terminal_fd) {
  if (::ioctl(terminal_fd, TIOCSCTTY, 0) != 0) throw_errno("agent: TIOCSCTTY");
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
    if (fd != terminal_fd && ::dup2(terminal_fd, fd) != fd)
      throw_errno("agent: terminal to fd " + std::to_string(fd));
  }
  if (terminal_fd > STDERR_FILENO) {
    ::close(terminal_fd);
  } else if (::fcntl(terminal_fd, F_SETFD, 0) != 0) {
    throw_errno("agent: terminal descriptor");
  }
}

// `terminal_fd`: the slave of the agent's terminal, or -1.
[[noreturn]] void run_agent(const ChildSpec& spec_in, const ViewResult& view, int terminal_fd,
                            int exec_fd) {
  ChildSpec spec = spec_in;
  try {
    // A session of its own: no controlling terminal to inject input into, or its own one.
    if (::setsid() < 0) throw_errno("agent: setsid");
    if (terminal_fd >= 0) attach_terminal(terminal_fd);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) throw_errno("agent: PR_SET_PDEATHSIG");
    // Only 0, 1 and 2 survive execve, and the metering descriptor.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) throw_errno("agent: close_range");
    if (spec.meter_fd >= 0) place_meter_fd(spec.meter_fd, spec.channel_fd, exec_fd);
    struct rlimit core {
      0, 0
    };
    if (::setrlimit(RLIMIT_CORE, &core) != 0) throw_errno("agent: RLIMIT_CORE");
    if (spec.cpu_limit_seconds) {
      struct rlimit cpu {
        *spec.cpu_limit_seconds, *spec.cpu_limit_seconds
      };
      if (::setrlimit(RLIMIT_CPU, &cpu) != 0) throw_errno("agent: RLIMIT_CPU");
    }
    if (::chdir(spec.cwd.c_str()) != 0) {
      throw_errno("process.cwd " + spec.cwd + " is not reachable in the enclosure's view");
    }
    std::optional<LandlockRuleset> ruleset;
    if (spec.landlock_abi > 0) {
      std::vector<std::string> executables;
      for (const std::string& interp : spec.interpreters) {
        std::string real = view.view_path(interp);
        if (!real.empty()) executables.push_back(real);
      }
      ruleset.emplace(spec.plan->landlock, view, executables, spec.landlock_abi);
    }
    std::optional<SeccompFilter> filter;
    if (spec.seccomp) filter.emplace(spec.plan->seccomp);
    // Everything execve needs is prepared before the filter is loaded: from then on the process
    // makes exactly sendmsg, close, execve and, on failure, write and exit_group (calls a
    // profile may not deny; policy::load refuses it), and allocates nothing.
    std::vector<char*> argv, envp;
    for (const std::string& a : spec.argv)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const std::string& e : spec.envp)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const std::string handoff = nlohmann::json{{"type", "seccomp_listener"}}.dump();
    drop_privileges(spec.uid, spec.gid, spec.user_namespace);
    if (ruleset) ruleset->restrict_self();
    if (filter) {
      // Last step before execve: from here on every denied call waits for the supervisor.
      UniqueFd listener = filter->load();
      if (!send_prepared(spec.channel_fd, handoff, listener.get())) {
        int code = kAgentSetupFailed;
        write_all(exec_fd, &code, sizeof code);
        _exit(kSetupFailed);
      }
    }
    ::execve(spec.exec_path.c_str(), argv.data(), envp.data());
    int err = errno;
    write_all(exec_fd, &err, sizeof err);
    _exit(err == ENOENT ? 127 : 126);
  } catch (const LaunchError& e) {
    send_message(spec.channel_fd,
                 {{"type", "setup_error"}, {"message", e.what()}, {"code", kSetupFailed}});
    int code = kAgentSetupFailed;
    write_all(exec_fd, &code, sizeof code);
    _exit(kSetupFailed);
  }
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

// pid 1 from the agent's exec on: forwards the signals in `forwarded` to the agent's session,
// reaps orphans, and exits with the agent's status once it is gone.
[[noreturn]] void forward_signals_until_agent_exits(const sigset_t& forwarded, pid_t agent,
                                                    int channel) {
  while (true) {
    siginfo_t info{};
    int sig = ::sigwaitinfo(&forwarded, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      // Forward to the agent's session (it is its process group leader).
      if (::kill(-agent, sig) != 0) ::kill(agent, sig);
      continue;
    }
    int status = 0;
    pid_t p;
    while ((p = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (p == agent) {
        nlohmann::json m = {{"type", "agent_exit"}, {"code", exit_code_of(status)}};
        if (WIFSIGNALED(status)) m["signal"] = WTERMSIG(status);
        if (WIFEXITED(status)) m["status"] = WEXITSTATUS(status);
        send_message(channel, m);
        // Everything else in the pid namespace dies with pid 1.
        _exit(exit_code_of(status));
      }
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
        send_message(channel, {{"type", "child_killed"}, {"ns_pid", p}, {"signal", SIGSYS}});
      }
    }
  }
}

// Closes every descriptor but 0-2 and `keep` (inherited from the launcher: BPF objects, the
// cgroup directory, event sinks); none of them belongs inside.
void close_fds_except(std::initializer_list<int> keep) {
  std::vector<int> sorted(keep);
  std::sort(sorted.begin(), sorted.end());
  unsigned first = 3;
  for (int fd : sorted) {
    if (fd < 3) continue;
    if (static_cast<unsigned>(fd) > first) ::close_range(first, static_cast<unsigned>(fd) - 1, 0);
    first = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(first, ~0U, 0);
}

// One byte from the supervisor; EOF (it is gone or gave up) ends the set-up.
void wait_for_go_ahead(int sync_fd) {
  char go = 0;
  ssize_t n;
  do {
    n = ::read(sync_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(kSetupFailed);
}

}  // namespace

[[noreturn]] void run_enclosure_init(const ChildSpec& spec) {
  int channel = spec.channel_fd;
  close_fds_except({spec.sync_fd, spec.channel_fd, spec.meter_fd});
  try {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) throw_errno("init: PR_SET_PDEATHSIG");
    // Wait until the supervisor has written our uid map; EOF means it is gone, and then there
    // is nothing to do.
    wait_for_go_ahead(spec.sync_fd);
    // Not dumpable: its memory and fds stay out of reach of the agent (/proc/1/mem, ptrace).
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    ::prctl(PR_SET_NAME, "enclosure-init", 0, 0, 0);
    if (::sethostname("enclosure", 9) != 0) throw_errno("init: sethostname");
    if (spec.new_network) bring_up_loopback();
    ViewResult view = build_mount_view(spec.mount_steps, {spec.uid, spec.gid});
    // A launcher without root cannot (/proc/sys is the host root's): the daemon has set it
    // when this process entered the run (launcher/run/memfd_noexec.h).
    if (!spec.user_namespace) forbid_executable_memfds();
    send_message(channel, {{"type", "view"}, {"absent", view.absent}});
    UniqueFd terminal;
    if (spec.terminal) terminal = open_agent_terminal(spec, channel);

    int exec_pipe[2];
    if (::pipe2(exec_pipe, O_CLOEXEC) != 0) throw_errno("init: pipe2");
    sigset_t forwarded;
    sigemptyset(&forwarded);
    for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
      sigaddset(&forwarded, s);
    sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    // The view was built while the supervisor moved us into the run's cgroups (a v1 or
    // unprivileged migration waits for an RCU grace period, ~10 ms: now in parallel, not in
    // series). A child forked before that would stay outside them, so the agent waits for it.
    wait_for_go_ahead(spec.sync_fd);
    ::close(spec.sync_fd);
    if (spec.recenter_cgroup_namespace && ::unshare(CLONE_NEWCGROUP) != 0) {
      throw_errno("init: unshare(CLONE_NEWCGROUP) in the run's cgroup");
    }
    pid_t agent = ::fork();
    if (agent < 0) throw_errno("init: fork the agent");
    if (agent == 0) {
      // The agent starts with no signal blocked or ignored (both survive execve).
      for (int s = 1; s < NSIG; ++s) {
        if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
      }
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      ::close(exec_pipe[0]);
      run_agent(spec, view, terminal.get(), exec_pipe[1]);
    }
    ::close(exec_pipe[1]);
    // The agent holds the metering pipe; pid 1 has no use for it.
    if (spec.meter_fd >= 0) ::close(spec.meter_fd);
    terminal.reset();  // nor for the agent's terminal: its master reads EOF when the agent's closes
    // pid 1 keeps CAP_KILL alone, to forward signals to an agent under another uid.
    const int keep[] = {CAP_KILL};
    keep_only_capabilities(keep, 1);

    int report = 0;
    ssize_t n;
    do {
      n = ::read(exec_pipe[0], &report, sizeof report);
    } while (n < 0 && errno == EINTR);
    ::close(exec_pipe[0]);
    if (n == sizeof report && report != kAgentSetupFailed) {
      send_message(channel,
                   {{"type", "exec_error"}, {"errno", report}, {"message", std::strerror(report)}});
    } else if (n == 0) {
      send_message(channel, {{"type", "exec_ok"}, {"ns_pid", agent}});
    }

    forward_signals_until_agent_exits(forwarded, agent, channel);
  } catch (const LaunchError& e) {
    send_message(channel,
                 {{"type", "setup_error"}, {"message", e.what()}, {"code", e.exit_code()}});
    _exit(e.exit_code());
  } catch (const std::exception& e) {
    send_message(channel, {{"type", "setup_error"}, {"message", e.what()}, {"code", kSetupFailed}});
    _exit(kSetupFailed);
  }
}

}  // namespace launcher
