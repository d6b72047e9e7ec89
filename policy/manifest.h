// The typed, validated, immutable form of a manifest (policy/MANIFEST.md, version 1).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/net.h"

namespace policy {

inline constexpr const char* kApiVersion = "enclosure/v1";

struct Metadata {
  std::string name;
  std::optional<int64_t> revision;
  std::string approved_by;
  std::string reason;
  std::map<std::string, std::string> labels;
};

struct ContextVariable {
  std::string name;
  std::string pattern;
  std::optional<std::string> default_value;
};

struct UserIds {
  uint32_t uid = 0;
  uint32_t gid = 0;
  auto operator<=>(const UserIds&) const = default;
};

struct Process {
  std::string cwd = "/";  // default: the root of the enclosure's view
  std::vector<std::string> env_pass;
  std::map<std::string, std::string> env_set;
  std::optional<UserIds> user;  // default: the caller's
};

struct Filesystem {
  std::vector<std::string> read;
  std::vector<std::string> write;
  std::vector<std::string> tmpfs;
  std::vector<std::string> hide;
};

struct Tool {
  std::string name;
  std::string path;
  std::optional<uint64_t> max_calls;
  uint64_t cost_micro_usd = 0;  // price per call in millionths of a dollar
  // `"tree": true`: `path` is a directory and every regular file beneath it is this tool (each
  // exec is one call); that directory alone is executable inside write grants.
  bool tree = false;
};

enum class NetworkMode { none, filtered, host };
enum class Protocol { tcp, udp };

struct EgressRule {
  std::string host;              // exactly one of host and cidr is set
  std::optional<Cidr> cidr;      // parsed block; unset while the text holds a context placeholder
  std::string cidr_text;         // as written (after expansion)
  std::vector<PortRange> ports;  // merged
  Protocol protocol = Protocol::tcp;
  bool private_ok = false;  // host rules: `"private": true` admits loopback/private answers
  bool is_host() const { return !host.empty(); }
};

struct Network {
  NetworkMode mode = NetworkMode::none;  // deny by default: no network unless asked
  std::vector<EgressRule> egress;
  bool dns = false;
  // Path unix sockets the agent may connect to, in every mode (/network/unix). Any other path
  // socket is refused, except those under its write grants and tmpfs (its own).
  std::vector<std::string> unix_sockets;
};

enum class SyscallAction { errno_eperm, kill };

struct SeccompProfile;  // policy/plan.h

struct Syscalls {
  // "default", "strict", or the absolute path of an OCI runtime-spec seccomp profile (JSON).
  std::string profile = "default";
  std::vector<std::string> deny;
  std::vector<std::string> allow;
  SyscallAction action = SyscallAction::errno_eperm;
  // Set when `profile` names an OCI file: its rules as the file states them (policy/oci_seccomp.h),
  // before the argument filters, clone3 and the deny/allow lists, which compile_seccomp applies
  // on top. `imported_digest` is "sha256:" + SHA-256 of the file's canonical JSON; the expanded
  // document carries it as /syscalls/profile_digest, so the manifest digest covers the content.
  std::shared_ptr<const SeccompProfile> imported;
  std::string imported_digest;
  bool is_imported() const { return imported != nullptr; }
};

struct Budgets {
  std::optional<uint64_t> wall_clock_ns;
  std::optional<uint64_t> cpu_time_ns;
  std::optional<uint64_t> tool_calls;
  std::optional<uint64_t> syscalls;
  std::optional<uint64_t> processes;
  std::optional<uint64_t> memory_bytes;
  std::optional<uint64_t> egress_bytes;
  std::optional<uint64_t> cost_micro_usd;
};

// One thing a composition rule's trigger names under "connect": an egress rule by index or by host.
struct ConnectTrigger {
  std::optional<size_t> egress_index;
  std::string host;
  auto operator<=>(const ConnectTrigger&) const = default;
};

struct RuleTrigger {
  std::vector<std::string> read;  // paths
  std::vector<std::string> exec;  // tool names
  std::vector<ConnectTrigger> connect;
};

struct RuleDenial {
  bool network = false;
  bool write = false;
  bool exec = false;
  std::vector<std::string> tools;  // tool names
  std::vector<std::string> hosts;  // egress host rules
};

struct Rule {
  std::string id;
  RuleTrigger after;
  RuleDenial deny;
};

struct Audit {
  bool files = false;
  bool syscalls = false;
};

enum class BaselineAction { alert, kill };

struct Baseline {
  std::string profile;  // absolute path of a profile written by `enclosure learn`
  double tolerance = 3.0;
  BaselineAction action = BaselineAction::alert;
};

enum class OnViolation { deny, kill };

// Layers that `enforcement.allow_degraded` may name.
inline const std::set<std::string>& degradable_layers() {
  static const std::set<std::string> kLayers{"landlock", "bpf",     "cgroup",
                                             "userns",   "network", "seccomp"};
  return kLayers;
}

struct Enforcement {
  std::set<std::string> allow_degraded;
  bool allows(const std::string& layer) const { return allow_degraded.count(layer) != 0; }
};

struct Manifest {
  std::string api_version = kApiVersion;
  Metadata metadata;
  std::vector<ContextVariable> context;
  Process process;
  Filesystem filesystem;
  std::vector<Tool> tools;
  Network network;
  Syscalls syscalls;
  Budgets budgets;
  std::vector<Rule> rules;
  Audit audit;
  std::optional<Baseline> baseline;
  OnViolation on_violation = OnViolation::deny;
  Enforcement enforcement;

  // The values the context variables took (given or default). Unset ones are absent.
  std::map<std::string, std::string> context_values;
  // Context variables that had neither a value nor a default; their ${name} placeholders remain
  // in the fields above. Such a manifest is a template: it can be checked, explained and diffed,
  // but not compiled into a plan.
  std::vector<std::string> unresolved;
  // The expanded document, its canonical serialisation and that serialisation's SHA-256 (hex).
  nlohmann::json document;
  std::string canonical;
  std::string digest;

  bool is_template() const { return !unresolved.empty(); }
  const Tool* find_tool(const std::string& name) const {
    for (const Tool& t : tools) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
};

const char* to_string(NetworkMode mode);
const char* to_string(Protocol protocol);
const char* to_string(SyscallAction action);
const char* to_string(OnViolation action);
const char* to_string(BaselineAction action);

}  // namespace policy
