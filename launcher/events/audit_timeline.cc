#include "launcher/events/audit_timeline.h"

#include <cstdio>
#include <ctime>
#include <map>
#include <sstream>

namespace launcher {
namespace {

using json = nlohmann::json;

// Values come from the agent (paths, argv, notes): control characters are shown escaped, so
// that no value can forge a line of the timeline or drive the terminal.
std::string printable(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string str(const json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object() || !j.contains(key)) return fallback;
  const json& v = j[key];
  if (v.is_string()) return printable(v.get<std::string>());
  if (v.is_null()) return fallback;
  return v.dump();
}

std::string joined(const json& list, const std::string& separator = ", ") {
  if (!list.is_array() || list.empty()) return "-";
  std::string out;
  for (const json& v : list) {
    if (!out.empty()) out += separator;
    out += v.is_string() ? printable(v.get<std::string>()) : v.dump();
  }
  return out;
}

std::string ports_text(const json& ports) {
  if (!ports.is_array()) return "";
  std::string out;
  for (const json& p : ports) {
    if (!out.empty()) out += ",";
    out += p.is_string() ? p.get<std::string>() : p.dump();
  }
  return out;
}

void permissions(std::ostringstream& o, const json& doc) {
  if (!doc.is_object()) return;
  const json fs = doc.value("filesystem", json::object());
  o << "  may read:     " << joined(fs.value("read", json::array())) << "\n";
  o << "  may write:    " << joined(fs.value("write", json::array())) << "\n";
  if (fs.contains("tmpfs")) o << "  private tmp:  " << joined(fs["tmpfs"]) << "\n";
  if (fs.contains("hide")) o << "  hidden:       " << joined(fs["hide"]) << "\n";
  std::string tools;
  for (const json& t : doc.value("tools", json::array())) {
    if (!tools.empty()) tools += ", ";
    tools += str(t, "name") + " (" + str(t, "path");
    if (t.contains("max_calls")) tools += ", at most " + str(t, "max_calls") + " calls";
    if (t.contains("cost_usd")) tools += ", $" + str(t, "cost_usd") + " per call";
    tools += ")";
  }
  o << "  tools:        " << (tools.empty() ? "-" : tools) << "\n";
  const json net = doc.value("network", json::object());
  std::string mode = str(net, "mode", "none");
  std::string egress;
  for (const json& e : net.value("egress", json::array())) {
    if (!egress.empty()) egress += "; ";
    egress += (e.contains("host") ? str(e, "host") : str(e, "cidr")) + " ports " +
              ports_text(e.value("ports", json())) + " " + str(e, "protocol", "tcp");
  }
  o << "  network:      " << mode << (egress.empty() ? "" : ": " + egress)
    << (net.value("dns", false) ? " (dns through the enclosure's resolver)" : "") << "\n";
  const json sys = doc.value("syscalls", json::object());
  o << "  syscalls:     profile " << str(sys, "profile", "default");
  if (sys.contains("deny")) o << ", deny " << joined(sys["deny"]);
  if (sys.contains("allow")) o << ", allow " << joined(sys["allow"]);
  o << ", action " << str(sys, "action", "errno") << "\n";
  if (doc.contains("budgets") && doc["budgets"].is_object()) {
    std::string b;
    for (auto it = doc["budgets"].begin(); it != doc["budgets"].end(); ++it) {
      if (!b.empty()) b += ", ";
      b += it.key() + " " +
           (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
    }
    o << "  budgets:      " << b << "\n";
  }
  for (const json& r : doc.value("rules", json::array())) {
    o << "  rule:         " << str(r, "id") << ": after " << r.value("after", json::object()).dump()
      << " deny " << joined(r.value("deny", json::array())) << "\n";
  }
  if (doc.contains("audit")) o << "  audit:        " << doc["audit"].dump() << "\n";
  o << "  on_violation: " << str(doc, "on_violation", "deny") << "\n";
}

std::string summary(const json& r) {
  std::string type = str(r, "type");
  if (type == "exec") {
    std::string s =
        str(r, "path") + " " + (r.contains("argv") ? joined(r["argv"], " ") : str(r, "argv0"));
    if (r.contains("tool")) s += " (tool " + str(r, "tool") + ")";
    if (r.contains("killed")) s += " KILLED: " + str(r, "killed");
    return s;
  }
  if (type == "tool_call") {
    return str(r, "tool") + " call " + str(r, "calls") +
           (r.contains("max_calls") ? "/" + str(r, "max_calls") : "") + ", total " +
           str(r, "total_calls") + ", cost " + str(r, "cost_usd");
  }
  if (type == "open") {
    return str(r, "path") + " " + str(r, "flags") + " " +
           (r.value("ok", false) ? "ok" : "failed " + str(r, "result"));
  }
  if (type == "connect")
    return str(r, "destination") + " " + str(r, "protocol") + " (" + str(r, "rule") + ")";
  if (type == "dns")
    return str(r, "name", str(r, "query")) + " " + str(r, "answer", str(r, "result"));
  if (type == "deny") {
    std::string what = r.contains("syscall")       ? str(r, "syscall")
                       : r.contains("destination") ? str(r, "destination")
                       : r.contains("path")        ? str(r, "path")
                                                   : str(r, "protocol");
    std::string s = str(r, "section") + ": " + what;
    if (r.contains("rule")) s += " rule " + str(r, "rule");
    s += " (" + str(r, "origin") + ") " + str(r, "action");
    if (r.contains("reason")) s += ": " + str(r, "reason");
    return s;
  }
  if (type == "budget") {
    return str(r, "name") + " limit " + str(r, "limit") + ", reached " + str(r, "value") + ": " +
           str(r, "action");
  }
  if (type == "rule") {
    return str(r, "rule") + " fired on " + str(r, "trigger") + " " +
           str(r, "file", str(r, "tool", str(r, "destination"))) +
           "; now denied: " + joined(r.value("denies", json::array()));
  }
  if (type == "cost") {
    if (r.contains("rejected"))
      return "report rejected (" + str(r, "rejected") + "): " + str(r, "line");
    return str(r, "cost_usd") + " \"" + str(r, "note") + "\" (reported " +
           str(r, "total_reported") + ", total " + str(r, "total") +
           (r.contains("limit") ? " of " + str(r, "limit") : "") + ")";
  }
  if (type == "lost") {
    std::string s = str(r, "count") + " events lost";
    if (r.contains("first_seq"))
      s += " (seq " + str(r, "first_seq") + ".." + str(r, "last_seq") + ")";
    return s + ": " + str(r, "source");
  }
  if (type == "anomaly") return r.dump();
  json rest = r;
  for (const char* k : {"prev", "ts", "run", "seq", "type", "pid", "manifest"})
    rest.erase(k);
  return rest.dump();
}

std::string collector_summary(const json& r) {
  if (str(r, "type") == "head") {
    return "signed head (" + str(r, "reason") + "), log line " + str(r, "log_line") + ", key " +
           str(r, "key_id").substr(0, 16);
  }
  std::string event = str(r, "event");
  std::string s = event;
  if (r.contains("peer")) {
    const json& p = r["peer"];
    s += " peer pid " + str(p, "pid") + " uid " + str(p, "uid") +
         (p.contains("user") ? " (" + str(p, "user") + ")" : "");
  }
  if (r.contains("about_run")) s += " run " + str(r, "about_run");
  if (r.contains("reason")) s += ": " + str(r, "reason");
  if (event == "rotated")
    s += " from " + str(r, "previous_file") + " (" + str(r, "previous_lines") + " lines)";
  if (r.contains("recovered")) s += " recovered " + r["recovered"].dump();
  if (r.contains("head_mismatch")) s += " HEAD MISMATCH: " + str(r, "head_mismatch");
  return s;
}

void start_block(std::ostringstream& o, const json& r) {
  const json inv = r.value("invoked_by", json::object());
  const json host = r.value("host", json::object());
  const json rec = r.value("received", json::object());
  o << "  started:      " << str(r, "ts") << " by uid " << str(inv, "uid")
    << (inv.contains("name") ? " (" + str(inv, "name") + ")" : "") << ", launcher pid "
    << str(r, "pid");
  if (rec.contains("hostname")) o << " on " << str(rec, "hostname");
  if (host.contains("kernel")) o << " (kernel " << str(host, "kernel") << ")";
  o << "\n";
  if (rec.contains("peer")) {
    const json& p = rec["peer"];
    o << "  collector saw: peer pid " << str(p, "pid") << " uid " << str(p, "uid") << " gid "
      << str(p, "gid") << (p.contains("user") ? " (" + str(p, "user") + ")" : "") << "\n";
  }
  o << "  approved by:  " << str(r, "approved_by", "(not stated)") << "\n";
  o << "  reason:       " << str(r, "reason", "(not stated)") << "\n";
  if (r.contains("context") && r["context"].is_object() && !r["context"].empty()) {
    std::string c;
    for (auto it = r["context"].begin(); it != r["context"].end(); ++it) {
      if (!c.empty()) c += ", ";
      c += printable(it.key()) + "=" +
           (it.value().is_string() ? printable(it.value().get<std::string>()) : it.value().dump());
    }
    o << "  context:      " << c << "\n";
  }
  const json agent = r.value("agent_user", json::object());
  o << "  command:      " << joined(r.value("command", json::array()), " ") << " (tool "
    << str(r, "tool") << ", as uid " << str(agent, "uid") << ")\n";
  permissions(o, r.value("manifest_document", json()));
  const json enf = r.value("enforcement", json::object());
  if (enf.contains("degraded") && enf["degraded"].is_array() && !enf["degraded"].empty()) {
    for (const json& d : enf["degraded"]) {
      o << "  DEGRADED:     " << str(d, "layer") << ": " << str(d, "feature") << " ("
        << str(d, "reason") << ")\n";
    }
  }
}

void exit_block(std::ostringstream& o, const json& r) {
  o << "  ended:        " << str(r, "ts") << " " << str(r, "ended_by") << " (exit "
    << str(r, "exit_code") << ")";
  if (r.contains("budget")) o << ", budget " << str(r, "budget");
  if (r.contains("message")) o << ": " << str(r, "message");
  o << "; " << str(r, "denials", "0") << " denials\n";
  if (r.contains("budgets") && r["budgets"].is_object()) {
    for (auto it = r["budgets"].begin(); it != r["budgets"].end(); ++it) {
      if (it.key() == "syscall_histogram" || it.key() == "absent") continue;
      o << "  at exit:      " << it.key() << " " << it.value().dump() << "\n";
    }
  }
}

}  // namespace

std::string event_summary(const json& record) {
  return summary(record);
}

std::optional<std::pair<int64_t, int64_t>> parse_rfc3339(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  if (t.size() < 20) return std::nullopt;
  auto digits = [&](size_t at, size_t n, int& v) {
    v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (i >= t.size() || t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    return true;
  };
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, year) || t[4] != '-' || !digits(5, 2, mon) || t[7] != '-' ||
      !digits(8, 2, day) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      !digits(11, 2, hour) || t[13] != ':' || !digits(14, 2, min) || t[16] != ':' ||
      !digits(17, 2, sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
    return std::nullopt;
  size_t i = 19;
  int64_t nanos = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    int64_t scale = 100'000'000;
    size_t first = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (scale > 0) nanos += (t[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == first) return std::nullopt;
  }
  int64_t offset = 0;
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
    ++i;
  } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    int oh, om;
    if (!digits(i + 1, 2, oh) || i + 3 >= t.size() || t[i + 3] != ':' || !digits(i + 4, 2, om))
      return std::nullopt;
    offset = (t[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  int64_t seconds = static_cast<int64_t>(timegm(&tm)) - offset;
  return std::make_pair(seconds, nanos);
}

bool timeline_selects(const json& r, const TimelineFilter& f) {
  if (!r.is_object()) return false;
  std::string type = str(r, "type");
  if (!f.run.empty()) {
    bool about = type == "collector" ? str(r, "about_run") == f.run || str(r, "bound_run") == f.run
                                     : str(r, "run") == f.run;
    if (!about) return false;
  }
  if (!f.types.empty() && !f.types.count(type)) return false;
  if (f.since) {
    auto ts = parse_rfc3339(str(r, "ts"));
    if (!ts || *ts < *f.since) return false;
  }
  return true;
}

std::string render_timeline(const std::vector<json>& records, const TimelineFilter& f) {
  struct RunView {
    json start;
    json exit;
    std::vector<const json*> entries;
    std::string manifest;
    uint64_t records = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, RunView> runs;
  std::vector<const json*> collector;
  for (const json& r : records) {
    if (!timeline_selects(r, f)) continue;
    std::string type = str(r, "type");
    if (type == "collector" || type == "head") {
      collector.push_back(&r);
      continue;
    }
    std::string run = str(r, "run");
    auto [it, fresh] = runs.try_emplace(run);
    if (fresh) order.push_back(run);
    RunView& v = it->second;
    ++v.records;
    if (v.manifest.empty() && r.contains("manifest")) {
      const json& m = r["manifest"];
      v.manifest =
          str(m, "name") + " revision " + str(m, "revision", "-") + " (" + str(m, "digest") + ")";
    }
    if (type == "start")
      v.start = r;
    else if (type == "exit")
      v.exit = r;
    else
      v.entries.push_back(&r);
  }
  std::ostringstream o;
  for (const std::string& id : order) {
    const RunView& v = runs[id];
    o << "run " << id << "  " << v.manifest << "\n";
    if (!v.start.is_null()) start_block(o, v.start);
    for (const json* e : v.entries) {
      std::string type = str(*e, "type");
      std::string label = type == "deny" ? "DENY" : type;
      label.resize(std::max<size_t>(label.size(), 9), ' ');
      o << "  " << str(*e, "ts") << "  " << label << " " << summary(*e) << "  [pid "
        << str(*e, "pid") << ", seq " << str(*e, "seq") << "]\n";
    }
    if (!v.exit.is_null()) {
      exit_block(o, v.exit);
    } else if (f.types.empty() || f.types.count("exit")) {
      o << "  (no exit record: still running, or its launcher died)\n";
    }
    o << "\n";
  }
  if (!collector.empty()) {
    o << "collector\n";
    for (const json* c : collector)
      o << "  " << str(*c, "ts") << "  " << collector_summary(*c) << "\n";
  }
  if (order.empty() && collector.empty()) o << "no records match\n";
  return o.str();
}

}  // namespace launcher
