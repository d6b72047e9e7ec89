// Decoding of the ring buffer's raw records into typed values. Validates every size and string
// bound: a record is kernel memory copied verbatim and must never be trusted blindly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace bpf {

struct ExecRecord {
  uint32_t ppid = 0;
  int32_t tool = -1;
  bool initial = false;
  bool killed = false;
  uint32_t refused = 0;  // enc_exec_refusal
  uint32_t rule = 0;     // for a refusal by a composition rule
  bool script = false;
  uint64_t tool_count = 0;
  uint64_t tool_calls = 0;
  uint64_t cost_micro = 0;
  std::string filename;  // as passed to execve (raw bytes)
  std::string argv0;
};

struct NetRecord {
  uint32_t hook = 0;            // enc_hook
  uint32_t reason = 0;          // enc_net_reason (0 for admitted connects)
  bool admitted = false;        // ENC_EV_CONNECT
  bool dropped_packet = false;  // ENC_EV_EGRESS_DROP
  uint32_t family = 0;
  uint32_t type = 0;
  uint32_t protocol = 0;
  uint32_t rule_index = ~0u;
  uint32_t rule = 0;  // for reason ENC_NET_RULE: the composition rule
  uint16_t port = 0;
  std::string address;  // printable ("127.0.0.1", "::1"), empty for socket refusals
};

struct RuleRecord {
  uint32_t rule = 0;     // index in the manifest's rules
  uint32_t trigger = 0;  // enc_trigger
  int32_t tool = -1;
  uint32_t egress_rule = ~0u;
  uint16_t port = 0;
  std::string address;
  std::string path;  // the name of the file whose opening fired the rule
};

struct BudgetRecord {
  uint32_t budget = 0;  // enc_budget
  int32_t tool = -1;
  uint64_t limit = 0;
  uint64_t value = 0;
};

struct OpenRecord {
  int64_t result = 0;
  int32_t dirfd = 0;
  uint32_t flags = 0;
  uint32_t syscall = 0;
  bool path_unreadable = false;
  std::string path;  // raw bytes as the process gave them
  uint64_t dev = 0;  // what was opened (0 for a failed open), as enc_open_key
  uint64_t ino = 0;
  bool counted = false;  // the first open of its key: the others are counted (FileOpenCount)
};

// A file or exec syscall of the agent refused by the mount view, Landlock or a noexec mount.
struct RefusalRecord {
  int64_t result = 0;    // -errno
  uint32_t syscall = 0;  // nr (refusal_syscall_name)
  uint32_t section = 0;  // enc_refusal_section
  int32_t dirfd = -100;  // AT_FDCWD: the path is not relative to a descriptor
  int32_t dirfd2 = -100;
  uint32_t flags = 0;  // an open's flags
  bool path_unreadable = false;
  bool path2_unreadable = false;
  std::string path;   // raw bytes as the process gave them
  std::string path2;  // rename, link: the new name
};

// A connect or sendmsg to a path unix socket refused (enc_unix_event).
struct UnixRecord {
  uint32_t hook = 0;    // enc_unix_hook
  uint32_t reason = 0;  // enc_unix_reason
  uint32_t type = 0;    // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  std::string path;     // as the agent gave it (raw bytes)
};

struct DecodedRecord {
  uint64_t cgroup_id = 0;
  uint64_t kseq = 0;
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::variant<ExecRecord, NetRecord, BudgetRecord, OpenRecord, RuleRecord, RefusalRecord,
               UnixRecord>
      body;
};

// nullopt with `error` set for a record that is too short, of an unknown type, or whose header
// disagrees with its size.
std::optional<DecodedRecord> decode_record(const void* data, size_t size, std::string& error);

// Names for the enums of enclosure_abi.h.
const char* hook_name(uint32_t hook);
const char* budget_name(uint32_t budget);
std::string open_flags_text(uint32_t flags);
// The name of a syscall of ENC_REFUSAL_SYSCALLS ("openat"), nullptr for another number.
const char* refusal_syscall_name(uint32_t nr);
std::string protocol_name(uint32_t protocol, uint32_t type);

}  // namespace bpf
