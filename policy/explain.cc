#include "policy/explain.h"

#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/compile.h"
#include "policy/oci_seccomp.h"
#include "policy/syscall_table.h"
#include "policy/units.h"

namespace policy {

using nlohmann::json;

namespace {

std::string destination(const EgressRule& r) {
  return r.is_host() ? r.host : (r.cidr ? r.cidr->to_string() : r.cidr_text);
}

// `limit` is in the budget's base unit (`unit`): nanoseconds, bytes, micro-dollars or a count.
json budget_entry(const char* name, const std::optional<uint64_t>& value, std::string text,
                  const char* unit, const char* meaning) {
  json j = {{"name", name}, {"unit", unit}, {"meaning", meaning}};
  if (value) {
    j["limit"] = *value;
    j["text"] = text;
  } else {
    j["limit"] = nullptr;
    j["text"] = "unlimited";
  }
  return j;
}

// What an imported OCI profile states, by verdict: calls it decides outright and calls it
// decides under argument conditions.
json imported_profile_json(const Syscalls& s) {
  const SeccompProfile& in = *s.imported;
  bool allow_list = in.default_verdict == SeccompVerdict::deny;
  std::set<std::string> outright, conditional, enosys;
  for (const SeccompRule& r : in.rules) {
    if (r.verdict == SeccompVerdict::enosys) {
      enosys.insert(r.syscall);
    } else if (r.conditions.empty()) {
      outright.insert(r.syscall);
    } else {
      conditional.insert(r.syscall);
    }
  }
  json kept = json::array();
  for (const ImportAdjustment& a : imported_profile_adjustments(s)) {
    kept.push_back({{"syscall", a.syscall}, {"kept", a.kept}});
  }
  return {{"path", s.profile},
          {"digest", s.imported_digest},
          {"kind", allow_list ? "allow-list" : "deny-list"},
          {allow_list ? "allowed" : "denied", outright},
          {allow_list ? "allowed_with_conditions" : "denied_with_conditions", conditional},
          {"enosys", enosys},
          {"kept_by_enclosure", kept}};
}

json context_json(const Manifest& m) {
  json ctx = json::array();
  for (const ContextVariable& v : m.context) {
    json c = {{"name", v.name}, {"pattern", v.pattern}};
    if (auto it = m.context_values.find(v.name); it != m.context_values.end()) {
      c["value"] = it->second;
      c["source"] = (v.default_value && *v.default_value == it->second) ? "default" : "given";
    } else {
      c["value"] = nullptr;
      c["source"] = "unset";
    }
    ctx.push_back(c);
  }
  return ctx;
}

json process_json(const Process& p) {
  json process = {{"cwd", p.cwd},
                  {"env_pass", p.env_pass},
                  {"env_set", p.env_set},
                  {"no_new_privs", true},
                  {"capabilities", "none"}};
  process["user"] =
      p.user ? json({{"uid", p.user->uid}, {"gid", p.user->gid}}) : json("the caller's");
  return process;
}

json files_json(const Filesystem& fs) {
  return {{"read", fs.read},
          {"write", fs.write},
          {"tmpfs", fs.tmpfs},
          {"hidden", fs.hide},
          {"noexec", "write grants and tmpfs, except a tree tool's directory"},
          {"always",
           {"/proc (the enclosure's own, read-only, sensitive entries masked)",
            "/dev (null, zero, full, random, urandom, tty, pts, shm)"}}};
}

json tools_json(const std::vector<Tool>& list) {
  json tools = json::array();
  for (const Tool& t : list) {
    tools.push_back({{"name", t.name},
                     {"path", t.path},
                     {"max_calls", t.max_calls ? json(*t.max_calls) : json(nullptr)},
                     {"cost_usd", static_cast<double>(t.cost_micro_usd) / 1e6},
                     {"tree", t.tree}});
  }
  return tools;
}

json network_json(const Network& n) {
  json net = {{"mode", to_string(n.mode)}, {"dns", n.dns}};
  json egress = json::array();
  for (size_t i = 0; i < n.egress.size(); ++i) {
    const EgressRule& r = n.egress[i];
    egress.push_back({{"index", i},
                      {"destination", destination(r)},
                      {"kind", r.is_host() ? "host" : "cidr"},
                      {"protocol", to_string(r.protocol)},
                      {"ports", format_port_ranges(r.ports)}});
    if (r.private_ok) egress.back()["private"] = true;
  }
  net["egress"] = egress;
  net["unix"] = n.unix_sockets;
  return net;
}

// The groups the built-in profile names: allowed ones (strict) or denied ones (default).
json syscall_groups_json(const Syscalls& s) {
  json groups = json::array();
  if (s.profile == "strict") {
    for (const char* g : strict_profile_allowed_groups()) {
      groups.push_back({{"group", g},
                        {"verdict", "allowed"},
                        {"description", find_syscall_group(g)->description}});
    }
  } else {
    for (const char* g : default_profile_denied_groups()) {
      groups.push_back({{"group", g},
                        {"verdict", "denied"},
                        {"description", find_syscall_group(g)->description}});
    }
  }
  return groups;
}

json syscalls_json(const Syscalls& s) {
  SeccompProfile profile = compile_seccomp(s);
  json sys = {{"profile", s.profile},
              {"action", to_string(s.action)},
              {"deny", s.deny},
              {"allow", s.allow}};
  if (s.is_imported()) {
    sys["imported"] = imported_profile_json(s);
    sys["groups"] = json::array();
  } else {
    sys["groups"] = syscall_groups_json(s);
  }
  json filters = json::array();
  for (const FilteredSyscall& f : filtered_syscalls()) {
    filters.push_back({{"syscall", f.syscall}, {"filter", f.description}});
  }
  sys["argument_filters"] = filters;
  sys["foreign_abi"] = "x32 and i386 system calls kill the process";
  return sys;
}

json budgets_json(const Budgets& b) {
  json budgets = json::array();
  budgets.push_back(budget_entry("wall_clock", b.wall_clock_ns,
                                 b.wall_clock_ns ? format_duration(*b.wall_clock_ns) : "", "ns",
                                 "time from start until the whole enclosure is killed"));
  budgets.push_back(budget_entry("cpu_time", b.cpu_time_ns,
                                 b.cpu_time_ns ? format_duration(*b.cpu_time_ns) : "", "ns",
                                 "CPU time across all its processes"));
  budgets.push_back(budget_entry("tool_calls", b.tool_calls,
                                 b.tool_calls ? std::to_string(*b.tool_calls) : "", "calls",
                                 "executions of any tool"));
  budgets.push_back(budget_entry("syscalls", b.syscalls,
                                 b.syscalls ? std::to_string(*b.syscalls) : "", "syscalls",
                                 "system calls of all its processes"));
  budgets.push_back(budget_entry("processes", b.processes,
                                 b.processes ? std::to_string(*b.processes) : "", "processes",
                                 "processes alive at once (fork fails beyond it)"));
  budgets.push_back(budget_entry("memory", b.memory_bytes,
                                 b.memory_bytes ? format_size(*b.memory_bytes) : "", "bytes",
                                 "memory in use; exceeding it ends the enclosure"));
  budgets.push_back(budget_entry("egress_bytes", b.egress_bytes,
                                 b.egress_bytes ? format_size(*b.egress_bytes) : "", "bytes",
                                 "bytes sent to the network"));
  budgets.push_back(budget_entry("cost_usd", b.cost_micro_usd,
                                 b.cost_micro_usd ? format_usd(*b.cost_micro_usd) : "", "micro_usd",
                                 "tool prices plus reported usage"));
  return budgets;
}

// What triggers a composition rule, in words; egress rules by index name their destination.
json rule_triggers_json(const RuleTrigger& after, const std::vector<EgressRule>& egress) {
  json triggers = json::array();
  for (const std::string& p : after.read)
    triggers.push_back("reading " + p);
  for (const std::string& t : after.exec)
    triggers.push_back("running tool " + t);
  for (const ConnectTrigger& c : after.connect) {
    if (c.egress_index) {
      std::string d = *c.egress_index < egress.size() ? destination(egress[*c.egress_index]) : "?";
      triggers.push_back("connecting to egress rule " + std::to_string(*c.egress_index) + " (" + d +
                         ")");
    } else {
      triggers.push_back("connecting to " + c.host);
    }
  }
  return triggers;
}

// What a composition rule denies once triggered, in words.
json rule_denials_json(const RuleDenial& denial) {
  json deny = json::array();
  if (denial.network) deny.push_back("all network access");
  if (denial.write) deny.push_back("all writes");
  if (denial.exec) deny.push_back("running any program");
  for (const std::string& t : denial.tools)
    deny.push_back("tool " + t);
  for (const std::string& h : denial.hosts)
    deny.push_back("host " + h);
  return deny;
}

json rules_json(const Manifest& m) {
  json rules = json::array();
  for (const Rule& r : m.rules) {
    rules.push_back({{"id", r.id},
                     {"after", rule_triggers_json(r.after, m.network.egress)},
                     {"deny", rule_denials_json(r.deny)}});
  }
  return rules;
}

json baseline_json(const std::optional<Baseline>& baseline) {
  if (!baseline) return nullptr;
  return {{"profile", baseline->profile},
          {"tolerance", baseline->tolerance},
          {"action", to_string(baseline->action)}};
}

// Prints `items` (strings) one per line under `label`; nothing when there are none.
void print_list(std::ostream& o, const char* label, const json& items) {
  if (items.empty()) return;
  o << "  " << label << "\n";
  for (const auto& item : items)
    o << "    " << item.get<std::string>() << "\n";
}

// Prints `items` (strings) on one line after `label`; nothing when there are none.
void print_names(std::ostream& o, const char* label, const json& items) {
  if (items.empty()) return;
  o << "    " << label << ":";
  for (const auto& n : items)
    o << " " << n.get<std::string>();
  o << "\n";
}

// Prints `items` separated by `separator`.
template <typename Range>
void print_joined(std::ostream& o, const Range& items, const char* separator) {
  bool first = true;
  for (const auto& item : items) {
    o << (first ? "" : separator) << item;
    first = false;
  }
}

void print_header(std::ostream& o, const Manifest& m) {
  o << "Manifest \"" << m.metadata.name << "\"";
  if (m.metadata.revision) o << ", revision " << *m.metadata.revision;
  o << "\n  digest " << m.digest;
  if (m.is_template()) o << " (template: some context variables have no value)";
  o << "\n";
  o << "  approved by: "
    << (m.metadata.approved_by.empty() ? "(not stated)" : m.metadata.approved_by) << "\n";
  o << "  reason: " << (m.metadata.reason.empty() ? "(not stated)" : m.metadata.reason) << "\n";
  for (const auto& [k, v] : m.metadata.labels)
    o << "  label " << k << "=" << v << "\n";
}

void print_context(std::ostream& o, const Manifest& m, const json& context) {
  if (m.context.empty()) return;
  o << "\nTask context (scopes the permissions below)\n";
  for (const auto& c : context) {
    o << "  ${" << c["name"].get<std::string>() << "} = ";
    if (c["value"].is_null()) {
      o << "(no value yet; must match " << c["pattern"].get<std::string>() << ")\n";
    } else {
      o << c["value"].get<std::string>() << " (" << c["source"].get<std::string>()
        << "; must match " << c["pattern"].get<std::string>() << ")\n";
    }
  }
}

void print_files(std::ostream& o, const Filesystem& fs, const json& files) {
  o << "\nFiles (nothing else exists inside the enclosure)\n";
  if (fs.read.empty() && fs.write.empty() && fs.tmpfs.empty()) o << "  no host files at all\n";
  print_list(o, "may read and list:", files["read"]);
  print_list(o, "may read and write:", files["write"]);
  print_list(o, "private scratch space (fresh, discarded at exit):", files["tmpfs"]);
  print_list(o, "hidden (unreachable even under a granted path):", files["hidden"]);
  print_list(o, "always present:", files["always"]);
  if (!fs.write.empty() || !fs.tmpfs.empty()) {
    o << "  nothing written there can be executed or mapped executable (mounted noexec), except "
         "under a tree tool's directory\n";
  }
  for (const std::string& p : fs.read) {
    if (p == "/") o << "  NOTE: read access to \"/\" exposes the whole host file system\n";
  }
}

void print_tools(std::ostream& o, const std::vector<Tool>& tools) {
  o << "\nTools (the only programs it may run)\n";
  for (const Tool& t : tools) {
    o << "  " << t.name << ": " << t.path;
    if (t.tree) o << "/** (every file under the directory; each exec is one call)";
    o << (t.max_calls ? ", at most " + std::to_string(*t.max_calls) + " calls"
                      : ", calls unlimited");
    if (t.cost_micro_usd) o << ", " << format_usd(t.cost_micro_usd) << " per call";
    o << "\n";
  }
  o << "  (the first command of a run does not count against max_calls)\n";
}

void print_filtered_network(std::ostream& o, const Network& n, const json& egress) {
  if (n.egress.empty()) {
    o << "  filtered: no destination at all\n";
  } else {
    o << "  filtered: may connect only to\n";
    for (const auto& e : egress) {
      o << "    " << e["destination"].get<std::string>() << " " << e["protocol"].get<std::string>()
        << " port(s) " << e["ports"].get<std::string>()
        << (e.value("private", false) ? " (admits private/loopback answers)" : "")
        << "   [/network/egress/" << e["index"].get<size_t>() << "]\n";
    }
  }
  o << (n.dns ? "  DNS: through the enclosure's resolver, which answers only the host "
                "names above "
                "and admits the addresses it answers (loopback, private and "
                "link-local answers only for rules that say private)\n"
              : "  DNS: none\n");
  o << "  everything else, including raw and packet sockets, is denied\n";
}

void print_unix_sockets(std::ostream& o, const Network& n) {
  o << "  unix sockets: ";
  if (n.unix_sockets.empty()) {
    o << "only its own (under its write grants and tmpfs)\n";
  } else {
    o << "its own (under its write grants and tmpfs), and\n";
    for (size_t i = 0; i < n.unix_sockets.size(); ++i)
      o << "    " << n.unix_sockets[i] << "   [/network/unix/" << i << "]\n";
  }
  o << "  any other path socket is refused (EACCES), also under a read grant\n";
}

void print_network(std::ostream& o, const Network& n, const json& network) {
  o << "\nNetwork\n";
  switch (n.mode) {
    case NetworkMode::none:
      o << "  none: its own empty network namespace, loopback only\n";
      break;
    case NetworkMode::host:
      o << "  host: NO network filtering (allowed because enforcement.allow_degraded names "
           "network)\n";
      break;
    case NetworkMode::filtered:
      print_filtered_network(o, n, network["egress"]);
      break;
  }
  print_unix_sockets(o, n);
}

void print_imported_profile(std::ostream& o, const Syscalls& s, const json& imp) {
  bool allow_list = imp["kind"] == "allow-list";
  o << "  profile imported from " << s.profile << " (OCI seccomp, " << s.imported_digest << "): "
    << (allow_list ? "an allow-list: calls it does not list are denied\n"
                   : "a deny-list: calls it does not list are allowed\n");
  if (allow_list) {
    print_names(o, "allowed", imp["allowed"]);
    print_names(o, "allowed for some arguments", imp["allowed_with_conditions"]);
  } else {
    print_names(o, "denied", imp["denied"]);
    print_names(o, "denied for some arguments", imp["denied_with_conditions"]);
  }
  print_names(o, "answered ENOSYS", imp["enosys"]);
  if (!imp["kept_by_enclosure"].empty()) {
    o << "  the imported profile lets these through, but the enclosure keeps its own filter:\n";
    for (const auto& k : imp["kept_by_enclosure"]) {
      o << "    " << k["syscall"].get<std::string>() << ": " << k["kept"].get<std::string>()
        << "\n";
    }
  }
}

void print_syscalls(std::ostream& o, const Syscalls& s, const json& sys) {
  o << "\nSystem calls\n";
  if (s.is_imported()) {
    print_imported_profile(o, s, sys["imported"]);
  } else if (s.profile == "strict") {
    o << "  profile strict: only these groups are allowed\n";
  } else {
    o << "  profile default: everything except these groups\n";
  }
  for (const auto& g : sys["groups"]) {
    o << "    " << g["group"].get<std::string>() << " (" << g["description"].get<std::string>()
      << ")\n";
  }
  if (!s.deny.empty()) {
    o << "  also denied:";
    for (const std::string& name : s.deny)
      o << " " << name;
    o << "\n";
  }
  if (!s.allow.empty()) {
    o << "  also allowed (explicitly):";
    for (const std::string& name : s.allow)
      o << " " << name;
    o << "\n";
  }
  o << "  argument filters:\n";
  for (const auto& f : sys["argument_filters"]) {
    o << "    " << f["syscall"].get<std::string>() << ": " << f["filter"].get<std::string>()
      << "\n";
  }
  o << "  x32 and i386 system calls kill the process\n";
  o << "  a denied call "
    << (s.action == SyscallAction::kill ? "kills the calling process" : "fails with EPERM")
    << " and is logged\n";
}

void print_budgets(std::ostream& o, const json& budgets) {
  o << "\nBudgets\n";
  for (const auto& b : budgets) {
    o << "  " << b["name"].get<std::string>() << ": " << b["text"].get<std::string>();
    if (!b["limit"].is_null()) o << " (" << b["meaning"].get<std::string>() << ")";
    o << "\n";
  }
  o << "  exceeding a budget terminates the whole enclosure (exit 124), except processes,\n"
       "  where fork fails with EAGAIN\n";
}

void print_rules(std::ostream& o, const json& rules) {
  o << "\nComposition rules\n";
  if (rules.empty()) o << "  none\n";
  for (const auto& r : rules) {
    o << "  " << r["id"].get<std::string>() << ": after ";
    print_joined(o, r["after"].get<std::vector<std::string>>(), " or ");
    o << ", deny ";
    print_joined(o, r["deny"].get<std::vector<std::string>>(), ", ");
    o << " (EPERM) for the rest of the run\n";
  }
}

void print_process(std::ostream& o, const Process& p) {
  o << "\nProcess\n";
  if (p.user) {
    o << "  runs as uid " << p.user->uid << ", gid " << p.user->gid << "\n";
  } else {
    o << "  runs as the caller's uid and gid\n";
  }
  o << "  no capabilities, no_new_privs; a terminal of its own (relayed) only when started from "
       "one; working directory "
    << p.cwd << "\n";
  o << "  environment: ";
  if (p.env_pass.empty() && p.env_set.empty()) o << "empty";
  bool first = true;
  for (const std::string& n : p.env_pass) {
    o << (first ? "" : ", ") << n << " (passed)";
    first = false;
  }
  for (const auto& [k, v] : p.env_set) {
    o << (first ? "" : ", ") << k << "=" << v;
    first = false;
  }
  o << "\n";
}

void print_audit_and_response(std::ostream& o, const Manifest& m) {
  o << "\nAudit and response\n";
  o << "  file-access log: " << (m.audit.files ? "every open is recorded" : "off") << "\n";
  o << "  syscall histogram: " << (m.audit.syscalls ? "on" : "off") << "\n";
  if (m.baseline) {
    o << "  behaviour baseline " << m.baseline->profile << ", tolerance " << m.baseline->tolerance
      << "x, on anomaly: " << to_string(m.baseline->action) << "\n";
  }
  o << "  on violation: "
    << (m.on_violation == OnViolation::kill ? "terminate the enclosure"
                                            : "deny the operation (EPERM), log it, run on")
    << "\n";
  o << "  layers allowed to be missing: ";
  if (m.enforcement.allow_degraded.empty()) {
    o << "none (a layer this host cannot enforce stops the run)\n";
  } else {
    print_joined(o, m.enforcement.allow_degraded, ", ");
    o << " (their absence is recorded in the run's events)\n";
  }
}

}  // namespace

json explain_json(const Manifest& m) {
  json out;
  out["name"] = m.metadata.name;
  out["revision"] = m.metadata.revision ? json(*m.metadata.revision) : json(nullptr);
  out["digest"] = m.digest;
  out["template"] = m.is_template();
  out["approved_by"] = m.metadata.approved_by;
  out["reason"] = m.metadata.reason;
  out["labels"] = m.metadata.labels;
  out["context"] = context_json(m);
  out["process"] = process_json(m.process);
  out["files"] = files_json(m.filesystem);
  out["tools"] = tools_json(m.tools);
  out["network"] = network_json(m.network);
  out["syscalls"] = syscalls_json(m.syscalls);
  out["budgets"] = budgets_json(m.budgets);
  out["rules"] = rules_json(m);
  out["audit"] = {{"files", m.audit.files}, {"syscalls", m.audit.syscalls}};
  out["baseline"] = baseline_json(m.baseline);
  out["on_violation"] = to_string(m.on_violation);
  out["allow_degraded"] = m.enforcement.allow_degraded;
  return out;
}

std::string explain_text(const Manifest& m) {
  const json j = explain_json(m);
  std::ostringstream o;
  print_header(o, m);
  print_context(o, m, j["context"]);
  print_files(o, m.filesystem, j["files"]);
  print_tools(o, m.tools);
  print_network(o, m.network, j["network"]);
  print_syscalls(o, m.syscalls, j["syscalls"]);
  print_budgets(o, j["budgets"]);
  print_rules(o, j["rules"]);
  print_process(o, m.process);
  print_audit_and_response(o, m);
  return o.str();
}

}  // namespace policy
