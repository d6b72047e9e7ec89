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

#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/manifest_file.h"
#include "policy/learn.h"
#include "policy/path.h"
#include "policy/units.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

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

// The observation manifest: broad read access, writes in the working directory, any
// destination (names answered by the resolver in observe mode), every record switched on.
nlohmann::json observation_manifest(const std::string& cwd, const std::string& command_path,
                                    const std::string& timeout) {
  nlohmann::json m = {
      {"apiVersion", "enclosure/v1"},
      {"metadata", {{"name", "learn"}, {"reason", "observation run of enclosure learn"}}},
      {"filesystem", {{"read", {"/"}}, {"tmpfs", {"/tmp"}}}},
      {"tools", {{{"name", "command"}, {"path", command_path}}}},
      {"process", {{"cwd", cwd}, {"env", {{"pass", {"PATH", "LANG", "TERM", "HOME"}}}}}},
      {"network",
       {{"mode", "filtered"},
        {"dns", true},
        {"egress",
         {{{"cidr", "0.0.0.0/0"}, {"ports", {"1-65535"}}, {"protocol", "tcp"}},
          {{"cidr", "0.0.0.0/0"}, {"ports", {"1-65535"}}, {"protocol", "udp"}},
          {{"cidr", "::/0"}, {"ports", {"1-65535"}}, {"protocol", "tcp"}},
          {{"cidr", "::/0"}, {"ports", {"1-65535"}}, {"protocol", "udp"}}}}}},
      {"syscalls", {{"profile", "default"}}},
      {"budgets", {{"wall_clock", timeout}}},
      {"audit", {{"files", true}, {"syscalls", true}}}};
  if (cwd != "/" && policy::check_absolute_path(cwd).empty()) m["filesystem"]["write"] = {cwd};
  return m;
}

}  // namespace

int command_learn(const Args& all_args) {
  Args args;
  std::vector<std::string> command;
  split_at_double_dash(all_args, args, command);
  po::options_description options(
      "Usage: enclosure learn -o OUT [options] -- CMD [ARG]...\n\n"
      "Runs CMD observed — read access to the whole host, writes in the working directory and\n"
      "/tmp, any destination, every exec, open, connect, DNS name and syscall recorded — and\n"
      "writes a least-privilege manifest to OUT and a behaviour profile (for `baseline`).\n"
      "Paths are collapsed to directories (never \"/\", /etc or a home directory as a whole);\n"
      "paths that look like credentials are left out and named in metadata.reason. Review the\n"
      "result (`enclosure explain OUT`, `enclosure diff BASE OUT`) before approving it.\n"
      "Exit status: 0, the command's own status when it failed, 125 on a launcher "
      "error.\n\nOptions");
  std::string out, base_path, profile_path, timeout = "10m", upstream;
  double headroom = 2.0;
  options.add_options()("help,h", "show this help")("output,o", po::value(&out),
                                                    "the manifest to write")(
      "manifest,m", po::value(&base_path),
      "a base manifest: its metadata is kept, and sections the run "
      "does not exercise keep its grants")("headroom", po::value(&headroom)->default_value(2.0),
                                           "budgets = observed x headroom")(
      "profile", po::value(&profile_path),
      "where to write the behaviour profile (default OUT.profile.json)")(
      "timeout", po::value(&timeout)->default_value("10m"), "wall clock of the observed run")(
      "dns-upstream", po::value(&upstream),
      "upstream resolver ADDR[:PORT] (default: /etc/resolv.conf)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "enclosure learn: " << e.what() << "\n" << options;
    return 125;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (out.empty() || command.empty()) {
    std::cerr << "enclosure learn: -o OUT and a command after -- are required\n" << options;
    return 125;
  }
  if (!std::isfinite(headroom) || headroom < 1.0 || headroom > 100.0) {
    std::cerr << "enclosure learn: --headroom: expected a factor from 1 to 100\n";
    return 125;
  }
  if (profile_path.empty()) profile_path = out + ".profile.json";
  std::optional<policy::Manifest> base;
  if (!base_path.empty()) {
    LoadedManifest loaded = load_manifest_file(base_path, {}, {.allow_unresolved = false});
    if (!loaded.manifest) {
      for (const std::string& e : loaded.errors)
        std::cerr << e << "\n";
      return 125;
    }
    base = loaded.manifest;
  }
  // The command's executable, found the way a shell would.
  std::string command_path = command[0];
  if (command_path.find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      std::string candidate = dir + "/" + command_path;
      if (::access(candidate.c_str(), X_OK) == 0) {
        command_path = candidate;
        break;
      }
    }
  }
  char cwd_buf[4096];
  std::string cwd = ::getcwd(cwd_buf, sizeof cwd_buf) ? cwd_buf : "/";
  command_path = join_path(cwd, command_path);

  char dir_template[] = "/tmp/enclosure-learn-XXXXXX";
  if (!::mkdtemp(dir_template)) {
    std::cerr << "enclosure learn: mkdtemp: " << std::strerror(errno) << "\n";
    return 125;
  }
  std::string work = dir_template;
  std::string manifest_file = work + "/observe.json", events_file = work + "/events.jsonl";
  std::ofstream(manifest_file) << observation_manifest(cwd, command_path, timeout).dump(2);
  Args run_args = {"--observe", "-m", manifest_file, "--events", events_file};
  if (!upstream.empty()) run_args.insert(run_args.end(), {"--dns-upstream", upstream});
  run_args.push_back("--");
  run_args.push_back(command_path);
  run_args.insert(run_args.end(), command.begin() + 1, command.end());
  struct timespec started {};
  clock_gettime(CLOCK_REALTIME, &started);
  int status = command_run(run_args);

  // What the run did.
  policy::Observation o;
  o.command = command;
  o.command_path = command_path;
  o.cwd = cwd;
  std::map<std::string, std::string> address_names;
  std::map<int64_t, std::map<std::string, uint64_t>> windows;
  std::ifstream in(events_file);
  std::string line;
  bool exited = false;
  while (std::getline(in, line)) {
    nlohmann::json e;
    try {
      e = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      continue;
    }
    std::string type = e.value("type", "");
    int64_t second = event_time_ms(e.value("ts", "")) / 1000;
    if (type == "exec") {
      std::string path = e.value("path", "");
      if (!path.empty()) {
        ++o.execs[join_path(cwd, path)];
        ++windows[second]["execs"];
      }
    } else if (type == "open" && !e.contains("path_hex")) {
      std::string flags = e.value("flags", "");
      policy::ObservedOpen f;
      f.path = join_path(cwd, e.value("path", ""));
      f.write = flags.find("O_WRONLY") != std::string::npos ||
                flags.find("O_RDWR") != std::string::npos ||
                flags.find("O_CREAT") != std::string::npos ||
                flags.find("O_TRUNC") != std::string::npos;
      f.directory = flags.find("O_DIRECTORY") != std::string::npos;
      f.ok = e.value("ok", false);
      if (!e.contains("dirfd")) o.opens.push_back(f);
      ++windows[second]["opens"];
    } else if (type == "connect") {
      policy::ObservedConnect c;
      c.address = e.value("address", "");
      c.port = static_cast<uint16_t>(e.value("port", 0));
      c.protocol =
          e.value("protocol", "tcp") == "udp" ? policy::Protocol::udp : policy::Protocol::tcp;
      c.name = e.value("name", "");
      o.connects.push_back(c);
      ++windows[second]["connects"];
    } else if (type == "dns" && e.value("result", "") == "answered") {
      o.dns_names.insert(e.value("name", ""));
    } else if (type == "window") {
      for (const char* metric : {"syscalls", "opens", "connects", "execs"}) {
        if (e.contains(metric)) {
          o.profile.peaks[metric] = std::max(o.profile.peaks[metric], e[metric].get<uint64_t>());
        }
      }
    } else if (type == "exit") {
      exited = true;
      o.duration_ns = e.value("duration_ns", uint64_t{0});
      const nlohmann::json& b = e.value("budgets", nlohmann::json::object());
      if (b.contains("syscalls")) o.syscall_count = b["syscalls"].value("value", uint64_t{0});
      if (b.contains("syscall_histogram")) {
        uint64_t total = 0;
        for (const auto& [name, count] : b["syscall_histogram"].items()) {
          o.syscalls.insert(name);
          total += count.get<uint64_t>();
        }
        o.syscall_count = std::max(o.syscall_count, total);
      }
      if (b.contains("processes"))
        o.peak_processes = b["processes"].value("peak_sampled", uint64_t{0});
      if (b.contains("cpu_usec")) o.cpu_ns = b["cpu_usec"].get<uint64_t>() * 1000;
      if (b.contains("memory_peak_bytes"))
        o.peak_memory_bytes = b["memory_peak_bytes"].get<uint64_t>();
    }
  }
  // Directories born during the run (statx birth time): a learned write grant must name the
  // ancestor that existed before, or the next run could not create them.
  for (const policy::ObservedOpen& f : o.opens) {
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
      o.created_dirs.insert(dir);
    }
  }
  for (const auto& [second, counts] : windows) {
    for (const auto& [metric, count] : counts) {
      if (metric != "syscalls") o.profile.peaks[metric] = std::max(o.profile.peaks[metric], count);
    }
  }
  for (const char* metric : {"opens", "connects", "execs"})
    o.profile.peaks.emplace(metric, 0);
  std::error_code ec;
  if (!exited) {
    std::cerr << "enclosure learn: the observed run did not complete (exit " << status
              << "); events are in " << events_file << "\n";
    return status == 0 ? 125 : status;
  }
  char date[32];
  time_t now = ::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  policy::LearnOptions opts{headroom, base ? base->metadata.name : "learned", date};
  policy::LearnResult learned = policy::learn_manifest(o, opts, base);
  // The profile next to the manifest, named by it.
  learned.manifest["baseline"] = {
      {"profile", policy::check_absolute_path(profile_path).empty() ? profile_path
                                                                    : join_path(cwd, profile_path)},
      {"tolerance", 3.0},
      {"action", "alert"}};
  std::ofstream(out) << learned.manifest.dump(2) << "\n";
  std::ofstream(profile_path) << learned.profile.dump(2) << "\n";
  std::cerr << "enclosure learn: wrote " << out << " and " << profile_path << " (" << o.execs.size()
            << " programs, " << o.opens.size() << " opens, " << o.connects.size()
            << " connections, " << o.syscalls.size() << " syscalls observed)\n";
  for (const std::string& f : learned.flagged)
    std::cerr << "  left out (looks like a secret): " << f << "\n";
  for (const std::string& n : learned.notes)
    std::cerr << "  " << n << "\n";
  std::filesystem::remove_all(work, ec);
  return status;
}

}  // namespace launcher
