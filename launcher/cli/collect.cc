// enclosure collect --listen unix:PATH --audit-log FILE [--metrics HOST:PORT] [--socket-mode 0660]
//                   [--rotate-size 64MiB] [--fsync durable|interval]
// The collector: accepts many launchers and writes the hash-chained audit log.
#include <boost/program_options.hpp>

#include <iostream>

#include "launcher/events/collector.h"
#include "launcher/cli/commands.h"
#include "launcher/base/error.h"
#include "policy/units.h"

namespace po = boost::program_options;

namespace launcher {

int command_collect(const Args& args) {
  std::string listen, audit_log, metrics, socket_mode = "0660", rotate_size = "64MiB",
                                          fsync = "durable";
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
      "listen", po::value(&listen), "unix:PATH, the socket launchers connect to (required)")(
      "audit-log", po::value(&audit_log), "the audit log file (created 0600; required)")(
      "metrics", po::value(&metrics),
      "HOST:PORT to serve GET /metrics in the Prometheus text format (loopback: 127.0.0.1:9464, "
      "[::1]:9464; port 0 picks a free one)")("metrics-allow-remote",
                                              "allow --metrics on a non-loopback address")(
      "socket-mode", po::value(&socket_mode)->default_value("0660"),
      "permissions of the socket (octal); who may connect is who may write audit records")(
      "rotate-size", po::value(&rotate_size)->default_value("64MiB"),
      "rotate FILE when it reaches this size (0: never)")(
      "fsync", po::value(&fsync)->default_value("durable"),
      "durable: the records that matter are fsync'd before they are acknowledged, the rest every "
      "second; interval: everything is acknowledged once written and fsync'd every second");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "enclosure collect: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  CollectorOptions opt;
  if (listen.rfind("unix:", 0) != 0 || listen.size() <= 5) {
    std::cerr << "enclosure collect: --listen unix:PATH is required\n" << options;
    return 2;
  }
  opt.socket_path = listen.substr(5);
  if (audit_log.empty()) {
    std::cerr << "enclosure collect: --audit-log FILE is required\n" << options;
    return 2;
  }
  opt.audit_log = audit_log;
  char* end = nullptr;
  unsigned long mode = std::strtoul(socket_mode.c_str(), &end, 8);
  if (socket_mode.empty() || *end != '\0' || mode > 0777) {
    std::cerr << "enclosure collect: --socket-mode " << socket_mode
              << ": expected octal permissions like 0660\n";
    return 2;
  }
  opt.socket_mode = static_cast<mode_t>(mode);
  if (rotate_size == "0") {
    opt.rotate_bytes = 0;
  } else {
    policy::Parsed<uint64_t> size = policy::parse_size(rotate_size);
    if (!size || *size.value < 4096) {
      std::cerr << "enclosure collect: --rotate-size " << rotate_size
                << ": expected a size of at least 4KiB, or 0\n";
      return 2;
    }
    opt.rotate_bytes = *size.value;
  }
  if (fsync == "durable") {
    opt.fsync = FsyncPolicy::durable;
  } else if (fsync == "interval") {
    opt.fsync = FsyncPolicy::interval;
  } else {
    std::cerr << "enclosure collect: --fsync " << fsync << ": expected durable or interval\n";
    return 2;
  }
  opt.metrics = metrics;
  opt.metrics_allow_remote = vm.count("metrics-allow-remote") > 0;
  try {
    Collector collector(opt);
    return collector.run();
  } catch (const std::exception& e) {
    std::cerr << "enclosure collect: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace launcher
