#include "launcher/events/siem_formats.h"

#include <utility>

#include "launcher/events/audit_timeline.h"

namespace launcher {
namespace {

using nlohmann::json;

constexpr const char* kProduct = "Agent Enclosure";

std::string text(const json& r, const char* key) {
  if (!r.is_object() || !r.contains(key)) return {};
  const json& v = r[key];
  return v.is_string() ? v.get<std::string>() : v.is_null() ? std::string() : v.dump();
}

std::string basename_of(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return name.empty() ? path : name;
}

std::string joined(const json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const json& item : list)
    out += (out.empty() ? "" : " ") + (item.is_string() ? item.get<std::string>() : item.dump());
  return out;
}

// Milliseconds since the epoch of the record's ts (0 when it has none).
int64_t epoch_ms(const json& r) {
  auto t = parse_rfc3339(text(r, "ts"));
  return t ? t->first * 1000 + t->second / 1000000 : 0;
}

// What is mapped, where it came from and under which permission set.
struct Source {
  const json& record;
  const json& start;  // the run's start record, or null
  const std::string& version;
  std::string_view line;  // as logged, or empty
  std::string type() const { return text(record, "type"); }
  std::string original() const {
    return line.empty() ? record.dump(-1, ' ', false, json::error_handler_t::replace)
                        : std::string(line);
  }
  std::string section() const { return text(record, "section"); }
  const json& manifest() const {
    static const json none = json::object();
    return record.contains("manifest") && record["manifest"].is_object() ? record["manifest"]
                                                                         : none;
  }
};

// The enclosure's own fields, carried beside each format's: run, manifest, approver, reason.
json enclosure_fields(const Source& s) {
  json e = {{"run", text(s.record, "run")},
            {"seq", s.record.value("seq", json())},
            {"type", s.type()},
            {"manifest", s.manifest()}};
  if (!s.start.is_null()) {
    e["approved_by"] = text(s.start, "approved_by");
    e["manifest_reason"] = text(s.start, "reason");
  }
  for (const char* key : {"section", "origin", "action", "reason", "rule"}) {
    if (s.record.contains(key)) e[key] = s.record[key];
  }
  return e;
}

bool is_network_deny(const Source& s) {
  return s.type() == "deny" && (s.section() == "network" || s.record.contains("destination") ||
                                s.record.contains("address"));
}

// start and exit are the launcher's (its pid, the invoking user); the rest are the agent's.
bool launcher_event(const Source& s) {
  return s.type() == "start" || s.type() == "exit";
}

bool is_file_deny(const Source& s) {
  return s.type() == "deny" && s.section() == "filesystem";
}
bool is_exec_deny(const Source& s) {
  return s.type() == "deny" && s.section() == "tools";
}

// ---- OCSF ----

struct OcsfClass {
  int uid;
  const char* name;
  int category_uid;
  const char* category_name;
};

constexpr OcsfClass kFileSystemActivity = {1001, "File System Activity", 1, "System Activity"};
constexpr OcsfClass kProcessActivity = {1007, "Process Activity", 1, "System Activity"};
constexpr OcsfClass kDetectionFinding = {2004, "Detection Finding", 2, "Findings"};
constexpr OcsfClass kNetworkActivity = {4001, "Network Activity", 4, "Network Activity"};
constexpr OcsfClass kDnsActivity = {4003, "DNS Activity", 4, "Network Activity"};

json ocsf_metadata(const Source& s) {
  json labels = json::array();
  labels.push_back("enclosure.run=" + text(s.record, "run"));
  labels.push_back("enclosure.manifest=" + text(s.manifest(), "name"));
  labels.push_back("enclosure.manifest_digest=" + text(s.manifest(), "digest"));
  if (!s.start.is_null()) labels.push_back("enclosure.approved_by=" + text(s.start, "approved_by"));
  return {{"version", kOcsfVersion},
          {"product", {{"name", kProduct}, {"vendor_name", kProduct}, {"version", s.version}}},
          {"uid", text(s.record, "run") + "/" + text(s.record, "seq")},
          {"correlation_uid", text(s.record, "run")},
          {"original_time", text(s.record, "ts")},
          {"log_name", "enclosure events"},
          {"labels", labels}};
}

json ocsf_user(const json& u) {
  json out = {{"uid", text(u, "uid")}};
  if (u.contains("name")) out["name"] = text(u, "name");
  return out;
}

// The actor: the process concerned and, for the agent's events, the user it runs as.
json ocsf_actor(const Source& s) {
  json actor = {{"process", {{"pid", s.record.value("pid", 0)}}}};
  const char* who = launcher_event(s) ? "invoked_by" : "agent_user";
  if (!s.start.is_null() && s.start.contains(who)) actor["user"] = ocsf_user(s.start[who]);
  return actor;
}

json ocsf_device(const Source& s) {
  json device = {{"type_id", 0}, {"type", "Unknown"}};
  if (!s.start.is_null() && s.start.contains("received"))
    device["hostname"] = text(s.start["received"], "hostname");
  return device;
}

json ocsf_base(const Source& s, const OcsfClass& c, int activity_id, const char* activity) {
  json o = {{"class_uid", c.uid},
            {"class_name", c.name},
            {"category_uid", c.category_uid},
            {"category_name", c.category_name},
            {"activity_id", activity_id},
            {"activity_name", activity},
            {"type_uid", c.uid * 100 + activity_id},
            {"type_name", std::string(c.name) + ": " + activity},
            {"time", epoch_ms(s.record)},
            {"severity_id", 1},
            {"severity", "Informational"},
            {"status_id", 1},
            {"status", "Success"},
            {"message", event_message(s.record)},
            {"metadata", ocsf_metadata(s)},
            {"raw_data", s.original()},
            {"unmapped", {{"enclosure", enclosure_fields(s)}}}};
  return o;
}

// A refusal: failed, blocked and denied (the security_control profile's fields).
void ocsf_refused(json& o, const Source& s, int severity_id, const char* severity) {
  o["status_id"] = 2;
  o["status"] = "Failure";
  o["status_detail"] =
      text(s.record, "reason").empty() ? text(s.record, "action") : text(s.record, "reason");
  o["severity_id"] = severity_id;
  o["severity"] = severity;
  o["action_id"] = 2;
  o["action"] = "Denied";
  o["disposition_id"] = 2;
  o["disposition"] = "Blocked";
  o["metadata"]["profiles"] = json::array({"security_control"});
}

json ocsf_process(const Source& s) {
  const json& r = s.record;
  std::string type = s.type();
  bool exit = type == "exit";
  json o = ocsf_base(s, kProcessActivity, exit ? 2 : 1, exit ? "Terminate" : "Launch");
  json process = {{"pid", r.value("pid", 0)}};
  if (type == "start") {
    process["cmd_line"] = joined(r.value("command", json::array()));
    process["name"] = text(r, "tool");
  } else if (r.contains("path")) {
    process["file"] = {{"path", text(r, "path")},
                       {"name", basename_of(text(r, "path"))},
                       {"type_id", 1},
                       {"type", "Regular File"}};
    process["name"] = r.contains("tool") ? text(r, "tool") : basename_of(text(r, "path"));
  } else {
    process["name"] = text(r, "tool");
  }
  if (r.contains("argv")) process["cmd_line"] = joined(r["argv"]);
  if (r.contains("ppid")) process["parent_process"] = {{"pid", r["ppid"]}};
  if (exit) {
    o["exit_code"] = r.value("exit_code", 0);
    bool ok = text(r, "ended_by") == "exited" && r.value("exit_code", 0) == 0;
    o["status_id"] = ok ? 1 : 2;
    o["status"] = ok ? "Success" : "Failure";
    o["status_detail"] = text(r, "ended_by");
  }
  if (r.contains("killed")) {
    o["status_id"] = 2;
    o["status"] = "Failure";
    o["status_detail"] = "killed: " + text(r, "killed");
  }
  if (is_exec_deny(s)) ocsf_refused(o, s, 3, "Medium");
  o["process"] = process;
  o["actor"] = ocsf_actor(s);
  o["device"] = ocsf_device(s);
  return o;
}

// The File System Activity activity of a refused call (by its system call) or an open.
std::pair<int, const char*> file_activity(const std::string& syscall) {
  auto is = [&syscall](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      if (syscall == n) return true;
    }
    return false;
  };
  if (is({"unlink", "unlinkat", "rmdir"})) return {4, "Delete"};
  if (is({"rename", "renameat", "renameat2"})) return {5, "Rename"};
  if (is({"mkdir", "mkdirat", "mknod", "mknodat", "symlink", "symlinkat", "link", "linkat",
          "creat"}))
    return {1, "Create"};
  if (is({"truncate"})) return {3, "Update"};
  if (is({"chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat"}))
    return {7, "Set Security"};
  if (is({"utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "removexattr",
          "lremovexattr"}))
    return {6, "Set Attributes"};
  return {14, "Open"};
}

json ocsf_file(const Source& s) {
  const json& r = s.record;
  auto [activity, name] = file_activity(text(r, "syscall"));
  json o = ocsf_base(s, kFileSystemActivity, activity, name);
  std::string path = text(r, "path");
  o["file"] = {{"path", path},
               {"name", path.empty() ? "(unreadable)" : basename_of(path)},
               {"type_id", 0},
               {"type", "Unknown"}};
  if (r.contains("new_path")) {
    std::string to = text(r, "new_path");
    o["file_result"] = {
        {"path", to}, {"name", basename_of(to)}, {"type_id", 0}, {"type", "Unknown"}};
  }
  if (s.type() == "open_count") o["count"] = r.value("opens", 1);
  if ((s.type() == "open" || s.type() == "open_count") && !r.value("ok", true)) {
    o["status_id"] = 2;
    o["status"] = "Failure";
    o["status_detail"] = text(r, "result");
  }
  if (is_file_deny(s)) ocsf_refused(o, s, 3, "Medium");
  o["actor"] = ocsf_actor(s);
  o["device"] = ocsf_device(s);
  return o;
}

json ocsf_network(const Source& s) {
  const json& r = s.record;
  bool deny = s.type() == "deny";
  json o = ocsf_base(s, kNetworkActivity, deny ? 5 : 1, deny ? "Refuse" : "Open");
  json dst = json::object();
  if (r.contains("address")) dst["ip"] = text(r, "address");
  if (r.contains("port")) dst["port"] = r["port"];
  if (r.contains("name")) dst["hostname"] = text(r, "name");
  if (!r.contains("address") && r.contains("path")) dst["name"] = text(r, "path");  // unix
  if (dst.empty()) dst["name"] = text(r, "destination").empty() ? "(none)" : text(r, "destination");
  o["dst_endpoint"] = dst;
  o["connection_info"] = {{"direction_id", 2}, {"direction", "Outbound"}};
  if (r.contains("protocol")) o["connection_info"]["protocol_name"] = text(r, "protocol");
  if (deny) ocsf_refused(o, s, 3, "Medium");
  o["actor"] = ocsf_actor(s);
  o["device"] = ocsf_device(s);
  return o;
}

std::pair<int, const char*> dns_rcode(const std::string& result) {
  if (result == "answered") return {0, "NoError"};
  if (result == "refused") return {5, "Refused"};
  if (result == "malformed") return {1, "FormError"};
  return {2, "ServError"};
}

json ocsf_dns(const Source& s) {
  const json& r = s.record;
  json o = ocsf_base(s, kDnsActivity, 6, "Traffic");
  o["query"] = {{"hostname", r.contains("name") ? text(r, "name") : "(malformed query)"}};
  if (r.contains("query_type")) o["query"]["type"] = text(r, "query_type");
  auto [rcode_id, rcode] = dns_rcode(text(r, "result"));
  o["rcode_id"] = rcode_id;
  o["rcode"] = rcode;
  json answers = json::array();
  for (const json& a : r.value("answers", json::array()))
    answers.push_back({{"rdata", text(a, "address")}, {"ttl", a.value("ttl", 0)}});
  if (!answers.empty()) o["answers"] = answers;
  if (r.contains("transport")) o["connection_info"] = {{"protocol_name", text(r, "transport")}};
  if (text(r, "result") != "answered") {
    o["status_id"] = 2;
    o["status"] = "Failure";
    o["status_detail"] = text(r, "reason").empty() ? text(r, "error") : text(r, "reason");
  }
  o["actor"] = ocsf_actor(s);
  o["device"] = ocsf_device(s);
  return o;
}

json ocsf_finding(const Source& s) {
  const json& r = s.record;
  json o = ocsf_base(s, kDetectionFinding, 1, "Create");
  std::string title = s.type() == "budget" ? "budget " + text(r, "name") + " reached"
                      : s.type() == "rule" ? "composition rule " + text(r, "rule") + " fired"
                      : s.type() == "anomaly"
                          ? "behaviour anomaly: " + text(r, "what")
                          : "denied " + text(r, "syscall") + " (" + text(r, "section") + ")";
  o["finding_info"] = {{"uid", text(r, "run") + "/" + text(r, "seq")},
                       {"title", title},
                       {"desc", event_summary(r)},
                       {"types", json::array({s.type()})}};
  o["status_id"] = 1;
  o["status"] = "New";
  o["is_alert"] = true;
  bool low = s.type() == "rule";
  o["severity_id"] = low ? 2 : 3;
  o["severity"] = low ? "Low" : "Medium";
  if (s.type() == "deny") {
    ocsf_refused(o, s, 3, "Medium");
    o["status_id"] = 1;  // a finding's status: New
    o["status"] = "New";
  }
  o["actor"] = ocsf_actor(s);
  o["device"] = ocsf_device(s);
  return o;
}

json to_ocsf(const Source& s) {
  std::string type = s.type();
  if (type == "start" || type == "exec" || type == "tool_call" || type == "exit" || is_exec_deny(s))
    return ocsf_process(s);
  if (type == "open" || type == "open_count" || is_file_deny(s)) return ocsf_file(s);
  if (type == "connect" || is_network_deny(s)) return ocsf_network(s);
  if (type == "dns") return text(s.record, "result") == "expired" ? json() : ocsf_dns(s);
  if (type == "deny" || type == "anomaly" || type == "budget" || type == "rule")
    return ocsf_finding(s);
  return nullptr;
}

// ---- ECS ----

struct EcsKind {
  const char* kind;
  std::vector<std::string> category;
  std::vector<std::string> type;
};

EcsKind ecs_kind(const Source& s) {
  std::string type = s.type();
  if (type == "start" || type == "exec" || type == "tool_call")
    return {"event", {"process"}, {"start"}};
  if (type == "exit") return {"event", {"process"}, {"end"}};
  if (type == "open" || type == "open_count") return {"event", {"file"}, {"access"}};
  if (type == "connect") return {"event", {"network"}, {"connection", "start", "allowed"}};
  if (type == "dns") return {"event", {"network"}, {"protocol"}};
  if (is_network_deny(s)) return {"event", {"network"}, {"connection", "denied"}};
  if (is_file_deny(s)) return {"event", {"file", "intrusion_detection"}, {"access", "denied"}};
  if (is_exec_deny(s)) return {"event", {"process", "intrusion_detection"}, {"start", "denied"}};
  if (type == "deny") return {"alert", {"intrusion_detection"}, {"denied"}};
  return {"alert", {"intrusion_detection"}, {"info"}};
}

json ecs_labels(const Source& s) {
  json labels = {{"enclosure_run", text(s.record, "run")},
                 {"enclosure_manifest", text(s.manifest(), "name")},
                 {"enclosure_manifest_digest", text(s.manifest(), "digest")}};
  if (s.manifest().contains("revision") && !s.manifest()["revision"].is_null())
    labels["enclosure_manifest_revision"] = text(s.manifest(), "revision");
  if (!s.start.is_null()) labels["enclosure_approved_by"] = text(s.start, "approved_by");
  return labels;
}

bool ecs_failed(const Source& s) {
  const json& r = s.record;
  std::string type = s.type();
  if (type == "deny" || r.contains("killed")) return true;
  if (type == "open" || type == "open_count") return !r.value("ok", true);
  if (type == "dns") return text(r, "result") != "answered";
  if (type == "exit") return text(r, "ended_by") != "exited" || r.value("exit_code", 0) != 0;
  return false;
}

void ecs_process(json& e, const Source& s) {
  const json& r = s.record;
  json p = {{"pid", r.value("pid", 0)}};
  std::string type = s.type();
  if (type == "start") {
    p["args"] = r.value("command", json::array());
    p["name"] = text(r, "tool");
  }
  if ((type == "exec" || type == "tool_call" || is_exec_deny(s)) && r.contains("path")) {
    p["executable"] = text(r, "path");
    p["name"] = basename_of(text(r, "path"));
  }
  if (type == "tool_call") p["name"] = text(r, "tool");
  if (r.contains("argv")) p["args"] = r["argv"];
  if (r.contains("ppid")) p["parent"] = {{"pid", r["ppid"]}};
  if (type == "exit") p["exit_code"] = r.value("exit_code", 0);
  e["process"] = p;
  const char* who = launcher_event(s) ? "invoked_by" : "agent_user";
  if (!s.start.is_null() && s.start.contains(who)) {
    e["user"] = {{"id", text(s.start[who], "uid")}};
    if (s.start[who].contains("name")) e["user"]["name"] = text(s.start[who], "name");
  }
}

void ecs_network(json& e, const Source& s) {
  const json& r = s.record;
  if (r.contains("address") || r.contains("destination") || r.contains("port")) {
    json d = json::object();
    if (r.contains("address")) d["ip"] = d["address"] = text(r, "address");
    if (r.contains("port")) d["port"] = r["port"];
    if (r.contains("name")) d["domain"] = text(r, "name");
    if (d.empty()) d["address"] = text(r, "destination");
    e["destination"] = d;
  }
  if (r.contains("protocol")) e["network"] = {{"transport", text(r, "protocol")}};
  if (s.type() == "dns") {
    e["network"] = {{"protocol", "dns"}, {"transport", text(r, "transport")}};
    json dns = {{"type", "answer"}};
    if (r.contains("name"))
      dns["question"] = {{"name", text(r, "name")}, {"type", text(r, "query_type")}};
    dns["response_code"] = text(r, "result") == "answered"    ? "NOERROR"
                           : text(r, "result") == "refused"   ? "REFUSED"
                           : text(r, "result") == "malformed" ? "FORMERR"
                                                              : "SERVFAIL";
    json answers = json::array();
    for (const json& a : r.value("answers", json::array()))
      answers.push_back({{"data", text(a, "address")}, {"ttl", a.value("ttl", 0)}});
    if (!answers.empty()) dns["answers"] = answers;
    e["dns"] = dns;
  }
}

void ecs_file_and_rule(json& e, const Source& s) {
  const json& r = s.record;
  if ((s.type() == "open" || s.type() == "open_count" || is_file_deny(s)) && r.contains("path")) {
    e["file"] = {{"path", text(r, "path")}, {"name", basename_of(text(r, "path"))}};
  }
  if (r.contains("rule") || r.contains("origin")) {
    json rule = {{"ruleset", text(s.manifest(), "name")}};
    if (r.contains("origin")) rule["reference"] = text(r, "origin");
    std::string id = text(r, "rule").empty() ? text(r, "origin") : text(r, "rule");
    rule["id"] = id;
    rule["name"] = s.type() == "budget" ? text(r, "name") : id;
    e["rule"] = rule;
  } else if (s.type() == "budget" || s.type() == "anomaly") {
    e["rule"] = {{"ruleset", text(s.manifest(), "name")},
                 {"id", s.type() == "budget" ? "/budgets/" + text(r, "name") : "/baseline"},
                 {"name", s.type() == "budget" ? text(r, "name") : text(r, "what")}};
  }
}

json to_ecs(const Source& s) {
  std::string type = s.type();
  if (type != "start" && type != "exec" && type != "tool_call" && type != "exit" &&
      type != "open" && type != "open_count" && type != "connect" && type != "dns" &&
      type != "deny" && type != "budget" && type != "rule" && type != "anomaly")
    return nullptr;
  if (type == "dns" && text(s.record, "result") == "expired") return nullptr;
  EcsKind k = ecs_kind(s);
  json e = {{"@timestamp", text(s.record, "ts")},
            {"ecs", {{"version", kEcsVersion}}},
            {"message", event_message(s.record)},
            {"event",
             {{"kind", k.kind},
              {"category", k.category},
              {"type", k.type},
              {"action", type},
              {"outcome", ecs_failed(s) ? "failure" : "success"},
              {"module", "enclosure"},
              {"dataset", "enclosure.events"},
              {"provider", "enclosure"},
              {"id", text(s.record, "run") + "/" + text(s.record, "seq")},
              {"sequence", s.record.value("seq", 0)},
              {"original", s.original()}}},
            {"observer", {{"product", kProduct}, {"vendor", kProduct}, {"version", s.version}}},
            {"labels", ecs_labels(s)},
            {"enclosure", enclosure_fields(s)}};
  if (s.record.contains("reason")) e["event"]["reason"] = text(s.record, "reason");
  ecs_process(e, s);
  ecs_network(e, s);
  ecs_file_and_rule(e, s);
  return e;
}

}  // namespace

std::string event_message(const json& event) {
  std::string type = text(event, "type");
  std::string what;
  if (type == "start") {
    what = "manifest " + text(event.value("manifest", json::object()), "name") + " (" +
           text(event.value("manifest", json::object()), "digest") + "), approved by " +
           text(event, "approved_by") + ", runs " + joined(event.value("command", json::array()));
  } else if (type == "exit") {
    what = text(event, "ended_by") + ", exit code " + text(event, "exit_code") + ", " +
           text(event, "denials") + " denials";
    if (event.contains("budget")) what += ", budget " + text(event, "budget");
    if (event.contains("message")) what += ": " + text(event, "message");
  } else if (type == "suppressed") {
    what = text(event, "count") + " " + text(event, "of") + " events past the rate " +
           text(event, "rate") + " counted, not written";
  } else if (type == "open_count") {
    what = text(event, "path") + " " + text(event, "access") + " opened " + text(event, "opens") +
           " times";
  } else {
    what = event_summary(event);
  }
  return "enclosure " + type + ": " + what;
}

std::optional<SiemFormat> parse_siem_format(std::string_view text) {
  if (text == "ocsf") return SiemFormat::ocsf;
  if (text == "ecs") return SiemFormat::ecs;
  return std::nullopt;
}

SiemMapper::SiemMapper(SiemFormat format, std::string product_version)
    : format_(format), product_version_(std::move(product_version)) {}

json SiemMapper::map(const json& record, std::string_view line) {
  if (!record.is_object() || !record.contains("run") || !record["run"].is_string()) return nullptr;
  std::string run = record["run"].get<std::string>();
  if (text(record, "type") == "start") starts_[run] = record;
  auto it = starts_.find(run);
  static const json none;
  Source s{record, it == starts_.end() ? none : it->second, product_version_, line};
  return format_ == SiemFormat::ocsf ? to_ocsf(s) : to_ecs(s);
}

}  // namespace launcher
