#include "policy/bpf_plan.h"

#include <limits>

#include "policy/path.h"

namespace policy {
namespace {

constexpr size_t kMaxEntries = 65536;  // any list: the egress tries hold at most this many

nlohmann::json optional_number(const std::optional<uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json port_list(const std::vector<PortRange>& ports) {
  nlohmann::json out = nlohmann::json::array();
  for (const PortRange& p : ports)
    out.push_back({p.first, p.last});
  return out;
}

// Field access that says where a value was wrong.
struct Reader {
  std::string error;
  bool ok() const { return error.empty(); }
  void fail(const std::string& where, const std::string& what) {
    if (error.empty()) error = where + ": " + what;
  }
  const nlohmann::json* field(const nlohmann::json& obj, const char* key,
                              const std::string& where) {
    if (!obj.is_object()) {
      fail(where, "expected an object");
      return nullptr;
    }
    auto it = obj.find(key);
    if (it == obj.end()) {
      fail(where + "/" + key, "missing");
      return nullptr;
    }
    return &*it;
  }
  bool boolean(const nlohmann::json& obj, const char* key, const std::string& where) {
    const nlohmann::json* v = field(obj, key, where);
    if (v && !v->is_boolean()) fail(where + "/" + key, "expected true or false");
    return v && v->is_boolean() && v->get<bool>();
  }
  std::string text(const nlohmann::json& obj, const char* key, const std::string& where) {
    const nlohmann::json* v = field(obj, key, where);
    if (v && !v->is_string()) fail(where + "/" + key, "expected a string");
    return v && v->is_string() ? v->get<std::string>() : "";
  }
  uint64_t number(const nlohmann::json& v, const std::string& where,
                  uint64_t max = std::numeric_limits<uint64_t>::max()) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > max) {
      fail(where, "expected a whole number up to " + std::to_string(max));
      return 0;
    }
    return v.get<uint64_t>();
  }
  std::optional<uint64_t> optional(const nlohmann::json& obj, const char* key,
                                   const std::string& where) {
    const nlohmann::json* v = field(obj, key, where);
    if (!v || v->is_null()) return std::nullopt;
    return number(*v, where + "/" + key);
  }
  const nlohmann::json& list(const nlohmann::json& obj, const char* key, const std::string& where) {
    static const nlohmann::json kEmpty = nlohmann::json::array();
    const nlohmann::json* v = field(obj, key, where);
    if (!v) return kEmpty;
    if (!v->is_array() || v->size() > kMaxEntries) {
      fail(where + "/" + key, "expected a list of at most " + std::to_string(kMaxEntries));
      return kEmpty;
    }
    return *v;
  }
  std::vector<std::string> strings(const nlohmann::json& obj, const char* key,
                                   const std::string& where) {
    std::vector<std::string> out;
    const nlohmann::json& l = list(obj, key, where);
    for (size_t i = 0; i < l.size(); ++i) {
      if (!l[i].is_string()) {
        fail(where + "/" + key + "/" + std::to_string(i), "expected a string");
        break;
      }
      out.push_back(l[i].get<std::string>());
    }
    return out;
  }
  std::vector<PortRange> ports(const nlohmann::json& obj, const std::string& where) {
    std::vector<PortRange> out;
    const nlohmann::json& l = list(obj, "ports", where);
    for (size_t i = 0; i < l.size(); ++i) {
      std::string at = where + "/ports/" + std::to_string(i);
      if (!l[i].is_array() || l[i].size() != 2) {
        fail(at, "expected [first, last]");
        break;
      }
      auto first = static_cast<uint16_t>(number(l[i][0], at, 65535));
      auto last = static_cast<uint16_t>(number(l[i][1], at, 65535));
      if (first > last) fail(at, "the first port is above the last");
      out.push_back({first, last});
    }
    return out;
  }
  Protocol protocol(const nlohmann::json& obj, const std::string& where) {
    std::string p = text(obj, "protocol", where);
    if (p != "tcp" && p != "udp") fail(where + "/protocol", "expected tcp or udp");
    return p == "udp" ? Protocol::udp : Protocol::tcp;
  }
};

nlohmann::json unix_sockets_json(const std::vector<UnixSocketPath>& sockets) {
  nlohmann::json out = nlohmann::json::array();
  for (const UnixSocketPath& u : sockets)
    out.push_back({{"path", u.path}, {"access", to_string(u.access)}, {"origin", u.origin}});
  return out;
}

// The daemon's copy of the unix socket paths: absolute, normalised, short enough for an address.
void read_unix_sockets(Reader& in, const nlohmann::json& net, NetworkPlan& plan) {
  const nlohmann::json& list = in.list(net, "unix_sockets", "/network");
  for (size_t i = 0; i < list.size() && in.ok(); ++i) {
    std::string at = "/network/unix_sockets/" + std::to_string(i);
    UnixSocketPath u;
    u.path = in.text(list[i], "path", at);
    std::string access = in.text(list[i], "access", at);
    if (access == "named") {
      u.access = UnixSocketAccess::named;
    } else if (access == "own") {
      u.access = UnixSocketAccess::own;
    } else if (access == "foreign") {
      u.access = UnixSocketAccess::foreign;
    } else if (in.ok()) {
      in.fail(at + "/access", "expected named, own or foreign");
    }
    u.origin = in.text(list[i], "origin", at);
    if (!in.ok()) break;
    if (std::string why = check_absolute_path(u.path); !why.empty()) {
      in.fail(at + "/path", "expected " + why);
    } else if (u.path.size() > kMaxUnixSocketPath) {
      in.fail(at + "/path", "expected at most " + std::to_string(kMaxUnixSocketPath) + " bytes");
    }
    plan.unix_sockets.push_back(u);
  }
}

}  // namespace

nlohmann::json bpf_plan_to_json(const EnforcementPlan& plan) {
  nlohmann::json cidrs = nlohmann::json::array();
  for (const CidrEgress& c : plan.network.cidrs) {
    cidrs.push_back({{"cidr", c.cidr.to_string()},
                     {"protocol", to_string(c.protocol)},
                     {"ports", port_list(c.ports)},
                     {"rule", c.rule_index}});
  }
  nlohmann::json egress_hosts = nlohmann::json::array();
  for (const EgressRule& e : plan.network.egress_rules)
    egress_hosts.push_back(e.host);
  nlohmann::json tools = nlohmann::json::array();
  for (const ToolEntry& t : plan.tools) {
    tools.push_back({{"name", t.name},
                     {"path", t.path},
                     {"max_calls", optional_number(t.max_calls)},
                     {"cost_micro_usd", t.cost_micro_usd},
                     {"tree", t.tree}});
  }
  nlohmann::json rules = nlohmann::json::array();
  for (const Rule& r : plan.rules) {
    nlohmann::json connect = nlohmann::json::array();
    for (const ConnectTrigger& c : r.after.connect) {
      connect.push_back(
          {{"egress_index", c.egress_index ? nlohmann::json(*c.egress_index) : nlohmann::json()},
           {"host", c.host}});
    }
    rules.push_back({{"id", r.id},
                     {"after_read", r.after.read},
                     {"after_exec", r.after.exec},
                     {"after_connect", connect},
                     {"deny_network", r.deny.network},
                     {"deny_tools", r.deny.tools},
                     {"deny_hosts", r.deny.hosts}});
  }
  const Budgets& b = plan.budgets;
  return {{"manifest", plan.manifest_name},
          {"digest", plan.digest},
          {"network",
           {{"mode", to_string(plan.network.mode)},
            {"dns", plan.network.dns},
            {"cidrs", cidrs},
            {"egress_hosts", egress_hosts},
            {"unix_sockets", unix_sockets_json(plan.network.unix_sockets)}}},
          {"budgets",
           {{"wall_clock_ns", optional_number(b.wall_clock_ns)},
            {"syscalls", optional_number(b.syscalls)},
            {"tool_calls", optional_number(b.tool_calls)},
            {"processes", optional_number(b.processes)},
            {"memory_bytes", optional_number(b.memory_bytes)},
            {"egress_bytes", optional_number(b.egress_bytes)},
            {"cost_micro_usd", optional_number(b.cost_micro_usd)}}},
          {"audit", {{"files", plan.audit.files}, {"syscalls", plan.audit.syscalls}}},
          {"baseline", plan.baseline.has_value()},
          {"tools", tools},
          {"rules", rules}};
}

std::optional<EnforcementPlan> bpf_plan_from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  EnforcementPlan plan;
  plan.manifest_name = in.text(j, "manifest", "");
  plan.digest = in.text(j, "digest", "");
  if (const nlohmann::json* net = in.field(j, "network", "")) {
    std::string mode = in.text(*net, "mode", "/network");
    if (mode == "none") {
      plan.network.mode = NetworkMode::none;
    } else if (mode == "filtered") {
      plan.network.mode = NetworkMode::filtered;
    } else if (mode == "host") {
      plan.network.mode = NetworkMode::host;
    } else {
      in.fail("/network/mode", "expected none, filtered or host");
    }
    plan.network.dns = in.boolean(*net, "dns", "/network");
    read_unix_sockets(in, *net, plan.network);
    for (const std::string& host : in.strings(*net, "egress_hosts", "/network")) {
      EgressRule rule;
      rule.host = host;
      plan.network.egress_rules.push_back(rule);
    }
    const nlohmann::json& cidrs = in.list(*net, "cidrs", "/network");
    for (size_t i = 0; i < cidrs.size() && in.ok(); ++i) {
      std::string at = "/network/cidrs/" + std::to_string(i);
      CidrEgress c;
      std::string text = in.text(cidrs[i], "cidr", at);
      Parsed<Cidr> parsed = parse_cidr(text);
      if (!parsed) {
        in.fail(at + "/cidr", "expected " + parsed.error);
        break;
      }
      c.cidr = *parsed.value;
      c.protocol = in.protocol(cidrs[i], at);
      c.ports = merge_port_ranges(in.ports(cidrs[i], at));
      if (const nlohmann::json* rule = in.field(cidrs[i], "rule", at)) {
        c.rule_index = in.number(*rule, at + "/rule", kMaxEntries);
      }
      plan.network.cidrs.push_back(c);
    }
  }
  if (const nlohmann::json* b = in.field(j, "budgets", "")) {
    plan.budgets.wall_clock_ns = in.optional(*b, "wall_clock_ns", "/budgets");
    plan.budgets.syscalls = in.optional(*b, "syscalls", "/budgets");
    plan.budgets.tool_calls = in.optional(*b, "tool_calls", "/budgets");
    plan.budgets.processes = in.optional(*b, "processes", "/budgets");
    plan.budgets.memory_bytes = in.optional(*b, "memory_bytes", "/budgets");
    plan.budgets.egress_bytes = in.optional(*b, "egress_bytes", "/budgets");
    plan.budgets.cost_micro_usd = in.optional(*b, "cost_micro_usd", "/budgets");
  }
  if (const nlohmann::json* a = in.field(j, "audit", "")) {
    plan.audit.files = in.boolean(*a, "files", "/audit");
    plan.audit.syscalls = in.boolean(*a, "syscalls", "/audit");
  }
  if (in.boolean(j, "baseline", "")) plan.baseline = Baseline{};
  const nlohmann::json& tools = in.list(j, "tools", "");
  for (size_t i = 0; i < tools.size() && in.ok(); ++i) {
    std::string at = "/tools/" + std::to_string(i);
    ToolEntry t;
    t.index = i;
    t.name = in.text(tools[i], "name", at);
    t.path = in.text(tools[i], "path", at);
    t.max_calls = in.optional(tools[i], "max_calls", at);
    if (tools[i].is_object() && tools[i].contains("tree"))
      t.tree = in.boolean(tools[i], "tree", at);
    if (const nlohmann::json* cost = in.field(tools[i], "cost_micro_usd", at)) {
      t.cost_micro_usd = in.number(*cost, at + "/cost_micro_usd");
    }
    if (t.path.empty() || t.path[0] != '/') in.fail(at + "/path", "expected an absolute path");
    plan.tools.push_back(t);
  }
  const nlohmann::json& rules = in.list(j, "rules", "");
  for (size_t i = 0; i < rules.size() && in.ok(); ++i) {
    std::string at = "/rules/" + std::to_string(i);
    Rule r;
    r.id = in.text(rules[i], "id", at);
    r.after.read = in.strings(rules[i], "after_read", at);
    r.after.exec = in.strings(rules[i], "after_exec", at);
    const nlohmann::json& connect = in.list(rules[i], "after_connect", at);
    for (size_t c = 0; c < connect.size() && in.ok(); ++c) {
      std::string cat = at + "/after_connect/" + std::to_string(c);
      ConnectTrigger trigger;
      if (const nlohmann::json* index = in.field(connect[c], "egress_index", cat)) {
        if (!index->is_null()) trigger.egress_index = in.number(*index, cat, kMaxEntries);
      }
      trigger.host = in.text(connect[c], "host", cat);
      r.after.connect.push_back(trigger);
    }
    r.deny.network = in.boolean(rules[i], "deny_network", at);
    r.deny.tools = in.strings(rules[i], "deny_tools", at);
    r.deny.hosts = in.strings(rules[i], "deny_hosts", at);
    plan.rules.push_back(r);
  }
  if (!in.ok()) {
    error = in.error;
    return std::nullopt;
  }
  return plan;
}

}  // namespace policy
