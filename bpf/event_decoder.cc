#include "bpf/event_decoder.h"

#include <arpa/inet.h>
#include <fcntl.h>

#include <cstring>

#include "bpf/enclosure_abi.h"

namespace bpf {
namespace {

std::string bounded_string(const char* p, size_t capacity) {
  return std::string(p, strnlen(p, capacity));
}

template <class T>
bool read_record(const void* data, size_t size, T& out, std::string& error) {
  if (size < sizeof(T)) {
    error = "record of type " + std::to_string(out.h.type) + " is " + std::to_string(size) +
            " bytes, expected " + std::to_string(sizeof(T));
    return false;
  }
  std::memcpy(&out, data, sizeof(T));
  return true;
}

}  // namespace

std::optional<DecodedRecord> decode_record(const void* data, size_t size, std::string& error) {
  if (!data || size < sizeof(enc_header)) {
    error = "record shorter than its header (" + std::to_string(size) + " bytes)";
    return std::nullopt;
  }
  enc_header h{};
  std::memcpy(&h, data, sizeof h);
  if (h.size > size) {
    error = "record header says " + std::to_string(h.size) + " bytes, only " +
            std::to_string(size) + " delivered";
    return std::nullopt;
  }
  DecodedRecord r;
  r.cgroup_id = h.cgroup_id;
  r.kseq = h.kseq;
  r.ktime_ns = h.ktime_ns;
  r.pid = h.pid;
  r.tid = h.tid;
  switch (h.type) {
    case ENC_EV_EXEC: {
      enc_exec_event e{};
      e.h.type = h.type;
      if (!read_record(data, size, e, error)) return std::nullopt;
      ExecRecord x;
      x.ppid = e.ppid;
      x.tool = e.tool >= 0 && e.tool < ENC_MAX_TOOLS ? e.tool : -1;
      x.initial = e.initial != 0;
      x.killed = e.killed != 0;
      x.refused = e.refused;
      x.rule = e.rule;
      x.script = e.script != 0;
      x.tool_count = e.tool_count;
      x.tool_calls = e.tool_calls;
      x.cost_micro = e.cost_micro;
      x.filename = bounded_string(e.filename, sizeof e.filename);
      x.argv0 = bounded_string(e.argv0, sizeof e.argv0);
      r.body = std::move(x);
      return r;
    }
    case ENC_EV_NET_DENY:
    case ENC_EV_CONNECT:
    case ENC_EV_EGRESS_DROP: {
      enc_net_event e{};
      e.h.type = h.type;
      if (!read_record(data, size, e, error)) return std::nullopt;
      NetRecord x;
      x.hook = e.hook;
      x.reason = e.reason;
      x.admitted = h.type == ENC_EV_CONNECT;
      x.dropped_packet = h.type == ENC_EV_EGRESS_DROP;
      x.family = e.family;
      x.type = e.type;
      x.protocol = e.protocol;
      x.rule_index = e.rule_index;
      x.rule = e.rule;
      x.port = e.port;
      if (e.hook != ENC_HOOK_SOCK_CREATE) {
        char buf[INET6_ADDRSTRLEN] = {};
        bool v6 = e.family == 10;
        if (inet_ntop(v6 ? AF_INET6 : AF_INET, e.addr, buf, sizeof buf)) x.address = buf;
      }
      r.body = std::move(x);
      return r;
    }
    case ENC_EV_BUDGET: {
      enc_budget_event e{};
      e.h.type = h.type;
      if (!read_record(data, size, e, error)) return std::nullopt;
      if (e.budget < ENC_BUDGET_TOOL_MAX_CALLS || e.budget > ENC_BUDGET_EGRESS_BYTES) {
        error = "budget record with unknown budget " + std::to_string(e.budget);
        return std::nullopt;
      }
      r.body = BudgetRecord{e.budget, e.tool >= 0 && e.tool < ENC_MAX_TOOLS ? e.tool : -1, e.limit,
                            e.value};
      return r;
    }
    case ENC_EV_OPEN: {
      enc_open_event e{};
      e.h.type = h.type;
      if (!read_record(data, size, e, error)) return std::nullopt;
      OpenRecord x;
      x.result = e.result;
      x.dirfd = e.dirfd;
      x.flags = e.flags;
      x.syscall = e.syscall;
      x.path_unreadable = e.path_unreadable != 0;
      x.path = bounded_string(e.path, sizeof e.path);
      r.body = std::move(x);
      return r;
    }
    case ENC_EV_RULE: {
      enc_rule_event e{};
      e.h.type = h.type;
      if (!read_record(data, size, e, error)) return std::nullopt;
      if (e.rule >= ENC_MAX_RULES || e.trigger < ENC_TRIGGER_READ ||
          e.trigger > ENC_TRIGGER_CONNECT) {
        error = "rule record with rule " + std::to_string(e.rule) + " and trigger " +
                std::to_string(e.trigger);
        return std::nullopt;
      }
      RuleRecord x;
      x.rule = e.rule;
      x.trigger = e.trigger;
      x.tool = e.tool >= 0 && e.tool < ENC_MAX_TOOLS ? e.tool : -1;
      x.egress_rule = e.egress_rule;
      x.port = e.port;
      if (e.trigger == ENC_TRIGGER_CONNECT) {
        char buf[INET6_ADDRSTRLEN] = {};
        if (inet_ntop(e.family == 10 ? AF_INET6 : AF_INET, e.addr, buf, sizeof buf))
          x.address = buf;
      }
      x.path = bounded_string(e.path, sizeof e.path);
      r.body = std::move(x);
      return r;
    }
    default:
      error = "record of unknown type " + std::to_string(h.type);
      return std::nullopt;
  }
}

const char* hook_name(uint32_t hook) {
  switch (hook) {
    case ENC_HOOK_CONNECT4:
      return "connect4";
    case ENC_HOOK_CONNECT6:
      return "connect6";
    case ENC_HOOK_SENDMSG4:
      return "sendmsg4";
    case ENC_HOOK_SENDMSG6:
      return "sendmsg6";
    case ENC_HOOK_SOCK_CREATE:
      return "sock_create";
    case ENC_HOOK_SKB_EGRESS:
      return "skb_egress";
    default:
      return "unknown";
  }
}

const char* budget_name(uint32_t budget) {
  switch (budget) {
    case ENC_BUDGET_TOOL_MAX_CALLS:
      return "max_calls";
    case ENC_BUDGET_TOOL_CALLS:
      return "tool_calls";
    case ENC_BUDGET_COST:
      return "cost_usd";
    case ENC_BUDGET_SYSCALLS:
      return "syscalls";
    case ENC_BUDGET_EGRESS_BYTES:
      return "egress_bytes";
    default:
      return "unknown";
  }
}

std::string open_flags_text(uint32_t flags) {
  std::string out;
  switch (flags & O_ACCMODE) {
    case O_RDONLY:
      out = "O_RDONLY";
      break;
    case O_WRONLY:
      out = "O_WRONLY";
      break;
    case O_RDWR:
      out = "O_RDWR";
      break;
    default:
      out = "O_ACCMODE";
  }
  const std::pair<uint32_t, const char*> names[] = {
      {O_CREAT, "O_CREAT"},       {O_EXCL, "O_EXCL"},
      {O_TRUNC, "O_TRUNC"},       {O_APPEND, "O_APPEND"},
      {O_NONBLOCK, "O_NONBLOCK"}, {O_DIRECTORY, "O_DIRECTORY"},
      {O_NOFOLLOW, "O_NOFOLLOW"}, {O_CLOEXEC, "O_CLOEXEC"},
      {O_PATH, "O_PATH"},         {O_TMPFILE & ~O_DIRECTORY, "O_TMPFILE"}};
  for (const auto& [bit, name] : names) {
    if ((flags & bit) == bit) out += std::string("|") + name;
  }
  return out;
}

std::string protocol_name(uint32_t protocol, uint32_t type) {
  switch (protocol) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 262:
      return "mptcp";
    case 1:
      return "icmp";
    case 58:
      return "icmpv6";
    case 0:
      return type == 2 ? "udp" : type == 3 ? "raw" : "tcp";
    default:
      return "protocol " + std::to_string(protocol) + (type == 3 ? " (raw)" : "");
  }
}

}  // namespace bpf
