// Loader of the enclosure's eBPF layer (bpf/enclosure.bpf.c, embedded as a skeleton): loads the
// programs a set of enclosures needs, configures each enclosure through maps keyed by its cgroup
// id, attaches the cgroup programs to its cgroup (or, for `enclosure daemon`, to the subtree that
// holds all its enclosures) and the tracing programs to the host, and drains the ring buffer.
// Every BPF object is owned here and released on destruction; with a pin directory the maps and
// links are also pinned in bpffs, so they outlive this process and a successor reuses them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/enclosure_abi.h"
#include "bpf/kernel_layer.h"
#include "policy/plan.h"

struct enclosure_bpf;
struct bpf_link;
struct bpf_program;
struct ring_buffer;

namespace bpf {

class BpfError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Which programs to load and attach.
struct LayerNeeds {
  bool egress = false;  // network mode filtered: cgroup sock_addr, sock_create, skb egress
  // cgroup_skb/egress alone (any network mode), and the TCP socket iterator that cuts sockets:
  // for budgets.egress_bytes, or for a composition rule that denies network.
  bool egress_bytes = false;
  bool exec = false;          // sched_process_exec: tool calls, exec events
  bool unix_sockets = false;  // cgroup connect_unix, sendmsg_unix: path sockets where allowed
  // Syscall accounting: the syscall budget, the histogram, the file-access log. The name is the
  // daemon protocol's ("sys_enter"), kept so that launchers and daemons of either version agree;
  // since one program does everything, it is served by tp_btf/sys_exit: nothing is attached at
  // sys_enter.
  bool sys_enter = false;
  bool sys_exit = false;  // read triggers, unix sockets, refusals (every run)
  // The access log (audit.files) in sys_exit: the program that keeps it takes ~15x longer to
  // verify, so a launcher that does not need it loads the lean one (enc_sys_exit_lean).
  bool file_log = false;
  // Behaviour counters (successful opens, the syscall histogram) for a baseline, or for the
  // observation run of `enclosure learn`, which must measure exactly what a baseline checks.
  bool behaviour = false;
  size_t ring_bytes = 1 << 22;

  static LayerNeeds of(const policy::EnforcementPlan& plan);
  bool any() const { return egress || egress_bytes || exec || sys_enter || sys_exit; }
};

// A file as the kernel names it: the device number (as BPF sees it) and inode.
struct FileKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
};
// The key of `path` on this process's view of the file system; nullopt when it cannot be stat'ed.
std::optional<FileKey> file_key(const std::string& path);

// The most identities (files and directories) the read triggers of one run key in the kernel,
// over all its trigger trees; the map (bpf/maps.bpf.h read_triggers) holds four times as many
// for all runs. A run whose trigger trees hold more is refused, never keyed in part.
constexpr size_t kMaxReadTriggerFiles = 262144;

// What configure() needs besides the plan, resolved by the launcher on its own view of the
// files (a daemon in another mount namespace could not stat them): which tools are #! scripts
// (indices), the tools' ELF interpreters, the keys of every tool, interpreter and
// composition-rule trigger path that exists, and per trigger path that is a directory the keys
// of everything in it (bpf/trigger_tree.h), so that a file linked or moved out still fires.
struct EnclosureFiles {
  std::vector<size_t> script_tools;
  std::vector<std::string> loaders;
  std::map<std::string, FileKey> keys;
  std::map<std::string, std::vector<FileKey>> trigger_trees;
};
// Throws BpfError naming the rule (/rules/N (id)) when its trigger trees take the run past
// `max_trigger_files` identities or cannot be walked whole.
EnclosureFiles resolve_files(const policy::EnforcementPlan& plan, std::vector<size_t> script_tools,
                             std::vector<std::string> loaders,
                             size_t max_trigger_files = kMaxReadTriggerFiles);

// How many entries the maps that hold per-enclosure entries are created with; 0 keeps the size
// the object declares (bpf/maps.bpf.h), which serves a daemon's thousands of enclosures. Most of
// those maps are preallocated, ~50 MiB that the kernel allocates and zeroes at creation: a
// standalone launcher sizes them for its one run instead (for_one_run).
struct MapCapacity {
  uint32_t enclosures = 0;     // configs, states, reported costs, syscall batches, histograms
  uint32_t tools = 0;          // tools, tree tools, script tools
  uint32_t loaders = 0;        // ELF interpreters
  uint32_t read_triggers = 0;  // identities of the composition rules' trigger files
  uint32_t agent_sockets = 0;  // unix sockets the agents bound
  // Enough for one enclosure with this plan and these files, with room to spare.
  static MapCapacity for_one_run(const policy::EnforcementPlan& plan, const EnclosureFiles& files);
};

class EnclosureBpf : public KernelLayer {
 public:
  // Opens and loads (verifies) the programs `needs` asks for, with maps of `capacity`. Throws
  // BpfError with libbpf's reason naming the program or map. With `pin_dir` (a directory in
  // bpffs), every map is pinned there, or reused from there when a predecessor pinned it.
  explicit EnclosureBpf(const LayerNeeds& needs, const std::string& pin_dir = "",
                        const MapCapacity& capacity = {});
  ~EnclosureBpf();
  EnclosureBpf(const EnclosureBpf&) = delete;
  EnclosureBpf& operator=(const EnclosureBpf&) = delete;

  // Writes one enclosure's configuration, zeroed counters, egress tries and tool inodes.
  // `run_needs` are the layers this enclosure uses (a daemon loads more for all of them);
  // `files` says which tools are scripts, the loaders (ELF interpreters, which may not be run as
  // programs) and the files' keys. `dns_ports` (IPv4 and IPv6 port of the enclosure's resolver
  // on 127.0.0.1 and ::1), when given, sends every port-53 destination there.
  void configure(uint64_t cgroup_id, const policy::EnforcementPlan& plan,
                 const LayerNeeds& run_needs, const EnclosureFiles& files,
                 std::optional<std::pair<uint16_t, uint16_t>> dns_ports = std::nullopt);
  // Takes over an enclosure a predecessor configured (the maps already hold it): rebuilds what
  // admit() and revoke() need to know of its static rules.
  void adopt(uint64_t cgroup_id, const policy::EnforcementPlan& plan);

  void admit(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol,
             const std::vector<policy::PortRange>& ports, size_t rule_index) override;
  void revoke(uint64_t cgroup_id, const policy::Cidr& address, policy::Protocol protocol) override;
  // Attaches the cgroup programs to a cgroup (a v2 directory fd) with id `cgroup_id`. With a
  // pin directory, a pinned link of a predecessor on the same cgroup is kept instead.
  void attach_cgroup(int cgroup_fd, uint64_t cgroup_id = 0);
  // Attaches the tracing programs `needs` asks for (host-wide; they filter by cgroup id first);
  // the syscall tracepoints only `with_syscalls`.
  void attach_tracing(bool with_syscalls = true);
  // Attaches or detaches the sys_exit program, which costs every syscall of the host, so that it
  // runs only while an enclosure needs it (the daemon): with either kind of need.
  void set_syscall_tracing(bool sys_enter, bool sys_exit);
  // Removes an enclosure's entries from every map.
  void forget(uint64_t cgroup_id);
  // Unpins every link and map (the daemon, stopping with no enclosure left): the programs
  // detach when this object is destroyed.
  void unpin_all();

  int ring_fd() const override;
  void drain(const std::function<void(const void* data, size_t size)>& sink) override;

  EnclosureCounters counters(uint64_t cgroup_id) const override;
  uint64_t rules_fired(uint64_t cgroup_id) const override;
  void set_reported_cost(uint64_t cgroup_id, uint64_t micro_usd) override;
  std::optional<uint64_t> cut_sockets(uint64_t cgroup_id) override;
  std::vector<FileOpenCount> file_opens(uint64_t cgroup_id) const override;

  nlohmann::json report() const override { return report_; }
  // The "programs" part of a report for an enclosure that uses `needs`.
  static nlohmann::json programs_for(const LayerNeeds& needs);

 private:
  LayerNeeds needs_;
  std::string pin_dir_;
  enclosure_bpf* skel_ = nullptr;
  std::map<std::string, bpf_link*> links_;  // by program name
  ring_buffer* ring_ = nullptr;
  std::function<void(const void*, size_t)> sink_;
  nlohmann::json report_;
  int ncpus_ = 1;
  std::map<uint64_t, std::vector<policy::CidrEgress>> static_cidrs_;
  // Per enclosure, per egress rule: composition rules a connect there fires / that deny it.
  std::map<uint64_t, std::vector<uint64_t>> egress_triggers_;
  std::map<uint64_t, std::vector<uint64_t>> egress_denied_by_;
  // The unix_paths entries of each enclosure, removed with it.
  std::map<uint64_t, std::vector<enc_unix_key>> unix_keys_;

  void remember_egress(uint64_t cgid, const policy::EnforcementPlan& plan);
  void write_unix_sockets(uint64_t cgid, const policy::EnforcementPlan& plan, enc_config& cfg);
  void attach(bpf_program* program, const std::string& name, int cgroup_fd, uint64_t cgroup_id);
  void detach(const std::string& name);
  // Unpins and detaches a predecessor's pinned link of `program`, one this object never loads.
  void retire_pinned_link(const std::string& program);
  // Sets the syscall_counting flag from the configurations in the map (maps.bpf.h).
  void refresh_syscall_counting();
  void write_egress(uint64_t cgid, const policy::Cidr& cidr, policy::Protocol protocol,
                    std::vector<policy::PortRange> ports, size_t rule_index, bool merge_static);
};

}  // namespace bpf
