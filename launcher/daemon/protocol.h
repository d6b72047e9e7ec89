// The requests `enclosure daemon` serves and its replies, as typed structs with to_json and
// from_json: a pure library (no system calls), so the decoder every local user can reach is
// unit-tested and fuzzed on its own (tests/unit/daemon_protocol_test.cc,
// tests/fuzz/fuzz_daemon_request.cc). How the JSON travels is launcher/daemon/framing.h.
//
// A request is a JSON object with "op" and the fields of its type; a reply is {"ok": true, ...}
// with the fields of the request's reply type, or {"ok": false, "error": TEXT}. from_json
// refuses what is malformed with `error` naming the field as a JSON pointer ("/ports/0: ...").
// Unknown fields are ignored. The eBPF and cgroup types are mirrored here as plain structs so
// the library needs neither libbpf nor the cgroup code (launcher/daemon/protocol_conversion.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/net.h"
#include "policy/plan.h"

namespace launcher {

constexpr const char* kDefaultDaemonSocket = "/run/enclosure/daemon.sock";
constexpr uint32_t kMaxDaemonFrame = 16u << 20;
// 3: the plan carries network.unix_sockets (a daemon of version 2 would not enforce them).
// 4: the counters' state is enc_state with the file-access totals (656 bytes; a version 3 peer's
// would read as zero), and needs.sys_enter means syscall accounting, served by sys_exit.
// 5: file_opens, the run's per-file open counts (audit.files), in pages.
constexpr int kDaemonProtocolVersion = 5;
// The file_opens entries of one reply at most: 4096 of 312 bytes travel as ~2.6 MB of hex, well
// within kMaxDaemonFrame, and a run's 32768 (ENC_FILE_OPENS_PER_RUN) take 8 replies.
constexpr uint64_t kFileOpensPerPage = 4096;
// The bytes of one entry: enc_open_key then enc_open_count (bpf/enclosure_abi.h; the daemon and
// the client static_assert it against the ABI header).
constexpr uint64_t kFileOpenEntryBytes = 32 + 280;

// ---- Parts of requests and replies ----

// Which eBPF programs a run needs (bpf::LayerNeeds without the ring size, which is the daemon's).
struct ProtocolNeeds {
  bool egress = false;
  bool egress_bytes = false;
  bool exec = false;
  bool sys_enter = false;
  bool sys_exit = false;
  bool behaviour = false;
  nlohmann::json to_json() const;
  static std::optional<ProtocolNeeds> from_json(const nlohmann::json& j, std::string& error);
};

// A file as the kernel names it (bpf::FileKey).
struct ProtocolFileKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
};

// The launcher's view of the run's files (bpf::EnclosureFiles).
struct ProtocolFiles {
  std::vector<size_t> script_tools;  // indices into the plan's tools
  std::vector<std::string> loaders;
  std::map<std::string, ProtocolFileKey> keys;
  // Per read trigger path: the keys of everything in its tree (optional; absent: none).
  std::map<std::string, std::vector<ProtocolFileKey>> trigger_trees;
  nlohmann::json to_json() const;
  static std::optional<ProtocolFiles> from_json(const nlohmann::json& j, std::string& error);
};

// pids and memory limits of a run's cgroup (CgroupLimits); nullopt: none.
struct ProtocolLimits {
  std::optional<uint64_t> pids_max;
  std::optional<uint64_t> memory_max;
  nlohmann::json to_json() const;
  static std::optional<ProtocolLimits> from_json(const nlohmann::json& j, std::string& error);
};

// The directories of a run's cgroups and where its limits went (CgroupDirectories).
struct ProtocolCgroup {
  std::string v2;                         // absolute
  std::map<std::string, std::string> v1;  // controller -> directory
  std::string placement_pids;
  std::string placement_memory;
  ProtocolLimits limits;
  nlohmann::json to_json() const;
  static std::optional<ProtocolCgroup> from_json(const nlohmann::json& j, std::string& error);
};

// ---- Requests ----

// Greets the daemon; the reply is HelloReply.
struct HelloRequest {
  static constexpr const char* kOp = "hello";
};

// Creates the caller's run: its cgroup, configured eBPF maps. The reply is RunReply.
struct CreateRequest {
  static constexpr const char* kOp = "create";
  policy::EnforcementPlan plan;  // the part policy/bpf_plan.h carries
  ProtocolNeeds needs;
  ProtocolFiles files;  // script tool indices are checked against plan.tools
  std::optional<std::pair<uint16_t, uint16_t>> dns_ports;  // the resolver's IPv4 and IPv6 ports
  ProtocolLimits limits;
  uint64_t grace_ns = 0;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<CreateRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Re-attaches a launcher to its run after a daemon restart (same uid). Reply: RunReply.
struct AdoptRequest {
  static constexpr const char* kOp = "adopt";
  std::string token;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<AdoptRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Makes this connection the run's events connection (records flow out). Reply: EmptyReply.
struct EventsRequest {
  static constexpr const char* kOp = "events";
  std::string token;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<EventsRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Moves the process whose pidfd comes with the request into the run's cgroups. EmptyReply.
struct EnterRequest {
  static constexpr const char* kOp = "enter";
};

// The run's kernel counters. Reply: CountersReply.
struct CountersRequest {
  static constexpr const char* kOp = "counters";
};

// audit.files: the run's open counts (one entry per key of the file_opens map) from entry
// `offset` on, at most kFileOpensPerPage. Offset 0 takes a snapshot of the run's entries that
// the following pages come from. Reply: FileOpensReply.
struct FileOpensRequest {
  static constexpr const char* kOp = "file_opens";
  uint64_t offset = 0;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<FileOpensRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Which composition rules fired. Reply: RulesFiredReply.
struct RulesFiredRequest {
  static constexpr const char* kOp = "rules_fired";
};

// The cost the agent reported through its meter, in micro-USD. EmptyReply.
struct CostRequest {
  static constexpr const char* kOp = "cost";
  uint64_t micro_usd = 0;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<CostRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Admits an address the resolver answered for `ports` of egress rule `rule`. EmptyReply.
struct AdmitRequest {
  static constexpr const char* kOp = "admit";
  policy::Cidr cidr;
  policy::Protocol protocol = policy::Protocol::tcp;
  std::vector<policy::PortRange> ports;
  size_t rule = 0;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<AdmitRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Revokes an admission whose TTL and grace are over. EmptyReply.
struct RevokeRequest {
  static constexpr const char* kOp = "revoke";
  policy::Cidr cidr;
  policy::Protocol protocol = policy::Protocol::tcp;
  nlohmann::json to_json() const;  // without "op"
  static std::optional<RevokeRequest> from_json(const nlohmann::json& j, std::string& error);
};

// Queues every record written so far on the events connection, then an empty frame. EmptyReply.
struct FlushRequest {
  static constexpr const char* kOp = "flush";
};

// cgroup.kill of the run. Reply: KillReply.
struct KillRequest {
  static constexpr const char* kOp = "kill";
};

// Kills what is left of the run and forgets it. EmptyReply.
struct ReleaseRequest {
  static constexpr const char* kOp = "release";
};

using DaemonRequest =
    std::variant<HelloRequest, CreateRequest, AdoptRequest, EventsRequest, EnterRequest,
                 CountersRequest, FileOpensRequest, RulesFiredRequest, CostRequest, AdmitRequest,
                 RevokeRequest, FlushRequest, KillRequest, ReleaseRequest>;

// The request as it travels, "op" included.
nlohmann::json to_json(const DaemonRequest& request);
// nullopt with `error` naming the field (or "/op: unknown op \"x\"") when `j` is not a request.
std::optional<DaemonRequest> request_from_json(const nlohmann::json& j, std::string& error);
// The "op" of a request.
const char* op_of(const DaemonRequest& request);

// ---- Replies ----

// What the daemon offers. A reply of another protocol version holds only `version`.
struct HelloReply {
  int version = kDaemonProtocolVersion;
  uint32_t uid = 0;                                    // the caller's, as the daemon sees it
  nlohmann::json programs = nlohmann::json::object();  // the daemon's eBPF programs
  std::string cgroup_pids;                             // where pids limits go ("" when nowhere)
  std::string cgroup_memory;                           // where memory limits go
  nlohmann::json to_json() const;
  static std::optional<HelloReply> from_json(const nlohmann::json& j, std::string& error);
};

// The eBPF layer's part of a run, for the start event.
struct ProtocolBpfReport {
  nlohmann::json programs;
  std::string daemon;  // the daemon's socket
  uint64_t ring_buffer_bytes = 0;
  nlohmann::json to_json() const;
  static std::optional<ProtocolBpfReport> from_json(const nlohmann::json& j, std::string& error);
};

// The answer to create and adopt.
struct RunReply {
  std::string token;  // what adopt and events name the run by
  uint64_t cgroup_id = 0;
  ProtocolCgroup cgroup;
  nlohmann::json cgroup_report = nlohmann::json::object();  // RunCgroup::report()
  ProtocolBpfReport bpf;
  // What the descriptors sent with the reply are, in order: "v2", then v1 controller names.
  // The launcher reads the run's cgroup files through them, never through the paths above,
  // which are the daemon's (a pod sees another mount and another cgroup namespace).
  std::vector<std::string> descriptors;
  nlohmann::json to_json() const;
  static std::optional<RunReply> from_json(const nlohmann::json& j, std::string& error);
};

struct CountersReply {
  std::string state;  // the bytes of enc_state (bpf/enclosure_abi.h); travels as hex
  uint64_t syscalls_pending = 0;
  std::vector<std::pair<int, uint64_t>> histogram;  // syscall number, count
  uint64_t forward_lost = 0;                        // records the daemon could not forward
  // Records not forwarded because the run's user was over the daemon's --event-rate.
  uint64_t forward_suppressed = 0;
  nlohmann::json to_json() const;
  static std::optional<CountersReply> from_json(const nlohmann::json& j, std::string& error);
};

// A page of the snapshot's entries: `entries` holds the bytes of whole entries of
// kFileOpenEntryBytes each (travels as hex), from entry `offset` of `total`.
struct FileOpensReply {
  uint64_t offset = 0;
  uint64_t total = 0;
  std::string entries;
  uint64_t count() const { return entries.size() / kFileOpenEntryBytes; }
  nlohmann::json to_json() const;
  // Refuses entries that are not whole, more than a page, or past `total`.
  static std::optional<FileOpensReply> from_json(const nlohmann::json& j, std::string& error);
};

struct RulesFiredReply {
  uint64_t bits = 0;
  nlohmann::json to_json() const;
  static std::optional<RulesFiredReply> from_json(const nlohmann::json& j, std::string& error);
};

struct KillReply {
  bool empty = false;  // the cgroup is empty
  nlohmann::json to_json() const;
  static std::optional<KillReply> from_json(const nlohmann::json& j, std::string& error);
};

// The reply of enter, events, cost, admit, revoke, flush and release.
struct EmptyReply {
  nlohmann::json to_json() const;
  static std::optional<EmptyReply> from_json(const nlohmann::json& j, std::string& error);
};

// {"ok": false, "error": ...}: the daemon refused the request.
struct RefusalReply {
  std::string error;
  nlohmann::json to_json() const;
  static std::optional<RefusalReply> from_json(const nlohmann::json& j, std::string& error);
};

// ---- The daemon's own record of a run ----

// One file per run in the daemon's state directory, for re-adoption after a restart.
struct RunState {
  std::string token;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t launcher = 0;  // pid
  uint64_t cgroup_id = 0;
  ProtocolCgroup cgroup;
  policy::EnforcementPlan plan;  // the part policy/bpf_plan.h carries
  ProtocolNeeds needs;
  nlohmann::json to_json() const;
  static std::optional<RunState> from_json(const nlohmann::json& j, std::string& error);
};

}  // namespace launcher
