// enclosure ps [--json]: the live enclosures of this user (root: of every user), from their
// control sockets (launcher/run/control_socket.h).
// enclosure stop RUN [--timeout D]: ends one — SIGTERM, the run's grace period, SIGKILL — and
// waits for its launcher to finish; the run's exit event says "stopped".
#include <boost/program_options.hpp>

#include <dirent.h>
#include <poll.h>
#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "launcher/base/clock.h"
#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/options.h"
#include "launcher/run/control_socket.h"
#include "policy/units.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

constexpr int kStatusTimeoutMs = 2000;

struct LiveRun {
  std::string socket;
  nlohmann::json status;
};

// Every control socket that answers `status`; sockets of launchers that were killed before they
// could remove them are removed (they are this user's, or root asks).
std::vector<LiveRun> live_runs() {
  std::vector<LiveRun> out;
  for (const std::string& dir : control_directories_to_list(::geteuid())) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.size() < 6 || name.substr(name.size() - 5) != ".sock") continue;
      std::string path = dir + "/" + name;
      bool stale = false;
      std::optional<nlohmann::json> status =
          ask_control_socket(path, "status", kStatusTimeoutMs, stale);
      if (stale) ::unlink(path.c_str());
      if (status && status->is_object() && status->contains("run")) out.push_back({path, *status});
    }
    ::closedir(d);
  }
  return out;
}

// "12/800" for a figure with a limit, else its value; "" when absent.
std::string figure(const nlohmann::json& budgets, const char* name) {
  if (!budgets.contains(name)) return "";
  const nlohmann::json& b = budgets[name];
  std::string value = b.contains("value")  ? (b["value"].is_string() ? b["value"].get<std::string>()
                                                                     : b["value"].dump())
                      : b.contains("peak") ? b["peak"].get<std::string>()
                                           : "";
  if (b.contains("limit")) {
    value += "/" + (b["limit"].is_string() ? b["limit"].get<std::string>() : b["limit"].dump());
  }
  return std::string(name) + " " + value;
}

std::string budgets_line(const nlohmann::json& budgets) {
  std::string out;
  for (const char* name : {"tool_calls", "syscalls", "cpu_time", "memory", "egress_bytes"}) {
    std::string f = figure(budgets, name);
    if (!f.empty()) out += (out.empty() ? "" : ", ") + f;
  }
  return out;
}

void print_table(const std::vector<LiveRun>& runs) {
  std::cout << std::left << std::setw(34) << "RUN" << std::setw(24) << "MANIFEST" << std::setw(8)
            << "PID" << std::setw(7) << "UID" << std::setw(10) << "UPTIME"
            << "BUDGETS\n";
  for (const LiveRun& r : runs) {
    const nlohmann::json& s = r.status;
    std::string manifest = s["manifest"].value("name", "?");
    if (s["manifest"].contains("revision")) manifest += " r" + s["manifest"]["revision"].dump();
    std::cout << std::setw(34) << s.value("run", "") << std::setw(24) << manifest << std::setw(8)
              << s.value("pid", 0) << std::setw(7) << s.value("uid", 0) << std::setw(10)
              << policy::format_duration(s.value("uptime_ns", uint64_t{0}) / 1'000'000'000ULL *
                                         1'000'000'000ULL)
              << budgets_line(s.value("budgets", nlohmann::json::object()))
              << (s.value("stopping", false) ? " (stopping)" : "") << "\n";
  }
}

}  // namespace

int command_ps(const Args& args) {
  po::options_description options(
      "Usage: enclosure ps [--json]\n\n"
      "The live enclosures: run id, manifest name and revision, the agent's pid 1, the user who\n"
      "started it, uptime and budgets so far. A user sees its own runs; root sees every user's.\n"
      "\nOptions");
  options.add_options()("help,h", "show this help")(
      "json",
      "one JSON array: each run's status as its launcher reports it (digest, command, "
      "every budget figure)");
  po::variables_map vm;
  if (std::optional<int> done = parse_options_only("ps", args, options, vm, exit_code::kInvalid)) {
    return *done;
  }
  std::vector<LiveRun> runs = live_runs();
  if (vm.count("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const LiveRun& r : runs)
      out.push_back(r.status);
    std::cout << out.dump(2) << "\n";
  } else {
    print_table(runs);
  }
  return exit_code::kSuccess;
}

namespace {

// The one live run whose id starts with `prefix`. Throws LaunchError (exit 1) when none or
// several match.
LiveRun find_run(const std::string& prefix) {
  std::vector<LiveRun> matches;
  for (LiveRun& r : live_runs()) {
    if (r.status.value("run", "").rfind(prefix, 0) == 0) matches.push_back(std::move(r));
  }
  if (matches.empty())
    throw LaunchError("no live run " + prefix + " (see enclosure ps)", exit_code::kFailure);
  if (matches.size() > 1) {
    throw LaunchError(
        prefix + " names " + std::to_string(matches.size()) + " runs; give more of the run id",
        exit_code::kFailure);
  }
  return std::move(matches.front());
}

// Waits until the launcher behind `connection` has finished (the socket reaches end of file).
bool wait_for_end(int connection, uint64_t timeout_ms) {
  Deadline deadline(timeout_ms);
  while (!deadline.passed()) {
    pollfd p{connection, POLLIN, 0};
    if (::poll(&p, 1, deadline.milliseconds_left()) <= 0) continue;
    char buf[256];
    if (::read(connection, buf, sizeof buf) <= 0) return true;
  }
  return false;
}

}  // namespace

int command_stop(const Args& args) {
  po::options_description options(
      "Usage: enclosure stop RUN [--timeout D]\n\n"
      "Ends the live enclosure whose run id starts with RUN: SIGTERM to every process, the\n"
      "run's grace period (run --grace), then SIGKILL. Waits for its launcher to finish; the\n"
      "run's exit event says \"stopped\". Exit status: 0 stopped, 1 no such run or not stopped\n"
      "in time, 2 usage.\n\nOptions");
  std::string timeout = "60s";
  options.add_options()("help,h", "show this help")(
      "timeout", po::value(&timeout)->default_value("60s"), "how long to wait for the end");
  std::vector<std::string> ids;
  po::variables_map vm;
  if (auto done = parse_command_line("stop", args, options, po::value(&ids), 1, vm)) return *done;
  if (ids.empty() || ids[0].empty())
    return usage_error("stop", "no run id given", exit_code::kInvalid);
  policy::Parsed<uint64_t> wait = policy::parse_duration(timeout);
  if (!wait)
    return usage_error("stop", "--timeout " + timeout + ": expected " + wait.error,
                       exit_code::kInvalid);
  LiveRun run = find_run(ids[0]);
  bool stale = false;
  UniqueFd connection;
  std::optional<nlohmann::json> reply =
      ask_control_socket(run.socket, "stop", kStatusTimeoutMs, stale, &connection);
  if (!reply || !reply->contains("stopping")) {
    throw LaunchError("run " + run.status.value("run", "") + " did not accept the stop" +
                          (reply ? ": " + reply->dump() : ""),
                      exit_code::kFailure);
  }
  std::string id = (*reply)["stopping"].get<std::string>();
  if (!wait_for_end(connection.get(), *wait.value / 1'000'000ULL)) {
    throw LaunchError("run " + id + " has not ended after " + timeout, exit_code::kFailure);
  }
  std::cout << "enclosure stop: run " << id << " stopped\n";
  return exit_code::kSuccess;
}

}  // namespace launcher
