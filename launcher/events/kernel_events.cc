#include "launcher/events/kernel_events.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "bpf/enclosure_abi.h"
#include "launcher/events/event.h"
#include "policy/path.h"
#include "policy/units.h"

namespace launcher {
namespace {

std::string tool_name(const policy::EnforcementPlan& plan, int32_t index) {
  for (const policy::ToolEntry& t : plan.tools) {
    if (static_cast<int32_t>(t.index) == index) return t.name;
  }
  return {};
}

std::string destination(const bpf::NetRecord& n) {
  if (n.address.empty()) return {};
  return n.family == 10 ? "[" + n.address + "]:" + std::to_string(n.port)
                        : n.address + ":" + std::to_string(n.port);
}

std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string rule_id(const policy::EnforcementPlan& plan, uint32_t index) {
  return index < plan.rules.size() ? plan.rules[index].id : "rule " + std::to_string(index);
}

const char* reason_text(uint32_t reason) {
  switch (reason) {
    case ENC_NET_NO_RULE:
      return "no egress rule admits this address";
    case ENC_NET_PORT:
      return "the egress rule for this address does not admit this port";
    case ENC_NET_SOCKET_TYPE:
      return "only tcp and udp sockets are allowed (no raw, ping or other protocols)";
    case ENC_NET_BUDGET:
      return "budgets.egress_bytes is exhausted";
    case ENC_NET_RULE:
      return "a composition rule that fired denies it";
    default:
      return "refused";
  }
}

}  // namespace

nlohmann::json budget_fields(const bpf::BudgetRecord& b, const policy::EnforcementPlan& plan) {
  nlohmann::json f = {
      {"name", bpf::budget_name(b.budget)}, {"action", "terminate"}, {"enforced_by", "bpf"}};
  switch (b.budget) {
    case ENC_BUDGET_COST:
      f["limit"] = policy::format_usd(b.limit);
      f["value"] = policy::format_usd(b.value);
      break;
    case ENC_BUDGET_EGRESS_BYTES:
      f["limit"] = policy::format_size(b.limit);
      f["value"] = std::to_string(b.value) + "B";
      break;
    default:
      f["limit"] = b.limit;
      f["value"] = b.value;
  }
  if (b.tool >= 0) {
    f["tool"] = tool_name(plan, b.tool);
    if (b.budget == ENC_BUDGET_TOOL_MAX_CALLS)
      f["origin"] = "/tools/" + std::to_string(b.tool) + "/max_calls";
  }
  if (!f.contains("origin")) f["origin"] = std::string("/budgets/") + bpf::budget_name(b.budget);
  return f;
}

namespace {

// exec, then the deny of a refused exec, or the tool_call it counts.
void add_exec_events(const bpf::ExecRecord& x, int64_t pid, uint64_t kseq,
                     const policy::EnforcementPlan& plan, std::vector<KernelEvent>& out) {
  nlohmann::json f = {{"ppid", x.ppid}, {"kseq", kseq}};
  set_bytes(f, "path", x.filename);
  set_bytes(f, "argv0", x.argv0);
  std::string tool = x.tool >= 0 ? tool_name(plan, x.tool) : "";
  if (!tool.empty()) f["tool"] = tool;
  if (x.script) f["script"] = true;
  if (x.killed) f["killed"] = x.refused ? "refused" : "over budget";
  if (x.initial) f["initial"] = true;
  out.push_back({"exec", pid, f});
  if (x.refused == ENC_EXEC_RULE) {
    nlohmann::json d = {
        {"section", "rules"},
        {"rule", rule_id(plan, x.rule)},
        {"origin", "/rules/" + std::to_string(x.rule)},
        {"tool", tool},
        {"reason", "composition rule " + rule_id(plan, x.rule) + " denies this tool"},
        {"action", "process killed before its first instruction"},
        {"kseq", kseq}};
    set_bytes(d, "path", x.filename);
    out.push_back({"deny", pid, d});
  }
  if (x.refused == ENC_EXEC_LOADER) {
    nlohmann::json d = {{"section", "tools"},
                        {"origin", "/tools"},
                        {"reason",
                         "the dynamic loader may only run as a tool's ELF interpreter, not as a "
                         "program (it would run any readable ELF)"},
                        {"action", "process killed"},
                        {"kseq", kseq}};
    set_bytes(d, "path", x.filename);
    out.push_back({"deny", pid, d});
  }
  if (!tool.empty() && !x.initial && !x.refused) {
    nlohmann::json t = {{"tool", tool},
                        {"calls", x.tool_count},
                        {"total_calls", x.tool_calls},
                        {"cost_usd", policy::format_usd(x.cost_micro)},
                        {"origin", "/tools/" + std::to_string(x.tool)}};
    for (const policy::ToolEntry& e : plan.tools) {
      if (static_cast<int32_t>(e.index) == x.tool && e.max_calls) t["max_calls"] = *e.max_calls;
    }
    if (x.killed) t["killed"] = "over budget";
    out.push_back({"tool_call", pid, t});
  }
}

// connect, or the deny of a refused connection (by a composition rule or the egress rules).
KernelEvent net_event(const bpf::NetRecord& n, int64_t pid, uint64_t kseq,
                      const policy::EnforcementPlan& plan) {
  nlohmann::json f = {{"hook", bpf::hook_name(n.hook)},
                      {"protocol", bpf::protocol_name(n.protocol, n.type)},
                      {"kseq", kseq}};
  if (!n.address.empty()) {
    f["address"] = n.address;
    f["port"] = n.port;
    f["destination"] = destination(n);
  }
  if (n.rule_index != ~0u) f["rule"] = "/network/egress/" + std::to_string(n.rule_index);
  if (n.admitted) return {"connect", pid, f};
  if (n.reason == ENC_NET_RULE) {
    f["section"] = "rules";
    f["rule"] = rule_id(plan, n.rule);
    f["origin"] = "/rules/" + std::to_string(n.rule);
    f["reason"] = reason_text(n.reason);
    f["action"] = n.dropped_packet ? "packet dropped" : "EPERM";
    return {"deny", pid, f};
  }
  f["section"] = "network";
  f["origin"] =
      n.rule_index != ~0u ? "/network/egress/" + std::to_string(n.rule_index) : "/network/egress";
  f["reason"] = reason_text(n.reason);
  f["action"] = n.dropped_packet ? "packet dropped" : "EPERM";
  return {"deny", pid, f};
}

// A composition rule that fired: what it denies from now on and what triggered it.
KernelEvent rule_event(const bpf::RuleRecord& ru, int64_t pid, uint64_t kseq,
                       const policy::EnforcementPlan& plan) {
  nlohmann::json f = {{"rule", rule_id(plan, ru.rule)},
                      {"origin", "/rules/" + std::to_string(ru.rule)},
                      {"kseq", kseq}};
  if (ru.rule < plan.rules.size()) {
    const policy::RuleDenial& d = plan.rules[ru.rule].deny;
    nlohmann::json denies = nlohmann::json::array();
    if (d.network) denies.push_back("network");
    if (d.write) denies.push_back("write");
    if (d.exec) denies.push_back("exec");
    for (const std::string& t : d.tools)
      denies.push_back("tool:" + t);
    for (const std::string& h : d.hosts)
      denies.push_back("host:" + h);
    f["denies"] = denies;
  }
  switch (ru.trigger) {
    case ENC_TRIGGER_READ:
      f["trigger"] = "read";
      set_bytes(f, "file", ru.path);
      break;
    case ENC_TRIGGER_EXEC:
      f["trigger"] = "exec";
      f["tool"] = tool_name(plan, ru.tool);
      break;
    default:
      f["trigger"] = "connect";
      f["destination"] = ru.address + ":" + std::to_string(ru.port);
      if (ru.egress_rule != ~0u)
        f["egress_rule"] = "/network/egress/" + std::to_string(ru.egress_rule);
  }
  return {"rule", pid, f};
}

KernelEvent open_event(const bpf::OpenRecord& o, int64_t pid, uint64_t kseq) {
  nlohmann::json f = {{"flags", bpf::open_flags_text(o.flags)}, {"kseq", kseq}};
  set_bytes(f, "path", o.path);
  if (o.path_unreadable) f["path_unreadable"] = true;
  if (o.dirfd != -100) f["dirfd"] = o.dirfd;  // AT_FDCWD is not shown
  f["result"] = o.result >= 0
                    ? nlohmann::json(o.result)
                    : nlohmann::json(std::string("-") + errno_name(static_cast<int>(-o.result)));
  f["ok"] = o.result >= 0;
  if (o.dev || o.ino) {
    f["dev"] = o.dev;
    f["ino"] = o.ino;
  }
  // The first open of its file and access mode: the later ones are counted (open_count).
  f["aggregated"] = o.counted;
  return {"open", pid, f};
}

// The access mode an open was keyed by (ENC_OPEN_MODE_MASK of its flags).
std::string access_mode(uint32_t mode) {
  if (mode & O_PATH) return "O_PATH";
  std::string flags = bpf::open_flags_text(mode & O_ACCMODE);
  return flags.substr(0, flags.find('|'));
}

// Why the mount view, Landlock or a noexec mount refused (by errno): the kernel does not say
// which of them did, so the text says what each errno means in an enclosure.
const char* refusal_reason(const bpf::RefusalRecord& r) {
  int err = static_cast<int>(-r.result);
  if (r.section == ENC_REFUSAL_EXEC) {
    return err == EACCES ? "not a tool (no execute right for this file, or a noexec mount)"
                         : "not permitted to execute this file";
  }
  switch (err) {
    case EROFS:
      return "not under a write grant (a read-only mount)";
    case EXDEV:
      return "across grants (each grant is a mount of its own, and Landlock refuses links and "
             "renames between grants)";
    case EACCES:
      return "no grant allows this access (Landlock), or the file's permissions do not";
    default:
      return "not permitted (the file's owner or mode)";
  }
}

bool is_file_grant(const policy::MountStep& s) {
  return s.kind == policy::MountKind::bind_read || s.kind == policy::MountKind::bind_write ||
         s.kind == policy::MountKind::tmpfs;
}

// The manifest entry of the grant that an absolute `path` lies in: the /filesystem/read/N,
// /filesystem/write/N or /filesystem/tmpfs/N of the longest grant path that is `path` or one of
// its ancestors, compared as text once ".", ".." and repeated slashes are resolved; "/filesystem"
// for a relative path, or one under no grant.
std::string grant_origin(const policy::EnforcementPlan& plan, const std::string& path) {
  if (path.empty() || path.front() != '/') return "/filesystem";
  std::string normal = std::filesystem::path(path).lexically_normal().string();
  if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  const policy::MountStep* best = nullptr;
  for (const policy::MountStep& s : plan.mounts.steps) {
    if (!is_file_grant(s) || !policy::path_is_under(normal, s.path)) continue;
    if (!best || s.path.size() > best->path.size()) best = &s;
  }
  return best ? best->origin : "/filesystem";
}

// The deny of a file or exec syscall of the agent refused by the mount view, Landlock or a
// noexec mount: its path(s) as the agent gave them and the grant(s) they lie in.
KernelEvent refusal_event(const bpf::RefusalRecord& r, int64_t pid, uint64_t kseq,
                          const policy::EnforcementPlan& plan) {
  bool exec = r.section == ENC_REFUSAL_EXEC;
  const char* syscall = bpf::refusal_syscall_name(r.syscall);
  nlohmann::json f = {{"section", exec ? "tools" : "filesystem"},
                      {"origin", exec ? std::string("/tools") : grant_origin(plan, r.path)},
                      {"syscall", syscall ? syscall : std::to_string(r.syscall)},
                      {"nr", r.syscall},
                      {"action", errno_name(static_cast<int>(-r.result))},
                      {"reason", refusal_reason(r)},
                      {"kseq", kseq}};
  set_bytes(f, "path", r.path);
  if (r.path_unreadable) f["path_unreadable"] = true;
  if (r.dirfd != -100) f["dirfd"] = r.dirfd;  // AT_FDCWD is not shown
  if (!r.path2.empty() || r.path2_unreadable) {
    set_bytes(f, "new_path", r.path2);
    f["new_origin"] = grant_origin(plan, r.path2);
    if (r.path2_unreadable) f["new_path_unreadable"] = true;
    if (r.dirfd2 != -100) f["new_dirfd"] = r.dirfd2;
  }
  if (r.flags) f["flags"] = bpf::open_flags_text(r.flags);
  return {"deny", pid, f};
}

const char* unix_reason_text(uint32_t reason) {
  switch (reason) {
    case ENC_UNIX_RELATIVE:
      return "a relative socket path (name it absolutely)";
    case ENC_UNIX_DOT:
      return "a \".\" or \"..\" segment in the socket path";
    case ENC_UNIX_NOT_OWN:
      return "a path under the agent's own directories that led to a socket it did not bind "
             "(a symlink or rename)";
    default:
      return "a unix socket not named in /network/unix, under a read grant, /proc or /dev";
  }
}

// The deny of a connect or sendmsg to a path unix socket that /network/unix does not allow.
KernelEvent unix_socket_event(const bpf::UnixRecord& u, int64_t pid, uint64_t kseq) {
  nlohmann::json f = {{"section", "network"},
                      {"origin", "/network/unix"},
                      {"hook", u.hook == ENC_UNIX_CONNECT ? "connect_unix" : "sendmsg_unix"},
                      {"socket", u.type == 2   ? "dgram"
                                 : u.type == 5 ? "seqpacket"
                                               : "stream"},
                      {"action", "EACCES"},
                      {"kseq", kseq}};
  set_bytes(f, "path", u.path);
  f["reason"] = unix_reason_text(u.reason);
  if (u.reason == ENC_UNIX_NOT_OWN) f["action"] = "killed";
  return {"deny", pid, f};
}

}  // namespace

std::vector<KernelEvent> open_count_events(const std::vector<bpf::FileOpenCount>& counts) {
  std::vector<KernelEvent> out;
  out.reserve(counts.size());
  for (const bpf::FileOpenCount& c : counts) {
    const enc_open_count& n = c.count;
    nlohmann::json f = {{"access", access_mode(c.key.mode)},
                        {"flags", bpf::open_flags_text(n.flags)},
                        {"ok", c.key.error == 0},
                        {"opens", n.opens},
                        {"repeats", n.opens > 0 ? n.opens - 1 : 0}};
    set_bytes(f, "path", std::string(n.path, strnlen(n.path, sizeof n.path)));
    if (n.path_unreadable) f["path_unreadable"] = true;
    if (c.key.error) {
      f["result"] = "-" + errno_name(c.key.error);
    } else {
      f["dev"] = c.key.dev;
      f["ino"] = c.key.ino;
    }
    out.push_back({"open_count", static_cast<int64_t>(n.pid), f});
  }
  return out;
}

nlohmann::json file_open_totals(const enc_state& state) {
  uint64_t opens = state.audited_opens;
  uint64_t first = state.open_files + state.opens_unkeyed;
  return {{"opens", opens},
          {"files", state.open_files},
          {"repeats", opens - std::min(opens, first)},
          {"unaggregated", state.opens_unkeyed}};
}

std::vector<KernelEvent> kernel_events(const bpf::DecodedRecord& r,
                                       const policy::EnforcementPlan& plan) {
  std::vector<KernelEvent> out;
  int64_t pid = r.pid;
  if (const auto* x = std::get_if<bpf::ExecRecord>(&r.body)) {
    add_exec_events(*x, pid, r.kseq, plan, out);
  } else if (const auto* n = std::get_if<bpf::NetRecord>(&r.body)) {
    out.push_back(net_event(*n, pid, r.kseq, plan));
  } else if (const auto* b = std::get_if<bpf::BudgetRecord>(&r.body)) {
    nlohmann::json f = budget_fields(*b, plan);
    f["kseq"] = r.kseq;
    out.push_back({"budget", pid, f});
  } else if (const auto* ru = std::get_if<bpf::RuleRecord>(&r.body)) {
    out.push_back(rule_event(*ru, pid, r.kseq, plan));
  } else if (const auto* o = std::get_if<bpf::OpenRecord>(&r.body)) {
    out.push_back(open_event(*o, pid, r.kseq));
  } else if (const auto* rf = std::get_if<bpf::RefusalRecord>(&r.body)) {
    out.push_back(refusal_event(*rf, pid, r.kseq, plan));
  } else if (const auto* u = std::get_if<bpf::UnixRecord>(&r.body)) {
    out.push_back(unix_socket_event(*u, pid, r.kseq));
  }
  return out;
}

}  // namespace launcher
