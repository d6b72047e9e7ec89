#include "policy/load.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "policy/compile.h"
#include "policy/digest.h"
#include "policy/oci_seccomp.h"
#include "policy/path.h"
#include "policy/syscall_table.h"
#include "policy/units.h"

namespace policy {

using nlohmann::json;

const std::map<std::string, std::vector<std::string>>& accepted_keys() {
  static const std::map<std::string, std::vector<std::string>> kKeys{
      {"",
       {"apiVersion", "metadata", "context", "process", "filesystem", "tools", "network",
        "syscalls", "budgets", "rules", "audit", "baseline", "on_violation", "enforcement"}},
      {"/metadata", {"name", "revision", "approved_by", "reason", "labels"}},
      {"/metadata/labels", {"*"}},
      {"/context", {"*"}},
      {"/context/*", {"pattern", "default"}},
      {"/process", {"cwd", "env", "user"}},
      {"/process/env", {"pass", "set"}},
      {"/process/env/set", {"*"}},
      {"/process/user", {"uid", "gid"}},
      {"/filesystem", {"read", "write", "tmpfs", "hide"}},
      {"/tools/*", {"name", "path", "max_calls", "cost_usd", "tree"}},
      {"/network", {"mode", "egress", "dns", "unix"}},
      {"/network/egress/*", {"host", "cidr", "ports", "protocol", "private"}},
      {"/syscalls", {"profile", "profile_digest", "deny", "allow", "action"}},
      {"/budgets",
       {"wall_clock", "cpu_time", "tool_calls", "syscalls", "processes", "memory", "egress_bytes",
        "cost_usd"}},
      {"/rules/*", {"id", "after", "deny"}},
      {"/rules/*/after", {"read", "exec", "connect"}},
      {"/audit", {"files", "syscalls"}},
      {"/baseline", {"profile", "tolerance", "action"}},
      {"/enforcement", {"allow_degraded"}},
  };
  return kKeys;
}

namespace {

// Sections whose strings may hold ${name} placeholders (policy/MANIFEST.md, "context").
const std::set<std::string> kExpandedSections{"process", "filesystem", "network", "rules"};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string json_quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// "unknown key (did you mean "x"?); expected one of: a, b, c" for a key not in `accepted`.
std::string unknown_key_message(std::string_view key, const std::vector<std::string>& accepted) {
  std::string message = "unknown key";
  std::string best;
  size_t best_distance = 3;
  for (const std::string& candidate : accepted) {
    size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (!best.empty()) message += " (did you mean \"" + best + "\"?)";
  message += "; expected one of: ";
  for (size_t i = 0; i < accepted.size(); ++i)
    message += (i ? ", " : "") + accepted[i];
  return message;
}

// Manifests are a few levels deep; a bound keeps the recursive walks below (expansion,
// describe()) from exhausting the stack on hostile input.
constexpr int kMaxJsonDepth = 64;

// Builds the document with nlohmann's own DOM builder while watching, in the same linear pass,
// for duplicate object keys (which the DOM parser would silently overwrite) and for nesting
// deeper than any manifest needs. (The callback interface of json::parse would do the same in
// quadratic time on long arrays.)
class StrictJsonBuilder {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  explicit StrictJsonBuilder(json& result) : dom_(result, false) {}

  std::vector<std::string> duplicates;
  bool too_deep = false;
  std::string error;

  bool null() { return value() && dom_.null(); }
  bool boolean(bool v) { return value() && dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return value() && dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return value() && dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) {
    return value() && dom_.number_float(v, s);
  }
  bool string(string_t& v) { return value() && dom_.string(v); }
  bool binary(binary_t& v) { return value() && dom_.binary(v); }
  bool start_object(std::size_t n) { return open(true) && dom_.start_object(n); }
  bool start_array(std::size_t n) { return open(false) && dom_.start_array(n); }
  bool end_object() { return close() && dom_.end_object(); }
  bool end_array() { return close() && dom_.end_array(); }
  bool key(string_t& k) {
    Frame& top = stack_.back();
    top.key = k;
    if (!top.keys.insert(k).second) {
      // Path of the enclosing object, then the repeated key.
      std::string base;
      for (size_t i = 0; i + 1 < stack_.size(); ++i) {
        base = stack_[i].object ? pointer_join(base, stack_[i].key)
                                : pointer_join(base, stack_[i].next_index - 1);
      }
      duplicates.push_back(pointer_join(base, k));
    }
    return dom_.key(k);
  }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception& e) {
    // parse_error for syntax, out_of_range for numbers beyond a double ("1e400").
    error = e.what();
    if (auto pos = error.find("] "); pos != std::string::npos) error = error.substr(pos + 2);
    return false;
  }

 private:
  struct Frame {
    bool object = false;
    std::unordered_set<std::string> keys;
    std::string key;
    size_t next_index = 0;
  };
  bool value() {
    if (!stack_.empty() && !stack_.back().object) ++stack_.back().next_index;
    return true;
  }
  bool open(bool object) {
    value();
    if (stack_.size() >= static_cast<size_t>(kMaxJsonDepth)) {
      too_deep = true;
      return false;
    }
    stack_.push_back({object, {}, {}, 0});
    return true;
  }
  bool close() {
    if (!stack_.empty()) stack_.pop_back();
    return true;
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::vector<Frame> stack_;
};

// Parses JSON text, refusing duplicate object keys and documents nested too deeply.
std::optional<json> parse_json_strict(std::string_view text, Diagnostics& d) {
  json doc;
  StrictJsonBuilder builder(doc);
  json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, true, false);
  if (builder.too_deep) {
    d.error("", "not a manifest: values nested more than " + std::to_string(kMaxJsonDepth) +
                    " levels deep");
    return std::nullopt;
  }
  if (!builder.error.empty()) {
    d.error("", "not valid JSON: " + builder.error);
    return std::nullopt;
  }
  for (const std::string& path : builder.duplicates) {
    d.error(path, "key appears more than once in its object; each key may appear once");
  }
  if (!builder.duplicates.empty()) return std::nullopt;
  return doc;
}

// Reads one expanded document into a Manifest, reporting every problem with its JSON pointer.
class ManifestReader {
 public:
  ManifestReader(Diagnostics& d, bool template_mode, const LoadOptions& options)
      : d_(d), template_(template_mode), options_(options) {}

  void read(const json& doc, Manifest& m) {
    if (!keys(doc, "", "")) return;
    read_api_version(doc, m);
    if (require(doc, "", "metadata", "an object with at least \"name\"")) {
      read_metadata(doc["metadata"], m.metadata);
    }
    if (doc.contains("process")) read_process(doc["process"], m.process);
    if (doc.contains("filesystem")) read_filesystem(doc["filesystem"], m.filesystem);
    if (require(doc, "", "tools", "a non-empty array of tools")) read_tools(doc["tools"], m.tools);
    if (doc.contains("network")) read_network(doc["network"], m);
    if (doc.contains("syscalls")) read_syscalls(doc["syscalls"], m.syscalls);
    if (doc.contains("budgets")) read_budgets(doc["budgets"], m.budgets);
    if (doc.contains("rules")) read_rules(doc["rules"], m.rules);
    if (doc.contains("audit")) read_audit(doc["audit"], m.audit);
    if (doc.contains("baseline")) read_baseline(doc["baseline"], m);
    if (doc.contains("on_violation")) {
      if (auto s = enum_string(doc["on_violation"], "/on_violation", {"deny", "kill"})) {
        m.on_violation = *s == "kill" ? OnViolation::kill : OnViolation::deny;
      }
    }
    if (doc.contains("enforcement")) read_enforcement(doc["enforcement"], m.enforcement);
  }

  // ---- generic readers -------------------------------------------------------------------

  void mismatch(const std::string& path, const std::string& expected, const json& got) {
    d_.error(path, "expected " + expected + ", got " + describe(got));
  }

  // Checks that `v` is an object whose keys are those accepted at `schema_path`.
  bool keys(const json& v, const std::string& path, const std::string& schema_path) {
    if (!v.is_object()) {
      mismatch(path, "an object", v);
      return false;
    }
    const std::vector<std::string>& accepted = accepted_keys().at(schema_path);
    if (accepted.size() == 1 && accepted[0] == "*") return true;
    for (const auto& [key, value] : v.items()) {
      if (std::find(accepted.begin(), accepted.end(), key) != accepted.end()) continue;
      d_.error(pointer_join(path, key), unknown_key_message(key, accepted));
    }
    return true;
  }

  bool require(const json& object, const std::string& path, const char* key,
               const std::string& expected) {
    if (object.is_object() && object.contains(key)) return true;
    d_.error(pointer_join(path, key), "required key is missing; expected " + expected);
    return false;
  }

  std::optional<std::string> string(const json& v, const std::string& path,
                                    const std::string& expected = "a string") {
    if (!v.is_string()) {
      mismatch(path, expected, v);
      return std::nullopt;
    }
    return v.get<std::string>();
  }

  std::optional<std::string> nonempty_string(const json& v, const std::string& path,
                                             const std::string& expected) {
    auto s = string(v, path, expected);
    if (s && s->empty()) {
      mismatch(path, expected, v);
      return std::nullopt;
    }
    return s;
  }

  std::optional<bool> boolean(const json& v, const std::string& path) {
    if (!v.is_boolean()) {
      mismatch(path, "true or false", v);
      return std::nullopt;
    }
    return v.get<bool>();
  }

  std::optional<uint64_t> integer(const json& v, const std::string& path, uint64_t min,
                                  uint64_t max, const std::string& expected) {
    if (v.is_number_unsigned()) {
      uint64_t n = v.get<uint64_t>();
      if (n >= min && n <= max) return n;
    } else if (v.is_number_integer()) {
      int64_t n = v.get<int64_t>();
      if (n >= 0 && static_cast<uint64_t>(n) >= min && static_cast<uint64_t>(n) <= max) {
        return static_cast<uint64_t>(n);
      }
    }
    mismatch(path, expected, v);
    return std::nullopt;
  }

  std::optional<std::string> enum_string(const json& v, const std::string& path,
                                         std::initializer_list<const char*> choices) {
    std::string expected;
    for (const char* c : choices) {
      if (!expected.empty()) expected += " or ";
      expected += json_quote(c);
    }
    if (v.is_string()) {
      std::string s = v.get<std::string>();
      for (const char* c : choices) {
        if (s == c) return s;
      }
    }
    mismatch(path, expected, v);
    return std::nullopt;
  }

  // Non-negative dollar amount, kept as integer micro-dollars.
  std::optional<uint64_t> dollars(const json& v, const std::string& path) {
    const std::string expected = "an amount in US dollars, a number from 0 to 1000000";
    if (!v.is_number()) {
      mismatch(path, expected, v);
      return std::nullopt;
    }
    double x = v.get<double>();
    if (!std::isfinite(x) || x < 0 || x > 1e6) {
      mismatch(path, expected, v);
      return std::nullopt;
    }
    double micro = x * 1e6;
    double rounded = std::round(micro);
    if (std::fabs(micro - rounded) > 1e-3) {
      mismatch(path, "an amount in whole millionths of a dollar", v);
      return std::nullopt;
    }
    return static_cast<uint64_t>(rounded);
  }

  // An array of strings, each checked by `check` (returning "" or what was expected); duplicate
  // entries are errors that name the first occurrence.
  std::vector<std::string> string_list(
      const json& v, const std::string& path, const std::string& expected_item,
      const std::function<std::string(const std::string&)>& check = nullptr) {
    std::vector<std::string> out;
    if (!v.is_array()) {
      mismatch(path, "an array of " + expected_item, v);
      return out;
    }
    std::unordered_map<std::string, size_t> seen;
    seen.reserve(v.size());
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) {
        mismatch(pointer_join(path, i), expected_item, v[i]);
        continue;
      }
      const std::string& s = v[i].get_ref<const std::string&>();
      if (check) {
        std::string why = check(s);
        if (!why.empty()) {
          d_.error(pointer_join(path, i), "expected " + why + ", got " + describe(v[i]));
          continue;
        }
      }
      if (auto [it, inserted] = seen.emplace(s, i); !inserted) {
        d_.error(pointer_join(path, i),
                 "listed twice (also at " + pointer_join(path, it->second) + ")");
        continue;
      }
      out.push_back(s);
    }
    return out;
  }

  std::function<std::string(const std::string&)> path_check() {
    bool t = template_;
    return [t](const std::string& p) { return check_absolute_path(p, t); };
  }

  // A unix socket's address holds at most 107 bytes of path (sun_path, with its terminating NUL).
  std::function<std::string(const std::string&)> unix_socket_check() {
    bool t = template_;
    return [t](const std::string& p) -> std::string {
      std::string why = check_absolute_path(p, t);
      if (!why.empty()) return why;
      if (p.size() > kMaxUnixSocketPath) {
        return "a path of at most " + std::to_string(kMaxUnixSocketPath) +
               " bytes (the longest a unix socket address holds)";
      }
      return {};
    };
  }

  // ---- sections ----------------------------------------------------------------------------

  void read_api_version(const json& doc, Manifest& m) {
    if (!require(doc, "", "apiVersion", json_quote(kApiVersion))) return;
    const json& v = doc["apiVersion"];
    if (v.is_string() && v.get<std::string>() == kApiVersion) {
      m.api_version = kApiVersion;
      return;
    }
    d_.error("/apiVersion", std::string("this build reads manifests of version \"") + kApiVersion +
                                "\" only, got " + describe(v));
  }

  void read_metadata(const json& v, Metadata& md) {
    if (!keys(v, "/metadata", "/metadata")) return;
    const std::string name_expected =
        "a name of 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit";
    if (require(v, "/metadata", "name", name_expected)) {
      if (auto s = string(v["name"], "/metadata/name", name_expected)) {
        bool ok =
            !s->empty() && s->size() <= 128 && std::isalnum(static_cast<unsigned char>((*s)[0]));
        for (char c : *s) {
          ok = ok &&
               (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
        }
        if (ok) {
          md.name = *s;
        } else {
          mismatch("/metadata/name", name_expected, v["name"]);
        }
      }
    }
    if (v.contains("revision")) {
      if (auto n = integer(v["revision"], "/metadata/revision", 0,
                           static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                           "a non-negative integer")) {
        md.revision = static_cast<int64_t>(*n);
      }
    }
    if (v.contains("approved_by")) {
      if (auto s = string(v["approved_by"], "/metadata/approved_by")) md.approved_by = *s;
    }
    if (v.contains("reason")) {
      if (auto s = string(v["reason"], "/metadata/reason")) md.reason = *s;
    }
    if (v.contains("labels")) {
      const json& labels = v["labels"];
      if (!labels.is_object()) {
        mismatch("/metadata/labels", "an object of string values", labels);
      } else {
        for (const auto& [key, value] : labels.items()) {
          if (auto s = string(value, pointer_join("/metadata/labels", key))) md.labels[key] = *s;
        }
      }
    }
  }

  void read_process(const json& v, Process& p) {
    if (!keys(v, "/process", "/process")) return;
    if (v.contains("cwd")) {
      if (auto s = string(v["cwd"], "/process/cwd", "an absolute path")) {
        std::string why = check_absolute_path(*s, template_);
        if (why.empty()) {
          p.cwd = *s;
        } else {
          mismatch("/process/cwd", why, v["cwd"]);
        }
      }
    }
    if (v.contains("env")) {
      const json& env = v["env"];
      if (keys(env, "/process/env", "/process/env")) {
        auto env_name = [](const std::string& name) -> std::string {
          bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
          for (char c : name)
            ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
          if (!ok) return "an environment variable name (letters, digits and _)";
          if (name.rfind("ENCLOSURE_", 0) == 0) {
            return "a name outside ENCLOSURE_*, which the enclosure itself sets";
          }
          return {};
        };
        if (env.contains("pass")) {
          p.env_pass = string_list(env["pass"], "/process/env/pass", "variable names", env_name);
        }
        if (env.contains("set")) {
          const json& set = env["set"];
          if (!set.is_object()) {
            mismatch("/process/env/set", "an object of NAME: value strings", set);
          } else {
            for (const auto& [key, value] : set.items()) {
              std::string path = pointer_join("/process/env/set", key);
              if (std::string why = env_name(key); !why.empty()) {
                d_.error(path, "expected " + why + " as the key");
                continue;
              }
              auto s = string(value, path);
              if (!s) continue;
              if (s->find('\0') != std::string::npos) {
                d_.error(path, "expected a value without NUL bytes");
                continue;
              }
              p.env_set[key] = *s;
            }
          }
        }
      }
    }
    if (v.contains("user")) {
      const json& user = v["user"];
      if (keys(user, "/process/user", "/process/user")) {
        const std::string expected = "an id from 0 to 4294967294";
        UserIds ids;
        // Both checked, so that a missing uid and gid are reported together.
        bool has_uid = require(user, "/process/user", "uid", expected);
        bool has_gid = require(user, "/process/user", "gid", expected);
        if (has_uid && has_gid) {
          auto uid = integer(user["uid"], "/process/user/uid", 0, 4294967294u, expected);
          auto gid = integer(user["gid"], "/process/user/gid", 0, 4294967294u, expected);
          if (uid && gid) {
            ids.uid = static_cast<uint32_t>(*uid);
            ids.gid = static_cast<uint32_t>(*gid);
            p.user = ids;
          }
        }
      }
    }
  }

  void read_filesystem(const json& v, Filesystem& fs) {
    if (!keys(v, "/filesystem", "/filesystem")) return;
    auto grant_check = [this](const std::string& p) -> std::string {
      std::string why = check_absolute_path(p, template_);
      if (!why.empty()) return why;
      if (path_is_under(p, "/proc") || path_is_under(p, "/dev")) {
        return "a path outside /proc and /dev, which the enclosure always provides itself";
      }
      return {};
    };
    if (v.contains("read"))
      fs.read = string_list(v["read"], "/filesystem/read", "absolute paths", grant_check);
    if (v.contains("write")) {
      fs.write = string_list(v["write"], "/filesystem/write", "absolute paths",
                             [&](const std::string& p) -> std::string {
                               if (p == "/") {
                                 return "a path other than \"/\" (a writable host root is no "
                                        "sandbox)";
                               }
                               return grant_check(p);
                             });
    }
    if (v.contains("tmpfs")) {
      fs.tmpfs = string_list(v["tmpfs"], "/filesystem/tmpfs", "absolute paths",
                             [&](const std::string& p) -> std::string {
                               if (p == "/") {
                                 return "a path other than \"/\" (the root of the view is "
                                        "always a fresh tmpfs)";
                               }
                               return grant_check(p);
                             });
    }
    if (v.contains("hide"))
      fs.hide = string_list(v["hide"], "/filesystem/hide", "absolute paths", path_check());
  }

  void read_tools(const json& v, std::vector<Tool>& tools) {
    if (!v.is_array() || v.empty()) {
      mismatch("/tools", "a non-empty array of tools (the command run must be one of them)", v);
      return;
    }
    std::map<std::string, size_t> names, paths;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string path = pointer_join("/tools", i);
      const json& t = v[i];
      if (!keys(t, path, "/tools/*")) continue;
      Tool tool;
      bool ok = true;
      const std::string name_expected =
          "a tool name of 1 to 64 letters, digits, '.', '_', '+' or '-'";
      if (require(t, path, "name", name_expected)) {
        if (auto s = string(t["name"], path + "/name", name_expected)) {
          bool valid = !s->empty() && s->size() <= 64;
          for (char c : *s) {
            valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                              c == '+' || c == '-');
          }
          if (!valid) {
            mismatch(path + "/name", name_expected, t["name"]);
            ok = false;
          } else if (auto [it, inserted] = names.emplace(*s, i); !inserted) {
            d_.error(path + "/name", "duplicate tool name " + json_quote(*s) + " (also at " +
                                         pointer_join("/tools", it->second) + "/name)");
            ok = false;
          } else {
            tool.name = *s;
          }
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (require(t, path, "path", "an absolute path of an executable")) {
        if (auto s = string(t["path"], path + "/path", "an absolute path")) {
          std::string why = check_absolute_path(*s, template_);
          if (!why.empty()) {
            mismatch(path + "/path", why, t["path"]);
            ok = false;
          } else if (*s == "/") {
            mismatch(path + "/path", "the path of an executable file (or of a tree below /)",
                     t["path"]);
            ok = false;
          } else if (path_is_under(*s, "/proc") || path_is_under(*s, "/dev")) {
            // The enclosure provides these itself (/dev/shm writable): no tool lives there.
            mismatch(path + "/path", "the path of an executable outside /proc and /dev", t["path"]);
            ok = false;
          } else if (auto [it, inserted] = paths.emplace(*s, i); !inserted) {
            d_.error(path + "/path", "duplicate tool path " + json_quote(*s) + " (also at " +
                                         pointer_join("/tools", it->second) + "/path)");
            ok = false;
          } else {
            tool.path = *s;
          }
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (t.contains("max_calls")) {
        if (auto n = integer(t["max_calls"], path + "/max_calls", 0, 1ULL << 40,
                             "a non-negative integer")) {
          tool.max_calls = *n;
        }
      }
      if (t.contains("cost_usd")) {
        if (auto c = dollars(t["cost_usd"], path + "/cost_usd")) tool.cost_micro_usd = *c;
      }
      if (t.contains("tree")) {
        if (auto b = boolean(t["tree"], path + "/tree")) tool.tree = *b;
      }
      if (ok) tools.push_back(tool);
    }
  }

  std::optional<PortRange> port(const json& v, const std::string& path) {
    const std::string expected = "a port 1-65535 or \"a-b\"";
    if (v.is_number_integer() || v.is_number_unsigned()) {
      if (auto n = integer(v, path, 1, 65535, expected)) {
        return PortRange{static_cast<uint16_t>(*n), static_cast<uint16_t>(*n)};
      }
      return std::nullopt;
    }
    if (v.is_string()) {
      std::string s = v.get<std::string>();
      size_t dash = s.find('-');
      auto number = [](std::string_view t, uint32_t& out) {
        if (t.empty() || t.size() > 5) return false;
        out = 0;
        for (char c : t) {
          if (c < '0' || c > '9') return false;
          out = out * 10 + static_cast<uint32_t>(c - '0');
        }
        return out >= 1 && out <= 65535;
      };
      uint32_t a = 0, b = 0;
      if (dash != std::string::npos && number(std::string_view(s).substr(0, dash), a) &&
          number(std::string_view(s).substr(dash + 1), b)) {
        if (a <= b) return PortRange{static_cast<uint16_t>(a), static_cast<uint16_t>(b)};
        mismatch(path, "a range \"a-b\" with a <= b", v);
        return std::nullopt;
      }
    }
    mismatch(path, expected, v);
    return std::nullopt;
  }

  // One egress rule's "host" or "cidr"; false when missing, doubled or invalid.
  bool read_egress_destination(const json& r, const std::string& path, EgressRule& rule) {
    bool ok = true;
    bool has_host = r.contains("host"), has_cidr = r.contains("cidr");
    if (has_host == has_cidr) {
      d_.error(path,
               "expected exactly one of \"host\" (a DNS name) and \"cidr\" (an address "
               "block)");
      ok = false;
    } else if (has_host) {
      if (auto s = string(r["host"], path + "/host", "a DNS name")) {
        std::string why;
        if (!(template_ && has_placeholder(*s)) && !valid_host_pattern(*s, why)) {
          mismatch(path + "/host", why, r["host"]);
          ok = false;
        } else {
          rule.host = *s;
        }
      } else {
        ok = false;
      }
    } else {
      if (auto s = string(r["cidr"], path + "/cidr", "an address block")) {
        rule.cidr_text = *s;
        if (!(template_ && has_placeholder(*s))) {
          Parsed<Cidr> c = parse_cidr(*s);
          if (c) {
            rule.cidr = *c.value;
          } else {
            mismatch(path + "/cidr", c.error, r["cidr"]);
            ok = false;
          }
        }
      } else {
        ok = false;
      }
    }
    return ok;
  }

  // One egress rule at `path`; false when any of its fields is invalid (each one reported).
  bool read_egress_rule(const json& r, const std::string& path, EgressRule& rule) {
    bool ok = read_egress_destination(r, path, rule);
    bool has_host = r.contains("host");
    if (require(r, path, "ports", "a non-empty array of ports")) {
      const json& ports = r["ports"];
      if (!ports.is_array() || ports.empty()) {
        mismatch(path + "/ports", "a non-empty array of ports 1-65535 or \"a-b\" ranges", ports);
        ok = false;
      } else {
        for (size_t k = 0; k < ports.size(); ++k) {
          if (auto p = port(ports[k], pointer_join(path + "/ports", k))) {
            rule.ports.push_back(*p);
          } else {
            ok = false;
          }
        }
        rule.ports = merge_port_ranges(rule.ports);
      }
    } else {
      ok = false;
    }
    if (r.contains("protocol")) {
      if (auto s = enum_string(r["protocol"], path + "/protocol", {"tcp", "udp"})) {
        rule.protocol = *s == "udp" ? Protocol::udp : Protocol::tcp;
      } else {
        ok = false;
      }
    }
    if (r.contains("private")) {
      if (!has_host) {
        d_.error(path + "/private",
                 "\"private\" applies only to host rules (a cidr rule names its addresses "
                 "itself)");
        ok = false;
      } else if (auto b = boolean(r["private"], path + "/private")) {
        rule.private_ok = *b;
      } else {
        ok = false;
      }
    }
    return ok;
  }

  void read_network(const json& v, Manifest& m) {
    Network& n = m.network;
    if (!keys(v, "/network", "/network")) return;
    if (v.contains("mode")) {
      if (auto s = enum_string(v["mode"], "/network/mode", {"none", "filtered", "host"})) {
        n.mode = *s == "filtered" ? NetworkMode::filtered
                 : *s == "host"   ? NetworkMode::host
                                  : NetworkMode::none;
      }
    }
    if (v.contains("dns")) {
      if (auto b = boolean(v["dns"], "/network/dns")) n.dns = *b;
    }
    if (v.contains("unix")) {
      n.unix_sockets = string_list(v["unix"], "/network/unix", "absolute paths of unix sockets",
                                   unix_socket_check());
    }
    if (!v.contains("egress")) return;
    const json& egress = v["egress"];
    if (!egress.is_array()) {
      mismatch("/network/egress", "an array of egress rules", egress);
      return;
    }
    std::unordered_map<std::string, size_t> destinations;
    for (size_t i = 0; i < egress.size(); ++i) {
      std::string path = pointer_join("/network/egress", i);
      const json& r = egress[i];
      if (!keys(r, path, "/network/egress/*")) continue;
      EgressRule rule;
      if (!read_egress_rule(r, path, rule)) continue;
      std::string destination = (rule.is_host() ? "host " + rule.host
                                 : rule.cidr    ? "cidr " + rule.cidr->to_string()
                                                : "cidr " + rule.cidr_text) +
                                " " + to_string(rule.protocol);
      if (auto [it, inserted] = destinations.emplace(destination, i); !inserted) {
        d_.error(path, "same destination and protocol as " +
                           pointer_join("/network/egress", it->second) +
                           "; list the ports in one rule");
        continue;
      }
      n.egress.push_back(rule);
    }
  }

  // /syscalls/profile naming an OCI seccomp file: read through the caller's reader, parsed
  // strictly, converted (errors point into the file under /syscalls/profile).
  void read_imported_profile(const std::string& path, Syscalls& s) {
    if (!options_.read_profile) {
      d_.error("/syscalls/profile", "cannot read the profile file \"" + path +
                                        "\": no file reader was given to the parser");
      return;
    }
    std::string error;
    std::optional<std::string> text = options_.read_profile(path, error);
    if (!text) {
      d_.error("/syscalls/profile", "cannot read the OCI seccomp profile: " + error);
      return;
    }
    Diagnostics parse;
    std::optional<json> doc = parse_json_strict(*text, parse);
    for (const Diagnostic& e : parse.errors()) {
      std::string message = e.message;
      if (message.rfind("not a manifest: ", 0) == 0)
        message = "not a seccomp profile: " + message.substr(16);
      d_.error("/syscalls/profile" + e.path, "in " + path + ": " + message);
    }
    if (!doc) return;
    OciImport imported = import_oci_seccomp(*doc, path, "/syscalls/profile", d_);
    if (!imported.profile) return;
    s.profile = path;
    s.imported = std::make_shared<const SeccompProfile>(std::move(*imported.profile));
    s.imported_digest = manifest_digest(*doc);
    imported_kill_ = imported.first_kill;
  }

  // /syscalls/profile_digest: well formed, and the digest of the profile file named.
  void check_profile_digest(const json& v, const Syscalls& s) {
    const json& pd = v["profile_digest"];
    bool profile_is_path = v.contains("profile") && v["profile"].is_string() &&
                           v["profile"].get<std::string>().rfind('/', 0) == 0;
    auto well_formed = [](const std::string& t) {
      return t.size() == 71 && t.rfind("sha256:", 0) == 0 &&
             std::all_of(t.begin() + 7, t.end(),
                         [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    };
    if (!pd.is_string() || !well_formed(pd.get<std::string>())) {
      mismatch("/syscalls/profile_digest", "\"sha256:\" and 64 lower-case hex digits", pd);
    } else if (!profile_is_path) {
      d_.error("/syscalls/profile_digest",
               "pins the content of a profile file, but /syscalls/profile names none");
    } else if (s.is_imported() && pd.get<std::string>() != s.imported_digest) {
      d_.error("/syscalls/profile_digest",
               "the profile file " + s.profile + " has digest " + s.imported_digest + ", not " +
                   pd.get<std::string>() + " (it changed since the manifest pinned it)");
    }
  }

  // An imported profile must let the launcher's own calls before the agent starts pass
  // (policy/oci_seccomp.h).
  void check_launcher_start_calls(const Syscalls& s) {
    SeccompProfile compiled = compile_seccomp(s);
    std::string missing;
    for (const std::string& name : launcher_start_syscalls()) {
      bool outright = compiled.default_verdict == SeccompVerdict::allow;
      for (const SeccompRule& r : compiled.rules) {
        if (r.syscall != name) continue;
        if (r.verdict == SeccompVerdict::allow && r.conditions.empty()) outright = true;
        if (r.verdict != SeccompVerdict::allow) outright = false;
      }
      if (!outright) missing += (missing.empty() ? "" : ", ") + name;
    }
    if (!missing.empty()) {
      d_.error("/syscalls/profile",
               "in " + s.profile + ": the enclosure needs " + missing +
                   " allowed outright to start the agent (after loading the filter it hands the "
                   "filter's listener to its supervisor with sendmsg, then calls execve); allow "
                   "them in the file or under /syscalls/allow");
    }
  }

  void read_syscalls(const json& v, Syscalls& s) {
    if (!keys(v, "/syscalls", "/syscalls")) return;
    if (v.contains("profile")) {
      const json& p = v["profile"];
      if (p.is_string() && p.get<std::string>().rfind('/', 0) == 0) {
        std::string why = check_absolute_path(p.get<std::string>());
        if (why.empty()) {
          read_imported_profile(p.get<std::string>(), s);
        } else {
          mismatch("/syscalls/profile", why, p);
        }
      } else if (p.is_string() && (p == "default" || p == "strict")) {
        s.profile = p.get<std::string>();
      } else {
        mismatch("/syscalls/profile",
                 "\"default\", \"strict\" or the absolute path of an OCI seccomp profile (JSON)",
                 p);
      }
    }
    if (v.contains("profile_digest")) check_profile_digest(v, s);
    auto known = [](const std::string& name) -> std::string {
      if (known_syscall(name)) return {};
      return "a system call name of this architecture (as in syscalls(2))";
    };
    // The launcher itself makes these calls between loading the filter and starting the
    // command (handing the listener to the supervisor, reporting a failed exec): a profile
    // that denies them could never start anything.
    auto deniable = [&](const std::string& name) -> std::string {
      std::string why = known(name);
      if (!why.empty()) return why;
      for (const char* needed : {"execve", "sendmsg", "close", "write", "exit_group"}) {
        if (name == needed) {
          return std::string("a system call other than ") + needed +
                 ", which the launcher needs to start the command (to stop the agent from running "
                 "programs later, use a composition rule that denies \"exec\")";
        }
      }
      return {};
    };
    if (v.contains("deny"))
      s.deny = string_list(v["deny"], "/syscalls/deny", "system call names", deniable);
    if (v.contains("allow"))
      s.allow = string_list(v["allow"], "/syscalls/allow", "system call names", known);
    for (size_t i = 0; i < s.allow.size(); ++i) {
      auto it = std::find(s.deny.begin(), s.deny.end(), s.allow[i]);
      if (it != s.deny.end()) {
        d_.error(pointer_join("/syscalls/allow", i),
                 json_quote(s.allow[i]) + " is also denied at " +
                     pointer_join("/syscalls/deny", static_cast<size_t>(it - s.deny.begin())) +
                     "; a system call is either allowed or denied");
      }
    }
    if (v.contains("action")) {
      if (auto a = enum_string(v["action"], "/syscalls/action", {"errno", "kill"})) {
        s.action = *a == "kill" ? SyscallAction::kill : SyscallAction::errno_eperm;
      }
    }
    if (s.is_imported()) check_launcher_start_calls(s);
    if (!imported_kill_.empty() && s.action != SyscallAction::kill) {
      d_.error(imported_kill_, "in " + s.profile +
                                   ": the profile kills here, but the enclosure answers every "
                                   "denial as /syscalls/action says, and that is \"errno\"; set "
                                   "\"action\": \"kill\" (or use SCMP_ACT_ERRNO in the file)");
    }
  }

  void read_budgets(const json& v, Budgets& b) {
    if (!keys(v, "/budgets", "/budgets")) return;
    auto duration = [&](const char* key, std::optional<uint64_t>& out) {
      if (!v.contains(key)) return;
      std::string path = pointer_join("/budgets", key);
      const json& x = v[key];
      if (!x.is_string()) {
        mismatch(path, "a duration such as \"300ms\", \"90s\", \"5m\" or \"2h\"", x);
        return;
      }
      Parsed<uint64_t> p = parse_duration(x.get<std::string>());
      if (p) {
        out = *p.value;
      } else {
        mismatch(path, p.error, x);
      }
    };
    auto size = [&](const char* key, std::optional<uint64_t>& out) {
      if (!v.contains(key)) return;
      std::string path = pointer_join("/budgets", key);
      const json& x = v[key];
      if (x.is_number_unsigned() || x.is_number_integer()) {
        out = integer(x, path, 1, std::numeric_limits<uint64_t>::max(),
                      "a size such as \"512KiB\" or \"2GiB\", or a positive number of bytes");
        return;
      }
      if (!x.is_string()) {
        mismatch(path, "a size such as \"512KiB\" or \"2GiB\"", x);
        return;
      }
      Parsed<uint64_t> p = parse_size(x.get<std::string>());
      if (p && *p.value == 0) {
        mismatch(path, "a size greater than zero", x);
      } else if (p) {
        out = *p.value;
      } else {
        mismatch(path, p.error, x);
      }
    };
    auto count = [&](const char* key, uint64_t min, std::optional<uint64_t>& out) {
      if (!v.contains(key)) return;
      out = integer(v[key], pointer_join("/budgets", key), min, 1ULL << 62,
                    min == 0 ? "a non-negative integer" : "a positive integer");
    };
    duration("wall_clock", b.wall_clock_ns);
    duration("cpu_time", b.cpu_time_ns);
    count("tool_calls", 0, b.tool_calls);
    count("syscalls", 1, b.syscalls);
    count("processes", 1, b.processes);
    size("memory", b.memory_bytes);
    size("egress_bytes", b.egress_bytes);
    if (v.contains("cost_usd")) b.cost_micro_usd = dollars(v["cost_usd"], "/budgets/cost_usd");
  }

  void read_rules(const json& v, std::vector<Rule>& rules) {
    if (!v.is_array()) {
      mismatch("/rules", "an array of composition rules", v);
      return;
    }
    std::map<std::string, size_t> ids;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string path = pointer_join("/rules", i);
      const json& r = v[i];
      if (!keys(r, path, "/rules/*")) continue;
      Rule rule;
      bool ok = true;
      const std::string id_expected = "a rule id of 1 to 64 letters, digits, '.', '_' or '-'";
      if (require(r, path, "id", id_expected)) {
        if (auto s = string(r["id"], path + "/id", id_expected)) {
          bool valid = !s->empty() && s->size() <= 64;
          for (char c : *s) {
            valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                              c == '-');
          }
          if (!valid) {
            mismatch(path + "/id", id_expected, r["id"]);
            ok = false;
          } else if (auto [it, inserted] = ids.emplace(*s, i); !inserted) {
            d_.error(path + "/id", "duplicate rule id " + json_quote(*s) + " (also at " +
                                       pointer_join("/rules", it->second) + "/id)");
            ok = false;
          } else {
            rule.id = *s;
          }
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (require(r, path, "after",
                  "an object naming read paths, exec tools or connect "
                  "destinations")) {
        ok = read_trigger(r["after"], path + "/after", rule.after) && ok;
      } else {
        ok = false;
      }
      if (require(r, path, "deny",
                  "a non-empty array: \"network\", \"write\", \"exec\", "
                  "\"tool:NAME\" or \"host:NAME\"")) {
        ok = read_denial(r["deny"], path + "/deny", rule.deny) && ok;
      } else {
        ok = false;
      }
      if (ok) rules.push_back(rule);
    }
  }

  bool read_trigger(const json& v, const std::string& path, RuleTrigger& t) {
    // An unknown key counts: "reads" is a trigger misspelt, not a missing one.
    size_t before = d_.errors().size();
    if (!keys(v, path, "/rules/*/after")) return false;
    if (v.contains("read"))
      t.read = string_list(v["read"], path + "/read", "absolute paths", path_check());
    if (v.contains("exec")) t.exec = string_list(v["exec"], path + "/exec", "tool names");
    if (v.contains("connect")) {
      const json& c = v["connect"];
      if (!c.is_array()) {
        mismatch(path + "/connect", "an array of egress rule indices or host names", c);
      } else {
        for (size_t i = 0; i < c.size(); ++i) {
          std::string item = pointer_join(path + "/connect", i);
          ConnectTrigger ct;
          if (c[i].is_number_unsigned() || c[i].is_number_integer()) {
            if (auto n = integer(c[i], item, 0, 1u << 20, "an egress rule index or a host name")) {
              ct.egress_index = static_cast<size_t>(*n);
            } else {
              continue;
            }
          } else if (c[i].is_string() && !c[i].get<std::string>().empty()) {
            ct.host = c[i].get<std::string>();
          } else {
            mismatch(item, "an egress rule index or a host name", c[i]);
            continue;
          }
          if (std::find(t.connect.begin(), t.connect.end(), ct) != t.connect.end()) {
            d_.error(item, "listed twice");
            continue;
          }
          t.connect.push_back(ct);
        }
      }
    }
    if (d_.errors().size() != before) return false;
    if (t.read.empty() && t.exec.empty() && t.connect.empty()) {
      d_.error(path, "expected at least one trigger under \"read\", \"exec\" or \"connect\"");
      return false;
    }
    return true;
  }

  bool read_denial(const json& v, const std::string& path, RuleDenial& dn) {
    const std::string expected = "\"network\", \"write\", \"exec\", \"tool:NAME\" or \"host:NAME\"";
    if (!v.is_array() || v.empty()) {
      mismatch(path, "a non-empty array of " + expected, v);
      return false;
    }
    bool ok = true;
    std::set<std::string> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string item = pointer_join(path, i);
      auto s = string(v[i], item, expected);
      if (!s) {
        ok = false;
        continue;
      }
      if (!seen.insert(*s).second) {
        d_.error(item, "listed twice");
        ok = false;
        continue;
      }
      if (*s == "network") {
        dn.network = true;
      } else if (*s == "write") {
        dn.write = true;
      } else if (*s == "exec") {
        dn.exec = true;
      } else if (s->rfind("tool:", 0) == 0 && s->size() > 5) {
        dn.tools.push_back(s->substr(5));
      } else if (s->rfind("host:", 0) == 0 && s->size() > 5) {
        dn.hosts.push_back(s->substr(5));
      } else {
        mismatch(item, expected, v[i]);
        ok = false;
      }
    }
    return ok;
  }

  void read_audit(const json& v, Audit& a) {
    if (!keys(v, "/audit", "/audit")) return;
    if (v.contains("files")) {
      if (auto b = boolean(v["files"], "/audit/files")) a.files = *b;
    }
    if (v.contains("syscalls")) {
      if (auto b = boolean(v["syscalls"], "/audit/syscalls")) a.syscalls = *b;
    }
  }

  void read_baseline(const json& v, Manifest& m) {
    if (!keys(v, "/baseline", "/baseline")) return;
    Baseline b;
    bool ok = true;
    if (require(v, "/baseline", "profile",
                "the absolute path of a profile from `enclosure learn`")) {
      if (auto s = string(v["profile"], "/baseline/profile", "an absolute path")) {
        std::string why = check_absolute_path(*s);
        if (why.empty()) {
          b.profile = *s;
        } else {
          mismatch("/baseline/profile", why, v["profile"]);
          ok = false;
        }
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (v.contains("tolerance")) {
      const json& t = v["tolerance"];
      if (t.is_number() && std::isfinite(t.get<double>()) && t.get<double>() >= 1.0 &&
          t.get<double>() <= 1000.0) {
        b.tolerance = t.get<double>();
      } else {
        mismatch("/baseline/tolerance", "a factor from 1.0 to 1000 (peak rate x tolerance)", t);
        ok = false;
      }
    }
    if (v.contains("action")) {
      if (auto a = enum_string(v["action"], "/baseline/action", {"alert", "kill"})) {
        b.action = *a == "kill" ? BaselineAction::kill : BaselineAction::alert;
      } else {
        ok = false;
      }
    }
    if (ok) m.baseline = b;
  }

  void read_enforcement(const json& v, Enforcement& e) {
    if (!keys(v, "/enforcement", "/enforcement")) return;
    if (!v.contains("allow_degraded")) return;
    std::string expected;
    for (const std::string& layer : degradable_layers()) {
      expected += (expected.empty() ? "" : ", ") + json_quote(layer);
    }
    for (const std::string& layer :
         string_list(v["allow_degraded"], "/enforcement/allow_degraded", "layer names",
                     [&](const std::string& s) -> std::string {
                       return degradable_layers().count(s) ? "" : "one of " + expected;
                     })) {
      e.allow_degraded.insert(layer);
    }
  }

 private:
  Diagnostics& d_;
  bool template_;
  const LoadOptions& options_;
  std::string imported_kill_;  // pointer of the imported profile's first kill action
};

// Granted paths (/filesystem read, write and tmpfs) -> the pointer of their grant.
using GrantPointers = std::map<std::string, std::string>;

// The filesystem grants by path; a path granted twice (read and write, or write and tmpfs) is
// ambiguous.
GrantPointers note_grants(const Filesystem& fs, Diagnostics& d) {
  GrantPointers granted;
  auto note = [&](const std::vector<std::string>& list, const char* section) {
    for (size_t i = 0; i < list.size(); ++i) {
      std::string pointer = pointer_join(std::string("/filesystem/") + section, i);
      auto [it, inserted] = granted.emplace(list[i], pointer);
      if (!inserted) {
        d.error(pointer, "\"" + list[i] + "\" is also granted at " + it->second +
                             "; grant a path once (write implies read)");
      }
    }
  };
  note(fs.read, "read");
  note(fs.write, "write");
  note(fs.tmpfs, "tmpfs");
  return granted;
}

bool under_grant(const GrantPointers& granted, const std::string& path, bool strictly) {
  for (const auto& [grant, pointer] : granted) {
    if (path_is_under(path, grant) && (!strictly || path != grant)) return true;
  }
  return false;
}

// The pointer of the /filesystem/hide entry that hides `path`, or "".
std::string hidden_by(const Filesystem& fs, const std::string& path) {
  for (size_t i = 0; i < fs.hide.size(); ++i) {
    if (path_is_under(path, fs.hide[i])) return pointer_join("/filesystem/hide", i);
  }
  return {};
}

// Each hidden path must lie strictly under a grant, and no grant beneath a hidden path.
void check_hidden_paths(const Filesystem& fs, const GrantPointers& granted, Diagnostics& d) {
  for (size_t i = 0; i < fs.hide.size(); ++i) {
    std::string pointer = pointer_join("/filesystem/hide", i);
    if (auto it = granted.find(fs.hide[i]); it != granted.end()) {
      d.error(pointer,
              "hides exactly the path granted at " + it->second + "; remove the grant instead");
    } else if (!under_grant(granted, fs.hide[i], true)) {
      d.error(pointer, "\"" + fs.hide[i] +
                           "\" is not under any read, write or tmpfs path, so "
                           "there is nothing to hide");
    }
  }
  // A grant beneath a hidden path would expose again part of what the mask hides.
  for (const auto& [grant, pointer] : granted) {
    for (size_t i = 0; i < fs.hide.size(); ++i) {
      if (grant != fs.hide[i] && path_is_under(grant, fs.hide[i])) {
        d.error(pointer, "\"" + grant + "\" lies under the hidden path at " +
                             pointer_join("/filesystem/hide", i) + "; it could not be reached");
      }
    }
  }
}

// The working directory and the tools must be inside the view and not hidden.
void check_reachable(const Manifest& m, const GrantPointers& granted, Diagnostics& d) {
  const Filesystem& fs = m.filesystem;
  if (m.process.cwd != "/" && !has_placeholder(m.process.cwd)) {
    if (!under_grant(granted, m.process.cwd, false)) {
      d.error("/process/cwd", "\"" + m.process.cwd +
                                  "\" is not inside the enclosure's view; "
                                  "grant it under /filesystem/read, write or tmpfs");
    } else if (std::string h = hidden_by(fs, m.process.cwd); !h.empty()) {
      d.error("/process/cwd", "\"" + m.process.cwd + "\" is hidden by " + h);
    }
  }
  for (size_t i = 0; i < m.tools.size(); ++i) {
    if (std::string h = hidden_by(fs, m.tools[i].path); !h.empty()) {
      d.error(pointer_join("/tools", i) + "/path",
              "\"" + m.tools[i].path + "\" is hidden by " + h + "; a tool must be reachable");
    }
  }
}

// A tree tool's directory lies in the host's file system, inside a read or write grant: the
// launcher resolves its identity (device and inode) before the run, which a tmpfs created for the
// run has not got yet. The deepest grant around it decides.
void check_tree_tools(const Manifest& m, const GrantPointers& granted, Diagnostics& d) {
  for (size_t i = 0; i < m.tools.size(); ++i) {
    const Tool& t = m.tools[i];
    if (!t.tree || has_placeholder(t.path)) continue;
    const std::string pointer = pointer_join("/tools", i) + "/path";
    const std::pair<const std::string, std::string>* deepest = nullptr;
    for (const auto& entry : granted) {
      if (path_is_under(t.path, entry.first) &&
          (!deepest || entry.first.size() > deepest->first.size())) {
        deepest = &entry;
      }
    }
    if (!deepest) {
      d.error(pointer, "the tree \"" + t.path +
                           "\" is not inside the enclosure's view; a tree tool's directory must "
                           "lie inside a /filesystem/read or /filesystem/write grant");
    } else if (deepest->second.rfind("/filesystem/tmpfs/", 0) == 0) {
      d.error(pointer, "the tree \"" + t.path + "\" lies in the tmpfs at " + deepest->second +
                           ", which is created empty for the run; a tree tool's directory must "
                           "lie inside a /filesystem/read or /filesystem/write grant");
    }
  }
}

// A named unix socket must be in the agent's view, not hidden; one under the agent's write grants
// or tmpfs is its own anyway, and naming it would suggest that it is protected.
void check_unix_sockets(const Manifest& m, const GrantPointers& granted, Diagnostics& d) {
  for (size_t i = 0; i < m.network.unix_sockets.size(); ++i) {
    const std::string& path = m.network.unix_sockets[i];
    if (has_placeholder(path)) continue;
    const std::string pointer = pointer_join("/network/unix", i);
    if (!under_grant(granted, path, true)) {
      d.error(pointer, "the socket \"" + path +
                           "\" is not inside the enclosure's view; grant its directory under "
                           "/filesystem/read or write");
    } else if (std::string h = hidden_by(m.filesystem, path); !h.empty()) {
      d.error(pointer, "the socket \"" + path + "\" is hidden by " + h);
    }
  }
}

// Egress rules, the resolver and host mode against the network mode.
void check_network_mode(const Manifest& m, Diagnostics& d) {
  const Network& n = m.network;
  if (n.mode != NetworkMode::filtered && !n.egress.empty()) {
    d.error("/network/egress",
            std::string("egress rules apply only to mode \"filtered\"; mode is \"") +
                to_string(n.mode) + "\"");
  }
  if (n.mode != NetworkMode::filtered && n.dns) {
    d.error("/network/dns", std::string("the enclosure's resolver serves mode \"filtered\" only; "
                                        "mode is \"") +
                                to_string(n.mode) + "\"");
  }
  if (n.mode == NetworkMode::host && !m.enforcement.allows("network")) {
    d.error("/network/mode",
            "\"host\" turns network filtering off; it is accepted only when "
            "/enforcement/allow_degraded names \"network\"");
  }
  if (n.mode == NetworkMode::filtered && !n.dns) {
    for (size_t i = 0; i < n.egress.size(); ++i) {
      if (n.egress[i].is_host()) {
        d.error(pointer_join("/network/egress", i) + "/host",
                "a host rule needs /network/dns true: addresses become reachable when the "
                "enclosure's resolver answers the name");
      }
    }
  }
}

// A rule's triggers must be able to fire: readable paths, existing tools and egress rules.
void check_rule_triggers(const Manifest& m, size_t i, const GrantPointers& granted,
                         const std::set<std::string>& egress_hosts, Diagnostics& d) {
  const Rule& r = m.rules[i];
  const Network& n = m.network;
  std::string base = pointer_join("/rules", i);
  for (size_t k = 0; k < r.after.read.size(); ++k) {
    const std::string& p = r.after.read[k];
    if (has_placeholder(p)) continue;
    if (!under_grant(granted, p, false)) {
      d.error(pointer_join(base + "/after/read", k),
              "\"" + p + "\" is not readable in the enclosure, so this trigger can never fire");
    } else if (std::string h = hidden_by(m.filesystem, p); !h.empty()) {
      d.error(pointer_join(base + "/after/read", k),
              "\"" + p + "\" is hidden by " + h + ", so this trigger can never fire");
    }
  }
  for (size_t k = 0; k < r.after.exec.size(); ++k) {
    if (!m.find_tool(r.after.exec[k])) {
      d.error(pointer_join(base + "/after/exec", k),
              "no tool named \"" + r.after.exec[k] + "\" under /tools");
    }
  }
  for (size_t k = 0; k < r.after.connect.size(); ++k) {
    const ConnectTrigger& c = r.after.connect[k];
    std::string item = pointer_join(base + "/after/connect", k);
    if (c.egress_index && *c.egress_index >= n.egress.size()) {
      d.error(item, "no egress rule " + std::to_string(*c.egress_index) + " (there are " +
                        std::to_string(n.egress.size()) + ")");
    } else if (!c.egress_index && !egress_hosts.count(c.host)) {
      d.error(item, "no egress rule for host \"" + c.host + "\"");
    }
  }
}

// A rule's denial must refer to something the enclosure has.
void check_rule_denial(const Manifest& m, size_t i, const std::set<std::string>& egress_hosts,
                       Diagnostics& d) {
  const RuleDenial& dn = m.rules[i].deny;
  const Filesystem& fs = m.filesystem;
  std::string base = pointer_join("/rules", i);
  if (dn.network && m.network.mode == NetworkMode::none) {
    d.error(base + "/deny", "denies \"network\", but the enclosure has none (mode \"none\")");
  }
  if (dn.write && fs.write.empty() && fs.tmpfs.empty()) {
    d.error(base + "/deny", "denies \"write\", but nothing is writable");
  }
  for (const std::string& t : dn.tools) {
    if (!m.find_tool(t)) d.error(base + "/deny", "no tool named \"" + t + "\" under /tools");
  }
  for (const std::string& h : dn.hosts) {
    if (!egress_hosts.count(h)) d.error(base + "/deny", "no egress rule for host \"" + h + "\"");
  }
}

// Composition rules refer to grants, tools and egress rules that must exist.
void check_rules(const Manifest& m, const GrantPointers& granted, Diagnostics& d) {
  std::set<std::string> egress_hosts;
  for (const EgressRule& r : m.network.egress) {
    if (r.is_host()) egress_hosts.insert(r.host);
  }
  std::map<std::string, size_t> fingerprints;
  for (size_t i = 0; i < m.rules.size(); ++i) {
    const Rule& r = m.rules[i];
    const RuleDenial& dn = r.deny;
    check_rule_triggers(m, i, granted, egress_hosts, d);
    check_rule_denial(m, i, egress_hosts, d);
    // Two rules with the same trigger and the same denial say one thing twice.
    nlohmann::json fp = {{"read", r.after.read}, {"exec", r.after.exec}, {"network", dn.network},
                         {"write", dn.write},    {"x", dn.exec},         {"tools", dn.tools},
                         {"hosts", dn.hosts}};
    for (const ConnectTrigger& c : r.after.connect) {
      fp["connect"].push_back(c.egress_index ? nlohmann::json(*c.egress_index)
                                             : nlohmann::json(c.host));
    }
    if (auto [it, inserted] = fingerprints.emplace(fp.dump(), i); !inserted) {
      d.error(pointer_join("/rules", i),
              "same trigger and denial as " + pointer_join("/rules", it->second));
    }
  }
}

// Cross-section checks: contradictions and references between sections.
void check_consistency(const Manifest& m, Diagnostics& d) {
  GrantPointers granted = note_grants(m.filesystem, d);
  check_hidden_paths(m.filesystem, granted, d);
  check_reachable(m, granted, d);
  check_tree_tools(m, granted, d);
  check_network_mode(m, d);
  check_unix_sockets(m, granted, d);
  check_rules(m, granted, d);
}

}  // namespace

namespace {

// Every declared context variable mapped to its value, or to nullopt when it has none.
using ContextBindings = std::map<std::string, std::optional<std::string>>;

// One declaration under /context: checked, and its value (given with --context, else the
// default) bound in `values`; a variable without either is left unresolved when `options`
// allow it.
void read_context_variable(const std::string& name, const json& decl, const ContextValues& context,
                           const LoadOptions& options, Manifest& m, ContextBindings& values,
                           Diagnostics& d) {
  std::string path = pointer_join("/context", name);
  if (!valid_context_name(name)) {
    d.error(path,
            "expected a variable name of letters, digits and _ (not starting with a "
            "digit)");
    return;
  }
  if (!decl.is_object()) {
    d.error(path, "expected an object with \"pattern\" and optionally \"default\", got " +
                      describe(decl));
    return;
  }
  bool ok = true;
  const std::vector<std::string>& accepted = accepted_keys().at("/context/*");
  for (const auto& [key, unused] : decl.items()) {
    (void)unused;
    if (std::find(accepted.begin(), accepted.end(), key) == accepted.end()) {
      d.error(pointer_join(path, key), unknown_key_message(key, accepted));
      ok = false;
    }
  }
  ContextVariable var;
  var.name = name;
  if (!decl.contains("pattern") || !decl["pattern"].is_string()) {
    d.error(path + "/pattern",
            "expected an anchored regular expression such as "
            "\"^[0-9]{1,12}$\", got " +
                (decl.contains("pattern") ? describe(decl["pattern"]) : std::string("nothing")));
    return;
  }
  var.pattern = decl["pattern"].get<std::string>();
  std::string why;
  std::optional<std::regex> re = compile_context_pattern(var.pattern, why);
  if (!re) {
    d.error(path + "/pattern", "expected " + why + ", got " + describe(decl["pattern"]));
    return;
  }
  if (decl.contains("default")) {
    if (!decl["default"].is_string()) {
      d.error(path + "/default", "expected a string, got " + describe(decl["default"]));
      ok = false;
    } else {
      var.default_value = decl["default"].get<std::string>();
      std::string problem = check_context_value(var, *re, *var.default_value);
      if (!problem.empty()) {
        d.error(path + "/default", "default rejected: " + problem);
        ok = false;
      }
    }
  }
  if (!ok) return;
  std::optional<std::string> value = var.default_value;
  if (auto given = context.find(name); given != context.end()) {
    std::string problem = check_context_value(var, *re, given->second);
    if (!problem.empty()) {
      d.error(path, "--context " + name + ": " + problem);
      return;
    }
    value = given->second;
  }
  if (value) {
    m.context_values[name] = *value;
  } else if (options.allow_unresolved) {
    m.unresolved.push_back(name);
  } else {
    d.error(path, "no value given (--context " + name + "=VALUE) and no default");
    return;
  }
  values[name] = value;
  m.context.push_back(var);
}

// Context declarations, read before the other sections (which are read after expansion).
void read_context(const json& doc, const ContextValues& context, const LoadOptions& options,
                  Manifest& m, ContextBindings& values, Diagnostics& d) {
  if (doc.contains("context")) {
    const json& ctx = doc["context"];
    if (!ctx.is_object()) {
      d.error("/context", "expected an object of variable declarations, got " + describe(ctx));
    } else {
      for (const auto& [name, decl] : ctx.items()) {
        read_context_variable(name, decl, context, options, m, values, d);
      }
    }
  }
  for (const auto& [name, value] : context) {
    (void)value;
    if (!doc.contains("context") || !doc["context"].is_object() || !doc["context"].contains(name)) {
      d.error("/context", "--context " + name + ": the manifest declares no such variable");
    }
  }
  // Variables that failed their checks still count as declared, so that their placeholders are
  // not reported a second time as undeclared.
  if (doc.contains("context") && doc["context"].is_object()) {
    for (const auto& [name, decl] : doc["context"].items()) {
      (void)decl;
      if (!values.count(name)) values[name] = std::string("x");
    }
  }
}

// Replaces the ${name} placeholders in `node` and below; `path` is its JSON pointer.
void expand_node(json& node, const std::string& path, const ContextBindings& values,
                 Diagnostics& d) {
  if (node.is_string()) {
    const std::string& s = node.get_ref<const std::string&>();
    if (!has_placeholder(s)) return;
    Expansion e = expand_placeholders(s, values);
    for (const std::string& problem : e.problems)
      d.error(path, problem);
    node = e.text;
  } else if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      expand_node(it.value(), pointer_join(path, it.key()), values, d);
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i)
      expand_node(node[i], pointer_join(path, i), values, d);
  }
}

// Expansion of ${name} placeholders, in the sections that may hold them.
void expand_context(json& doc, const ContextBindings& values, Diagnostics& d) {
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (kExpandedSections.count(it.key()))
      expand_node(it.value(), pointer_join("", it.key()), values, d);
  }
  if (doc.contains("tools") && doc["tools"].is_array()) {
    json& tools = doc["tools"];
    for (size_t i = 0; i < tools.size(); ++i) {
      if (tools[i].is_object() && tools[i].contains("path")) {
        expand_node(tools[i]["path"], pointer_join("/tools", i) + "/path", values, d);
      }
    }
  }
}

}  // namespace

LoadResult load_manifest(std::string_view text, const ContextValues& context,
                         const LoadOptions& options) {
  LoadResult result;
  Diagnostics& d = result.diagnostics;
  std::optional<json> parsed = parse_json_strict(text, d);
  if (!parsed) return result;
  json& doc = *parsed;
  if (!doc.is_object()) {
    d.error("", "expected a JSON object at the top level, got " + describe(doc));
    return result;
  }

  Manifest m;
  ContextBindings values;
  read_context(doc, context, options, m, values, d);
  expand_context(doc, values, d);

  ManifestReader reader(d, options.allow_unresolved && !m.unresolved.empty(), options);
  reader.read(doc, m);
  if (!d.ok()) return result;
  check_consistency(m, d);
  if (!d.ok()) return result;
  // The digest covers an imported profile's content: its own digest joins the document.
  if (m.syscalls.is_imported()) doc["syscalls"]["profile_digest"] = m.syscalls.imported_digest;

  m.document = doc;
  m.canonical = canonical_json(doc);
  m.digest = "sha256:" + sha256_hex(m.canonical);
  result.manifest = std::move(m);
  return result;
}

const char* to_string(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::none:
      return "none";
    case NetworkMode::filtered:
      return "filtered";
    case NetworkMode::host:
      return "host";
  }
  return "?";
}

const char* to_string(Protocol protocol) {
  return protocol == Protocol::udp ? "udp" : "tcp";
}
const char* to_string(SyscallAction action) {
  return action == SyscallAction::kill ? "kill" : "errno";
}
const char* to_string(OnViolation action) {
  return action == OnViolation::kill ? "kill" : "deny";
}
const char* to_string(BaselineAction action) {
  return action == BaselineAction::kill ? "kill" : "alert";
}

}  // namespace policy
