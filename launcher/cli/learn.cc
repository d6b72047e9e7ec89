// enclosure learn -o OUT [-m BASE] [--headroom 2.0] [--profile FILE] [--timeout 10m]
//                 [--dns-upstream ADDR:PORT] -- CMD [ARG]...
// Runs CMD observed (every exec, open, connect, DNS name and syscall recorded, broad read access,
// any destination), then writes a least-privilege manifest and a behaviour profile.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/program_options.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "launcher/cli/options.h"
#include "launcher/daemon/client.h"
#include "launcher/daemon/layers.h"
#include "launcher/daemon/protocol.h"
#include "launcher/run/enclosure.h"
#include "launcher/run/local_layers.h"
#include "policy/compile.h"
#include "policy/learn.h"
#include "policy/observation_manifest.h"
#include "policy/path.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

using Event = nlohmann::ordered_json;

struct LearnOptions {
  std::vector<std::string> command;
  std::string out;
  std::string base_path;
  std::string profile_path;
  std::string timeout = "10m";
  std::string upstream;
  double headroom = 2.0;
};

int64_t event_time_ms(const std::string& ts) {
  // "2026-11-28T16:02:44.123456789Z"
  struct tm tm {};
  if (ts.size() < 23 || !strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  int64_t ms = std::atoi(ts.substr(20, 3).c_str());
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

std::string join_path(const std::string& cwd, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  std::vector<std::string> segments = policy::path_segments(cwd);
  for (const std::string& s : policy::path_segments(path)) {
    if (s == ".") continue;
    if (s == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    segments.push_back(s);
  }
  std::string out;
  for (const std::string& s : segments)
    out += "/" + s;
  return out.empty() ? "/" : out;
}

// Writes `text` to `path` (created or truncated). Throws LaunchError naming the file when the
// write does not complete.
void write_text_file(const std::string& path, const std::string& text) {
  errno = 0;
  std::ofstream file(path, std::ios::trunc);
  file << text;
  file.close();
  if (!file) {
    throw LaunchError(
        path + ": cannot write: " + (errno ? std::strerror(errno) : "the write did not complete"));
  }
}

// Fills `opt`; returns the exit status when the command is already done (--help, usage error).
std::optional<int> parse_options(const Args& all_args, LearnOptions& opt) {
  Args args;
  split_at_double_dash(all_args, args, opt.command);
  bool dash_given = has_double_dash(all_args);
  po::options_description options(
      "Usage: enclosure learn -o OUT [options] -- CMD [ARG]...\n\n"
      "Runs CMD observed — read access to the whole host, writes in the working directory and\n"
      "a private /tmp (only the working directory when it is in /tmp), any destination, every\n"
      "exec, open, connect, DNS name and syscall recorded — and writes a least-privilege\n"
      "manifest to OUT and a behaviour profile (for `baseline`).\n"
      "Paths are collapsed to directories (never \"/\", /etc or a home directory as a whole);\n"
      "paths that look like credentials are left out and named in metadata.reason. Review the\n"
      "result (`enclosure explain OUT`, `enclosure diff BASE OUT`) before approving it.\n"
      "Exit status: 0, the command's own status when it failed, 125 on a launcher "
      "error.\n\nOptions");
  options.add_options()("help,h", "show this help")("output,o", po::value(&opt.out),
                                                    "the manifest to write")(
      "manifest,m", po::value(&opt.base_path),
      "a base manifest: its metadata is kept, and sections the run "
      "does not exercise keep its grants")("headroom", po::value(&opt.headroom)->default_value(2.0),
                                           "budgets = observed x headroom")(
      "profile", po::value(&opt.profile_path),
      "where to write the behaviour profile (default OUT.profile.json)")(
      "timeout", po::value(&opt.timeout)->default_value("10m"), "wall clock of the observed run")(
      "dns-upstream", po::value(&opt.upstream),
      "upstream resolver ADDR[:PORT] (default: /etc/resolv.conf)");
  po::variables_map vm;
  if (std::optional<int> done =
          parse_options_only("learn", args, options, vm, exit_code::kLaunchError, !dash_given)) {
    return done;
  }
  if (opt.out.empty() || opt.command.empty()) {
    return usage_error("learn", "-o OUT and a command after -- are required",
                       exit_code::kLaunchError);
  }
  if (!std::isfinite(opt.headroom) || opt.headroom < 1.0 || opt.headroom > 100.0) {
    std::cerr << "enclosure learn: --headroom: expected a factor from 1 to 100\n";
    return exit_code::kLaunchError;
  }
  if (opt.profile_path.empty()) opt.profile_path = opt.out + ".profile.json";
  return std::nullopt;
}

// The command's executable, found the way a shell would, as an absolute path.
std::string find_command_path(const std::string& command, const std::string& cwd) {
  std::string path = command;
  if (path.find('/') == std::string::npos) {
    const char* search = std::getenv("PATH");
    std::istringstream dirs(search ? search : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      std::string candidate = dir + "/" + path;
      if (::access(candidate.c_str(), X_OK) == 0) {
        path = candidate;
        break;
      }
    }
  }
  return join_path(cwd, path);
}

// What the observed run did, from its events as they are emitted.
class RunObserver {
 public:
  RunObserver(const LearnOptions& opt, std::string command_path, std::string cwd) {
    o_.command = opt.command;
    o_.command_path = std::move(command_path);
    o_.cwd = std::move(cwd);
  }

  void on_event(const Event& e) {
    std::string type = e.value("type", "");
    int64_t second = event_time_ms(e.value("ts", "")) / 1000;
    if (type == "exec") {
      on_exec(e, second);
    } else if (type == "open" && !e.contains("path_hex")) {
      on_open(e, second);
    } else if (type == "connect") {
      on_connect(e, second);
    } else if (type == "dns" && e.value("result", "") == "answered") {
      o_.dns_names.insert(e.value("name", ""));
    } else if (type == "window") {
      on_window(e);
    } else if (type == "exit") {
      on_exit(e);
    }
  }

  bool exited() const { return exited_; }
  // The observation, with the directories born during the run (since `started`) and the peaks
  // per one-second window.
  policy::Observation finish(const struct timespec& started);

 private:
  void on_exec(const Event& e, int64_t second);
  void on_open(const Event& e, int64_t second);
  void on_connect(const Event& e, int64_t second);
  void on_window(const Event& e);
  void on_exit(const Event& e);
  void note_created_dirs(const struct timespec& started);

  policy::Observation o_;
  std::map<int64_t, std::map<std::string, uint64_t>> windows_;
  bool exited_ = false;
};

void RunObserver::on_exec(const Event& e, int64_t second) {
  std::string path = e.value("path", "");
  if (path.empty()) return;
  ++o_.execs[join_path(o_.cwd, path)];
  ++windows_[second]["execs"];
}

void RunObserver::on_open(const Event& e, int64_t second) {
  std::string flags = e.value("flags", "");
  policy::ObservedOpen f;
  f.path = join_path(o_.cwd, e.value("path", ""));
  f.write =
      flags.find("O_WRONLY") != std::string::npos || flags.find("O_RDWR") != std::string::npos ||
      flags.find("O_CREAT") != std::string::npos || flags.find("O_TRUNC") != std::string::npos;
  f.directory = flags.find("O_DIRECTORY") != std::string::npos;
  f.ok = e.value("ok", false);
  if (!e.contains("dirfd")) o_.opens.push_back(f);
  ++windows_[second]["opens"];
}

void RunObserver::on_connect(const Event& e, int64_t second) {
  policy::ObservedConnect c;
  c.address = e.value("address", "");
  c.port = static_cast<uint16_t>(e.value("port", 0));
  c.protocol = e.value("protocol", "tcp") == "udp" ? policy::Protocol::udp : policy::Protocol::tcp;
  c.name = e.value("name", "");
  o_.connects.push_back(c);
  ++windows_[second]["connects"];
}

void RunObserver::on_window(const Event& e) {
  for (const char* metric : {"syscalls", "opens", "connects", "execs"}) {
    if (e.contains(metric)) {
      o_.profile.peaks[metric] = std::max(o_.profile.peaks[metric], e[metric].get<uint64_t>());
    }
  }
}

void RunObserver::on_exit(const Event& e) {
  exited_ = true;
  o_.duration_ns = e.value("duration_ns", uint64_t{0});
  const Event b = e.value("budgets", Event::object());
  if (b.contains("syscalls")) o_.syscall_count = b["syscalls"].value("value", uint64_t{0});
  if (b.contains("syscall_histogram")) {
    uint64_t total = 0;
    for (const auto& [name, count] : b["syscall_histogram"].items()) {
      o_.syscalls.insert(name);
      total += count.get<uint64_t>();
    }
    o_.syscall_count = std::max(o_.syscall_count, total);
  }
  if (b.contains("processes"))
    o_.peak_processes = b["processes"].value("peak_sampled", uint64_t{0});
  if (b.contains("cpu_usec")) o_.cpu_ns = b["cpu_usec"].get<uint64_t>() * 1000;
  if (b.contains("memory_peak_bytes"))
    o_.peak_memory_bytes = b["memory_peak_bytes"].get<uint64_t>();
}

// Directories born during the run (statx birth time): a learned write grant must name the
// ancestor that existed before, or the next run could not create them.
void RunObserver::note_created_dirs(const struct timespec& started) {
  for (const policy::ObservedOpen& f : o_.opens) {
    if (!f.write || !f.ok) continue;
    for (std::string dir = f.directory ? f.path : policy::parent_path(f.path); dir != "/";
         dir = policy::parent_path(dir)) {
      struct statx stx {};
      if (::statx(AT_FDCWD, dir.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &stx) != 0 ||
          !(stx.stx_mask & STATX_BTIME))
        break;
      bool born_during = stx.stx_btime.tv_sec > started.tv_sec ||
                         (stx.stx_btime.tv_sec == started.tv_sec &&
                          stx.stx_btime.tv_nsec >= static_cast<uint32_t>(started.tv_nsec));
      if (!born_during) break;
      o_.created_dirs.insert(dir);
    }
  }
}

policy::Observation RunObserver::finish(const struct timespec& started) {
  note_created_dirs(started);
  for (const auto& [second, counts] : windows_) {
    for (const auto& [metric, count] : counts) {
      if (metric != "syscalls")
        o_.profile.peaks[metric] = std::max(o_.profile.peaks[metric], count);
    }
  }
  for (const char* metric : {"opens", "connects", "execs"})
    o_.profile.peaks.emplace(metric, 0);
  return o_;
}

// The observation run, in this process: the enclosure `enclosure run --observe` would start,
// its events both in `events_file` and handed to `observer`. Returns its exit status; a
// launcher error is reported as `enclosure run` reports it.
int run_observed(const std::string& manifest_file, const std::string& events_file,
                 const LearnOptions& opt, const std::string& command_path, RunObserver& observer) {
  try {
    policy::Manifest manifest;
    try {
      manifest = load_manifest_or_throw(manifest_file, {}, /*allow_unresolved=*/false);
    } catch (const InvalidManifest& e) {
      throw InvalidManifest(e.diagnostics(), "the manifest is invalid; the agent was not started");
    }
    policy::CompileResult compiled = policy::compile(manifest);
    if (!compiled.plan) throw InvalidManifest({}, manifest_file + ": " + compiled.error);
    EnclosureOptions options;
    options.command = {command_path};
    options.command.insert(options.command.end(), opt.command.begin() + 1, opt.command.end());
    options.events = {events_file};
    options.dns_upstream = opt.upstream;
    options.observe = true;
    options.default_daemon_socket = kDefaultDaemonSocket;
    options.on_event = [&observer](const Event& e) { observer.on_event(e); };
    Enclosure enclosure(manifest, std::move(*compiled.plan), std::move(options));
    std::string socket = daemon_socket_for("");
    if (socket.empty()) return enclosure.run(std::make_unique<LocalLayers>());
    return enclosure.run(std::make_unique<DaemonLayers>(socket));
  } catch (const InvalidManifest& e) {
    print_invalid_manifest("run", e);
    return exit_code::kLaunchError;
  } catch (const LaunchError& e) {
    std::cerr << "enclosure run: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "enclosure run: " << e.what() << "\n";
    return exit_code::kLaunchError;
  }
}

// The learned manifest and profile, written; what was observed, on stderr.
void write_learned(const LearnOptions& opt, const policy::Observation& o,
                   const std::optional<policy::Manifest>& base) {
  char date[32];
  time_t now = ::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  policy::LearnOptions learn{opt.headroom, base ? base->metadata.name : "learned", date};
  policy::LearnResult learned = policy::learn_manifest(o, learn, base);
  // The profile next to the manifest, named by it.
  learned.manifest["baseline"] = {{"profile", policy::check_absolute_path(opt.profile_path).empty()
                                                  ? opt.profile_path
                                                  : join_path(o.cwd, opt.profile_path)},
                                  {"tolerance", 3.0},
                                  {"action", "alert"}};
  write_text_file(opt.out, learned.manifest.dump(2) + "\n");
  // The command line it was learned from is text for people: bytes that are not UTF-8 are
  // replaced (U+FFFD) rather than refused.
  write_text_file(
      opt.profile_path,
      learned.profile.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  std::cerr << "enclosure learn: wrote " << opt.out << " and " << opt.profile_path << " ("
            << o.execs.size() << " programs, " << o.opens.size() << " opens, " << o.connects.size()
            << " connections, " << o.syscalls.size() << " syscalls observed)\n";
  for (const std::string& f : learned.flagged)
    std::cerr << "  left out (looks like a secret): " << f << "\n";
  for (const std::string& n : learned.notes)
    std::cerr << "  " << n << "\n";
}

}  // namespace

// Errors end at the command boundary (cli/main.cc) as "enclosure learn: ..." and exit 125.
int command_learn(const Args& all_args) {
  LearnOptions opt;
  if (std::optional<int> done = parse_options(all_args, opt)) return *done;
  std::optional<policy::Manifest> base;
  if (!opt.base_path.empty()) base = load_manifest_or_throw(opt.base_path, {}, false);
  char cwd_buf[4096];
  std::string cwd = ::getcwd(cwd_buf, sizeof cwd_buf) ? cwd_buf : "/";
  std::string command_path = find_command_path(opt.command[0], cwd);

  policy::ObservationManifest observation =
      policy::observation_manifest(cwd, command_path, opt.timeout);
  if (!observation.error.empty()) throw LaunchError(observation.error);
  char dir_template[] = "/tmp/enclosure-learn-XXXXXX";
  if (!::mkdtemp(dir_template)) throw_errno("mkdtemp");
  std::string work = dir_template;
  std::string manifest_file = work + "/observe.json", events_file = work + "/events.jsonl";
  write_text_file(manifest_file, observation.manifest.dump(2));
  RunObserver observer(opt, command_path, cwd);
  struct timespec started {};
  clock_gettime(CLOCK_REALTIME, &started);
  int status = run_observed(manifest_file, events_file, opt, command_path, observer);
  if (!observer.exited()) {
    std::cerr << "enclosure learn: the observed run did not complete (exit " << status
              << "); events are in " << events_file << "\n";
    return status == 0 ? exit_code::kLaunchError : status;
  }
  policy::Observation o = observer.finish(started);
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  write_learned(opt, o, base);
  return status;
}

}  // namespace launcher
