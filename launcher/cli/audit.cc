// enclosure audit verify FILE... [--require-closed] [--all] [--json]
// enclosure audit show FILE... [--run ID] [--type T]... [--since RFC3339] [--json]
// Reads audit logs written by `enclosure collect` (files oldest first: FILE.2 FILE.1 FILE).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <boost/program_options.hpp>

#include <iostream>
#include <optional>

#include "launcher/events/audit_chain.h"
#include "launcher/events/audit_timeline.h"
#include "launcher/cli/options.h"
#include "launcher/cli/commands.h"
#include "launcher/base/error.h"
#include "launcher/base/fd.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

constexpr int kIntact = 0;
constexpr int kBroken = 1;
constexpr int kUsage = 2;

std::optional<std::string> read_whole(int fd) {
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// The files and their heads, read under the heads' shared locks so that a running collector
// is never seen between writing a file and updating its head.
bool read_inputs(const std::vector<std::string>& files, std::vector<AuditInput>& inputs,
                 std::string& error) {
  std::vector<UniqueFd> heads;
  for (const std::string& f : files) {
    UniqueFd head(::open((f + ".head").c_str(), O_RDONLY | O_CLOEXEC));
    if (head) {
      while (::flock(head.get(), LOCK_SH) != 0 && errno == EINTR) {
      }
    }
    heads.push_back(std::move(head));
  }
  for (size_t i = 0; i < files.size(); ++i) {
    UniqueFd fd(::open(files[i].c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      error = files[i] + ": " + std::strerror(errno);
      return false;
    }
    std::optional<std::string> content = read_whole(fd.get());
    if (!content) {
      error = files[i] + ": read: " + std::strerror(errno);
      return false;
    }
    AuditInput in;
    in.name = files[i];
    in.content = std::move(*content);
    if (heads[i]) {
      std::optional<std::string> text = read_whole(heads[i].get());
      std::string why;
      if (text && !text->empty()) in.head = AuditHead::parse(*text, why);
      if (text && !text->empty() && !in.head) {
        error = files[i] + ".head: " + why;
        return false;
      }
    }
    inputs.push_back(std::move(in));
  }
  return true;
}

bool parse_files(const std::string& command, const po::options_description& options,
                 const Args& args, po::variables_map& vm, std::vector<std::string>& files,
                 int& status) {
  if (auto done =
          parse_command_line("audit " + command, args, options, po::value(&files), -1, vm)) {
    status = *done;
    return false;
  }
  if (files.empty()) {
    std::cerr << "enclosure audit " << command << ": no audit log given\n" << options;
    status = kUsage;
    return false;
  }
  return true;
}

int audit_verify(const Args& args) {
  po::options_description options(
      "Usage: enclosure audit verify [options] FILE...\n\n"
      "Checks audit logs written by `enclosure collect`, files oldest first (FILE.2 FILE.1 FILE):\n"
      "the hash chain is intact from line to line and file to file; each run begins with its\n"
      "start, its seq has no gap (or a `lost` record covers it) and nothing follows its exit;\n"
      "FILE.head, when present, matches the end of FILE (no line cut off or appended).\n"
      "Exit status: 0 intact; 1 with the first bad line (FILE:LINE) and why; 2 usage error.\n\n"
      "Options");
  options.add_options()("help,h", "show this help")(
      "require-closed", "a run without an exit record is a failure too")(
      "all", "list every problem, not only the first")("json", "print the result as JSON");
  po::variables_map vm;
  std::vector<std::string> files;
  int status = 0;
  if (!parse_files("verify", options, args, vm, files, status)) return status;
  std::vector<AuditInput> inputs;
  std::string error;
  if (!read_inputs(files, inputs, error)) {
    std::cerr << "enclosure audit verify: " << error << "\n";
    return kUsage;
  }
  AuditVerification v = verify_audit(inputs);
  size_t open_runs = 0;
  for (const AuditRunSummary& r : v.runs)
    open_runs += r.closed ? 0 : 1;
  bool ok = v.ok() && (!vm.count("require-closed") || open_runs == 0);
  if (vm.count("json")) {
    nlohmann::json out = {
        {"ok", ok}, {"lines", v.lines}, {"continues_earlier_file", v.continues_earlier_file}};
    out["problems"] = nlohmann::json::array();
    for (const AuditProblem& p : v.problems) {
      out["problems"].push_back({{"file", inputs[p.file].name}, {"line", p.line}, {"why", p.why}});
    }
    out["runs"] = nlohmann::json::array();
    for (const AuditRunSummary& r : v.runs) {
      out["runs"].push_back({{"run", r.run},
                             {"manifest", r.manifest},
                             {"records", r.records},
                             {"lost", r.lost},
                             {"closed", r.closed},
                             {"ended_by", r.ended_by},
                             {"first", r.file + ":" + std::to_string(r.line)}});
    }
    std::cout << out.dump(2) << "\n";
    return ok ? kIntact : kBroken;
  }
  size_t shown = vm.count("all") ? v.problems.size() : std::min<size_t>(1, v.problems.size());
  for (size_t i = 0; i < shown; ++i) {
    const AuditProblem& p = v.problems[i];
    std::cout << inputs[p.file].name << ":" << p.line << ": " << p.why << "\n";
  }
  if (shown < v.problems.size()) {
    std::cout << "(" << v.problems.size() - shown << " more problem"
              << (v.problems.size() - shown == 1 ? "" : "s") << " after it; --all lists them)\n";
  }
  for (const AuditRunSummary& r : v.runs) {
    if (!r.closed) {
      std::cout << "open: run " << r.run << " (" << r.manifest << ", from " << r.file << ":"
                << r.line << "): no exit record: still running, or its launcher died\n";
    }
  }
  if (v.ok()) {
    std::cout << "intact: " << v.lines << " lines in " << files.size() << " file"
              << (files.size() == 1 ? "" : "s") << ", " << v.runs.size()
              << (v.runs.size() == 1 ? " run (" : " runs (") << v.runs.size() - open_runs
              << " closed, " << open_runs << " open)";
    if (v.continues_earlier_file)
      std::cout << "; the chain continues from an earlier file that was not given";
    std::cout << "\n";
  }
  return ok ? kIntact : kBroken;
}

int audit_show(const Args& args) {
  po::options_description options(
      "Usage: enclosure audit show [options] FILE...\n\n"
      "Prints the audit log (files oldest first) as a timeline per run: who started it, who\n"
      "approved the permission set and why, the context, the command, what it may read and\n"
      "write, its tools and network, then what it ran, opened, connected to, what was denied,\n"
      "and its budgets at exit. Collector records (refusals, restarts, rotations) follow.\n\n"
      "Options");
  std::string run, since;
  std::vector<std::string> types;
  options.add_options()("help,h", "show this help")("run", po::value(&run), "only this run")(
      "type", po::value(&types)->composing(),
      "only records of this type (repeatable, or comma-separated)")(
      "since", po::value(&since), "only records at or after this RFC 3339 time")(
      "json", "print the selected records as JSON Lines, unchanged");
  po::variables_map vm;
  std::vector<std::string> files;
  int status = 0;
  if (!parse_files("show", options, args, vm, files, status)) return status;
  TimelineFilter filter;
  filter.run = run;
  for (const std::string& t : types) {
    size_t start = 0;
    while (start <= t.size()) {
      size_t comma = t.find(',', start);
      std::string one =
          t.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!one.empty()) filter.types.insert(one);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (!since.empty()) {
    filter.since = parse_rfc3339(since);
    if (!filter.since) {
      std::cerr << "enclosure audit show: --since " << since
                << ": expected an RFC 3339 time (2026-11-28T16:02:44Z)\n";
      return kUsage;
    }
  }
  std::vector<AuditInput> inputs;
  std::string error;
  if (!read_inputs(files, inputs, error)) {
    std::cerr << "enclosure audit show: " << error << "\n";
    return kUsage;
  }
  std::vector<nlohmann::json> records;
  size_t unreadable = 0;
  for (const AuditInput& in : inputs) {
    std::string_view rest = in.content;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      nlohmann::json r = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
      if (r.is_discarded() || !r.is_object()) {
        ++unreadable;
        continue;
      }
      if (vm.count("json")) {
        if (timeline_selects(r, filter)) std::cout << line << "\n";
        continue;
      }
      records.push_back(std::move(r));
    }
  }
  if (!vm.count("json")) std::cout << render_timeline(records, filter);
  if (unreadable) {
    std::cerr << "enclosure audit show: " << unreadable
              << " lines are not JSON objects; `enclosure audit verify` says where\n";
  }
  return 0;
}

}  // namespace

int command_audit(const Args& args) {
  static const char* const kUsageText =
      "Usage: enclosure audit verify FILE...   check the hash chain and per-run sequence numbers\n"
      "       enclosure audit show FILE...     a readable timeline per run\n"
      "`enclosure audit verify --help` and `enclosure audit show --help` describe the options.\n";
  if (args.empty()) {
    std::cerr << kUsageText;
    return kUsage;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsageText;
    return 0;
  }
  Args rest(args.begin() + 1, args.end());
  if (args[0] == "verify") return audit_verify(rest);
  if (args[0] == "show") return audit_show(rest);
  std::cerr << "enclosure audit: unknown subcommand \"" << args[0] << "\"\n" << kUsageText;
  return kUsage;
}

}  // namespace launcher
