// enclosure run -m FILE [--daemon PATH] [--context NAME=VALUE]... [--context-file FILE]
//               [--events DEST]... [--grace DURATION] [--dns-upstream ADDR:PORT]
//               [--dns-grace DURATION] [--event-rate N/s] [--event-burst N] [--tty|--no-tty]
//               -- CMD [ARG]...
// Starts CMD (one of the manifest's tools) inside the enclosure and supervises it. As root it
// builds every layer itself; otherwise the eBPF and cgroup layers come from `enclosure daemon`.
#include <unistd.h>

#include <boost/program_options.hpp>

#include <iostream>
#include <optional>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/base/file.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"
#include "launcher/daemon/client.h"
#include "launcher/daemon/layers.h"
#include "launcher/daemon/protocol.h"
#include "launcher/run/enclosure.h"
#include "launcher/run/local_layers.h"
#include "policy/baseline.h"
#include "policy/compile.h"
#include "policy/units.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

struct RunOptions {
  std::string manifest;
  std::vector<std::string> context;
  std::string context_file;
  std::vector<std::string> events;
  std::string grace = "2s";
  size_t ring_buffer_bytes = 0;
  bool audit_required = false;
  size_t collector_buffer_lines = 100000;
  EventRateLimit event_rate;
  std::string dns_upstream;
  std::string dns_grace = "10s";
  bool observe = false;  // `enclosure learn`'s observation run (kept for scripts and tests)
  std::string daemon;    // --daemon PATH
  // --tty, --no-tty; by default whether standard input is a terminal
  bool terminal = false;
  std::vector<std::string> command;
};

po::options_description visible_options(RunOptions& opt) {
  po::options_description options(
      "Usage: enclosure run -m FILE [options] -- CMD [ARG]...\n\n"
      "Starts CMD, which must be one of the manifest's tools, inside the enclosure the manifest\n"
      "describes, and supervises it until it exits.\n"
      "Exit status: the agent's; 128+N when killed by signal N; 124 when a budget ended the run;\n"
      "125 launcher error (invalid manifest, a layer this host cannot enforce); 126 the command\n"
      "is not a tool or cannot be executed; 127 not found.\n\nOptions");
  options.add_options()("help,h", "show this help")(
      "manifest,m", po::value(&opt.manifest),
      "the manifest (required; - reads it from standard input)")(
      "context", po::value(&opt.context)->composing(),
      "NAME=VALUE for a context variable (repeatable)")(
      "context-file", po::value(&opt.context_file), "a JSON object of context values")(
      "events", po::value(&opt.events)->composing(),
      "where events go: - (stderr), a file (appended), unix:PATH (a collector: enclosure collect), "
      "journal (the systemd journal, native protocol); "
      "repeatable; without it only a summary line is printed, and only when the enclosure "
      "intervened")(
      "audit-required",
      "events must reach the collector: the agent starts only once its start record is "
      "acknowledged, and the run ends (exit 125) when the collector cannot be reached")(
      "collector-buffer", po::value(&opt.collector_buffer_lines)->default_value(100000),
      "events kept for the collector while it is unreachable (also bounded to 64MiB); what does "
      "not fit is reported to it as one `lost` record")(
      "event-rate", po::value<std::string>()->default_value("500/s"),
      "sustained events per second of each type (N/s, or unlimited); past --event-burst, "
      "repeats are counted into one `suppressed` event per type and second instead of written "
      "(start, exit, budget, rule, lost, anomaly are never suppressed; exit totals stay exact)")(
      "event-burst", po::value<std::string>()->default_value("2000"),
      "events of each type written at once before --event-rate applies")(
      "grace", po::value(&opt.grace)->default_value("2s"),
      "time between SIGTERM and SIGKILL when a budget ends the run")(
      "ring-buffer", po::value<std::string>(),
      "size of the eBPF event ring buffer (default 4MiB); records that do not fit are counted and "
      "reported as `lost` events")(
      "dns-upstream", po::value(&opt.dns_upstream),
      "the resolver the enclosure's resolver asks, ADDR[:PORT] or [V6]:PORT (default: the first "
      "nameserver of /etc/resolv.conf); used when the manifest sets /network/dns")(
      "dns-grace", po::value(&opt.dns_grace)->default_value("10s"),
      "how long an answered address stays reachable after its TTL ran out")(
      "tty",
      "give the agent a terminal of its own (a pseudo-terminal the launcher relays to its "
      "standard input and output) even when standard input is not a terminal; the default when "
      "it is one")("no-tty",
                   "never: the agent gets the launcher's standard input, output and error")(
      "daemon", po::value(&opt.daemon),
      "get the eBPF and cgroup layers from `enclosure daemon` at this socket (needed without "
      "root; a non-root launcher uses /run/enclosure/daemon.sock when that socket exists)");
  return options;
}

// The options that need more than parsing: a usage error is exit 125.
std::optional<int> check_options(const po::variables_map& vm, RunOptions& opt) {
  opt.audit_required = vm.count("audit-required") > 0;
  if (vm.count("tty") && vm.count("no-tty")) {
    return usage_error("run", "--tty and --no-tty exclude each other", exit_code::kLaunchError);
  }
  opt.terminal = vm.count("tty") || (!vm.count("no-tty") && ::isatty(STDIN_FILENO));
  if (opt.collector_buffer_lines == 0) {
    std::cerr << "enclosure run: --collector-buffer: expected at least 1 line\n";
    return exit_code::kLaunchError;
  }
  std::string error;
  std::optional<uint64_t> rate = parse_event_rate(vm["event-rate"].as<std::string>(), error);
  std::optional<uint64_t> burst = parse_event_burst(vm["event-burst"].as<std::string>(), error);
  if (!rate || !burst) {
    std::cerr << "enclosure run: " << error << "\n";
    return exit_code::kLaunchError;
  }
  opt.event_rate = {*rate, *burst};
  if (vm.count("ring-buffer")) {
    policy::Parsed<uint64_t> size = policy::parse_size(vm["ring-buffer"].as<std::string>());
    if (!size || *size.value < 4096 || *size.value > (1ULL << 30)) {
      std::cerr << "enclosure run: --ring-buffer: expected a size from 4KiB to 1GiB\n";
      return exit_code::kLaunchError;
    }
    opt.ring_buffer_bytes = *size.value;
  }
  if (opt.manifest.empty()) {
    return usage_error("run", "-m FILE is required", exit_code::kLaunchError);
  }
  if (opt.command.empty()) {
    return usage_error("run", "no command given after --", exit_code::kLaunchError);
  }
  return std::nullopt;
}

// Fills `opt`; returns the exit status when the command is already done (--help, usage error).
std::optional<int> parse_options(const Args& all_args, RunOptions& opt) {
  // Everything after "--" is the command, untouched by option parsing.
  Args args;
  split_at_double_dash(all_args, args, opt.command);
  po::options_description options = visible_options(opt);
  // Used by `enclosure learn` before it ran the enclosure in-process; not shown in the help.
  po::options_description hidden;
  hidden.add_options()("observe", po::bool_switch(&opt.observe));
  po::variables_map vm;
  if (std::optional<int> done =
          parse_options_only("run", args, options, vm, exit_code::kLaunchError,
                             /*missing_dash=*/!has_double_dash(all_args), &hidden)) {
    return done;
  }
  return check_options(vm, opt);
}

// The manifest with its context values, compiled. Throws InvalidManifest.
CompiledManifest load_for_run(const RunOptions& opt) {
  policy::ContextValues context = collect_context(opt.context, opt.context_file);
  std::optional<policy::Manifest> manifest;
  try {
    manifest = load_manifest_or_throw(opt.manifest, context, /*allow_unresolved=*/false);
  } catch (const InvalidManifest& e) {
    throw InvalidManifest(e.diagnostics(), "the manifest is invalid; the agent was not started");
  }
  policy::CompileResult compiled = policy::compile(*manifest);
  if (!compiled.plan) throw InvalidManifest({}, opt.manifest + ": " + compiled.error);
  return {std::move(*manifest), std::move(*compiled.plan)};
}

// The behaviour profile /baseline/profile names. Throws LaunchError.
std::optional<policy::BaselineProfile> load_baseline(const policy::EnforcementPlan& plan) {
  if (!plan.baseline) return std::nullopt;
  const std::string& path = plan.baseline->profile;
  std::string text;
  try {
    text = read_file(path);
  } catch (const LaunchError& e) {
    throw LaunchError(std::string("/baseline/profile: ") + e.what());
  }
  policy::Diagnostics diagnostics;
  std::optional<policy::BaselineProfile> baseline =
      policy::parse_baseline_profile(text, diagnostics);
  if (!baseline) {
    std::string message =
        "/baseline/profile: " + path + ": not a behaviour profile written by enclosure learn";
    for (const policy::Diagnostic& d : diagnostics.errors())
      message += "\n  " + d.path + ": " + d.message;
    throw LaunchError(message);
  }
  return baseline;
}

// --grace and --dns-grace: "0" (or "0s") or a duration. Throws LaunchError.
uint64_t parse_grace(const std::string& option, const std::string& text) {
  if (text == "0" || text == "0s") return 0;
  policy::Parsed<uint64_t> duration = policy::parse_duration(text);
  if (!duration) throw LaunchError(option + " " + text + ": expected " + duration.error);
  return *duration.value;
}

EnclosureOptions enclosure_options(const RunOptions& opt, const policy::EnforcementPlan& plan) {
  EnclosureOptions out;
  out.baseline = load_baseline(plan);
  out.grace_ns = parse_grace("--grace", opt.grace);
  out.dns_grace_ns = parse_grace("--dns-grace", opt.dns_grace);
  out.dns_grace = opt.dns_grace;
  out.command = opt.command;
  out.events = opt.events;
  out.collector_buffer_lines = opt.collector_buffer_lines;
  out.event_rate = opt.event_rate;
  out.audit_required = opt.audit_required;
  out.ring_buffer_bytes = opt.ring_buffer_bytes;
  out.dns_upstream = opt.dns_upstream;
  out.observe = opt.observe;
  out.terminal = opt.terminal;
  out.default_daemon_socket = kDefaultDaemonSocket;
  return out;
}

// Where the eBPF and cgroup layers come from: this process (as root), or `enclosure daemon`
// (--daemon, or its default socket when this launcher is not root and the socket is there).
std::unique_ptr<LayerProvider> layer_provider(const RunOptions& opt) {
  std::string socket = daemon_socket_for(opt.daemon);
  if (socket.empty()) return std::make_unique<LocalLayers>();
  if (opt.ring_buffer_bytes) {
    throw LaunchError(
        "--ring-buffer: with a daemon the ring buffer is the daemon's (enclosure daemon "
        "--ring-buffer)");
  }
  return std::make_unique<DaemonLayers>(socket);  // LaunchError (125) when unreachable
}

}  // namespace

// Errors end at the command boundary (cli/main.cc) as "enclosure run: ..." and their status.
int command_run(const Args& all_args) {
  RunOptions opt;
  if (std::optional<int> done = parse_options(all_args, opt)) return *done;
  CompiledManifest compiled = load_for_run(opt);
  EnclosureOptions options = enclosure_options(opt, compiled.plan);
  Enclosure enclosure(compiled.manifest, std::move(compiled.plan), std::move(options));
  return enclosure.run(layer_provider(opt));
}

}  // namespace launcher
