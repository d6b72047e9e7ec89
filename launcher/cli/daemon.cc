// enclosure daemon [--socket PATH] [--pin-dir DIR] [--state-dir DIR] [--cgroup NAME]
//                  [--allow-group NAME]... [--max-runs-per-user N] [--adopt-timeout DURATION]
//                  [--ring-buffer SIZE] [--event-rate N/s] [--event-burst N]
// The privileged per-node service that gives unprivileged `enclosure run` the eBPF and cgroup
// layers (launcher/daemon/service.h).
#include <grp.h>
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/options.h"
#include "launcher/daemon/protocol.h"
#include "launcher/daemon/service.h"
#include "policy/units.h"

namespace po = boost::program_options;

namespace launcher {

int command_daemon(const Args& args) {
  DaemonOptions opt;
  opt.socket_path = kDefaultDaemonSocket;
  std::vector<std::string> groups;
  std::string adopt_timeout = "30s", ring_buffer = "4MiB", event_rate = "10000/s";
  po::options_description options(
      "Usage: enclosure daemon [options]\n\n"
      "The privileged per-node service (run it as root, e.g. enclosure-daemon.service or a\n"
      "DaemonSet) that lets ordinary users run `enclosure run --daemon PATH`: it loads the eBPF\n"
      "programs once, attaches them to its own cgroup subtree, creates each run's cgroup with its\n"
      "limits, fills the run's maps and forwards the run's kernel records to its launcher. Who "
      "may\n"
      "ask is decided by peer credentials; each caller configures and reads only its own runs,\n"
      "and processes inside any enclosure are refused. A run whose launcher disconnects is "
      "killed.\n"
      "Links and maps are pinned in bpffs: on SIGTERM the daemon leaves running enclosures to the\n"
      "pinned programs, and the next daemon re-adopts them from its state directory (a launcher\n"
      "that does not come back within --adopt-timeout has its enclosure killed); with no\n"
      "enclosure left it removes its pins, cgroups and state. Exit status: 0 after a clean stop,\n"
      "125 when it cannot start.\n\n"
      "Options");
  options.add_options()("help,h", "show this help")(
      "socket", po::value(&opt.socket_path)->default_value(kDefaultDaemonSocket),
      "the unix socket launchers connect to (mode 0666; access by peer credentials)")(
      "pin-dir", po::value(&opt.pin_dir)->default_value(opt.pin_dir),
      "where maps and links are pinned (a directory in bpffs)")(
      "state-dir", po::value(&opt.state_dir)->default_value(opt.state_dir),
      "one file per running enclosure, for re-adoption after a restart")(
      "cgroup", po::value(&opt.cgroup_name)->default_value(opt.cgroup_name),
      "name of the daemon's cgroup subtree beneath the root of each hierarchy")(
      "allow-group", po::value(&groups)->composing(),
      "only members of this group (and root) may ask; repeatable (default: every local user)")(
      "max-runs-per-user", po::value(&opt.max_runs_per_user)->default_value(64),
      "how many enclosures one uid may have at once")(
      "adopt-timeout", po::value(&adopt_timeout)->default_value("30s"),
      "after a restart, how long a re-adopted enclosure waits for its launcher")(
      "ring-buffer", po::value(&ring_buffer)->default_value("4MiB"),
      "size of the shared eBPF event ring buffer (a restart must keep the same size)")(
      "event-rate", po::value(&event_rate)->default_value(event_rate),
      "kernel records forwarded per second for each user, all its runs together (N/s); the "
      "rest are counted and reach the launcher as `lost`")(
      "event-burst", po::value(&opt.event_burst)->default_value(opt.event_burst),
      "records a user may have forwarded at once before --event-rate applies");
  po::variables_map vm;
  if (std::optional<int> done =
          parse_options_only("daemon", args, options, vm, exit_code::kLaunchError)) {
    return *done;
  }
  for (const std::string& name : groups) {
    if (const group* g = ::getgrnam(name.c_str())) {
      opt.allow_groups.push_back(g->gr_gid);
    } else {
      std::cerr << "enclosure daemon: --allow-group " << name << ": no such group\n";
      return exit_code::kLaunchError;
    }
  }
  policy::Parsed<uint64_t> timeout = policy::parse_duration(adopt_timeout);
  if (!timeout) {
    std::cerr << "enclosure daemon: --adopt-timeout " << adopt_timeout << ": expected "
              << timeout.error << "\n";
    return exit_code::kLaunchError;
  }
  opt.adopt_timeout_ns = *timeout.value;
  policy::Parsed<uint64_t> ring = policy::parse_size(ring_buffer);
  if (!ring || *ring.value < 4096 || *ring.value > (1ULL << 30)) {
    std::cerr << "enclosure daemon: --ring-buffer: expected a size from 4KiB to 1GiB\n";
    return exit_code::kLaunchError;
  }
  opt.ring_bytes = *ring.value;
  std::string rate_digits = event_rate.size() > 2 && event_rate.ends_with("/s")
                                ? event_rate.substr(0, event_rate.size() - 2)
                                : event_rate;
  if (rate_digits.empty() || rate_digits.size() > 9 ||
      rate_digits.find_first_not_of("0123456789") != std::string::npos ||
      std::stoull(rate_digits) == 0 || opt.event_burst == 0 || opt.event_burst > 999999999) {
    std::cerr << "enclosure daemon: --event-rate, --event-burst: expected N/s and N from 1 to "
                 "999999999\n";
    return exit_code::kLaunchError;
  }
  opt.event_rate = std::stoull(rate_digits);
  if (opt.max_runs_per_user == 0) {
    std::cerr << "enclosure daemon: --max-runs-per-user: expected at least 1\n";
    return exit_code::kLaunchError;
  }
  if (opt.cgroup_name.empty() || opt.cgroup_name.find('/') != std::string::npos ||
      opt.cgroup_name[0] == '.') {
    std::cerr << "enclosure daemon: --cgroup: expected one directory name\n";
    return exit_code::kLaunchError;
  }
  try {
    return run_daemon(opt);
  } catch (const LaunchError& e) {
    std::cerr << "enclosure " << e.what() << "\n";  // "daemon: ..."
    return exit_code::kLaunchError;
  } catch (const std::exception& e) {
    std::cerr << "enclosure daemon: " << e.what() << "\n";
    return exit_code::kLaunchError;
  }
}

}  // namespace launcher
