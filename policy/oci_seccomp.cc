#include "policy/oci_seccomp.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "policy/compile.h"
#include "policy/syscall_table.h"

namespace policy {

using nlohmann::json;

namespace {

constexpr unsigned kMaxArguments = 6;
constexpr size_t kMaxRulesPerEntry = 4096;
constexpr uint64_t kMaxErrno = 4095;

const char* op_name(SeccompOp op) {
  switch (op) {
    case SeccompOp::eq:
      return "SCMP_CMP_EQ";
    case SeccompOp::ne:
      return "SCMP_CMP_NE";
    case SeccompOp::gt:
      return "SCMP_CMP_GT";
    case SeccompOp::masked_eq:
      return "SCMP_CMP_MASKED_EQ";
  }
  return "?";
}

struct OciAction {
  std::string name;
  std::optional<uint64_t> errno_ret;
};

OciAction oci_action(SeccompVerdict verdict, SyscallAction action) {
  switch (verdict) {
    case SeccompVerdict::allow:
      return {"SCMP_ACT_ALLOW", std::nullopt};
    case SeccompVerdict::deny:
      if (action == SyscallAction::kill) return {"SCMP_ACT_KILL_PROCESS", std::nullopt};
      return {"SCMP_ACT_ERRNO", kErrnoEperm};
    case SeccompVerdict::enosys:
      return {"SCMP_ACT_ERRNO", kErrnoEnosys};
    case SeccompVerdict::gate:
      // Gated by composition rules, which OCI runtimes cannot evaluate: allowed, as before
      // any rule fires.
      return {"SCMP_ACT_ALLOW", std::nullopt};
  }
  return {"SCMP_ACT_KILL_PROCESS", std::nullopt};
}

json condition_json(const SeccompCondition& c) {
  bool masked = c.op == SeccompOp::masked_eq;
  return {{"index", c.arg},
          {"value", masked ? c.mask : c.value},
          {"valueTwo", masked ? c.value : 0},
          {"op", op_name(c.op)}};
}

// ---- import ----------------------------------------------------------------------------------

enum class ActionKind { allow, deny, kill, enosys };

SeccompVerdict verdict_of(ActionKind kind) {
  switch (kind) {
    case ActionKind::allow:
      return SeccompVerdict::allow;
    case ActionKind::deny:
    case ActionKind::kill:
      return SeccompVerdict::deny;
    case ActionKind::enosys:
      return SeccompVerdict::enosys;
  }
  return SeccompVerdict::deny;
}

const std::set<std::string>& x86_architectures() {
  static const std::set<std::string> kArchitectures{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                    "SCMP_ARCH_X32"};
  return kArchitectures;
}

// Names runtimes accept (libseccomp's architecture tokens), for "not for this machine" messages.
const std::set<std::string>& other_architectures() {
  static const std::set<std::string> kArchitectures{
      "SCMP_ARCH_ARM",         "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",
      "SCMP_ARCH_MIPS64N32",   "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
      "SCMP_ARCH_PPC",         "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",
      "SCMP_ARCH_S390X",       "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
      "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",    "SCMP_ARCH_SH",       "SCMP_ARCH_SHEB"};
  return kArchitectures;
}

const std::set<std::string>& known_flags() {
  static const std::set<std::string> kFlags{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
  return kFlags;
}

std::string list_of(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

// One argument comparison as alternatives (any may hold); nullopt: holds for every value.
using Alternatives = std::vector<std::optional<SeccompCondition>>;
// Condition sets of which any may hold, each a list of conditions that must all hold.
using ConditionSets = std::vector<std::vector<SeccompCondition>>;

Alternatives less_than(unsigned arg, uint64_t bound) {
  // x < bound exactly when, for some bit i set in bound, x has i clear and agrees with bound
  // above i: one masked comparison per set bit.
  Alternatives out;
  for (int i = 63; i >= 0; --i) {
    uint64_t bit = 1ULL << i;
    if (!(bound & bit)) continue;
    uint64_t mask = ~(bit - 1);                  // bits i..63
    uint64_t above = bound & ~((bit << 1) - 1);  // bound's bits above i (0 for i = 63)
    out.push_back(SeccompCondition{static_cast<unsigned>(arg), SeccompOp::masked_eq, mask, above});
  }
  return out;
}

class OciReader {
 public:
  OciReader(const std::string& label, const std::string& base, Diagnostics& d)
      : label_(label), base_(base), d_(d) {}

  OciImport read(const json& doc) {
    OciImport out;
    size_t errors_before = d_.errors().size();
    if (!doc.is_object()) {
      error("", "expected an OCI seccomp object (defaultAction, architectures, syscalls), got " +
                    describe(doc));
      return out;
    }
    static const std::vector<std::string> kKeys{"defaultAction", "defaultErrnoRet", "architectures",
                                                "archMap",       "flags",           "syscalls",
                                                "listenerPath",  "listenerMetadata"};
    for (const auto& [key, value] : doc.items()) {
      (void)value;
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
        error(pointer_join("", key), "unknown key; expected one of: " + list_of(kKeys));
      }
    }
    for (const char* key : {"listenerPath", "listenerMetadata"}) {
      if (doc.contains(key)) {
        error(pointer_join("", key),
              "a seccomp agent (SCMP_ACT_NOTIFY listener) is not supported: the enclosure's own "
              "supervisor receives the notifications");
      }
    }
    SeccompProfile p;
    p.name = label_;
    std::optional<ActionKind> default_kind;
    if (!doc.contains("defaultAction")) {
      error("/defaultAction", "required key is missing; expected an action such as SCMP_ACT_ERRNO");
    } else {
      std::optional<uint64_t> default_errno;
      if (doc.contains("defaultErrnoRet")) {
        default_errno = errno_value(doc["defaultErrnoRet"], "/defaultErrnoRet");
      }
      default_kind = action(doc["defaultAction"], "/defaultAction", default_errno,
                            doc.contains("defaultErrnoRet"), "/defaultErrnoRet");
      if (default_kind == ActionKind::enosys) {
        error("/defaultAction",
              "a default of ENOSYS is not supported: calls outside the profile are denied with "
              "EPERM (errno 1) and logged, or the process is killed");
        default_kind.reset();
      }
      if (default_kind == ActionKind::kill) note_kill("/defaultAction");
    }
    read_architectures(doc);
    if (doc.contains("flags")) {
      const json& flags = doc["flags"];
      if (!flags.is_array()) {
        error("/flags", "expected an array of SECCOMP_FILTER_FLAG_* names, got " + describe(flags));
      } else {
        for (size_t i = 0; i < flags.size(); ++i) {
          if (!flags[i].is_string() || !known_flags().count(flags[i].get<std::string>())) {
            error(pointer_join("/flags", i),
                  "expected one of " + list_of({known_flags().begin(), known_flags().end()}) +
                      ", got " + describe(flags[i]));
          }
        }
      }
    }
    if (default_kind) p.default_verdict = verdict_of(*default_kind);
    if (doc.contains("syscalls")) {
      const json& entries = doc["syscalls"];
      if (!entries.is_array()) {
        error("/syscalls",
              "expected an array of {names, action, args} entries, got " + describe(entries));
      } else {
        for (size_t i = 0; i < entries.size(); ++i)
          read_entry(entries[i], i, p);
      }
    }
    if (d_.errors().size() != errors_before || !default_kind) return out;
    for (const Kept& k : kept_)
      p.rules.push_back(k.rule);
    p.action = first_kill_.empty() ? SyscallAction::errno_eperm : SyscallAction::kill;
    for (const SeccompRule& r : p.rules) {
      if (r.verdict == SeccompVerdict::deny && !p.origins.count(r.syscall)) {
        p.origins[r.syscall] = r.origin;
      }
    }
    out.profile = std::move(p);
    out.first_kill = first_kill_.empty() ? "" : base_ + first_kill_;
    return out;
  }

 private:
  struct Kept {
    SeccompRule rule;
    size_t entry;
  };

  void error(const std::string& pointer, const std::string& message) {
    d_.error(base_ + pointer, "in " + label_ + ": " + message);
  }

  void note_kill(const std::string& pointer) {
    if (first_kill_.empty()) first_kill_ = pointer;
  }

  std::optional<uint64_t> unsigned_value(const json& v, const std::string& pointer,
                                         const std::string& expected) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0)
      return static_cast<uint64_t>(v.get<int64_t>());
    error(pointer, "expected " + expected + ", got " + describe(v));
    return std::nullopt;
  }

  std::optional<uint64_t> errno_value(const json& v, const std::string& pointer) {
    auto n = unsigned_value(v, pointer, "an errno number from 1 to 4095");
    if (n && (*n < 1 || *n > kMaxErrno)) {
      error(pointer, "expected an errno number from 1 to 4095, got " + describe(v));
      return std::nullopt;
    }
    return n;
  }

  // The kind of an action; `errno_ret` applies to SCMP_ACT_ERRNO (EPERM when absent).
  std::optional<ActionKind> action(const json& v, const std::string& pointer,
                                   std::optional<uint64_t> errno_ret, bool errno_given,
                                   const std::string& errno_pointer) {
    static const std::vector<std::string> kActions{
        "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",         "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",  "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",  "SCMP_ACT_TRACE",       "SCMP_ACT_NOTIFY"};
    if (!v.is_string() ||
        std::find(kActions.begin(), kActions.end(), v.get<std::string>()) == kActions.end()) {
      error(pointer, "expected one of " + list_of(kActions) + ", got " + describe(v));
      return std::nullopt;
    }
    const std::string a = v.get<std::string>();
    if (a == "SCMP_ACT_TRAP" || a == "SCMP_ACT_TRACE" || a == "SCMP_ACT_NOTIFY") {
      error(pointer, a + " is not supported: the enclosure allows a call, denies it (EPERM, "
                         "logged), answers ENOSYS, or kills the process");
      return std::nullopt;
    }
    if (a != "SCMP_ACT_ERRNO") {
      if (errno_given) {
        error(errno_pointer, "an errno applies to SCMP_ACT_ERRNO only; the action is " + a);
        return std::nullopt;
      }
      if (a == "SCMP_ACT_ALLOW" || a == "SCMP_ACT_LOG") return ActionKind::allow;
      return ActionKind::kill;
    }
    if (errno_given && !errno_ret) return std::nullopt;  // reported by errno_value
    uint64_t e = errno_ret.value_or(kErrnoEperm);
    if (e == kErrnoEperm) return ActionKind::deny;
    if (e == kErrnoEnosys) return ActionKind::enosys;
    error(errno_given ? errno_pointer : pointer,
          "errno " + std::to_string(e) +
              " is not supported: the enclosure answers a denied call with EPERM (1), or ENOSYS "
              "(38) where libc falls back to another call");
    return std::nullopt;
  }

  void check_architecture_names(const std::vector<std::pair<std::string, const json*>>& names,
                                const std::string& where) {
    bool native = false;
    for (const auto& [pointer, v] : names) {
      std::string name = v->is_string() ? v->get<std::string>() : "";
      if (name == kOciNativeArchitecture) native = true;
      if (x86_architectures().count(name)) continue;
      if (other_architectures().count(name)) {
        error(pointer, "\"" + name +
                           "\" is not an x86 architecture: the enclosure runs x86_64 programs only "
                           "(and kills x32 and i386 calls outright)");
      } else {
        error(pointer, "expected an architecture such as SCMP_ARCH_X86_64, got " + describe(*v));
      }
    }
    if (!native && !names.empty()) {
      error(where,
            "SCMP_ARCH_X86_64 is not listed: this profile is not for the machine the "
            "enclosure runs on");
    }
  }

  void read_architectures(const json& doc) {
    if (doc.contains("architectures") && doc.contains("archMap")) {
      error("/archMap", "give either architectures or archMap, not both");
      return;
    }
    std::vector<std::pair<std::string, const json*>> names;
    if (doc.contains("architectures")) {
      const json& a = doc["architectures"];
      if (!a.is_array()) {
        error("/architectures", "expected an array of SCMP_ARCH_* names, got " + describe(a));
        return;
      }
      for (size_t i = 0; i < a.size(); ++i)
        names.push_back({pointer_join("/architectures", i), &a[i]});
      check_architecture_names(names, "/architectures");
    } else if (doc.contains("archMap")) {
      const json& m = doc["archMap"];
      if (!m.is_array()) {
        error("/archMap",
              "expected an array of {architecture, subArchitectures}, got " + describe(m));
        return;
      }
      for (size_t i = 0; i < m.size(); ++i) {
        std::string at = pointer_join("/archMap", i);
        if (!m[i].is_object()) {
          error(at, "expected an object {architecture, subArchitectures}, got " + describe(m[i]));
          continue;
        }
        for (const auto& [key, value] : m[i].items()) {
          (void)value;
          if (key != "architecture" && key != "subArchitectures") {
            error(pointer_join(at, key),
                  "unknown key; expected one of: architecture, subArchitectures");
          }
        }
        if (!m[i].contains("architecture")) {
          error(at + "/architecture", "required key is missing; expected an SCMP_ARCH_* name");
        } else {
          names.push_back({at + "/architecture", &m[i]["architecture"]});
        }
        if (m[i].contains("subArchitectures")) {
          const json& sub = m[i]["subArchitectures"];
          if (!sub.is_array()) {
            error(at + "/subArchitectures",
                  "expected an array of SCMP_ARCH_* names, got " + describe(sub));
            continue;
          }
          for (size_t k = 0; k < sub.size(); ++k) {
            names.push_back({pointer_join(at + "/subArchitectures", k), &sub[k]});
          }
        }
      }
      check_architecture_names(names, "/archMap");
    }
  }

  // One comparison as alternatives, or nullopt on error.
  std::optional<Alternatives> comparison(const json& a, const std::string& at) {
    if (!a.is_object()) {
      error(at, "expected an object {index, value, valueTwo, op}, got " + describe(a));
      return std::nullopt;
    }
    bool ok = true;
    for (const auto& [key, value] : a.items()) {
      (void)value;
      if (key != "index" && key != "value" && key != "valueTwo" && key != "op") {
        error(pointer_join(at, key), "unknown key; expected one of: index, value, valueTwo, op");
        ok = false;
      }
    }
    std::optional<uint64_t> index, value, value_two = 0;
    std::string op;
    for (const char* key : {"index", "value", "op"}) {
      if (!a.contains(key)) {
        error(pointer_join(at, key), "required key is missing");
        ok = false;
      }
    }
    if (a.contains("index")) {
      index = unsigned_value(a["index"], at + "/index", "an argument index from 0 to 5");
      if (index && *index >= kMaxArguments) {
        error(at + "/index", "expected an argument index from 0 to 5, got " + describe(a["index"]));
        index.reset();
      }
    }
    if (a.contains("value"))
      value = unsigned_value(a["value"], at + "/value", "an unsigned 64-bit integer");
    if (a.contains("valueTwo")) {
      value_two = unsigned_value(a["valueTwo"], at + "/valueTwo", "an unsigned 64-bit integer");
    }
    static const std::vector<std::string> kOps{"SCMP_CMP_NE",       "SCMP_CMP_LT", "SCMP_CMP_LE",
                                               "SCMP_CMP_EQ",       "SCMP_CMP_GE", "SCMP_CMP_GT",
                                               "SCMP_CMP_MASKED_EQ"};
    if (a.contains("op")) {
      if (a["op"].is_string() &&
          std::find(kOps.begin(), kOps.end(), a["op"].get<std::string>()) != kOps.end()) {
        op = a["op"].get<std::string>();
      } else {
        error(at + "/op", "expected one of " + list_of(kOps) + ", got " + describe(a["op"]));
        ok = false;
      }
    }
    if (!ok || !index || !value || !value_two) return std::nullopt;
    if (op != "SCMP_CMP_MASKED_EQ" && *value_two != 0) {
      error(at + "/valueTwo", "only SCMP_CMP_MASKED_EQ uses valueTwo (its value); " + op +
                                  " compares with value alone");
      return std::nullopt;
    }
    unsigned arg = static_cast<unsigned>(*index);
    uint64_t v = *value;
    constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
    if (op == "SCMP_CMP_EQ") return Alternatives{SeccompCondition{arg, SeccompOp::eq, 0, v}};
    if (op == "SCMP_CMP_NE") return Alternatives{SeccompCondition{arg, SeccompOp::ne, 0, v}};
    if (op == "SCMP_CMP_GT") return Alternatives{SeccompCondition{arg, SeccompOp::gt, 0, v}};
    if (op == "SCMP_CMP_MASKED_EQ") {
      return Alternatives{SeccompCondition{arg, SeccompOp::masked_eq, v, *value_two}};
    }
    if (op == "SCMP_CMP_GE") {
      if (v == 0) return Alternatives{std::nullopt};
      return Alternatives{SeccompCondition{arg, SeccompOp::gt, 0, v - 1}};
    }
    if (op == "SCMP_CMP_LT") return less_than(arg, v);
    // SCMP_CMP_LE
    if (v == kMax) return Alternatives{std::nullopt};
    return less_than(arg, v + 1);
  }

  // The entry's keys: known ones only, no Docker conditions; false after reporting any.
  bool check_entry_keys(const json& e, const std::string& at) {
    bool ok = true;
    static const std::vector<std::string> kKeys{"names",   "action",   "errnoRet", "args",
                                                "comment", "includes", "excludes"};
    for (const auto& [key, value] : e.items()) {
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
        error(pointer_join(at, key),
              key == "name" ? "\"name\" (one name) is Docker's older form; write \"names\": [...]"
                            : "unknown key; expected one of: " + list_of(kKeys));
        ok = false;
      } else if ((key == "includes" || key == "excludes") &&
                 !(value.is_object() && value.empty())) {
        error(pointer_join(at, key),
              "Docker's conditional entries (by capability, architecture or kernel) are not part "
              "of the OCI format; give the profile as the runtime receives it (config.json "
              "linux.seccomp)");
        ok = false;
      } else if (key == "comment" && !value.is_string()) {
        error(pointer_join(at, key), "expected a string, got " + describe(value));
        ok = false;
      }
    }
    return ok;
  }

  // The entry's system call names into `names`; false after reporting a missing, unknown or
  // repeated one.
  bool read_entry_names(const json& e, const std::string& at, std::vector<std::string>& names) {
    bool ok = true;
    if (!e.contains("names")) {
      error(at + "/names", "required key is missing; expected an array of system call names");
      ok = false;
    } else if (!e["names"].is_array() || e["names"].empty()) {
      error(at + "/names",
            "expected a non-empty array of system call names, got " + describe(e["names"]));
      ok = false;
    } else {
      const json& n = e["names"];
      std::map<std::string, size_t> seen;
      for (size_t k = 0; k < n.size(); ++k) {
        std::string item = pointer_join(at + "/names", k);
        if (!n[k].is_string() || !known_syscall(n[k].get<std::string>())) {
          error(item,
                "expected a system call name of x86_64 (as in syscalls(2)) that libseccomp "
                "knows, got " +
                    describe(n[k]));
          ok = false;
          continue;
        }
        std::string name = n[k].get<std::string>();
        if (auto [it, inserted] = seen.emplace(name, k); !inserted) {
          error(item, "listed twice (also at " + pointer_join(at + "/names", it->second) + ")");
          ok = false;
          continue;
        }
        names.push_back(name);
      }
    }
    return ok;
  }

  // The entry's action (with its errnoRet); nullopt after reporting the error.
  std::optional<ActionKind> read_entry_action(const json& e, const std::string& at) {
    if (!e.contains("action")) {
      error(at + "/action", "required key is missing; expected an action such as SCMP_ACT_ALLOW");
      return std::nullopt;
    }
    std::optional<uint64_t> errno_ret;
    if (e.contains("errnoRet")) errno_ret = errno_value(e["errnoRet"], at + "/errnoRet");
    return action(e["action"], at + "/action", errno_ret, e.contains("errnoRet"), at + "/errnoRet");
  }

  // Each comparison of `args` as alternatives, with its argument index, into `comparisons`;
  // false after reporting any that is invalid.
  bool read_comparisons(const json& args, const std::string& at,
                        std::vector<std::pair<unsigned, Alternatives>>& comparisons) {
    bool ok = true;
    for (size_t k = 0; k < args.size(); ++k) {
      auto alternatives = comparison(args[k], pointer_join(at + "/args", k));
      if (!alternatives) {
        ok = false;
        continue;
      }
      unsigned index = static_cast<unsigned>(args[k]["index"].get<uint64_t>());
      comparisons.push_back({index, std::move(*alternatives)});
    }
    return ok;
  }

  // The comparisons as condition sets (alternatives); nullopt after reporting that they expand
  // to too many filter rules.
  std::optional<ConditionSets> condition_sets(
      const std::vector<std::pair<unsigned, Alternatives>>& comparisons, const std::string& at) {
    ConditionSets sets;
    std::map<unsigned, size_t> per_index;
    for (const auto& [index, alternatives] : comparisons) {
      (void)alternatives;
      ++per_index[index];
    }
    bool repeated = std::any_of(per_index.begin(), per_index.end(),
                                [](const auto& kv) { return kv.second > 1; });
    if (repeated) {
      // runc: when an index repeats, every comparison becomes a rule of its own (OR).
      for (const auto& [index, alternatives] : comparisons) {
        (void)index;
        for (const auto& alt : alternatives) {
          sets.push_back(alt ? std::vector<SeccompCondition>{*alt}
                             : std::vector<SeccompCondition>{});
        }
      }
    } else {
      sets.push_back({});
      for (const auto& [index, alternatives] : comparisons) {
        (void)index;
        ConditionSets next;
        for (const auto& base : sets) {
          for (const auto& alt : alternatives) {
            std::vector<SeccompCondition> s = base;
            if (alt) s.push_back(*alt);
            next.push_back(std::move(s));
          }
        }
        if (next.size() > kMaxRulesPerEntry) {
          error(at + "/args", "these comparisons expand to more than " +
                                  std::to_string(kMaxRulesPerEntry) + " filter rules");
          return std::nullopt;
        }
        sets = std::move(next);
      }
    }
    return sets;
  }

  void read_entry(const json& e, size_t i, const SeccompProfile& p) {
    const std::string at = pointer_join("/syscalls", i);
    if (!e.is_object()) {
      error(at, "expected an object {names, action, args}, got " + describe(e));
      return;
    }
    bool ok = check_entry_keys(e, at);
    std::vector<std::string> names;
    if (!read_entry_names(e, at, names)) ok = false;
    std::optional<ActionKind> kind = read_entry_action(e, at);
    if (!kind) ok = false;
    // Arguments: a list of condition sets (alternatives).
    ConditionSets sets;
    if (e.contains("args") && !e["args"].is_null()) {
      const json& args = e["args"];
      if (!args.is_array()) {
        error(at + "/args",
              "expected an array of {index, value, valueTwo, op}, got " + describe(args));
        return;
      }
      std::vector<std::pair<unsigned, Alternatives>> comparisons;
      if (!read_comparisons(args, at, comparisons)) ok = false;
      if (!ok) return;
      std::optional<ConditionSets> expanded = condition_sets(comparisons, at);
      if (!expanded) return;
      sets = std::move(*expanded);
    } else {
      sets.push_back({});
    }
    if (!ok || !kind) return;
    if (*kind == ActionKind::kill) note_kill(at + "/action");
    SeccompVerdict verdict = verdict_of(*kind);
    if (verdict == p.default_verdict) return;  // repeats the default: no effect (runc skips it)
    std::string origin = "/syscalls/profile (" + label_ + ": " + at + ")";
    for (const std::string& name : names) {
      for (auto conditions : sets) {
        std::sort(conditions.begin(), conditions.end());
        conditions.erase(std::unique(conditions.begin(), conditions.end()), conditions.end());
        add(SeccompRule{name, verdict, std::move(conditions), origin}, i);
      }
    }
  }

  // Adds a rule unless an equal one exists; refuses combinations libseccomp would resolve
  // silently (an unconditional rule overrides every other rule of its call) or refuse.
  void add(SeccompRule rule, size_t entry) {
    const std::string at = pointer_join("/syscalls", entry);
    for (auto it = kept_.begin(); it != kept_.end();) {
      const SeccompRule& other = it->rule;
      if (other.syscall != rule.syscall) {
        ++it;
        continue;
      }
      bool same_verdict = other.verdict == rule.verdict;
      bool either_unconditional = other.conditions.empty() || rule.conditions.empty();
      if (!same_verdict && (either_unconditional || other.conditions == rule.conditions)) {
        error(at, "\"" + rule.syscall + "\" also has an entry at " +
                      pointer_join("/syscalls", it->entry) + " with another action" +
                      (either_unconditional
                           ? "; an unconditional rule would silently override the other"
                           : " and the same comparisons") +
                      "; state one action for these arguments");
        return;
      }
      if (same_verdict && (other.conditions.empty() || other.conditions == rule.conditions)) {
        return;  // already covered
      }
      if (same_verdict && rule.conditions.empty()) {
        it = kept_.erase(it);  // the new unconditional rule covers this one
        continue;
      }
      ++it;
    }
    kept_.push_back({std::move(rule), entry});
  }

  std::string label_, base_;
  Diagnostics& d_;
  std::vector<Kept> kept_;
  std::string first_kill_;
};

}  // namespace

std::optional<json> export_oci_seccomp(const SeccompProfile& profile, std::string& error) {
  json out = json::object();
  OciAction def = oci_action(profile.default_verdict, profile.action);
  out["defaultAction"] = def.name;
  if (def.errno_ret) out["defaultErrnoRet"] = *def.errno_ret;
  out["architectures"] = json::array({kOciNativeArchitecture});
  // (number of comparisons, action, errno, comparisons) -> names
  using Key = std::tuple<size_t, std::string, uint64_t, std::string>;
  std::map<Key, std::pair<json, std::set<std::string>>> entries;
  for (const SeccompRule& rule : profile.rules) {
    if (rule.verdict == profile.default_verdict) continue;
    std::vector<SeccompCondition> conditions = rule.conditions;
    std::sort(conditions.begin(), conditions.end());
    conditions.erase(std::unique(conditions.begin(), conditions.end()), conditions.end());
    json args = json::array();
    std::set<unsigned> indices;
    for (const SeccompCondition& c : conditions) {
      if (!indices.insert(c.arg).second) {
        error = "the rule for " + rule.syscall + " (" + rule.origin + ") compares argument " +
                std::to_string(c.arg) +
                " twice, which OCI runtimes read as either comparison rather than both";
        return std::nullopt;
      }
      args.push_back(condition_json(c));
    }
    OciAction a = oci_action(rule.verdict, profile.action);
    Key key{args.size(), a.name, a.errno_ret.value_or(0), args.dump()};
    auto& entry = entries[key];
    if (entry.first.is_null()) {
      entry.first = {{"action", a.name}};
      if (a.errno_ret) entry.first["errnoRet"] = *a.errno_ret;
      if (!args.empty()) entry.first["args"] = args;
    }
    entry.second.insert(rule.syscall);
  }
  json syscalls = json::array();
  for (auto& [key, entry] : entries) {
    (void)key;
    json e = entry.first;
    e["names"] = json(std::vector<std::string>(entry.second.begin(), entry.second.end()));
    syscalls.push_back(std::move(e));
  }
  out["syscalls"] = std::move(syscalls);
  return out;
}

OciImport import_oci_seccomp(const json& document, const std::string& label,
                             const std::string& base, Diagnostics& diagnostics) {
  return OciReader(label, base, diagnostics).read(document);
}

const std::vector<std::string>& launcher_start_syscalls() {
  static const std::vector<std::string> kNames{"brk",     "mmap",  "munmap",
                                               "sendmsg", "close", "execve"};
  return kNames;
}

std::vector<ImportAdjustment> imported_profile_adjustments(const Syscalls& s) {
  std::vector<ImportAdjustment> out;
  if (!s.imported) return out;
  const SeccompProfile& in = *s.imported;
  const SeccompProfile compiled = compile_seccomp(s);
  auto decided_by_manifest = [&](const std::string& name) {
    return std::find(s.allow.begin(), s.allow.end(), name) != s.allow.end() ||
           std::find(s.deny.begin(), s.deny.end(), name) != s.deny.end();
  };
  // A call is adjusted when the enclosure's rules for it differ from the file's.
  auto rules_of = [](const SeccompProfile& p, const std::string& name) {
    std::set<std::pair<int, std::vector<SeccompCondition>>> out;
    for (const SeccompRule& r : p.rules) {
      if (r.syscall == name) out.insert({static_cast<int>(r.verdict), r.conditions});
    }
    return out;
  };
  auto adjusted = [&](const std::string& name) {
    return !decided_by_manifest(name) && rules_of(in, name) != rules_of(compiled, name);
  };
  for (const FilteredSyscall& f : filtered_syscalls()) {
    if (adjusted(f.syscall)) {
      out.push_back({f.syscall, std::string("argument filter: ") + f.description});
    }
  }
  if (adjusted("clone3")) {
    out.push_back(
        {"clone3",
         "answered ENOSYS: libc falls back to clone, whose namespace flags are filtered"});
  }
  return out;
}

}  // namespace policy
