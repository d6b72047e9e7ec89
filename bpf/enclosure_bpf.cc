#include "bpf/enclosure_bpf.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bpf/trigger_tree.h"
#include "enclosure.skel.h"
#include "policy/net.h"

namespace bpf {
namespace {

// enum bpf_attach_type values of Linux 6.7 that Debian 12's headers do not have.
constexpr int kBpfCgroupUnixConnect = 49;
constexpr int kBpfCgroupUnixSendmsg = 50;

std::string libbpf_error(int err) {
  return std::strerror(err < 0 ? -err : err);
}

// libbpf's own messages explain verifier failures; keep the last lines for our error text.
thread_local std::string g_libbpf_log;
int capture_libbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  g_libbpf_log += buf;
  if (g_libbpf_log.size() > 8192) g_libbpf_log.erase(0, g_libbpf_log.size() - 8192);
  return n;
}

int ring_callback(void* ctx, void* data, size_t size) {
  auto* sink = static_cast<std::function<void(const void*, size_t)>*>(ctx);
  (*sink)(data, size);
  return 0;
}

}  // namespace

// The key the eBPF programs compute for the inode the kernel executes or opens at `path`
// (inode_key in maps.bpf.h): its inode number and the device stat() reports, except on
// overlayfs. There the executed and opened file is the overlay's inode, on the overlay's super
// block, while stat() of a non-directory whose layers are on different file systems (no xino)
// reports its layer's pseudo device: the overlay's own device is the one of the mount the path
// is on. The inode number needs no such care: an overlay inode's i_ino is what stat reports.
// (btrfs is mapped the other way, in the eBPF programs, to the subvolume's device that stat
// reports; see inode_key.) One O_PATH descriptor names the file for every question, so that a
// path replaced meanwhile cannot mix two files' answers.
std::optional<FileKey> file_key(const std::string& path) {
  int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct statx stx {};
  struct statfs fs {};
  bool ok = ::statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &stx) == 0 &&
            ::fstatfs(fd, &fs) == 0;
  ::close(fd);
  if (!ok) return std::nullopt;
  dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  if (static_cast<unsigned long>(fs.f_type) == OVERLAYFS_SUPER_MAGIC) {
    if (!(stx.stx_mask & STATX_MNT_ID)) return std::nullopt;  // Linux before 5.8
    // The super block's device: its "major:minor" in /proc/self/mountinfo is its s_dev.
    std::map<uint64_t, MountDevice> mounts = read_mount_table();
    auto mount = mounts.find(stx.stx_mnt_id);
    if (mount == mounts.end()) return std::nullopt;  // a mount this process does not see
    dev = mount->second.dev;
  }
  return FileKey{kernel_dev(dev), stx.stx_ino};
}

EnclosureFiles resolve_files(const policy::EnforcementPlan& plan, std::vector<size_t> script_tools,
                             std::vector<std::string> loaders, size_t max_trigger_files) {
  EnclosureFiles files{std::move(script_tools), std::move(loaders), {}, {}};
  auto add = [&](const std::string& path) {
    if (auto key = file_key(path)) files.keys[path] = *key;
  };
  for (const policy::ToolEntry& t : plan.tools)
    add(t.path);
  for (const std::string& l : files.loaders)
    add(l);
  size_t trigger_files = 0;
  for (size_t i = 0; i < plan.rules.size(); ++i) {
    for (const std::string& path : plan.rules[i].after.read) {
      add(path);
      if (files.trigger_trees.count(path)) continue;
      try {
        std::vector<FileKey>& tree = files.trigger_trees[path] =
            trigger_tree_keys(path, max_trigger_files - trigger_files);
        trigger_files += tree.size();
      } catch (const BpfError& e) {
        throw BpfError("bpf: /rules/" + std::to_string(i) + " (" + plan.rules[i].id +
                       "): " + e.what() +
                       (trigger_files ? " (with the " + std::to_string(trigger_files) +
                                            " of the run's other trigger trees)"
                                      : ""));
      }
    }
  }
  return files;
}

LayerNeeds LayerNeeds::of(const policy::EnforcementPlan& plan) {
  LayerNeeds n;
  n.egress = plan.network.mode == policy::NetworkMode::filtered;
  // A rule that denies network cuts every socket in every network mode: the skb program drops
  // the enclosure's packets from the moment the rule fires, the iterators destroy its sockets.
  bool rule_denies_network = std::any_of(plan.rules.begin(), plan.rules.end(),
                                         [](const policy::Rule& r) { return r.deny.network; });
  n.egress_bytes = plan.budgets.egress_bytes.has_value() || rule_denies_network;
  // Exec tracing counts tools and records every exec for the audit trail whenever the eBPF
  // layer is loaded at all.
  n.exec = true;
  // Path unix sockets are decided in every network mode.
  n.unix_sockets = true;
  // Syscall accounting (LayerNeeds::sys_enter), done in the one sys_exit program.
  n.sys_enter =
      plan.budgets.syscalls || plan.audit.files || plan.audit.syscalls || plan.baseline.has_value();
  // sys_exit serves audit.files, read triggers and baselines, and reports every run's refused
  // file and exec syscalls (deny events of the mount view, Landlock and noexec mounts).
  n.sys_exit = true;
  n.file_log = plan.audit.files;
  n.behaviour = plan.baseline.has_value();
  return n;
}

MapCapacity MapCapacity::for_one_run(const policy::EnforcementPlan& plan,
                                     const EnclosureFiles& files) {
  MapCapacity c;
  c.enclosures = 4;  // the run's cgroup; an agent cannot make cgroups of its own
  c.tools = static_cast<uint32_t>(plan.tools.size()) + 16;  // one key per tool at most
  c.loaders = static_cast<uint32_t>(files.loaders.size()) + 16;
  // The keys written are at most every trigger tree's entries and every resolved path, plus the
  // "every trigger" entry (write_read_triggers), and never more than one run may key.
  size_t triggers = files.keys.size() + 16;
  for (const auto& [path, keys] : files.trigger_trees)
    triggers += keys.size();
  c.read_triggers = static_cast<uint32_t>(std::min(triggers, kMaxReadTriggerFiles + 16));
  c.agent_sockets = 4096;
  return c;
}

namespace {

// Sizes the per-enclosure maps before they are created (MapCapacity).
int apply_capacity(enclosure_bpf* skel, const MapCapacity& c) {
  std::vector<std::pair<bpf_map*, uint32_t>> sizes = {{skel->maps.configs, c.enclosures},
                                                      {skel->maps.states, c.enclosures},
                                                      {skel->maps.reported_costs, c.enclosures},
                                                      {skel->maps.syscall_batches, c.enclosures},
                                                      {skel->maps.histograms, c.enclosures},
                                                      {skel->maps.tools, c.tools},
                                                      {skel->maps.script_tools, c.tools},
                                                      {skel->maps.tree_tools, c.tools},
                                                      {skel->maps.loaders, c.loaders},
                                                      {skel->maps.read_triggers, c.read_triggers},
                                                      {skel->maps.agent_sockets, c.agent_sockets}};
  for (const auto& [map, entries] : sizes) {
    if (entries == 0) continue;
    if (int err = bpf_map__set_max_entries(map, entries); err) return err;
  }
  return 0;
}

}  // namespace

EnclosureBpf::EnclosureBpf(const LayerNeeds& needs, const std::string& pin_dir,
                           const MapCapacity& capacity)
    : needs_(needs), pin_dir_(pin_dir) {
  libbpf_print_fn_t previous = libbpf_set_print(capture_libbpf);
  g_libbpf_log.clear();
  auto fail = [&](const std::string& what, int err) {
    libbpf_set_print(previous);
    std::string log = g_libbpf_log;
    if (skel_) enclosure_bpf__destroy(skel_);
    skel_ = nullptr;
    throw BpfError("bpf: " + what + ": " + libbpf_error(err) + (log.empty() ? "" : "\n" + log));
  };
  skel_ = enclosure_bpf__open();
  if (!skel_) fail("open the enclosure BPF object", errno);
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) fail("count possible CPUs", ncpus_);
  skel_->rodata->nr_cpus = static_cast<__u32>(ncpus_);
  size_t ring = 4096;
  while (ring < needs.ring_bytes)
    ring <<= 1;
  if (int err = bpf_map__set_max_entries(skel_->maps.events, static_cast<__u32>(ring)); err) {
    fail("size the ring buffer", err);
  }
  // Decisions (denials, budgets) have a ring of their own, at least 64 KiB.
  size_t decisions = std::max<size_t>(ring, 64 * 1024);
  if (int err = bpf_map__set_max_entries(skel_->maps.decisions, static_cast<__u32>(decisions));
      err) {
    fail("size the decisions ring buffer", err);
  }
  if (int err = apply_capacity(skel_, capacity); err) fail("size the per-enclosure maps", err);
  bpf_program__set_autoload(skel_->progs.enc_connect4, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_connect6, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_sendmsg4, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_sendmsg6, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_sock_create, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_recvmsg4, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_recvmsg6, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_getpeername4, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_getpeername6, needs.egress);
  bpf_program__set_autoload(skel_->progs.enc_skb_egress, needs.egress || needs.egress_bytes);
  bpf_program__set_autoload(skel_->progs.enc_cut_tcp, needs.egress || needs.egress_bytes);
  bpf_program__set_autoload(skel_->progs.enc_exec, needs.exec);
  bpf_program__set_autoload(skel_->progs.enc_connect_unix, needs.unix_sockets);
  bpf_program__set_autoload(skel_->progs.enc_sendmsg_unix, needs.unix_sockets);
  // Linux 6.7's unix socket hooks, which libbpf 1.1 cannot name by section (unix_sockets.bpf.c).
  bpf_program__set_expected_attach_type(skel_->progs.enc_connect_unix,
                                        static_cast<bpf_attach_type>(kBpfCgroupUnixConnect));
  bpf_program__set_expected_attach_type(skel_->progs.enc_sendmsg_unix,
                                        static_cast<bpf_attach_type>(kBpfCgroupUnixSendmsg));
  bool sys_exit = needs.sys_exit || needs.sys_enter;
  bpf_program__set_autoload(skel_->progs.enc_sys_exit, sys_exit && needs.file_log);
  bpf_program__set_autoload(skel_->progs.enc_sys_exit_lean, sys_exit && !needs.file_log);
  if (!pin_dir_.empty()) {
    // Every map is pinned (or a predecessor's pinned map is reused, which must have the same
    // definition: the same ring buffer sizes). Pins live only in bpffs.
    std::filesystem::path existing(pin_dir_);
    while (!existing.empty() && !std::filesystem::exists(existing))
      existing = existing.parent_path();
    struct statfs fs {};
    if (existing.empty() || ::statfs(existing.c_str(), &fs) != 0 ||
        fs.f_type != static_cast<decltype(fs.f_type)>(BPF_FS_MAGIC)) {
      fail("the pin directory " + pin_dir_ +
               " is not in a bpffs mount (mount one: mount -t bpf bpf /sys/fs/bpf)",
           ENOTSUP);
    }
    std::error_code ec;
    std::filesystem::create_directories(pin_dir_, ec);
    if (ec) fail("create the pin directory " + pin_dir_, ec.value());
    bpf_map* map;
    bpf_object__for_each_map(map, skel_->obj) {
      if (bpf_map__is_internal(map)) continue;
      std::string path = pin_dir_ + "/" + bpf_map__name(map);
      if (int err = bpf_map__set_pin_path(map, path.c_str()); err) fail("pin path " + path, err);
    }
  }
  if (int err = enclosure_bpf__load(skel_); err) fail("load (verify) the enclosure programs", err);
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.decisions), ring_callback, &sink_, nullptr);
  if (!ring_) fail("open the decisions ring buffer", errno);
  if (int err = ring_buffer__add(ring_, bpf_map__fd(skel_->maps.events), ring_callback, &sink_);
      err) {
    fail("open the events ring buffer", err);
  }
  libbpf_set_print(previous);

  nlohmann::json programs = programs_for(needs);
  report_ = {{"programs", programs},
             {"ring_buffer_bytes", ring},
             {"decisions_ring_buffer_bytes", decisions}};
}

nlohmann::json EnclosureBpf::programs_for(const LayerNeeds& needs) {
  nlohmann::json programs = nlohmann::json::object();
  if (needs.egress) {
    programs["network"] = {"cgroup/connect4",    "cgroup/connect6",    "cgroup/sendmsg4",
                           "cgroup/sendmsg6",    "cgroup/sock_create", "cgroup_skb/egress",
                           "cgroup/recvmsg4",    "cgroup/recvmsg6",    "cgroup/getpeername4",
                           "cgroup/getpeername6"};
  }
  if (needs.egress_bytes) programs["budgets.egress_bytes"] = "cgroup_skb/egress";
  if (needs.egress || needs.egress_bytes)
    programs["rules.deny_network"] = {"cgroup_skb/egress", "iter/tcp"};
  if (needs.exec) programs["tools"] = "tp_btf/sched_process_exec";
  if (needs.unix_sockets) programs["network.unix"] = {"cgroup/connect_unix", "cgroup/sendmsg_unix"};
  if (needs.sys_enter) {
    programs["syscalls"] = "tp_btf/sys_exit";
    programs["audit.files"] = "tp_btf/sys_exit";
  }
  if (needs.sys_exit) programs["refusals"] = "tp_btf/sys_exit";
  return programs;
}

EnclosureBpf::~EnclosureBpf() {
  if (ring_) ring_buffer__free(ring_);
  // Closing a link's fd detaches it unless it is pinned.
  for (auto& [name, l] : links_)
    bpf_link__destroy(l);
  if (skel_) enclosure_bpf__destroy(skel_);
}

namespace {

void update_map(bpf_map* map, const void* key, size_t key_size, const void* value,
                size_t value_size, const std::string& what) {
  if (bpf_map__update_elem(map, key, key_size, value, value_size, BPF_ANY) != 0) {
    throw BpfError("bpf: configure " + what + ": " + std::strerror(errno));
  }
}

// The flags and budgets of an enclosure's configuration. `count_tools` when both the enclosure
// and the loaded programs trace execs.
enc_config config_flags_and_budgets(const policy::EnforcementPlan& plan,
                                    const LayerNeeds& run_needs, bool count_tools, int ncpus) {
  enc_config cfg{};
  const policy::Budgets& b = plan.budgets;
  if (plan.network.mode == policy::NetworkMode::filtered) cfg.flags |= ENC_NET_FILTERED;
  if (count_tools) cfg.flags |= ENC_COUNT_TOOLS;
  if (b.syscalls) {
    cfg.flags |= ENC_SYSCALL_BUDGET;
    cfg.syscall_budget = *b.syscalls;
    // Overshoot stays under max(1%, 1000): every CPU may hold one unflushed batch.
    uint64_t slack = std::max<uint64_t>(*b.syscalls / 100, 1000);
    cfg.syscall_batch = static_cast<__u32>(std::clamp<uint64_t>(slack / (ncpus + 1), 1, 64));
  }
  if (plan.audit.files) cfg.flags |= ENC_AUDIT_FILES;
  // A behaviour baseline compares per-window counts of opens and the set of syscalls seen.
  if (plan.audit.syscalls || run_needs.behaviour) cfg.flags |= ENC_AUDIT_SYSCALLS;
  if (run_needs.behaviour) cfg.flags |= ENC_COUNT_OPENS;
  if (run_needs.sys_exit) cfg.flags |= ENC_REPORT_REFUSALS;
  if (b.egress_bytes) {
    cfg.flags |= ENC_EGRESS_BUDGET;
    cfg.egress_bytes_budget = *b.egress_bytes;
  }
  if (b.cost_micro_usd) {
    cfg.flags |= ENC_COST_BUDGET;
    cfg.cost_budget_micro = *b.cost_micro_usd;
  }
  if (b.tool_calls) {
    cfg.flags |= ENC_TOOL_CALLS_BUDGET;
    cfg.tool_calls_budget = *b.tool_calls;
  }
  return cfg;
}

// Each tool's call limit and cost in `cfg`, and its file's inode in the tools map.
void write_tools(enclosure_bpf* skel, uint64_t cgid, const policy::EnforcementPlan& plan,
                 const EnclosureFiles& files, enc_config& cfg) {
  if (plan.tools.size() > ENC_MAX_TOOLS) {
    throw BpfError("bpf: the manifest has " + std::to_string(plan.tools.size()) +
                   " tools; the eBPF "
                   "layer counts at most " +
                   std::to_string(ENC_MAX_TOOLS));
  }
  cfg.ntools = static_cast<__u32>(plan.tools.size());
  for (const policy::ToolEntry& t : plan.tools) {
    cfg.tool_max_calls[t.index] = t.max_calls ? *t.max_calls : ~0ULL;
    cfg.tool_cost_micro[t.index] = t.cost_micro_usd;
    auto file = files.keys.find(t.path);
    if (file == files.keys.end()) continue;  // absent: never executed, never counted
    enc_tool_key key{cgid, file->second.dev, file->second.ino};
    __u32 idx = static_cast<__u32>(t.index);
    // A tree tool's directory: every regular file executed beneath it is that tool.
    bpf_map* map = t.tree ? skel->maps.tree_tools : skel->maps.tools;
    // Two tools that are the same file count as the first of them.
    if (bpf_map__lookup_elem(map, &key, sizeof key, &idx, sizeof idx, 0) == 0) continue;
    idx = static_cast<__u32>(t.index);
    update_map(map, &key, sizeof key, &idx, sizeof idx, "tool " + t.name);
  }
}

// Script tools are recognised by the path they are run by (the exec's file is their interpreter).
void write_script_tools(enclosure_bpf* skel, uint64_t cgid, const policy::EnforcementPlan& plan,
                        const EnclosureFiles& files) {
  for (size_t index : files.script_tools) {
    const policy::ToolEntry& t = plan.tools.at(index);
    if (t.path.size() >= ENC_PATH_MAX) {
      throw BpfError("bpf: the path of script tool " + t.name + " is longer than " +
                     std::to_string(ENC_PATH_MAX - 1) + " bytes");
    }
    enc_script_key key{};
    key.cgroup_id = cgid;
    std::memcpy(key.path, t.path.data(), t.path.size());
    __u32 idx = static_cast<__u32>(t.index);
    update_map(skel->maps.script_tools, &key, sizeof key, &idx, sizeof idx,
               "script tool " + t.name);
  }
}

void write_loaders(enclosure_bpf* skel, uint64_t cgid, const EnclosureFiles& files) {
  for (const std::string& loader : files.loaders) {
    auto file = files.keys.find(loader);
    if (file == files.keys.end()) continue;
    enc_tool_key key{cgid, file->second.dev, file->second.ino};
    __u32 one = 1;
    update_map(skel->maps.loaders, &key, sizeof key, &one, sizeof one, "ELF interpreter " + loader);
  }
}

bool counts_syscalls(const enc_config& cfg);

// A fresh state and, for an enclosure that counts syscalls (`cfg`), its per-CPU syscall meters
// and, with the histogram, per-CPU syscall histograms, all zero.
void write_zero_counters(enclosure_bpf* skel, uint64_t cgid, int ncpus, const enc_config& cfg) {
  enc_state state{};
  update_map(skel->maps.states, &cgid, sizeof cgid, &state, sizeof state, "enclosure state");
  if (!counts_syscalls(cfg)) return;
  enc_syscall_batch meter{};
  meter.budget = cfg.syscall_budget;
  meter.batch = (cfg.flags & ENC_SYSCALL_BUDGET) ? cfg.syscall_batch : 64;
  meter.flags = cfg.flags;
  std::vector<enc_syscall_batch> meters(static_cast<size_t>(ncpus), meter);
  update_map(skel->maps.syscall_batches, &cgid, sizeof cgid, meters.data(),
             meters.size() * sizeof meter, "syscall meters");
  if (cfg.flags & ENC_AUDIT_SYSCALLS) {
    std::vector<uint64_t> zero_hist(static_cast<size_t>(ncpus) * ENC_SYSCALL_SLOTS, 0);
    update_map(skel->maps.histograms, &cgid, sizeof cgid, zero_hist.data(),
               zero_hist.size() * sizeof(uint64_t), "syscall histogram");
  }
}

// Composition rules: one bit each; at most ENC_MAX_RULES.
void check_rule_count(const policy::EnforcementPlan& plan) {
  if (plan.rules.size() > ENC_MAX_RULES) {
    throw BpfError("bpf: the manifest has " + std::to_string(plan.rules.size()) +
                   " composition rules; the eBPF "
                   "layer tracks at most " +
                   std::to_string(ENC_MAX_RULES));
  }
}

std::optional<size_t> tool_index(const policy::EnforcementPlan& plan, const std::string& name) {
  for (const policy::ToolEntry& t : plan.tools) {
    if (t.name == name) return t.index;
  }
  return std::nullopt;
}

// The read-triggers map entries of a run: every trigger path's key and the keys of everything
// in its tree, each with the bits of the rules it triggers.
std::map<std::pair<uint64_t, uint64_t>, uint64_t> read_trigger_bits(
    const policy::EnforcementPlan& plan, const EnclosureFiles& files) {
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> bits;
  for (size_t i = 0; i < plan.rules.size(); ++i) {
    const policy::Rule& r = plan.rules[i];
    for (const std::string& path : r.after.read) {
      auto file = files.keys.find(path);
      if (file == files.keys.end()) {
        throw BpfError("bpf: /rules/" + std::to_string(i) + " (" + r.id + "): the trigger path " +
                       path + " cannot be resolved on the host");
      }
      bits[{file->second.dev, file->second.ino}] |= 1ULL << i;
      auto tree = files.trigger_trees.find(path);
      if (tree == files.trigger_trees.end()) continue;
      for (const FileKey& key : tree->second)
        bits[{key.dev, key.ino}] |= 1ULL << i;
    }
  }
  // The daemon gets the keys from the launcher: the cap holds whoever resolved them.
  if (bits.size() > kMaxReadTriggerFiles) {
    throw BpfError("bpf: /rules: the read triggers' trees hold " + std::to_string(bits.size()) +
                   " files and directories; a run keys at most " +
                   std::to_string(kMaxReadTriggerFiles));
  }
  return bits;
}

// Writes the read triggers of enclosure `cgid`, and at device 0 and inode 0 (no file's key) every
// rule with a read trigger: what an open fires whose ancestors the kernel could not walk to the
// root (check_read_triggers). One batch update, not one syscall per file.
void write_read_triggers(enclosure_bpf* skel, uint64_t cgid,
                         const std::map<std::pair<uint64_t, uint64_t>, uint64_t>& bits) {
  std::vector<enc_tool_key> keys;
  std::vector<uint64_t> values;
  keys.reserve(bits.size() + 1);
  values.reserve(bits.size() + 1);
  uint64_t every = 0;
  for (const auto& [dev_ino, rules] : bits) {
    keys.push_back({cgid, dev_ino.first, dev_ino.second});
    values.push_back(rules);
    every |= rules;
  }
  keys.push_back({cgid, 0, 0});
  values.push_back(every);
  __u32 count = static_cast<__u32>(keys.size());
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
  if (bpf_map_update_batch(bpf_map__fd(skel->maps.read_triggers), keys.data(), values.data(),
                           &count, &opts) != 0) {
    throw BpfError("bpf: configure the composition rules' read triggers (" +
                   std::to_string(keys.size()) +
                   " files and directories): " + std::strerror(errno));
  }
}

// What fires each composition rule and what it denies: its bit in `cfg` per denied and per
// triggering tool, and in the read-triggers map per triggering file.
void write_rules(enclosure_bpf* skel, uint64_t cgid, const policy::EnforcementPlan& plan,
                 const EnclosureFiles& files, enc_config& cfg) {
  cfg.nrules = static_cast<__u32>(plan.rules.size());
  for (size_t i = 0; i < plan.rules.size(); ++i) {
    const policy::Rule& r = plan.rules[i];
    uint64_t bit = 1ULL << i;
    if (r.deny.network) cfg.rules_deny_network |= bit;
    for (const std::string& t : r.deny.tools) {
      if (auto idx = tool_index(plan, t)) cfg.tool_denied_by[*idx] |= bit;
    }
    for (const std::string& t : r.after.exec) {
      if (auto idx = tool_index(plan, t)) cfg.tool_triggers[*idx] |= bit;
    }
  }
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> bits = read_trigger_bits(plan, files);
  if (bits.empty()) return;
  write_read_triggers(skel, cgid, bits);
  cfg.flags |= ENC_READ_TRIGGERS;
}

// The keys of `map` that begin with the cgroup id `cgid` (the keys of the per-file maps do), by
// batches of lookups (a run may have keyed a quarter of a million files), or one key at a time
// where batches are refused.
std::vector<char> keys_of(bpf_map* map, uint64_t cgid) {
  const size_t key_size = bpf_map__key_size(map);
  constexpr __u32 kBatch = 4096;
  std::vector<char> keys(key_size * kBatch), values(bpf_map__value_size(map) * kBatch);
  std::vector<char> batch(std::max<size_t>(key_size, 8)), next(batch.size());
  std::vector<char> mine;
  auto keep_mine = [&](const char* key) {
    uint64_t owner = 0;
    std::memcpy(&owner, key, sizeof owner);
    if (owner == cgid) mine.insert(mine.end(), key, key + key_size);
  };
  for (bool first = true;; first = false) {
    __u32 count = kBatch;
    int rc = bpf_map_lookup_batch(bpf_map__fd(map), first ? nullptr : batch.data(), next.data(),
                                  keys.data(), values.data(), &count, nullptr);
    if (rc != 0 && errno != ENOENT) break;  // refused: one key at a time, below
    for (__u32 i = 0; i < count; ++i)
      keep_mine(&keys[i * key_size]);
    if (rc != 0) return mine;  // ENOENT: those were the last
    batch.swap(next);
  }
  mine.clear();
  std::vector<char> key(key_size), following(key_size);
  for (const void* at = nullptr; bpf_map__get_next_key(map, at, following.data(), key_size) == 0;
       at = key.data()) {
    key.swap(following);
    keep_mine(key.data());
  }
  return mine;
}

// Deletes every entry of enclosure `cgid` from a map keyed by cgroup id first: the daemon's maps
// outlive its runs.
void delete_entries_of(bpf_map* map, uint64_t cgid) {
  const size_t key_size = bpf_map__key_size(map);
  std::vector<char> mine = keys_of(map, cgid);
  __u32 count = static_cast<__u32>(mine.size() / key_size);
  if (count == 0 || bpf_map_delete_batch(bpf_map__fd(map), mine.data(), &count, nullptr) == 0)
    return;
  for (size_t at = 0; at < mine.size(); at += key_size)  // what the batch left
    bpf_map__delete_elem(map, &mine[at], key_size, 0);
}

// Sends every port-53 destination to the enclosure's resolver on 127.0.0.1 and ::1.
// The path unix sockets of an enclosure, as trie prefixes: a named socket with its terminating
// NUL (that path exactly), a directory as "dir/" (every path beneath it); the value says whether
// a match is allowed (named, own) or refused with a record (foreign).
std::vector<std::pair<enc_unix_key, __u32>> unix_socket_entries(
    uint64_t cgid, const policy::EnforcementPlan& plan) {
  std::vector<std::pair<enc_unix_key, __u32>> out;
  for (const policy::UnixSocketPath& u : plan.network.unix_sockets) {
    bool exact = u.access == policy::UnixSocketAccess::named;
    std::string text = exact || u.path == "/" ? u.path : u.path + "/";
    size_t bytes = exact ? text.size() + 1 : text.size();
    if (bytes > ENC_UNIX_PATH_MAX) continue;  // no socket address names a path beneath it
    enc_unix_key key{};
    key.prefixlen = static_cast<__u32>(64 + 8 * bytes);
    std::memcpy(key.cgroup_id, &cgid, sizeof key.cgroup_id);
    std::memcpy(key.path, text.data(), text.size());
    out.push_back({key, u.access == policy::UnixSocketAccess::foreign ? ENC_UNIX_REFUSE
                        : u.access == policy::UnixSocketAccess::own   ? ENC_UNIX_OWN
                                                                      : ENC_UNIX_NAMED});
  }
  return out;
}

// Whether an enclosure with this configuration counts its syscalls (sys_exit must then look at
// every syscall, not only refusals, opens, connects and binds).
bool counts_syscalls(const enc_config& cfg) {
  return (cfg.flags & (ENC_SYSCALL_BUDGET | ENC_AUDIT_SYSCALLS)) != 0;
}

void set_syscall_counting(enclosure_bpf* skel, bool on) {
  __u32 zero = 0, value = on ? 1 : 0;
  update_map(skel->maps.syscall_counting, &zero, sizeof zero, &value, sizeof value,
             "the syscall counting flag");
}

// Whether any enclosure in the configs map counts its syscalls.
bool any_counts_syscalls(enclosure_bpf* skel) {
  bpf_map* configs = skel->maps.configs;
  uint64_t key = 0, next = 0;
  enc_config cfg{};
  for (const void* at = nullptr; bpf_map__get_next_key(configs, at, &next, sizeof next) == 0;
       at = &key) {
    key = next;
    if (bpf_map__lookup_elem(configs, &key, sizeof key, &cfg, sizeof cfg, 0) == 0 &&
        counts_syscalls(cfg)) {
      return true;
    }
  }
  return false;
}

void set_dns_redirect(enc_config& cfg, std::pair<uint16_t, uint16_t> dns_ports) {
  cfg.flags |= ENC_DNS_REDIRECT;
  cfg.dns_ip4 = htonl(INADDR_LOOPBACK);
  std::memcpy(cfg.dns_ip6, &in6addr_loopback, sizeof cfg.dns_ip6);
  cfg.dns_port4 = htons(dns_ports.first);
  cfg.dns_port6 = htons(dns_ports.second);
}

}  // namespace

void EnclosureBpf::configure(uint64_t cgid, const policy::EnforcementPlan& plan,
                             const LayerNeeds& run_needs, const EnclosureFiles& files,
                             std::optional<std::pair<uint16_t, uint16_t>> dns_ports) {
  enc_config cfg = config_flags_and_budgets(plan, run_needs, run_needs.exec && needs_.exec, ncpus_);
  write_tools(skel_, cgid, plan, files, cfg);
  write_script_tools(skel_, cgid, plan, files);
  write_loaders(skel_, cgid, files);
  write_zero_counters(skel_, cgid, ncpus_, cfg);
  check_rule_count(plan);
  remember_egress(cgid, plan);
  write_rules(skel_, cgid, plan, files, cfg);

  // Egress: each block carries the ports of every block that contains it, because an LPM trie
  // answers with the most specific match only.
  for (const policy::CidrEgress& e : plan.network.cidrs) {
    write_egress(cgid, e.cidr, e.protocol, e.ports, e.rule_index, true);
  }
  if (dns_ports) set_dns_redirect(cfg, *dns_ports);
  if (needs_.unix_sockets) write_unix_sockets(cgid, plan, cfg);
  // The configuration last: the programs act on an enclosure only once it exists.
  update_map(skel_->maps.configs, &cgid, sizeof cgid, &cfg, sizeof cfg, "enclosure configuration");
  // Then sys_exit looks at every syscall of the host's other pid namespaces (syscall_counting).
  if (counts_syscalls(cfg)) set_syscall_counting(skel_, true);
}

void EnclosureBpf::remember_egress(uint64_t cgid, const policy::EnforcementPlan& plan) {
  // Per egress rule: the composition rules a connect there fires, and those that deny it.
  const auto& egress_rules = plan.network.egress_rules;
  std::vector<uint64_t>& triggers = egress_triggers_[cgid];
  std::vector<uint64_t>& denied_by = egress_denied_by_[cgid];
  triggers.assign(egress_rules.size(), 0);
  denied_by.assign(egress_rules.size(), 0);
  for (size_t i = 0; i < plan.rules.size() && i < ENC_MAX_RULES; ++i) {
    const policy::Rule& r = plan.rules[i];
    uint64_t bit = 1ULL << i;
    for (const policy::ConnectTrigger& c : r.after.connect) {
      for (size_t e = 0; e < egress_rules.size(); ++e) {
        if ((c.egress_index && *c.egress_index == e) ||
            (!c.egress_index && egress_rules[e].host == c.host)) {
          triggers[e] |= bit;
        }
      }
    }
    for (const std::string& h : r.deny.hosts) {
      for (size_t e = 0; e < egress_rules.size(); ++e) {
        if (egress_rules[e].host == h) denied_by[e] |= bit;
      }
    }
  }
  static_cidrs_[cgid] = plan.network.cidrs;
}

void EnclosureBpf::write_unix_sockets(uint64_t cgid, const policy::EnforcementPlan& plan,
                                      enc_config& cfg) {
  std::vector<enc_unix_key>& keys = unix_keys_[cgid];
  for (const auto& [key, verdict] : unix_socket_entries(cgid, plan)) {
    update_map(skel_->maps.unix_paths, &key, sizeof key, &verdict, sizeof verdict,
               "unix socket path " + std::string(key.path));
    keys.push_back(key);
  }
  cfg.flags |= ENC_UNIX_SOCKETS;
}

void EnclosureBpf::adopt(uint64_t cgid, const policy::EnforcementPlan& plan) {
  remember_egress(cgid, plan);
  refresh_syscall_counting();  // a predecessor's map may not have had the flag
  // A run this daemon did not configure: its unix_paths entries, to remove them with it.
  std::vector<enc_unix_key>& keys = unix_keys_[cgid];
  keys.clear();
  for (const auto& entry : unix_socket_entries(cgid, plan))
    keys.push_back(entry.first);
}

void EnclosureBpf::write_egress(uint64_t cgid, const policy::Cidr& cidr, policy::Protocol protocol,
                                std::vector<policy::PortRange> ports, size_t rule_index,
                                bool merge_static) {
  if (merge_static) {
    for (const policy::CidrEgress& f : static_cidrs_[cgid]) {
      if (f.protocol == protocol && f.cidr.contains(cidr))
        ports.insert(ports.end(), f.ports.begin(), f.ports.end());
    }
  }
  ports = policy::merge_port_ranges(ports);
  if (ports.size() > ENC_MAX_PORT_RANGES) {
    throw BpfError("bpf: /network/egress/" + std::to_string(rule_index) + " (" + cidr.to_string() +
                   ") has " + std::to_string(ports.size()) +
                   " separate port ranges (with the rules that contain it); the eBPF "
                   "layer takes at most " +
                   std::to_string(ENC_MAX_PORT_RANGES));
  }
  enc_ports value{};
  value.rule_index = static_cast<__u32>(rule_index);
  value.nranges = static_cast<__u32>(ports.size());
  const std::vector<uint64_t>& triggers = egress_triggers_[cgid];
  const std::vector<uint64_t>& denied_by = egress_denied_by_[cgid];
  if (rule_index < triggers.size()) value.triggers = triggers[rule_index];
  if (rule_index < denied_by.size()) value.denied_by = denied_by[rule_index];
  if (merge_static) {
    for (const policy::CidrEgress& f : static_cidrs_[cgid]) {
      if (f.protocol == protocol && f.cidr.contains(cidr) && f.rule_index < denied_by.size()) {
        value.denied_by |= denied_by[f.rule_index];
      }
    }
  }
  for (size_t i = 0; i < ports.size(); ++i)
    value.ranges[i] = {ports[i].first, ports[i].last};
  __u8 proto = protocol == policy::Protocol::udp ? 17 : 6;
  int rc;
  if (!cidr.v6) {
    enc_lpm4_key key{};
    key.prefixlen = 72 + cidr.prefix;
    key.cgroup_id = cgid;
    key.protocol = proto;
    std::memcpy(key.addr, cidr.addr.data(), 4);
    rc = bpf_map__update_elem(skel_->maps.egress4, &key, sizeof key, &value, sizeof value, BPF_ANY);
  } else {
    enc_lpm6_key key{};
    key.prefixlen = 72 + cidr.prefix;
    key.cgroup_id = cgid;
    key.protocol = proto;
    std::memcpy(key.addr, cidr.addr.data(), 16);
    rc = bpf_map__update_elem(skel_->maps.egress6, &key, sizeof key, &value, sizeof value, BPF_ANY);
  }
  if (rc != 0)
    throw BpfError("bpf: configure egress rule " + cidr.to_string() + ": " + std::strerror(errno));
}

void EnclosureBpf::admit(uint64_t cgid, const policy::Cidr& address, policy::Protocol protocol,
                         const std::vector<policy::PortRange>& ports, size_t rule_index) {
  write_egress(cgid, address, protocol, ports, rule_index, true);
}

void EnclosureBpf::revoke(uint64_t cgid, const policy::Cidr& address, policy::Protocol protocol) {
  for (const policy::CidrEgress& f : static_cidrs_[cgid]) {
    if (f.protocol == protocol && f.cidr == address) {
      write_egress(cgid, f.cidr, f.protocol, f.ports, f.rule_index, true);
      return;
    }
  }
  __u8 proto = protocol == policy::Protocol::udp ? 17 : 6;
  if (!address.v6) {
    enc_lpm4_key key{};
    key.prefixlen = 72 + address.prefix;
    key.cgroup_id = cgid;
    key.protocol = proto;
    std::memcpy(key.addr, address.addr.data(), 4);
    bpf_map__delete_elem(skel_->maps.egress4, &key, sizeof key, 0);
  } else {
    enc_lpm6_key key{};
    key.prefixlen = 72 + address.prefix;
    key.cgroup_id = cgid;
    key.protocol = proto;
    std::memcpy(key.addr, address.addr.data(), 16);
    bpf_map__delete_elem(skel_->maps.egress6, &key, sizeof key, 0);
  }
}

void EnclosureBpf::attach(bpf_program* program, const std::string& name, int cgroup_fd,
                          uint64_t cgroup_id) {
  if (links_.count(name)) return;
  std::string pin = pin_dir_.empty() ? "" : pin_dir_ + "/link-" + bpf_program__name(program);
  if (!pin.empty() && ::access(pin.c_str(), F_OK) == 0) {
    // A predecessor's link, still attached: keep it (enforcement never paused). A cgroup link
    // whose cgroup is gone (or another one) is stale and replaced.
    if (bpf_link* old = bpf_link__open(pin.c_str())) {
      bpf_link_info info{};
      __u32 len = sizeof info;
      bool current = bpf_obj_get_info_by_fd(bpf_link__fd(old), &info, &len) == 0 &&
                     (cgroup_fd < 0 ||
                      (info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id));
      if (current) {
        links_[name] = old;
        return;
      }
      bpf_link__unpin(old);
      bpf_link__destroy(old);
      ::unlink(pin.c_str());
    }
  }
  bpf_link* link = cgroup_fd >= 0 ? bpf_program__attach_cgroup(program, cgroup_fd)
                                  : bpf_program__attach(program);
  if (!link) {
    throw BpfError("bpf: attach " + name +
                   (cgroup_fd >= 0 ? " to the enclosure's cgroup: " : ": ") + std::strerror(errno));
  }
  if (!pin.empty()) {
    if (int err = bpf_link__pin(link, pin.c_str()); err) {
      bpf_link__destroy(link);
      throw BpfError("bpf: pin the link of " + name + " at " + pin + ": " + libbpf_error(err));
    }
  }
  links_[name] = link;
}

void EnclosureBpf::detach(const std::string& name) {
  auto it = links_.find(name);
  if (it == links_.end()) return;
  if (!pin_dir_.empty()) bpf_link__unpin(it->second);
  bpf_link__destroy(it->second);
  links_.erase(it);
}

void EnclosureBpf::attach_cgroup(int cgroup_fd, uint64_t cgroup_id) {
  auto attach_here = [&](bpf_program* p, const char* name) {
    attach(p, name, cgroup_fd, cgroup_id);
  };
  if (needs_.egress) {
    attach_here(skel_->progs.enc_connect4, "cgroup/connect4");
    attach_here(skel_->progs.enc_connect6, "cgroup/connect6");
    attach_here(skel_->progs.enc_sendmsg4, "cgroup/sendmsg4");
    attach_here(skel_->progs.enc_sendmsg6, "cgroup/sendmsg6");
    attach_here(skel_->progs.enc_sock_create, "cgroup/sock_create");
    attach_here(skel_->progs.enc_recvmsg4, "cgroup/recvmsg4");
    attach_here(skel_->progs.enc_recvmsg6, "cgroup/recvmsg6");
    attach_here(skel_->progs.enc_getpeername4, "cgroup/getpeername4");
    attach_here(skel_->progs.enc_getpeername6, "cgroup/getpeername6");
  }
  if (needs_.egress || needs_.egress_bytes)
    attach_here(skel_->progs.enc_skb_egress, "cgroup_skb/egress");
  if (needs_.unix_sockets) {
    attach_here(skel_->progs.enc_connect_unix, "cgroup/connect_unix");
    attach_here(skel_->progs.enc_sendmsg_unix, "cgroup/sendmsg_unix");
  }
}

void EnclosureBpf::attach_tracing(bool with_syscalls) {
  if (needs_.exec) attach(skel_->progs.enc_exec, "tp_btf/sched_process_exec", -1, 0);
  if (with_syscalls) set_syscall_tracing(needs_.sys_enter, needs_.sys_exit);
}

void EnclosureBpf::set_syscall_tracing(bool sys_enter, bool sys_exit) {
  // One program, sys_exit, serves both: nothing is attached at sys_enter any more. A pinned
  // sys_enter link of a predecessor (which counted syscalls at entry) would count them twice.
  retire_pinned_link("enc_sys_enter");
  bool loaded = needs_.sys_enter || needs_.sys_exit;
  if ((sys_enter || sys_exit) && loaded) {
    attach(needs_.file_log ? skel_->progs.enc_sys_exit : skel_->progs.enc_sys_exit_lean,
           "tp_btf/sys_exit", -1, 0);
  } else {
    detach("tp_btf/sys_exit");
  }
}

void EnclosureBpf::retire_pinned_link(const std::string& program) {
  if (pin_dir_.empty()) return;
  std::string pin = pin_dir_ + "/link-" + program;
  if (::access(pin.c_str(), F_OK) != 0) return;
  if (bpf_link* old = bpf_link__open(pin.c_str())) {
    bpf_link__unpin(old);
    bpf_link__destroy(old);
  }
  ::unlink(pin.c_str());
}

void EnclosureBpf::unpin_all() {
  if (pin_dir_.empty()) return;
  for (auto& [name, link] : links_)
    bpf_link__unpin(link);
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (!bpf_map__is_internal(map)) bpf_map__unpin(map, nullptr);
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(pin_dir_, ec))
    ::unlink(entry.path().c_str());  // stale links of programs this daemon did not load
  ::rmdir(pin_dir_.c_str());
}

void EnclosureBpf::forget(uint64_t cgid) {
  // The per-file maps, keyed by cgroup id first (a run's read triggers may be many).
  delete_entries_of(skel_->maps.read_triggers, cgid);
  delete_entries_of(skel_->maps.tools, cgid);
  delete_entries_of(skel_->maps.tree_tools, cgid);
  delete_entries_of(skel_->maps.loaders, cgid);
  delete_entries_of(skel_->maps.script_tools, cgid);
  delete_entries_of(skel_->maps.agent_sockets, cgid);
  delete_entries_of(skel_->maps.file_opens, cgid);
  bpf_map__delete_elem(skel_->maps.configs, &cgid, sizeof cgid, 0);
  refresh_syscall_counting();
  bpf_map__delete_elem(skel_->maps.states, &cgid, sizeof cgid, 0);
  bpf_map__delete_elem(skel_->maps.syscall_batches, &cgid, sizeof cgid, 0);
  bpf_map__delete_elem(skel_->maps.histograms, &cgid, sizeof cgid, 0);
  bpf_map__delete_elem(skel_->maps.reported_costs, &cgid, sizeof cgid, 0);
  static_cidrs_.erase(cgid);
  egress_triggers_.erase(cgid);
  egress_denied_by_.erase(cgid);
  for (const enc_unix_key& key : unix_keys_[cgid])
    bpf_map__delete_elem(skel_->maps.unix_paths, &key, sizeof key, 0);
  unix_keys_.erase(cgid);
}

// Clears syscall_counting when no enclosure left counts syscalls. Launchers sharing the maps may
// configure and forget at once: each writes its configuration before it sets the flag, and
// whoever clears the flag looks at the configurations again afterwards, setting it back if one
// counts. So the last write is a set whenever a counting configuration exists.
void EnclosureBpf::refresh_syscall_counting() {
  if (any_counts_syscalls(skel_)) {
    set_syscall_counting(skel_, true);
    return;
  }
  set_syscall_counting(skel_, false);
  if (any_counts_syscalls(skel_)) set_syscall_counting(skel_, true);
}

std::vector<FileOpenCount> EnclosureBpf::file_opens(uint64_t cgid) const {
  std::vector<char> keys = keys_of(skel_->maps.file_opens, cgid);
  std::vector<FileOpenCount> out;
  out.reserve(keys.size() / sizeof(enc_open_key));
  for (size_t at = 0; at + sizeof(enc_open_key) <= keys.size(); at += sizeof(enc_open_key)) {
    FileOpenCount f{};
    std::memcpy(&f.key, &keys[at], sizeof f.key);
    if (bpf_map__lookup_elem(skel_->maps.file_opens, &f.key, sizeof f.key, &f.count, sizeof f.count,
                             0) == 0) {
      out.push_back(f);
    }
  }
  return out;
}

int EnclosureBpf::ring_fd() const {
  return ring_buffer__epoll_fd(ring_);
}

void EnclosureBpf::drain(const std::function<void(const void* data, size_t size)>& sink) {
  sink_ = sink;
  ring_buffer__consume(ring_);
  sink_ = nullptr;
}

EnclosureCounters EnclosureBpf::counters(uint64_t cgid) const {
  EnclosureCounters c;
  bpf_map__lookup_elem(skel_->maps.states, &cgid, sizeof cgid, &c.state, sizeof c.state, 0);
  std::vector<enc_syscall_batch> meters(static_cast<size_t>(ncpus_));
  if (bpf_map__lookup_elem(skel_->maps.syscall_batches, &cgid, sizeof cgid, meters.data(),
                           meters.size() * sizeof(enc_syscall_batch), 0) == 0) {
    for (const enc_syscall_batch& m : meters)
      c.syscalls_pending += m.count;
  }
  std::vector<uint64_t> hist(static_cast<size_t>(ncpus_) * ENC_SYSCALL_SLOTS, 0);
  if (bpf_map__lookup_elem(skel_->maps.histograms, &cgid, sizeof cgid, hist.data(),
                           hist.size() * sizeof(uint64_t), 0) == 0) {
    for (int nr = 0; nr < ENC_SYSCALL_SLOTS; ++nr) {
      uint64_t sum = 0;
      for (int cpu = 0; cpu < ncpus_; ++cpu)
        sum += hist[static_cast<size_t>(cpu) * ENC_SYSCALL_SLOTS + nr];
      if (sum) c.histogram.emplace_back(nr, sum);
    }
  }
  return c;
}

uint64_t EnclosureBpf::rules_fired(uint64_t cgid) const {
  enc_state state{};
  bpf_map__lookup_elem(skel_->maps.states, &cgid, sizeof cgid, &state, sizeof state, 0);
  return state.rules_fired;
}

std::optional<uint64_t> EnclosureBpf::cut_sockets(uint64_t) {
  if (!(needs_.egress || needs_.egress_bytes)) return std::nullopt;
  // The iterator decides by the maps (rules fired & rules that deny network), so one walk over
  // the host's TCP sockets cuts those of every enclosure whose rule fired.
  uint64_t before = __atomic_load_n(&skel_->bss->sockets_destroyed, __ATOMIC_RELAXED);
  bpf_link* link = bpf_program__attach_iter(skel_->progs.enc_cut_tcp, nullptr);
  if (!link) throw BpfError(std::string("bpf: attach iter/tcp: ") + std::strerror(errno));
  int fd = bpf_iter_create(bpf_link__fd(link));
  int err = fd < 0 ? errno : 0;
  char buf[64];
  while (fd >= 0) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) continue;
    if (n < 0) err = errno;
    break;
  }
  if (fd >= 0) ::close(fd);
  bpf_link__destroy(link);
  if (err) throw BpfError(std::string("bpf: run iter/tcp: ") + std::strerror(err));
  return __atomic_load_n(&skel_->bss->sockets_destroyed, __ATOMIC_RELAXED) - before;
}

void EnclosureBpf::set_reported_cost(uint64_t cgid, uint64_t micro_usd) {
  bpf_map__update_elem(skel_->maps.reported_costs, &cgid, sizeof cgid, &micro_usd, sizeof micro_usd,
                       BPF_ANY);
}

}  // namespace bpf
