// enclosure audit verify FILE... [--key PUB.pem]... [--require-closed] [--all] [--json]
// enclosure audit show FILE... [--run ID] [--type T]... [--since RFC3339] [--json]
//                              [--format text|json|ocsf|ecs]
// Reads audit logs written by `enclosure collect` (files oldest first: FILE.2 FILE.1 FILE).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <boost/program_options.hpp>

#include <iostream>
#include <optional>
#include <set>

#include "launcher/base/error.h"
#include "launcher/base/exit_code.h"
#include "launcher/base/fd.h"
#include "launcher/base/file.h"
#include "launcher/cli/commands.h"
#include "launcher/cli/options.h"
#include "launcher/events/audit_chain.h"
#include "launcher/events/audit_nodes.h"
#include "launcher/events/audit_signing.h"
#include "launcher/events/audit_timeline.h"
#include "launcher/events/siem_formats.h"

namespace po = boost::program_options;

namespace launcher {
namespace {

constexpr int kIntact = exit_code::kSuccess;
constexpr int kBroken = exit_code::kFailure;
constexpr int kUsage = exit_code::kInvalid;

// Shared flock(2)s on the logs' heads, held while the logs are read so that a running collector
// is never seen between writing a file and updating its head. A head that cannot be opened is
// neither locked nor read.
std::vector<UniqueFd> lock_heads(const std::vector<std::string>& files) {
  std::vector<UniqueFd> heads;
  for (const std::string& f : files) {
    UniqueFd head(::open((f + ".head").c_str(), O_RDONLY | O_CLOEXEC));
    if (head) {
      while (::flock(head.get(), LOCK_SH) != 0 && errno == EINTR) {
      }
    }
    heads.push_back(std::move(head));
  }
  return heads;
}

AuditInput read_input(const std::string& file, bool has_head) {
  AuditInput in;
  in.name = file;
  in.content = read_file(file);
  if (has_head) {
    std::string text = read_file(file + ".head");
    std::string why;
    if (!text.empty()) in.head = AuditHead::parse(text, why);
    if (!text.empty() && !in.head) throw LaunchError(file + ".head: " + why, kUsage);
  }
  return in;
}

// The files and their heads, read under the heads' locks. A file that cannot be read is a
// usage error.
std::vector<AuditInput> read_inputs(const std::vector<std::string>& files) {
  std::vector<UniqueFd> heads = lock_heads(files);
  std::vector<AuditInput> inputs;
  try {
    for (size_t i = 0; i < files.size(); ++i)
      inputs.push_back(read_input(files[i], static_cast<bool>(heads[i])));
  } catch (const LaunchError& e) {
    throw LaunchError(e.what(), kUsage);
  }
  return inputs;
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
    status = usage_error("audit " + command, "no audit log given", kUsage);
    return false;
  }
  return true;
}

size_t open_runs(const AuditVerification& v) {
  size_t open = 0;
  for (const AuditRunSummary& r : v.runs)
    open += r.closed ? 0 : 1;
  return open;
}

nlohmann::json verification_json(const AuditVerification& v, const std::vector<AuditInput>& inputs,
                                 bool ok, const nlohmann::json& heads) {
  nlohmann::json out = {{"ok", ok},
                        {"lines", v.lines},
                        {"continues_earlier_file", v.continues_earlier_file},
                        {"signed_heads", heads}};
  if (!v.pruned_predecessor.empty()) out["pruned_predecessor"] = v.pruned_predecessor;
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
  return out;
}

// The first problem (every one with --all), the open runs, and the summary when intact.
void print_verification_text(const AuditVerification& v, const std::vector<AuditInput>& inputs,
                             bool all) {
  size_t shown = all ? v.problems.size() : std::min<size_t>(1, v.problems.size());
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
    size_t open = open_runs(v);
    std::cout << "intact: " << v.lines << " lines in " << inputs.size() << " file"
              << (inputs.size() == 1 ? "" : "s") << ", " << v.runs.size()
              << (v.runs.size() == 1 ? " run (" : " runs (") << v.runs.size() - open << " closed, "
              << open << " open)";
    if (!v.pruned_predecessor.empty())
      std::cout << "; the chain continues from " << v.pruned_predecessor
                << ", pruned by the collector's retention (its rotation record names it)";
    else if (v.continues_earlier_file)
      std::cout << "; the chain continues from an earlier file that was not given";
    std::cout << "\n";
  }
}

// The files of one node: the chain, the runs and the signed heads. Prints the verdict, or with
// --json stores it in `node_json` (prints it when that is null).
bool verify_node(const std::vector<AuditInput>& inputs, const std::vector<AuditKey>& keys,
                 const po::variables_map& vm, nlohmann::json* node_json) {
  AuditVerification v = verify_audit(inputs);
  AuditHeadReport heads = verify_audit_heads(inputs, keys, std::chrono::system_clock::now());
  merge_head_problems(v, heads);
  bool ok = v.ok() && (!vm.count("require-closed") || (open_runs(v) == 0 && heads_closed(heads)));
  if (vm.count("json")) {
    nlohmann::json out = verification_json(v, inputs, ok, head_report_json(heads));
    if (node_json) *node_json = std::move(out);
    if (!node_json) std::cout << out.dump(2) << "\n";
  } else {
    print_verification_text(v, inputs, vm.count("all") > 0);
    std::cout << head_report_text(heads);
  }
  return ok;
}

// The logs of several nodes (grouped by the host their records name): each node verified on
// its own, with the time span it covers.
bool verify_nodes(std::vector<AuditInput> inputs, const std::vector<AuditNode>& nodes,
                  const std::vector<AuditKey>& keys, const po::variables_map& vm) {
  bool all_ok = true;
  nlohmann::json out = {{"nodes", nlohmann::json::array()}};
  for (const AuditNode& node : nodes) {
    std::vector<AuditInput> mine;
    for (size_t i : node.files)
      mine.push_back(std::move(inputs[i]));
    AuditTimeSpan span = audit_time_span(mine);
    if (!vm.count("json")) {
      std::cout << "node " << node.name << ": " << mine.size()
                << (mine.size() == 1 ? " file, " : " files, ") << span.first << " to " << span.last
                << "\n";
    }
    nlohmann::json node_json;
    bool ok = verify_node(mine, keys, vm, &node_json);
    all_ok = all_ok && ok;
    if (vm.count("json")) {
      node_json["node"] = node.name;
      node_json["from"] = span.first;
      node_json["to"] = span.last;
      out["nodes"].push_back(std::move(node_json));
    }
  }
  if (vm.count("json")) {
    out["ok"] = all_ok;
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << nodes.size() << " nodes: " << (all_ok ? "all intact" : "NOT all intact") << "\n";
  }
  return all_ok;
}

int audit_verify(const Args& args) {
  po::options_description options(
      "Usage: enclosure audit verify [options] FILE...\n\n"
      "Checks audit logs written by `enclosure collect`, files oldest first (FILE.2 FILE.1 FILE):\n"
      "the hash chain is intact from line to line and file to file; each run begins with its\n"
      "start, its seq has no gap (or a `lost` record covers it) and nothing follows its exit;\n"
      "FILE.head, when present, matches the end of FILE (no line cut off or appended); with\n"
      "--key, the signed heads (`collect --sign-key`) verify with the key and chain across files.\n"
      "The logs of several nodes may be given at once: their files are grouped by the host their\n"
      "records name (else by directory), and each node is verified on its own, with its time "
      "span.\n"
      "Exit status: 0 intact; 1 with the first bad line (FILE:LINE) and why; 2 usage error.\n\n"
      "Options");
  options.add_options()("help,h", "show this help")(
      "require-closed", "a run without an exit record is a failure too")(
      "all", "list every problem, not only the first")("json", "print the result as JSON");
  std::vector<std::string> key_files;
  options.add_options()("key", po::value(&key_files)->composing(),
                        "an Ed25519 public key (PEM) the heads must be signed with; repeat it for "
                        "the keys before and after a key rotation");
  po::variables_map vm;
  std::vector<std::string> files;
  int status = 0;
  if (!parse_files("verify", options, args, vm, files, status)) return status;
  std::vector<AuditInput> inputs = read_inputs(files);
  std::vector<AuditKey> keys = load_public_keys(key_files, kUsage);
  std::vector<AuditNode> nodes = group_audit_files_by_node(inputs);
  bool ok = nodes.size() <= 1 ? verify_node(inputs, keys, vm, nullptr)
                              : verify_nodes(std::move(inputs), nodes, keys, vm);
  return ok ? kIntact : kBroken;
}

// The --type values, each one type or a comma-separated list.
std::set<std::string> split_types(const std::vector<std::string>& types) {
  std::set<std::string> out;
  for (const std::string& t : types) {
    size_t start = 0;
    while (start <= t.size()) {
      size_t comma = t.find(',', start);
      std::string one =
          t.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!one.empty()) out.insert(one);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

// How `audit show` prints: the timeline, the records unchanged (JSON Lines), or mapped to OCSF
// or ECS (JSON Lines, records of no class left out).
struct ShowFormat {
  bool json_lines = false;
  std::optional<SiemFormat> siem;
};

// Prints one selected record in a JSON Lines format; returns false when it maps to no class.
bool print_json_line(std::string_view line, const nlohmann::json& record,
                     std::optional<SiemMapper>& mapper) {
  if (!mapper) {
    std::cout << line << "\n";
    return true;
  }
  nlohmann::json mapped = mapper->map(record, line);
  if (mapped.is_null()) return false;
  std::cout << mapped.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return true;
}

// Prints the selected records in `format`. Returns how many lines are not JSON objects.
size_t show_records(const std::vector<AuditInput>& inputs, const TimelineFilter& filter,
                    const ShowFormat& format) {
  std::vector<nlohmann::json> records;
  std::optional<SiemMapper> mapper;
  if (format.siem) mapper.emplace(*format.siem, ENCLOSURE_VERSION);
  TimelineFilter starts = filter;  // a run's start record is mapped first: it names the approver
  starts.types.clear();
  starts.since.reset();
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
      if (!format.json_lines) {
        records.push_back(std::move(r));
      } else if (timeline_selects(r, filter)) {
        print_json_line(line, r, mapper);
      } else if (mapper && r.value("type", "") == "start" && timeline_selects(r, starts)) {
        mapper->map(r);  // remembered for the run's later records, not printed
      }
    }
  }
  if (!format.json_lines) std::cout << render_timeline(records, filter);
  return unreadable;
}

int audit_show(const Args& args) {
  po::options_description options(
      "Usage: enclosure audit show [options] FILE...\n\n"
      "Prints the audit log (files oldest first) as a timeline per run: who started it, who\n"
      "approved the permission set and why, the context, the command, what it may read and\n"
      "write, its tools and network, then what it ran, opened, connected to, what was denied,\n"
      "and its budgets at exit. Collector records (refusals, restarts, rotations) follow.\n\n"
      "Options");
  std::string run, since, format;
  std::vector<std::string> types;
  options.add_options()("help,h", "show this help")("run", po::value(&run), "only this run")(
      "type", po::value(&types)->composing(),
      "only records of this type (repeatable, or comma-separated)")(
      "since", po::value(&since), "only records at or after this RFC 3339 time")(
      "json", "print the selected records as JSON Lines, unchanged (--format json)")(
      "format", po::value(&format)->default_value("text"),
      "text (the timeline), json (the records unchanged), ocsf (OCSF 1.3 events: process, file "
      "system, network and DNS activity, detection findings) or ecs (Elastic Common Schema 8); "
      "ocsf and ecs leave out records of no class (cost, lost, suppressed, window, collector)");
  po::variables_map vm;
  std::vector<std::string> files;
  int status = 0;
  if (!parse_files("show", options, args, vm, files, status)) return status;
  TimelineFilter filter;
  filter.run = run;
  filter.types = split_types(types);
  if (!since.empty()) {
    filter.since = parse_rfc3339(since);
    if (!filter.since) {
      std::cerr << "enclosure audit show: --since " << since
                << ": expected an RFC 3339 time (2026-11-28T16:02:44Z)\n";
      return kUsage;
    }
  }
  ShowFormat show;
  show.json_lines = vm.count("json") > 0 || format != "text";
  if (format != "text" && format != "json") {
    show.siem = parse_siem_format(format);
    if (!show.siem) {
      std::cerr << "enclosure audit show: --format " << format
                << ": expected text, json, ocsf or ecs\n";
      return kUsage;
    }
  }
  size_t unreadable = show_records(read_inputs(files), filter, show);
  if (unreadable) {
    std::cerr << "enclosure audit show: " << unreadable
              << " lines are not JSON objects; `enclosure audit verify` says where\n";
  }
  return exit_code::kSuccess;
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
    return exit_code::kSuccess;
  }
  Args rest(args.begin() + 1, args.end());
  // The subcommands' boundary: their errors read "enclosure audit verify: ...".
  try {
    if (args[0] == "verify") return audit_verify(rest);
    if (args[0] == "show") return audit_show(rest);
  } catch (const LaunchError& e) {
    std::cerr << "enclosure audit " << args[0] << ": " << e.what() << "\n";
    return e.exit_code();
  }
  std::cerr << "enclosure audit: unknown subcommand \"" << args[0] << "\"\n" << kUsageText;
  return kUsage;
}

}  // namespace launcher
