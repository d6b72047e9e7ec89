// enclosure collect --listen unix:PATH --audit-log FILE [--metrics HOST:PORT] [--socket-mode 0660]
//                   [--rotate-size 64MiB] [--keep N] [--keep-size SIZE]
//                   [--metrics-max-connections 64] [--fsync durable|interval]
//                   [--sign-key FILE [--sign-interval 5m] [--next-key PUB]]
// The collector: accepts many launchers and writes the hash-chained audit log.
#include <boost/program_options.hpp>

#include <grp.h>
#include <unistd.h>

#include <iostream>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/options.h"
#include "launcher/events/collector.h"
#include "policy/units.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

// The option values as written on the command line.
struct CollectFlags {
  std::string listen, audit_log, metrics, socket_mode = "0660", socket_group, rotate_size = "64MiB",
                                          fsync = "durable", keep_size = "0", sign_key,
                                          sign_interval = "5m", next_key;
  uint64_t keep = 0;
  size_t metrics_max_connections = MetricsEndpoint::kDefaultMaxClients;
  bool metrics_allow_remote = false;
  std::string events;  // --events journal
};

// A usage error of `collect` that names one option value (exit 2).
[[noreturn]] void bad_value(const std::string& what) {
  throw LaunchError(what, exit_code::kInvalid);
}

// --socket-group: a group name or a numeric gid.
gid_t parse_group(const std::string& text) {
  if (const group* g = ::getgrnam(text.c_str())) return g->gr_gid;
  char* end = nullptr;
  unsigned long gid = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || gid >= 0xffffffffUL) {
    bad_value("--socket-group " + text + ": no such group (a name or a numeric gid)");
  }
  return static_cast<gid_t>(gid);
}

mode_t parse_socket_mode(const std::string& text) {
  char* end = nullptr;
  unsigned long mode = std::strtoul(text.c_str(), &end, 8);
  if (text.empty() || *end != '\0' || mode > 0777) {
    bad_value("--socket-mode " + text + ": expected octal permissions like 0660");
  }
  return static_cast<mode_t>(mode);
}

uint64_t parse_rotate_size(const std::string& text) {
  if (text == "0") return 0;
  policy::Parsed<uint64_t> size = policy::parse_size(text);
  if (!size || *size.value < 4096) {
    bad_value("--rotate-size " + text + ": expected a size of at least 4KiB, or 0");
  }
  return *size.value;
}

uint64_t parse_keep_size(const std::string& text) {
  if (text == "0") return 0;
  policy::Parsed<uint64_t> size = policy::parse_size(text);
  if (!size || *size.value == 0) bad_value("--keep-size " + text + ": expected a size, or 0");
  return *size.value;
}

FsyncPolicy parse_fsync(const std::string& text) {
  if (text == "durable") return FsyncPolicy::durable;
  if (text == "interval") return FsyncPolicy::interval;
  bad_value("--fsync " + text + ": expected durable or interval");
}

// --sign-key, --sign-interval, --next-key: the key is read once, here, before the collector
// starts; a key that is not Ed25519, that group or others may read, or that cannot be read is
// refused (exit 2).
AuditSigning signing_options(const CollectFlags& flags) {
  AuditSigning signing;
  if (flags.sign_key.empty()) {
    if (!flags.next_key.empty()) bad_value("--next-key needs --sign-key");
    return signing;
  }
  policy::Parsed<uint64_t> interval = policy::parse_duration(flags.sign_interval);
  if (!interval || *interval.value < 1'000'000'000ULL) {
    bad_value("--sign-interval " + flags.sign_interval + ": expected a duration of at least 1s");
  }
  signing.interval_seconds = *interval.value / 1'000'000'000ULL;
  try {
    signing.key = std::make_shared<const AuditKey>(AuditKey::load_private(flags.sign_key));
    if (!flags.next_key.empty()) signing.next_key_id = AuditKey::load_public(flags.next_key).id();
  } catch (const LaunchError& e) {
    bad_value(e.what());
  }
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  signing.hostname = host;
  signing.machine_id = read_machine_id();
  return signing;
}

// The checked options (--listen and --audit-log are checked by the caller, which prints the
// usage with them).
CollectorOptions collector_options(const CollectFlags& flags) {
  CollectorOptions opt;
  opt.socket_path = flags.listen.substr(5);
  opt.audit_log = flags.audit_log;
  opt.socket_mode = parse_socket_mode(flags.socket_mode);
  if (!flags.socket_group.empty()) opt.socket_group = parse_group(flags.socket_group);
  opt.rotate_bytes = parse_rotate_size(flags.rotate_size);
  opt.fsync = parse_fsync(flags.fsync);
  opt.metrics = flags.metrics;
  opt.metrics_allow_remote = flags.metrics_allow_remote;
  if (flags.metrics_max_connections == 0)
    bad_value("--metrics-max-connections 0: expected at least 1");
  opt.metrics_max_connections = flags.metrics_max_connections;
  opt.retention.files = flags.keep;
  opt.retention.bytes = parse_keep_size(flags.keep_size);
  opt.signing = signing_options(flags);
  if (!flags.events.empty() && flags.events != "journal")
    bad_value("--events " + flags.events + ": expected journal");
  opt.journal = flags.events == "journal";
  return opt;
}

po::options_description collect_options(CollectFlags& f) {
  po::options_description options(
      "Usage: enclosure collect --listen unix:PATH --audit-log FILE [options]\n\n"
      "Accepts launchers (`enclosure run --events unix:PATH`) on a unix socket and appends every\n"
      "record to FILE, a hash-chained JSON Lines audit log (`enclosure audit verify` checks it).\n"
      "The records that matter (start, deny, budget, rule, exit, lost) are on disk (fsync) before\n"
      "the launcher is told so. FILE is rotated by size (FILE -> FILE.1 -> FILE.2 ...) without\n"
      "breaking the chain; FILE.head beside it records how far the collector wrote. SIGTERM or\n"
      "SIGINT stop it cleanly. Exit status: 0 after a clean stop, 1 when it cannot start or "
      "write.\n\n"
      "Options");
  options.add_options()("help,h", "show this help")(
      "listen", po::value(&f.listen), "unix:PATH, the socket launchers connect to (required)")(
      "audit-log", po::value(&f.audit_log), "the audit log file (created 0600; required)")(
      "metrics", po::value(&f.metrics),
      "HOST:PORT to serve GET /metrics in the Prometheus text format (loopback: 127.0.0.1:9464, "
      "[::1]:9464; port 0 picks a free one)")("metrics-allow-remote",
                                              "allow --metrics on a non-loopback address")(
      "socket-mode", po::value(&f.socket_mode)->default_value("0660"),
      "permissions of the socket (octal); who may connect is who may write audit records")(
      "socket-group", po::value(&f.socket_group),
      "the socket's group (name or gid): launchers of users in it may connect (mode 0660); "
      "pods with their own user namespace (hostUsers: false) need --socket-mode 0666, and every "
      "record names the connecting process's uid, pid and cgroup")(
      "rotate-size", po::value(&f.rotate_size)->default_value("64MiB"),
      "rotate FILE when it reaches this size (0: never)")(
      "keep", po::value(&f.keep)->default_value(0),
      "rotated files kept (FILE.1 ... FILE.N); at a rotation older ones are deleted and the new "
      "file's rotation record names them with their last hash, so `audit verify` still checks "
      "what is kept (0: keep all)")(
      "keep-size", po::value(&f.keep_size)->default_value("0"),
      "total size of the rotated files kept; the newest is always kept (0: no limit)")(
      "metrics-max-connections", po::value(&f.metrics_max_connections)->default_value(64),
      "metrics connections served at once; more wait in the listen backlog (each connection is "
      "closed 5s after it was accepted)")(
      "fsync", po::value(&f.fsync)->default_value("durable"),
      "durable: the records that matter are fsync'd before they are acknowledged, the rest every "
      "second; interval: everything is acknowledged once written and fsync'd every second")(
      "sign-key", po::value(&f.sign_key),
      "Ed25519 private key (PEM, mode 0600 or 0400; `openssl genpkey -algorithm ed25519`): a "
      "signed head record is appended at start, at every rotation (the rotated file's last "
      "line), every --sign-interval while records arrive, and at shutdown; `audit verify --key "
      "PUB` checks them")("sign-interval", po::value(&f.sign_interval)->default_value("5m"),
                          "how often a signed head is written while records arrive")(
      "next-key", po::value(&f.next_key),
      "the public key (PEM) of the key that will replace --sign-key: every head names it "
      "(next_key_id), so `audit verify` given only the current key accepts heads of the next");
  options.add_options()("events", po::value(&f.events),
                        "journal: every run record also goes to the systemd journal (native "
                        "protocol, as `run --events journal`), besides the audit log");
  return options;
}

}  // namespace

int command_collect(const Args& args) {
  CollectFlags flags;
  po::options_description options = collect_options(flags);
  po::variables_map vm;
  if (std::optional<int> done =
          parse_options_only("collect", args, options, vm, exit_code::kInvalid)) {
    return *done;
  }
  if (flags.listen.rfind("unix:", 0) != 0 || flags.listen.size() <= 5) {
    return usage_error("collect", "--listen unix:PATH is required", exit_code::kInvalid);
  }
  if (flags.audit_log.empty()) {
    return usage_error("collect", "--audit-log FILE is required", exit_code::kInvalid);
  }
  flags.metrics_allow_remote = vm.count("metrics-allow-remote") > 0;
  CollectorOptions opt = collector_options(flags);
  try {
    Collector collector(opt);
    return collector.run();
  } catch (const LaunchError& e) {
    // A collector that cannot start or write exits 1 (other exceptions: cli/main.cc).
    throw LaunchError(e.what(), exit_code::kFailure);
  }
}

}  // namespace launcher
