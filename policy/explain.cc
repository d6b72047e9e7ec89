#include "policy/explain.h"

#include <sstream>

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
  out["context"] = ctx;

  json process = {{"cwd", m.process.cwd},
                  {"env_pass", m.process.env_pass},
                  {"env_set", m.process.env_set},
                  {"no_new_privs", true},
                  {"capabilities", "none"}};
  process["user"] = m.process.user
                        ? json({{"uid", m.process.user->uid}, {"gid", m.process.user->gid}})
                        : json("the caller's");
  out["process"] = process;

  out["files"] = {{"read", m.filesystem.read},
                  {"write", m.filesystem.write},
                  {"tmpfs", m.filesystem.tmpfs},
                  {"hidden", m.filesystem.hide},
                  {"always",
                   {"/proc (the enclosure's own, read-only, sensitive entries masked)",
                    "/dev (null, zero, full, random, urandom, tty, pts, shm)"}}};

  json tools = json::array();
  for (const Tool& t : m.tools) {
    tools.push_back({{"name", t.name},
                     {"path", t.path},
                     {"max_calls", t.max_calls ? json(*t.max_calls) : json(nullptr)},
                     {"cost_usd", static_cast<double>(t.cost_micro_usd) / 1e6}});
  }
  out["tools"] = tools;

  json net = {{"mode", to_string(m.network.mode)}, {"dns", m.network.dns}};
  json egress = json::array();
  for (size_t i = 0; i < m.network.egress.size(); ++i) {
    const EgressRule& r = m.network.egress[i];
    egress.push_back({{"index", i},
                      {"destination", destination(r)},
                      {"kind", r.is_host() ? "host" : "cidr"},
                      {"protocol", to_string(r.protocol)},
                      {"ports", format_port_ranges(r.ports)}});
    if (r.private_ok) egress.back()["private"] = true;
  }
  net["egress"] = egress;
  out["network"] = net;

  SeccompProfile profile = compile_seccomp(m.syscalls);
  json sys = {{"profile", m.syscalls.profile},
              {"action", to_string(m.syscalls.action)},
              {"deny", m.syscalls.deny},
              {"allow", m.syscalls.allow}};
  json groups = json::array();
  if (m.syscalls.is_imported()) {
    sys["imported"] = imported_profile_json(m.syscalls);
  } else if (m.syscalls.profile == "strict") {
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
  sys["groups"] = groups;
  json filters = json::array();
  for (const FilteredSyscall& f : filtered_syscalls()) {
    filters.push_back({{"syscall", f.syscall}, {"filter", f.description}});
  }
  sys["argument_filters"] = filters;
  sys["foreign_abi"] = "x32 and i386 system calls kill the process";
  out["syscalls"] = sys;

  const Budgets& b = m.budgets;
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
  out["budgets"] = budgets;

  json rules = json::array();
  for (const Rule& r : m.rules) {
    json after = json::array();
    for (const std::string& p : r.after.read)
      after.push_back("reading " + p);
    for (const std::string& t : r.after.exec)
      after.push_back("running tool " + t);
    for (const ConnectTrigger& c : r.after.connect) {
      if (c.egress_index) {
        std::string d = *c.egress_index < m.network.egress.size()
                            ? destination(m.network.egress[*c.egress_index])
                            : "?";
        after.push_back("connecting to egress rule " + std::to_string(*c.egress_index) + " (" + d +
                        ")");
      } else {
        after.push_back("connecting to " + c.host);
      }
    }
    json deny = json::array();
    if (r.deny.network) deny.push_back("all network access");
    if (r.deny.write) deny.push_back("all writes");
    if (r.deny.exec) deny.push_back("running any program");
    for (const std::string& t : r.deny.tools)
      deny.push_back("tool " + t);
    for (const std::string& h : r.deny.hosts)
      deny.push_back("host " + h);
    rules.push_back({{"id", r.id}, {"after", after}, {"deny", deny}});
  }
  out["rules"] = rules;
  out["audit"] = {{"files", m.audit.files}, {"syscalls", m.audit.syscalls}};
  if (m.baseline) {
    out["baseline"] = {{"profile", m.baseline->profile},
                       {"tolerance", m.baseline->tolerance},
                       {"action", to_string(m.baseline->action)}};
  } else {
    out["baseline"] = nullptr;
  }
  out["on_violation"] = to_string(m.on_violation);
  out["allow_degraded"] = m.enforcement.allow_degraded;
  return out;
}

std::string explain_text(const Manifest& m) {
  json j = explain_json(m);
  std::ostringstream o;
  auto list = [&](const char* label, const json& items) {
    if (items.empty()) return;
    o << "  " << label << "\n";
    for (const auto& item : items)
      o << "    " << item.get<std::string>() << "\n";
  };
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

  if (!m.context.empty()) {
    o << "\nTask context (scopes the permissions below)\n";
    for (const auto& c : j["context"]) {
      o << "  ${" << c["name"].get<std::string>() << "} = ";
      if (c["value"].is_null()) {
        o << "(no value yet; must match " << c["pattern"].get<std::string>() << ")\n";
      } else {
        o << c["value"].get<std::string>() << " (" << c["source"].get<std::string>()
          << "; must match " << c["pattern"].get<std::string>() << ")\n";
      }
    }
  }

  o << "\nFiles (nothing else exists inside the enclosure)\n";
  if (m.filesystem.read.empty() && m.filesystem.write.empty() && m.filesystem.tmpfs.empty()) {
    o << "  no host files at all\n";
  }
  list("may read and list:", j["files"]["read"]);
  list("may read and write:", j["files"]["write"]);
  list("private scratch space (fresh, discarded at exit):", j["files"]["tmpfs"]);
  list("hidden (unreachable even under a granted path):", j["files"]["hidden"]);
  list("always present:", j["files"]["always"]);
  for (const std::string& p : m.filesystem.read) {
    if (p == "/") o << "  NOTE: read access to \"/\" exposes the whole host file system\n";
  }

  o << "\nTools (the only programs it may run)\n";
  for (const Tool& t : m.tools) {
    o << "  " << t.name << ": " << t.path;
    o << (t.max_calls ? ", at most " + std::to_string(*t.max_calls) + " calls"
                      : ", calls unlimited");
    if (t.cost_micro_usd) o << ", " << format_usd(t.cost_micro_usd) << " per call";
    o << "\n";
  }
  o << "  (the first command of a run does not count against max_calls)\n";

  o << "\nNetwork\n";
  switch (m.network.mode) {
    case NetworkMode::none:
      o << "  none: its own empty network namespace, loopback only\n";
      break;
    case NetworkMode::host:
      o << "  host: NO network filtering (allowed because enforcement.allow_degraded names "
           "network)\n";
      break;
    case NetworkMode::filtered:
      if (m.network.egress.empty()) {
        o << "  filtered: no destination at all\n";
      } else {
        o << "  filtered: may connect only to\n";
        for (const auto& e : j["network"]["egress"]) {
          o << "    " << e["destination"].get<std::string>() << " "
            << e["protocol"].get<std::string>() << " port(s) " << e["ports"].get<std::string>()
            << (e.value("private", false) ? " (admits private/loopback answers)" : "")
            << "   [/network/egress/" << e["index"].get<size_t>() << "]\n";
        }
      }
      o << (m.network.dns ? "  DNS: through the enclosure's resolver, which answers only the host "
                            "names above "
                            "and admits the addresses it answers (loopback, private and "
                            "link-local answers only for rules that say private)\n"
                          : "  DNS: none\n");
      o << "  everything else, including raw and packet sockets, is denied\n";
      break;
  }

  o << "\nSystem calls\n";
  if (m.syscalls.is_imported()) {
    const json& imp = j["syscalls"]["imported"];
    bool allow_list = imp["kind"] == "allow-list";
    auto names = [&](const char* label, const json& list) {
      if (list.empty()) return;
      o << "    " << label << ":";
      for (const auto& n : list)
        o << " " << n.get<std::string>();
      o << "\n";
    };
    o << "  profile imported from " << m.syscalls.profile << " (OCI seccomp, "
      << m.syscalls.imported_digest << "): "
      << (allow_list ? "an allow-list: calls it does not list are denied\n"
                     : "a deny-list: calls it does not list are allowed\n");
    if (allow_list) {
      names("allowed", imp["allowed"]);
      names("allowed for some arguments", imp["allowed_with_conditions"]);
    } else {
      names("denied", imp["denied"]);
      names("denied for some arguments", imp["denied_with_conditions"]);
    }
    names("answered ENOSYS", imp["enosys"]);
    if (!imp["kept_by_enclosure"].empty()) {
      o << "  the imported profile lets these through, but the enclosure keeps its own filter:\n";
      for (const auto& k : imp["kept_by_enclosure"]) {
        o << "    " << k["syscall"].get<std::string>() << ": " << k["kept"].get<std::string>()
          << "\n";
      }
    }
  } else if (m.syscalls.profile == "strict") {
    o << "  profile strict: only these groups are allowed\n";
  } else {
    o << "  profile default: everything except these groups\n";
  }
  for (const auto& g : j["syscalls"]["groups"]) {
    o << "    " << g["group"].get<std::string>() << " (" << g["description"].get<std::string>()
      << ")\n";
  }
  if (!m.syscalls.deny.empty()) {
    o << "  also denied:";
    for (const std::string& s : m.syscalls.deny)
      o << " " << s;
    o << "\n";
  }
  if (!m.syscalls.allow.empty()) {
    o << "  also allowed (explicitly):";
    for (const std::string& s : m.syscalls.allow)
      o << " " << s;
    o << "\n";
  }
  o << "  argument filters:\n";
  for (const auto& f : j["syscalls"]["argument_filters"]) {
    o << "    " << f["syscall"].get<std::string>() << ": " << f["filter"].get<std::string>()
      << "\n";
  }
  o << "  x32 and i386 system calls kill the process\n";
  o << "  a denied call "
    << (m.syscalls.action == SyscallAction::kill ? "kills the calling process" : "fails with EPERM")
    << " and is logged\n";

  o << "\nBudgets\n";
  for (const auto& b : j["budgets"]) {
    o << "  " << b["name"].get<std::string>() << ": " << b["text"].get<std::string>();
    if (!b["limit"].is_null()) o << " (" << b["meaning"].get<std::string>() << ")";
    o << "\n";
  }
  o << "  exceeding a budget terminates the whole enclosure (exit 124), except processes,\n"
       "  where fork fails with EAGAIN\n";

  o << "\nComposition rules\n";
  if (m.rules.empty()) o << "  none\n";
  for (const auto& r : j["rules"]) {
    o << "  " << r["id"].get<std::string>() << ": after ";
    bool first = true;
    for (const auto& a : r["after"]) {
      o << (first ? "" : " or ") << a.get<std::string>();
      first = false;
    }
    o << ", deny ";
    first = true;
    for (const auto& d : r["deny"]) {
      o << (first ? "" : ", ") << d.get<std::string>();
      first = false;
    }
    o << " (EPERM) for the rest of the run\n";
  }

  o << "\nProcess\n";
  if (m.process.user) {
    o << "  runs as uid " << m.process.user->uid << ", gid " << m.process.user->gid << "\n";
  } else {
    o << "  runs as the caller's uid and gid\n";
  }
  o << "  no capabilities, no_new_privs, no controlling terminal; working directory "
    << m.process.cwd << "\n";
  o << "  environment: ";
  if (m.process.env_pass.empty() && m.process.env_set.empty()) o << "empty";
  bool first = true;
  for (const std::string& n : m.process.env_pass) {
    o << (first ? "" : ", ") << n << " (passed)";
    first = false;
  }
  for (const auto& [k, v] : m.process.env_set) {
    o << (first ? "" : ", ") << k << "=" << v;
    first = false;
  }
  o << "\n";

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
    first = true;
    for (const std::string& l : m.enforcement.allow_degraded) {
      o << (first ? "" : ", ") << l;
      first = false;
    }
    o << " (their absence is recorded in the run's events)\n";
  }
  return o.str();
}

}  // namespace policy
