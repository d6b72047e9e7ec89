#include "launcher/daemon/protocol.h"

#include <limits>
#include <type_traits>

#include "policy/bpf_plan.h"

namespace launcher {
namespace {

constexpr size_t kMaxEntries = 65536;  // any list or map in a request
constexpr size_t kMaxTokenLength = 64;
constexpr size_t kMaxStateBytes = 65536;
constexpr size_t kMaxTriggerTreeKeys = 262144;  // bpf::kMaxReadTriggerFiles

nlohmann::json optional_number(const std::optional<uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// Field access that names, as a JSON pointer, the first field that is wrong.
struct Reader {
  std::string error;
  bool ok() const { return error.empty(); }
  void fail(const std::string& where, const std::string& what) {
    if (error.empty()) error = where + ": " + what;
  }
  static std::string at(const std::string& where, const std::string& key) {
    return where + "/" + key;
  }
  const nlohmann::json* field(const nlohmann::json& obj, const char* key,
                              const std::string& where) {
    if (!obj.is_object()) {
      fail(where.empty() ? "/" : where, "expected an object");
      return nullptr;
    }
    auto it = obj.find(key);
    if (it == obj.end()) {
      fail(at(where, key), "missing");
      return nullptr;
    }
    return &*it;
  }
  bool boolean(const nlohmann::json& obj, const char* key, const std::string& where) {
    const nlohmann::json* v = field(obj, key, where);
    if (v && !v->is_boolean()) fail(at(where, key), "expected true or false");
    return v && v->is_boolean() && v->get<bool>();
  }
  std::string text(const nlohmann::json& obj, const char* key, const std::string& where) {
    const nlohmann::json* v = field(obj, key, where);
    if (v && !v->is_string()) fail(at(where, key), "expected a string");
    return v && v->is_string() ? v->get<std::string>() : "";
  }
  // A whole number that is not negative; JSON built in memory holds small ones as signed.
  static bool whole(const nlohmann::json& v) {
    return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
  }
  uint64_t number(const nlohmann::json& v, const std::string& where,
                  uint64_t max = std::numeric_limits<uint64_t>::max()) {
    if (!whole(v) || v.get<uint64_t>() > max) {
      fail(where, "expected a whole number up to " + std::to_string(max));
      return 0;
    }
    return v.get<uint64_t>();
  }
  uint64_t number(const nlohmann::json& obj, const char* key, const std::string& where,
                  uint64_t max = std::numeric_limits<uint64_t>::max()) {
    const nlohmann::json* v = field(obj, key, where);
    return v ? number(*v, at(where, key), max) : 0;
  }
  std::optional<uint64_t> optional(const nlohmann::json& obj, const char* key,
                                   const std::string& where) {
    const nlohmann::json* v = field(obj, key, where);
    if (!v || v->is_null()) return std::nullopt;
    return number(*v, at(where, key));
  }
  uint16_t port(const nlohmann::json& v, const std::string& where) {
    if (!whole(v) || v.get<uint64_t>() > 65535) {
      fail(where, "expected a port from 0 to 65535");
      return 0;
    }
    return static_cast<uint16_t>(v.get<uint64_t>());
  }
  const nlohmann::json& list(const nlohmann::json& obj, const char* key, const std::string& where) {
    static const nlohmann::json kEmpty = nlohmann::json::array();
    const nlohmann::json* v = field(obj, key, where);
    if (!v) return kEmpty;
    if (!v->is_array() || v->size() > kMaxEntries) {
      fail(at(where, key), "expected a list of at most " + std::to_string(kMaxEntries));
      return kEmpty;
    }
    return *v;
  }
  const nlohmann::json& object(const nlohmann::json& obj, const char* key,
                               const std::string& where) {
    static const nlohmann::json kEmpty = nlohmann::json::object();
    const nlohmann::json* v = field(obj, key, where);
    if (!v) return kEmpty;
    if (!v->is_object() || v->size() > kMaxEntries) {
      fail(at(where, key), "expected an object of at most " + std::to_string(kMaxEntries));
      return kEmpty;
    }
    return *v;
  }
  // [first, last] of two ports: a pair at `where`.
  std::pair<uint16_t, uint16_t> port_pair(const nlohmann::json& v, const std::string& where) {
    if (!v.is_array() || v.size() != 2) {
      fail(where, "expected [first, last]");
      return {0, 0};
    }
    return {port(v[0], where + "/0"), port(v[1], where + "/1")};
  }
  std::vector<policy::PortRange> ports(const nlohmann::json& obj, const std::string& where) {
    std::vector<policy::PortRange> out;
    const nlohmann::json& l = list(obj, "ports", where);
    for (size_t i = 0; i < l.size() && ok(); ++i) {
      std::string here = at(where, "ports/" + std::to_string(i));
      auto [first, last] = port_pair(l[i], here);
      if (ok() && first > last) fail(here, "the first port is above the last");
      out.push_back({first, last});
    }
    return out;
  }
  policy::Protocol protocol(const nlohmann::json& obj, const std::string& where) {
    std::string p = text(obj, "protocol", where);
    if (ok() && p != "tcp" && p != "udp") fail(at(where, "protocol"), "expected tcp or udp");
    return p == "udp" ? policy::Protocol::udp : policy::Protocol::tcp;
  }
  policy::Cidr cidr(const nlohmann::json& obj, const std::string& where) {
    std::string t = text(obj, "cidr", where);
    if (!ok()) return {};
    policy::Parsed<policy::Cidr> parsed = policy::parse_cidr(t);
    if (!parsed) {
      fail(at(where, "cidr"), "expected " + parsed.error);
      return {};
    }
    return *parsed.value;
  }
  std::string token(const nlohmann::json& obj, const std::string& where) {
    std::string t = text(obj, "token", where);
    if (ok() && (t.empty() || t.size() > kMaxTokenLength ||
                 t.find_first_not_of("0123456789abcdef") != std::string::npos)) {
      fail(at(where, "token"),
           "expected a run's token (at most " + std::to_string(kMaxTokenLength) + " hex digits)");
    }
    return t;
  }
  policy::EnforcementPlan plan(const nlohmann::json& obj, const std::string& where) {
    const nlohmann::json* v = field(obj, "plan", where);
    if (!v) return {};
    std::string why;
    std::optional<policy::EnforcementPlan> plan = policy::bpf_plan_from_json(*v, why);
    if (!plan) {
      // bpf_plan names the field from the plan's root: "/network/mode: ..." or ": ...".
      if (error.empty()) error = at(where, "plan") + why;
      return {};
    }
    return *plan;
  }

  // The parts, at `where`.
  ProtocolNeeds needs(const nlohmann::json& j, const std::string& where);
  ProtocolFiles files(const nlohmann::json& j, const std::string& where);
  std::map<std::string, std::vector<ProtocolFileKey>> trigger_trees(const nlohmann::json& j,
                                                                    const std::string& where);
  ProtocolLimits limits(const nlohmann::json& j, const std::string& where);
  ProtocolCgroup cgroup(const nlohmann::json& j, const std::string& where);
  ProtocolBpfReport bpf_report(const nlohmann::json& j, const std::string& where);
};

ProtocolNeeds Reader::needs(const nlohmann::json& j, const std::string& where) {
  ProtocolNeeds n;
  n.egress = boolean(j, "egress", where);
  n.egress_bytes = boolean(j, "egress_bytes", where);
  n.exec = boolean(j, "exec", where);
  n.sys_enter = boolean(j, "sys_enter", where);
  n.sys_exit = boolean(j, "sys_exit", where);
  n.behaviour = boolean(j, "behaviour", where);
  return n;
}

ProtocolFiles Reader::files(const nlohmann::json& j, const std::string& where) {
  ProtocolFiles f;
  const nlohmann::json& scripts = list(j, "script_tools", where);
  for (size_t i = 0; i < scripts.size() && ok(); ++i) {
    f.script_tools.push_back(
        number(scripts[i], at(where, "script_tools/" + std::to_string(i)), kMaxEntries));
  }
  const nlohmann::json& loaders = list(j, "loaders", where);
  for (size_t i = 0; i < loaders.size() && ok(); ++i) {
    if (!loaders[i].is_string())
      fail(at(where, "loaders/" + std::to_string(i)), "expected a string");
    if (ok()) f.loaders.push_back(loaders[i].get<std::string>());
  }
  const nlohmann::json& keys = object(j, "keys", where);
  for (auto it = keys.begin(); it != keys.end() && ok(); ++it) {
    std::string here = at(where, "keys/" + it.key());
    const nlohmann::json& key = it.value();
    if (!key.is_array() || key.size() != 2) {
      fail(here, "expected [device, inode]");
      break;
    }
    f.keys[it.key()] = {number(key[0], here + "/0"), number(key[1], here + "/1")};
  }
  if (ok() && j.contains("trigger_trees")) f.trigger_trees = trigger_trees(j, where);
  return f;
}

// {path: [[device, inode], ...]}: a tree may hold up to kMaxTriggerTreeKeys (the daemon's eBPF
// layer caps a run's read triggers again).
std::map<std::string, std::vector<ProtocolFileKey>> Reader::trigger_trees(
    const nlohmann::json& j, const std::string& where) {
  std::map<std::string, std::vector<ProtocolFileKey>> trees;
  const nlohmann::json& all = object(j, "trigger_trees", where);
  for (auto it = all.begin(); it != all.end() && ok(); ++it) {
    std::string here = at(where, "trigger_trees/" + it.key());
    if (!it.value().is_array() || it.value().size() > kMaxTriggerTreeKeys) {
      fail(here, "expected a list of at most " + std::to_string(kMaxTriggerTreeKeys));
      break;
    }
    std::vector<ProtocolFileKey>& tree = trees[it.key()];
    tree.reserve(it.value().size());
    for (size_t i = 0; i < it.value().size() && ok(); ++i) {
      const nlohmann::json& key = it.value()[i];
      if (!key.is_array() || key.size() != 2 || !whole(key[0]) || !whole(key[1])) {
        fail(here + "/" + std::to_string(i), "expected [device, inode]");
        break;
      }
      tree.push_back({key[0].get<uint64_t>(), key[1].get<uint64_t>()});
    }
  }
  return trees;
}

ProtocolLimits Reader::limits(const nlohmann::json& j, const std::string& where) {
  ProtocolLimits l;
  l.pids_max = optional(j, "pids_max", where);
  l.memory_max = optional(j, "memory_max", where);
  return l;
}

ProtocolCgroup Reader::cgroup(const nlohmann::json& j, const std::string& where) {
  ProtocolCgroup c;
  c.v2 = text(j, "v2", where);
  if (ok() && (c.v2.empty() || c.v2[0] != '/')) fail(at(where, "v2"), "expected an absolute path");
  const nlohmann::json& v1 = object(j, "v1", where);
  for (auto it = v1.begin(); it != v1.end() && ok(); ++it) {
    if (!it.value().is_string()) fail(at(where, "v1/" + it.key()), "expected a string");
    if (ok()) c.v1[it.key()] = it.value().get<std::string>();
  }
  if (const nlohmann::json* p = field(j, "placement", where)) {
    c.placement_pids = text(*p, "pids", at(where, "placement"));
    c.placement_memory = text(*p, "memory", at(where, "placement"));
  }
  if (const nlohmann::json* l = field(j, "limits", where))
    c.limits = limits(*l, at(where, "limits"));
  return c;
}

ProtocolBpfReport Reader::bpf_report(const nlohmann::json& j, const std::string& where) {
  ProtocolBpfReport r;
  if (const nlohmann::json* p = field(j, "programs", where)) r.programs = *p;
  r.daemon = text(j, "daemon", where);
  r.ring_buffer_bytes = number(j, "ring_buffer_bytes", where);
  return r;
}

// The result of reading with `in`, or nullopt with its error.
template <class T>
std::optional<T> result(const Reader& in, T value, std::string& error) {
  if (!in.ok()) {
    error = in.error;
    return std::nullopt;
  }
  return value;
}

const char* protocol_name(policy::Protocol p) {
  return p == policy::Protocol::udp ? "udp" : "tcp";
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char ch : bytes) {
    hex += digits[ch >> 4];
    hex += digits[ch & 15];
  }
  return hex;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> from_hex(const std::string& hex, size_t max_bytes = kMaxStateBytes) {
  if (hex.size() % 2 != 0 || hex.size() > 2 * max_bytes) return std::nullopt;
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int high = hex_digit(hex[i]), low = hex_digit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes += static_cast<char>(high * 16 + low);
  }
  return bytes;
}

}  // namespace

// ---- Parts ----

nlohmann::json ProtocolNeeds::to_json() const {
  return {{"egress", egress},       {"egress_bytes", egress_bytes}, {"exec", exec},
          {"sys_enter", sys_enter}, {"sys_exit", sys_exit},         {"behaviour", behaviour}};
}

std::optional<ProtocolNeeds> ProtocolNeeds::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, in.needs(j, ""), error);
}

nlohmann::json ProtocolFiles::to_json() const {
  nlohmann::json k = nlohmann::json::object();
  for (const auto& [path, key] : keys)
    k[path] = {key.dev, key.ino};
  nlohmann::json trees = nlohmann::json::object();
  for (const auto& [path, tree] : trigger_trees) {
    nlohmann::json& list = trees[path] = nlohmann::json::array();
    for (const ProtocolFileKey& key : tree)
      list.push_back({key.dev, key.ino});
  }
  return {
      {"script_tools", script_tools}, {"loaders", loaders}, {"keys", k}, {"trigger_trees", trees}};
}

std::optional<ProtocolFiles> ProtocolFiles::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, in.files(j, ""), error);
}

nlohmann::json ProtocolLimits::to_json() const {
  return {{"pids_max", optional_number(pids_max)}, {"memory_max", optional_number(memory_max)}};
}

std::optional<ProtocolLimits> ProtocolLimits::from_json(const nlohmann::json& j,
                                                        std::string& error) {
  Reader in;
  return result(in, in.limits(j, ""), error);
}

nlohmann::json ProtocolCgroup::to_json() const {
  return {{"v2", v2},
          {"v1", v1},
          {"placement", {{"pids", placement_pids}, {"memory", placement_memory}}},
          {"limits", limits.to_json()}};
}

std::optional<ProtocolCgroup> ProtocolCgroup::from_json(const nlohmann::json& j,
                                                        std::string& error) {
  Reader in;
  return result(in, in.cgroup(j, ""), error);
}

// ---- Requests ----

nlohmann::json CreateRequest::to_json() const {
  return {{"plan", policy::bpf_plan_to_json(plan)},
          {"needs", needs.to_json()},
          {"files", files.to_json()},
          {"dns_ports", dns_ports ? nlohmann::json({dns_ports->first, dns_ports->second})
                                  : nlohmann::json(nullptr)},
          {"limits", limits.to_json()},
          {"grace_ns", grace_ns}};
}

std::optional<CreateRequest> CreateRequest::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  CreateRequest r;
  r.plan = in.plan(j, "");
  if (const nlohmann::json* n = in.field(j, "needs", "")) r.needs = in.needs(*n, "/needs");
  if (const nlohmann::json* f = in.field(j, "files", "")) r.files = in.files(*f, "/files");
  for (size_t i = 0; i < r.files.script_tools.size() && in.ok(); ++i) {
    if (r.files.script_tools[i] >= r.plan.tools.size()) {
      in.fail("/files/script_tools/" + std::to_string(i), "expected the index of a tool");
    }
  }
  if (const nlohmann::json* d = in.field(j, "dns_ports", ""); d && !d->is_null()) {
    r.dns_ports = in.port_pair(*d, "/dns_ports");
  }
  if (const nlohmann::json* l = in.field(j, "limits", "")) r.limits = in.limits(*l, "/limits");
  r.grace_ns = in.number(j, "grace_ns", "");
  return result(in, std::move(r), error);
}

nlohmann::json AdoptRequest::to_json() const {
  return {{"token", token}};
}

std::optional<AdoptRequest> AdoptRequest::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, AdoptRequest{in.token(j, "")}, error);
}

nlohmann::json EventsRequest::to_json() const {
  return {{"token", token}};
}

std::optional<EventsRequest> EventsRequest::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, EventsRequest{in.token(j, "")}, error);
}

nlohmann::json FileOpensRequest::to_json() const {
  return {{"offset", offset}};
}

std::optional<FileOpensRequest> FileOpensRequest::from_json(const nlohmann::json& j,
                                                            std::string& error) {
  Reader in;
  return result(in, FileOpensRequest{in.number(j, "offset", "")}, error);
}

nlohmann::json CostRequest::to_json() const {
  return {{"micro_usd", micro_usd}};
}

std::optional<CostRequest> CostRequest::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, CostRequest{in.number(j, "micro_usd", "")}, error);
}

nlohmann::json AdmitRequest::to_json() const {
  nlohmann::json p = nlohmann::json::array();
  for (const policy::PortRange& range : ports)
    p.push_back({range.first, range.last});
  return {{"cidr", cidr.to_string()},
          {"protocol", protocol_name(protocol)},
          {"ports", p},
          {"rule", rule}};
}

std::optional<AdmitRequest> AdmitRequest::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  AdmitRequest r;
  r.cidr = in.cidr(j, "");
  r.protocol = in.protocol(j, "");
  r.ports = in.ports(j, "");
  r.rule = in.number(j, "rule", "", kMaxEntries);
  return result(in, std::move(r), error);
}

nlohmann::json RevokeRequest::to_json() const {
  return {{"cidr", cidr.to_string()}, {"protocol", protocol_name(protocol)}};
}

std::optional<RevokeRequest> RevokeRequest::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  RevokeRequest r;
  r.cidr = in.cidr(j, "");
  r.protocol = in.protocol(j, "");
  return result(in, std::move(r), error);
}

namespace {

template <class T>
concept HasFields = requires(const T& t) {
  t.to_json();
};

// One alternative of DaemonRequest from `j`, whose "op" named it.
template <class T>
std::optional<DaemonRequest> decode(const nlohmann::json& j, std::string& error) {
  if constexpr (HasFields<T>) {
    std::optional<T> r = T::from_json(j, error);
    if (!r) return std::nullopt;
    return DaemonRequest(std::move(*r));
  } else {
    return DaemonRequest(T{});
  }
}

template <size_t I = 0>
std::optional<DaemonRequest> decode_op(const std::string& op, const nlohmann::json& j,
                                       std::string& error) {
  if constexpr (I == std::variant_size_v<DaemonRequest>) {
    error = "/op: unknown op \"" + op + "\"";
    return std::nullopt;
  } else {
    using T = std::variant_alternative_t<I, DaemonRequest>;
    if (op == T::kOp) return decode<T>(j, error);
    return decode_op<I + 1>(op, j, error);
  }
}

}  // namespace

nlohmann::json to_json(const DaemonRequest& request) {
  return std::visit(
      [](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        nlohmann::json j = nlohmann::json::object();
        if constexpr (HasFields<T>) j = r.to_json();
        j["op"] = T::kOp;
        return j;
      },
      request);
}

std::optional<DaemonRequest> request_from_json(const nlohmann::json& j, std::string& error) {
  if (!j.is_object() || !j.contains("op") || !j["op"].is_string()) {
    error = "expected a JSON object with \"op\"";
    return std::nullopt;
  }
  return decode_op(j["op"].get<std::string>(), j, error);
}

const char* op_of(const DaemonRequest& request) {
  return std::visit([](const auto& r) { return std::decay_t<decltype(r)>::kOp; }, request);
}

// ---- Replies ----

nlohmann::json HelloReply::to_json() const {
  return {{"ok", true},
          {"version", version},
          {"uid", uid},
          {"programs", programs},
          {"cgroup", {{"pids", cgroup_pids}, {"memory", cgroup_memory}}}};
}

std::optional<HelloReply> HelloReply::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  HelloReply r;
  r.version = static_cast<int>(in.number(j, "version", "", std::numeric_limits<int>::max()));
  if (!in.ok() || r.version != kDaemonProtocolVersion) return result(in, std::move(r), error);
  r.uid = static_cast<uint32_t>(in.number(j, "uid", "", std::numeric_limits<uint32_t>::max()));
  r.programs = in.object(j, "programs", "");
  if (const nlohmann::json* c = in.field(j, "cgroup", "")) {
    r.cgroup_pids = in.text(*c, "pids", "/cgroup");
    r.cgroup_memory = in.text(*c, "memory", "/cgroup");
  }
  return result(in, std::move(r), error);
}

nlohmann::json ProtocolBpfReport::to_json() const {
  return {{"programs", programs}, {"daemon", daemon}, {"ring_buffer_bytes", ring_buffer_bytes}};
}

std::optional<ProtocolBpfReport> ProtocolBpfReport::from_json(const nlohmann::json& j,
                                                              std::string& error) {
  Reader in;
  return result(in, in.bpf_report(j, ""), error);
}

nlohmann::json RunReply::to_json() const {
  return {{"ok", true},
          {"token", token},
          {"cgroup_id", cgroup_id},
          {"cgroup", cgroup.to_json()},
          {"cgroup_report", cgroup_report},
          {"bpf", bpf.to_json()},
          {"descriptors", descriptors}};
}

std::optional<RunReply> RunReply::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  RunReply r;
  r.token = in.token(j, "");
  r.cgroup_id = in.number(j, "cgroup_id", "");
  if (const nlohmann::json* c = in.field(j, "cgroup", "")) r.cgroup = in.cgroup(*c, "/cgroup");
  r.cgroup_report = in.object(j, "cgroup_report", "");
  if (const nlohmann::json* b = in.field(j, "bpf", "")) r.bpf = in.bpf_report(*b, "/bpf");
  const nlohmann::json& names = in.list(j, "descriptors", "");
  for (size_t i = 0; i < names.size(); ++i) {
    if (!names[i].is_string()) in.fail("/descriptors/" + std::to_string(i), "expected a string");
    if (names[i].is_string()) r.descriptors.push_back(names[i].get<std::string>());
  }
  return result(in, std::move(r), error);
}

nlohmann::json CountersReply::to_json() const {
  nlohmann::json h = nlohmann::json::array();
  for (const auto& [nr, count] : histogram)
    h.push_back({nr, count});
  return {
      {"ok", true},     {"state", to_hex(state)},       {"syscalls_pending", syscalls_pending},
      {"histogram", h}, {"forward_lost", forward_lost}, {"forward_suppressed", forward_suppressed}};
}

std::optional<CountersReply> CountersReply::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  CountersReply r;
  std::optional<std::string> state = from_hex(in.text(j, "state", ""));
  if (in.ok() && !state) {
    in.fail("/state",
            "expected hex digits of at most " + std::to_string(kMaxStateBytes) + " bytes");
  }
  if (state) r.state = std::move(*state);
  r.syscalls_pending = in.number(j, "syscalls_pending", "");
  const nlohmann::json& h = in.list(j, "histogram", "");
  for (size_t i = 0; i < h.size() && in.ok(); ++i) {
    std::string here = "/histogram/" + std::to_string(i);
    if (!h[i].is_array() || h[i].size() != 2 || !h[i][0].is_number_integer() ||
        h[i][0].get<int64_t>() < 0 || h[i][0].get<int64_t>() > std::numeric_limits<int>::max()) {
      in.fail(here, "expected [syscall number, count]");
      break;
    }
    r.histogram.emplace_back(h[i][0].get<int>(), in.number(h[i][1], here + "/1"));
  }
  r.forward_lost = in.number(j, "forward_lost", "");
  // Optional: a daemon from before --event-rate suppressed nothing.
  if (j.is_object() && j.contains("forward_suppressed")) {
    r.forward_suppressed = in.number(j, "forward_suppressed", "");
  }
  return result(in, std::move(r), error);
}

nlohmann::json FileOpensReply::to_json() const {
  return {{"ok", true}, {"offset", offset}, {"total", total}, {"entries", to_hex(entries)}};
}

std::optional<FileOpensReply> FileOpensReply::from_json(const nlohmann::json& j,
                                                        std::string& error) {
  Reader in;
  FileOpensReply r;
  r.offset = in.number(j, "offset", "");
  r.total = in.number(j, "total", "");
  constexpr size_t kMaxPageBytes = kFileOpensPerPage * kFileOpenEntryBytes;
  std::optional<std::string> entries = from_hex(in.text(j, "entries", ""), kMaxPageBytes);
  if (in.ok() && (!entries || entries->size() % kFileOpenEntryBytes != 0)) {
    in.fail("/entries", "expected hex digits of whole entries of " +
                            std::to_string(kFileOpenEntryBytes) + " bytes, at most " +
                            std::to_string(kFileOpensPerPage));
  }
  if (entries) r.entries = std::move(*entries);
  if (in.ok() && (r.offset > r.total || r.count() > r.total - r.offset)) {
    in.fail("/offset", "entries " + std::to_string(r.offset) + " to " +
                           std::to_string(r.offset + r.count()) + " are past the total of " +
                           std::to_string(r.total));
  }
  return result(in, std::move(r), error);
}

nlohmann::json RulesFiredReply::to_json() const {
  return {{"ok", true}, {"bits", bits}};
}

std::optional<RulesFiredReply> RulesFiredReply::from_json(const nlohmann::json& j,
                                                          std::string& error) {
  Reader in;
  return result(in, RulesFiredReply{in.number(j, "bits", "")}, error);
}

nlohmann::json KillReply::to_json() const {
  return {{"ok", true}, {"empty", empty}};
}

std::optional<KillReply> KillReply::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, KillReply{in.boolean(j, "empty", "")}, error);
}

nlohmann::json EmptyReply::to_json() const {
  return {{"ok", true}};
}

std::optional<EmptyReply> EmptyReply::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  if (!j.is_object()) in.fail("/", "expected an object");
  return result(in, EmptyReply{}, error);
}

nlohmann::json RefusalReply::to_json() const {
  return {{"ok", false}, {"error", error}};
}

std::optional<RefusalReply> RefusalReply::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  return result(in, RefusalReply{in.text(j, "error", "")}, error);
}

// ---- State ----

nlohmann::json RunState::to_json() const {
  return {{"token", token},
          {"uid", uid},
          {"gid", gid},
          {"launcher", launcher},
          {"cgroup_id", cgroup_id},
          {"cgroup", cgroup.to_json()},
          {"plan", policy::bpf_plan_to_json(plan)},
          {"needs", needs.to_json()}};
}

std::optional<RunState> RunState::from_json(const nlohmann::json& j, std::string& error) {
  Reader in;
  RunState r;
  r.token = in.token(j, "");
  r.uid = static_cast<uint32_t>(in.number(j, "uid", "", std::numeric_limits<uint32_t>::max()));
  r.gid = static_cast<uint32_t>(in.number(j, "gid", "", std::numeric_limits<uint32_t>::max()));
  r.launcher =
      static_cast<int32_t>(in.number(j, "launcher", "", std::numeric_limits<int32_t>::max()));
  r.cgroup_id = in.number(j, "cgroup_id", "");
  if (const nlohmann::json* c = in.field(j, "cgroup", "")) r.cgroup = in.cgroup(*c, "/cgroup");
  r.plan = in.plan(j, "");
  if (const nlohmann::json* n = in.field(j, "needs", "")) r.needs = in.needs(*n, "/needs");
  return result(in, std::move(r), error);
}

}  // namespace launcher
