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

using RecordBody = decltype(DecodedRecord::body);

// A tool index from the kernel, or -1 when it names no tool.
int32_t valid_tool(int32_t tool) {
  return tool >= 0 && tool < ENC_MAX_TOOLS ? tool : -1;
}

// The printable form of a 16-byte address field of family 2 (AF_INET) or 10 (AF_INET6); empty
// when it cannot be printed.
std::string printable_address(uint32_t family, const unsigned char* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family == 10 ? AF_INET6 : AF_INET, addr, buf, sizeof buf)) return buf;
  return {};
}

std::optional<RecordBody> decode_exec(const void* data, size_t size, uint32_t type,
                                      std::string& error) {
  enc_exec_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  ExecRecord x;
  x.ppid = e.ppid;
  x.tool = valid_tool(e.tool);
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
  return x;
}

// A refused socket or connect, an admitted connect, or a dropped packet (by `type`).
std::optional<RecordBody> decode_net(const void* data, size_t size, uint32_t type,
                                     std::string& error) {
  enc_net_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  NetRecord x;
  x.hook = e.hook;
  x.reason = e.reason;
  x.admitted = type == ENC_EV_CONNECT;
  x.dropped_packet = type == ENC_EV_EGRESS_DROP;
  x.family = e.family;
  x.type = e.type;
  x.protocol = e.protocol;
  x.rule_index = e.rule_index;
  x.rule = e.rule;
  x.port = e.port;
  // A refused socket() has no address yet.
  if (e.hook != ENC_HOOK_SOCK_CREATE) x.address = printable_address(e.family, e.addr);
  return x;
}

std::optional<RecordBody> decode_budget(const void* data, size_t size, uint32_t type,
                                        std::string& error) {
  enc_budget_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  if (e.budget < ENC_BUDGET_TOOL_MAX_CALLS || e.budget > ENC_BUDGET_EGRESS_BYTES) {
    error = "budget record with unknown budget " + std::to_string(e.budget);
    return std::nullopt;
  }
  return BudgetRecord{e.budget, valid_tool(e.tool), e.limit, e.value};
}

std::optional<RecordBody> decode_open(const void* data, size_t size, uint32_t type,
                                      std::string& error) {
  enc_open_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  OpenRecord x;
  x.result = e.result;
  x.dirfd = e.dirfd;
  x.flags = e.flags;
  x.syscall = e.syscall;
  x.path_unreadable = e.path_unreadable != 0;
  x.path = bounded_string(e.path, sizeof e.path);
  x.dev = e.dev;
  x.ino = e.ino;
  x.counted = e.counted != 0;
  return x;
}

std::optional<RecordBody> decode_rule(const void* data, size_t size, uint32_t type,
                                      std::string& error) {
  enc_rule_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  if (e.rule >= ENC_MAX_RULES || e.trigger < ENC_TRIGGER_READ || e.trigger > ENC_TRIGGER_CONNECT) {
    error = "rule record with rule " + std::to_string(e.rule) + " and trigger " +
            std::to_string(e.trigger);
    return std::nullopt;
  }
  RuleRecord x;
  x.rule = e.rule;
  x.trigger = e.trigger;
  x.tool = valid_tool(e.tool);
  x.egress_rule = e.egress_rule;
  x.port = e.port;
  if (e.trigger == ENC_TRIGGER_CONNECT) x.address = printable_address(e.family, e.addr);
  x.path = bounded_string(e.path, sizeof e.path);
  return x;
}

std::optional<RecordBody> decode_refusal(const void* data, size_t size, uint32_t type,
                                         std::string& error) {
  enc_refusal_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  if (!refusal_syscall_name(e.syscall) ||
      (e.section != ENC_REFUSAL_FILES && e.section != ENC_REFUSAL_EXEC) || e.result >= 0) {
    error = "refusal record of syscall " + std::to_string(e.syscall) + ", section " +
            std::to_string(e.section) + ", result " + std::to_string(e.result);
    return std::nullopt;
  }
  RefusalRecord x;
  x.result = e.result;
  x.syscall = e.syscall;
  x.section = e.section;
  x.dirfd = e.dirfd;
  x.dirfd2 = e.dirfd2;
  x.flags = e.flags;
  x.path_unreadable = (e.unreadable & ENC_REFUSAL_PATH_UNREADABLE) != 0;
  x.path2_unreadable = (e.unreadable & ENC_REFUSAL_PATH2_UNREADABLE) != 0;
  x.path = bounded_string(e.path, sizeof e.path);
  x.path2 = bounded_string(e.path2, sizeof e.path2);
  return x;
}

std::optional<RecordBody> decode_unix(const void* data, size_t size, uint32_t type,
                                      std::string& error) {
  enc_unix_event e{};
  e.h.type = type;
  if (!read_record(data, size, e, error)) return std::nullopt;
  if (e.hook < ENC_UNIX_CONNECT || e.hook > ENC_UNIX_SENDMSG || e.reason < ENC_UNIX_NOT_NAMED ||
      e.reason > ENC_UNIX_NOT_OWN) {
    error = "unix socket record of hook " + std::to_string(e.hook) + ", reason " +
            std::to_string(e.reason);
    return std::nullopt;
  }
  UnixRecord x;
  x.hook = e.hook;
  x.reason = e.reason;
  x.type = e.type;
  x.path = bounded_string(e.path, sizeof e.path);
  return x;
}

// The typed body of a record of `type`, from the decoder of that type.
std::optional<RecordBody> decode_body(const void* data, size_t size, uint32_t type,
                                      std::string& error) {
  switch (type) {
    case ENC_EV_EXEC:
      return decode_exec(data, size, type, error);
    case ENC_EV_NET_DENY:
    case ENC_EV_CONNECT:
    case ENC_EV_EGRESS_DROP:
      return decode_net(data, size, type, error);
    case ENC_EV_BUDGET:
      return decode_budget(data, size, type, error);
    case ENC_EV_OPEN:
      return decode_open(data, size, type, error);
    case ENC_EV_RULE:
      return decode_rule(data, size, type, error);
    case ENC_EV_REFUSAL:
      return decode_refusal(data, size, type, error);
    case ENC_EV_UNIX_DENY:
      return decode_unix(data, size, type, error);
    default:
      error = "record of unknown type " + std::to_string(type);
      return std::nullopt;
  }
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
  std::optional<RecordBody> body = decode_body(data, size, h.type, error);
  if (!body) return std::nullopt;
  DecodedRecord r;
  r.cgroup_id = h.cgroup_id;
  r.kseq = h.kseq;
  r.ktime_ns = h.ktime_ns;
  r.pid = h.pid;
  r.tid = h.tid;
  r.body = std::move(*body);
  return r;
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

const char* refusal_syscall_name(uint32_t nr) {
  switch (nr) {
#define ENC_REFUSAL_NAME_CASE(name, number, ...) \
  case number:                                   \
    return #name;
    ENC_REFUSAL_SYSCALLS(ENC_REFUSAL_NAME_CASE)
#undef ENC_REFUSAL_NAME_CASE
    default:
      return nullptr;
  }
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
