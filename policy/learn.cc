#include "policy/learn.h"

#include <algorithm>
#include <cmath>

#include "policy/compile.h"
#include "policy/path.h"
#include "policy/units.h"

namespace policy {

using nlohmann::json;

namespace {

// System trees granted whole when anything in them was read: they hold programs and libraries,
// not data.
const char* const kSystemTrees[] = {"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt"};
// Never granted whole: a grant must name something inside them.
const char* const kTooWide[] = {"/",     "/home", "/root",  "/etc", "/var", "/srv",
                                "/data", "/mnt",  "/media", "/run", "/tmp"};
// Provided by the enclosure itself.
const char* const kBuiltIn[] = {"/proc", "/dev", "/sys"};

bool too_wide(const std::string& dir) {
  for (const char* w : kTooWide) {
    if (dir == w) return true;
  }
  // A home directory as a whole (/home/NAME).
  std::vector<std::string> s = path_segments(dir);
  return s.size() == 2 && s[0] == "home";
}

uint64_t with_headroom(uint64_t value, double headroom) {
  return static_cast<uint64_t>(std::ceil(static_cast<double>(value) * headroom));
}

std::string basename_of(const std::string& path) {
  std::vector<std::string> s = path_segments(path);
  return s.empty() ? "root" : s.back();
}

// Drops grants covered by a shallower grant of at least the same kind.
std::vector<std::string> minimal(std::set<std::string> paths) {
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    bool covered = false;
    for (const std::string& q : paths)
      covered = covered || (q != p && path_is_under(p, q));
    if (!covered) out.push_back(p);
  }
  return out;
}

}  // namespace

bool looks_secret(const std::string& path) {
  static const char* const kSecrets[] = {
      ".ssh",       ".aws",     ".netrc",           ".gnupg", ".kube",          ".docker",
      ".npmrc",     ".pypirc",  ".git-credentials", ".azure", ".config/gcloud", "id_rsa",
      "id_ed25519", "id_ecdsa", "credentials",      ".env",   "shadow",         "gshadow"};
  for (const std::string& segment : path_segments(path)) {
    for (const char* s : kSecrets) {
      if (segment == s) return true;
      std::string ss(s);
      if (ss.find('/') == std::string::npos && segment.rfind(ss + ".", 0) == 0 && ss[0] != '.')
        return true;
    }
  }
  return path.find("/.config/gcloud") != std::string::npos;
}

LearnResult learn_manifest(const Observation& o, const LearnOptions& options,
                           const std::optional<Manifest>& base) {
  LearnResult out;
  double h = options.headroom;

  // Files: reads collapsed to system trees or to the file's directory; writes to the file's
  // directory (a tmpfs when under /tmp); secrets and built-in trees left out.
  std::set<std::string> reads, writes, tmpfs;
  bool saw_files = false;
  for (const ObservedOpen& f : o.opens) {
    if (!f.ok || f.path.empty() || f.path[0] != '/' || !check_absolute_path(f.path).empty())
      continue;
    bool builtin = false;
    for (const char* b : kBuiltIn)
      builtin = builtin || path_is_under(f.path, b);
    if (builtin) continue;
    saw_files = true;
    if (looks_secret(f.path)) {
      if (std::find(out.flagged.begin(), out.flagged.end(), f.path) == out.flagged.end())
        out.flagged.push_back(f.path);
      continue;
    }
    // Scratch files under /tmp become a private tmpfs; the working directory (bound from the
    // host while learning) stays a real grant even when it lies under /tmp.
    if (path_is_under(f.path, "/tmp") && !(o.cwd != "/" && path_is_under(f.path, o.cwd))) {
      tmpfs.insert("/tmp");
      continue;
    }
    std::string system;
    for (const char* t : kSystemTrees) {
      if (path_is_under(f.path, t)) system = t;
    }
    if (!system.empty() && !f.write) {
      reads.insert(system);
      continue;
    }
    std::string dir = f.directory ? f.path : parent_path(f.path);
    // A directory the run created did not exist before it: the grant goes to the nearest
    // ancestor that did, where the creating happened.
    while (f.write && dir != "/" && o.created_dirs.count(dir))
      dir = parent_path(dir);
    std::string grant = too_wide(dir) ? f.path : dir;
    if (grant == "/" || too_wide(grant)) continue;
    (f.write ? writes : reads).insert(grant);
  }
  // A path readable and writable is written; reads under a write grant are covered by it.
  std::vector<std::string> write_list = minimal(writes);
  std::set<std::string> read_set;
  for (const std::string& r : reads) {
    bool covered = false;
    for (const std::string& w : write_list)
      covered = covered || path_is_under(r, w);
    if (!covered) read_set.insert(r);
  }
  // The working directory must be inside the view.
  std::string cwd = o.cwd.empty() ? "/" : o.cwd;
  if (cwd != "/" && check_absolute_path(cwd).empty()) {
    bool covered = false;
    for (const std::string& g : read_set)
      covered = covered || path_is_under(cwd, g);
    for (const std::string& g : write_list)
      covered = covered || path_is_under(cwd, g);
    // (a tmpfs does not cover it: it would be a fresh, empty directory)
    if (!covered) {
      if (too_wide(cwd) || looks_secret(cwd)) {
        cwd = "/";
      } else {
        read_set.insert(cwd);
      }
    }
  } else {
    cwd = "/";
  }
  std::vector<std::string> read_list = minimal(read_set);

  // Tools: everything executed, the command first.
  json tools = json::array();
  std::set<std::string> names;
  auto add_tool = [&](const std::string& path, uint64_t calls) {
    for (const char* b : kBuiltIn) {
      if (path_is_under(path, b)) return;
    }
    if (!check_absolute_path(path).empty()) return;
    std::string name = basename_of(path);
    for (int n = 2; names.count(name); ++n)
      name = basename_of(path) + "-" + std::to_string(n);
    names.insert(name);
    json t = {{"name", name}, {"path", path}};
    // The first run of the command is not counted; later ones are.
    t["max_calls"] = with_headroom(std::max<uint64_t>(calls, 1), h);
    tools.push_back(t);
  };
  if (!o.command_path.empty()) {
    auto it = o.execs.find(o.command_path);
    add_tool(o.command_path, it == o.execs.end() ? 0 : it->second - 1);
  }
  uint64_t tool_calls = 0;
  for (const auto& [path, count] : o.execs) {
    if (path == o.command_path) {
      tool_calls += count - 1;
      continue;
    }
    add_tool(path, count);
    tool_calls += count;
  }

  // Network: by name where the address was answered for one, else by address.
  std::map<std::pair<std::string, Protocol>, std::set<uint16_t>> by_destination;
  std::set<std::string> named;
  for (const ObservedConnect& c : o.connects) {
    // DNS queries went to the enclosure's resolver (port 53 is redirected there): with
    // `dns: true` the learned manifest gets the same, and no rule for the resolver it named.
    if (c.port == 53 && !o.dns_names.empty()) continue;
    std::string dest = c.name.empty() ? c.address : c.name;
    if (!c.name.empty()) named.insert(c.name);
    by_destination[{dest, c.protocol}].insert(c.port);
  }
  json egress = json::array();
  for (const auto& [key, ports] : by_destination) {
    json rule;
    bool is_name = named.count(key.first) != 0;
    if (is_name) {
      rule["host"] = key.first;
    } else {
      rule["cidr"] =
          key.first.find(':') != std::string::npos ? key.first + "/128" : key.first + "/32";
    }
    rule["ports"] = std::vector<uint16_t>(ports.begin(), ports.end());
    if (key.second == Protocol::udp) rule["protocol"] = "udp";
    egress.push_back(rule);
  }

  // System calls: the strict profile, plus what it lacks that the run used.
  Syscalls strict;
  strict.profile = "strict";
  std::vector<std::string> allowed = allowed_syscalls(compile_seccomp(strict));
  std::set<std::string> allowed_set(allowed.begin(), allowed.end());
  json extra = json::array();
  for (const std::string& s : o.syscalls) {
    if (!allowed_set.count(s)) extra.push_back(s);
  }

  json m;
  m["apiVersion"] = kApiVersion;
  std::string reason = "Learned by `enclosure learn` from `";
  for (size_t i = 0; i < o.command.size(); ++i)
    reason += (i ? " " : "") + o.command[i];
  reason += "`" + (options.date.empty() ? std::string() : " on " + options.date) +
            " with headroom " + std::to_string(h).substr(0, 4) + "; review before approval.";
  if (!out.flagged.empty()) {
    reason += " Left out, looked like secrets:";
    for (const std::string& f : out.flagged)
      reason += " " + f;
    reason += ".";
  }
  if (base) {
    json md = {{"name", base->metadata.name}, {"reason", reason}};
    md["revision"] = base->metadata.revision.value_or(0) + 1;
    if (!base->metadata.approved_by.empty()) md["approved_by"] = base->metadata.approved_by;
    if (!base->metadata.labels.empty()) md["labels"] = base->metadata.labels;
    m["metadata"] = md;
  } else {
    m["metadata"] = {{"name", options.name}, {"revision", 1}, {"reason", reason}};
  }
  m["process"] = {{"cwd", cwd}, {"env", {{"pass", {"PATH", "LANG", "TERM"}}}}};
  m["filesystem"] = json::object();
  if (!read_list.empty()) m["filesystem"]["read"] = read_list;
  if (!write_list.empty()) m["filesystem"]["write"] = write_list;
  if (!tmpfs.empty())
    m["filesystem"]["tmpfs"] = std::vector<std::string>(tmpfs.begin(), tmpfs.end());
  m["tools"] = tools;
  if (egress.empty()) {
    m["network"] = {{"mode", "none"}};
  } else {
    m["network"] = {{"mode", "filtered"}, {"egress", egress}, {"dns", !named.empty()}};
  }
  m["syscalls"] = {{"profile", "strict"}};
  if (!extra.empty()) m["syscalls"]["allow"] = extra;
  json budgets;
  budgets["wall_clock"] = std::to_string(std::max<uint64_t>(
                              1, with_headroom((o.duration_ns + 999999999) / 1000000000, h))) +
                          "s";
  if (o.cpu_ns)
    budgets["cpu_time"] = std::to_string(std::max<uint64_t>(
                              1, with_headroom((o.cpu_ns + 999999999) / 1000000000, h))) +
                          "s";
  budgets["processes"] = std::max<uint64_t>(4, with_headroom(o.peak_processes, h));
  if (o.peak_memory_bytes) {
    uint64_t mib = (with_headroom(o.peak_memory_bytes, h) + (1 << 20) - 1) >> 20;
    budgets["memory"] = std::to_string(std::max<uint64_t>(mib, 16)) + "MiB";
  }
  if (o.syscall_count)
    budgets["syscalls"] = std::max<uint64_t>(10000, with_headroom(o.syscall_count, h));
  budgets["tool_calls"] = with_headroom(std::max<uint64_t>(tool_calls, 1), h);
  m["budgets"] = budgets;

  // With a base: sections the run did not exercise keep the base's grants.
  if (base) {
    const json& b = base->document;
    if (!saw_files && b.contains("filesystem")) {
      m["filesystem"] = b["filesystem"];
      out.notes.push_back("no file was opened: /filesystem kept from the base");
    }
    if (o.connects.empty() && b.contains("network")) {
      m["network"] = b["network"];
      out.notes.push_back("no connection was made: /network kept from the base");
    }
    if (b.contains("context")) m["context"] = b["context"];
    if (b.contains("process") && b["process"].contains("user"))
      m["process"]["user"] = b["process"]["user"];
    if (b.contains("rules")) m["rules"] = b["rules"];
    if (b.contains("audit")) m["audit"] = b["audit"];
  }
  if (m["filesystem"].empty()) m.erase("filesystem");
  out.manifest = m;
  BaselineProfile profile = o.profile;
  profile.syscalls = o.syscalls;
  std::string from;
  for (size_t i = 0; i < o.command.size(); ++i)
    from += (i ? " " : "") + o.command[i];
  profile.learned_from = from;
  out.profile = profile.to_json();
  return out;
}

}  // namespace policy
