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

// What the run's opens grant: reads, writes and scratch tmpfs, and the working directory.
struct LearnedFiles {
  std::vector<std::string> read;
  std::vector<std::string> write;
  std::set<std::string> tmpfs;
  std::string cwd;
  bool saw_files = false;  // some file outside the built-in trees was opened
};

// The working directory must be inside the view: adds it to `read_set` when no grant covers
// it, or falls back to "/" when it cannot be granted.
std::string learn_cwd(const std::string& observed_cwd, std::set<std::string>& read_set,
                      const std::vector<std::string>& write_list) {
  std::string cwd = observed_cwd.empty() ? "/" : observed_cwd;
  // /proc and /dev are the enclosure's own: no grant can name them, and no cwd may be there.
  if (path_is_under(cwd, "/proc") || path_is_under(cwd, "/dev")) return "/";
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
  return cwd;
}

// Files: reads collapsed to system trees or to the file's directory; writes to the file's
// directory (a tmpfs when under /tmp); secrets and built-in trees left out (secrets named in
// `flagged`).
LearnedFiles learn_files(const Observation& o, std::vector<std::string>& flagged) {
  LearnedFiles out;
  std::set<std::string> reads, writes;
  for (const ObservedOpen& f : o.opens) {
    if (!f.ok || f.path.empty() || f.path[0] != '/' || !check_absolute_path(f.path).empty())
      continue;
    bool builtin = false;
    for (const char* b : kBuiltIn)
      builtin = builtin || path_is_under(f.path, b);
    if (builtin) continue;
    out.saw_files = true;
    if (looks_secret(f.path)) {
      if (std::find(flagged.begin(), flagged.end(), f.path) == flagged.end())
        flagged.push_back(f.path);
      continue;
    }
    // Scratch files under /tmp become a private tmpfs; the working directory (bound from the
    // host while learning) stays a real grant even when it lies under /tmp.
    if (path_is_under(f.path, "/tmp") && !(o.cwd != "/" && path_is_under(f.path, o.cwd))) {
      out.tmpfs.insert("/tmp");
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
  out.write = minimal(writes);
  std::set<std::string> read_set;
  for (const std::string& r : reads) {
    bool covered = false;
    for (const std::string& w : out.write)
      covered = covered || path_is_under(r, w);
    if (!covered) read_set.insert(r);
  }
  out.cwd = learn_cwd(o.cwd, read_set, out.write);
  out.read = minimal(read_set);
  return out;
}

struct LearnedTools {
  json tools = json::array();
  uint64_t calls = 0;  // executions beyond the command's first
};

// Tools: everything executed, the command first.
LearnedTools learn_tools(const Observation& o, double h) {
  LearnedTools out;
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
    out.tools.push_back(t);
  };
  if (!o.command_path.empty()) {
    auto it = o.execs.find(o.command_path);
    add_tool(o.command_path, it == o.execs.end() ? 0 : it->second - 1);
  }
  for (const auto& [path, count] : o.execs) {
    if (path == o.command_path) {
      out.calls += count - 1;
      continue;
    }
    add_tool(path, count);
    out.calls += count;
  }
  return out;
}

// The /network section: by name where the address was answered for one, else by address.
json learn_network(const Observation& o) {
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
  if (egress.empty()) return {{"mode", "none"}};
  return {{"mode", "filtered"}, {"egress", egress}, {"dns", !named.empty()}};
}

// The /syscalls section: the strict profile, plus what it lacks that the run used.
json learn_syscalls(const Observation& o) {
  Syscalls strict;
  strict.profile = "strict";
  std::vector<std::string> allowed = allowed_syscalls(compile_seccomp(strict));
  std::set<std::string> allowed_set(allowed.begin(), allowed.end());
  json extra = json::array();
  for (const std::string& s : o.syscalls) {
    if (!allowed_set.count(s)) extra.push_back(s);
  }
  json syscalls = {{"profile", "strict"}};
  if (!extra.empty()) syscalls["allow"] = extra;
  return syscalls;
}

std::string command_line(const Observation& o) {
  std::string line;
  for (size_t i = 0; i < o.command.size(); ++i)
    line += (i ? " " : "") + o.command[i];
  return line;
}

// The /metadata section: the base's, one revision on, or a fresh one; the reason says how the
// manifest was made and which secrets-looking paths were left out.
json learn_metadata(const Observation& o, const LearnOptions& options,
                    const std::optional<Manifest>& base, const std::vector<std::string>& flagged) {
  std::string reason = "Learned by `enclosure learn` from `" + command_line(o);
  reason += "`" + (options.date.empty() ? std::string() : " on " + options.date) +
            " with headroom " + std::to_string(options.headroom).substr(0, 4) +
            "; review before approval.";
  if (!flagged.empty()) {
    reason += " Left out, looked like secrets:";
    for (const std::string& f : flagged)
      reason += " " + f;
    reason += ".";
  }
  if (!base) return {{"name", options.name}, {"revision", 1}, {"reason", reason}};
  json md = {{"name", base->metadata.name}, {"reason", reason}};
  md["revision"] = base->metadata.revision.value_or(0) + 1;
  if (!base->metadata.approved_by.empty()) md["approved_by"] = base->metadata.approved_by;
  if (!base->metadata.labels.empty()) md["labels"] = base->metadata.labels;
  return md;
}

// The /filesystem section (empty when nothing is granted).
json learn_filesystem(const LearnedFiles& files) {
  json fs = json::object();
  if (!files.read.empty()) fs["read"] = files.read;
  if (!files.write.empty()) fs["write"] = files.write;
  if (!files.tmpfs.empty())
    fs["tmpfs"] = std::vector<std::string>(files.tmpfs.begin(), files.tmpfs.end());
  return fs;
}

// The /budgets section: what the run used, times the headroom, with floors.
json learn_budgets(const Observation& o, double h, uint64_t tool_calls) {
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
  return budgets;
}

// With a base: sections the run did not exercise keep the base's grants, and what learning
// cannot observe (context, user, rules, audit) is kept as it was.
void keep_from_base(json& m, const json& b, const Observation& o, bool saw_files,
                    std::vector<std::string>& notes) {
  if (!saw_files && b.contains("filesystem")) {
    m["filesystem"] = b["filesystem"];
    notes.push_back("no file was opened: /filesystem kept from the base");
  }
  if (o.connects.empty() && b.contains("network")) {
    m["network"] = b["network"];
    notes.push_back("no connection was made: /network kept from the base");
  } else if (b.contains("network") && b["network"].contains("unix")) {
    // Unix sockets are not observed: the base's names are kept.
    m["network"]["unix"] = b["network"]["unix"];
  }
  if (b.contains("context")) m["context"] = b["context"];
  if (b.contains("process") && b["process"].contains("user"))
    m["process"]["user"] = b["process"]["user"];
  if (b.contains("rules")) m["rules"] = b["rules"];
  if (b.contains("audit")) m["audit"] = b["audit"];
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

namespace {

// The observation without paths a manifest cannot name as they are on disk (not UTF-8, "${",
// ...): each left out with a note, so that the learned manifest always loads.
Observation nameable_only(const Observation& observed, std::vector<std::string>& notes) {
  Observation o = observed;
  auto left_out = [&](const std::string& path) {
    std::string why = check_nameable_path(path);
    if (why.empty()) return false;
    notes.push_back("left out (" + why + "): " +
                    nlohmann::json(path).dump(-1, ' ', false, json::error_handler_t::replace));
    return true;
  };
  std::erase_if(o.opens, [&](const ObservedOpen& f) { return left_out(f.path); });
  std::erase_if(o.execs, [&](const auto& e) { return left_out(e.first); });
  std::erase_if(o.created_dirs, [&](const std::string& d) { return left_out(d); });
  if (left_out(o.cwd)) o.cwd = "/";
  return o;
}

}  // namespace

LearnResult learn_manifest(const Observation& observed, const LearnOptions& options,
                           const std::optional<Manifest>& base) {
  LearnResult out;
  Observation o = nameable_only(observed, out.notes);
  double h = options.headroom;
  LearnedFiles files = learn_files(o, out.flagged);
  LearnedTools tools = learn_tools(o, h);

  json m;
  m["apiVersion"] = kApiVersion;
  m["metadata"] = learn_metadata(o, options, base, out.flagged);
  m["process"] = {{"cwd", files.cwd}, {"env", {{"pass", {"PATH", "LANG", "TERM"}}}}};
  m["filesystem"] = learn_filesystem(files);
  m["tools"] = tools.tools;
  m["network"] = learn_network(o);
  m["syscalls"] = learn_syscalls(o);
  m["budgets"] = learn_budgets(o, h, tools.calls);
  if (base) keep_from_base(m, base->document, o, files.saw_files, out.notes);
  if (m["filesystem"].empty()) m.erase("filesystem");
  out.manifest = m;

  BaselineProfile profile = o.profile;
  profile.syscalls = o.syscalls;
  profile.learned_from = command_line(o);
  out.profile = profile.to_json();
  return out;
}

}  // namespace policy
