#include "policy/diff.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>
#include <sstream>

#include "policy/compile.h"
#include "policy/path.h"
#include "policy/units.h"

namespace policy {

using nlohmann::json;

namespace {

// Host data access at a path: what the deepest grant or mask above it says.
enum Level { kNone = 0, kRead = 1, kWrite = 2 };

Level level_at(const Filesystem& fs, const std::string& path) {
  size_t best_depth = 0;
  bool found = false;
  Level level = kNone;
  auto consider = [&](const std::vector<std::string>& list, Level l) {
    for (const std::string& g : list) {
      if (!path_is_under(path, g)) continue;
      size_t d = path_segments(g).size();
      if (!found || d > best_depth || (d == best_depth && l == kNone)) {
        found = true;
        best_depth = d;
        level = l;
      }
    }
  };
  consider(fs.read, kRead);
  consider(fs.write, kWrite);
  consider(fs.tmpfs, kNone);  // a tmpfs shadows the host data beneath it
  consider(fs.hide, kNone);
  return level;
}

const char* level_name(Level l) {
  return l == kWrite ? "read and write" : l == kRead ? "read" : "no access";
}

std::string destination(const EgressRule& r) {
  return r.is_host() ? r.host : (r.cidr ? r.cidr->to_string() : r.cidr_text);
}

// A host rule with `"private": true` also admits answers in loopback and private ranges.
std::string private_note(const EgressRule& r) {
  return r.private_ok ? " (admits private/loopback answers)" : "";
}

// True when `rule`'s destinations and ports are all admitted by some rule of `rules`.
bool egress_covered(const EgressRule& rule, const std::vector<EgressRule>& rules) {
  for (const EgressRule& o : rules) {
    if (o.protocol != rule.protocol || !port_ranges_contain(o.ports, rule.ports)) continue;
    if (rule.is_host() && o.is_host()) {
      // Admitting private/loopback answers is more than the same name without it.
      if (rule.private_ok && !o.private_ok) continue;
      if (o.host == rule.host) return true;
      if (o.host.rfind("*.", 0) == 0) {
        // "*.a.com" covers "x.a.com" and "*.x.a.com".
        std::string name = rule.host.rfind("*.", 0) == 0 ? rule.host.substr(2) : rule.host;
        if (host_pattern_matches(o.host, name)) return true;
      }
    } else if (!rule.is_host() && !o.is_host()) {
      if (rule.cidr && o.cidr && o.cidr->contains(*rule.cidr)) return true;
      // An IPv6 block over all of ::ffff:0:0/96 also admits every IPv4 address (the plan adds
      // 0.0.0.0/0 for it), so it covers any IPv4 block.
      if (rule.cidr && o.cidr && !rule.cidr->v6 && o.cidr->covers_ipv4_mapped()) return true;
      if (!rule.cidr && rule.cidr_text == o.cidr_text) return true;
    }
  }
  return false;
}

// Per system call: 0 denied, 1 allowed with an argument filter, 2 allowed outright.
std::map<std::string, int> syscall_states(const Syscalls& s) {
  SeccompProfile p = compile_seccomp(s);
  std::map<std::string, int> out;
  for (const std::string& name : allowed_syscalls(p))
    out[name] = 2;
  std::set<std::string> conditional;
  for (const SeccompRule& r : p.rules) {
    if (!r.conditions.empty()) conditional.insert(r.syscall);
  }
  for (const std::string& name : conditional)
    out[name] = 1;
  return out;
}

struct Differ {
  std::vector<DiffEntry> out;
  void add(const char* section, ChangeKind kind, std::string what) {
    out.push_back({section, kind, std::move(what)});
  }
  // Compares an optional limit where absence means unlimited.
  void limit(const char* name, const std::optional<uint64_t>& a, const std::optional<uint64_t>& b,
             const std::function<std::string(uint64_t)>& fmt) {
    if (a == b) return;
    auto text = [&](const std::optional<uint64_t>& v) {
      return v ? fmt(*v) : std::string("unlimited");
    };
    bool wider = !b || (a && *b > *a);
    add("budgets", wider ? ChangeKind::widened : ChangeKind::narrowed,
        std::string(name) + ": " + text(a) + " -> " + text(b));
  }
};

// Metadata: not permissions, but a reviewer wants to see them.
void diff_metadata(const Metadata& a, const Metadata& b, Differ& d) {
  if (a.name != b.name) d.add("metadata", ChangeKind::info, "name: " + a.name + " -> " + b.name);
  if (a.revision != b.revision) {
    auto r = [](const std::optional<int64_t>& v) {
      return v ? std::to_string(*v) : std::string("none");
    };
    d.add("metadata", ChangeKind::info, "revision: " + r(a.revision) + " -> " + r(b.revision));
  }
  if (a.approved_by != b.approved_by) {
    d.add("metadata", ChangeKind::info,
          "approved_by: \"" + a.approved_by + "\" -> \"" + b.approved_by + "\"");
  }
  if (a.reason != b.reason) {
    d.add("metadata", ChangeKind::info, "reason: \"" + a.reason + "\" -> \"" + b.reason + "\"");
  }
  for (const auto& [key, value] : b.labels) {
    auto it = a.labels.find(key);
    if (it == a.labels.end()) {
      d.add("metadata", ChangeKind::info, "label " + key + "=" + value + " added");
    } else if (it->second != value) {
      d.add("metadata", ChangeKind::info, "label " + key + ": " + it->second + " -> " + value);
    }
  }
  for (const auto& [key, value] : a.labels) {
    if (!b.labels.count(key)) {
      d.add("metadata", ChangeKind::info, "label " + key + "=" + value + " removed");
    }
  }
}

// Context: a changed pattern may admit values it did not before.
void diff_context(const Manifest& a, const Manifest& b, Differ& d) {
  std::map<std::string, std::string> pa, pb;
  for (const ContextVariable& v : a.context)
    pa[v.name] = v.pattern;
  for (const ContextVariable& v : b.context)
    pb[v.name] = v.pattern;
  for (const auto& [name, pattern] : pb) {
    auto it = pa.find(name);
    if (it == pa.end()) {
      d.add("context", ChangeKind::info, "new variable ${" + name + "} (" + pattern + ")");
    } else if (it->second != pattern) {
      d.add("context", ChangeKind::changed,
            "${" + name + "} pattern " + it->second + " -> " + pattern + " (may admit new values)");
    }
  }
  for (const auto& [name, pattern] : pa) {
    if (!pb.count(name)) d.add("context", ChangeKind::info, "variable ${" + name + "} removed");
  }
}

// Filesystem: compare the access level at every path either manifest names.
void diff_filesystem(const Filesystem& a, const Filesystem& b, Differ& d) {
  std::set<std::string> points;
  for (const Filesystem* fs : {&a, &b}) {
    for (const auto* list : {&fs->read, &fs->write, &fs->tmpfs, &fs->hide}) {
      points.insert(list->begin(), list->end());
    }
  }
  for (const std::string& p : points) {
    Level la = level_at(a, p), lb = level_at(b, p);
    if (la == lb) continue;
    d.add("filesystem", lb > la ? ChangeKind::widened : ChangeKind::narrowed,
          p + ": " + level_name(la) + " -> " + level_name(lb));
  }
  for (const std::string& p : b.tmpfs) {
    if (std::find(a.tmpfs.begin(), a.tmpfs.end(), p) == a.tmpfs.end()) {
      d.add("filesystem", ChangeKind::widened, "new private scratch space at " + p);
    }
  }
  for (const std::string& p : a.tmpfs) {
    if (std::find(b.tmpfs.begin(), b.tmpfs.end(), p) == b.tmpfs.end()) {
      d.add("filesystem", ChangeKind::narrowed, "private scratch space at " + p + " removed");
    }
  }
}

// One tool both manifests name: its program, call limit and price.
void diff_tool(const Tool& ta, const Tool& tb, Differ& d) {
  if (ta.path != tb.path) {
    d.add("tools", ChangeKind::widened, "tool " + tb.name + " now runs " + tb.path);
    d.add("tools", ChangeKind::narrowed, "tool " + tb.name + " no longer runs " + ta.path);
  }
  if (ta.tree != tb.tree) {
    d.add("tools", tb.tree ? ChangeKind::widened : ChangeKind::narrowed,
          "tool " + tb.name +
              (tb.tree ? " now runs every file under " + tb.path + " (tree)"
                       : " no longer runs the files under " + ta.path + " (tree)"));
  }
  if (ta.max_calls != tb.max_calls) {
    auto text = [](const std::optional<uint64_t>& v) {
      return v ? std::to_string(*v) : std::string("unlimited");
    };
    bool wider = !tb.max_calls || (ta.max_calls && *tb.max_calls > *ta.max_calls);
    d.add("tools", wider ? ChangeKind::widened : ChangeKind::narrowed,
          "tool " + tb.name + " max_calls " + text(ta.max_calls) + " -> " + text(tb.max_calls));
  }
  if (ta.cost_micro_usd != tb.cost_micro_usd) {
    d.add("tools",
          tb.cost_micro_usd < ta.cost_micro_usd ? ChangeKind::widened : ChangeKind::narrowed,
          "tool " + tb.name + " price " + format_usd(ta.cost_micro_usd) + " -> " +
              format_usd(tb.cost_micro_usd) + " per call");
  }
}

void diff_tools(const Manifest& a, const Manifest& b, Differ& d) {
  for (const Tool& tb : b.tools) {
    const Tool* ta = a.find_tool(tb.name);
    if (!ta) {
      d.add(
          "tools", ChangeKind::widened,
          "new tool " + tb.name + " (" + tb.path + (tb.tree ? ", every file under it" : "") + ")");
      continue;
    }
    diff_tool(*ta, tb, d);
  }
  for (const Tool& ta : a.tools) {
    if (!b.find_tool(ta.name)) d.add("tools", ChangeKind::narrowed, "tool " + ta.name + " removed");
  }
}

void diff_unix_sockets(const std::vector<std::string>& a, const std::vector<std::string>& b,
                       Differ& d) {
  for (const std::string& p : b) {
    if (std::find(a.begin(), a.end(), p) == a.end())
      d.add("network", ChangeKind::widened, "may now connect to the unix socket " + p);
  }
  for (const std::string& p : a) {
    if (std::find(b.begin(), b.end(), p) == b.end())
      d.add("network", ChangeKind::narrowed, "may no longer connect to the unix socket " + p);
  }
}

void diff_network(const Network& a, const Network& b, Differ& d) {
  auto rank = [](NetworkMode m) {
    return m == NetworkMode::none ? 0 : m == NetworkMode::filtered ? 1 : 2;
  };
  if (a.mode != b.mode) {
    d.add("network", rank(b.mode) > rank(a.mode) ? ChangeKind::widened : ChangeKind::narrowed,
          std::string("mode ") + to_string(a.mode) + " -> " + to_string(b.mode));
  }
  // Mode "host" admits every destination: its change is the mode entry above, and egress rules
  // compared with it would report destinations gained or lost that were never in question.
  bool any_host = a.mode == NetworkMode::host || b.mode == NetworkMode::host;
  if (!any_host) {
    for (const EgressRule& r : b.egress) {
      if (!egress_covered(r, a.egress)) {
        d.add("network", ChangeKind::widened,
              "may now connect to " + destination(r) + " " + to_string(r.protocol) + " " +
                  format_port_ranges(r.ports) + private_note(r));
      }
    }
    for (const EgressRule& r : a.egress) {
      if (!egress_covered(r, b.egress)) {
        d.add("network", ChangeKind::narrowed,
              "may no longer connect to all of " + destination(r) + " " + to_string(r.protocol) +
                  " " + format_port_ranges(r.ports) + private_note(r));
      }
    }
  }
  if (a.dns != b.dns) {
    d.add("network", b.dns ? ChangeKind::widened : ChangeKind::narrowed,
          std::string("dns ") + (a.dns ? "on" : "off") + " -> " + (b.dns ? "on" : "off"));
  }
  diff_unix_sockets(a.unix_sockets, b.unix_sockets, d);
}

void diff_syscalls(const Syscalls& a, const Syscalls& b, Differ& d) {
  std::map<std::string, int> sa = syscall_states(a), sb = syscall_states(b);
  std::set<std::string> names;
  for (const auto& [n, s] : sa)
    names.insert(n);
  for (const auto& [n, s] : sb)
    names.insert(n);
  static const char* kState[] = {"denied", "allowed with argument filter", "allowed"};
  for (const std::string& n : names) {
    int x = sa.count(n) ? sa[n] : 0, y = sb.count(n) ? sb[n] : 0;
    if (x == y) continue;
    d.add("syscalls", y > x ? ChangeKind::widened : ChangeKind::narrowed,
          n + ": " + kState[x] + " -> " + kState[y]);
  }
  if (a.action != b.action) {
    d.add("syscalls",
          b.action == SyscallAction::errno_eperm ? ChangeKind::widened : ChangeKind::narrowed,
          std::string("action ") + to_string(a.action) + " -> " + to_string(b.action));
  }
}

void diff_budgets(const Budgets& ba, const Budgets& bb, Differ& d) {
  auto count = [](uint64_t v) { return std::to_string(v); };
  d.limit("wall_clock", ba.wall_clock_ns, bb.wall_clock_ns, format_duration);
  d.limit("cpu_time", ba.cpu_time_ns, bb.cpu_time_ns, format_duration);
  d.limit("tool_calls", ba.tool_calls, bb.tool_calls, count);
  d.limit("syscalls", ba.syscalls, bb.syscalls, count);
  d.limit("processes", ba.processes, bb.processes, count);
  d.limit("memory", ba.memory_bytes, bb.memory_bytes, format_size);
  d.limit("egress_bytes", ba.egress_bytes, bb.egress_bytes, format_size);
  d.limit("cost_usd", ba.cost_micro_usd, bb.cost_micro_usd, format_usd);
}

// A composition rule's triggers and denials, compared as a whole.
json rule_json(const Rule& r) {
  json j = {{"read", r.after.read},  {"exec", r.after.exec},       {"network", r.deny.network},
            {"write", r.deny.write}, {"exec_denied", r.deny.exec}, {"tools", r.deny.tools},
            {"hosts", r.deny.hosts}};
  for (const ConnectTrigger& c : r.after.connect) {
    j["connect"].push_back(c.egress_index ? json(*c.egress_index) : json(c.host));
  }
  return j;
}

// Composition rules, by id.
void diff_rules(const std::vector<Rule>& a, const std::vector<Rule>& b, Differ& d) {
  for (const Rule& rb : b) {
    auto it = std::find_if(a.begin(), a.end(), [&](const Rule& r) { return r.id == rb.id; });
    if (it == a.end()) {
      d.add("rules", ChangeKind::narrowed, "new composition rule " + rb.id);
    } else if (rule_json(*it) != rule_json(rb)) {
      d.add("rules", ChangeKind::changed, "composition rule " + rb.id + " changed");
    }
  }
  for (const Rule& ra : a) {
    if (std::none_of(b.begin(), b.end(), [&](const Rule& r) { return r.id == ra.id; })) {
      d.add("rules", ChangeKind::widened, "composition rule " + ra.id + " removed");
    }
  }
}

void diff_audit(const Audit& a, const Audit& b, Differ& d) {
  if (a.files != b.files) {
    d.add("audit", b.files ? ChangeKind::narrowed : ChangeKind::widened,
          std::string("file-access log ") + (b.files ? "turned on" : "turned off"));
  }
  if (a.syscalls != b.syscalls) {
    d.add("audit", b.syscalls ? ChangeKind::narrowed : ChangeKind::widened,
          std::string("syscall histogram ") + (b.syscalls ? "turned on" : "turned off"));
  }
}

void diff_baseline(const std::optional<Baseline>& a, const std::optional<Baseline>& b, Differ& d) {
  if (a.has_value() != b.has_value()) {
    d.add("baseline", b ? ChangeKind::narrowed : ChangeKind::widened,
          b ? "behaviour baseline added" : "behaviour baseline removed");
    return;
  }
  if (!a) return;
  if (a->tolerance != b->tolerance) {
    d.add("baseline", b->tolerance > a->tolerance ? ChangeKind::widened : ChangeKind::narrowed,
          "baseline tolerance " + std::to_string(a->tolerance) + " -> " +
              std::to_string(b->tolerance));
  }
  if (a->action != b->action) {
    d.add("baseline",
          b->action == BaselineAction::alert ? ChangeKind::widened : ChangeKind::narrowed,
          std::string("baseline action ") + to_string(a->action) + " -> " + to_string(b->action));
  }
  if (a->profile != b->profile) {
    d.add("baseline", ChangeKind::changed, "baseline profile " + a->profile + " -> " + b->profile);
  }
}

// The response to a violation and the layers a run may go without.
void diff_response(const Manifest& a, const Manifest& b, Differ& d) {
  if (a.on_violation != b.on_violation) {
    d.add("on_violation",
          b.on_violation == OnViolation::deny ? ChangeKind::widened : ChangeKind::narrowed,
          std::string(to_string(a.on_violation)) + " -> " + to_string(b.on_violation));
  }
  for (const std::string& l : b.enforcement.allow_degraded) {
    if (!a.enforcement.allows(l))
      d.add("enforcement", ChangeKind::widened, "layer " + l + " may now be missing");
  }
  for (const std::string& l : a.enforcement.allow_degraded) {
    if (!b.enforcement.allows(l))
      d.add("enforcement", ChangeKind::narrowed, "layer " + l + " is now required");
  }
}

void diff_process(const Process& a, const Process& b, Differ& d) {
  for (const std::string& n : b.env_pass) {
    if (std::find(a.env_pass.begin(), a.env_pass.end(), n) == a.env_pass.end()) {
      d.add("process", ChangeKind::widened, "environment variable " + n + " now passed in");
    }
  }
  for (const std::string& n : a.env_pass) {
    if (std::find(b.env_pass.begin(), b.env_pass.end(), n) == b.env_pass.end()) {
      d.add("process", ChangeKind::narrowed, "environment variable " + n + " no longer passed in");
    }
  }
  if (a.env_set != b.env_set) d.add("process", ChangeKind::info, "env.set changed");
  if (a.cwd != b.cwd) d.add("process", ChangeKind::info, "cwd " + a.cwd + " -> " + b.cwd);
  if (a.user != b.user) {
    auto u = [](const std::optional<UserIds>& v) {
      return v ? std::to_string(v->uid) + ":" + std::to_string(v->gid) : std::string("caller's");
    };
    d.add("process", ChangeKind::changed, "user " + u(a.user) + " -> " + u(b.user));
  }
}

}  // namespace

std::vector<DiffEntry> diff_manifests(const Manifest& a, const Manifest& b) {
  Differ d;
  diff_metadata(a.metadata, b.metadata, d);
  diff_context(a, b, d);
  diff_filesystem(a.filesystem, b.filesystem, d);
  diff_tools(a, b, d);
  diff_network(a.network, b.network, d);
  diff_syscalls(a.syscalls, b.syscalls, d);
  diff_budgets(a.budgets, b.budgets, d);
  diff_rules(a.rules, b.rules, d);
  // Oversight and response.
  diff_audit(a.audit, b.audit, d);
  diff_baseline(a.baseline, b.baseline, d);
  diff_response(a, b, d);
  diff_process(a.process, b.process, d);
  return d.out;
}

const char* to_string(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::widened:
      return "widened";
    case ChangeKind::narrowed:
      return "narrowed";
    case ChangeKind::changed:
      return "changed";
    case ChangeKind::info:
      return "info";
  }
  return "?";
}

json diff_json(const std::vector<DiffEntry>& entries) {
  json list = json::array();
  size_t w = 0, n = 0, c = 0;
  for (const DiffEntry& e : entries) {
    list.push_back({{"section", e.section}, {"kind", to_string(e.kind)}, {"what", e.what}});
    w += e.kind == ChangeKind::widened;
    n += e.kind == ChangeKind::narrowed;
    c += e.kind == ChangeKind::changed;
  }
  return {{"changes", list},
          {"widened", w},
          {"narrowed", n},
          {"changed", c},
          {"equal_permissions", !differs(entries)}};
}

std::string diff_text(const std::vector<DiffEntry>& entries) {
  std::ostringstream o;
  size_t w = 0, n = 0, c = 0;
  for (const DiffEntry& e : entries) {
    char line[32];
    std::snprintf(line, sizeof line, "%-9s %-12s ", to_string(e.kind), e.section.c_str());
    o << line << e.what << "\n";
    w += e.kind == ChangeKind::widened;
    n += e.kind == ChangeKind::narrowed;
    c += e.kind == ChangeKind::changed;
  }
  if (!differs(entries)) o << "permission sets are equal\n";
  o << w << " widened, " << n << " narrowed, " << c << " changed\n";
  return o.str();
}

bool widens(const std::vector<DiffEntry>& entries) {
  return std::any_of(entries.begin(), entries.end(), [](const DiffEntry& e) {
    return e.kind == ChangeKind::widened || e.kind == ChangeKind::changed;
  });
}

bool differs(const std::vector<DiffEntry>& entries) {
  return std::any_of(entries.begin(), entries.end(),
                     [](const DiffEntry& e) { return e.kind != ChangeKind::info; });
}

}  // namespace policy
